"""The retrain trigger under kfp.local (SubprocessRunner): no retrain does nothing; retrain submits to the KFP stand-in.

tests/support/fake_kfp_api.py is a STAND-IN of the KFP API server's v2beta1 REST endpoints (the real one cannot run
here); the component's task runs as KFP runs it (kfp's executor, ``_KFP_RUNTIME`` set).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp import dsl

from kfp_tabular.components.monitoring.retrain.component import retrain_trigger
from kfp_tabular.components.monitoring.retrain.tests.test_core import _decision, _labels, _record, _served
from tests.support.fake_kfp_api import FakeKfpApi

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def _pipeline(decision: Path, served: Path, **kwargs):
    @dsl.pipeline(name="retrain-trigger-test")
    def pipe():
        decision_in = dsl.importer(artifact_uri=str(decision), artifact_class=dsl.Artifact, reimport=True)
        served_in = dsl.importer(artifact_uri=str(served), artifact_class=dsl.Dataset, reimport=True)
        retrain_trigger(decision=decision_in.output, served_data=served_in.output, **kwargs)

    return pipe


def _outcome(root: Path) -> dict:
    (path,) = list(root.rglob("retrain-trigger/outcome"))
    return json.loads(path.read_text())


def test_a_no_retrain_decision_does_nothing(local_runner, tmp_path):
    _pipeline(_decision(tmp_path, retrain=False), _served(tmp_path), lineage_uri=str(tmp_path / "absent.json"))()
    outcome = _outcome(local_runner)
    assert outcome["action"] == "none" and outcome["reason"].startswith("no retrain")


def test_a_retrain_decision_submits_the_training_pipeline_from_inside_the_task(local_runner, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with FakeKfpApi() as api:
        _pipeline(
            _decision(tmp_path, retrain=True),
            _served(tmp_path),
            lineage_uri=str(_record(tmp_path)),
            labels_uri=str(_labels(tmp_path)),
            kfp_host=api.host,
        )()
        (body,) = api.bodies("POST", "/runs")
    outcome = _outcome(local_runner)
    assert outcome["action"] == "submitted" and outcome["run"]["id"] == next(iter(api.runs))
    params = body["runtime_config"]["parameters"]
    assert params["data_uri"].endswith("retrain-trigger/retrain_data/data.parquet")
    assert params["baseline_model_uri"] == "minio://mlpipeline/v2/artifacts/train/model"
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "kfp-tabular-train-and-deploy"
