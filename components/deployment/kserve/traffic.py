"""Traffic steps of a progressive rollout: move a canary's share, find the preview URL, read the two models.

:func:`step_plan` plans the write of one step from one read (a :class:`~.plans.Plan`, like deploy's and
promote's plans); :func:`set_canary_percent` writes it guarded by ``resourceVersion`` (re-planned on a
conflict, :func:`~.client.write_planned`) and waits until ``status`` shows the split, as deploy does.

Knative: the step is ``spec.predictor.canaryTrafficPercent`` (the latest revision's share; the rest stays on
the last rolled-out revision). At 100 KServe counts the canary revision as rolled out (``PropagateStatus``):
a rollback from there reverts the predictor, which makes a new revision serving the previous model (the
canary keeps serving until it is ready) instead of re-pinning the old revision at once.
Standard: the step is the single ``spec.canary[]`` entry's ``trafficPercent``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.kserve.client import write_planned
from kfp_tabular.components.deployment.kserve.isvc import (
    KNATIVE,
    PREVIOUS_PREDICTOR_ANNOTATION,
    STATE_CANARY,
    TAG_ROUTING_ANNOTATION,
    annotations_of,
    canaries_of,
    generation_of,
    mode_of,
    model_sha_of,
    ns_name,
    predictor_of,
    predictor_status,
    rollout_state,
)
from kfp_tabular.components.deployment.kserve.plans import Plan, refused
from kfp_tabular.components.deployment.kserve.readiness import Expectation, baseline, current_expectation
from kfp_tabular.components.deployment.kserve.wait import wait_for


def canary_percent(obj: dict) -> int | None:
    """Return the canary's current share of the traffic (None: no canary in the spec)."""
    if mode_of(obj) == KNATIVE:
        value = predictor_of(obj).get("canaryTrafficPercent")
    else:
        canaries = canaries_of(obj)
        value = canaries[0].get("trafficPercent") if canaries else None
    return None if value is None else int(value)


def step_plan(obj: dict, percent: int) -> Plan:
    """Plan one step: the canary in progress takes ``percent`` (0-100) of the traffic.

    ``refused`` when there is no canary in progress (nothing to step: it was promoted or rolled back by
    someone else, or never written), or Standard mode has other than one canary entry.
    """
    where = ns_name(obj)
    mode = mode_of(obj)
    if rollout_state(obj) != STATE_CANARY:
        return refused(obj, f"InferenceService {where} has no canary in progress (state {rollout_state(obj)})")
    current = canary_percent(obj)
    unchanged = Plan(
        "unchanged", None, lambda gen: current_expectation(obj), "unchanged", f"canary already at {percent}%"
    )
    if mode == KNATIVE:
        if current is None:
            return refused(obj, f"InferenceService {where} has no canaryTrafficPercent: the canary was rolled out")
        if current == percent:
            return unchanged
        body: dict[str, Any] = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
        expect = lambda gen: Expectation(gen, mode, latest_percent=percent)  # noqa: E731
    else:
        canaries = canaries_of(obj)
        if len(canaries) != 1:
            return refused(obj, f"InferenceService {where} has {len(canaries)} canaries; a step expects one")
        if current == percent:
            return unchanged
        entry = copy.deepcopy(canaries[0])
        entry["trafficPercent"] = percent
        cname = (entry.get("predictor") or {}).get("name", "")
        body = {"spec": {"canary": [entry]}}
        before = baseline(obj, new_revision=False, canary_name=cname)
        expect = lambda gen: Expectation(gen, mode, canary_name=cname, canary_percent=percent, **before)  # noqa: E731
    return Plan("patch", body, expect, "canary", f"canary at {percent}% of the traffic (was {current}%)")


def set_canary_percent(api: Any, namespace: str, name: str, percent: int, timeout_seconds: float) -> dict:
    """Move the canary in progress to ``percent`` and wait until status shows that split; return the object.

    Raises:
        DeployError: No canary in progress, the API refused, a concurrent writer won twice, or the split did
            not show in time (nothing is rolled back here: the caller decides).
    """
    from kfp_tabular.components.deployment.kserve.client import require

    obj = require(api, namespace, name)
    planned_from, plan, written = write_planned(
        api, namespace, name, obj, lambda current: step_plan(current or obj, percent), f"step to {percent}%"
    )
    if plan.kind == "refused":
        raise DeployError(f"cannot move the canary to {percent}%: {plan.note}")
    expectation = plan.expect(generation_of(written)) if written is not None else current_expectation(planned_from)
    waited = wait_for(api, namespace, name, expectation, timeout_seconds)
    if not waited.ok:
        raise DeployError(f"step to {percent}% on InferenceService {namespace}/{name}: {waited.message}")
    return waited.obj or obj


def check_blue_green(obj: dict) -> None:
    """Refuse blue-green where the candidate cannot have its own URL at 0% of the traffic.

    Raises:
        ConfigError: Standard mode (no per-canary URL), or Knative without tag routing.
    """
    where = ns_name(obj)
    if mode_of(obj) != KNATIVE:
        raise ConfigError(
            "rollout_strategy, deployment_mode: blue-green needs the candidate on its own URL at 0% of the traffic; "
            f"InferenceService {where} is in Standard mode, whose spec.canary[] entries have no URL of their own "
            "(status.canaryStatuses holds name, ready, trafficPercent, modelStatus). Use rollout_strategy=canary "
            "in Standard mode, or deployment_mode=Knative for blue-green"
        )
    if annotations_of(obj).get(TAG_ROUTING_ANNOTATION) != "true":
        raise ConfigError(
            f"rollout_strategy: blue-green needs KServe tag routing, and InferenceService {where} lacks "
            f'the annotation {TAG_ROUTING_ANNOTATION}: "true"'
        )


def preview_url(obj: dict) -> str:
    """Return the URL of the latest revision's ``latest`` tag (Knative tag routing): the candidate's own URL.

    Raises:
        ConfigError: See :func:`check_blue_green`.
        DeployError: Status has no tagged URL for the latest revision yet.
    """
    check_blue_green(obj)
    where = ns_name(obj)
    for entry in predictor_status(obj).get("traffic") or []:
        if entry.get("latestRevision") and entry.get("tag") and entry.get("url"):
            return str(entry["url"])
    raise DeployError(
        f"InferenceService {where}: status.components.predictor.traffic has no tagged URL for the latest revision "
        "yet (KServe writes it once tag routing routes the revision)"
    )


def stable_and_canary_sha(obj: dict) -> tuple[str, str]:
    """Return ``(stable model sha256, canary model sha256)`` as the InferenceService records them ("" if not).

    Knative during a canary: the predictor spec is the canary's; the stable predictor is the one recorded in
    ``kfp-tabular.dev/previous-predictor``. Standard: the predictor is stable, the canary is ``spec.canary[0]``.
    Without a canary, both are the predictor's.
    """
    current = model_sha_of(predictor_of(obj))
    if mode_of(obj) == KNATIVE:
        if rollout_state(obj) != STATE_CANARY:
            return current, current
        try:
            recorded = json.loads(annotations_of(obj).get(PREVIOUS_PREDICTOR_ANNOTATION) or "{}")
        except ValueError:
            recorded = {}
        return (model_sha_of(recorded) if isinstance(recorded, dict) else ""), current
    canaries = canaries_of(obj)
    if not canaries:
        return current, current
    return current, model_sha_of(canaries[0].get("predictor") or {})
