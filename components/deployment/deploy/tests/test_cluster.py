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
from kfp_tabular.components.deployment.deploy.request import DeployRequest
from kfp_tabular.components.deployment.kserve import client as kclient
from kfp_tabular.components.deployment.kserve import isvc, plans
from kfp_tabular.components.deployment.kserve import manifest as kmanifest
from kfp_tabular.components.deployment.kserve import status as kstatus
from kfp_tabular.components.deployment.promote import core as promote_core
from kfp_tabular.components.deployment.rollback import core as rollback_core
from tests.support.fake_kserve import FakeKServeController
from tests.support.model_files import make_model_dir, write_blessing

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


def traffic_of(status: kstatus.DeployStatus) -> dict:
    return {(t["revisionName"], t["latestRevision"]): t["percent"] for t in status.traffic}


# ---------------------------------------------------------------------------------------------------------
# The rendered manifest against the real CRD
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_rendered_manifest_is_accepted_unpruned_by_the_real_crd(api, namespace, mode):
    from kubernetes import client

    obj = kmanifest.render_inference_service(
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

    obj = kmanifest.render_inference_service("churn-bad", namespace, "s3://m/a")
    obj["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    with pytest.raises(client.ApiException) as info:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", obj, dry_run="All"
        )
    assert info.value.status == 422
    with pytest.raises(ConfigError):
        kmanifest.render_inference_service("churn-bad", namespace, "s3://m/a", canary_traffic_percent="ten")


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
    status = promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    assert status.action == "promoted"
    assert traffic_of(status) == {("churn-predictor-00002", True): 100}
    assert status.latest_rolledout_revision == "churn-predictor-00002"
    assert status.previous_rolledout_revision == "churn-predictor-00001"
    obj = stored(api, namespace)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"], "the merge patch must remove the field"
    assert obj["spec"]["predictor"]["model"]["storageUri"] == B
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/rollout-state"] == "stable"
    generation = obj["metadata"]["generation"]
    assert promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30).action == "unchanged"
    assert stored(api, namespace)["metadata"]["generation"] == generation


def test_rollback_during_canary_pins_previous_revision(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    status = rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
    assert status.action == "rolled-back"
    assert status.storage_uri == A
    # The new revision serves A as well but gets nothing; the rolled-out revision of A keeps 100%.
    assert traffic_of(status) == {("churn-predictor-00003", True): 0, ("churn-predictor-00001", False): 100}
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/rolled-back-from"] == B
    assert "kfp-tabular.dev/previous-storage-uri" not in obj["metadata"]["annotations"]
    assert rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30).action == "unchanged"
    with pytest.raises(ConfigError, match="rolled back"):
        promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    # A new model after a rollback canaries against the model that was restored.
    status = core.deploy("churn", namespace, C, canary_traffic_percent=30, api_client=api, timeout_seconds=30)
    assert traffic_of(status) == {("churn-predictor-00004", True): 30, ("churn-predictor-00001", False): 70}
    assert stored(api, namespace)["metadata"]["annotations"]["kfp-tabular.dev/previous-storage-uri"] == A


def test_rollback_after_promote_reverts_the_model(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    status = rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
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
    assert rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30).storage_uri == A


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
    status = kstatus.get_status("churn", namespace, api_client=api)
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
    assert kstatus.get_status("churn", namespace, api_client=api).ready


def test_first_deploy_failure_says_there_is_nothing_to_roll_back_to(api, namespace, controller):
    controller.fail_uris.add(A)
    with pytest.raises(DeployError, match="no previous model to roll back to"):
        core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    with pytest.raises(ConfigError, match="no kfp-tabular.dev/previous-storage-uri"):
        rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=5)


def test_status_and_errors_for_missing_or_mismatched_services(api, namespace, controller):
    with pytest.raises(DeployError, match="not found"):
        kstatus.get_status("absent", namespace, api_client=api)
    with pytest.raises(DeployError, match="not found"):
        promote_core.promote("absent", namespace, api_client=api)
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    with pytest.raises(ConfigError, match="runs in Knative mode, asked for Standard"):
        core.deploy("churn", namespace, B, deployment_mode="Standard", api_client=api, timeout_seconds=30)
    status = kstatus.get_status("churn", namespace, api_client=api)
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
    canary_name = plans.canary_name(B)
    assert [{k: c[k] for k in ("name", "ready", "trafficPercent")} for c in status.canaries] == [
        {"name": canary_name, "ready": True, "trafficPercent": 25}
    ]
    assert status.canaries[0]["modelStatus"]["transitionStatus"] == "UpToDate"
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == A, "the stable predictor is untouched"
    assert obj["spec"]["canary"][0]["trafficPercent"] == 25
    assert obj["spec"]["canary"][0]["predictor"]["name"] == canary_name
    assert obj["spec"]["canary"][0]["predictor"]["model"]["storageUri"] == B
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]

    promoted = promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    assert promoted.action == "promoted" and promoted.canaries == []
    obj = stored(api, namespace)
    assert "canary" not in obj["spec"]
    assert obj["spec"]["predictor"]["name"] == canary_name, "promotion retargets the stable predictor"
    assert obj["spec"]["predictor"]["model"]["storageUri"] == B

    rolled = rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
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
    assert kclient.standard_canary_supported(api, namespace) is True  # from the CRD (admin may read it)
    from kubernetes import client

    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(isvc.CRD_NAME, _preload_content=False)
    import json

    crd_doc = json.loads(crd.data)
    assert isvc.crd_has_canary(crd_doc)
    del crd_doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["canary"]
    assert not isvc.crd_has_canary(crd_doc), "a KServe < 0.20 CRD has no spec.canary"


def test_standard_canary_refused_when_the_crd_lacks_it(api, namespace, controller, monkeypatch):
    core.deploy("churn", namespace, A, deployment_mode="Standard", api_client=api, timeout_seconds=30)
    monkeypatch.setattr(plans, "standard_canary_supported", lambda api_client, ns: False)
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

    model = make_model_dir(tmp_path / "model")
    common = {
        "blessing_path": str(write_blessing(tmp_path / "blessing.json", model)),
        "model_uri": "s3://unused/model",
        "model_path": str(model),
        "api_client": api,
    }

    def request(storage_uri: str) -> DeployRequest:
        return DeployRequest(
            "churn", namespace, "apply", storage_uri=storage_uri, timeout_seconds=30, rollout_strategy="manual"
        )

    first = core.deploy_action(
        request(A), manifest_path=str(tmp_path / "m1.yaml"), status_path=str(tmp_path / "s1.json"), **common
    )
    assert first["deployed"] is True and first["rollout"] == "created"
    controller.fail_uris.add(B)
    with pytest.raises(DeployError, match="Rolled back"):
        core.deploy_action(
            request(B), manifest_path=str(tmp_path / "m2.yaml"), status_path=str(tmp_path / "s2.json"), **common
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


# ---------------------------------------------------------------------------------------------------------
# Review fixes: stale status, whole-predictor rollback, percent changes, promote health, Standard fast
# failure, optimistic concurrency
# ---------------------------------------------------------------------------------------------------------


def admin_patch(api, namespace, body, name="churn"):
    """A merge patch by someone else (kubectl, another pipeline run), without our resourceVersion guard."""
    return api.call_api(
        f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}",
        "PATCH",
        {},
        [],
        {"Accept": "application/json", "Content-Type": "application/merge-patch+json"},
        body=body,
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )


def wait_observed(api, namespace, name="churn", timeout=15, until=lambda obj: True):
    """Wait until the controller has observed the current generation (and ``until`` holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = stored(api, namespace, name)
        observed = (obj.get("status") or {}).get("observedGeneration", 0)
        if observed >= obj["metadata"]["generation"] and until(obj):
            return obj
        time.sleep(0.05)
    raise AssertionError(f"controller did not observe {namespace}/{name}: {obj.get('status')}")


def test_good_deploy_right_after_a_failed_one_is_not_failed_by_stale_status(api, namespace, controller):
    """observedGeneration moves before the new revision exists; the failed revision is not the new one."""
    controller.fail_uris.add(A)
    with pytest.raises(DeployError, match="no previous model to roll back to"):
        core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    controller.lag = 1.0
    status = core.deploy("churn", namespace, B, api_client=api, timeout_seconds=30)
    assert status.action == "rolled-out" and status.ready
    assert traffic_of(status) == {("churn-predictor-00002", True): 100}
    assert stored(api, namespace)["spec"]["predictor"]["model"]["storageUri"] == B


def test_automatic_rollback_completes_despite_stale_failed_status(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    controller.fail_uris.add(B)
    controller.lag = 1.0
    with pytest.raises(DeployError) as info:
        core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    message = str(info.value)
    assert "churn-predictor-00002" in message and "RevisionFailed" in message
    assert f"Rolled back: model reverted to {A}" in message, message
    assert "did not complete" not in message
    status = kstatus.get_status("churn", namespace, api_client=api)
    assert status.ready and status.storage_uri == A
    assert traffic_of(status) == {("churn-predictor-00003", True): 100}


def test_failed_canary_rollback_restores_the_whole_previous_predictor(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30, service_account_name="sa-a")
    predictor_a = stored(api, namespace)["spec"]["predictor"]
    controller.fail_uris.add(B)
    with pytest.raises(DeployError, match="Rolled back"):
        core.deploy(
            "churn",
            namespace,
            B,
            canary_traffic_percent=10,
            api_client=api,
            timeout_seconds=30,
            service_account_name="sa-b",
            runtime="other-runtime",
            resources={"limits": {"cpu": "3", "memory": "9Gi"}},
        )
    assert stored(api, namespace)["spec"]["predictor"] == predictor_a


def test_manual_rollback_restores_the_whole_previous_predictor(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30, service_account_name="sa-a")
    predictor_a = stored(api, namespace)["spec"]["predictor"]
    changed = {"service_account_name": "sa-b", "runtime": "other-runtime", "resources": {"limits": {"cpu": "3"}}}
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30, **changed)
    b_model = stored(api, namespace)["spec"]["predictor"]["model"]
    assert b_model["resources"] == {"limits": {"cpu": "3"}}, "the new model's resources replace the old ones"
    # During the canary: everything of A again, traffic pinned on A's revision.
    rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
    assert stored(api, namespace)["spec"]["predictor"] == {**predictor_a, "canaryTrafficPercent": 0}
    # After a promotion: everything of B is replaced by A's predictor, without a pin.
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30, **changed)
    promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
    assert stored(api, namespace)["spec"]["predictor"] == predictor_a


def test_standard_rollback_after_promote_restores_the_whole_previous_predictor(api, namespace, controller):
    kwargs = {"deployment_mode": "Standard", "api_client": api, "timeout_seconds": 30}
    core.deploy("churn", namespace, A, service_account_name="sa-a", **kwargs)
    predictor_a = stored(api, namespace)["spec"]["predictor"]
    core.deploy("churn", namespace, B, service_account_name="sa-b", runtime="other-runtime", **kwargs)
    promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    promoted = stored(api, namespace)["spec"]["predictor"]
    assert promoted["serviceAccountName"] == "sa-b" and promoted["model"]["runtime"] == "other-runtime"
    rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30)
    assert stored(api, namespace)["spec"]["predictor"] == predictor_a


def test_redeploying_the_canary_model_with_another_percent_moves_the_split(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    status = core.deploy("churn", namespace, B, canary_traffic_percent=50, api_client=api, timeout_seconds=30)
    assert status.action == "canary" and status.canary_traffic_percent == 50
    assert traffic_of(status) == {("churn-predictor-00002", True): 50, ("churn-predictor-00001", False): 50}
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 50
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/previous-storage-uri"] == A
    assert len(controller._states[(namespace, "churn")].revisions) == 2, "a percent change makes no new revision"
    again = core.deploy("churn", namespace, B, canary_traffic_percent=50, api_client=api, timeout_seconds=30)
    assert again.action == "unchanged"


def test_redeploying_the_canary_model_at_100_percent_rolls_it_out(api, namespace, controller):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    status = core.deploy("churn", namespace, B, canary_traffic_percent=100, api_client=api, timeout_seconds=30)
    assert status.action == "rolled-out" and status.canary_traffic_percent is None
    assert traffic_of(status) == {("churn-predictor-00002", True): 100}
    assert status.latest_rolledout_revision == "churn-predictor-00002"
    obj = stored(api, namespace)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/rollout-state"] == "stable"
    # The previous model stays recorded: a rollback still returns to A.
    assert rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30).storage_uri == A


def test_standard_redeploy_with_another_percent_moves_the_canary(api, namespace, controller):
    kwargs = {"deployment_mode": "Standard", "api_client": api, "timeout_seconds": 30}
    core.deploy("churn", namespace, A, **kwargs)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, **kwargs)
    status = core.deploy("churn", namespace, B, canary_traffic_percent=50, **kwargs)
    assert status.action == "canary" and status.canary_traffic_percent == 50
    assert [(c["name"], c["trafficPercent"], c["ready"]) for c in status.canaries] == [(plans.canary_name(B), 50, True)]
    assert stored(api, namespace)["spec"]["canary"][0]["trafficPercent"] == 50
    full = core.deploy("churn", namespace, B, canary_traffic_percent=None, **kwargs)
    assert full.action == "rolled-out" and full.canaries == []
    obj = stored(api, namespace)
    assert "canary" not in obj["spec"] and obj["spec"]["predictor"]["model"]["storageUri"] == B


@pytest.mark.parametrize("problem", ["stuck", "failed"])
def test_promote_refuses_a_canary_that_is_not_ready(api, namespace, controller, problem):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    (controller.stuck_uris if problem == "stuck" else controller.fail_uris).add(B)
    # A canary started outside deploy() (kubectl apply -k manifests/overlays/canary) whose revision is bad.
    admin_patch(
        api,
        namespace,
        {
            "metadata": {"annotations": {"kfp-tabular.dev/rollout-state": "canary"}},
            "spec": {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": B}}},
        },
    )
    before = wait_observed(
        api, namespace, until=lambda o: o["status"]["components"]["predictor"]["latestCreatedRevision"].endswith("2")
    )
    with pytest.raises(ConfigError, match="not a ready canary") as info:
        promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    assert "churn-predictor-00002" in str(info.value)
    after = stored(api, namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"], "nothing written"
    assert after["spec"] == before["spec"]


def test_standard_promote_refuses_a_canary_that_is_not_ready(api, namespace, controller):
    core.deploy("churn", namespace, A, deployment_mode="Standard", api_client=api, timeout_seconds=30)
    controller.fail_uris.add(B)
    model = {"name": "kserve-container", **stored(api, namespace)["spec"]["predictor"]["model"], "storageUri": B}
    admin_patch(
        api, namespace, {"spec": {"canary": [{"trafficPercent": 10, "predictor": {"name": "mb", "model": model}}]}}
    )
    before = wait_observed(
        api, namespace, until=lambda o: (o["status"].get("canaryStatuses") or [{}])[0].get("modelStatus")
    )
    with pytest.raises(ConfigError, match="not a ready canary") as info:
        promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30)
    assert "'mb'" in str(info.value)
    after = stored(api, namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"] and after["spec"] == before["spec"]


def test_standard_mode_failed_canary_fails_fast_and_rolls_back(api, namespace, controller):
    kwargs = {"deployment_mode": "Standard", "api_client": api, "timeout_seconds": 60}
    core.deploy("churn", namespace, A, **kwargs)
    controller.fail_uris.add(B)
    started = time.monotonic()
    with pytest.raises(DeployError) as info:
        core.deploy("churn", namespace, B, canary_traffic_percent=10, **kwargs)
    assert time.monotonic() - started < 30, "a reported failure must not wait for the timeout"
    message = str(info.value)
    assert "BlockedByFailedLoad" in message and "ModelLoadFailed" in message and f"model {B} failed to load" in message
    assert f"canary {B} removed" in message
    obj = stored(api, namespace)
    assert "canary" not in obj["spec"] and obj["spec"]["predictor"]["model"]["storageUri"] == A
    assert kstatus.get_status("churn", namespace, api_client=api).ready


def test_standard_mode_failed_full_rollout_fails_fast_and_rolls_back(api, namespace, controller):
    kwargs = {"deployment_mode": "Standard", "api_client": api, "timeout_seconds": 60}
    core.deploy("churn", namespace, A, **kwargs)
    controller.fail_uris.add(B)
    started = time.monotonic()
    with pytest.raises(DeployError) as info:
        core.deploy("churn", namespace, B, canary_traffic_percent=None, **kwargs)
    assert time.monotonic() - started < 30, "a reported failure must not wait for the timeout"
    message = str(info.value)
    assert "BlockedByFailedLoad" in message and f"Rolled back: model reverted to {A}" in message
    assert "did not complete" not in message
    assert stored(api, namespace)["spec"]["predictor"]["model"]["storageUri"] == A
    assert kstatus.get_status("churn", namespace, api_client=api).ready


def race(monkeypatch, rounds, writer):
    """Run ``writer`` right before each of the first ``rounds`` merge patches the core sends."""
    real = kclient.merge_patch
    calls = []

    def patched(api_client, namespace, name, body, dry_run=False):
        calls.append(body)
        if len(calls) <= rounds:
            writer(len(calls))
        return real(api_client, namespace, name, body, dry_run=dry_run)

    monkeypatch.setattr(kclient, "merge_patch", patched)
    return calls


def test_concurrent_writer_between_read_and_patch_makes_deploy_replan(api, namespace, controller, monkeypatch):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    wait_observed(api, namespace)
    calls = race(
        monkeypatch, 1, lambda n: admin_patch(api, namespace, {"spec": {"predictor": {"model": {"storageUri": C}}}})
    )
    status = core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    # The first patch is refused (409) and the deploy is planned again (the controller writing status for C
    # in between may add a status-only retry).
    assert len(calls) >= 2
    assert all(body["metadata"]["resourceVersion"] for body in calls)
    assert calls[0]["metadata"]["resourceVersion"] != calls[-1]["metadata"]["resourceVersion"]
    assert status.action == "canary"
    obj = stored(api, namespace)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == B
    # Planned from what the other writer left: C is what a rollback returns to, not the A read first.
    assert obj["metadata"]["annotations"]["kfp-tabular.dev/previous-storage-uri"] == C


def test_persistent_concurrent_writers_fail_deploy_with_a_clear_error(api, namespace, controller, monkeypatch):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    wait_observed(api, namespace)
    uris = ["s3://models/churn/x1", "s3://models/churn/x2", "s3://models/churn/x3"]

    def writer(n):
        admin_patch(api, namespace, {"spec": {"predictor": {"model": {"storageUri": uris[n - 1]}}}})

    calls = race(monkeypatch, 3, writer)
    with pytest.raises(DeployError, match="changed by another writer") as info:
        core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    assert "HTTP 409" in str(info.value) and "nothing was written" in str(info.value)
    assert len(calls) == 2
    assert stored(api, namespace)["spec"]["predictor"]["model"]["storageUri"] == uris[1], (
        "the other writer's change stays"
    )


def test_status_write_between_read_and_patch_is_not_a_concurrent_writer(api, namespace, controller, monkeypatch):
    from kubernetes import client

    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    wait_observed(api, namespace)

    def status_writer(n):
        custom = client.CustomObjectsApi(api)
        obj = stored(api, namespace)
        obj["status"]["url"] = f"http://status-write-{n}.example.com"
        custom.replace_namespaced_custom_object_status(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", "churn", obj
        )

    calls = race(monkeypatch, 2, status_writer)
    # Two conflicts caused by status writes only: had they counted as concurrent writers, the second would
    # have failed the deploy.
    status = core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    assert len(calls) >= 3 and status.action == "canary"
    assert stored(api, namespace)["metadata"]["annotations"]["kfp-tabular.dev/previous-storage-uri"] == A


def test_rollback_and_promote_send_the_resource_version_they_read(api, namespace, controller, monkeypatch):
    core.deploy("churn", namespace, A, api_client=api, timeout_seconds=30)
    core.deploy("churn", namespace, B, canary_traffic_percent=10, api_client=api, timeout_seconds=30)
    calls = race(monkeypatch, 1, lambda n: admin_patch(api, namespace, {"metadata": {"labels": {"touched": "yes"}}}))
    assert promote_core.promote("churn", namespace, api_client=api, timeout_seconds=30).action == "promoted"
    assert len(calls) >= 2 and calls[0]["metadata"]["resourceVersion"] != calls[-1]["metadata"]["resourceVersion"]
    assert stored(api, namespace)["metadata"]["labels"]["touched"] == "yes", "the other writer's change stays"
    calls.clear()
    assert rollback_core.rollback("churn", namespace, api_client=api, timeout_seconds=30).action == "rolled-back"
    assert calls and all(body["metadata"]["resourceVersion"] for body in calls)
