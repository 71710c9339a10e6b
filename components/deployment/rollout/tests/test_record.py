"""The analysis artifact: JSON and Markdown of a whole outcome, written atomically."""

from __future__ import annotations

import json
import math

import pytest

from kfp_tabular.components.deployment.rollout import record
from kfp_tabular.components.deployment.rollout.engine import RolloutOutcome, run_rollout
from kfp_tabular.components.deployment.rollout.policy import RolloutPolicy
from kfp_tabular.components.deployment.rollout.tests.test_engine import (
    SHIFTED,
    Behaviour,
    Clock,
    MemoryBackend,
    SimulatedReader,
)


def outcome_of(canary: Behaviour, policy: RolloutPolicy | None = None):
    backend = MemoryBackend()
    clock = Clock()
    policy = policy or RolloutPolicy(min_requests=50)
    return run_rollout(
        backend, SimulatedReader(backend, canary), policy, sleep=clock.sleep, clock=clock, log=lambda _: None
    )


def test_json_and_markdown_of_a_promotion(tmp_path) -> None:
    outcome = outcome_of(Behaviour())
    doc = record.write_analysis(outcome, tmp_path / "a" / "analysis.json", tmp_path / "analysis.md")
    loaded = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert loaded == json.loads(json.dumps(doc, default=str))
    assert loaded["verdict"] == "promoted" and loaded["schema_version"] == 1
    assert loaded["policy"]["steps"] == [10, 25, 50, 100] and loaded["policy"]["thresholds"]["drift_metric"] == "js"
    assert [s["percent"] for s in loaded["steps"]] == [10, 25, 50, 100]
    first = loaded["steps"][0]
    assert first["window"]["seconds"] == 60.0 and first["canary"]["requests"] == 120.0
    assert first["canary"]["success_rate"] == 1.0 and len(first["canary"]["score_counts"]) == 21
    assert [c["name"] for c in first["analysis"]["checks"]] == [
        "success_rate",
        "p99_seconds",
        "p99_ratio",
        "prediction_drift",
    ]
    assert loaded["steps"][-1]["compared_with"] == "step 3 window 1"
    md = (tmp_path / "analysis.md").read_text()
    assert md.startswith("# Rollout: promoted\n")
    assert "**Decision:** promoted -- every step passed up to 100%: promoted" in md
    assert md.count("\n| 1 | 10% | 1 |") == 1 and "| 4 | 100% | 1 |" in md
    assert "### Step 4 (100%), window 1: passed" in md and "Stable compared from step 3 window 1" in md
    assert "| success_rate | 1 | 1 | 0.99 | pass |" in md


def test_rollback_shows_the_failing_check(tmp_path) -> None:
    outcome = outcome_of(Behaviour(shape=SHIFTED))
    record.write_analysis(outcome, tmp_path / "a.json", tmp_path / "a.md")
    md = (tmp_path / "a.md").read_text()
    assert md.startswith("# Rollout: rolled back\n") and "**Decision:** rolled_back -- step 1 (10%) failed" in md
    assert "| prediction_drift |" in md and "**FAIL**" in md
    assert json.loads((tmp_path / "a.json").read_text())["steps"][0]["analysis"]["verdict"] == "failed"


def test_non_finite_numbers_stay_strict_json(tmp_path) -> None:
    outcome = outcome_of(Behaviour(p99=math.inf))
    record.write_analysis(outcome, tmp_path / "a.json", tmp_path / "a.md")
    text = (tmp_path / "a.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    assert '"p99_seconds": "inf"' in text
    assert "| p99_seconds | inf |" in (tmp_path / "a.md").read_text()


def test_manual_outcome_has_no_windows(tmp_path) -> None:
    outcome = outcome_of(Behaviour(), RolloutPolicy(strategy="manual"))
    record.write_analysis(outcome, tmp_path / "a.json", tmp_path / "a.md")
    assert "No window was analyzed." in (tmp_path / "a.md").read_text()
    assert json.loads((tmp_path / "a.json").read_text())["steps"] == []


def test_a_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch) -> None:
    outcome = outcome_of(Behaviour())
    (tmp_path / "a.json").write_text("previous")

    def broken(_outcome):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(record, "analysis_markdown", broken)
    with pytest.raises(RuntimeError):
        record.write_analysis(outcome, tmp_path / "b.json", tmp_path / "b.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # neither half of the analysis
    assert (tmp_path / "a.json").read_text() == "previous"


def test_an_outcome_without_windows_or_policy(tmp_path) -> None:
    """What deploy records when no rollout ran (a first deployment, a render): only the decision."""
    outcome = RolloutOutcome(strategy="canary", verdict="first_deployment", reason="no stable model yet", steps=[])
    doc = record.write_analysis(outcome, tmp_path / "a.json", tmp_path / "a.md")
    assert doc["policy"] is None and doc["steps"] == [] and doc["verdict"] == "first_deployment"
    md = (tmp_path / "a.md").read_text()
    assert md.startswith("# Rollout: first deployment\n") and "no stable model yet" in md and "n/a" in md
