"""run_rollout without a cluster: an in-memory backend and a reader simulating both revisions' traffic.

The reader derives each window's metrics from the traffic split the backend holds at that moment (or the requests
sent to the blue-green preview) and each revision's behaviour (error rate, p99, score shape), so a wrong split, a
window read at the wrong time or a skipped step changes the numbers the engine judges.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from kfp_tabular.components.common.errors import DeployError
from kfp_tabular.components.deployment.rollout.engine import run_rollout
from kfp_tabular.components.deployment.rollout.metrics import RevisionMetrics, Window
from kfp_tabular.components.deployment.rollout.policy import RolloutPolicy

SHAPE = (1, 2, 3, 5, 8, 10, 12, 12, 10, 8, 6, 5, 4, 3, 3, 2, 2, 1, 1, 1, 0)
SHIFTED = (*reversed(SHAPE[:-1]), 0)


@dataclasses.dataclass
class Behaviour:
    error_rate: float = 0.0
    p99: float = 0.1
    shape: tuple = SHAPE


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class MemoryBackend:
    description = "in-memory"
    stable_selector = 'model_sha256="stable"'
    canary_selector = 'model_sha256="canary"'

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.percent = 0
        self.preview_url: str | None = None
        self.preview_requests = 0
        self.events: list[tuple] = []
        self.fail = fail or {}

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise self.fail[name]

    def set_canary_percent(self, percent: int) -> None:
        self.events.append(("set", percent))
        self._maybe_fail(f"set:{percent}")
        self.percent = percent

    def promote(self) -> None:
        self.events.append(("promote",))
        self._maybe_fail("promote")
        self.percent = 100

    def rollback(self, reason: str) -> None:
        self.events.append(("rollback", reason))
        self._maybe_fail("rollback")
        self.percent = 0

    def stage_preview(self) -> str:
        self.events.append(("stage",))
        self.preview_url = "http://127.0.0.1:9999/preview"
        return self.preview_url


class SimulatedReader:
    """Metrics of a window from the split held now: ``rate`` requests/s shared by percent, plus preview requests."""

    def __init__(self, backend, canary: Behaviour, stable: Behaviour | None = None, rate: float = 20.0) -> None:
        self.backend, self.rate = backend, rate
        self.behaviour = {"canary": canary, "stable": stable or Behaviour()}
        self.reads: list[tuple[str, Window]] = []
        self.fail_at: int | None = None
        self.canary_windows = 0
        self.per_window = None  # optional: canary window number -> Behaviour

    def read(self, role: str, selector: str, window: Window) -> RevisionMetrics:
        self.reads.append((role, window))
        if self.fail_at is not None and len(self.reads) >= self.fail_at:
            raise DeployError("Prometheus http://127.0.0.1:1/api/v1/query, query 'x': unreachable (refused)")
        assert selector == getattr(self.backend, f"{role}_selector")
        behaviour = self.behaviour[role]
        share = self.backend.percent / 100
        if role == "canary":
            self.canary_windows += 1
            if self.per_window is not None:
                behaviour = self.per_window(self.canary_windows)
            requests = self.rate * window.seconds * share + self.backend.preview_requests
            self.backend.preview_requests = 0
        else:
            requests = self.rate * window.seconds * (1 - share)
        requests = float(round(requests))
        errors = float(round(requests * behaviour.error_rate))
        ok = requests - errors
        total = sum(behaviour.shape)
        scores = tuple(float(round(ok * s / total)) for s in behaviour.shape)
        p99 = behaviour.p99 if requests else None
        return RevisionMetrics(role, selector, requests, errors, 0.0, p99, scores)


def run(policy: RolloutPolicy, canary: Behaviour, **kwargs):
    backend = kwargs.pop("backend", None) or MemoryBackend()
    reader = SimulatedReader(backend, canary, rate=kwargs.pop("rate", 20.0))
    if "per_window" in kwargs:
        reader.per_window = kwargs.pop("per_window")
    clock, lines = Clock(), []
    outcome = run_rollout(backend, reader, policy, sleep=clock.sleep, clock=clock, log=lines.append, **kwargs)
    return outcome, backend, reader, lines


POLICY = RolloutPolicy(step_interval_seconds=60, min_requests=50)


def test_good_canary_is_promoted_through_every_step() -> None:
    outcome, backend, reader, lines = run(POLICY, Behaviour())
    assert outcome.verdict == "promoted" and outcome.strategy == "canary"
    assert backend.events == [("set", 10), ("set", 25), ("set", 50), ("set", 100), ("promote",)]
    assert [(s.index, s.percent, s.analysis.verdict) for s in outcome.steps] == [
        (1, 10, "passed"),
        (2, 25, "passed"),
        (3, 50, "passed"),
        (4, 100, "passed"),
    ]
    # Each window is the step's interval, after the split was applied; canary requests follow the split.
    assert [s.window.seconds for s in outcome.steps] == [60.0] * 4
    assert [s.canary.requests for s in outcome.steps] == [120.0, 300.0, 600.0, 1200.0]
    assert outcome.steps[1].window.start >= outcome.steps[0].window.end
    # At 100% stable serves nothing: the canary is compared with stable's last window with predictions.
    last = outcome.steps[-1]
    assert last.stable.requests == 0 and last.compared_with == "step 3 window 1" and last.reference.requests == 600
    # One line per window plus the header and the decision, with numbers and the verdict.
    step_lines = [line for line in lines if line.startswith("step ")]
    assert len(step_lines) == 4
    assert step_lines[0].startswith("step 1/4 10% window 1 (60s): canary 120 req success 1.0000 p99 0.100s")
    assert step_lines[0].endswith("-> passed") and "drift 0.0" in step_lines[0]
    assert lines[-1].startswith("rollout promoted")


def test_failure_at_step_one_rolls_back_at_once() -> None:
    outcome, backend, _, lines = run(POLICY, Behaviour(error_rate=0.05))
    assert outcome.verdict == "rolled_back"
    assert backend.events[0] == ("set", 10) and backend.events[1][0] == "rollback" and len(backend.events) == 2
    assert ("promote",) not in backend.events
    assert len(outcome.steps) == 1 and outcome.steps[0].analysis.verdict == "failed"
    assert "success_rate 0.95 vs threshold 0.99" in outcome.reason and "failure_limit 0" in outcome.reason
    assert backend.events[1][1] == outcome.reason
    assert "-> failed: success_rate 0.95 vs threshold 0.99" in lines[1]


def test_drift_and_latency_failures_roll_back() -> None:
    drift, backend, _, _ = run(POLICY, Behaviour(shape=SHIFTED))
    assert drift.verdict == "rolled_back" and "prediction_drift" in drift.reason
    slow, _, _, _ = run(POLICY, Behaviour(p99=1.6))
    assert slow.verdict == "rolled_back" and "p99_seconds 1.6 vs threshold 1" in slow.reason


def test_failure_limit_tolerates_one_failure() -> None:
    policy = dataclasses.replace(POLICY, failure_limit=1)
    once = lambda n: Behaviour(error_rate=0.1) if n == 2 else Behaviour()  # noqa: E731
    outcome, backend, _, _ = run(policy, Behaviour(), per_window=once)
    assert outcome.verdict == "promoted"
    assert [(s.index, s.attempt, s.analysis.verdict) for s in outcome.steps] == [
        (1, 1, "passed"),
        (2, 1, "failed"),
        (2, 2, "passed"),
        (3, 1, "passed"),
        (4, 1, "passed"),
    ]
    twice = lambda n: Behaviour(error_rate=0.1) if n in (2, 4) else Behaviour()  # noqa: E731
    outcome, backend, _, _ = run(policy, Behaviour(), per_window=twice)
    assert outcome.verdict == "rolled_back" and "failed analyses 2 > failure_limit 1" in outcome.reason
    assert ("promote",) not in backend.events


def test_inconclusive_windows_up_to_the_limit_roll_back() -> None:
    policy = dataclasses.replace(POLICY, max_inconclusive=3)
    outcome, backend, reader, _ = run(policy, Behaviour(), rate=0.05)  # 0.3 canary requests a window
    assert outcome.verdict == "rolled_back"
    assert [s.analysis.verdict for s in outcome.steps] == ["inconclusive"] * 3
    assert outcome.reason.startswith("inconclusive: 3 windows at step 1 (10%)")
    assert "fewer than min_requests 50" in outcome.reason
    assert backend.events == [("set", 10), ("rollback", outcome.reason)]


def test_inconclusive_then_enough_traffic_continues() -> None:
    quiet_first = lambda n: Behaviour()  # noqa: E731
    backend = MemoryBackend()
    reader_rate = {"n": 0}

    class Rising(SimulatedReader):
        def read(self, role, selector, window):
            if role == "canary":
                reader_rate["n"] += 1
            self.rate = 0.05 if reader_rate["n"] <= 2 else 20.0
            return super().read(role, selector, window)

    reader = Rising(backend, Behaviour())
    reader.per_window = quiet_first
    clock = Clock()
    outcome = run_rollout(backend, reader, POLICY, sleep=clock.sleep, clock=clock, log=lambda _: None)
    assert outcome.verdict == "promoted"
    assert [s.analysis.verdict for s in outcome.steps][:3] == ["inconclusive", "inconclusive", "passed"]


def test_a_failing_last_step_never_promotes() -> None:
    at_full = lambda n: Behaviour(p99=2.0) if n == 4 else Behaviour()  # noqa: E731
    outcome, backend, _, _ = run(POLICY, Behaviour(), per_window=at_full)
    assert outcome.verdict == "rolled_back" and outcome.steps[-1].percent == 100
    assert ("promote",) not in backend.events


def test_single_full_step_is_compared_with_the_baseline() -> None:
    policy = dataclasses.replace(POLICY, steps=(100,))
    outcome, backend, reader, _ = run(policy, Behaviour())
    assert outcome.verdict == "promoted"
    assert outcome.baseline is not None and outcome.baseline.requests == 1200
    assert reader.reads[0][0] == "stable" and reader.reads[0][1].end <= outcome.steps[0].window.start
    assert outcome.steps[0].compared_with == "baseline"


def test_blue_green_pass_promotes_at_once() -> None:
    sent: list[str] = []
    backend = MemoryBackend()

    def replay(url: str) -> None:
        sent.append(url)
        backend.preview_requests += 200

    policy = dataclasses.replace(POLICY, strategy="blue-green")
    outcome, _, _, lines = run(policy, Behaviour(), backend=backend, preview_traffic=replay)
    assert outcome.verdict == "promoted" and outcome.strategy == "blue-green"
    assert backend.events == [("stage",), ("promote",)]
    assert sent == ["http://127.0.0.1:9999/preview"]
    step = outcome.steps[0]
    assert (step.index, step.percent, step.canary.requests, step.analysis.verdict) == (1, 0, 200.0, "passed")
    assert step.stable.requests == 1200
    assert [line for line in lines if line.startswith("step ")][0].startswith("step 1/1 preview window 1 (60s)")


def test_blue_green_fail_rolls_back() -> None:
    backend = MemoryBackend()

    def replay(url: str) -> None:
        backend.preview_requests += 200

    policy = dataclasses.replace(POLICY, strategy="blue-green")
    outcome, _, _, _ = run(policy, Behaviour(shape=SHIFTED), backend=backend, preview_traffic=replay)
    assert outcome.verdict == "rolled_back" and "prediction_drift" in outcome.reason
    assert backend.events[0] == ("stage",) and backend.events[1][0] == "rollback" and len(backend.events) == 2


def test_blue_green_without_traffic_is_inconclusive_then_rolled_back() -> None:
    policy = dataclasses.replace(POLICY, strategy="blue-green", max_inconclusive=2)
    outcome, backend, _, _ = run(policy, Behaviour())
    assert outcome.verdict == "rolled_back" and [s.analysis.verdict for s in outcome.steps] == ["inconclusive"] * 2


def test_manual_sets_the_first_step_and_returns() -> None:
    policy = dataclasses.replace(POLICY, strategy="manual", steps=(20, 100))
    outcome, backend, reader, _ = run(policy, Behaviour())
    assert outcome.verdict == "manual" and outcome.steps == [] and "promote or roll back by hand" in outcome.reason
    assert backend.events == [("set", 20)] and reader.reads == []


def test_backend_error_after_traffic_moved_rolls_back_and_reraises() -> None:
    backend = MemoryBackend(fail={"set:50": DeployError("InferenceService ns/x: patch refused")})
    with pytest.raises(DeployError, match="patch refused"):
        run(POLICY, Behaviour(), backend=backend)
    assert backend.events[-2:] == [
        ("set", 50),
        ("rollback", "rollout aborted by DeployError: InferenceService ns/x: patch refused"),
    ]


def test_promote_error_rolls_back_and_reraises() -> None:
    backend = MemoryBackend(fail={"promote": RuntimeError("promote failed")})
    with pytest.raises(RuntimeError, match="promote failed"):
        run(POLICY, Behaviour(), backend=backend)
    assert backend.events[-1][0] == "rollback"


def test_reader_error_rolls_back_and_reraises() -> None:
    backend = MemoryBackend()
    reader = SimulatedReader(backend, Behaviour())
    reader.fail_at = 4  # baseline, step 1 canary + stable, then step 2's canary read fails
    clock = Clock()
    with pytest.raises(DeployError, match="unreachable"):
        run_rollout(backend, reader, POLICY, sleep=clock.sleep, clock=clock, log=lambda _: None)
    assert backend.events == [("set", 10), ("set", 25), ("rollback", backend.events[-1][1])]
    assert "DeployError" in backend.events[-1][1]


def test_reader_error_before_traffic_moves_needs_no_rollback() -> None:
    backend = MemoryBackend()
    reader = SimulatedReader(backend, Behaviour())
    reader.fail_at = 1
    clock = Clock()
    with pytest.raises(DeployError):
        run_rollout(backend, reader, POLICY, sleep=clock.sleep, clock=clock, log=lambda _: None)
    assert backend.events == []


def test_failing_rollback_keeps_the_original_error_with_a_note() -> None:
    backend = MemoryBackend(fail={"set:25": DeployError("split failed"), "rollback": OSError("api down")})
    with pytest.raises(DeployError, match="split failed") as info:
        run(POLICY, Behaviour(), backend=backend)
    assert any("rollback after it failed too: OSError: api down" in note for note in info.value.__notes__)


def test_interrupt_rolls_back() -> None:
    backend = MemoryBackend(fail={"set:25": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        run(POLICY, Behaviour(), backend=backend)
    assert backend.events[-1][0] == "rollback"


def test_settle_waits_before_reading() -> None:
    outcome, _, _, _ = run(dataclasses.replace(POLICY, steps=(100,)), Behaviour(), settle_seconds=2)
    step = outcome.steps[0]
    assert step.window.seconds == 60 and outcome.finished_at - step.window.end >= 2


def test_module_imports_only_the_standard_library() -> None:
    code = (
        "import sys; import kfp_tabular.components.deployment.rollout.engine, "
        "kfp_tabular.components.deployment.rollout.record; "
        "heavy = {'numpy', 'pandas', 'kfp', 'requests', 'prometheus_client'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class TailReader(SimulatedReader):
    """At 100%, stable still answers a tail of 3 in-flight batch requests: 144 predictions, a skewed few."""

    def read(self, role: str, selector: str, window: Window) -> RevisionMetrics:
        metrics = super().read(role, selector, window)
        if role == "stable" and self.backend.percent == 100:
            tail = tuple(48.0 if i in (0, 1, 2) else 0.0 for i in range(len(SHAPE)))
            return dataclasses.replace(metrics, requests=3.0, p99_seconds=0.1, score_counts=tail)
        return metrics


def test_a_tail_of_stable_batch_requests_is_not_a_comparison_window() -> None:
    """Predictions are rows: 3 requests of 48 rows pass min_requests=50 by predictions, not by requests."""
    backend = MemoryBackend()
    reader = TailReader(backend, Behaviour())
    clock = Clock()
    outcome = run_rollout(backend, reader, POLICY, sleep=clock.sleep, clock=clock, log=lambda line: None)
    assert outcome.verdict == "promoted", outcome.reason
    last = outcome.steps[-1]
    assert last.stable.requests == 3 and last.compared_with == "step 3 window 1"
