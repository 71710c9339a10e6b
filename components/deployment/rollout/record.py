"""The rollout's analysis artifact: the whole outcome as JSON (machines) and Markdown (the KFP UI renders it).

Both are written atomically (``common.artifacts``): a failed task leaves no half-written analysis. Non-finite
numbers (an infinite p99 or ratio) are written as the strings ``"inf"``/``"-inf"``/``"nan"`` so the JSON stays
strict. Standard library only.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from typing import Any

from kfp_tabular.components.common.artifacts import write_json, write_text
from kfp_tabular.components.deployment.rollout.engine import RolloutOutcome, StepRecord

SCHEMA_VERSION = 1


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def analysis_dict(outcome: RolloutOutcome) -> dict[str, Any]:
    """Return the JSON document: the outcome (policy, every window's metrics and checks, the decision) and a version."""
    return {"schema_version": SCHEMA_VERSION, **_strict(outcome.to_dict())}


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: Any, fmt: str = ".4g") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _passed(value: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "not judged"}[value]


def _step_rows(step: StepRecord) -> list[str]:
    c, s = step.canary, step.stable
    drift = next((ch for ch in step.analysis.checks if ch.name == "prediction_drift"), None)
    where = "preview" if step.percent == 0 else f"{step.percent}%"
    return [
        f"| {step.index} | {where} | {step.attempt} | {_when(step.window.start)} | {step.window.seconds:.0f}s | "
        f"{c.requests:.0f} | {_num(c.success_rate)} | {_num(c.p99_seconds, '.3f')} | {s.requests:.0f} | "
        f"{_num(s.success_rate)} | {_num(s.p99_seconds, '.3f')} | {_num(drift.canary if drift else None, '.3f')} | "
        f"{step.analysis.verdict} |"
    ]


def analysis_markdown(outcome: RolloutOutcome) -> str:
    """Return the Markdown report: decision, policy, one row per window, then each window's checks."""
    lines = [
        f"# Rollout: {outcome.verdict.replace('_', ' ')}",
        "",
        f"**Decision:** {outcome.verdict} -- {_cell(outcome.reason)}",
        "",
        f"- strategy: `{outcome.strategy}`; backend: {_cell(outcome.backend) or 'n/a'}",
        f"- started {_when(outcome.started_at)}, finished {_when(outcome.finished_at)}",
    ]
    policy = outcome.policy
    if policy is not None:
        t = policy.thresholds
        lines += [
            f"- steps {', '.join(f'{p}%' for p in policy.steps)}; window {policy.step_interval_seconds:g}s; "
            f"min_requests {policy.min_requests}; max_inconclusive {policy.max_inconclusive}; "
            f"failure_limit {policy.failure_limit}",
            f"- thresholds: success rate >= {t.min_success_rate:g}; p99 <= {t.max_p99_seconds:g}s; p99 <= "
            f"{t.max_p99_ratio:g}x stable (when stable p99 >= {t.p99_floor_seconds:g}s); {t.drift_metric} prediction "
            f"drift <= {t.max_prediction_drift:g} (and above sampling noise)",
        ]
    if outcome.baseline is not None:
        b = outcome.baseline
        lines.append(
            f"- baseline (stable before any traffic moved): {b.requests:.0f} requests, "
            f"{b.predictions:.0f} predictions, p99 {_num(b.p99_seconds, '.3f')}s"
        )
    if not outcome.steps:
        lines += ["", "No window was analyzed."]
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "## Windows",
        "",
        "| step | traffic | window | start | length | canary req | canary success | canary p99 s | stable req | "
        "stable success | stable p99 s | drift | verdict |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for step in outcome.steps:
        lines += _step_rows(step)
    lines += ["", "## Checks", ""]
    for step in outcome.steps:
        where = "preview" if step.percent == 0 else f"{step.percent}%"
        lines += [
            f"### Step {step.index} ({where}), window {step.attempt}: {step.analysis.verdict}",
            "",
            _cell(step.analysis.reason),
            "",
        ]
        if step.compared_with != "this window":
            lines += [f"Stable compared from {step.compared_with} (too few stable predictions in this one).", ""]
        lines += ["| check | canary | stable | threshold | result | note |", "| --- | ---: | ---: | ---: | --- | --- |"]
        for check in step.analysis.checks:
            lines.append(
                f"| {check.name} | {_num(check.canary)} | {_num(check.stable)} | {_num(check.threshold)} | "
                f"{_passed(check.passed)} | {_cell(check.note)} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_analysis(
    outcome: RolloutOutcome, json_path: str | os.PathLike, markdown_path: str | os.PathLike
) -> dict[str, Any]:
    """Write the outcome as JSON at ``json_path`` and Markdown at ``markdown_path`` (each atomically).

    Returns:
        The JSON document written.
    """
    document = analysis_dict(outcome)
    markdown = analysis_markdown(outcome)  # both rendered before either is written
    write_json(json_path, document)
    write_text(markdown_path, markdown)
    return document
