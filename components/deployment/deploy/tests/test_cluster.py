"""deploy/promote/rollback against a real kube-apiserver 1.20 with KServe's CRDs and a fake KServe controller.

The API server validates and prunes every write against KServe's real InferenceService schema; the
FakeKServeController writes ``status`` the way KServe does (revisions, traffic split, rolled-out revisions).
Each test has its own namespace (no controller-manager: namespaces never finish deleting).
"""

from __future__ import annotations

import time

import pytest

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.deploy import core
from kfp_tabular.components.deployment.deploy.tests.fake_kserve import FakeKServeController

pytestmark = pytest.mark.cluster

A, B, C = "s3://models/churn/a", "s3://models/churn/b", "s3://models/churn/c"


@pytest.fixture
def namespace(kube_apiserver):
    return kube_apiserver.create_namespace("deploy")


@pytest.fixture
def api(kube_apiserver):
    with kube_apiserver.api_client() as client:
        yield client


@pytest.fixture
def controller(kube_apiserver, namespace):
    with kube_apiserver.api_client() as client:
        ctl = FakeKServeController(client, [namespace])
        with ctl:
            yield ctl
    assert not ctl.errors, ctl.errors


def stored(api, namespace, name="churn"):
    from kubernetes import client

    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name
    )


def traffic_of(status: core.DeployStatus) -> dict:
    return {(t["revisionName"], t["latestRevision"]): t["percent"] for t in status.traffic}


# ---------------------------------------------------------------------------------------------------------
# The rendered manifest against the real CRD
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_rendered_manifest_is_accepted_unpruned_by_the_real_crd(api, namespace, mode):
    from kubernetes import client

    obj = core.render_inference_service(
        "churn-render",
        namespace,
        "pvc://model-store/churn/v1",
        canary_traffic_percent=10 if mode == "Knative" else None,
        deployment_mode=mode,
        runtime="kfp-tabular-sklearn",
        service_account_name="kserve-storage",
        labels={"team": "ds"},
    )
    created = client.CustomObjectsApi(api).create_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", namespace, "inferenceservices", obj, dry_run="All"
    )
    assert created["spec"] == obj["spec"], "the server pruned or changed rendered fields"
    assert created["metadata"]["annotations"] == obj["metadata"]["annotations"]
    # Nothing stored by a dry run.
    with pytest.raises(client.ApiException) as info:
        stored(api, namespace, "churn-render")
    assert info.value.status == 404


def test_server_rejects_what_render_refuses(api, namespace):
    """The negative control: the real schema rejects a string canary percent, as render_inference_service does."""
    from kubernetes import client

    obj = core.render_inference_service("churn-bad", namespace, "s3://m/a")
    obj["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    with pytest.raises(client.ApiException) as info:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", obj, dry_run="All"
        )
    assert info.value.status == 422
    with pytest.raises(ConfigError):
        core.render_inference_service("churn-bad", namespace, "s3://m/a", canary_traffic_percent="ten")


# ---------------------------------------------------------------------------------------------------------
# Knative mode
# ---------------------------------------------------------------------------------------------------------


def test_first_deploy_takes_all_traffic(api, namespace, controller):
    status = core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    assert status.action == "created"
    assert status.ready
    assert status.url == f"http://churn.{namespace}.example.com"
    assert status.storage_uri == A
    assert status.canary_traffic_percent is None
    assert traffic_of(status) == {("churn-predictor-00001", True): 100}
    obj = stored(api, namespace)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/rollout-state"] == "stable"
    assert obj["metadata"]["generation"] == 1


def test_same_model_twice_changes_nothing(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    before = stored(api, namespace)
    again = core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    after = stored(api, namespace)
    assert again.action == "unchanged"
    assert again.ready
    assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1
    assert after["spec"] == before["spec"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]


def test_canary_splits_traffic_between_latest_and_previous(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    status = core.deploy("churn", namespace, B, canary_traffic_percent=20, api_client=api, timeout_seconds=30)
    assert status.action == "canary"
    assert status.ready
    assert traffic_of(status) == {("churn-predictor-00002", True): 20, ("churn-predictor-00001", False): 80}
    assert status.latest_rolledout_revision == "churn-predictor-00001"
    assert {t["tag"] for t in status.traffic} == {"latest", "prev"}
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert obj["spec"]["predictor"]["model"]["storageUri"] == B
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/previous-storage-uri"] == A
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/rollout-state"] == "canary"
    assert obj["metadata"]["generation"] == 2
    # The same canary again is idempotent too.
    again = core.deploy("churn", namespace, B, canary_traffic_percent=20, api_client=api, timeout_seconds=30)
    assert again.action == "unchanged"
    assert stored(api, namespace)["metadata"]["generation"] == 2


def test_promote_moves_all_traffic_to_the_canary(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    status = core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    assert status.action == "promoted"
    assert traffic_of(status) == {("churn-predictor-00002", True): 100}
    assert status.latest_rolledout_revision == "churn-predictor-00002"
    assert status.previous_rolledout_revision == "churn-predictor-00001"
    obj = stored(api, namespace)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"], "the merge patch must remove the field"
    assert obj["spec"]["predictor"]["model"]["storageUri"] == B
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/rollout-state"] == "stable"
    generation = obj["metadata"]["generation"]
    assert core.promote("churn", namespace, api_client=api, timeout_seconds=30).action == "unchanged"
    assert stored(api, namespace)["metadata"]["generation"] == generation


def test_rollback_during_canary_pins_previous_revision(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    status = core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
    assert status.action == "rolled-back"
    assert status.storage_uri == A
    # The new revision serves A as well but gets nothing; the rolled-out revision of A keeps 100%.
    assert traffic_of(status) == {("churn-predictor-00003", True): 0, ("churn-predictor-00001", False): 100}
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/rolled-back-from"] == B
    assert "kfp-tabular.dev/previous-storage-uri" not in obj["metadata"]["annotations"]
    assert core.rollback("churn", namespace, api_client=api, timeout_seconds=30).action == "unchanged"
    with pytest.raises(ConfigError, match="rolled back"):
        core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    # A new model after a rollback canaries against the model that was restored.
    status = core.deploy("churn", namespace, C, canary_traffic_percent=30, api_client=api, timeout_seconds=30)
    assert traffic_of(status) == {("churn-predictor-00004", True): 30, ("churn-predictor-00001", False): 70}
    assert stored(api, namespace)["metadata"]["annotations"]["kfp-tabular.dev/previous-storage-uri"] == A


def test_rollback_after_promote_reverts_the_model(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    status = core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
    # A pin would keep the promoted revision (B) serving; the revert gives A a new revision with 100%.
    assert traffic_of(status) == {("churn-predictor-00003", True): 100}
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]


def test_consecutive_canaries_keep_the_rolled_out_model_as_previous(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    status = core.deploy("churn", namespace, C, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    # B never rolled out: C's canary splits against A, and a rollback returns to A, not B.
    assert traffic_of(status) == {("churn-predictor-00003", True): 10, ("churn-predictor-00001", False): 90}
    assert stored(api, namespace)["metadata"]["annotations"]["kfp-tabular.dev/previous-storage-uri"] == A
    assert core.rollback("churn", namespace, api_client=api, timeout_seconds=30).storage_uri == A


def test_full_rollout_without_canary(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    status = core.deploy("churn", namespace, B, canary_traffic_percent=None, api_client=api, timeout_seconds=30)
    assert status.action == "rolled-out"
    assert traffic_of(status) == {("churn-predictor-00002", True): 100}
    assert stored(api, namespace)["metadata"]["annotations"]["kfp-tabular.dev/previous-storage-uri"] == A


def test_failed_canary_rolls_back_and_raises(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    controller.fail_uris.add(B)
    started = time.monotonic()
    with pytest.raises(DeployError) as info:
        core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=60)
    assert time.monotonic() - started < 30, "a reported failure must not wait for the timeout"
    message = str(info.value)
    assert "RevisionFailed" in message and "churn-predictor-00002" in message
    assert "10% of the traffic on the latest revision" in message, "the message says what was awaited"
    assert f"model reverted to {A}" in message
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A, "never left pointing at the failed model"
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/rolled-back-from"] == B
    status = core.get_status("churn", namespace, api_client=api)
    assert status.ready
    assert traffic_of(status) == {("churn-predictor-00003", True): 100}


def test_timeout_rolls_back_and_raises(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    controller.stuck_uris.add(B)
    started = time.monotonic()
    with pytest.raises(DeployError) as info:
        core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=2)
    assert time.monotonic() - started >= 2
    message = str(info.value)
    assert "timed out after 2s" in message
    assert "last status: Ready=Unknown" in message
    assert "Rolled back" in message
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A
    assert core.get_status("churn", namespace, api_client=api).ready


def test_first_deploy_failure_says_there_is_nothing_to_roll_back_to(api, namespace, controller):
    controller.fail_uris.add(A)
    with pytest.raises(DeployError, match="no previous model to roll back to"):
        core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    with pytest.raises(ConfigError, match="no kfp-tabular.dev/previous-storage-uri"):
        core.rollback("churn", namespace, api_client=api, timeout_seconds=5)


def test_status_and_errors_for_missing_or_mismatched_services(api, namespace, controller):
    with pytest.raises(DeployError, match="not found"):
        core.get_status("absent", namespace, api_client=api)
    with pytest.raises(DeployError, match="not found"):
        core.promote("absent", namespace, api_client=api)
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    with pytest.raises(ConfigError, match="runs in Knative mode, asked for Standard"):
        core.deploy("churn", namespace, B, deployment_mode="Standard", api_client=api, timeout_seconds=30)
    status = core.get_status("churn", namespace, api_client=api)
    assert status.as_dict()["storage_uri"] == A and status.action == "status"


# ---------------------------------------------------------------------------------------------------------
# Standard mode (spec.canary[], KServe 0.20)
# ---------------------------------------------------------------------------------------------------------


def test_standard_mode_canary_promote_and_rollback(api, namespace, controller):
    first = core.deploy("churn", namespace, A, deployment_mode="Standard", api_client=api, timeout_seconds=30)
    assert first.action == "created" and first.deployment_mode == "Standard"
    status = core.deploy(
        "churn",
        namespace,
        B,
        canary_traffic_percent=25,
        deployment_mode="RawDeployment",
        api_client=api,
        timeout_seconds=30,
    )
    assert status.action == "canary"
    canary_name = core._canary_name(B)
    assert status.canaries == [{"name": canary_name, "ready": True, "trafficPercent": 25}]
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A, "the stable predictor is untouched"
    assert obj["spec"]["canary"][0]["trafficPercent"] == 25
    assert obj["spec"]["canary"][0]["predictor"]["name"] == canary_name
    assert obj["spec"]["canary"][0]["predictor"]["model"]["storageUri"] == B
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]

    promoted = core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    assert promoted.action == "promoted" and promoted.canaries == []
    obj = stored(api, namespace)
    assert "canary" not in obj["spec"]
    assert obj["spec"]["predictor"]["name"] == canary_name, "promotion retargets the stable predictor"
    assert obj["spec"]["predictor"]["model"]["storageUri"] == B

    rolled = core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
    assert rolled.storage_uri == A
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A
    assert "name" not in obj["spec"]["predictor"]


def test_standard_mode_stuck_canary_is_removed(api, namespace, controller):
    core.deploy("churn", namespace, A, deployment_mode="Standard", api_client=api, timeout_seconds=30)
    controller.stuck_uris.add(B)
    with pytest.raises(DeployError, match="timed out .* canary 'm[0-9a-f]{10}' ready at 10%"):
        core.deploy(
            "churn",
            namespace,
            B,
            canary_traffic_percent=10,
            deployment_mode="Standard",
            api_client=api,
            timeout_seconds=2,
        )
    obj = stored(api, namespace)
    assert "canary" not in obj["spec"]
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A


def test_standard_canary_support_detection(kube_apiserver, api, namespace):
    assert core.standard_canary_supported(api, namespace) is True  # from the CRD (admin may read it)
    from kubernetes import client

    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(core.CRD_NAME, _preload_content=False)
    import json

    crd_doc = json.loads(crd.data)
    assert core.crd_has_canary(crd_doc)
    del crd_doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["canary"]
    assert not core.crd_has_canary(crd_doc), "a KServe < 0.20 CRD has no spec.canary"


def test_standard_canary_refused_when_the_crd_lacks_it(api, namespace, controller, monkeypatch):
    core.deploy("churn", namespace, A, deployment_mode="Standard", api_client=api, timeout_seconds=30)
    monkeypatch.setattr(core, "standard_canary_supported", lambda api_client, ns: False)
    with pytest.raises(ConfigError, match="Standard mode has no canary .* #5335/#4074"):
        core.deploy("churn", namespace, B, canary_traffic_percent=10, deployment_mode="Standard", api_client=api)
    assert stored(api, namespace)["metadata"]["generation"] == 1, "nothing written"
    # A full rollout needs no canary support.
    status = core.deploy(
        "churn",
        namespace,
        B,
        canary_traffic_percent=None,
        deployment_mode="Standard",
        api_client=api,
        timeout_seconds=30,
    )
    assert status.action == "rolled-out" and status.storage_uri == B


def test_deploy_action_failure_writes_status_and_no_manifest(api, namespace, controller, tmp_path):
    import json

    blessing = tmp_path / "blessing.json"
    blessing.write_text(json.dumps({"blessed": True, "reasons": ["good"]}))
    common = {
        "action": "apply",
        "blessing_path": str(blessing),
        "model_uri": "s3://unused/model",
        "isvc_name": "churn",
        "namespace": namespace,
        "api_client": api,
        "timeout_seconds": 30,
    }
    first = core.deploy_action(
        manifest_path=str(tmp_path / "m1.yaml"), status_path=str(tmp_path / "s1.json"), storage_uri=A, **common
    )
    assert first["deployed"] is True and first["rollout"] == "created"
    controller.fail_uris.add(B)
    with pytest.raises(DeployError, match="Rolled back"):
        core.deploy_action(
            manifest_path=str(tmp_path / "m2.yaml"), status_path=str(tmp_path / "s2.json"), storage_uri=B, **common
        )
    status = json.loads((tmp_path / "s2.json").read_text())
    assert status["deployed"] is False and "Rolled back" in status["reason"] and status["storage_uri"] == B
    assert not (tmp_path / "m2.yaml").exists()
    assert stored(api, namespace)["spec"]["predictor"]["model"]["storageUri"] == A


def test_unspecified_runtime_and_service_account_are_kept(api, namespace, controller):
    core.deploy(
        "churn",
        namespace,
        A,
        api_client=api,
        timeout_seconds=30,
        runtime="kfp-tabular-sklearn",
        service_account_name="kserve-storage",
    )
    assert core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30).action == "unchanged"
    core.deploy("churn", namespace, B, api_client=api, timeout_seconds=30)
    predictor = stored(api, namespace)["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "kserve-storage"
    assert predictor["model"]["runtime"] == "kfp-tabular-sklearn"
    assert predictor["model"]["storageUri"] == B
