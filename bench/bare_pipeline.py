"""The baseline of the end-to-end bench: the pipeline's work as one bare script, no kfp, no kfp-tabular.

What ``make run`` does on the bundled data, with the same libraries and settings, in one process:

1. read + split: ``pandas.read_csv``; ``train_test_split`` with the eval rows ``ceil(0.2 * rows)``, seed 42, shuffled
   and stratified on the label, each split back in source order (ingest's rule);
2. statistics + validate: ``tfdv.generate_statistics_from_dataframe`` of both splits (booleans as 0/1 integers,
   100 quantile buckets, the schema shaping the statistics), the curated schema loaded, both splits validated in
   its TRAINING environment;
3. fit: the schema's features; numeric: float64 -> median imputer -> standard scaler; categorical: string ->
   ``__missing__`` imputer -> one-hot (unknown ignored, at most 50 columns, categories under 5 rows grouped);
   HistGradientBoostingClassifier(random_state=42);
4. evaluate: ROC AUC, accuracy, precision, recall, F1, log loss and the confusion matrix on eval (the minority
   class positive); the model written with joblib.

It prints each phase's seconds and ends with one JSON line (phases, metrics, anomalies). It is the baseline, so it
imports scikit-learn, TFDV and pandas directly and nothing of ours:

    .venv/bin/python bench/bare_pipeline.py data.csv --output-dir /tmp/bare
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

LABEL = "churned"
EVAL_FRACTION = 0.2
SEED = 42
QUANTILE_BUCKETS = 100


def _schema_path() -> str:
    # The curated schema file ships inside the package (components/data_processing/synthetic_data); it is data, so
    # the baseline reads the same file without importing our code.
    here = Path(__file__).resolve().parent.parent
    return str(here / "components" / "data_processing" / "synthetic_data" / "churn_schema.pbtxt")


def read_and_split(csv_path: str):
    """Read the CSV and split it as ingest does."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(csv_path, index_col=False, low_memory=False)
    eval_rows = math.ceil(round(EVAL_FRACTION * len(frame), 9))
    train, evaluation = train_test_split(
        frame, test_size=eval_rows, random_state=SEED, shuffle=True, stratify=frame[LABEL]
    )
    return train.sort_index(), evaluation.sort_index()


def statistics_and_validate(train, evaluation, schema_path: str):
    """TFDV statistics of both splits and their anomalies against the curated schema."""
    import tensorflow_data_validation as tfdv

    schema = tfdv.load_schema_text(schema_path)
    options = tfdv.StatsOptions(schema=schema, num_quantiles_histogram_buckets=QUANTILE_BUCKETS)
    anomalies = {}
    for name, split in (("train", train), ("eval", evaluation)):
        # TFDV has no boolean type: booleans as 0/1 integers; the split's row labels are not a column.
        split = split.astype({c: "int64" for c in split.columns if split[c].dtype == bool}).reset_index(drop=True)
        stats = tfdv.generate_statistics_from_dataframe(split, options, n_jobs=1)
        found = tfdv.validate_statistics(stats, schema, environment="TRAINING")
        anomalies[name] = sorted(found.anomaly_info)
    return schema, anomalies


def fit(train, schema):
    """Fit the model pipeline the train step builds, on the schema's features."""
    import functools
    import operator

    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from tensorflow_metadata.proto.v0 import schema_pb2

    features = [f for f in schema.feature if f.name != LABEL]
    numeric = [f.name for f in features if f.type in (schema_pb2.INT, schema_pb2.FLOAT)]
    categorical = [f.name for f in features if f.type == schema_pb2.BYTES]
    order = [f.name for f in features]
    prep = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [
                        ("coerce", FunctionTransformer(operator.methodcaller("astype", "float64"), validate=False)),
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("coerce", FunctionTransformer(operator.methodcaller("astype", "string"), validate=False)),
                        ("impute", SimpleImputer(missing_values=pd.NA, strategy="constant", fill_value="__missing__")),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="ignore", max_categories=50, min_frequency=5, sparse_output=False
                            ),
                        ),
                    ]
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )
    frame = FunctionTransformer(functools.partial(pd.DataFrame, columns=order), validate=False)
    model = Pipeline([("frame", frame), ("prep", prep), ("model", HistGradientBoostingClassifier(random_state=SEED))])
    model.fit(train[order], train[LABEL].astype("int64"))
    return model, order


def evaluate(model, order, evaluation) -> dict:
    """Compute the evaluate step's classification metrics on eval (the minority class is the positive one)."""
    import numpy as np
    from sklearn import metrics as skm

    y = evaluation[LABEL].astype("int64").to_numpy()
    classes = list(model.classes_)
    counts = {c: int((y == c).sum()) for c in classes}
    positive = min(classes, key=lambda c: counts[c])
    index = classes.index(positive)
    proba = model.predict_proba(evaluation[order])
    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    binary = {"average": "binary", "pos_label": positive, "zero_division": 0}
    return {
        "roc_auc": float(skm.roc_auc_score(y == positive, proba[:, index])),
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "precision": float(skm.precision_score(y, predicted, **binary)),
        "recall": float(skm.recall_score(y, predicted, **binary)),
        "f1": float(skm.f1_score(y, predicted, **binary)),
        "log_loss": float(skm.log_loss(y, proba, labels=classes)),
        "confusion_matrix": skm.confusion_matrix(y, predicted, labels=classes).tolist(),
    }


def run(csv_path: str, output_dir: str, schema_path: str) -> dict:
    """Run the four phases; return their seconds, the metrics and the anomalies."""
    import joblib

    phases = {}
    started = time.perf_counter()
    train, evaluation = read_and_split(csv_path)
    phases["read+split"] = time.perf_counter() - started

    mark = time.perf_counter()
    schema, anomalies = statistics_and_validate(train, evaluation, schema_path)
    phases["statistics+validate"] = time.perf_counter() - mark

    mark = time.perf_counter()
    model, order = fit(train, schema)
    phases["fit"] = time.perf_counter() - mark

    mark = time.perf_counter()
    metrics = evaluate(model, order, evaluation)
    os.makedirs(output_dir, exist_ok=True)
    joblib.dump(model, os.path.join(output_dir, "model.joblib"))
    phases["evaluate"] = time.perf_counter() - mark
    total = time.perf_counter() - started
    return {
        "rows": len(train) + len(evaluation),
        "train_rows": len(train),
        "eval_rows": len(evaluation),
        "phases": phases,
        "seconds_in_process": total,
        "metrics": metrics,
        "anomalies": anomalies,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the script on a CSV and print the phases and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("csv", help="the bundled default data as CSV (bench/benchlib.py bench_data)")
    parser.add_argument("--output-dir", required=True, help="where model.joblib is written")
    parser.add_argument("--schema", default=_schema_path(), help="the curated TFDV schema (default: the bundled one)")
    args = parser.parse_args(argv)
    result = run(args.csv, args.output_dir, args.schema)
    for name, seconds in result["phases"].items():
        print(f"bare {name:<20} {seconds:8.2f}s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
