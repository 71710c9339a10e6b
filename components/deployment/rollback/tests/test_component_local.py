"""Run rollback_model for real under kfp.local's SubprocessRunner against the API server (and its raw function)."""

import json
from pathlib import Path

import pytest
from kfp.dsl import Artifact

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.deployment.deploy import core
from kfp_tabular.components.deployment.kserve import client as kclient
from kfp_tabular.components.deployment.rollback.component import rollback_model
from tests.support.fake_kserve import FakeKServeController

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def test_invalid_namespace_fails_before_touching_a_cluster(local_runner):
    with pytest.raises(RuntimeError):
        rollback_model(isvc_name="churn", namespace="Bad Namespace", kubeconfig_path="/nonexistent")


def test_raw_function_rejects_bad_timeout(tmp_path):
    status = Artifact(uri=str(tmp_path / "status"))
    with pytest.raises(ConfigError, match="timeout_seconds"):
        rollback_model.python_func(isvc_name="churn", namespace="ml", status=status, timeout_seconds=0)


@pytest.mark.cluster
def test_rollback_component_returns_to_the_previous_model(local_runner, kube_apiserver):
    namespace = kube_apiserver.create_namespace("rollback")
    kubeconfig = str(kube_apiserver.kubeconfig_path())
    with kube_apiserver.api_client() as api, FakeKServeController(api, [namespace]) as controller:
        core.deploy("churn", namespace, "s3://models/a", api_client=api, timeout_seconds=30)
        with pytest.raises(RuntimeError):  # nothing to roll back to yet: the task fails and changes nothing
            rollback_model(isvc_name="churn", namespace=namespace, kubeconfig_path=kubeconfig, timeout_seconds=5)
        assert kclient.get(api, namespace, "churn")["metadata"]["generation"] == 1
        core.deploy("churn", namespace, "s3://models/b", canary_traffic_percent=10, api_client=api, timeout_seconds=30)

        task = rollback_model(isvc_name="churn", namespace=namespace, kubeconfig_path=kubeconfig, timeout_seconds=60)
        status = json.loads(Path(task.outputs["status"].path).read_text())
        assert status["action"] == "rolled-back" and status["ready"] is True
        assert status["storage_uri"] == "s3://models/a"
        served = {t["revisionName"]: t["percent"] for t in status["traffic"]}
        assert served == {"churn-predictor-00003": 0, "churn-predictor-00001": 100}
        obj = kclient.get(api, namespace, "churn")
        assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
        assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://models/a"

        again = rollback_model(isvc_name="churn", namespace=namespace, kubeconfig_path=kubeconfig, timeout_seconds=60)
        assert json.loads(Path(again.outputs["status"].path).read_text())["action"] == "unchanged"
    assert not controller.errors
