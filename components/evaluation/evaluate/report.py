"""The Markdown evaluation report.

Metrics against thresholds and the baseline, the verdict, the confusion matrix, and every decision taken for
the user (the eval data's, the model's, the evaluation's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfp_tabular.components.common.decisions import render_markdown
from kfp_tabular.components.evaluation.evaluate.request import HIGHER_IS_BETTER, metric_names

if TYPE_CHECKING:
    from kfp_tabular.components.evaluation.evaluate.core import EvaluationResult


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _bound_text(name: str, bound: float) -> str:
    return f"{'>=' if name in HIGHER_IS_BETTER else '<='} {bound:g}"


def render_report(
    result: EvaluationResult, model_dir: str, eval_path: str, baseline_model_dir: str, verdicts: dict
) -> str:
    """Render the Markdown evaluation report."""
    verdict = "BLESSED" if result.blessed else "NOT BLESSED"
    lines = [
        f"# Model evaluation: {verdict}",
        "",
        f"- model: `{model_dir}` (sha256 `{result.model_sha256}`)",
        f"- eval data: `{eval_path}` ({result.eval_rows} rows)",
        f"- task: {result.task}",
        *(
            [f"- positive class (precision, recall, F1, ROC AUC): `{result.positive_class!r}`"]
            if result.positive_class is not None
            else []
        ),
        f"- baseline: `{baseline_model_dir}`" if baseline_model_dir else "- baseline: none",
        f"- tolerance against the baseline: {result.tolerance:g}",
        "",
        "## Metrics",
        "",
        "| metric | candidate | baseline | threshold | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in metric_names(result.task):
        base = "-" if result.baseline_metrics is None else _fmt(result.baseline_metrics.get(name))
        bound = _bound_text(name, result.thresholds[name]) if name in result.thresholds else "-"
        failed = verdicts.get(name)
        outcome = "-" if failed is None else (f"**FAIL** ({', '.join(failed)})" if failed else "pass")
        lines.append(f"| {name} | {_fmt(result.metrics.get(name))} | {base} | {bound} | {outcome} |")
    lines += ["", "## Verdict", "", f"**{verdict}**", ""]
    lines += [f"- {reason}" for reason in result.reasons]
    if result.confusion_matrix:
        labels = result.confusion_matrix["labels"]
        lines += ["", "## Confusion matrix (rows: actual, columns: predicted)", ""]
        lines.append("| actual \\ predicted | " + " | ".join(labels) + " |")
        lines.append("| --- " * (len(labels) + 1) + "|")
        for label, row in zip(labels, result.confusion_matrix["matrix"]):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    table = render_markdown([*result.upstream_decisions, *result.decisions])
    if table:
        lines += ["", "## Decisions taken for you", "", table.rstrip("\n")]
    return "\n".join(lines) + "\n"
