"""The monitor's reports: Markdown (the KFP UI's Markdown view, the task log's twin) and a self-contained HTML page.

Both lead with the decision and its reasons, then every feature's skew and drift values (flagged or not), the
prediction distribution against the evaluation's, the estimated performance, the anomalies, notes and decisions.
The HTML page reuses validate's pieces: the per-feature rows with the distributions of the training statistics,
the served window and the previous window drawn (``validate.report_charts``), its drift tables and CSS, and the
shared page, summary strip and charts (``common.report_html``, ``common.charts``): inline CSS and SVG, no scripts,
nothing fetched, every value escaped.
"""

from __future__ import annotations

import html
from typing import Any

from kfp_tabular.components.common import charts
from kfp_tabular.components.common.decisions import render_markdown as decisions_markdown
from kfp_tabular.components.common.report_html import figure, page, summary_strip
from kfp_tabular.components.data_processing.validate import report_charts, reports
from kfp_tabular.components.data_processing.validate.results import ValidationResult

METHOD = (
    "skew: the served window against the model's training statistics; drift: the window against the previous "
    "window of the same length. "
    + reports.DRIFT_METHOD.replace("drift_alpha", "alpha").replace(
        "gating: a flagged feature fails the run (drift_gate)", "every flagged feature is a reason to retrain"
    )
)


def as_validation(result) -> ValidationResult:
    """Return the monitor's findings in validate's result shape (for its tables and feature rows)."""
    return ValidationResult(
        anomalies=list(result.anomalies),
        drift=[*result.skew, *result.drift],
        schema_source="lineage",
        schema_uri="",
        num_examples={"serving": result.rows, "previous window": result.previous_rows},
        num_features={},
        schema_features=len({m.feature for m in [*result.skew, *result.drift]}),
        label_column="",
        notes=list(result.notes),
    )


def _verdict(result) -> str:
    return "RETRAIN" if result.retrain else "NO RETRAIN"


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _prediction_rows(p) -> list[list[str]]:
    """One row per bin either side has values in: the bin, the evaluation's share, the window's."""
    rows = []
    eval_total, served_total = float(sum(p.eval_counts)) or 1.0, float(sum(p.served_counts)) or 1.0
    for i, (a, b) in enumerate(zip(p.eval_counts, p.served_counts)):
        if a == 0 and b == 0:
            continue
        low = ("[0" if p.kind == "score" else "(-inf") if i == 0 else f"({p.edges[i - 1]:.4g}"
        high = "inf" if i == len(p.edges) else f"{p.edges[i]:.4g}"
        rows.append([f"{low}, {high}]", f"{a / eval_total:.3f}", f"{b / served_total:.3f}", str(int(b))])
    return rows


PREDICTION_HEADER = ["bin", "evaluation share", "served share", "served rows"]
PERFORMANCE_HEADER = ["metric", "estimated (CBPE)", "blessing", "floor (blessing - tolerance)", "below"]


def _performance_rows(performance: dict | None) -> list[list[str]]:
    return [
        [name, _fmt(c["estimated"]), _fmt(c["blessing"]), _fmt(c["floor"]), "yes" if c["below"] else "no"]
        for name, c in (performance or {}).get("compared", {}).items()
    ]


def render_markdown(result) -> str:
    """Render the Markdown report."""
    table = reports._md_table
    lines = [
        "# Monitoring",
        "",
        f"**{_verdict(result)}**",
        "",
        *[f"- {reports._md_cell(r)}" for r in result.reasons],
        "",
        f"Window: {result.window['start']} to {result.window['end']}: {result.rows:,} served rows of model "
        f"`{result.model_sha256[:12]}` ({result.task}); previous window: {result.previous_rows:,} rows. "
        f"min_rows: {result.min_rows:,}.",
        "",
        f"Lineage: `{result.lineage_uri}`. Served data: `{result.served_data_uri}`.",
        "",
        "## Skew and drift (every feature)",
        "",
        METHOD,
        "",
    ]
    validation = as_validation(result)
    if validation.drift:
        lines += table(reports.DRIFT_HEADER, reports._drift_rows(validation))
    else:
        lines.append("No feature was compared.")
    lines += ["", "## Predictions", ""]
    p = result.prediction
    if p is None:
        lines.append("Not compared (see the notes).")
    else:
        lines += [
            f"{p.what}: Jensen-Shannon distance **{p.distance:.3f}** from the evaluation's (threshold "
            f"{p.threshold:g}, noise bound {p.noise_bound:.3f}; n {p.n_served:,} served vs {p.n_eval:,} at "
            f"evaluation): {'drifted' if p.flagged else 'within threshold or noise'}.",
            "",
            *table(PREDICTION_HEADER, _prediction_rows(p)),
        ]
    lines += ["", "## Estimated performance", ""]
    if result.performance:
        estimated = result.performance["estimated"]
        lines += [
            f"{result.performance['method']}: accuracy {estimated['accuracy']:.3f} "
            f"(standard error {estimated['accuracy_stderr']:.3f}), ROC AUC {_fmt(estimated['roc_auc'])}, over "
            f"{estimated['rows']:,} scored rows.",
            "",
            *table(PERFORMANCE_HEADER, _performance_rows(result.performance)),
        ]
    else:
        lines.append("Not estimated (see the notes).")
    lines += ["", "## Anomalies (served window, SERVING environment)", ""]
    if result.anomalies:
        lines += table(["split", "feature", "anomaly", "description"], reports._anomaly_rows(validation))
    else:
        lines.append("No anomalies.")
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {reports._md_cell(n)}" for n in result.notes]
    if result.decisions:
        lines += ["", "## Decisions taken for you", "", decisions_markdown(result.decisions).rstrip()]
    return "\n".join(lines) + "\n"


def prediction_chart(p) -> str:
    """Draw the evaluation's and the window's prediction distributions over the same bins."""
    edges = list(p.edges)
    eval_counts, served_counts = list(p.eval_counts), list(p.served_counts)
    if p.kind == "score":  # probabilities: the bins end at 1, the bin above it is empty
        drawn = [0.0, *edges]
        eval_counts, served_counts = eval_counts[: len(edges)], served_counts[: len(edges)]
    else:  # open first and last bins drawn as wide as their neighbours
        step_low = edges[1] - edges[0] if len(edges) > 1 else 1.0
        step_high = edges[-1] - edges[-2] if len(edges) > 1 else 1.0
        drawn = [edges[0] - step_low, *edges, edges[-1] + step_high]
    series = {"evaluation": (drawn, eval_counts), "served": (drawn, served_counts)}
    return charts.histogram(series, title=f"predictions: {p.what}", x_label=p.what, size=charts.LARGE)


def render_html(result, train, serving, previous, schema) -> str:
    """Render the self-contained HTML report (``previous``: the previous window's statistics, or None)."""
    e = html.escape
    validation = as_validation(result)
    performance = (result.performance or {}).get("compared", {})
    strip = [
        ("decision", _verdict(result).lower(), "bad" if result.retrain else "ok"),
        ("served rows", result.rows, "info"),
        ("features skewed", len(result.skewed_features), "bad" if result.skewed_features else "ok"),
        ("features drifted vs previous window", len({m.feature for m in result.drift if m.flagged})),
        ("anomalies", len(result.anomalies), "warn" if result.anomalies else "ok"),
        ("decisions taken for you", len(result.decisions), "info"),
    ]
    if result.prediction is not None:
        strip.insert(
            4,
            (
                "prediction drift (JS)",
                f"{result.prediction.distance:.3f}",
                "bad" if result.prediction.flagged else "ok",
            ),
        )
    for name, c in performance.items():
        strip.append((f"estimated {name}", f"{c['estimated']:.3f}", "bad" if c["below"] else "ok"))
    parts = [
        summary_strip(strip),
        f'<p><span class="verdict {"fail" if result.retrain else "ok"}">{e(_verdict(result))}</span></p>',
        "<ul>" + "".join(f"<li>{e(r)}</li>" for r in result.reasons) + "</ul>",
        f"<p>Window {e(result.window['start'])} to {e(result.window['end'])}: {result.rows:,} served rows of model "
        f"<code>{e(result.model_sha256)}</code> ({e(result.task)}); previous window {result.previous_rows:,} rows. "
        f"Lineage <code>{e(result.lineage_uri)}</code>; served data <code>{e(result.served_data_uri)}</code>.</p>",
        "<h2>Predictions</h2>",
    ]
    p = result.prediction
    if p is None:
        parts.append('<p class="muted">Not compared (see the notes).</p>')
    else:
        caption = (
            f"JS distance {p.distance:.3f} (threshold {p.threshold:g}, noise bound {p.noise_bound:.3f}); "
            f"n {p.n_served:,} served vs {p.n_eval:,} at evaluation"
        )
        parts.append(figure(prediction_chart(p), caption))
        parts.append('<p class="muted small">Each bin\'s shares: the table after the features.</p>')
    parts.append("<h2>Estimated performance</h2>")
    if result.performance:
        estimated = result.performance["estimated"]
        parts.append(
            f"<p>{e(result.performance['method'])}: accuracy {estimated['accuracy']:.3f} (standard error "
            f"{estimated['accuracy_stderr']:.3f}), ROC AUC {e(_fmt(estimated['roc_auc']))}.</p>"
        )
        parts.append(reports._html_table(PERFORMANCE_HEADER, _performance_rows(result.performance), 1, flag_col=4))
    else:
        parts.append('<p class="muted">Not estimated (see the notes).</p>')
    parts += [
        "<h2>Features</h2>",
        f'<p class="muted">Each feature\'s distribution in the training statistics (train), the served window '
        f"(serving) and the previous window (baseline), skew and drift flagged first. {e(METHOD)}</p>",
        report_charts.feature_rows(validation, {"train": train, "serving": serving, "baseline": previous}),
        "<h2>Skew and drift</h2>",
        reports._html_table(reports.DRIFT_HEADER, reports._drift_rows(validation), numeric_from=3, flag_col=9),
    ]
    if p is not None:
        parts += ["<h2>Predictions per bin</h2>", reports._html_table(PREDICTION_HEADER, _prediction_rows(p), 1)]
    parts += [
        "<h2>Anomalies (SERVING environment)</h2>",
    ]
    if result.anomalies:
        parts.append(
            reports._html_table(["split", "feature", "anomaly", "description"], reports._anomaly_rows(validation))
        )
    else:
        parts.append("<p>No anomalies.</p>")
    if result.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in result.notes) + "</ul>")
    parts += ["<h2>Decisions taken for you</h2>", reports._decisions_html(result.decisions)]
    return page("Monitoring report", "\n".join(parts), subtitle=f"model {result.model_sha256[:12]}", css=reports._CSS)
