"""The rollout loop: move traffic step by step, judge each window, promote or roll back.

:func:`run_rollout` drives any :class:`TrafficBackend` (local nginx, KServe) with a metrics reader
(:class:`~.metrics.PrometheusReader` or anything with its ``read``) under a :class:`~.policy.RolloutPolicy`:

- ``canary``: for each step, ``set_canary_percent(p)``, wait one window, read both revisions over it, analyze.
  ``passed`` moves to the next step; ``failed`` counts against ``failure_limit`` (within it the step is judged
  again over a new window, one more rolls back at once); ``inconclusive`` judges the step again, and
  ``max_inconclusive`` consecutive inconclusive windows roll back. After the last step (100%) passes: promote.
- ``blue-green``: ``stage_preview()`` (the candidate at 0% on its own URL), ``preview_traffic(url)`` during each
  window, the same judgement; passed -> promote (100% at once), else roll back.
- ``manual``: ``set_canary_percent(steps[0])`` and return ``manual`` (a person promotes or rolls back).

Stable is the canary's comparison. When stable made fewer than ``min_requests`` predictions in a window (at 100%
it serves nothing), the latest window in which it made enough is used instead: an earlier step's, or the baseline
window (stable over the interval before the rollout) read before any traffic moved; the step record names the
source. Any exception (backend, reader, interrupt) once traffic may have moved
rolls back and is re-raised. Never promotes without a passing final window. ``sleep`` and ``clock`` are
injectable so tests run without waiting.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Protocol

from kfp_tabular.components.deployment.rollout.analysis import StepAnalysis, analyze
from kfp_tabular.components.deployment.rollout.metrics import RevisionMetrics, Window
from kfp_tabular.components.deployment.rollout.policy import RolloutPolicy

OUTCOMES = ("promoted", "rolled_back", "manual")


class TrafficBackend(Protocol):
    """Moves traffic between a stable and a canary revision (``local.py`` nginx, ``kserve_backend.py``)."""

    description: str
    stable_selector: str
    canary_selector: str

    def set_canary_percent(self, percent: int) -> None:
        """Apply the split; return once traffic is split so."""

    def promote(self) -> None:
        """All traffic to the canary, which becomes stable."""

    def rollback(self, reason: str) -> None:
        """All traffic to stable, at once."""

    def stage_preview(self) -> str:
        """Blue-green: the candidate at 0% on its own URL; returns that URL."""


class MetricsReader(Protocol):
    """What the engine needs of a reader (``PrometheusReader``)."""

    def read(self, role: str, selector: str, window: Window) -> RevisionMetrics:
        """One revision's metrics over a window."""


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One analysis window: step ``index`` (1-based; 1 for blue-green), its traffic percent and the judgement.

    ``stable`` is what stable did in this window; ``compared_with`` names the stable window the canary was compared
    with (``"this window"``, ``"step 2 window 1"`` or ``"baseline"``) and ``reference`` holds it when not this one.
    """

    index: int
    percent: int
    window: Window
    canary: RevisionMetrics
    stable: RevisionMetrics
    analysis: StepAnalysis
    attempt: int = 1
    compared_with: str = "this window"
    reference: RevisionMetrics | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the window with its length)."""
        out = dataclasses.asdict(self)
        out["window"] = {"start": self.window.start, "end": self.window.end, "seconds": self.window.seconds}
        out["canary"] = self.canary.to_dict()
        out["stable"] = self.stable.to_dict()
        out["reference"] = self.reference.to_dict() if self.reference else None
        return out


@dataclasses.dataclass(frozen=True)
class RolloutOutcome:
    """How a rollout ended (``promoted``, ``rolled_back`` or ``manual``), why, and every window judged."""

    strategy: str
    verdict: str
    reason: str
    steps: list[StepRecord]
    backend: str = ""
    policy: RolloutPolicy | None = None
    started_at: float | None = None
    finished_at: float | None = None
    baseline: RevisionMetrics | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the whole outcome."""
        return {
            "strategy": self.strategy,
            "verdict": self.verdict,
            "reason": self.reason,
            "backend": self.backend,
            "policy": self.policy.to_dict() if self.policy else None,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "steps": [step.to_dict() for step in self.steps],
        }


def _drift_bound(check) -> str:
    """``max 0.1``, or ``max 0.1, fails above 0.27 at this sample size`` when the window's noise raises the limit."""
    text = f"max {check.threshold:g}"
    if check.limit is not None and check.limit > check.threshold + 5e-4:
        text += f", fails above {check.limit:.3g} at this sample size"
    return text


def describe_step(record: StepRecord, total_steps: int) -> str:
    """Return the log line of one window: the numbers and the verdict."""

    def num(value: float | None, fmt: str, unit: str = "") -> str:
        return "n/a" if value is None else format(value, fmt) + unit

    c, s, a = record.canary, record.stable, record.analysis
    drift = a.check("prediction_drift") if any(ch.name == "prediction_drift" for ch in a.checks) else None
    drift_text = "n/a" if drift is None or drift.canary is None else f"{drift.canary:.3f}"
    where = "preview" if record.percent == 0 else f"{record.percent}%"
    parts = [
        f"step {record.index}/{total_steps} {where} window {record.attempt} ({record.window.seconds:.0f}s):",
        f"canary {c.requests:.0f} req success {num(c.success_rate, '.4f')} p99 {num(c.p99_seconds, '.3f', 's')}",
        f"| stable {s.requests:.0f} req success {num(s.success_rate, '.4f')} p99 {num(s.p99_seconds, '.3f', 's')}",
        f"| drift {drift_text} ({_drift_bound(drift)})" if drift else "",
        f"-> {a.verdict}",
    ]
    line = " ".join(part for part in parts if part)
    if record.compared_with != "this window":
        line += f" [stable from {record.compared_with}]"
    return line if a.verdict == "passed" else f"{line}: {a.reason}"


class _Run:
    """The state of one rollout (what has been judged, which stable window is the reference)."""

    def __init__(self, backend, reader, policy, sleep, clock, log, settle_seconds):
        self.backend, self.reader, self.policy = backend, reader, policy
        self.sleep, self.clock, self.log, self.settle = sleep, clock, log, settle_seconds
        self.records: list[StepRecord] = []
        self.failures = 0
        self.started = clock()
        self.baseline: RevisionMetrics | None = None
        self.reference: tuple[str, RevisionMetrics] | None = None

    def outcome(self, verdict: str, reason: str) -> RolloutOutcome:
        return RolloutOutcome(
            strategy=self.policy.strategy,
            verdict=verdict,
            reason=reason,
            steps=list(self.records),
            backend=self.backend.description,
            policy=self.policy,
            started_at=self.started,
            finished_at=self.clock(),
            baseline=self.baseline,
        )

    def _enough(self, stable: RevisionMetrics) -> bool:
        """Whether a stable window is a comparison: min_requests requests, as for the canary.

        And predictions, when scores are measured. Predictions alone would count a tail of a few in-flight batch
        requests -- what stable still answers in the window a 100% step opens -- as a full window.
        """
        needed = max(1, self.policy.min_requests)
        return stable.requests >= needed and (not stable.score_counts or stable.predictions > 0)

    def read_baseline(self) -> None:
        """Stable over the interval before anything moves: the comparison for a 100%-only rollout."""
        interval = self.policy.step_interval_seconds
        window = Window(self.started - interval, self.started)
        self.baseline = self.reader.read("stable", self.backend.stable_selector, window)
        if self._enough(self.baseline):
            self.reference = ("baseline", self.baseline)

    def window(self, index: int, percent: int, attempt: int, during: Callable[[], None] | None) -> StepRecord:
        interval = self.policy.step_interval_seconds
        start = self.clock()
        if during is not None:
            during()
        elapsed = self.clock() - start
        if elapsed < interval:
            self.sleep(interval - elapsed)
        end = max(self.clock(), start + interval)
        window = Window(start, end)
        if self.settle > 0:
            self.sleep(self.settle)
        canary = self.reader.read("canary", self.backend.canary_selector, window)
        stable = self.reader.read("stable", self.backend.stable_selector, window)
        compared_with, reference = "this window", None
        if self._enough(stable):
            self.reference = (f"step {index} window {attempt}", stable)
        elif self.reference is not None:
            compared_with, reference = self.reference
        analysis = analyze(canary, reference or stable, self.policy)
        record = StepRecord(index, percent, window, canary, stable, analysis, attempt, compared_with, reference)
        self.records.append(record)
        self.log(describe_step(record, len(self.policy.steps) if self.policy.strategy == "canary" else 1))
        return record

    def judge(self, index: int, percent: int, during: Callable[[], None] | None = None) -> str | None:
        """Windows at one step until it passes (None) or the rollout must roll back (the reason)."""
        inconclusive = 0
        attempt = 0
        while True:
            attempt += 1
            analysis = self.window(index, percent, attempt, during).analysis
            if analysis.verdict == "passed":
                return None
            if analysis.verdict == "failed":
                inconclusive = 0
                self.failures += 1
                if self.failures > self.policy.failure_limit:
                    return (
                        f"step {index} ({percent}%) failed: {analysis.reason} "
                        f"(failed analyses {self.failures} > failure_limit {self.policy.failure_limit})"
                    )
                continue
            inconclusive += 1
            if inconclusive >= self.policy.max_inconclusive:
                return (
                    f"inconclusive: {inconclusive} windows at step {index} ({percent}%) without a judgement "
                    f"(max_inconclusive {self.policy.max_inconclusive}); last: {analysis.reason}"
                )


def _guarded(run: _Run, body: Callable[[], RolloutOutcome]) -> RolloutOutcome:
    try:
        return body()
    except BaseException as exc:
        reason = f"rollout aborted by {type(exc).__name__}: {exc}"
        run.log(f"{reason}; rolling back")
        try:
            run.backend.rollback(reason)
        except BaseException as rollback_exc:  # the original error is the one to see; keep both
            exc.add_note(f"the rollback after it failed too: {type(rollback_exc).__name__}: {rollback_exc}")
        raise


def run_rollout(
    backend: TrafficBackend,
    reader: MetricsReader,
    policy: RolloutPolicy,
    *,
    preview_traffic: Callable[[str], Any] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.time,
    log: Callable[[str], Any] = print,
    settle_seconds: float = 0.0,
) -> RolloutOutcome:
    """Roll a candidate out under ``policy`` (see the module docstring).

    Args:
        backend: Moves traffic; its selectors name each revision's metrics.
        reader: Reads a revision's metrics over a window.
        policy: Strategy, steps, windows and thresholds.
        preview_traffic: Blue-green: called with the preview URL at the start of each window to send it a bounded
            replay of sample rows; None when traffic reaches the preview by itself.
        sleep: Waits a number of seconds (injectable for tests).
        clock: Unix seconds now (injectable); a window is ``[clock() at its start, clock() after sleeping]``.
        log: Gets one line per window with the numbers and the verdict, and one for the decision.
        settle_seconds: Waited after a window before reading it (a scrape interval lets the last scrape land).

    Returns:
        The outcome; a rollback is a value (``verdict="rolled_back"``), not an exception.

    Raises:
        Whatever the backend or reader raised, after rolling back.
    """
    run = _Run(backend, reader, policy, sleep, clock, log, settle_seconds)
    t = policy.thresholds
    log(
        f"rollout {policy.strategy} on {backend.description}: steps {list(policy.steps)}, window "
        f"{policy.step_interval_seconds:g}s, min_requests {policy.min_requests}, success >= {t.min_success_rate:g}, "
        f"p99 <= {t.max_p99_seconds:g}s and <= {t.max_p99_ratio:g}x stable, {t.drift_metric} drift <= "
        f"{t.max_prediction_drift:g}"
    )

    def finish(outcome: RolloutOutcome) -> RolloutOutcome:
        log(f"rollout {outcome.verdict}: {outcome.reason}")
        return outcome

    def rollback(reason: str) -> RolloutOutcome:
        backend.rollback(reason)
        return finish(run.outcome("rolled_back", reason))

    if policy.strategy == "manual":

        def manual() -> RolloutOutcome:
            backend.set_canary_percent(policy.steps[0])
            reason = (
                f"canary at {policy.steps[0]}%: promote or roll back by hand (kfp-tabular rollout promote|rollback)"
            )
            return finish(run.outcome("manual", reason))

        return _guarded(run, manual)

    run.read_baseline()  # nothing has moved yet: an error here needs no rollback

    if policy.strategy == "blue-green":

        def blue_green() -> RolloutOutcome:
            url = backend.stage_preview()
            log(f"preview staged at {url}")
            during = (lambda: preview_traffic(url)) if preview_traffic is not None else None
            reason = run.judge(1, 0, during)
            if reason is not None:
                return rollback(reason)
            backend.promote()
            return finish(run.outcome("promoted", "the preview passed every check: promoted to 100% at once"))

        return _guarded(run, blue_green)

    def canary() -> RolloutOutcome:
        for index, percent in enumerate(policy.steps, start=1):
            backend.set_canary_percent(percent)
            reason = run.judge(index, percent)
            if reason is not None:
                return rollback(reason)
        backend.promote()
        return finish(run.outcome("promoted", f"every step passed up to {policy.steps[-1]}%: promoted"))

    return _guarded(run, canary)
