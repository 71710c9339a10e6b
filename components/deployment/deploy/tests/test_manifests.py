"""manifests/: kustomize builds (offline) and ``kubectl apply`` of every overlay and base against the API server.

kubectl is the one on PATH (1.32 here). Set ``KFP_TABULAR_KUBECTL_OLD`` to another kubectl (e.g. Debian's
1.20, whose embedded kustomize is v2.0) to also check that it builds every kustomization identically.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kfp_tabular.components.common.images import SERVE_IMAGE
from kfp_tabular.components.deployment.kserve import isvc as kisvc
from kfp_tabular.components.deployment.kserve import manifest as kmanifest
from kfp_tabular.components.deployment.kserve import readiness
from kfp_tabular.components.deployment.kserve import status as kstatus
from kfp_tabular.components.deployment.kserve import wait as kwait
from tests.support.fake_kserve import FakeKServeController

MANIFESTS = Path(__file__).resolve().parents[4] / "manifests"
KUSTOMIZATIONS = [
    "base",
    "overlays/first-deploy",
    "overlays/canary",
    "overlays/promote",
    "overlays/rollback",
    "rbac",
    "storage",
    "runtime",
    "monitoring",
    "collector",
]
OVERLAYS = ["first-deploy", "canary", "promote", "rollback"]
STABLE, CANDIDATE = "s3://models/churn-classifier/stable", "s3://models/churn-classifier/candidate"
KUBECTL = shutil.which("kubectl")
OLD_KUBECTL = os.environ.get("KFP_TABULAR_KUBECTL_OLD", "")

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not on PATH")


def kubectl(*args: str, kubeconfig: Path | None = None, binary: str | None = None) -> str:
    argv = [binary or KUBECTL, *(["--kubeconfig", str(kubeconfig)] if kubeconfig else []), *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{' '.join(argv)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def build(kustomization: str, binary: str | None = None) -> list[dict]:
    return [d for d in yaml.safe_load_all(kubectl("kustomize", str(MANIFESTS / kustomization), binary=binary)) if d]


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs}


# ---------------------------------------------------------------------------------------------------------
# Offline: what each kustomization builds
# ---------------------------------------------------------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_the_expected_inference_service(overlay):
    docs = build(f"overlays/{overlay}")
    assert len(docs) == 1
    isvc = docs[0]
    assert isvc["kind"] == "InferenceService" and isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["metadata"]["name"] == "churn-classifier"
    assert isvc["metadata"]["namespace"] == "kfp-tabular"
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Knative"
    predictor = isvc["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "kserve-storage"
    model = predictor["model"]
    assert model["modelFormat"]["name"] == "sklearn" and model["protocolVersion"] == "v2"
    assert "runtime" not in model, "the base uses KServe's stock sklearn runtime"
    expected = {
        "first-deploy": (STABLE, None, "stable"),
        "canary": (CANDIDATE, 10, "canary"),
        "promote": (CANDIDATE, None, "stable"),
        "rollback": (STABLE, 0, "rolled-back"),
    }[overlay]
    assert (model["storageUri"], predictor.get("canaryTrafficPercent"), kisvc.rollout_state(isvc)) == expected
    if overlay in ("canary", "promote"):
        assert annotations[kisvc.PREVIOUS_URI_ANNOTATION] == STABLE


@needs_kubectl
def test_base_is_what_render_inference_service_renders():
    base = build("base")[0]
    rendered = kmanifest.render_inference_service(
        "churn-classifier", "kfp-tabular", STABLE, service_account_name="kserve-storage"
    )
    assert base["spec"] == rendered["spec"]
    for key, value in rendered["metadata"]["annotations"].items():
        assert base["metadata"]["annotations"][key] == value


@needs_kubectl
def test_rbac_grants_exactly_the_deploy_verbs():
    docs = by_kind(build("rbac"))
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding"}
    assert docs["ServiceAccount"]["metadata"] == {
        "name": "pipeline-runner",
        "namespace": "kfp-tabular",
        "labels": {"app.kubernetes.io/part-of": "kfp-tabular"},
    }
    rules = docs["Role"]["rules"]
    assert rules == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["get", "create", "patch"],
        }
    ]
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "kfp-tabular-deployer",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kfp-tabular"}]


@needs_kubectl
def test_storage_secret_is_a_template_with_kserve_annotations():
    docs = by_kind(build("storage"))
    secret = docs["Secret"]
    assert set(secret["stringData"].values()) == {"REPLACE_WITH_ACCESS_KEY_ID", "REPLACE_WITH_SECRET_ACCESS_KEY"}
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    annotations = secret["metadata"]["annotations"]
    assert {"serving.kserve.io/s3-endpoint", "serving.kserve.io/s3-usehttps", "serving.kserve.io/s3-region"} <= set(
        annotations
    )
    assert docs["ServiceAccount"]["metadata"]["name"] == "kserve-storage"
    assert docs["ServiceAccount"]["secrets"] == [{"name": secret["metadata"]["name"]}]
    assert docs["PersistentVolumeClaim"]["metadata"]["name"] == "model-store"


@needs_kubectl
def test_runtime_runs_our_model_server_in_the_serve_image():
    runtime = build("runtime")[0]
    assert runtime["kind"] == "ServingRuntime" and runtime["metadata"]["name"] == "kfp-tabular-sklearn"
    container = runtime["spec"]["containers"][0]
    assert container["image"] == SERVE_IMAGE
    assert container["command"] == ["python", "-m", "kfp_tabular.components.deployment.model_server"]
    assert container["args"] == [
        "--model_name={{.Name}}",
        "--model_dir=/mnt/models",
        "--http_port=8080",
        "--host=0.0.0.0",
    ]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert runtime["spec"]["supportedModelFormats"] == [{"name": "sklearn", "version": "1", "autoSelect": False}]
    assert runtime["spec"]["protocolVersions"] == ["v1", "v2"]


@needs_kubectl
def test_predictors_are_scraped_where_the_model_server_serves_metrics():
    """KServe's scraping annotation on the service, the runtime's port/path, and the PodMonitor agree."""
    isvc = build("base")[0]
    assert isvc["metadata"]["annotations"][kisvc.PROMETHEUS_SCRAPING_ANNOTATION] == "true"
    for mode in ("Knative", "Standard"):
        rendered = kmanifest.render_inference_service("m", "ns", STABLE, deployment_mode=mode)
        assert rendered["metadata"]["annotations"][kisvc.PROMETHEUS_SCRAPING_ANNOTATION] == "true"
    runtime = build("runtime")[0]
    port = runtime["spec"]["annotations"]["prometheus.kserve.io/port"]
    path = runtime["spec"]["annotations"]["prometheus.kserve.io/path"]
    assert f"--http_port={port}" in runtime["spec"]["containers"][0]["args"]
    (monitor,) = build("monitoring")
    assert monitor["kind"] == "PodMonitor" and monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (str(endpoint["targetPort"]), endpoint["path"]) == (port, path)
    # Predictor pods of any InferenceService (KServe labels them), not selected by the kustomization's labels.
    assert monitor["spec"]["selector"] == {
        "matchLabels": {"component": "predictor"},
        "matchExpressions": [{"key": "serving.kserve.io/inferenceservice", "operator": "Exists"}],
    }
    targets = {r["targetLabel"] for r in endpoint["relabelings"]}
    assert {"namespace_name", "revision_name"} <= targets


@needs_kubectl
@pytest.mark.skipif(not OLD_KUBECTL, reason="KFP_TABULAR_KUBECTL_OLD not set")
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_old_kubectl_builds_the_same(kustomization):
    assert build(kustomization, binary=OLD_KUBECTL) == build(kustomization)


# ---------------------------------------------------------------------------------------------------------
# Against the API server: everything applies, nothing is pruned, and the core understands the result
# ---------------------------------------------------------------------------------------------------------


@needs_kubectl
@pytest.mark.cluster
def test_apply_everything_then_each_overlay_in_order(kube_apiserver):
    from kubernetes import client

    kube_apiserver.ensure_namespace("kfp-tabular")
    kubeconfig = kube_apiserver.kubeconfig_path()
    for folder in ("rbac", "storage", "runtime"):
        kubectl("apply", "-k", str(MANIFESTS / folder), kubeconfig=kubeconfig)
    with kube_apiserver.api_client() as api:
        custom = client.CustomObjectsApi(api)
        runtime = custom.get_namespaced_custom_object(
            "serving.kserve.io", "v1alpha1", "kfp-tabular", "servingruntimes", "kfp-tabular-sklearn"
        )
        assert runtime["spec"] == build("runtime")[0]["spec"], "the ServingRuntime CRD pruned something"
        core_api = client.CoreV1Api(api)
        secret = core_api.read_namespaced_secret("kserve-storage-s3", "kfp-tabular")
        assert secret.metadata.annotations["serving.kserve.io/s3-endpoint"] == "minio-service.kubeflow:9000"
        assert core_api.read_namespaced_service_account("kserve-storage", "kfp-tabular").secrets[0].name == (
            "kserve-storage-s3"
        )
        assert core_api.read_namespaced_persistent_volume_claim(
            "model-store", "kfp-tabular"
        ).spec.resources.requests == {"storage": "1Gi"}
        with FakeKServeController(api, ["kfp-tabular"]) as controller:
            # A canary that is rolled back, then a canary that is promoted.
            for overlay in ("first-deploy", "canary", "rollback", "canary", "promote"):
                kubectl("apply", "-k", str(MANIFESTS / "overlays" / overlay), kubeconfig=kubeconfig)
                obj = custom.get_namespaced_custom_object(
                    "serving.kserve.io", "v1beta1", "kfp-tabular", "inferenceservices", "churn-classifier"
                )
                expected = build(f"overlays/{overlay}")[0]
                assert obj["spec"] == expected["spec"], f"{overlay}: stored spec differs from the overlay"
                # The controller reaches the state the overlay asks for; the core reads it.
                done = kwait.wait_for(
                    api, "kfp-tabular", "churn-classifier", readiness.current_expectation(obj), timeout_seconds=30
                )
                assert done.ok, (overlay, done.message)
                status = kstatus.status_from_object(done.obj)
                assert status.ready, (overlay, status)
                assert status.rollout_state == kisvc.rollout_state(expected)
                revisions = {r.name: r.uri for r in controller._states[("kfp-tabular", "churn-classifier")].revisions}
                serving = {revisions[t["revisionName"]]: t["percent"] for t in status.traffic if t["percent"]}
                assert (
                    serving
                    == {
                        "first-deploy": {STABLE: 100},
                        "canary": {CANDIDATE: 10, STABLE: 90},
                        "rollback": {STABLE: 100},
                        "promote": {CANDIDATE: 100},
                    }[overlay]
                ), (overlay, status.traffic)
                if overlay == "rollback":
                    assert status.canary_traffic_percent == 0
            assert not controller.errors
        # kubectl's three-way merge removed canaryTrafficPercent when the promote overlay no longer set it.
        assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
