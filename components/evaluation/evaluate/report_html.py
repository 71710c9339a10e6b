"""The HTML evaluation report: the verdict and the model's curves drawn, candidate and baseline side by side.

One self-contained page (``common.report_html.page``: inline CSS and SVG, no scripts, fonts or fetches) built
from the :class:`~kfp_tabular.components.evaluation.evaluate.core.EvaluationResult` only -- the chart data
came from the same prediction as the metrics (``curves``), so nothing is recomputed here:

- the verdict (BLESSED / NOT BLESSED and every reason) and a summary strip (checks failed and passed, eval rows,
  baseline, decisions);
- the gate: one small chart per checked metric, candidate and baseline as points, the threshold and the
  baseline-tolerance bound drawn as lines; the table of every metric;
- classification: ROC (with the diagonal), precision-recall (the positive rate as the no-skill line, a precision
  or recall threshold drawn when set), the reliability curve (with the diagonal), the confusion matrices;
- regression: residuals vs predicted and predicted vs actual, one chart per model (the rows drawn: ``curves``);
- the decisions taken for the user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfp_tabular.components.common import charts
from kfp_tabular.components.common.chart_svg import esc
from kfp_tabular.components.evaluation.evaluate.report import _bound_text, _fmt
from kfp_tabular.components.evaluation.evaluate.request import HIGHER_IS_BETTER, metric_names

if TYPE_CHECKING:
    from kfp_tabular.components.evaluation.evaluate.core import EvaluationResult

CANDIDATE, BASELINE = "candidate", "baseline"
CSS = """
.verdict { font-size: 1.2em; font-weight: bold; padding: 0.4em 0.8em; display: inline-block; border-radius: 4px; }
.verdict.blessed { background: #eef8f4; border: 1px solid #009E73; }
.verdict.not-blessed { background: #fbece4; border: 1px solid #D55E00; }
td.fail { color: #B00; font-weight: bold; } td.pass { color: #00734f; }
"""


def _models(result: EvaluationResult) -> list[str]:
    return [CANDIDATE, BASELINE] if result.baseline_charts else [CANDIDATE]


def _charts_of(result: EvaluationResult, model: str) -> dict:
    """``{"confusion_matrix", "roc_curve", "curves"}`` of the candidate or the baseline."""
    if model == CANDIDATE:
        return {"confusion_matrix": result.confusion_matrix, "roc_curve": result.roc_curve, "curves": result.curves}
    return result.baseline_charts or {}


def roc_points(roc: dict | None) -> list[tuple[float, float]]:
    """Return the ROC curve as (false positive rate, true positive rate) points."""
    return list(zip(roc["fpr"], roc["tpr"])) if roc else []


def pr_points(curves: dict | None) -> list[tuple[float, float]]:
    """Return the precision-recall curve as (recall, precision) points."""
    pr = (curves or {}).get("pr")
    return list(zip(pr["recall"], pr["precision"])) if pr else []


def calibration_points(curves: dict | None) -> list[tuple[float, float]]:
    """Return the reliability curve as (mean predicted, observed frequency) points of the bins that hold rows."""
    bins = (curves or {}).get("calibration")
    if not bins:
        return []
    return [(p, o) for p, o in zip(bins["mean_predicted"], bins["observed"]) if p is not None and o is not None]


def residual_points(curves: dict | None) -> list[tuple[float, float]]:
    """(predicted, actual - predicted) of the rows drawn."""
    if not curves or "predicted" not in curves:
        return []
    return [(p, a - p) for a, p in zip(curves["actual"], curves["predicted"])]


def _gate_bound(name: str, baseline: float, tolerance: float) -> float:
    return baseline - tolerance if name in HIGHER_IS_BETTER else baseline + tolerance


def metric_chart(result: EvaluationResult, name: str) -> str:
    """One checked metric: the candidate (x=0) and the baseline (x=1) as points, the threshold and the bound."""
    value = result.metrics.get(name)
    series = {CANDIDATE: [(0.0, float("nan") if value is None else value)]}
    limits = []
    if name in result.thresholds:
        limits.append(
            charts.Threshold(f"threshold {_bound_text(name, result.thresholds[name])}", result.thresholds[name])
        )
    base = (result.baseline_metrics or {}).get(name)
    if result.baseline_metrics is not None:
        series[BASELINE] = [(1.0, float("nan") if base is None else base)]
        if base is not None:
            bound = _gate_bound(name, base, result.tolerance)
            side = "-" if name in HIGHER_IS_BETTER else "+"
            limits.append(charts.Threshold(f"baseline {side} {result.tolerance:g}", bound))
    # Room above and below every point and line, so the markers clear the axes and the line labels.
    values = [v for v in (value, base, *(t.value for t in limits)) if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(hi - lo, abs(hi) * 0.05, 1e-3) * 0.2
    return charts.lines(
        series,
        title=f"{name}: candidate vs baseline against the gate",
        x_label="0 candidate, 1 baseline",
        y_label=name,
        x_range=(-0.5, 3.0),  # the right part holds the lines' labels
        y_range=(lo - pad, hi + pad),
        thresholds=limits,
        markers=True,
        size=(260, 170),
    )


def _gate_section(result: EvaluationResult, verdicts: dict) -> str:
    checked = [n for n in metric_names(result.task) if n in verdicts]
    out = ["<h2>The gate</h2>"]
    if checked:
        out.append("<div>")
        for name in checked:
            failed = verdicts[name]
            caption = f"{name}: " + (f"FAILED ({', '.join(failed)})" if failed else "passed")
            out.append(charts.figure(metric_chart(result, name), caption))
        out.append("</div>")
    rows = ["<table><tr><th>metric</th><th>candidate</th><th>baseline</th><th>threshold</th><th>result</th></tr>"]
    for name in metric_names(result.task):
        base = "-" if result.baseline_metrics is None else _fmt(result.baseline_metrics.get(name))
        bound = _bound_text(name, result.thresholds[name]) if name in result.thresholds else "-"
        failed = verdicts.get(name)
        outcome, tone = (
            ("-", "") if failed is None else (("FAIL: " + ", ".join(failed), "fail") if failed else ("pass", "pass"))
        )
        rows.append(
            f"<tr><td>{esc(name)}</td><td class='num'>{_fmt(result.metrics.get(name))}</td><td class='num'>{base}</td>"
            f"<td>{esc(bound)}</td><td class='{tone}'>{esc(outcome)}</td></tr>"
        )
    out.append("".join(rows) + "</table>")
    return "".join(out)


def _classification_section(result: EvaluationResult) -> str:
    models = _models(result)
    out = []
    if result.roc_curve:
        roc = {m: roc_points(_charts_of(result, m).get("roc_curve")) for m in models}
        auc = ", ".join(
            f"{m} {_fmt((result.metrics if m == CANDIDATE else result.baseline_metrics).get('roc_auc'))}"
            for m in models
        )
        out.append(
            charts.figure(
                charts.lines(
                    roc,
                    title="ROC curve",
                    x_label="false positive rate",
                    y_label="true positive rate",
                    x_range=(0, 1),
                    y_range=(0, 1),
                    diagonal=True,
                ),
                f"ROC of the positive class {result.positive_class!r} (ROC AUC: {auc}); the diagonal is chance",
            )
        )
        pr = {m: pr_points(_charts_of(result, m).get("curves")) for m in models}
        rate = (result.curves or {}).get("positive_rate")
        limits = []
        if rate is not None:
            limits.append(charts.Threshold(f"no skill: positive rate {rate:.3f}", rate))
        if "precision" in result.thresholds:
            limits.append(
                charts.Threshold(
                    f"precision {_bound_text('precision', result.thresholds['precision'])}",
                    result.thresholds["precision"],
                )
            )
        if "recall" in result.thresholds:
            limits.append(
                charts.Threshold(
                    f"recall {_bound_text('recall', result.thresholds['recall'])}", result.thresholds["recall"], "x"
                )
            )
        out.append(
            charts.figure(
                charts.lines(
                    pr,
                    title="precision-recall curve",
                    x_label="recall",
                    y_label="precision",
                    x_range=(0, 1),
                    y_range=(0, 1),
                    thresholds=limits,
                ),
                "precision and recall at every score cut-off; the line at the positive rate is a model without skill",
            )
        )
    calibration = {m: calibration_points(_charts_of(result, m).get("curves")) for m in models}
    kind = ((result.curves or {}).get("calibration") or {}).get("kind", "positive class")
    label = "mean predicted probability" if kind == "positive class" else "mean confidence (predicted class)"
    bins = ((result.curves or {}).get("calibration") or {}).get("bins", 0)
    out.append(
        charts.figure(
            charts.lines(
                calibration,
                title="reliability curve",
                x_label=label,
                y_label="observed frequency" if kind == "positive class" else "accuracy",
                x_range=(0, 1),
                y_range=(0, 1),
                diagonal=True,
                markers=True,
            ),
            f"calibration: {bins} equal-width bins of the {kind} probability; on the diagonal is well calibrated",
        )
    )
    out.append("</div><div>")
    for m in models:
        matrix = _charts_of(result, m).get("confusion_matrix")
        if matrix:
            out.append(
                charts.figure(
                    charts.heatmap(
                        matrix["matrix"], matrix["labels"], matrix["labels"], title=f"confusion matrix: {m}"
                    ),
                    f"{m}: confusion matrix (rows actual, columns predicted; shade: share of the row)",
                )
            )
    return "<h2>Curves</h2><div>" + "".join(out) + "</div>"


def _regression_section(result: EvaluationResult) -> str:
    residuals, versus = [], []
    for m in _models(result):
        curves = _charts_of(result, m).get("curves") or {}
        drawn, rows = len(curves.get("predicted", [])), curves.get("rows", 0)
        note = f" ({drawn:,} of {rows:,} rows drawn)" if drawn < rows else ""
        points = residual_points(curves)
        residuals.append(
            charts.figure(
                charts.scatter(
                    points,
                    title=f"residuals vs predicted: {m}",
                    x_label="predicted",
                    y_label="actual - predicted",
                    thresholds=[("0", 0.0)],
                    max_points=max(1, len(points)),
                ),
                f"{m}: residuals vs predicted{note}",
            )
        )
        pairs = list(zip(curves.get("actual", []), curves.get("predicted", [])))
        versus.append(
            charts.figure(
                charts.scatter(
                    pairs,
                    title=f"predicted vs actual: {m}",
                    x_label="actual",
                    y_label="predicted",
                    max_points=max(1, len(pairs)),
                ),
                f"{m}: predicted vs actual{note}",
            )
        )
    return "<h2>Residuals</h2><div>" + "".join(residuals) + "</div><div>" + "".join(versus) + "</div>"


def render_html(
    result: EvaluationResult, model_dir: str, eval_path: str, baseline_model_dir: str, verdicts: dict
) -> str:
    """Render the self-contained HTML evaluation report."""
    verdict = "BLESSED" if result.blessed else "NOT BLESSED"
    # Each failure is one reason; the checks are each threshold, and each compared metric when there is a baseline.
    failed = 0 if result.blessed else len(result.reasons)
    compared = (len(result.thresholds) or 1) if result.baseline_metrics is not None else 0
    passed = len(result.thresholds) + compared - sum(len(v) for v in verdicts.values())
    decisions = [*result.upstream_decisions, *result.decisions]
    baseline = "compared" if result.baseline_metrics is not None else ("unusable" if baseline_model_dir else "none")
    strip = charts.summary_strip(
        [
            ("verdict", verdict, "ok" if result.blessed else "bad"),
            ("checks failed", failed, "ok" if result.blessed else "bad"),
            ("checks passed", passed, "info"),
            ("eval rows", result.eval_rows, "info"),
            ("baseline", baseline, "bad" if baseline == "unusable" else "info"),
            ("decisions taken for you", len(decisions), "info"),
        ]
    )
    tone = "blessed" if result.blessed else "not-blessed"
    body = [
        strip,
        f'<h2 class="verdict {tone}">{verdict}: the checks it {"passed" if result.blessed else "failed"}</h2>'
        '<ul class="reasons">',
        *(f"<li>{esc(r)}</li>" for r in result.reasons),
        "</ul><table>",
        f"<tr><th>model</th><td><code>{esc(model_dir)}</code> "
        f"(sha256 <code>{esc(result.model_sha256)}</code>)</td></tr>",
        f"<tr><th>eval data</th><td><code>{esc(eval_path)}</code> ({result.eval_rows:,} rows)</td></tr>",
        f"<tr><th>task</th><td>{esc(result.task)}</td></tr>",
        *(
            [f"<tr><th>positive class</th><td><code>{esc(repr(result.positive_class))}</code></td></tr>"]
            if result.positive_class is not None
            else []
        ),
        f"<tr><th>baseline</th><td>{f'<code>{esc(baseline_model_dir)}</code>' if baseline_model_dir else 'none'}"
        f" (tolerance {result.tolerance:g})</td></tr></table>",
        _gate_section(result, verdicts),
        _classification_section(result) if result.task == "classification" else _regression_section(result),
    ]
    if decisions:
        body.append(
            "<h2>Decisions taken for you</h2><table><tr><th>step</th><th>column / field</th><th>decision</th>"
            "<th>why</th></tr>"
        )
        body += [
            f"<tr><td>{esc(d.step)}</td><td>{esc(d.subject or '(dataset)')}</td><td>{esc(d.action)}</td>"
            f"<td>{esc(d.reason)}</td></tr>"
            for d in decisions
        ]
        body.append("</table>")
    return charts.page(
        f"Model evaluation: {verdict}",
        "".join(body),
        subtitle=f"{result.task}, {result.eval_rows:,} eval rows",
        css=CSS,
    )
