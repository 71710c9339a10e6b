"""Rollback: return an InferenceService to the model (and the whole predictor) it served before.

:func:`rollback_plan` plans the merge patch from one read; :func:`apply_rollback` writes it, waits, and
returns a :class:`RollbackOutcome` the caller reads (never a note compared by text).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from kfp_tabular.components.common.errors import DeployError
from kfp_tabular.components.deployment.kserve.client import write_planned
from kfp_tabular.components.deployment.kserve.isvc import (
    PREVIOUS_PREDICTOR_ANNOTATION,
    PREVIOUS_PREDICTOR_NAME_ANNOTATION,
    PREVIOUS_URI_ANNOTATION,
    ROLLED_BACK_FROM_ANNOTATION,
    ROLLOUT_STATE_ANNOTATION,
    STANDARD,
    STATE_CANARY,
    STATE_ROLLED_BACK,
    annotations_of,
    canaries_of,
    generation_of,
    mode_of,
    ns_name,
    predictor_of,
    predictor_status,
    predictor_uri,
    rollout_state,
)
from kfp_tabular.components.deployment.kserve.plans import Plan, merge_diff, refused
from kfp_tabular.components.deployment.kserve.readiness import Expectation, baseline, current_expectation
from kfp_tabular.components.deployment.kserve.wait import wait_for


def recorded_predictor(obj: dict, previous_uri: str) -> tuple[dict | None, str]:
    """Return the predictor recorded in ``kfp-tabular.dev/previous-predictor`` if it is ``previous_uri``'s.

    Returns:
        ``(predictor or None, note)``: None when there is no usable record (an InferenceService deployed by an
        older version, or by ``kubectl apply`` of an overlay): then only the storageUri is reverted.
    """
    raw = annotations_of(obj).get(PREVIOUS_PREDICTOR_ANNOTATION)
    if not raw:
        return None, ""
    try:
        recorded = json.loads(raw)
    except ValueError:
        recorded = None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("model"), dict):
        return None, f" (annotation {PREVIOUS_PREDICTOR_ANNOTATION} is not a predictor: only storageUri reverted)"
    if recorded["model"].get("storageUri") != previous_uri:
        return None, (
            f" (annotation {PREVIOUS_PREDICTOR_ANNOTATION} describes {recorded['model'].get('storageUri')!r}, "
            "not the previous model: only storageUri reverted)"
        )
    return recorded, ""


def rollback_plan(obj: dict) -> Plan:
    """Plan a rollback of ``obj``'s current rollout (the merge patch, what to wait for, what it does)."""
    where = ns_name(obj)
    mode = mode_of(obj)
    state = rollout_state(obj)
    if state == STATE_ROLLED_BACK:
        return Plan("unchanged", None, lambda gen: current_expectation(obj), "unchanged", "already rolled back")
    annotations = annotations_of(obj)
    previous = annotations.get(PREVIOUS_URI_ANNOTATION, "")
    status = predictor_status(obj)
    if mode == STANDARD and state == STATE_CANARY:
        canary = canaries_of(obj)
        bad = ((canary[0].get("predictor") or {}).get("model") or {}).get("storageUri", "") if canary else ""
        patch = {
            "metadata": {
                "annotations": {ROLLOUT_STATE_ANNOTATION: STATE_ROLLED_BACK, ROLLED_BACK_FROM_ANNOTATION: bad or None}
            },
            "spec": {"canary": None},
        }
        before = baseline(obj, new_revision=False)
        return Plan(
            "patch",
            patch,
            lambda gen: Expectation(gen, mode, no_canaries=True, **before),
            "rolled-back",
            f"canary {bad} removed",
        )
    if not previous:
        return refused(
            obj,
            f"InferenceService {where} has no {PREVIOUS_URI_ANNOTATION} annotation: there is no previous model "
            "to roll back to",
        )
    current = predictor_uri(obj)
    meta = {
        "annotations": {
            ROLLOUT_STATE_ANNOTATION: STATE_ROLLED_BACK,
            ROLLED_BACK_FROM_ANNOTATION: current,
            PREVIOUS_URI_ANNOTATION: None,
            PREVIOUS_PREDICTOR_NAME_ANNOTATION: None,
            PREVIOUS_PREDICTOR_ANNOTATION: None,
        }
    }
    recorded, note = recorded_predictor(obj, previous)
    current_predictor = {k: v for k, v in predictor_of(obj).items() if k != "canaryTrafficPercent"}
    if recorded is not None:
        # Everything of the previous predictor (runtime, resources, service account, ...), fields it did not
        # have removed.
        predictor = merge_diff(current_predictor, recorded)
        restored = f"model reverted to {previous}, whole previous predictor restored"
    else:
        predictor = {"model": {"storageUri": previous}}
        if mode == STANDARD:
            predictor["name"] = annotations.get(PREVIOUS_PREDICTOR_NAME_ANNOTATION) or None
        restored = f"model reverted to {previous}{note}"
    if mode == STANDARD:
        patch = {"metadata": meta, "spec": {"predictor": predictor, "canary": None}}
        before = baseline(obj, new_revision=False)
        return Plan(
            "patch", patch, lambda gen: Expectation(gen, mode, no_canaries=True, **before), "rolled-back", restored
        )
    old_revision = status.get("latestReadyRevision", "")
    rolled_out = status.get("latestRolledoutRevision", "")
    before = baseline(obj, new_revision=True)
    if state == STATE_CANARY and rolled_out and old_revision and old_revision != rolled_out:
        # A ready canary revision takes part of the traffic: pin 100% on the previously rolled-out revision
        # and revert the predictor, so the revision KServe creates next serves the previous model as well.
        predictor["canaryTrafficPercent"] = 0
        return Plan(
            "patch",
            {"metadata": meta, "spec": {"predictor": predictor}},
            lambda gen: Expectation(gen, mode, latest_percent=0, not_revision=old_revision, **before),
            "rolled-back",
            f"{restored}, 100% of the traffic pinned on revision {rolled_out}",
        )
    # Either the new revision never became ready (Knative still routes to the last ready one, the previous
    # model), or the model was promoted (a pin would keep the promoted revision serving: KServe pins the last
    # rolled-out revision). Revert without a pin: the new revision takes all the traffic.
    predictor["canaryTrafficPercent"] = None
    return Plan(
        "patch",
        {"metadata": meta, "spec": {"predictor": predictor}},
        lambda gen: Expectation(gen, mode, latest_percent=100, not_revision=old_revision, **before),
        "rolled-back",
        f"{restored}, canaryTrafficPercent removed; the new revision takes 100% of the traffic",
    )


@dataclasses.dataclass(frozen=True)
class RollbackOutcome:
    """How a rollback ended: read ``action`` and ``ok``, never the note's text.

    Attributes:
        action: ``rolled-back`` (written), ``unchanged`` (already rolled back: nothing written) or ``refused``
            (nothing may be written, e.g. no previous model recorded).
        ok: The InferenceService shows the rolled-back (or unchanged) state; False when refused, or when the
            write was made but status did not confirm it in time.
        obj: The InferenceService as last read.
        note: What the rollback did, or why it was refused.
        message: On ``ok`` False after a write: what was awaited and what status said.
    """

    action: str
    ok: bool
    obj: dict | None
    note: str
    message: str = ""

    @property
    def written(self) -> bool:
        """Whether this rollback wrote to the InferenceService."""
        return self.action == "rolled-back"


def apply_rollback(
    api_client: Any, obj: dict, timeout_seconds: float, unwritten: str = "nothing was written by this call"
) -> RollbackOutcome:
    """Plan a rollback of ``obj``, write it (guarded, re-planned on a conflict) and wait for it.

    Raises:
        DeployError: The object vanished, another writer won twice, or the API refused a call.
    """
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]

    def planner(current: dict | None) -> Plan:
        if current is None:
            raise DeployError(f"InferenceService {namespace}/{name} not found")
        return rollback_plan(current)

    planned_from, plan, written = write_planned(
        api_client, namespace, name, obj, planner, f"rollback of {namespace}/{name}", unwritten
    )
    if plan.kind == "refused":
        return RollbackOutcome("refused", False, planned_from, plan.note)
    if written is None:
        assert planned_from is not None
        expectation = current_expectation(planned_from)
    else:
        expectation = plan.expect(generation_of(written))
    waited = wait_for(api_client, namespace, name, expectation, timeout_seconds)
    return RollbackOutcome(plan.action, waited.ok, waited.obj, plan.note, "" if waited.ok else waited.message)
