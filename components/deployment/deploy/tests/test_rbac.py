"""manifests/rbac is enough for deploy/promote/rollback as system:serviceaccount:kfp-tabular:pipeline-runner,
and nothing more: the API server's RBAC authorizer answers every call with that identity's token.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from kfp_tabular.components.common.errors import DeployError
from kfp_tabular.components.deployment.deploy import core
from kfp_tabular.components.deployment.kserve import client as kclient
from kfp_tabular.components.deployment.kserve import isvc
from kfp_tabular.components.deployment.kserve import manifest as kmanifest
from kfp_tabular.components.deployment.kserve import status as kstatus
from kfp_tabular.components.deployment.promote import core as promote_core
from kfp_tabular.components.deployment.rollback import core as rollback_core
from tests.support.fake_kserve import FakeKServeController

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH"),
]

RBAC = Path(__file__).resolve().parents[4] / "manifests" / "rbac"
NS = "kfp-tabular"


@pytest.fixture(scope="module")
def cluster(kube_apiserver):
    kube_apiserver.ensure_namespace(NS)
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kube_apiserver.kubeconfig_path()), "apply", "-k", str(RBAC)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return kube_apiserver


@pytest.fixture
def runner(cluster):
    with cluster.api_client(cluster.service_account_token(NS, "pipeline-runner")) as client:
        yield client


@pytest.fixture
def controller(cluster):
    with cluster.api_client() as admin:
        with FakeKServeController(admin, [NS]) as ctl:
            yield ctl
    assert not ctl.errors, ctl.errors


def forbidden(call, *args, **kwargs) -> None:
    from kubernetes import client

    with pytest.raises(client.ApiException) as info:
        call(*args, **kwargs)
    assert info.value.status == 403, info.value


def test_pipeline_runner_can_deploy_canary_promote_and_roll_back(runner, controller):
    name = f"rbac-{secrets.token_hex(3)}"
    assert core.deploy(name, NS, "s3://models/a", api_client=runner, timeout_seconds=30).action == "created"
    assert core.deploy(name, NS, "s3://models/a", api_client=runner, timeout_seconds=30).action == "unchanged"
    assert core.deploy(name, NS, "s3://models/b", api_client=runner, timeout_seconds=30).action == "canary"
    assert promote_core.promote(name, NS, api_client=runner, timeout_seconds=30).action == "promoted"
    assert core.deploy(name, NS, "s3://models/c", api_client=runner, timeout_seconds=30).action == "canary"
    rolled = rollback_core.rollback(name, NS, api_client=runner, timeout_seconds=30)
    assert rolled.action == "rolled-back" and rolled.storage_uri == "s3://models/b"
    assert kstatus.get_status(name, NS, api_client=runner).ready


def test_pipeline_runner_failed_canary_rolls_back_with_its_own_permissions(runner, controller):
    name = f"rbac-{secrets.token_hex(3)}"
    core.deploy(name, NS, "s3://models/a", api_client=runner, timeout_seconds=30)
    controller.fail_uris.add("s3://models/broken")
    with pytest.raises(DeployError, match="Rolled back"):
        core.deploy(name, NS, "s3://models/broken", api_client=runner, timeout_seconds=30)
    assert kstatus.get_status(name, NS, api_client=runner).storage_uri == "s3://models/a"


def test_pipeline_runner_standard_canary_detection_without_crd_access(cluster, runner, controller):
    from kubernetes import client

    forbidden(client.ApiextensionsV1Api(runner).read_custom_resource_definition, isvc.CRD_NAME)
    # The check falls back to a server-side dry run, which the namespaced Role allows and which stores nothing.
    assert kclient.standard_canary_supported(runner, NS) is True
    name = f"rbac-{secrets.token_hex(3)}"
    core.deploy(name, NS, "s3://models/a", deployment_mode="Standard", api_client=runner, timeout_seconds=30)
    status = core.deploy(name, NS, "s3://models/b", deployment_mode="Standard", api_client=runner, timeout_seconds=30)
    assert status.action == "canary" and status.canaries[0]["ready"]
    with cluster.api_client() as admin:
        listed = client.CustomObjectsApi(admin).list_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", NS, "inferenceservices"
        )
    assert not [i for i in listed["items"] if i["metadata"]["name"].startswith("kfp-tabular-canary-probe-")]


def test_pipeline_runner_through_a_kubeconfig_file(cluster, controller):
    token = cluster.service_account_token(NS, "pipeline-runner")
    kubeconfig = cluster.kubeconfig_path(token=token, user_name="pipeline-runner", namespace=NS)
    api = kclient.load_api_client(str(kubeconfig))
    name = f"rbac-{secrets.token_hex(3)}"
    assert core.deploy(name, NS, "s3://models/a", api_client=api, timeout_seconds=30).ready


def test_pipeline_runner_is_denied_everything_else(cluster, runner, kube_apiserver):
    from kubernetes import client

    other = kube_apiserver.create_namespace("other")
    name = f"rbac-{secrets.token_hex(3)}"
    with kube_apiserver.api_client() as admin:
        body = kmanifest.render_inference_service(name, NS, "s3://models/a")
        client.CustomObjectsApi(admin).create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", NS, "inferenceservices", body
        )
    custom = client.CustomObjectsApi(runner)
    forbidden(client.CoreV1Api(runner).list_namespaced_secret, NS)
    forbidden(client.CoreV1Api(runner).read_namespaced_secret, "kserve-storage-s3", NS)
    forbidden(custom.delete_namespaced_custom_object, "serving.kserve.io", "v1beta1", NS, "inferenceservices", name)
    existing = custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", NS, "inferenceservices", name)
    forbidden(
        custom.replace_namespaced_custom_object, "serving.kserve.io", "v1beta1", NS, "inferenceservices", name, existing
    )
    forbidden(
        custom.patch_namespaced_custom_object_status,
        "serving.kserve.io",
        "v1beta1",
        NS,
        "inferenceservices",
        name,
        {"status": {"observedGeneration": 9}},
    )
    # The core only gets, creates and patches (it polls with get): no list or watch, even in its namespace.
    forbidden(custom.list_namespaced_custom_object, "serving.kserve.io", "v1beta1", NS, "inferenceservices")
    forbidden(
        custom.list_namespaced_custom_object,
        "serving.kserve.io",
        "v1beta1",
        NS,
        "inferenceservices",
        watch=True,
        timeout_seconds=1,
    )
    forbidden(custom.list_namespaced_custom_object, "serving.kserve.io", "v1beta1", other, "inferenceservices")
    forbidden(custom.list_cluster_custom_object, "serving.kserve.io", "v1beta1", "inferenceservices")
    forbidden(
        client.RbacAuthorizationV1Api(runner).create_namespaced_role,
        NS,
        {"metadata": {"name": "escalate"}, "rules": []},
    )
    with pytest.raises(DeployError, match="HTTP 403"):
        core.deploy(name, other, "s3://models/a", api_client=runner, timeout_seconds=5)
    with pytest.raises(DeployError, match="HTTP 403"):
        rollback_core.rollback(name, other, api_client=runner, timeout_seconds=5)


def test_in_cluster_configuration_with_the_pods_token(cluster, controller, tmp_path, monkeypatch):
    """What the component does in a pod: no kubeconfig, the mounted service-account token and CA."""
    from kubernetes.config import incluster_config

    token_file, ca_file = tmp_path / "token", tmp_path / "ca.crt"
    token_file.write_text(cluster.service_account_token(NS, "pipeline-runner"))
    ca_file.write_bytes(cluster.ca_cert_path.read_bytes())
    host, port = cluster.server.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token_file))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca_file))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    api = kclient.load_api_client()
    assert api.configuration.host == cluster.server
    name = f"rbac-{secrets.token_hex(3)}"
    assert core.deploy(name, NS, "s3://models/a", api_client=api, timeout_seconds=30).action == "created"
    from kubernetes import client

    forbidden(client.CoreV1Api(api).list_namespaced_secret, NS)


PROFILE_COMMANDS = [
    "kubectl -n team-a apply -f manifests/rbac/role.yaml",
    "kubectl -n team-a create rolebinding kfp-tabular-deployer --role=kfp-tabular-deployer "
    "--serviceaccount=team-a:default-editor",
]
STANDALONE_COMMANDS = [
    "kubectl -n kfp-tabular create rolebinding kfp-tabular-deployer-kubeflow --role=kfp-tabular-deployer "
    "--serviceaccount=kubeflow:pipeline-runner",
]


@pytest.mark.parametrize(
    ("commands", "placeholder", "account"),
    [
        (PROFILE_COMMANDS, "team-a", "system:serviceaccount:{ns}:default-editor"),
        (STANDALONE_COMMANDS, "kfp-tabular", "system:serviceaccount:kubeflow:pipeline-runner"),
    ],
    ids=["profile-default-editor", "standalone-kubeflow-pipeline-runner"],
)
def test_documented_binding_one_liners_let_the_runs_account_deploy(cluster, commands, placeholder, account):
    """The commands in manifests/README.md, run as written (in a fresh namespace), bind the run's account."""
    from kubernetes import client

    readme = (RBAC.parent / "README.md").read_text()
    for command in commands:
        assert command in readme.replace("\n", " "), f"manifests/README.md no longer shows: {command}"
    ns = cluster.create_namespace("profile")
    repo = RBAC.parents[1]
    kubeconfig = str(cluster.kubeconfig_path())
    if placeholder == "kfp-tabular":  # the standalone binding needs the Role from `kubectl apply -k manifests/rbac`
        subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "-n", ns, "apply", "-f", "manifests/rbac/role.yaml"],
            cwd=repo,
            check=True,
            capture_output=True,
            timeout=120,
        )
    user = account.format(ns=ns)
    with cluster.api_client() as as_account:
        as_account.set_default_header("Impersonate-User", user)
        custom = client.CustomObjectsApi(as_account)
        forbidden(custom.get_namespaced_custom_object, "serving.kserve.io", "v1beta1", ns, "inferenceservices", "x")
        for command in commands:
            argv = [ns if a == placeholder else a.replace(f"={placeholder}:", f"={ns}:") for a in command.split()]
            out = subprocess.run(
                [argv[0], "--kubeconfig", kubeconfig, *argv[1:]], cwd=repo, capture_output=True, text=True, timeout=120
            )
            assert out.returncode == 0, out.stderr
        with cluster.api_client() as admin, FakeKServeController(admin, [ns]) as ctl:
            assert core.deploy("churn", ns, "s3://models/a", api_client=as_account, timeout_seconds=30).ready
        assert not ctl.errors
        forbidden(custom.list_namespaced_custom_object, "serving.kserve.io", "v1beta1", ns, "inferenceservices")
