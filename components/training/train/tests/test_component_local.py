"""Run the train component for real under kfp.local (SubprocessRunner), fed by dsl.importer."""

import json
import os
from pathlib import Path
from typing import NamedTuple

import joblib
import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Metrics, Model

from kfp_tabular.components.common.artifacts import sha256_file
from kfp_tabular.components.training.train.component import train

LABEL = "churned"
# Our base image is the pipeline env itself; SubprocessRunner runs the body in this interpreter, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


@dsl.pipeline
def train_from_files(train_uri: str, schema_uri: str, estimator: str, hyperparameters: dict) -> NamedTuple(
    "Outputs", [("model", Model), ("metrics", Metrics)]
):
    source = {"content_hash": "sha256-of-source", "source_uri": "s3://data/churn.csv"}
    data = dsl.importer(artifact_uri=train_uri, artifact_class=Dataset, metadata=source)
    schema = dsl.importer(artifact_uri=schema_uri, artifact_class=Artifact)
    task = train(
        train_data=data.output,
        schema=schema.output,
        label_column=LABEL,
        estimator=estimator,
        hyperparameters=hyperparameters,
    )
    outputs = NamedTuple("Outputs", [("model", Model), ("metrics", Metrics)])
    return outputs(task.outputs["model"], task.outputs["metrics"])


def test_train_component_writes_the_model_directory_and_metadata(churn, local_runner):
    run = train_from_files(
        train_uri=str(churn.train),
        schema_uri=str(churn.schema),
        estimator="hist_gradient_boosting",
        hyperparameters={"max_iter": 30, "max_depth": 3},
    )
    model, metrics = run.outputs["model"], run.outputs["metrics"]
    model_dir = Path(model.path)
    assert sorted(os.listdir(model_dir)) == ["metadata.json", "model.joblib"]
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["hyperparameters"] == {"max_iter": 30, "max_depth": 3, "random_state": 42}
    assert isinstance(metadata["hyperparameters"]["max_iter"], int)
    # Artifact metadata: what the deploy step and the KFP UI read.
    assert model.metadata["framework"] == "sklearn"
    assert model.metadata["estimator"] == "hist_gradient_boosting"
    assert model.metadata["task"] == "classification"
    assert model.metadata["sklearn_version"] == metadata["sklearn_version"]
    assert model.metadata["model_sha256"] == sha256_file(model_dir / "model.joblib") == metadata["model_sha256"]
    assert model.metadata["feature_order"] == metadata["feature_order"]
    # training_data_hash: the split file the model was fit on; the source ingest read is recorded apart.
    assert model.metadata["training_data_hash"] == sha256_file(churn.train) == metadata["training_data_hash"]
    assert model.metadata["source_data_hash"] == "sha256-of-source" == metadata["source_data_hash"]
    assert model.metadata["source_data_uri"] == "s3://data/churn.csv" == metadata["source_data_uri"]
    assert metrics.metadata["rows"] == 3000
    assert 0.7 < metrics.metadata["roc_auc"] <= 1.0
    pipeline = joblib.load(model_dir / "model.joblib")
    assert pipeline.predict_proba(churn.eval_frame.head(3)).shape == (3, 2)


def test_train_component_fails_on_an_unknown_estimator_and_leaves_no_model(churn, local_runner, capfd):
    with pytest.raises(RuntimeError, match="FAILURE"):
        train_from_files(
            train_uri=str(churn.train), schema_uri=str(churn.schema), estimator="xgboost", hyperparameters={}
        )
    logs = "".join(capfd.readouterr())
    assert "ConfigError" in logs and "unknown estimator 'xgboost'" in logs
    assert not list(Path(local_runner).rglob("model.joblib"))


def test_train_python_func_without_source_metadata_records_no_source(churn, tmp_path):
    from kfp_tabular.components.common.decisions import from_metadata

    data = Dataset(name="train_data", uri=str(churn.train), metadata={})
    schema = Artifact(name="schema", uri=str(churn.schema))
    model = Model(name="model", uri=str(tmp_path / "model"))
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    train.python_func(
        train_data=data,
        schema=schema,
        label_column=LABEL,
        model=model,
        metrics=metrics,
        estimator="logistic_regression",
    )
    assert model.metadata["training_data_hash"] == sha256_file(churn.train)
    assert model.metadata["source_data_hash"] is None and model.metadata["source_data_uri"] is None
    assert model.metadata["classes"] == [0, 1]
    assert (tmp_path / "model" / "model.joblib").is_file()
    assert set(metrics.metadata) == {
        "rows",
        "metrics_sample_rows",
        "accuracy",
        "log_loss",
        "roc_auc",
        "decisions",
        "leakage_warnings",
    }
    # No Dataset positive_class: train chose the minority class itself, and said so.
    decisions = from_metadata(model.metadata["decisions"])
    assert [(d.subject, d.action) for d in decisions] == [("churned", "classification"), ("churned", "positive class")]
    assert model.metadata["positive_class"] == 1 and metrics.metadata["decisions"] == 2


def test_the_component_parameters_are_the_request_fields():
    """Same names and defaults, and each field's one description reaches the component spec (the KFP UI)."""
    from kfp_tabular.components.training.train.component import train as component
    from kfp_tabular.components.training.train.request import TrainRequest
    from tests.support.requests import component_request_differences

    assert component_request_differences(component, TrainRequest) == []
