"""The real kube-apiserver validates, prunes and authorizes like a cluster, with KServe's own CRDs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.cluster.apiserver import KSERVE_CRD_FILES, KubeApiServer, load_yaml, strip_empty_defaults
from tests.plugin import require_shared_kserve_dir

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


def isvc(name: str, **predictor: Any) -> dict[str, Any]:
    """Returns an sklearn InferenceService manifest; ``predictor`` entries are merged into spec.predictor."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/model"},
                **predictor,
            }
        },
    }


@pytest.fixture
def custom(kube_apiserver: KubeApiServer) -> Iterator[client.CustomObjectsApi]:
    """CustomObjectsApi as the admin user."""
    with kube_apiserver.api_client() as api:
        yield client.CustomObjectsApi(api)


@pytest.fixture
def namespace(kube_apiserver: KubeApiServer) -> str:
    """A fresh namespace per test (namespaces cannot be deleted for real without a controller-manager)."""
    return kube_apiserver.create_namespace("isvc")


def test_strip_empty_defaults_removes_exactly_the_empty_string_defaults() -> None:
    kserve_dir = require_shared_kserve_dir()
    isvc_crd = load_yaml(kserve_dir / KSERVE_CRD_FILES[0])
    raw = (kserve_dir / KSERVE_CRD_FILES[0]).read_text()
    assert strip_empty_defaults(isvc_crd) == raw.count('default: ""') == 340
    assert '"default": ""' not in json.dumps(isvc_crd)
    doc = {"properties": {"default": {"type": "string", "default": ""}, "x": {"default": "v"}, "y": {"default": 0}}}
    assert strip_empty_defaults(doc) == 1
    assert doc == {"properties": {"default": {"type": "string"}, "x": {"default": "v"}, "y": {"default": 0}}}


def test_kserve_crds_and_sklearn_runtime_are_installed(kube_apiserver: KubeApiServer) -> None:
    assert kube_apiserver.removed_empty_defaults[KSERVE_CRD_FILES[0]] == 340
    with kube_apiserver.api_client() as api:
        crds = {c.metadata.name for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
        runtime = client.CustomObjectsApi(api).get_cluster_custom_object(
            GROUP, "v1alpha1", "clusterservingruntimes", "kserve-sklearnserver"
        )
        version = client.VersionApi(api).get_code()
    assert {"inferenceservices.serving.kserve.io", "servingruntimes.serving.kserve.io"} <= crds
    assert "clusterservingruntimes.serving.kserve.io" in crds
    assert runtime["spec"]["supportedModelFormats"][0]["name"] == "sklearn"
    assert version.git_version == "v1.20.2"


def test_schema_rejects_string_canary_traffic_percent(custom: client.CustomObjectsApi, namespace: str) -> None:
    with pytest.raises(client.ApiException) as excinfo:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, isvc("bad-canary", canaryTrafficPercent="ten")
        )
    assert excinfo.value.status == 422
    assert "canaryTrafficPercent" in excinfo.value.body


def test_unknown_fields_are_pruned(custom: client.CustomObjectsApi, namespace: str) -> None:
    body = isvc("pruned", notAKServeField="dropped")
    body["spec"]["alsoUnknown"] = {"a": 1}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "pruned")
    for obj in (created, stored):
        assert "notAKServeField" not in obj["spec"]["predictor"]
        assert "alsoUnknown" not in obj["spec"]
        assert obj["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/model"


def test_valid_isvc_and_status_subresource(custom: client.CustomObjectsApi, namespace: str) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, isvc("good", canaryTrafficPercent=10)
    )
    assert created["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert "status" not in created

    # Play the KServe controller: write status through the status subresource.
    status = {
        "url": f"http://good.{namespace}.example.com",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }
    updated = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "good", {"status": status}
    )
    assert updated["status"]["url"] == status["url"]

    # Writes to the main resource ignore status, and status writes do not change spec or bump generation.
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "good")
    assert stored["status"]["conditions"][0]["type"] == "Ready"
    assert stored["metadata"]["generation"] == 1
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "good", {"status": {"url": "http://x"}})
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "good")
    assert stored["status"]["url"] == status["url"]


def test_service_account_identity_has_no_rbac(kube_apiserver: KubeApiServer) -> None:
    kube_apiserver.ensure_namespace("kfp-tabular")
    token = kube_apiserver.service_account_token("kfp-tabular", "pipeline-runner")
    with kube_apiserver.api_client(token) as api, pytest.raises(client.ApiException) as excinfo:
        client.CoreV1Api(api).list_namespaced_secret("kfp-tabular")
    assert excinfo.value.status == 403
    assert "system:serviceaccount:kfp-tabular:pipeline-runner" in excinfo.value.body

    # The admin can, so the 403 is RBAC's answer for this identity, not a broken server.
    with kube_apiserver.api_client() as api:
        # (other tests on the shared server may have stored secrets here: only the answer matters)
        assert isinstance(client.CoreV1Api(api).list_namespaced_secret("kfp-tabular").items, list)


def test_rbac_grant_is_enforced_per_namespace(kube_apiserver: KubeApiServer) -> None:
    granted = kube_apiserver.create_namespace("rbac")
    user = "system:serviceaccount:kfp-tabular:pipeline-runner"
    with kube_apiserver.api_client() as api:
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            granted,
            {
                "metadata": {"name": "secret-reader"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            granted,
            {
                "metadata": {"name": "secret-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kfp-tabular"}],
            },
        )
    with kube_apiserver.api_client(kube_apiserver.service_account_token()) as api:
        core = client.CoreV1Api(api)
        # RBAC's authorizer reads Roles/RoleBindings from a watch cache: a fresh grant applies within moments.
        deadline = time.monotonic() + 10
        while True:
            try:
                assert core.list_namespaced_secret(granted).items == []
                break
            except client.ApiException as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with pytest.raises(client.ApiException) as excinfo:
            core.list_namespaced_secret("kfp-tabular")
    assert excinfo.value.status == 403
    assert user in excinfo.value.body


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_kubeconfig_works_with_the_python_client(kube_apiserver: KubeApiServer) -> None:
    from kubernetes import config

    path = kube_apiserver.kubeconfig_path(token=kube_apiserver.service_account_token(), user_name="runner")
    api = config.new_client_from_config(config_file=str(path))
    with api, pytest.raises(client.ApiException) as excinfo:
        client.CoreV1Api(api).list_namespaced_secret("kfp-tabular")
    assert excinfo.value.status == 403
