"""Drift false-positive rate on random splits of real data: how often sampling noise alone flags a feature.

Each split is a seeded random 80/20 split of one scikit-learn dataset (bundled, offline), validated exactly as a
run validates it (``validate.core.validate``: statistics, inferred schema, anomalies, drift) with
``drift_gate="all"``, so eval-vs-train is gating. A random split cannot drift: every run with a flagged feature
is a false positive. For comparison the script also counts the runs TFDV's own comparators (approximate
Jensen-Shannon divergence 0.1 for numeric, L-infinity 0.1 for categorical features: the previous defaults) would
have failed on the same statistics.

    .venv/bin/python bench/drift_false_positives.py --splits 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def datasets() -> dict:
    """Name -> (frame, label): scikit-learn's bundled datasets, plus one with categorical (string) columns."""
    from sklearn import datasets as sk

    diabetes = sk.load_diabetes(as_frame=True, scaled=False).frame
    categorical = diabetes.copy()
    categorical["sex"] = categorical["sex"].map({1.0: "F", 2.0: "M"})
    categorical["bmi"] = categorical["bmi"].apply(lambda v: "under25" if v < 25 else "25-30" if v < 30 else "30+")
    categorical["age"] = (categorical["age"] // 10 * 10).astype(int).astype(str) + "s"
    return {
        "breast_cancer": (sk.load_breast_cancer(as_frame=True).frame, "target"),
        "wine": (sk.load_wine(as_frame=True).frame, "target"),
        "diabetes": (diabetes, "target"),
        "diabetes_categorical": (categorical, "target"),
    }


def split(frame, seed: int, eval_fraction: float = 0.2):
    """Split a frame at random (seeded), as ingest does: (train, eval)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(round(len(frame) * eval_fraction))
    return frame.iloc[order[cut:]], frame.iloc[order[:cut]]


def tfdv_would_flag(train_stats, eval_stats, schema) -> bool:
    """Whether TFDV's approximate JS divergence 0.1 / L-infinity 0.1 comparators flag any feature."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    from kfp_tabular.components.data_processing.validate import tfdv_io

    copy = schema_pb2.Schema()
    copy.CopyFrom(schema)
    for feature in copy.feature:
        if feature.type == schema_pb2.BYTES or feature.int_domain.is_categorical:
            feature.drift_comparator.infinity_norm.threshold = 0.1
        else:
            feature.drift_comparator.jensen_shannon_divergence.threshold = 0.1
    found = tfdv_io.tfdv().validate_statistics(eval_stats, copy, previous_statistics=train_stats)
    return any(m.value > m.threshold for info in found.drift_skew_info for m in info.drift_measurements)


def run(name: str, frame, label: str, splits: int, root: Path) -> dict:
    """Validate ``splits`` random splits of one dataset; count flagged runs (ours and TFDV's comparators)."""
    from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
    from kfp_tabular.components.data_processing.validate import core, tfdv_io
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest

    request = ValidateRequest(label, drift_gate="all", fail_on_anomalies=False)
    flagged, anomalous, tfdv_flagged, smallest_p, features = 0, 0, 0, 1.0, 0
    for seed in range(splits):
        train, evaluation = split(frame, seed)
        paths = {
            "train_statistics_path": str(root / "train.pb"),
            "eval_statistics_path": str(root / "eval.pb"),
            "schema_path": str(root / "schema.pbtxt"),
        }
        result = core.validate(
            synthetic.write(train, root / "train.parquet"),
            synthetic.write(evaluation, root / "eval.parquet"),
            request,
            **paths,
        )
        flagged += bool(result.flagged)
        anomalous += bool(result.anomalies)
        smallest_p = min([smallest_p] + [m.p_value for m in result.drift])
        features = len(result.drift)
        tfdv_flagged += tfdv_would_flag(
            tfdv_io.load_statistics(paths["train_statistics_path"]),
            tfdv_io.load_statistics(paths["eval_statistics_path"]),
            tfdv_io.load_schema(paths["schema_path"]),
        )
    rows = len(frame)
    return {
        "dataset": name,
        "rows": f"{rows - int(round(rows * 0.2))}/{int(round(rows * 0.2))}",
        "features": features,
        "splits": splits,
        "flagged": flagged,
        "rate": flagged / splits,
        "anomalies": anomalous,
        "smallest_p": smallest_p,
        "tfdv_0.1": tfdv_flagged / splits,
    }


def main() -> None:
    """Print one row per dataset: runs flagged by drift (ours, TFDV's comparators) over random splits."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--datasets", nargs="*", default=None, help="names (default: all)")
    args = parser.parse_args()

    from kfp_tabular.components.data_processing.validate.request import ValidateRequest

    defaults = ValidateRequest("y")
    print(
        f"defaults: numeric_drift_threshold={defaults.numeric_drift_threshold} (JS distance), "
        f"categorical_drift_threshold={defaults.categorical_drift_threshold} (L-infinity), "
        f"drift_alpha={defaults.drift_alpha}; {args.splits} seeded random 80/20 splits per dataset"
    )
    header = ["dataset", "train/eval rows", "features", "splits", "runs flagged", "rate", "runs with anomalies"]
    header += ["smallest p", "TFDV 0.1 comparators"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (frame, label) in datasets().items():
            if args.datasets and name not in args.datasets:
                continue
            row = run(name, frame, label, args.splits, Path(tmp))
            print(
                f"| {row['dataset']} | {row['rows']} | {row['features']} | {row['splits']} | {row['flagged']} | "
                f"{row['rate']:.1%} | {row['anomalies']} | {row['smallest_p']:.2g} | {row['tfdv_0.1']:.0%} |",
                flush=True,
            )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
