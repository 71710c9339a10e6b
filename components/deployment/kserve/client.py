"""Kubernetes access for InferenceServices: the API client, get/create/merge-patch, and guarded writes.

Every write is a create or a JSON merge patch (RFC 7386) on ``serving.kserve.io/v1beta1`` ``inferenceservices``
that carries the ``metadata.resourceVersion`` it was planned from, so two writers cannot silently undo each
other: the API server answers 409 and the write is planned again (:func:`write_planned`). The Kubernetes
client is imported inside the functions, so rendering works without it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.kserve.isvc import CRD_NAME, GROUP, PLURAL, STANDARD, VERSION, crd_has_canary
from kfp_tabular.components.deployment.kserve.manifest import render_inference_service

#: HTTP 409 retries when only ``status`` changed between our read and our patch (the controller wrote it).
MAX_STATUS_CONFLICTS = 5


def load_api_client(kubeconfig_path: str = "", context: str = "") -> Any:
    """Return a ``kubernetes.client.ApiClient`` for the cluster this code should talk to.

    Args:
        kubeconfig_path: A kubeconfig file. Empty: the in-cluster service account when running in a pod
            (``KUBERNETES_SERVICE_HOST`` set), else ``$KUBECONFIG`` / ``~/.kube/config``.
        context: Kubeconfig context; empty for the current one.

    Returns:
        An ``ApiClient`` (the caller may close it).

    Raises:
        ConfigError: If the kubeconfig is missing or unusable.
    """
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if not kubeconfig_path and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            if kubeconfig_path and not Path(kubeconfig_path).is_file():
                raise ConfigError(f"kubeconfig_path: {kubeconfig_path} does not exist")
            config.load_kube_config(
                config_file=kubeconfig_path or None, context=context or None, client_configuration=configuration
            )
    except config.ConfigException as exc:
        where = kubeconfig_path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ConfigError(f"kubeconfig_path: cannot load a cluster configuration from {where}: {exc}") from exc
    return client.ApiClient(configuration)


@contextlib.contextmanager
def api_session(kubeconfig_path: str = "", api_client: Any = None) -> Iterator[Any]:
    """Yield ``api_client`` if given (the caller owns it), else a client loaded here and closed afterwards."""
    if api_client is not None:
        yield api_client
        return
    api = load_api_client(kubeconfig_path)
    try:
        yield api
    finally:
        api.close()


def api_error(exc: Any, what: str) -> DeployError:
    """Turn a Kubernetes ApiException into a DeployError naming the call; ``http_status`` keeps the code."""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or ""
    message = ""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = str(body)[:500]
    error = DeployError(f"{what}: HTTP {status} {reason}: {message or exc}".rstrip(": "))
    error.http_status = status
    return error


def resource_path(namespace: str, name: str = "") -> str:
    """Return the REST path of the InferenceServices of a namespace (or of one)."""
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def get(api_client: Any, namespace: str, name: str) -> dict | None:
    """Read an InferenceService; None when it does not exist."""
    from kubernetes import client

    try:
        return client.CustomObjectsApi(api_client).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise api_error(exc, f"get InferenceService {namespace}/{name}") from exc


def require(api_client: Any, namespace: str, name: str) -> dict:
    """Read an InferenceService that must exist (DeployError names it otherwise)."""
    obj = get(api_client, namespace, name)
    if obj is None:
        raise DeployError(f"InferenceService {namespace}/{name} not found")
    return obj


def create(api_client: Any, namespace: str, body: dict, dry_run: bool = False) -> dict:
    """Create an InferenceService (``dry_run``: server-side dry run, nothing stored)."""
    from kubernetes import client

    kwargs = {"dry_run": "All"} if dry_run else {}
    try:
        return client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, **kwargs
        )
    except client.ApiException as exc:
        name = body.get("metadata", {}).get("name") or body.get("metadata", {}).get("generateName", "")
        raise api_error(exc, f"create InferenceService {namespace}/{name}") from exc


def merge_patch(api_client: Any, namespace: str, name: str, body: dict, dry_run: bool = False) -> dict:
    """JSON merge patch (RFC 7386): ``None`` values remove fields, which KServe's SDK cannot do."""
    from kubernetes import client

    query = [("dryRun", "All")] if dry_run else []
    try:
        return api_client.call_api(
            resource_path(namespace, name),
            "PATCH",
            {},
            query,
            {"Accept": "application/json", "Content-Type": "application/merge-patch+json"},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except client.ApiException as exc:
        raise api_error(exc, f"patch InferenceService {namespace}/{name}") from exc


def standard_canary_supported(api_client: Any, namespace: str) -> bool:
    """Whether the cluster's InferenceService CRD has ``spec.canary[]`` for Standard-mode canaries.

    Reads the CRD through the apiextensions API. An identity without read access to CRDs (the pipeline's
    namespaced Role has none) gets 403; then a server-side dry-run create of a throwaway InferenceService
    with a canary entry tells the same thing without storing anything: the API server prunes fields its
    CRD schema does not know, so the canary survives the dry run only if the CRD has it.

    Raises:
        ConfigError: If neither check can be made.
    """
    from kubernetes import client

    try:
        crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(CRD_NAME, _preload_content=False)
        return crd_has_canary(json.loads(crd.data))
    except client.ApiException as exc:
        if exc.status not in (401, 403, 404):
            raise api_error(exc, f"read CustomResourceDefinition {CRD_NAME}") from exc
        crd_error = f"HTTP {exc.status} {exc.reason}"
    probe = render_inference_service("probe", namespace, "s3://kfp-tabular-probe/model", deployment_mode=STANDARD)
    probe["metadata"].pop("name")
    probe["metadata"]["generateName"] = "kfp-tabular-canary-probe-"
    probe_model = probe["spec"]["predictor"]["model"]
    probe_model = {"name": "kserve-container", **probe_model}
    probe["spec"]["canary"] = [{"trafficPercent": 0, "predictor": {"name": "probe", "model": probe_model}}]
    try:
        created = create(api_client, namespace, probe, dry_run=True)
    except DeployError as exc:
        raise ConfigError(
            f"deployment_mode: cannot tell whether this cluster's KServe supports Standard-mode canaries: reading "
            f"CRD {CRD_NAME} gave {crd_error} and a dry-run create gave: {exc}"
        ) from exc
    return bool(created.get("spec", {}).get("canary"))


def writer_view(obj: dict | None) -> str:
    """Return what other writers change (spec, labels, annotations), not the controller's ``status``."""
    if obj is None:
        return ""
    meta = obj.get("metadata") or {}
    return json.dumps([obj.get("spec"), meta.get("labels"), meta.get("annotations")], sort_keys=True)


def guarded(body: dict, obj: dict) -> dict:
    """Add the ``metadata.resourceVersion`` the plan was made from to a merge patch.

    The API server then refuses the patch with 409 Conflict if anyone wrote the object since (optimistic
    concurrency).
    """
    guarded = dict(body)
    guarded["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": obj["metadata"]["resourceVersion"]}
    return guarded


def write_planned(
    api: Any,
    namespace: str,
    name: str,
    obj: dict | None,
    planner: Callable[[dict | None], Any],
    what: str,
    unwritten: str = "nothing was written by this call",
) -> tuple[dict | None, Any, dict | None]:
    """Plan from ``obj``, write (create, or merge patch carrying ``obj``'s resourceVersion), and re-plan on 409.

    A 409 means the object changed between the read and the write. If another writer changed its spec,
    labels or annotations, the object is re-read and the write planned again, once; a second such conflict
    fails. A change of ``status`` only (the controller) is not a competing writer: re-planned up to
    ``MAX_STATUS_CONFLICTS`` times.

    Returns:
        ``(object planned from, plan, object the write returned or None when the plan is "unchanged")``.

    Raises:
        DeployError: On a second conflict with another writer, or any other API error.
    """
    writers = status_only = 0
    while True:
        plan = planner(obj)
        if plan.kind in ("unchanged", "refused"):
            return obj, plan, None
        try:
            if plan.kind == "create":
                return obj, plan, create(api, namespace, plan.body or {})
            assert obj is not None and plan.body is not None
            return obj, plan, merge_patch(api, namespace, name, guarded(plan.body, obj))
        except DeployError as exc:
            if getattr(exc, "http_status", None) != 409:
                raise
            fresh = get(api, namespace, name)
            if obj is not None and fresh is not None and writer_view(fresh) == writer_view(obj):
                if status_only < MAX_STATUS_CONFLICTS:
                    status_only += 1
                    obj = fresh
                    continue
            elif writers < 1:
                writers += 1
                obj = fresh
                continue
            version = (obj or {}).get("metadata", {}).get("resourceVersion", "none (create)")
            raise DeployError(
                f"{what}: InferenceService {namespace}/{name} was changed by another writer between this call's "
                f"read and its write, again after re-reading and planning once more (HTTP 409 Conflict: the write "
                f"carried metadata.resourceVersion {version}, which is no longer current); {unwritten}. Another "
                "deploy/promote/rollback or a kubectl apply is changing it: let that finish, then run this again"
            ) from exc
