"""The readiness predicate: whether ``status`` shows that a write to an InferenceService is done.

Kept apart from the wait loop (:mod:`.wait`), as KServe's own client keeps ``is_isvc_ready`` apart from
``wait_isvc_ready``: :meth:`Expectation.check` looks at one object and says ok, wait or failed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kfp_tabular.components.deployment.kserve.isvc import (
    KNATIVE,
    STANDARD,
    canaries_of,
    canary_status,
    condition,
    describe_failure,
    generation_of,
    mode_of,
    model_failure,
    predictor_of,
    predictor_status,
)


def baseline(obj: dict, new_revision: bool, canary_name: str = "") -> dict:
    """Record what ``status`` says before a write, so that a failure it already reported is not taken for ours.

    Args:
        obj: The InferenceService as read before the write.
        new_revision: Knative: the write changes the predictor template, so KServe makes a new revision;
            record the latest created one (a failure of that one predates the write).
        canary_name: Standard: the ``spec.canary[]`` entry the write creates or changes.

    Returns:
        Keyword arguments for :class:`Expectation`.
    """
    status = obj.get("status") or {}
    predictor = predictor_status(obj)
    out: dict[str, Any] = {"before_failure": model_failure(status.get("modelStatus"))}
    if new_revision:
        out["before_revision"] = predictor.get("latestCreatedRevision") or ""
    if canary_name:
        out["before_canary_failure"] = model_failure(canary_status(obj, canary_name).get("modelStatus"))
    return out


@dataclasses.dataclass
class Expectation:
    """What ``status`` must show before a write counts as done.

    ``status.observedGeneration`` reaching the written generation does not mean the rest of ``status``
    describes it: KServe/Knative can report the new generation while ``components.predictor`` (and
    ``modelStatus``) still describe the previous revisions, one of which may have failed. So a failure only
    fails the wait when it is newer than what was recorded before the write (``before_*``).

    Attributes:
        generation: ``status.observedGeneration`` must reach it (the controller saw the write).
        mode: Knative or Standard.
        latest_percent: Knative: traffic percent on the latest ready revision; the other revisions must hold
            the rest. 100 for a plain rollout, N for a canary, 0 for a pinned rollback.
        not_revision: Knative: the latest ready revision must differ from this one (a new model makes a new
            revision; without this a stale status of the old revision could look done).
        canary_name: Standard: the ``spec.canary[]`` entry that must be ready.
        canary_percent: Standard: its expected ``trafficPercent``.
        no_canaries: Standard: ``status.canaryStatuses`` must be empty (after promote/rollback).
        before_revision: Knative: ``latestCreatedRevision`` read before a write that makes a new revision. A
            failed latest revision of that name predates the write and is waited past; None (no new
            revision expected, or nothing recorded): a failed latest revision fails the wait at once.
        before_failure: ``status.modelStatus`` failure (see ``_model_failure``) read before the write; an
            identical failure afterwards is the old one.
        before_canary_failure: Standard: the same for the ``canaryStatuses`` entry named ``canary_name``.
    """

    generation: int
    mode: str
    latest_percent: int = 100
    not_revision: str = ""
    canary_name: str = ""
    canary_percent: int = 0
    no_canaries: bool = False
    before_revision: str | None = None
    before_failure: dict | None = None
    before_canary_failure: dict | None = None

    def describe(self) -> str:
        """Say in words what is awaited."""
        parts = [f"status.observedGeneration >= {self.generation}", "Ready=True"]
        if self.mode == KNATIVE:
            if self.not_revision:
                parts.append(f"a new revision (not {self.not_revision}) ready")
            else:
                parts.append("the latest created revision ready")
            if self.latest_percent == 100:
                parts.append("100% of the traffic on the latest revision")
            else:
                parts.append(
                    f"{self.latest_percent}% of the traffic on the latest revision and "
                    f"{100 - self.latest_percent}% on the previously rolled-out revision"
                )
        elif self.canary_name:
            parts.append(f"canary {self.canary_name!r} ready at {self.canary_percent}% of the traffic")
        elif self.no_canaries:
            parts.append("no canary")
        return ", ".join(parts)

    def check(self, obj: dict) -> tuple[str, str]:
        """Return ``("ok"|"wait"|"failed", explanation)`` for the object as it is now."""
        status = obj.get("status") or {}
        observed = int(status.get("observedGeneration") or 0)
        if observed < self.generation:
            return "wait", f"observedGeneration {observed} < {self.generation}"
        ready = condition(obj, "Ready")
        predictor = predictor_status(obj)
        latest_created = predictor.get("latestCreatedRevision", "")
        latest_ready = predictor.get("latestReadyRevision", "")
        new_revision_failed = latest_created and latest_created != latest_ready
        if self.mode == KNATIVE and ready.get("status") == "False" and new_revision_failed:
            # Knative marks the service not ready only when the latest revision failed (RevisionFailed).
            if self._knative_failure_is_ours(latest_created, status):
                return "failed", (
                    f"Ready=False ({ready.get('reason', '')}: {ready.get('message', '')}); revision "
                    f"{latest_created} did not become ready (latest ready: {latest_ready or 'none'})"
                )
            return "wait", (
                f"status still describes revision {latest_created}, which failed before this write (the "
                "controller has not made the new revision yet)"
            )
        if self.mode == STANDARD:
            failed = self._standard_failure(status)
            if failed:
                return "failed", failed
        if ready.get("status") != "True":
            state = f"{ready.get('status', 'missing')} {ready.get('reason', '')} {ready.get('message', '')}"
            return "wait", f"Ready={state.strip()}"
        if self.mode == KNATIVE:
            return self._check_knative(predictor, latest_created, latest_ready)
        return self._check_standard(obj, status)

    def _knative_failure_is_ours(self, latest_created: str, status: dict) -> bool:
        if self.before_revision is None or latest_created != self.before_revision:
            return True
        # KServe's lastFailureInfo may name the revision it is about (modelRevisionName): a new one is ours.
        failure = model_failure(status.get("modelStatus")) or {}
        named = (failure.get("lastFailureInfo") or {}).get("modelRevisionName") or ""
        recorded = ((self.before_failure or {}).get("lastFailureInfo") or {}).get("modelRevisionName") or ""
        return bool(named) and named not in (self.before_revision, recorded)

    def _standard_failure(self, status: dict) -> str:
        """Say why a Standard-mode write failed according to ``modelStatus``, or "" if it did not.

        A failure identical to the one recorded before the write is the old one and does not count.
        """
        if self.canary_name:
            entry = next((c for c in status.get("canaryStatuses") or [] if c.get("name") == self.canary_name), {})
            failure = model_failure(entry.get("modelStatus"))
            if failure and failure != self.before_canary_failure and not entry.get("ready"):
                return f"canary {self.canary_name!r} failed: {describe_failure(failure)}"
            return ""
        failure = model_failure(status.get("modelStatus"))
        if failure and failure != self.before_failure:
            return f"predictor failed: {describe_failure(failure)}"
        return ""

    def _check_knative(self, predictor: dict, latest_created: str, latest_ready: str) -> tuple[str, str]:
        if not latest_ready:
            return "wait", "no ready revision yet"
        if latest_created and latest_created != latest_ready:
            return "wait", f"latest created revision {latest_created} not ready yet (latest ready {latest_ready})"
        if self.not_revision and latest_ready == self.not_revision:
            return "wait", f"latest ready revision is still the old one ({latest_ready})"
        traffic = predictor.get("traffic") or []
        latest = sum(int(t.get("percent") or 0) for t in traffic if t.get("latestRevision"))
        latest_names = {t.get("revisionName") for t in traffic if t.get("latestRevision")}
        others = [t for t in traffic if not t.get("latestRevision")]
        rest = sum(int(t.get("percent") or 0) for t in others)
        shown = ", ".join(f"{t.get('revisionName')}={t.get('percent')}%" for t in traffic) or "none"
        if latest_names and latest_names != {latest_ready}:
            return "wait", f"traffic latest revision {sorted(latest_names)} != latest ready {latest_ready}"
        if latest != self.latest_percent or latest + rest != 100:
            return "wait", f"traffic {shown}"
        if rest and any(t.get("revisionName") == latest_ready for t in others):
            return "wait", f"traffic split over one revision ({shown})"
        return "ok", f"traffic {shown}"

    def _check_standard(self, obj: dict, status: dict) -> tuple[str, str]:
        canaries = status.get("canaryStatuses") or []
        if self.no_canaries:
            if canaries:
                return "wait", f"canaries still reported: {canaries}"
            return "ok", "ready, no canary"
        if self.canary_name:
            entry = next((c for c in canaries if c.get("name") == self.canary_name), None)
            if entry is None:
                return "wait", f"no status for canary {self.canary_name!r} yet"
            if not entry.get("ready"):
                return "wait", f"canary {self.canary_name!r} not ready"
            if int(entry.get("trafficPercent") or 0) != self.canary_percent:
                return "wait", f"canary {self.canary_name!r} at {entry.get('trafficPercent')}%"
            cond = condition(obj, "CanaryPredictorReady")
            if cond and cond.get("status") != "True":
                return "wait", f"CanaryPredictorReady={cond.get('status')} {cond.get('reason', '')}"
            return "ok", f"canary {self.canary_name!r} ready at {self.canary_percent}%"
        return "ok", "ready"


def current_expectation(obj: dict) -> Expectation:
    """Return the expectation matching an object's current spec (used when nothing is written)."""
    mode = mode_of(obj)
    generation = generation_of(obj)
    if mode == STANDARD:
        canaries = canaries_of(obj)
        if canaries:
            return Expectation(
                generation,
                mode,
                canary_name=canaries[0]["predictor"].get("name", ""),
                canary_percent=int(canaries[0].get("trafficPercent") or 0),
            )
        return Expectation(generation, mode, no_canaries=True)
    percent = predictor_of(obj).get("canaryTrafficPercent")
    if percent is None or not predictor_status(obj).get("latestRolledoutRevision"):
        return Expectation(generation, mode, latest_percent=100)
    return Expectation(generation, mode, latest_percent=int(percent))
