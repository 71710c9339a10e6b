"""The lineage record contract: written atomically, read back checked, every malformed field named with the file."""

from __future__ import annotations

import json

import pytest

from kfp_tabular.components.common import lineage
from kfp_tabular.components.common.errors import DataError

SHA = "a" * 64


def record(**changes) -> lineage.LineageRecord:
    fields = dict(
        model_sha256=SHA,
        model_uri="s3://runs/1/model",
        storage_uri="s3://models/churn/" + SHA,
        task="classification",
        label_column="churned",
        classes=[0, 1],
        positive_class=1,
        training_data={"uri": "s3://runs/1/train.parquet", "hash": "b" * 64},
        source_data={"uri": "s3://raw/churn.csv", "hash": "c" * 64},
        statistics_uri="s3://runs/1/train_statistics",
        schema_uri="s3://runs/1/schema.pbtxt",
        blessing={"blessed": True, "model_sha256": SHA},
        metrics={"accuracy": 0.8, "roc_auc": 0.85},
        baseline_model={"sha256": "d" * 64, "uri": "s3://models/churn/old"},
        prediction_distribution={"kind": "score", "edges": [0.5, 1.0], "counts": [3, 4, 0], "rows": 7},
        run={"id": "r-1", "name": "train-and-deploy-x", "pipeline": "train_and_deploy"},
    )
    fields.update(changes)
    return lineage.LineageRecord(**fields)


def test_a_record_round_trips_and_gets_its_time(tmp_path):
    written = record()
    assert written.created_at.endswith("+00:00")
    lineage.write(tmp_path / "lineage.json", written)
    assert lineage.read(tmp_path / "lineage.json") == written
    assert lineage.read(str(tmp_path)) == written  # a directory holding lineage.json
    data = json.loads((tmp_path / "lineage.json").read_text())
    assert set(data) == {
        "model_sha256",
        "model_uri",
        "storage_uri",
        "task",
        "label_column",
        "classes",
        "positive_class",
        "training_data",
        "source_data",
        "statistics_uri",
        "schema_uri",
        "blessing",
        "metrics",
        "baseline_model",
        "prediction_distribution",
        "run",
        "created_at",
    }


def test_a_record_is_read_from_an_fsspec_url():
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/lineage-test/model/lineage.json", json.dumps(record().as_dict()).encode())
    try:
        assert lineage.read("memory://lineage-test/model").model_sha256 == SHA
        assert lineage.read("memory://lineage-test/model/lineage.json").task == "classification"
        with pytest.raises(DataError, match="memory://lineage-test/none.json: lineage record not found"):
            lineage.read("memory://lineage-test/none.json")
    finally:
        fs.rm("/lineage-test", recursive=True)


def test_a_regressor_needs_no_classes_and_optional_parts_may_be_null():
    found = record(
        task="regression", classes=None, positive_class=None, baseline_model=None, prediction_distribution=None
    )
    assert found.classes is None and found.baseline_model is None


@pytest.mark.parametrize(
    "change, field",
    [
        ({"model_sha256": "abc"}, "'model_sha256'"),
        ({"model_uri": ""}, "'model_uri'"),
        ({"task": "ranking"}, "'task'"),
        ({"classes": [1]}, "'classes'"),
        ({"training_data": {"uri": "x"}}, "'training_data.hash' is missing"),
        ({"training_data": {"uri": "", "hash": None}}, "'training_data.uri'"),
        ({"run": "r-1"}, "'run'"),
        ({"blessing": None}, "'blessing'"),
        ({"baseline_model": {"sha256": 5, "uri": "s3://x"}}, "'baseline_model.sha256'"),
        ({"prediction_distribution": {"kind": "score", "edges": [0.5], "counts": [1]}}, "'counts' must be 2 numbers"),
        ({"prediction_distribution": {"kind": "bins", "edges": [0.5], "counts": [1, 1]}}, "'kind'"),
    ],
)
def test_each_malformed_field_is_named_with_the_file(tmp_path, change, field):
    data = {**record().as_dict(), **change}
    path = tmp_path / "lineage.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=field) as caught:
        lineage.read(path)
    assert str(caught.value).startswith(f"{path}: ")
    with pytest.raises(DataError, match=field):
        record(**change)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "expected a lineage record in JSON, got invalid JSON"),
        ("[1, 2]", "expected a lineage record JSON object, got list"),
        (json.dumps({"model_sha256": SHA}), "field 'model_uri' must be a non-empty string"),
    ],
)
def test_a_file_that_is_not_a_record_is_named(tmp_path, text, message):
    path = tmp_path / "lineage.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        lineage.read(path)
    with pytest.raises(DataError, match="lineage record not found"):
        lineage.read(tmp_path / "missing.json")


def test_the_blessing_reads_its_prediction_distribution_checked(tmp_path):
    """The blessing carries the same prediction distribution form (older blessings without one read as None)."""
    from kfp_tabular.components.common import blessing as blessings

    verdict = blessings.Blessing(blessed=True, reasons=[], model_sha256=SHA, prediction_distribution=None)
    blessings.write(tmp_path / "old.json", verdict)
    data = json.loads((tmp_path / "old.json").read_text())
    del data["prediction_distribution"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert blessings.read(tmp_path / "old.json").prediction_distribution is None
    data["prediction_distribution"] = {"kind": "score", "edges": [0.5, 0.4], "counts": [1, 1, 1]}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"bad.json: field 'prediction_distribution': 'edges' must increase"):
        blessings.read(tmp_path / "bad.json")


def test_build_takes_the_record_from_the_model_metadata_and_its_blessing():
    from kfp_tabular.components.common.blessing import Blessing

    metadata = {
        "model_sha256": SHA,
        "task": "classification",
        "label_column": "churned",
        "classes": [0, 1],
        "training_data_hash": "b" * 64,
        "source_data_uri": "s3://raw/churn.csv",
        "source_data_hash": "c" * 64,
    }
    distribution = {"kind": "score", "edges": [0.5, 1.0], "counts": [1, 1, 0]}
    verdict = Blessing(
        blessed=True,
        reasons=[],
        model_sha256=SHA,
        metrics={"accuracy": 0.8},
        baseline_model_dir="s3://models/old",
        positive_class=1,
        prediction_distribution=distribution,
    )
    built = lineage.build(
        metadata,
        verdict,
        model_uri="s3://runs/1/model",
        statistics_uri="s3://runs/1/stats",
        schema_uri="s3://runs/1/schema.pbtxt",
        training_data_uri="s3://runs/1/train",
        run={"id": "r-1", "name": "n", "pipeline": "train_and_deploy", "extra": "dropped"},
    )
    assert built.training_data == {"uri": "s3://runs/1/train", "hash": "b" * 64}
    assert built.source_data == {"uri": "s3://raw/churn.csv", "hash": "c" * 64}
    assert built.baseline_model == {"sha256": None, "uri": "s3://models/old"}
    assert built.prediction_distribution == distribution and built.metrics == {"accuracy": 0.8}
    assert built.blessing["model_sha256"] == SHA and set(built.run) == {"id", "name", "pipeline"}
    other = Blessing(blessed=True, reasons=[], model_sha256="e" * 64)
    with pytest.raises(DataError, match="the blessing is for model sha256 e"):
        lineage.build(metadata, other, model_uri="m", statistics_uri="s", schema_uri="x", training_data_uri="t", run={})
