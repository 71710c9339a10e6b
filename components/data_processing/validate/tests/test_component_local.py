"""The validate_data component run for real: kfp.local SubprocessRunner, and its function called directly."""

import re
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics

from kfp_tabular.components.common.errors import ValidationFailed
from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import tfdv_io
from kfp_tabular.components.data_processing.validate.component import validate_data

CURATED = str(Path(synthetic.__file__).parent / "churn_schema.pbtxt")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "train": synthetic.write(synthetic.generate(2000, 21), root / "train.parquet"),
        "eval": synthetic.write(synthetic.generate(1000, 22), root / "eval.parquet"),
        "drifted": synthetic.write(synthetic.generate(1000, 23, "drifted"), root / "drifted.parquet"),
    }


@dsl.pipeline
def validation_pipeline(train_uri: str, eval_uri: str, schema_uri: str) -> NamedTuple(
    "Outputs",
    [("anomaly_count", int), ("drifted_features", list), ("schema", Artifact), ("report", HTML), ("stats", Artifact)],
):
    train = dsl.importer(artifact_uri=train_uri, artifact_class=Dataset, reimport=False)
    evaluation = dsl.importer(artifact_uri=eval_uri, artifact_class=Dataset, reimport=False)
    task = validate_data(
        train_data=train.output, eval_data=evaluation.output, label_column=synthetic.LABEL, schema_uri=schema_uri
    )
    outputs = NamedTuple(
        "Outputs",
        [
            ("anomaly_count", int),
            ("drifted_features", list),
            ("schema", Artifact),
            ("report", HTML),
            ("stats", Artifact),
        ],
    )
    return outputs(
        task.outputs["anomaly_count"],
        task.outputs["drifted_features"],
        task.outputs["schema"],
        task.outputs["report"],
        task.outputs["train_statistics"],
    )


@pytest.fixture
def pipeline_root(local_runner):
    return local_runner


def test_local_run_on_default_data_passes(data, pipeline_root):
    run = validation_pipeline(train_uri=data["train"], eval_uri=data["eval"], schema_uri=CURATED)
    assert run.outputs["anomaly_count"] == 0
    assert run.outputs["drifted_features"] == []
    schema = run.outputs["schema"]
    assert Path(schema.path).read_bytes() == Path(CURATED).read_bytes()
    assert schema.metadata["source"] == "curated" and schema.metadata["schema_uri"] == CURATED
    assert schema.metadata["num_features"] == 12
    stats = run.outputs["stats"]
    assert tfdv_io.load_statistics(stats.path).datasets[0].num_examples == 2000
    assert stats.metadata["num_examples"] == 2000 and stats.metadata["num_features"] == 12
    page = Path(run.outputs["report"].path).read_text()
    assert "PASSED" in page and "<script" not in page
    assert run.outputs["report"].metadata["ok"] is True


def test_local_run_on_drifted_data_fails(data, pipeline_root):
    with pytest.raises(RuntimeError, match="FAILURE"):
        validation_pipeline(train_uri=data["train"], eval_uri=data["drifted"], schema_uri=CURATED)
    # The outputs were written before the task failed: the report is there to read.
    reports = list(pipeline_root.rglob("validate-data/report"))
    assert len(reports) == 1
    page = reports[0].read_text()
    assert "FAILED" in page and "SCHEMA_MISSING_COLUMN" in page and "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in page


def _outputs(tmp_path):
    def art(cls, name):
        return cls(name=name, uri=str(tmp_path / name))

    return {
        "train_statistics": art(Artifact, "train_statistics"),
        "eval_statistics": art(Artifact, "eval_statistics"),
        "schema": art(Artifact, "schema"),
        "anomalies": art(Artifact, "anomalies"),
        "anomalies_report": art(Markdown, "anomalies_report"),
        "statistics_html": art(HTML, "statistics_html"),
        "report": art(HTML, "report"),
        "metrics": art(Metrics, "metrics"),
    }


def test_python_func_warn_only_sets_metadata_and_metrics(data, tmp_path):
    outs = _outputs(tmp_path)
    result = validate_data.python_func(
        train_data=Dataset(name="train", uri=data["train"]),
        eval_data=Dataset(name="eval", uri=data["drifted"]),
        label_column=synthetic.LABEL,
        schema_uri=CURATED,
        fail_on_anomalies=False,
        drift_gate="all",
        **outs,
    )
    assert result.anomaly_count == 2
    assert {"monthly_charges", "contract_type"} <= set(result.drifted_features)
    assert outs["metrics"].metadata["eval_vs_train_monthly_charges_flagged"] == 1.0
    assert outs["anomalies"].metadata["flagged_features"] == result.drifted_features
    assert outs["metrics"].metadata["anomaly_count"] == 2.0
    assert outs["metrics"].metadata["eval_examples"] == 1000.0
    assert outs["anomalies"].metadata["ok"] is False
    assert outs["anomalies"].metadata["drifted_features"] == result.drifted_features
    assert outs["schema"].metadata["source"] == "curated"
    # statistics_backend="auto" (the default) chose the in-memory path for this small data, and says why.
    decisions = outs["eval_statistics"].metadata.pop("decisions")
    assert outs["eval_statistics"].metadata == {
        "split": "eval",
        "num_examples": 1000,
        "num_features": 11,
        "format": "tfdv.DatasetFeatureStatisticsList (binary proto)",
        "backend": "dataframe",
    }
    assert [(d["step"], d["subject"], d["action"]) for d in decisions] == [
        ("validate", "statistics_backend", "dataframe")
    ]
    assert re.fullmatch(
        r"statistics: dataframe \(in memory\): ~[\d.]+ [MG]B estimated <= budget .+", decisions[0]["reason"]
    )
    assert outs["train_statistics"].metadata["decisions"] == decisions
    for name, artifact in outs.items():
        if name != "metrics":
            assert Path(artifact.path).stat().st_size > 0, name


def test_python_func_fails_on_drifted_data(data, tmp_path):
    outs = _outputs(tmp_path)
    with pytest.raises(ValidationFailed, match="eval / has_partner: SCHEMA_MISSING_COLUMN"):
        validate_data.python_func(
            train_data=Dataset(name="train", uri=data["train"]),
            eval_data=Dataset(name="eval", uri=data["drifted"]),
            label_column=synthetic.LABEL,
            schema_uri=CURATED,
            **outs,
        )
    assert Path(outs["report"].path).exists()


def test_component_compiles(tmp_path):
    from kfp import compiler

    target = tmp_path / "validate_data.yaml"
    compiler.Compiler().compile(validate_data, str(target))
    text = target.read_text()
    assert "drifted_features" in text and "parameterType: LIST" in text
    assert "kfp-tabular-pipeline" in text


def test_component_parameters_are_the_request_fields():
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest
    from tests.support.requests import component_request_differences

    assert component_request_differences(validate_data, ValidateRequest) == []
