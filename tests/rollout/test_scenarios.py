"""The rollout scenarios on the real local rig: Prometheus, nginx and our model servers on 127.0.0.1.

One rig for the module (``demo.run_scenarios`` on :data:`TESTED`: the stable server, one server per
candidate, Prometheus, a fresh nginx per scenario, the load generator replaying eval rows), then one test per
scenario on what it did: the verdict, the check that failed and its numbers against the threshold, no
promotion on a failure, and every request stable answered succeeded throughout. The models are real
(``pipelines/rollout/scenarios.py``), cached under ``$KFP_TABULAR_CACHE/rollout-models``.

Needs the serve env (``.venv-serve``), Debian's ``prometheus`` and ``nginx`` (``make rollout-deps``): skipped
without them, failed when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.serve

#: The issue's five scenarios and the blue-green rollback (``demo`` also runs ``blue-green``, the promotion; the
#: backend's promote is tested in test_local_backend.py). About two minutes on a loaded 2-core machine.
TESTED = ["good", "shifted", "errors", "slow", "no-traffic", "blue-green-shifted"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_rig() -> None:
    from kfp_tabular.components.deployment.rollout.local import NGINX_BINARY
    from kfp_tabular.pipelines.rollout import rig

    missing = [
        what
        for what, path in (
            ("the serve env's python", rig.serve_python()),
            ("Prometheus", rig.prometheus_binary()),
            ("nginx", NGINX_BINARY),
        )
        if not os.access(path, os.X_OK)
    ]
    if missing:
        reason = f"rollout rig: {', '.join(missing)} missing (make serve-env rollout-deps)"
        if _in_ci():
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every scenario run once on one rig: ``{name: ScenarioResult}`` plus the log lines."""
    _require_rig()
    from kfp_tabular.pipelines.rollout import demo

    lines: list[str] = []
    run_dir = tmp_path_factory.mktemp("rollout-scenarios")
    started = time.monotonic()
    done = demo.run_scenarios(TESTED, run_dir, log=lines.append)
    print("\n".join(lines))
    print(f"all scenarios: {time.monotonic() - started:.1f}s")
    return {r.scenario.name: r for r in done}, lines


def _steps(result) -> list[dict]:
    return json.loads(result.analysis_json.read_text())["steps"]


def _assert_stable_kept_serving(result) -> None:
    stable = result.counts.role("stable")
    assert stable["ok"] > 0 or not result.scenario.traffic, result.counts.line()
    assert stable["ok"] == result.counts.total("stable"), f"stable failed requests: {result.counts.line()}"
    assert result.counts.total("none") == 0, f"requests without an answer: {result.counts.errors}"


def _assert_rolled_back_at_once(result) -> None:
    """A rollback: nginx's last configuration is 0% canary, and no promotion ever happened."""
    assert result.outcome.verdict == "rolled_back"
    assert "promoted" not in " ".join(result.nginx_history), result.nginx_history
    assert result.nginx_history[-1].startswith(f"generation {len(result.nginx_history)}: canary 0%")
    assert "rolled back" in result.nginx_history[-1]


def _overloaded_latency(result) -> str | None:
    """Why a good candidate failed, when only its latency failed on an overloaded machine; else None.

    The p99 of a few dozen requests is their slowest one; with more runnable processes than twice the cores,
    one request waiting for a core passes the bound whatever the model.
    """
    load = os.getloadavg()[0]
    failed = {c.name for s in result.outcome.steps for c in s.analysis.failed_checks}
    if result.outcome.verdict == "rolled_back" and failed and failed <= {"p99_seconds", "p99_ratio"}:
        if load > 2 * (os.cpu_count() or 1):
            return f"load average {load:.1f} on {os.cpu_count()} cores: {result.outcome.reason}"
    return None


def test_good_candidate_is_promoted_through_every_step(results):
    result = results[0]["good"]
    outcome = result.outcome
    overloaded = _overloaded_latency(result)
    if overloaded:
        pytest.xfail(overloaded)
    assert outcome.verdict == "promoted", outcome.reason
    passed = [s for s in outcome.steps if s.analysis.verdict == "passed"]
    assert [s.percent for s in passed] == [20, 50, 100]
    for step in passed:
        assert all(c.passed for c in step.analysis.checks), [c for c in step.analysis.checks if not c.passed]
        assert step.canary.requests >= 20
        assert step.canary.success_rate == 1.0
    assert "promoted: the candidate is stable" in result.nginx_history[-1]
    assert result.counts.role("canary")["ok"] == result.counts.total("canary") > 0
    _assert_stable_kept_serving(result)
    assert _steps(result)[-1]["analysis"]["verdict"] == "passed"
    assert "promoted" in result.analysis_md.read_text()


def test_shifted_candidate_is_rolled_back_at_step_1_on_prediction_drift(results):
    result = results[0]["shifted"]
    outcome = result.outcome
    _assert_rolled_back_at_once(result)
    last = outcome.steps[-1]
    assert last.index == 1 and last.percent == 20
    drift = last.analysis.check("prediction_drift")
    assert drift.passed is False
    assert drift.canary > drift.threshold == 0.1
    assert drift.canary > 2 * drift.threshold  # flipped labels mirror the scores: far beyond sampling noise
    assert "prediction_drift" in outcome.reason
    _assert_stable_kept_serving(result)


def test_erroring_candidate_is_rolled_back_on_success_rate(results):
    result = results[0]["errors"]
    outcome = result.outcome
    _assert_rolled_back_at_once(result)
    check = outcome.steps[-1].analysis.check("success_rate")
    assert check.passed is False
    assert check.canary < check.threshold == 0.99
    assert outcome.steps[-1].canary.server_errors > 0
    assert "success_rate" in outcome.reason
    # the model's failure is a 5xx the client saw from the canary, never a 4xx
    canary = result.counts.role("canary")
    assert canary["server_error"] > 0 and canary["client_error"] == 0, result.counts.line()
    assert any("unknown categories" in e for e in result.counts.errors), result.counts.errors
    _assert_stable_kept_serving(result)


def _overloaded_unscraped(result) -> str | None:
    """Why the slow canary could not be judged, when the machine (not the rig) is the cause; else None.

    Our server predicts on its event loop, one request at a time, and answers Prometheus's scrape on the same
    loop. When other work leaves the slow candidate a fraction of a core it falls behind its share of the load,
    every 1 s scrape times out and its windows have no data: inconclusive, rolled back at the limit -- the safe
    outcome, but not the latency verdict this test is about.
    """
    from kfp_tabular.pipelines.rollout.demo import scenario_policy

    load = os.getloadavg()[0]
    last = result.outcome.steps[-1]
    answered = result.counts.role("canary")["ok"]
    if (
        last.analysis.verdict == "inconclusive"
        and last.canary.requests < scenario_policy().min_requests <= answered
        and load > 2 * (os.cpu_count() or 1)
    ):
        return (
            f"load average {load:.1f} on {os.cpu_count()} cores: the slow canary answered {answered} requests but "
            f"Prometheus scraped {last.canary.requests:.0f} of them (its scrapes timed out behind its queue)"
        )
    return None


def test_slow_candidate_is_rolled_back_on_latency(results):
    result = results[0]["slow"]
    outcome = result.outcome
    _assert_rolled_back_at_once(result)
    overloaded = _overloaded_unscraped(result)
    if overloaded:
        pytest.xfail(overloaded)
    check = outcome.steps[-1].analysis.check("p99_seconds")
    assert check.passed is False
    assert check.canary > check.threshold == 0.25
    assert "p99_seconds" in outcome.reason
    assert result.counts.role("canary")["ok"] == result.counts.total("canary") > 0  # slow, not failing
    _assert_stable_kept_serving(result)


def test_no_traffic_is_inconclusive_and_rolled_back_at_the_limit(results):
    result = results[0]["no-traffic"]
    outcome = result.outcome
    _assert_rolled_back_at_once(result)
    assert [s.analysis.verdict for s in outcome.steps] == ["inconclusive", "inconclusive"]
    assert all(s.percent == 20 and s.canary.requests == 0 for s in outcome.steps)
    assert outcome.reason.startswith("inconclusive: 2 windows at step 1")
    assert result.counts.sent == 0


def test_every_scenario_wrote_its_analysis(results):
    by_name, lines = results
    for name, result in by_name.items():
        document = json.loads(result.analysis_json.read_text())
        assert document["verdict"] == result.outcome.verdict, name
        assert len(document["steps"]) == len(result.outcome.steps), name
        assert Path(result.analysis_md).read_text().strip(), name
    assert any(line.startswith("step 1/3 20% window 1") for line in lines)


def test_blue_green_rolls_back_a_shifted_candidate_that_never_served_live_traffic(results):
    result = results[0]["blue-green-shifted"]
    outcome = result.outcome
    _assert_rolled_back_at_once(result)
    [step] = outcome.steps
    assert step.percent == 0
    assert step.analysis.check("prediction_drift").passed is False
    assert result.counts.total("canary") == 0
    _assert_stable_kept_serving(result)
