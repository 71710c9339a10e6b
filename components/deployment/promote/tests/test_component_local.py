"""Run promote_model for real under kfp.local's SubprocessRunner against the API server (and its raw function)."""

import json
from pathlib import Path

import pytest
from kfp.dsl import Artifact

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.deployment.deploy import core
from kfp_tabular.components.deployment.kserve import client as kclient
from kfp_tabular.components.deployment.promote.component import promote_model
from tests.support.fake_kserve import FakeKServeController

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_invalid_name_fails_before_touching_a_cluster(local_runner):
    with pytest.raises(RuntimeError):
        promote_model(isvc_name="Not_Valid", namespace="kfp-tabular", kubeconfig_path="/nonexistent")


def test_raw_function_reports_a_missing_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    status = Artifact(uri=str(tmp_path / "status"))
    with pytest.raises(ConfigError, match="kubeconfig_path: .*missing.yaml does not exist"):
        promote_model.python_func(
            isvc_name="churn", namespace="kfp-tabular", status=status, kubeconfig_path=str(tmp_path / "missing.yaml")
        )
    assert not Path(status.path).exists(), "no status written for a call that did nothing"


@pytest.mark.cluster
def test_promote_component_moves_all_traffic(local_runner, kube_apiserver):
    namespace = kube_apiserver.create_namespace("promote")
    kubeconfig = str(kube_apiserver.kubeconfig_path())
    with kube_apiserver.api_client() as api, FakeKServeController(api, [namespace]) as controller:
        core.deploy("churn", namespace, "s3://models/a", api_client=api, timeout_seconds=30)
        core.deploy("churn", namespace, "s3://models/b", canary_traffic_percent=10, api_client=api, timeout_seconds=30)

        task = promote_model(isvc_name="churn", namespace=namespace, kubeconfig_path=kubeconfig, timeout_seconds=60)
        status = json.loads(Path(task.outputs["status"].path).read_text())
        assert status["action"] == "promoted" and status["ready"] is True
        assert status["storage_uri"] == "s3://models/b"
        assert status["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": "churn-predictor-00002"}]
        assert task.outputs["status"].metadata["action"] == "promoted"
        obj = kclient.get(api, namespace, "churn")
        assert "canaryTrafficPercent" not in obj["spec"]["predictor"]

        again = promote_model(isvc_name="churn", namespace=namespace, kubeconfig_path=kubeconfig, timeout_seconds=60)
        assert json.loads(Path(again.outputs["status"].path).read_text())["action"] == "unchanged"
        with pytest.raises(RuntimeError):  # no such InferenceService: the task fails
            promote_model(isvc_name="absent", namespace=namespace, kubeconfig_path=kubeconfig, timeout_seconds=5)
    assert not controller.errors
