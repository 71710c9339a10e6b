"""Rollout plans: what one deploy or promote writes, planned from one read of the InferenceService.

A plan is a value: ``create`` (the body to create), ``patch`` (a JSON merge patch), ``unchanged`` (nothing to
write) or ``refused`` (nothing may be written, and why), with what ``status`` must show afterwards.
Planning reads nothing from the cluster itself, except whether a Standard-mode canary is supported.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any, Callable

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.deployment.kserve.client import standard_canary_supported
from kfp_tabular.components.deployment.kserve.isvc import (
    KNATIVE,
    PREDICTOR_ANNOTATION_KEYS_WE_OWN,
    PREVIOUS_PREDICTOR_ANNOTATION,
    PREVIOUS_PREDICTOR_NAME_ANNOTATION,
    PREVIOUS_URI_ANNOTATION,
    PROMETHEUS_SCRAPING_ANNOTATION,
    ROLLED_BACK_FROM_ANNOTATION,
    ROLLOUT_STATE_ANNOTATION,
    STANDARD,
    STATE_CANARY,
    STATE_ROLLED_BACK,
    STATE_STABLE,
    annotations_of,
    canaries_of,
    canary_status,
    condition,
    describe_failure,
    generation_of,
    logger_of,
    mode_of,
    model_failure,
    ns_name,
    predictor_of,
    predictor_status,
    predictor_uri,
    rollout_state,
)
from kfp_tabular.components.deployment.kserve.readiness import Expectation, baseline, current_expectation
from kfp_tabular.components.deployment.kserve.request import ServiceRequest


@dataclasses.dataclass
class Plan:
    """One write planned from one read.

    ``kind``: create, patch, unchanged (nothing to write) or refused (``note`` says why).
    """

    kind: str
    body: dict | None
    expect: Callable[[int], Expectation]
    action: str
    note: str
    stable_uri: str = ""


def canary_name(storage_uri: str) -> str:
    """Return a stable Standard-mode canary name for a model: ``m`` + 10 hex digits of its URI's sha256."""
    return "m" + hashlib.sha256(storage_uri.encode()).hexdigest()[:10]


def merge_diff(current: Any, target: Any) -> Any:
    """Return the JSON merge patch (RFC 7386) that turns ``current`` into exactly ``target``.

    Keys of ``current`` that ``target`` lacks become ``null`` at every depth, so nested maps (``resources``)
    end up replaced rather than merged: no old ``requests`` survive next to new ``limits``.
    """
    if not isinstance(current, dict) or not isinstance(target, dict):
        return copy.deepcopy(target)
    patch: dict[str, Any] = {}
    for key, value in target.items():
        if key not in current:
            patch[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(current[key], dict):
            sub = merge_diff(current[key], value)
            if sub:
                patch[key] = sub
        elif current[key] != value:
            patch[key] = copy.deepcopy(value)
    for key in current:
        if key not in target:
            patch[key] = None
    return patch


def model_patch(existing_model: dict, desired_model: dict) -> dict:
    """Merge-patch body turning ``existing_model`` into ``desired_model``.

    Fields we no longer set (runtime, resources) become null, and ``resources`` is replaced as a whole; other
    fields someone added to the model (env, args, ...) are left alone.
    """
    patch: dict[str, Any] = copy.deepcopy(desired_model)
    for key in ("runtime", "resources"):
        if key in existing_model and key not in desired_model:
            patch[key] = None
    if isinstance(desired_model.get("resources"), dict) and isinstance(existing_model.get("resources"), dict):
        patch["resources"] = merge_diff(existing_model["resources"], desired_model["resources"])
    return patch


def predictor_annotations_patch(existing_predictor: dict, desired_predictor: dict) -> dict | None:
    """Merge patch of a predictor's ``annotations``: ours (the model sha256) set or removed, others left alone."""
    current = existing_predictor.get("annotations") or {}
    want = desired_predictor.get("annotations") or {}
    patch = {k: v for k, v in want.items() if current.get(k) != v}
    for key in PREDICTOR_ANNOTATION_KEYS_WE_OWN:
        if key in current and key not in want:
            patch[key] = None
    return patch or None


def spec_matches(existing: dict, desired_predictor: dict, mode: str) -> bool:
    """Whether the model the service is moving to is already the desired one (same URI and settings)."""
    if mode == STANDARD and canaries_of(existing):
        current = canaries_of(existing)[0].get("predictor") or {}
    else:
        current = predictor_of(existing)
    model = current.get("model") or {}
    want = desired_predictor["model"]
    keys = ("storageUri", "runtime", "protocolVersion", "modelFormat", "resources")
    same_model = all(model.get(k) == want.get(k) for k in keys)
    same_sa = (current.get("serviceAccountName") or predictor_of(existing).get("serviceAccountName") or "") == (
        desired_predictor.get("serviceAccountName") or ""
    )
    # The payload logger is part of what serves: turning it on or off (or another sink) writes the predictor.
    same_logger = logger_pair(current) == logger_pair(desired_predictor)
    return same_model and same_sa and same_logger


def logger_pair(predictor: dict) -> tuple[str, str]:
    """Return a predictor's payload logger as ``(mode, url)`` (``("", "")`` when off), the part deploy sets."""
    logger = logger_of(predictor)
    return str(logger.get("mode") or ""), str(logger.get("url") or "")


def logger_patch(existing_predictor: dict, desired_predictor: dict) -> dict | None:
    """Merge patch of a predictor's ``logger``: exactly the desired one (None removes it; other fields dropped)."""
    want = logger_of(desired_predictor)
    if not want:
        return None
    return merge_diff(logger_of(existing_predictor), want) if logger_of(existing_predictor) else want


def stable_predictor_json(existing: dict, mode: str) -> str | None:
    """Return the predictor a rollback returns to once the next model is written, as the annotation's JSON.

    Knative during a canary: the one recorded when the canary started (the spec holds the canary's model).
    Otherwise the current predictor (Standard keeps canaries in ``spec.canary``), without
    ``canaryTrafficPercent``.
    """
    if mode == KNATIVE and rollout_state(existing) == STATE_CANARY:
        return annotations_of(existing).get(PREVIOUS_PREDICTOR_ANNOTATION) or None
    predictor = copy.deepcopy(predictor_of(existing))
    predictor.pop("canaryTrafficPercent", None)
    return json.dumps(predictor, sort_keys=True, separators=(",", ":"))


def canary_not_ready(obj: dict) -> str:
    """Why ``obj``'s canary may not be promoted ("" when it is ready): a canary is promoted only when ready."""
    status = obj.get("status") or {}
    generation = generation_of(obj)
    observed = int(status.get("observedGeneration") or 0)
    head = f"InferenceService {ns_name(obj)} is not a ready canary, so it is not promoted (nothing changed): "
    tail = "; wait until the canary is ready (get_status), or roll it back"
    if observed < generation:
        return f"{head}the controller has not seen generation {generation} yet (observed {observed}){tail}"
    if mode_of(obj) == STANDARD:
        cname = ((canaries_of(obj)[0].get("predictor") or {}).get("name")) or ""
        entry = canary_status(obj, cname)
        if not entry:
            return f"{head}canary {cname!r} has no status yet{tail}"
        if not entry.get("ready"):
            failure = model_failure(entry.get("modelStatus"))
            why = describe_failure(failure) if failure else "not ready"
            return f"{head}canary {cname!r}: {why}{tail}"
        return ""
    ready = condition(obj, "Ready")
    revisions = predictor_status(obj)
    created = revisions.get("latestCreatedRevision") or ""
    latest_ready = revisions.get("latestReadyRevision") or ""
    if ready.get("status") != "True" or not created or created != latest_ready:
        cond = " ".join(x for x in (ready.get("status", "missing"), ready.get("reason", "")) if x)
        message = f" ({ready['message']})" if ready.get("message") else ""
        return (
            f"{head}Ready={cond}{message}, latest created revision {created or 'none'}, latest ready revision "
            f"{latest_ready or 'none'}{tail}"
        )
    return ""


def refused(obj: dict, why: str) -> Plan:
    """Return a plan that writes nothing because the request cannot be carried out on ``obj``."""
    return Plan("refused", None, lambda gen: current_expectation(obj), "refused", why)


def promote_plan(obj: dict, check_health: bool = True, action: str = "promoted") -> Plan:
    """Plan the promotion of ``obj``'s canary: "unchanged" when there is none, "refused" when it may not be."""
    where = ns_name(obj)
    mode = mode_of(obj)
    if rollout_state(obj) == STATE_ROLLED_BACK:
        return refused(
            obj,
            f"InferenceService {where} was rolled back from "
            f"{annotations_of(obj).get(ROLLED_BACK_FROM_ANNOTATION, 'its canary')}: there is no canary to promote; "
            "deploy a new model instead",
        )
    unchanged = Plan("unchanged", None, lambda gen: current_expectation(obj), "unchanged", "no canary to promote")
    annotations: dict[str, Any] = {ROLLOUT_STATE_ANNOTATION: STATE_STABLE}
    if mode == STANDARD:
        canaries = canaries_of(obj)
        if not canaries:
            return unchanged
        if len(canaries) != 1:
            return refused(obj, f"InferenceService {where} has {len(canaries)} canaries; promote expects one")
        not_ready = canary_not_ready(obj) if check_health else ""
        if not_ready:
            return refused(obj, not_ready)
        canary_predictor = canaries[0].get("predictor") or {}
        stable = predictor_of(obj)
        annotations[PREVIOUS_PREDICTOR_NAME_ANNOTATION] = stable.get("name") or None
        predictor_patch = {
            "name": canary_predictor.get("name"),
            "model": model_patch(stable.get("model") or {}, canary_predictor.get("model") or {}),
            "serviceAccountName": canary_predictor.get("serviceAccountName") or None,
            "logger": logger_patch(stable, canary_predictor),
        }
        annotations_patch = predictor_annotations_patch(stable, canary_predictor)
        if annotations_patch:
            predictor_patch["annotations"] = annotations_patch
        body = {"metadata": {"annotations": annotations}, "spec": {"predictor": predictor_patch, "canary": None}}
        before = baseline(obj, new_revision=False)
        uri = (canary_predictor.get("model") or {}).get("storageUri", "")
        expect = lambda gen: Expectation(gen, mode, no_canaries=True, **before)  # noqa: E731
    else:
        if predictor_of(obj).get("canaryTrafficPercent") is None:
            return unchanged
        not_ready = canary_not_ready(obj) if check_health else ""
        if not_ready:
            return refused(obj, not_ready)
        body = {"metadata": {"annotations": annotations}, "spec": {"predictor": {"canaryTrafficPercent": None}}}
        uri = predictor_uri(obj)
        expect = lambda gen: Expectation(gen, mode, latest_percent=100)  # noqa: E731
    return Plan("patch", body, expect, action, f"{uri} takes 100% of the traffic")


def retarget_plan(existing: dict, mode: str, want: int | None, storage_uri: str) -> Plan:
    """Plan a deploy of the model already there: move its canary's traffic to ``want`` percent (None: 100%)."""
    unchanged = Plan(
        "unchanged",
        None,
        lambda gen: current_expectation(existing),
        "unchanged",
        f"{storage_uri} is already deployed; nothing written",
    )
    if rollout_state(existing) != STATE_CANARY:
        return unchanged
    previous = annotations_of(existing).get(PREVIOUS_URI_ANNOTATION, "") or "the previous model"
    if want is None:
        plan = promote_plan(existing, check_health=False, action="rolled-out")
        if plan.kind == "refused":
            return unchanged
        if plan.kind == "patch":
            plan.note = f"{storage_uri} (the canary) now takes 100% of the traffic (previous: {previous})"
        return plan
    if mode == KNATIVE:
        current = predictor_of(existing).get("canaryTrafficPercent")
        if current is None or current == want:
            return unchanged
        body = {"spec": {"predictor": {"canaryTrafficPercent": want}}}
        # No new revision: a failed latest revision is current, so no baseline.
        expect = lambda gen: Expectation(gen, mode, latest_percent=want)  # noqa: E731
    else:
        canaries = canaries_of(existing)
        if len(canaries) != 1:
            return unchanged
        current = canaries[0].get("trafficPercent")
        if current == want:
            return unchanged
        entry = copy.deepcopy(canaries[0])
        entry["trafficPercent"] = want
        cname = (entry.get("predictor") or {}).get("name", "")
        body = {"spec": {"canary": [entry]}}
        before = baseline(existing, new_revision=False, canary_name=cname)
        expect = lambda gen: Expectation(gen, mode, canary_name=cname, canary_percent=want, **before)  # noqa: E731
    note = f"{storage_uri} at {want}% of the traffic (was {current}%), {previous} at {100 - want}%"
    return Plan("patch", body, expect, "canary", note)


def deploy_plan(api: Any, existing: dict | None, request: ServiceRequest, desired: dict) -> Plan:
    """Plan a deploy of ``desired`` (rendered from ``request``) against ``existing`` (None: not there yet)."""
    storage_uri, percent, mode = request.storage_uri, request.canary_traffic_percent, request.deployment_mode
    desired = copy.deepcopy(desired)
    namespace, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
    desired_predictor = desired["spec"]["predictor"]
    if existing is None:
        desired["metadata"]["annotations"][ROLLOUT_STATE_ANNOTATION] = STATE_STABLE
        return Plan(
            "create",
            desired,
            lambda gen: Expectation(gen, mode, latest_percent=100, no_canaries=True),
            "created",
            f"created with {storage_uri} taking 100% of the traffic",
        )
    existing_mode = mode_of(existing)
    if existing_mode != mode:
        raise ConfigError(
            f"deployment_mode: InferenceService {namespace}/{name} runs in {existing_mode} mode, asked for {mode}; "
            "KServe cannot switch an InferenceService's mode in place"
        )
    # An empty runtime / service account means "not specified": keep what the service already has.
    if not request.runtime and (predictor_of(existing).get("model") or {}).get("runtime"):
        desired_predictor["model"]["runtime"] = predictor_of(existing)["model"]["runtime"]
    if not request.service_account_name and predictor_of(existing).get("serviceAccountName"):
        desired_predictor["serviceAccountName"] = predictor_of(existing)["serviceAccountName"]
    canary = percent is not None and percent < 100
    if spec_matches(existing, desired_predictor, mode):
        return retarget_plan(existing, mode, percent if canary else None, storage_uri)

    state = rollout_state(existing)
    annotations = annotations_of(existing)
    status = ((existing.get("status") or {}).get("components") or {}).get("predictor") or {}
    note = ""
    meta_patch: dict[str, Any] = {
        "labels": desired["metadata"]["labels"],
        "annotations": {ROLLED_BACK_FROM_ANNOTATION: None},
    }
    for key in (PROMETHEUS_SCRAPING_ANNOTATION,):
        if key in desired["metadata"]["annotations"] and key not in annotations_of(existing):
            meta_patch["annotations"][key] = desired["metadata"]["annotations"][key]
    if mode == KNATIVE:
        stable_uri = annotations.get(PREVIOUS_URI_ANNOTATION, "") if state == STATE_CANARY else predictor_uri(existing)
        stable_uri = stable_uri or predictor_uri(existing)
        if canary and not status.get("latestRolledoutRevision"):
            canary, note = False, "no revision was ever rolled out, so the model takes 100% (no canary)"
        predictor_patch: dict[str, Any] = {
            "model": model_patch(predictor_of(existing).get("model") or {}, desired_predictor["model"]),
            "canaryTrafficPercent": percent if canary else None,
            "serviceAccountName": desired_predictor.get("serviceAccountName") or None,
            "logger": logger_patch(predictor_of(existing), desired_predictor),
        }
        annotations_patch = predictor_annotations_patch(predictor_of(existing), desired_predictor)
        if annotations_patch:
            predictor_patch["annotations"] = annotations_patch
        spec_patch: dict[str, Any] = {"predictor": predictor_patch}
        old_revision = status.get("latestReadyRevision", "")
        latest_percent = percent if canary and percent is not None else 100
        before = baseline(existing, new_revision=True)

        def expect(gen: int) -> Expectation:
            return Expectation(gen, mode, latest_percent=latest_percent, not_revision=old_revision, **before)

    else:
        stable_uri = predictor_uri(existing)
        if canary and not standard_canary_supported(api, namespace):
            raise ConfigError(
                "canary_traffic_percent: Standard mode has no canary in this cluster's KServe (its InferenceService "
                "CRD has no spec.canary, added in KServe 0.20; older versions silently ignore canaryTrafficPercent "
                "in this mode, see KServe #5335/#4074). Use deployment_mode=Knative, upgrade KServe, or pass "
                "canary_traffic_percent=None for a full rollout"
            )
        if canary:
            cname = canary_name(storage_uri)
            # The canary's model is a full Container in the CRD: its container name is required.
            canary_model = {"name": "kserve-container", **desired_predictor["model"]}
            canary_predictor = {"name": cname, "model": canary_model}
            if desired_predictor.get("serviceAccountName"):
                canary_predictor["serviceAccountName"] = desired_predictor["serviceAccountName"]
            if desired_predictor.get("annotations"):
                canary_predictor["annotations"] = dict(desired_predictor["annotations"])
            if desired_predictor.get("logger"):
                canary_predictor["logger"] = dict(desired_predictor["logger"])
            spec_patch = {"canary": [{"trafficPercent": percent, "predictor": canary_predictor}]}
            canary_percent = int(percent or 0)
            before = baseline(existing, new_revision=False, canary_name=cname)

            def expect(gen: int) -> Expectation:
                return Expectation(gen, mode, canary_name=cname, canary_percent=canary_percent, **before)

        else:
            spec_patch = {
                "predictor": {
                    "model": model_patch(predictor_of(existing).get("model") or {}, desired_predictor["model"]),
                    "serviceAccountName": desired_predictor.get("serviceAccountName") or None,
                    "logger": logger_patch(predictor_of(existing), desired_predictor),
                },
                "canary": None,
            }
            annotations_patch = predictor_annotations_patch(predictor_of(existing), desired_predictor)
            if annotations_patch:
                spec_patch["predictor"]["annotations"] = annotations_patch
            before = baseline(existing, new_revision=False)

            def expect(gen: int) -> Expectation:
                return Expectation(gen, mode, no_canaries=True, **before)

        meta_patch["annotations"][PREVIOUS_PREDICTOR_NAME_ANNOTATION] = predictor_of(existing).get("name") or None
    meta_patch["annotations"][PREVIOUS_URI_ANNOTATION] = stable_uri or None
    meta_patch["annotations"][PREVIOUS_PREDICTOR_ANNOTATION] = stable_predictor_json(existing, mode)
    meta_patch["annotations"][ROLLOUT_STATE_ANNOTATION] = STATE_CANARY if canary else STATE_STABLE
    if not note:
        note = (
            f"{storage_uri} at {percent}% of the traffic, {stable_uri} at {100 - int(percent or 0)}%"
            if canary
            else f"{storage_uri} rolled out to 100% of the traffic (previous: {stable_uri})"
        )
    return Plan(
        "patch",
        {"metadata": meta_patch, "spec": spec_patch},
        expect,
        "canary" if canary else "rolled-out",
        note,
        stable_uri,
    )
