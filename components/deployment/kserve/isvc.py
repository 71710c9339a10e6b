"""The InferenceService API (``serving.kserve.io/v1beta1``) and read-only accessors of its objects.

Every other module of the package reads InferenceService objects (plain dicts, as the Kubernetes API returns
them) through these accessors, so the shape of the object is known in one place.

The rollout state lives in annotations on the InferenceService (``kfp-tabular.dev/...``): the previous
storageUri and the whole previous predictor (JSON), whether a canary is in progress, and what a rollback
reverted, so promote and rollback can run in another process than the deploy that started the canary.
"""

from __future__ import annotations

from typing import Any

from kfp_tabular.components.common.errors import ConfigError

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"

KNATIVE = "Knative"
STANDARD = "Standard"
#: Accepted spellings of the deployment mode; KServe >= 0.16 renamed Serverless/RawDeployment.
DEPLOYMENT_MODES = {"knative": KNATIVE, "serverless": KNATIVE, "standard": STANDARD, "rawdeployment": STANDARD}

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
PREVIOUS_URI_ANNOTATION = "kfp-tabular.dev/previous-storage-uri"
PREVIOUS_PREDICTOR_NAME_ANNOTATION = "kfp-tabular.dev/previous-predictor-name"
PREVIOUS_PREDICTOR_ANNOTATION = "kfp-tabular.dev/previous-predictor"
ROLLOUT_STATE_ANNOTATION = "kfp-tabular.dev/rollout-state"
ROLLED_BACK_FROM_ANNOTATION = "kfp-tabular.dev/rolled-back-from"
#: On a predictor (``spec.predictor.annotations``, or a Standard canary's): the sha256 of the model file it
#: serves, the ``model_sha256`` label of its metrics. It travels with the predictor (previous-predictor record,
#: promote, rollback), so each revision's metrics can be told apart in Prometheus.
MODEL_SHA_ANNOTATION = "kfp-tabular.dev/model-sha256"
#: On a predictor, beside the model sha256: the KFP run that produced the model it serves, and where that model's
#: lineage record is (``common.lineage``; ``kfp-tabular lineage --name`` reads it). They travel with the predictor
#: as the sha does, so a canary and its stable model each name their own run and record.
RUN_ID_ANNOTATION = "kfp-tabular.dev/run-id"
LINEAGE_URI_ANNOTATION = "kfp-tabular.dev/lineage-uri"
PREDICTOR_ANNOTATION_KEYS_WE_OWN = (MODEL_SHA_ANNOTATION, RUN_ID_ANNOTATION, LINEAGE_URI_ANNOTATION)
#: KServe's payload logger on a predictor (``spec.predictor.logger``: ``mode`` one of these, ``url`` the sink).
LOGGER_MODES = ("all", "request", "response")
#: The last rollout's analysis in brief (JSON: strategy, verdict, reason, finished_at, steps' percent and
#: verdict), written by deploy after a rollout so ``kfp-tabular rollout status`` can show it.
LAST_ANALYSIS_ANNOTATION = "kfp-tabular.dev/last-analysis"
#: KServe: add ``prometheus.io/scrape|port|path`` to the predictor pods (port and path from the ServingRuntime's
#: ``prometheus.kserve.io/port|path``).
PROMETHEUS_SCRAPING_ANNOTATION = "serving.kserve.io/enable-prometheus-scraping"

STATE_STABLE = "stable"
STATE_CANARY = "canary"
STATE_ROLLED_BACK = "rolled-back"
ROLLOUT_STATES = (STATE_STABLE, STATE_CANARY, STATE_ROLLED_BACK)

#: KServe ``modelStatus.transitionStatus`` values that say the model will not load without a spec change.
FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")


def normalize_deployment_mode(deployment_mode: str) -> str:
    """Return KServe's canonical name of a deployment mode.

    Args:
        deployment_mode: ``Knative`` (alias ``Serverless``) or ``Standard`` (alias ``RawDeployment``), any case.

    Returns:
        ``"Knative"`` or ``"Standard"``, the values KServe 0.16+ writes in ``serving.kserve.io/deploymentMode``
        (it still accepts the old names and normalizes them).

    Raises:
        ConfigError: If the mode is not one of those.
    """
    mode = DEPLOYMENT_MODES.get(str(deployment_mode).strip().lower()) if isinstance(deployment_mode, str) else None
    if mode is None:
        raise ConfigError(
            f"deployment_mode: expected Knative (alias Serverless) or Standard (alias RawDeployment), "
            f"got {deployment_mode!r}"
        )
    return mode


def condition(obj: dict, ctype: str) -> dict:
    """Return the ``status.conditions`` entry of type ``ctype`` ({} when absent)."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return {}


def annotations_of(obj: dict) -> dict:
    """Return ``metadata.annotations`` ({} when absent)."""
    return (obj.get("metadata") or {}).get("annotations") or {}


def predictor_of(obj: dict) -> dict:
    """Return ``spec.predictor`` ({} when absent)."""
    return (obj.get("spec") or {}).get("predictor") or {}


def predictor_uri(obj: dict) -> str:
    """Return the predictor model's ``storageUri``."""
    return (predictor_of(obj).get("model") or {}).get("storageUri", "")


def model_sha_of(predictor: dict) -> str:
    """Return the model sha256 recorded on a predictor spec (``""`` when none is)."""
    return str(((predictor or {}).get("annotations") or {}).get(MODEL_SHA_ANNOTATION) or "")


def logger_of(predictor: dict) -> dict:
    """Return a predictor spec's payload ``logger`` ({} when it has none)."""
    return dict((predictor or {}).get("logger") or {})


def canaries_of(obj: dict) -> list:
    """Return Standard mode's ``spec.canary[]`` entries."""
    return (obj.get("spec") or {}).get("canary") or []


def predictor_status(obj: dict) -> dict:
    """Return ``status.components.predictor`` (Knative revisions and traffic; {} when absent)."""
    return ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}


def canary_status(obj: dict, canary_name: str) -> dict:
    """Return the ``status.canaryStatuses`` entry of the named Standard-mode canary ({} when absent)."""
    for entry in (obj.get("status") or {}).get("canaryStatuses") or []:
        if entry.get("name") == canary_name:
            return entry
    return {}


def generation_of(obj: dict) -> int:
    """Return ``metadata.generation``."""
    return int((obj.get("metadata") or {}).get("generation") or 0)


def ns_name(obj: dict) -> str:
    """Return ``namespace/name``, for messages."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def mode_of(obj: dict) -> str:
    """Return the deployment mode an InferenceService asks for (its annotation; KServe 0.16+ defaults to Standard)."""
    status_mode = (obj.get("status") or {}).get("deploymentMode")
    value = annotations_of(obj).get(DEPLOYMENT_MODE_ANNOTATION) or status_mode or STANDARD
    return DEPLOYMENT_MODES.get(value.lower(), value)


def rollout_state(obj: dict) -> str:
    """Return stable, canary or rolled-back: from our annotation, else inferred from the spec (e.g. kubectl apply)."""
    state = annotations_of(obj).get(ROLLOUT_STATE_ANNOTATION)
    if state in ROLLOUT_STATES:
        return state
    if mode_of(obj) == STANDARD:
        return STATE_CANARY if canaries_of(obj) else STATE_STABLE
    percent = predictor_of(obj).get("canaryTrafficPercent")
    if percent is None or percent >= 100:
        return STATE_STABLE
    return STATE_ROLLED_BACK if percent == 0 else STATE_CANARY


def model_failure(model_status: Any) -> dict | None:
    """Return the failure a KServe ``modelStatus`` reports, or None.

    KServe's ``PropagateModelStatus`` sets ``transitionStatus`` to ``BlockedByFailedLoad`` (the model or its
    storage initializer failed) or ``InvalidSpec``, ``states.activeModelState`` to ``FailedToLoad`` and
    ``lastFailureInfo`` (reason, message, location, exitCode, time, modelRevisionName). The same structure is
    in ``status.modelStatus`` (the predictor) and in each ``status.canaryStatuses[].modelStatus``.
    """
    if not isinstance(model_status, dict):
        return None
    transition = model_status.get("transitionStatus") or ""
    active = (model_status.get("states") or {}).get("activeModelState") or ""
    if transition not in FAILED_TRANSITIONS and active != "FailedToLoad":
        return None
    return {
        "transitionStatus": transition,
        "activeModelState": active,
        "lastFailureInfo": dict(model_status.get("lastFailureInfo") or {}),
    }


def describe_failure(failure: dict) -> str:
    """Describe a :func:`model_failure` in one line."""
    info = failure.get("lastFailureInfo") or {}
    parts = [f"transitionStatus={failure.get('transitionStatus') or 'none'}"]
    if failure.get("activeModelState"):
        parts.append(f"activeModelState={failure['activeModelState']}")
    what = ": ".join(x for x in (info.get("reason", ""), info.get("message", "")) if x)
    if what:
        parts.append(what)
    if info.get("location"):
        parts.append(f"at {info['location']}")
    return ", ".join(parts)


def crd_has_canary(crd: dict) -> bool:
    """Whether an InferenceService CRD's ``v1beta1`` schema has ``spec.canary[]`` (KServe 0.20+)."""
    for version in crd.get("spec", {}).get("versions", []) or []:
        if version.get("name") != VERSION:
            continue
        spec = version.get("schema", {}).get("openAPIV3Schema", {}).get("properties", {}).get("spec", {})
        canary = spec.get("properties", {}).get("canary", {})
        items = canary.get("items", {}).get("properties", {})
        return canary.get("type") == "array" and "predictor" in items and "trafficPercent" in items
    return False
