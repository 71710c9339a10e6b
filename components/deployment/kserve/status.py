"""What an InferenceService looks like after a deploy, promote or rollback: :class:`DeployStatus`."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from kfp_tabular.components.common.artifacts import write_json
from kfp_tabular.components.common.errors import DeployError
from kfp_tabular.components.deployment.kserve.client import api_session, load_api_client, require
from kfp_tabular.components.deployment.kserve.isvc import (
    KNATIVE,
    PREVIOUS_URI_ANNOTATION,
    STANDARD,
    STATE_STABLE,
    annotations_of,
    canaries_of,
    condition,
    mode_of,
    ns_name,
    predictor_of,
    predictor_status,
    predictor_uri,
    rollout_state,
)
from kfp_tabular.components.deployment.kserve.readiness import current_expectation
from kfp_tabular.components.deployment.kserve.request import TargetRequest, check_name, check_namespace
from kfp_tabular.components.deployment.kserve.wait import wait_for


@dataclasses.dataclass
class DeployStatus:
    """What an InferenceService looks like after a deploy/promote/rollback, from its spec and status.

    Attributes:
        name: InferenceService name.
        namespace: Its namespace.
        action: What this call did: created, canary, rolled-out, unchanged, promoted, rolled-back, status.
        ready: Ready condition is True for the current generation.
        url: ``status.url`` (empty until KServe sets it).
        storage_uri: The model the predictor spec points at (Knative) / the stable predictor (Standard).
        previous_storage_uri: The model a rollback would return to (empty if none).
        canary_storage_uri: Standard mode: the model of the canary entry, if any.
        canary_traffic_percent: Knative ``canaryTrafficPercent`` or the Standard canary's ``trafficPercent``.
        deployment_mode: Knative or Standard.
        rollout_state: stable, canary or rolled-back.
        generation: ``metadata.generation``.
        observed_generation: ``status.observedGeneration``.
        latest_created_revision: Knative: ``status.components.predictor.latestCreatedRevision``.
        latest_ready_revision: Knative: the latest revision that became ready.
        latest_rolledout_revision: Knative: the latest revision that took 100% of the traffic.
        previous_rolledout_revision: Knative: the one before it.
        traffic: Knative: ``status.components.predictor.traffic`` entries.
        canaries: Standard: ``status.canaryStatuses`` entries.
        message: The Ready condition's reason/message when not ready, or a note from this call.
    """

    name: str
    namespace: str
    action: str = "status"
    ready: bool = False
    url: str = ""
    storage_uri: str = ""
    previous_storage_uri: str = ""
    canary_storage_uri: str = ""
    canary_traffic_percent: int | None = None
    deployment_mode: str = KNATIVE
    rollout_state: str = STATE_STABLE
    generation: int = 0
    observed_generation: int = 0
    latest_created_revision: str = ""
    latest_ready_revision: str = ""
    latest_rolledout_revision: str = ""
    previous_rolledout_revision: str = ""
    traffic: list = dataclasses.field(default_factory=list)
    canaries: list = dataclasses.field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict:
        """Return the status as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


def status_from_object(obj: dict, action: str = "status", message: str = "") -> DeployStatus:
    """Build a :class:`DeployStatus` from an InferenceService object."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    revisions = predictor_status(obj)
    mode = mode_of(obj)
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    ready_cond = condition(obj, "Ready")
    ready = ready_cond.get("status") == "True" and observed >= generation
    canary_uri, percent = "", None
    if mode == STANDARD:
        canaries = canaries_of(obj)
        if canaries:
            canary_uri = ((canaries[0].get("predictor") or {}).get("model") or {}).get("storageUri", "")
            percent = canaries[0].get("trafficPercent")
    else:
        percent = predictor_of(obj).get("canaryTrafficPercent")
    if not message and not ready:
        message = "; ".join(x for x in (ready_cond.get("reason", ""), ready_cond.get("message", "")) if x) or (
            "waiting for the controller" if observed < generation else "not ready"
        )
    return DeployStatus(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        action=action,
        ready=ready,
        url=status.get("url", "") or "",
        storage_uri=predictor_uri(obj),
        previous_storage_uri=annotations_of(obj).get(PREVIOUS_URI_ANNOTATION, ""),
        canary_storage_uri=canary_uri,
        canary_traffic_percent=percent,
        deployment_mode=mode,
        rollout_state=rollout_state(obj),
        generation=generation,
        observed_generation=observed,
        latest_created_revision=revisions.get("latestCreatedRevision", "") or "",
        latest_ready_revision=revisions.get("latestReadyRevision", "") or "",
        latest_rolledout_revision=revisions.get("latestRolledoutRevision", "") or "",
        previous_rolledout_revision=revisions.get("previousRolledoutRevision", "") or "",
        traffic=list(revisions.get("traffic") or []),
        canaries=list(status.get("canaryStatuses") or []),
        message=message,
    )


def get_status(name: str, namespace: str, api_client: Any = None) -> DeployStatus:
    """Return the current :class:`DeployStatus` of an InferenceService.

    Raises:
        DeployError: If it does not exist or cannot be read.
    """
    check_name(name)
    check_namespace(namespace)
    api = api_client or load_api_client()
    return status_from_object(require(api, namespace, name))


def confirm_unchanged(api_client: Any, obj: dict, timeout_seconds: float, note: str) -> DeployStatus:
    """Wait until an InferenceService nothing was written to is ready as it is; return its status ("unchanged").

    Raises:
        DeployError: It does not become ready in time.
    """
    meta = obj["metadata"]
    waited = wait_for(api_client, meta["namespace"], meta["name"], current_expectation(obj), timeout_seconds)
    if not waited.ok:
        raise DeployError(f"{note}, but InferenceService {ns_name(obj)} is not ready: {waited.message}")
    return status_from_object(waited.obj or obj, "unchanged", note)


def act_on_target(
    action: Callable[..., DeployStatus], request: TargetRequest, status_path: str, api_client: Any = None
) -> dict:
    """Run ``action`` (promote or rollback) on the request's InferenceService; write and return its status JSON."""
    with api_session(request.kubeconfig_path, api_client) as api:
        status = action(request.isvc_name, request.namespace, api_client=api, timeout_seconds=request.timeout_seconds)
    result = status.as_dict()
    write_json(status_path, result)
    return result
