"""Run the ingest component for real under kfp.local's SubprocessRunner, and its raw function directly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from kfp_tabular.components.data_processing.ingest.component import ingest
from kfp_tabular.components.data_processing.synthetic_data.core import generate

LABEL = "churned"
# The base image is our own pipeline image; locally the same code runs in this venv, which is the point.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


@pytest.fixture()
def churn_csv(tmp_path) -> Path:
    path = tmp_path / "data" / "churn.csv"
    path.parent.mkdir()
    generate(2000, seed=3).to_csv(path, index=False)
    return path


def parquet_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.read_bytes()[:4] == b"PAR1"]


def executor_outputs(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in root.rglob("executor_output.json")]


def test_component_writes_parquet_splits_metadata_and_metrics(local_runner, churn_csv):
    task = ingest(data_uri=str(churn_csv), label_column=LABEL, eval_fraction=0.25, seed=5)

    assert task.outputs["rows"] == 2000
    assert task.outputs["task"] == "classification"
    train_artifact, eval_artifact = task.outputs["train_data"], task.outputs["eval_data"]
    train = pd.read_parquet(train_artifact.path)
    evaluation = pd.read_parquet(eval_artifact.path)
    assert (len(train), len(evaluation)) == (1500, 500)
    source = generate(2000, seed=3)
    assert train.columns.tolist() == source.columns.tolist()
    assert abs(train[LABEL].mean() - evaluation[LABEL].mean()) < 0.01

    content_hash = hashlib.sha256(churn_csv.read_bytes()).hexdigest()
    for artifact, rows, split in ((train_artifact, 1500, "train"), (eval_artifact, 500, "eval")):
        meta = artifact.metadata
        assert meta["rows"] == rows and meta["split"] == split
        assert meta["columns"] == source.columns.tolist()
        assert meta["source_uri"] == str(churn_csv)
        assert meta["content_hash"] == content_hash
        assert meta["label_column"] == LABEL
        assert meta["task"] == "classification"
        assert meta["label_classes"] == [0, 1]

    metrics = task.outputs["metrics"].metadata
    assert metrics["rows"] == 2000 and metrics["train_rows"] == 1500 and metrics["eval_rows"] == 500
    assert metrics["columns"] == 12
    assert metrics["positive_rate"] == pytest.approx(source[LABEL].mean())
    assert sorted(p.name for p in parquet_files(local_runner)) == ["eval_data", "train_data"]
    # The metrics are recorded in the executor output, which is what a KFP backend reads.
    recorded = [out for out in executor_outputs(local_runner) if "metrics" in out.get("artifacts", {})]
    assert len(recorded) == 1
    logged = recorded[0]["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert logged["rows"] == 2000 and logged["positive_rate"] == pytest.approx(source[LABEL].mean())


def test_component_records_its_decisions_in_both_datasets_and_counts_them(local_runner, tmp_path):
    """Real data (scikit-learn's wine): an ID, a date as text and a 1.0/2.0/3.0 label become decisions."""
    from sklearn.datasets import load_wine

    from kfp_tabular.components.common.decisions import from_metadata

    wine = load_wine(as_frame=True).frame
    wine.insert(0, "bottle_id", range(1000, 1000 + len(wine)))
    wine["bottled"] = pd.date_range("2015-03-01", periods=len(wine), freq="D").strftime("%Y-%m-%d")
    wine["target"] = wine["target"].astype(float) + 1.0
    path = tmp_path / "wine.csv"
    wine.to_csv(path, index=False)

    task = ingest(data_uri=str(path), label_column="target", drop_columns=["ash"], categorical_columns=["proline"])
    assert task.outputs["task"] == "classification"
    for artifact in (task.outputs["train_data"], task.outputs["eval_data"]):
        decided = {(d.subject, d.action) for d in from_metadata(artifact.metadata["decisions"])}
        assert decided == {
            ("target", "classification"),
            ("bottle_id", "dropped"),
            ("ash", "dropped"),
            ("proline", "categorical"),
            ("bottled", "expanded"),
        }
        assert artifact.metadata["label_classes"] == [1, 2, 3] and artifact.metadata["positive_class"] is None
        assert "bottle_id" in artifact.metadata["source_columns"]
        assert "bottle_id" not in artifact.metadata["columns"]
    written = pd.read_parquet(task.outputs["train_data"].path)
    assert {"bottled_year", "bottled_month", "bottled_day_of_week"} <= set(written.columns)
    assert "bottled_hour" not in written.columns and "ash" not in written.columns
    assert written["proline"].map(type).eq(str).all() and written["target"].dtype == "int64"
    metrics = task.outputs["metrics"].metadata
    assert (metrics["decisions"], metrics["dropped_columns"], metrics["source_columns"]) == (5, 2, 16)


def test_component_regression_label(local_runner, churn_csv):
    task = ingest(data_uri=churn_csv.as_uri(), label_column="monthly_charges")
    assert task.outputs["task"] == "regression"
    assert task.outputs["train_data"].metadata["label_classes"] is None
    assert "positive_rate" not in task.outputs["metrics"].metadata


def test_component_fails_on_missing_label_and_writes_nothing(local_runner, churn_csv, capfd):
    with pytest.raises(RuntimeError, match="FAILURE"):
        ingest(data_uri=str(churn_csv), label_column="no_such_column")
    out, err = capfd.readouterr()
    assert f"DataError: {churn_csv}: label column 'no_such_column' not found" in out + err
    assert parquet_files(local_runner) == []
    assert not [p for p in local_runner.rglob("*") if p.name in ("train_data", "eval_data")]


def test_python_func_sets_metadata(tmp_path, churn_csv):
    from kfp.dsl import Dataset, Metrics

    train, evaluation, metrics = (
        Dataset(uri=str(tmp_path / "out" / "train")),
        Dataset(uri=str(tmp_path / "out" / "eval")),
        Metrics(uri=str(tmp_path / "out" / "metrics")),
    )
    outputs = ingest.python_func(
        data_uri=str(churn_csv), label_column=LABEL, train_data=train, eval_data=evaluation, metrics=metrics
    )
    assert (outputs.task, outputs.rows) == ("classification", 2000)
    assert (train.metadata["rows"], evaluation.metadata["rows"]) == (1600, 400)
    assert len(pd.read_parquet(train.path)) == 1600
    assert metrics.metadata["columns"] == 12


def test_python_func_error_names_the_file(tmp_path):
    from kfp.dsl import Dataset, Metrics

    from kfp_tabular.components.common.errors import DataError

    missing = tmp_path / "missing.csv"
    with pytest.raises(DataError, match=f"^{missing}: file not found"):
        ingest.python_func(
            data_uri=str(missing),
            label_column=LABEL,
            train_data=Dataset(uri=str(tmp_path / "train")),
            eval_data=Dataset(uri=str(tmp_path / "eval")),
            metrics=Metrics(uri=str(tmp_path / "metrics")),
        )
    assert not (tmp_path / "train").exists() and not (tmp_path / "eval").exists()


def test_component_spec_and_import_hygiene():
    import subprocess
    import sys

    spec = ingest.component_spec
    assert set(spec.inputs) == {
        "data_uri",
        "label_column",
        "eval_fraction",
        "seed",
        "task",
        "drop_columns",
        "id_columns",
        "text_columns",
        "datetime_columns",
        "categorical_columns",
        "positive_class",
        "min_rows",
    }
    assert set(spec.outputs) == {"train_data", "eval_data", "metrics", "task", "rows"}
    assert spec.implementation.container.image.endswith("kfp-tabular-pipeline:0.1.0")
    code = (
        "import sys\n"
        "import kfp_tabular.components.data_processing.ingest\n"
        "assert 'kfp' not in sys.modules, 'the package __init__ imports kfp'\n"
        "import kfp_tabular.components.data_processing.ingest.component\n"
        "heavy = {'pandas', 'sklearn', 'tensorflow', 'pyarrow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_component_parameters_are_the_request_fields():
    """Same names and defaults, and each field's one description reaches the component spec (the KFP UI)."""
    from kfp_tabular.components.data_processing.ingest.component import ingest as component
    from kfp_tabular.components.data_processing.ingest.request import IngestRequest
    from tests.support.requests import component_request_differences

    assert component_request_differences(component, IngestRequest) == []
