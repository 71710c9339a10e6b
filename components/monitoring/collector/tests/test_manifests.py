"""manifests/collector: what it builds (offline), that our CLI accepts its arguments, and that a real API server
stores it unchanged (kube-apiserver 1.20, validated and defaulted by the real schema)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kfp_tabular.components.common.images import SERVE_IMAGE

MANIFESTS = Path(__file__).resolve().parents[4] / "manifests"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not on PATH")


def build() -> dict:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(MANIFESTS / "collector")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}


@needs_kubectl
def test_collector_manifests_are_least_privilege_non_root_with_probes_and_limits():
    docs = build()
    assert set(docs) == {"ServiceAccount", "Deployment", "Service"}
    assert docs["ServiceAccount"]["automountServiceAccountToken"] is False
    deployment = docs["Deployment"]
    assert deployment["metadata"]["namespace"] == "kfp-tabular"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kfp-tabular-collector" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["image"] == SERVE_IMAGE
    assert container["command"] == ["python", "-m", "kfp_tabular.components.monitoring.collector"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert {e["name"] for e in container["env"]} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    service = docs["Service"]
    assert service["spec"]["sessionAffinity"] == "ClientIP"  # both events of an inference reach one replica
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]


@needs_kubectl
def test_the_collector_cli_accepts_the_manifest_arguments():
    from kfp_tabular.components.monitoring.collector.__main__ import build_parser, settings_from

    (container,) = build()["Deployment"]["spec"]["template"]["spec"]["containers"]
    settings = settings_from(build_parser().parse_args(container["args"]))
    assert settings.sink.startswith("s3://") and settings.host == "0.0.0.0" and settings.port == 8080
    assert settings.storage_options["client_kwargs"]["endpoint_url"].startswith("http://")
    assert shlex.join(container["args"])  # plain strings


@needs_kubectl
@pytest.mark.cluster
def test_the_api_server_stores_the_collector_manifests_unchanged(kube_apiserver):
    from kubernetes import client

    kube_apiserver.ensure_namespace("kfp-tabular")
    kubeconfig = kube_apiserver.kubeconfig_path()
    out = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "apply", "-k", str(MANIFESTS / "collector")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    expected = build()
    with kube_apiserver.api_client() as api:
        apps = client.AppsV1Api(api)
        stored = api.sanitize_for_serialization(apps.read_namespaced_deployment("kfp-tabular-collector", "kfp-tabular"))
        want = expected["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        got = stored["spec"]["template"]["spec"]["containers"][0]
        for key in ("args", "command", "securityContext", "resources", "env"):
            assert got[key] == want[key], key
        core = client.CoreV1Api(api)
        assert core.read_namespaced_service("kfp-tabular-collector", "kfp-tabular").spec.session_affinity == "ClientIP"
