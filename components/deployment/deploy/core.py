"""Deploy a blessed model as a KServe InferenceService: the gate, then render or apply (canary, wait, roll back).

Plain Python, no KFP import: the deploy component and the CLI call the same code. The KServe package
(``components/deployment/kserve``) holds the InferenceService logic; this module decides and orchestrates:

* :func:`gate`: the evaluator's blessing must bless *this* model (its ``model_sha256`` is checked against the
  model file about to be deployed, as TFX's Pusher ties a blessing to its model).
* :func:`deploy`: create the InferenceService, or canary the new model on the existing one; wait for the
  revision this write created; on a failure or timeout roll back so all traffic stays on what served before.
* :func:`deploy_action`: what the component runs: gate, publish, render or apply, and write the manifest and
  status files (nothing is written to the cluster for a model that is not blessed).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kfp_tabular.components.common import artifacts, blessing, model_dir
from kfp_tabular.components.common.errors import ConfigError, DataError, DeployError
from kfp_tabular.components.deployment.deploy.request import DeployRequest
from kfp_tabular.components.deployment.kserve.client import api_session, get, load_api_client, require, write_planned
from kfp_tabular.components.deployment.kserve.isvc import KNATIVE, PREVIOUS_URI_ANNOTATION, annotations_of
from kfp_tabular.components.deployment.kserve.manifest import (
    RENDER_OPTIONS,
    model_storage_uri,
    render,
    strip_server_fields,
    to_yaml,
)
from kfp_tabular.components.deployment.kserve.plans import Plan, deploy_plan
from kfp_tabular.components.deployment.kserve.publish import publish_versioned
from kfp_tabular.components.deployment.kserve.request import ServiceRequest
from kfp_tabular.components.deployment.kserve.rollback import apply_rollback
from kfp_tabular.components.deployment.kserve.status import DeployStatus, status_from_object
from kfp_tabular.components.deployment.kserve.wait import wait_for


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """Whether a model may be deployed, and why (the evaluator's reasons).

    Attributes:
        blessed: The blessing blesses this model.
        reason: The evaluator's verdict in one line.
        files: Relative path -> sha256 of every file of the model directory (``model_dir.manifest``), hashed
            once here and reused to publish the model.
    """

    blessed: bool
    reason: str
    files: dict = dataclasses.field(default_factory=dict, compare=False)


def gate(blessing_path: str, model_path: str) -> GateDecision:
    """Read the evaluator's blessing and decide whether the model at ``model_path`` may be deployed.

    Args:
        blessing_path: The blessing JSON (``common.blessing``).
        model_path: The model directory about to be deployed: it must keep the model-directory contract
            (``model_dir.manifest``) and its model file must hash to the blessing's ``model_sha256``.

    Raises:
        DataError: The blessing is missing or malformed, it is about another model, or the model directory
            breaks its contract (nothing is deployed).
    """
    verdict = blessing.read(blessing_path)
    files = model_dir.manifest(model_path)
    mismatch = verdict.mismatch(files[model_dir.MODEL_FILE])
    if mismatch:
        raise DataError(f"{blessing_path}: {mismatch}; nothing was deployed")
    return GateDecision(verdict.blessed, verdict.reason, files)


def deploy(
    name: str,
    namespace: str,
    storage_uri: str,
    canary_traffic_percent: int | None = 10,
    deployment_mode: str = "Knative",
    timeout_seconds: float = 600,
    api_client: Any = None,
    **render_options: Any,
) -> DeployStatus:
    """Deploy a model: create the InferenceService, or canary the new model on the existing one.

    * Absent: created with the model taking 100% of the traffic (a canary needs a previous model).
    * Already moving to the same model with the same settings: nothing is written ("unchanged"); the call
      still waits for that state to be ready. If that model is a canary and another percent is asked for,
      only the split changes (Knative ``canaryTrafficPercent``, Standard the canary's ``trafficPercent``);
      None or 100 rolls the canary out fully.
    * Otherwise: the predictor's model is patched. Knative mode with ``canary_traffic_percent`` N < 100 sets
      ``canaryTrafficPercent: N``; Standard mode writes one ``spec.canary[]`` entry when the CRD has that
      field (else ConfigError); None or 100 rolls the model out fully. The previous storageUri and the whole
      previous predictor (JSON) are recorded in the ``kfp-tabular.dev/previous-storage-uri`` and
      ``kfp-tabular.dev/previous-predictor`` annotations.

    Every patch carries the ``metadata.resourceVersion`` it was planned from, so a concurrent writer makes
    the API server answer 409: the object is re-read and the write planned again once, then the call fails.

    The call then waits until ``status.observedGeneration`` reaches the generation the write returned, Ready
    is True and the traffic shows the intended split; a failure ``status`` reported before the write does
    not count. On a reported failure or a timeout it rolls back (the previous predictor restored and all
    traffic on the previously rolled-out revision) and raises DeployError saying what it waited for and what
    status said.

    Args:
        name: InferenceService name (DNS-1035 label).
        namespace: Namespace.
        storage_uri: The model's storageUri (``s3://``, ``gs://``, ``pvc://``, ``https://``, ``hdfs://``).
        canary_traffic_percent: Percent of traffic for the new model, or None/100 for a full rollout.
        deployment_mode: Knative or Standard (aliases Serverless, RawDeployment).
        timeout_seconds: How long to wait for the controller (and again for a rollback).
        api_client: A ``kubernetes.client.ApiClient``; default :func:`load_api_client`.
        **render_options: ``runtime``, ``service_account_name``, ``protocol_version``, ``resources``,
            ``labels``, ``annotations`` (see ``kserve.request.ServiceRequest``). An empty ``runtime`` or
            ``service_account_name`` keeps the existing service's value.

    Returns:
        The :class:`DeployStatus` once the rollout is where it should be.

    Raises:
        ConfigError: Invalid parameters, a mode change, or a Standard canary the cluster cannot do.
        DeployError: The rollout failed or timed out (after rolling back), a concurrent writer won twice, or
            the API refused a call.
    """
    unknown = sorted(set(render_options) - set(RENDER_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)}: unknown deploy option(s); expected some of {', '.join(RENDER_OPTIONS)}"
        )
    request = ServiceRequest(
        name, namespace, storage_uri, canary_traffic_percent, deployment_mode, timeout_seconds, **render_options
    )
    desired = render(dataclasses.replace(request, canary_traffic_percent=None))
    api = api_client or load_api_client()

    def planner(existing: dict | None) -> Plan:
        return deploy_plan(api, existing, request, desired)

    what = f"deploying {storage_uri} to {namespace}/{name}"
    timeout = request.timeout_seconds
    existing, plan, written = write_planned(api, namespace, name, get(api, namespace, name), planner, what)
    if written is None:
        assert existing is not None
        waited = wait_for(api, namespace, name, plan.expect(0), timeout)
        if not waited.ok:
            raise DeployError(
                f"InferenceService {namespace}/{name} already specifies {storage_uri} but is not ready: "
                f"{waited.message}; nothing was changed"
            )
        return status_from_object(waited.obj, "unchanged", plan.note)
    waited = wait_for(api, namespace, name, plan.expect(int(written["metadata"]["generation"])), timeout)
    if waited.ok:
        return status_from_object(waited.obj, plan.action, plan.note)
    if plan.kind == "create":
        raise DeployError(
            f"first deployment of {storage_uri} did not become ready: {waited.message}. There is no previous model "
            f"to roll back to: InferenceService {namespace}/{name} exists but serves nothing; fix the model or "
            "runtime and deploy again"
        )
    stable_uri = plan.stable_uri or annotations_of(written).get(PREVIOUS_URI_ANNOTATION, "") or "the previous model"
    current = get(api, namespace, name) or written
    outcome = apply_rollback(api, current, timeout, unwritten="the rollback was not written")
    if not outcome.ok:
        raise DeployError(
            f"{what} failed: {waited.message}. The rollback to {stable_uri} was attempted but did not complete: "
            f"{outcome.message or outcome.note}"
        )
    raise DeployError(f"{what} failed: {waited.message}. Rolled back: {outcome.note}")


def _render_result(request: DeployRequest, uri: str, base: dict) -> tuple[dict, dict]:
    """Render the manifest for ``action=render``; return (manifest, status)."""
    percent = request.canary_traffic_percent
    manifest = render(
        ServiceRequest(
            request.isvc_name,
            request.namespace,
            uri,
            canary_traffic_percent=percent
            if request.deployment_mode == KNATIVE and percent is not None and percent < 100
            else None,
            deployment_mode=request.deployment_mode,
            runtime=request.runtime,
            service_account_name=request.service_account_name,
            allow_local=True,
        )
    )
    local = uri.startswith("file://")
    notes = [
        "canaryTrafficPercent only splits traffic on an existing InferenceService; a first deployment takes 100%"
        if request.deployment_mode == KNATIVE
        else "Standard mode: deploy (action=apply) writes the spec.canary[] entry; this manifest has none"
    ]
    if local:
        notes.append(
            "storageUri is a local file:// path (local run): not deployable to a cluster until the model is "
            "published (publish_model to s3:// or pvc://) and passed as storage_uri"
        )
    status = {
        **base,
        "deployed": False,
        "reason": "rendered (action=render)",
        "url": "",
        "storage_uri": uri,
        "deployable": not local,
        "deployment_mode": request.deployment_mode,
        "notes": notes,
    }
    return manifest, status


def deploy_action(
    request: DeployRequest,
    *,
    blessing_path: str,
    model_uri: str,
    manifest_path: str,
    status_path: str,
    model_path: str = "",
    api_client: Any = None,
) -> dict:
    """Run the deploy component's logic: gate, then render or apply; write the manifest and status files.

    Args:
        request: The checked parameters.
        blessing_path: The evaluator's blessing JSON.
        model_uri: The Model artifact's URI (``minio://...``, ``s3://...``, or a local path under kfp.local).
        manifest_path: Where to write the rendered/applied InferenceService YAML.
        status_path: Where to write the status JSON.
        model_path: The model directory on this machine (the artifact's local path); default ``model_uri``.
        api_client: Use this client instead of loading one (tests, CLI).

    Returns:
        ``{"deployed": bool, "reason": str, "url": str, ...}``, the same dict written to ``status_path``.

    Raises:
        ConfigError, DataError: Bad parameters, blessing, or a blessing about another model (nothing written).
        DeployError: The deployment failed and was rolled back (status file written with the reason).
    """
    local_model = model_path or model_uri
    decision = gate(blessing_path, local_model)
    base = {
        "action": request.action,
        "isvc_name": request.isvc_name,
        "namespace": request.namespace,
        "blessed": decision.blessed,
        "gate": decision.reason,
    }
    if not decision.blessed:
        result = {**base, "deployed": False, "reason": decision.reason, "url": ""}
        artifacts.write_text(manifest_path, f"# Nothing rendered or applied: {decision.reason}\n")
        artifacts.write_json(status_path, result)
        return result
    storage_uri = request.storage_uri
    if request.publish_uri:
        storage_uri = publish_versioned(
            local_model,
            request.publish_uri,
            files=decision.files,
            s3_endpoint_url=request.s3_endpoint_url,
            pvc_mount_root=request.pvc_mount_root,
        )
        base["published_to"] = storage_uri
    if request.action == "render":
        manifest, result = _render_result(request, storage_uri or model_storage_uri(model_uri, allow_local=True), base)
        artifacts.write_text(manifest_path, to_yaml(manifest))
        artifacts.write_json(status_path, result)
        return result

    uri = storage_uri or model_storage_uri(model_uri)
    with api_session(request.kubeconfig_path, api_client) as api:
        try:
            status = deploy(
                request.isvc_name,
                request.namespace,
                uri,
                canary_traffic_percent=request.canary_traffic_percent,
                deployment_mode=request.deployment_mode,
                timeout_seconds=request.timeout_seconds,
                api_client=api,
                runtime=request.runtime,
                service_account_name=request.service_account_name,
            )
            obj = require(api, request.namespace, request.isvc_name)
        except DeployError as exc:
            failed = {**base, "deployed": False, "reason": str(exc), "url": "", "storage_uri": uri}
            artifacts.write_json(status_path, failed)
            raise
    result = {
        **status.as_dict(),
        **base,
        "rollout": status.action,
        "deployed": True,
        "reason": f"{status.action}: {status.message}",
    }
    artifacts.write_text(manifest_path, to_yaml(strip_server_fields(obj)))
    artifacts.write_json(status_path, result)
    return result
