"""The retrain trigger without KFP: its request, the label join, the mode, no-retrain, and a cluster submission.

The cluster submission goes to tests/support/fake_kfp_api.py, a STAND-IN of the KFP API server's v2beta1 REST
endpoints (the real server cannot run here): the test checks what kfp.Client sent, from inside an interpreter set
up as a KFP task's (``_KFP_RUNTIME=true``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kfp_tabular.components.common import lineage
from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.monitoring.retrain import core
from kfp_tabular.components.monitoring.retrain.request import RetrainRequest
from tests.support.fake_kfp_api import FakeKfpApi

SHA = "a" * 64


def _record(tmp_path: Path) -> Path:
    train = tmp_path / "train_split"
    pd.DataFrame({"age": [30, 40, 50], "plan": ["a", "b", "a"], "churned": [0, 1, 0]}).to_parquet(train)
    record = lineage.LineageRecord(
        model_sha256=SHA,
        model_uri="minio://mlpipeline/v2/artifacts/train/model",
        task="classification",
        label_column="churned",
        classes=[0, 1],
        statistics_uri="minio://mlpipeline/v2/artifacts/validate/train_statistics",
        schema_uri="minio://mlpipeline/v2/artifacts/validate/schema",
        training_data={"uri": str(train), "hash": None},
        source_data={"uri": None, "hash": None},
        blessing={"blessed": True},
        metrics={"roc_auc": 0.8},
        run={"id": "r1", "name": "run", "pipeline": "kfp-tabular-train-and-deploy"},
    )
    path = tmp_path / "lineage.json"
    lineage.write(path, record)
    return path


def _served(tmp_path: Path, rows: int = 150) -> Path:
    frame = pd.DataFrame(
        {
            "age": [20 + i % 50 for i in range(rows)],
            "plan": ["a" if i % 3 else "b" for i in range(rows)],
            "prediction": [i % 2 for i in range(rows)],
            "score": [0.5] * rows,
            "model_sha256": [SHA] * rows,
            "event_id": [f"ev-{i // 5}" for i in range(rows)],
            "instance": [i % 5 for i in range(rows)],
        }
    )
    path = tmp_path / "served_data"
    frame.to_parquet(path)
    return path


def _labels(tmp_path: Path, rows: int = 150, skip: int = 0) -> Path:
    frame = pd.DataFrame(
        {
            "event_id": [f"ev-{i // 5}" for i in range(skip, rows)],
            "instance": [i % 5 for i in range(skip, rows)],
            "churned": [(i // 7) % 2 for i in range(skip, rows)],
        }
    )
    path = tmp_path / "labels.csv"
    frame.to_csv(path, index=False)
    return path


def _decision(tmp_path: Path, retrain: bool) -> Path:
    path = tmp_path / "decision"
    path.write_text(json.dumps({"retrain": retrain, "reasons": ["drift (...): age: JS distance 0.4 > 0.1"]}))
    return path


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lineage_uri", "", "lineage_uri"),
        ("mode", "remote", "mode: expected one of auto, local, cluster"),
        ("kfp_host", "ml-pipeline:8888", "kfp_host: expected an http"),
        ("min_labelled_rows", 0, "min_labelled_rows"),
        ("include_training_data", "yes", "include_training_data"),
        ("training_parameters", {"data_uri": "x"}, "data_uri are set by the trigger"),
        ("training_parameters", ["x"], "training_parameters: expected an object"),
    ],
)
def test_request_names_the_bad_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        RetrainRequest(**{"lineage_uri": "l.json", field: value})


def test_labels_join_on_event_id_and_instance_and_count_the_unlabelled(tmp_path):
    served = pd.read_parquet(_served(tmp_path))
    labels = pd.read_csv(_labels(tmp_path, skip=10))
    joined, counts = core.join_labels(served, labels, "churned", "labels.csv")
    assert counts == {"served": 150, "labelled": 140, "unlabelled": 10}
    row = joined[(joined.event_id == "ev-7") & (joined.instance == 3)].iloc[0]
    assert row["churned"] == (38 // 7) % 2 and row["age"] == 20 + 38 % 50


def test_labels_without_instance_are_refused_when_a_request_had_several_rows(tmp_path):
    served = pd.read_parquet(_served(tmp_path))
    labels = pd.read_csv(_labels(tmp_path)).drop(columns=["instance"]).drop_duplicates("event_id")
    with pytest.raises(DataError, match="no 'instance' column, but served event 'ev-0' has several rows"):
        core.join_labels(served, labels, "churned", "labels.csv")


def test_a_row_labelled_twice_or_a_missing_label_column_is_named(tmp_path):
    served = pd.read_parquet(_served(tmp_path))
    labels = pd.read_csv(_labels(tmp_path))
    with pytest.raises(
        DataError, match=r"labels.csv: \{'event_id': 'ev-0', 'instance': 0\} is labelled more than once"
    ):
        core.join_labels(served, pd.concat([labels, labels.head(1)]), "churned", "labels.csv")
    with pytest.raises(DataError, match="column 'churned' is missing"):
        core.join_labels(served, labels.drop(columns=["churned"]), "churned", "labels.csv")


def test_a_reused_event_id_in_the_served_rows_is_named(tmp_path):
    served = pd.read_parquet(_served(tmp_path))
    served = pd.concat([served, served.head(1)])
    with pytest.raises(DataError, match=r"\{'event_id': 'ev-0', 'instance': 0\} occurs more than once in the window"):
        core.join_labels(served, pd.read_csv(_labels(tmp_path)), "churned", "labels.csv")


def test_mode_auto_is_cluster_in_a_kfp_pod_or_with_a_host_else_local():
    request = RetrainRequest(lineage_uri="l.json")
    assert core.choose_mode(request, {})[0] == "local"
    mode, decisions = core.choose_mode(request, {"KFP_POD_NAME": "p-1", "KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert mode == "cluster" and "KFP pod p-1" in decisions[0].reason
    assert core.choose_mode(RetrainRequest(lineage_uri="l.json", kfp_host="http://h:8888"), {})[0] == "cluster"
    assert core.choose_mode(RetrainRequest(lineage_uri="l.json", mode="local", kfp_host="http://h"), {}) == (
        "local",
        [],
    )


def test_no_retrain_decision_does_nothing_and_says_so(tmp_path):
    request = RetrainRequest(lineage_uri=str(tmp_path / "absent.json"), mode="cluster", kfp_host="http://127.0.0.1:9")
    result = core.retrain(
        request,
        decision_path=str(_decision(tmp_path, retrain=False)),
        served_data_path=str(tmp_path / "absent"),
        retrain_data_path=str(tmp_path / "retrain_data"),
        retrain_data_uri=str(tmp_path / "retrain_data"),
        outcome_path=str(tmp_path / "outcome"),
    )
    assert result.action == "none" and result.reason.startswith("no retrain: drift")
    outcome = json.loads((tmp_path / "outcome").read_text())
    assert outcome["action"] == "none" and outcome["decisions"][0]["action"] == "nothing done"
    assert not list((tmp_path / "retrain_data").iterdir())


def test_a_retrain_without_labels_fails_naming_labels_uri(tmp_path):
    request = RetrainRequest(lineage_uri=str(_record(tmp_path)), mode="local", local_output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="labels_uri: the monitor decided to retrain, but served rows carry no label"):
        core.retrain(
            request,
            decision_path=str(_decision(tmp_path, retrain=True)),
            served_data_path=str(_served(tmp_path)),
            retrain_data_path=str(tmp_path / "retrain_data"),
            retrain_data_uri=str(tmp_path / "retrain_data"),
            outcome_path=str(tmp_path / "outcome"),
        )
    assert not (tmp_path / "outcome").exists()


def test_too_few_labelled_rows_fail_with_the_counts(tmp_path):
    request = RetrainRequest(
        lineage_uri=str(_record(tmp_path)), labels_uri=str(_labels(tmp_path, skip=100)), min_labelled_rows=100
    )
    with pytest.raises(DataError, match="50 of the window's 150 served rows have a label, fewer than min_labelled"):
        core.build_training_data(request, lineage.read(request.lineage_uri), str(_served(tmp_path)), str(tmp_path))


def test_training_data_is_the_labelled_rows_or_the_training_split_plus_them(tmp_path):
    record = lineage.read(_record(tmp_path))
    alone = RetrainRequest(lineage_uri="l.json", labels_uri=str(_labels(tmp_path, skip=10)))
    counts, decisions = core.build_training_data(alone, record, str(_served(tmp_path)), str(tmp_path / "a"))
    frame = pd.read_parquet(tmp_path / "a" / core.DATA_FILE)
    assert counts == {"served": 150, "labelled": 140, "unlabelled": 10, "training": 0, "total": 140}
    assert list(frame.columns) == ["age", "plan", "churned"], "collector columns are not features"
    assert decisions[0].action == "unlabelled rows left out"
    both = RetrainRequest(lineage_uri="l.json", labels_uri=alone.labels_uri, include_training_data=True)
    counts, _ = core.build_training_data(both, record, str(_served(tmp_path)), str(tmp_path / "b"))
    assert counts["training"] == 3 and counts["total"] == 143
    assert len(pd.read_parquet(tmp_path / "b" / core.DATA_FILE)) == 143


SUBMIT = """
import json, sys
from kfp_tabular.components.monitoring.retrain import core
from kfp_tabular.components.monitoring.retrain.request import RetrainRequest
args = json.loads(sys.argv[1])
request = RetrainRequest(**args["request"])
result = core.retrain(request, **args["paths"], run_name="retrain-test")
print(json.dumps(result.as_dict()))
"""


def test_on_a_cluster_the_training_pipeline_is_submitted_with_the_new_data_and_the_deployed_model_as_baseline(
    tmp_path,
):
    """From an interpreter set up like a KFP task's (``_KFP_RUNTIME=true``, KFP_POD_NAME), to the API stand-in."""
    with FakeKfpApi() as api:
        arguments = {
            "request": {
                "lineage_uri": str(_record(tmp_path)),
                "labels_uri": str(_labels(tmp_path)),
                "kfp_host": api.host,
                "training_parameters": {"isvc_name": "churn", "deploy_action": "apply", "rollout_strategy": "manual"},
            },
            "paths": {
                "decision_path": str(_decision(tmp_path, retrain=True)),
                "served_data_path": str(_served(tmp_path)),
                "retrain_data_path": str(tmp_path / "retrain_data"),
                "retrain_data_uri": "minio://mlpipeline/v2/artifacts/monitor/retrain_data",
                "outcome_path": str(tmp_path / "outcome"),
            },
        }
        env = {**os.environ, "_KFP_RUNTIME": "true", "HOME": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, "-c", SUBMIT, json.dumps(arguments)], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        runs = api.bodies("POST", "/runs")
    assert result["action"] == "submitted" and result["mode"] == "cluster"
    assert result["decisions"][0]["reason"] == f"kfp_host is {api.host}"
    assert len(runs) == 1
    body = runs[0]
    assert body["display_name"] == "retrain-test" and result["run"]["id"]
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "kfp-tabular-train-and-deploy"
    params = body["runtime_config"]["parameters"]
    assert params == {
        "data_uri": "s3://mlpipeline/v2/artifacts/monitor/retrain_data/data.parquet",
        "label_column": "churned",
        "baseline_model_uri": "minio://mlpipeline/v2/artifacts/train/model",
        "baseline_statistics_uri": "minio://mlpipeline/v2/artifacts/validate/train_statistics",
        "drift_gate": "none",
        "isvc_name": "churn",
        "deploy_action": "apply",
        "rollout_strategy": "manual",
    }
    assert len(pd.read_parquet(tmp_path / "retrain_data" / core.DATA_FILE)) == 150


def test_training_parameters_the_training_pipeline_refuses_fail_before_anything_is_submitted(tmp_path):
    with FakeKfpApi() as api:
        request = RetrainRequest(
            lineage_uri=str(_record(tmp_path)),
            labels_uri=str(_labels(tmp_path)),
            kfp_host=api.host,
            training_parameters={"estimator": "magic"},
        )
        with pytest.raises(ConfigError, match="training_parameters: the training pipeline refuses them: estimator"):
            core.retrain(
                request,
                decision_path=str(_decision(tmp_path, retrain=True)),
                served_data_path=str(_served(tmp_path)),
                retrain_data_path=str(tmp_path / "retrain_data"),
                retrain_data_uri=str(tmp_path / "retrain_data"),
                outcome_path=str(tmp_path / "outcome"),
            )
        assert api.requests == []


def test_a_training_package_of_your_own_is_submitted_with_its_storage_wiring(tmp_path, monkeypatch):
    from kfp_tabular.pipelines.cli import compile_pipeline

    monkeypatch.setenv("HOME", str(tmp_path))
    package = compile_pipeline(tmp_path / "training-s3.yaml", storage_secret="kfp-tabular-storage")
    with FakeKfpApi() as api:
        request = RetrainRequest(
            lineage_uri=str(_record(tmp_path)),
            labels_uri=str(_labels(tmp_path)),
            kfp_host=api.host,
            training_package=str(package),
        )
        result = core.retrain(
            request,
            decision_path=str(_decision(tmp_path, retrain=True)),
            served_data_path=str(_served(tmp_path)),
            retrain_data_path=str(tmp_path / "retrain_data"),
            retrain_data_uri="minio://mlpipeline/v2/artifacts/retrain_data",
            outcome_path=str(tmp_path / "outcome"),
        )
        (body,) = api.bodies("POST", "/runs")
    assert result.action == "submitted"
    executors = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-ingest"]["secretAsEnv"][0]["secretName"] == "kfp-tabular-storage"
    with pytest.raises(ConfigError, match="training_package: .*absent.yaml is not a file"):
        core.training_package(RetrainRequest(lineage_uri="l", training_package=str(tmp_path / "absent.yaml")), "")
