"""The readiness predicate, the wait loop, rollback plans and status, on status documents shaped like KServe's."""

from __future__ import annotations

import json

import pytest
import yaml

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.kserve import client as kclient
from kfp_tabular.components.deployment.kserve import isvc, readiness
from kfp_tabular.components.deployment.kserve import rollback as krollback
from kfp_tabular.components.deployment.kserve import status as kstatus
from kfp_tabular.components.deployment.kserve import wait as kwait
from tests.plugin import shared_kserve_dir

SHARED_CRD = shared_kserve_dir() / "serving.kserve.io_inferenceservices.yaml"


# ---------------------------------------------------------------------------------------------------------
# Expectation: what counts as done, from status documents shaped like KServe's
# ---------------------------------------------------------------------------------------------------------


def _isvc(
    generation=2,
    observed=2,
    ready="True",
    created="m-predictor-00002",
    ready_rev="m-predictor-00002",
    traffic=None,
    mode="Knative",
    reason="",
    canaries=None,
    conditions_extra=(),
):
    status = {
        "observedGeneration": observed,
        "conditions": [{"type": "Ready", "status": ready, "reason": reason}, *conditions_extra],
        "components": {
            "predictor": {"latestCreatedRevision": created, "latestReadyRevision": ready_rev, "traffic": traffic or []}
        },
    }
    if canaries is not None:
        status["canaryStatuses"] = canaries
    return {
        "metadata": {
            "name": "m",
            "namespace": "n",
            "generation": generation,
            "annotations": {"serving.kserve.io/deploymentMode": mode},
        },
        "status": status,
    }


CANARY_TRAFFIC = [
    {"revisionName": "m-predictor-00002", "percent": 10, "latestRevision": True},
    {"revisionName": "m-predictor-00001", "percent": 90, "latestRevision": False},
]


def test_expectation_knative_canary_split():
    exp = readiness.Expectation(2, "Knative", latest_percent=10, not_revision="m-predictor-00001")
    assert exp.check(_isvc(traffic=CANARY_TRAFFIC))[0] == "ok"
    assert exp.check(_isvc(observed=1, traffic=CANARY_TRAFFIC))[0] == "wait"
    assert exp.check(_isvc(ready="Unknown", traffic=CANARY_TRAFFIC))[0] == "wait"
    full = [{"revisionName": "m-predictor-00002", "percent": 100, "latestRevision": True}]
    assert exp.check(_isvc(traffic=full))[0] == "wait"
    stale = [{"revisionName": "m-predictor-00001", "percent": 100, "latestRevision": True}]
    assert exp.check(_isvc(ready_rev="m-predictor-00001", created="m-predictor-00001", traffic=stale))[0] == "wait"
    same_revision = [
        {"revisionName": "m-predictor-00002", "percent": 10, "latestRevision": True},
        {"revisionName": "m-predictor-00002", "percent": 90, "latestRevision": False},
    ]
    assert exp.check(_isvc(traffic=same_revision))[0] == "wait"


def test_expectation_knative_failed_revision_fails_fast():
    exp = readiness.Expectation(2, "Knative", latest_percent=10)
    verdict, why = exp.check(
        _isvc(ready="False", reason="RevisionFailed", ready_rev="m-predictor-00001", traffic=CANARY_TRAFFIC)
    )
    assert verdict == "failed"
    assert "m-predictor-00002" in why and "RevisionFailed" in why
    assert exp.check(_isvc(observed=1, ready="False", ready_rev="m-predictor-00001"))[0] == "wait"


def test_expectation_knative_ignores_a_failure_that_predates_the_write():
    """observedGeneration already at the new generation, components still describe the failed old revision."""
    stale = _isvc(ready="False", reason="RevisionFailed", created="m-predictor-00002", ready_rev="m-predictor-00001")
    exp = readiness.Expectation(2, "Knative", latest_percent=100, before_revision="m-predictor-00002")
    verdict, why = exp.check(stale)
    assert verdict == "wait" and "before this write" in why
    # The revision created for this write fails: that failure is ours.
    ours = _isvc(ready="False", reason="RevisionFailed", created="m-predictor-00003", ready_rev="m-predictor-00001")
    assert exp.check(ours)[0] == "failed"
    # KServe's lastFailureInfo naming a new revision counts as well.
    stale["status"]["modelStatus"] = {
        "transitionStatus": "BlockedByFailedLoad",
        "lastFailureInfo": {"reason": "ModelLoadFailed", "modelRevisionName": "m-predictor-00003"},
    }
    assert exp.check(stale)[0] == "failed"
    stale["status"]["modelStatus"]["lastFailureInfo"]["modelRevisionName"] = "m-predictor-00002"
    assert exp.check(stale)[0] == "wait"
    # Without a recorded revision (nothing new expected) a failed latest revision fails at once.
    assert readiness.Expectation(2, "Knative", latest_percent=50).check(stale)[0] == "failed"


def _failed_model_status(message="model s3://m/b failed to load", when="2026-01-01T00:00:00Z"):
    return {
        "transitionStatus": "BlockedByFailedLoad",
        "states": {"activeModelState": "FailedToLoad", "targetModelState": "Loaded"},
        "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message, "time": when},
    }


def test_expectation_standard_canary_failure_fails_fast_unless_it_predates_the_write():
    failed = [{"name": "mabc", "ready": False, "trafficPercent": 10, "modelStatus": _failed_model_status()}]
    obj = _isvc(generation=3, observed=3, mode="Standard", canaries=failed)
    verdict, why = readiness.Expectation(3, "Standard", canary_name="mabc", canary_percent=10).check(obj)
    assert verdict == "failed"
    assert "BlockedByFailedLoad" in why and "ModelLoadFailed" in why and "model s3://m/b failed to load" in why
    recorded = isvc.model_failure(failed[0]["modelStatus"])
    stale = readiness.Expectation(3, "Standard", canary_name="mabc", canary_percent=10, before_canary_failure=recorded)
    assert stale.check(obj)[0] == "wait"
    failed[0]["modelStatus"]["lastFailureInfo"]["time"] = "2026-01-01T00:05:00Z"
    assert stale.check(obj)[0] == "failed", "a new failure of the same canary is ours"
    for transition in ("InvalidSpec", "BlockedByFailedLoad"):
        invalid = {"transitionStatus": transition, "lastFailureInfo": {"reason": "InvalidPredictorSpec"}}
        entry = [{"name": "mabc", "ready": False, "trafficPercent": 10, "modelStatus": invalid}]
        obj = _isvc(generation=3, observed=3, mode="Standard", canaries=entry)
        assert readiness.Expectation(3, "Standard", canary_name="mabc", canary_percent=10).check(obj)[0] == "failed"
    in_progress = [
        {"name": "mabc", "ready": False, "trafficPercent": 10, "modelStatus": {"transitionStatus": "InProgress"}}
    ]
    obj = _isvc(generation=3, observed=3, mode="Standard", canaries=in_progress)
    assert readiness.Expectation(3, "Standard", canary_name="mabc", canary_percent=10).check(obj)[0] == "wait"


def test_expectation_standard_predictor_failure_fails_fast_unless_it_predates_the_write():
    obj = _isvc(generation=3, observed=3, mode="Standard", ready="False")
    obj["status"]["modelStatus"] = _failed_model_status()
    assert readiness.Expectation(3, "Standard", no_canaries=True).check(obj)[0] == "failed"
    recorded = isvc.model_failure(obj["status"]["modelStatus"])
    assert readiness.Expectation(3, "Standard", no_canaries=True, before_failure=recorded).check(obj)[0] == "wait"
    # Not yet observed: never a verdict from an old status.
    obj["status"]["observedGeneration"] = 2
    assert readiness.Expectation(3, "Standard", no_canaries=True).check(obj)[0] == "wait"


def test_expectation_standard_canary():
    exp = readiness.Expectation(3, "Standard", canary_name="mabc", canary_percent=10)
    ready_canary = [{"name": "mabc", "ready": True, "trafficPercent": 10}]
    ok = _isvc(generation=3, observed=3, mode="Standard", canaries=ready_canary)
    assert exp.check(ok)[0] == "ok"
    not_ready = _isvc(
        generation=3, observed=3, mode="Standard", canaries=[{"name": "mabc", "ready": False, "trafficPercent": 10}]
    )
    assert exp.check(not_ready)[0] == "wait"
    assert exp.check(_isvc(generation=3, observed=3, mode="Standard", canaries=[]))[0] == "wait"
    gone = readiness.Expectation(3, "Standard", no_canaries=True)
    assert gone.check(ok)[0] == "wait"
    assert gone.check(_isvc(generation=3, observed=3, mode="Standard"))[0] == "ok"
    assert "canary 'mabc' ready at 10%" in exp.describe()


def _knative_canary(previous_predictor=None):
    obj = _isvc(traffic=CANARY_TRAFFIC)
    obj["metadata"]["resourceVersion"] = "7"
    obj["metadata"]["annotations"].update(
        {"kfp-tabular.dev/rollout-state": "canary", "kfp-tabular.dev/previous-storage-uri": "s3://m/a"}
    )
    if previous_predictor is not None:
        obj["metadata"]["annotations"]["kfp-tabular.dev/previous-predictor"] = previous_predictor
    obj["status"]["components"]["predictor"]["latestRolledoutRevision"] = "m-predictor-00001"
    obj["spec"] = {
        "predictor": {
            "canaryTrafficPercent": 10,
            "serviceAccountName": "sa-b",
            "model": {
                "modelFormat": {"name": "sklearn", "version": "1"},
                "runtime": "other-runtime",
                "storageUri": "s3://m/b",
                "resources": {"limits": {"cpu": "3", "memory": "9Gi"}},
            },
        }
    }
    return obj


def test_rollback_plan_restores_the_recorded_predictor_with_nulls_for_added_fields():
    previous = {
        "model": {
            "modelFormat": {"name": "sklearn", "version": "1"},
            "storageUri": "s3://m/a",
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
        }
    }
    plan = krollback.rollback_plan(_knative_canary(json.dumps(previous)))
    predictor = plan.body["spec"]["predictor"]
    assert predictor == {
        "serviceAccountName": None,
        "canaryTrafficPercent": 0,
        "model": {
            "runtime": None,
            "storageUri": "s3://m/a",
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": None}},
        },
    }
    assert plan.body["metadata"]["annotations"]["kfp-tabular.dev/previous-predictor"] is None
    assert "whole previous predictor restored" in plan.note
    expectation = plan.expect(3)
    assert expectation.before_revision == "m-predictor-00002" and expectation.latest_percent == 0


@pytest.mark.parametrize(
    ("record", "note"),
    [
        (None, ""),
        ("{not json", "is not a predictor: only storageUri reverted"),
        (json.dumps({"model": {"storageUri": "s3://m/other"}}), "describes 's3://m/other', not the previous model"),
    ],
)
def test_rollback_plan_without_a_usable_record_reverts_the_storage_uri_only(record, note):
    plan = krollback.rollback_plan(_knative_canary(record))
    assert plan.body["spec"]["predictor"] == {"canaryTrafficPercent": 0, "model": {"storageUri": "s3://m/a"}}
    assert f"model reverted to s3://m/a{' (annotation' if note else ','}" in plan.note
    assert note in plan.note


def test_wait_for_times_out_with_last_status():
    obj = _isvc(observed=1)
    outcome = kwait.wait_for(
        None, "n", "m", readiness.Expectation(2, "Knative"), timeout_seconds=0.3, read=lambda api, ns, name: obj
    )
    assert not outcome.ok and outcome.timed_out and outcome.obj is obj
    assert "timed out after 0.3s" in outcome.message
    assert "observedGeneration 1 < 2" in outcome.message


def test_wait_for_reports_a_failure_and_a_vanished_object_as_outcomes():
    failed = _isvc(traffic=CANARY_TRAFFIC, ready="False", created="m-predictor-00003", ready_rev="m-predictor-00002")
    outcome = kwait.wait_for(None, "n", "m", readiness.Expectation(2, "Knative"), 10, read=lambda *a: failed)
    assert not outcome.ok and not outcome.timed_out and "did not become ready" in outcome.message
    gone = kwait.wait_for(None, "n", "m", readiness.Expectation(2, "Knative"), 10, read=lambda *a: None)
    assert not gone.ok and "disappeared" in gone.message


def test_status_from_object_and_rollout_state_inference():
    obj = _isvc(traffic=CANARY_TRAFFIC)
    obj["spec"] = {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": "s3://m/b"}}}
    obj["status"]["url"] = "http://m.n.example.com"
    st = kstatus.status_from_object(obj)
    assert st.ready and st.url == "http://m.n.example.com"
    assert st.storage_uri == "s3://m/b" and st.canary_traffic_percent == 10
    assert st.rollout_state == "canary"
    assert st.as_dict()["traffic"] == CANARY_TRAFFIC
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 0
    assert isvc.rollout_state(obj) == "rolled-back"
    del obj["spec"]["predictor"]["canaryTrafficPercent"]
    assert isvc.rollout_state(obj) == "stable"
    obj["metadata"]["annotations"]["kfp-tabular.dev/rollout-state"] = "canary"
    assert isvc.rollout_state(obj) == "canary"
    assert isvc.mode_of({"metadata": {}}) == "Standard"  # KServe 0.16+ default


def test_load_api_client_from_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="kubeconfig_path: .* does not exist"):
        kclient.load_api_client(str(tmp_path / "missing"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(ConfigError, match="kubeconfig_path"):
        kclient.load_api_client(str(bad))
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.1.2.3:6443"}}],
                "users": [{"name": "u", "user": {"token": "t0k"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    client = kclient.load_api_client(str(good))
    assert client.configuration.host == "https://10.1.2.3:6443"
    assert client.configuration.api_key["authorization"] == "Bearer t0k"


def test_wait_for_retries_transient_api_errors_but_not_forbidden():
    ok = _isvc(traffic=[{"revisionName": "m-predictor-00002", "percent": 100, "latestRevision": True}])
    answers = []

    def flaky(api, ns, name):
        answers.append(name)
        if len(answers) <= 2:
            error = DeployError("get InferenceService n/m: HTTP 503 Service Unavailable")
            error.http_status = 503
            raise error
        return ok

    waited = kwait.wait_for(None, "n", "m", readiness.Expectation(2, "Knative"), 10, sleep=lambda s: None, read=flaky)
    assert waited.ok and waited.obj is ok
    assert len(answers) == 3

    def denied(api, ns, name):
        error = DeployError("get InferenceService n/m: HTTP 403 Forbidden")
        error.http_status = 403
        raise error

    with pytest.raises(DeployError, match="403"):
        kwait.wait_for(None, "n", "m", readiness.Expectation(2, "Knative"), 10, sleep=lambda s: None, read=denied)
