"""Reports: the failure message, the Markdown anomalies report, TFDV's statistics view and a self-contained page.

The HTML report has inline CSS, no scripts and no external resources, and escapes every value, so it renders
offline and safely whatever the column names and values are.
"""

from __future__ import annotations

import html
from typing import Any

from kfp_tabular.components.common.report_html import page, summary_strip
from kfp_tabular.components.data_processing.validate import report_charts
from kfp_tabular.components.data_processing.validate.results import ValidationResult
from kfp_tabular.components.data_processing.validate.schema import in_environment
from kfp_tabular.components.data_processing.validate.statistics import feature_name


def _verdict_counts(result: ValidationResult) -> str:
    reported = len(set(result.flagged_features) - set(result.drifted_features))
    drifted = len(result.drifted_features)
    text = f"{len(result.anomalies)} anomalies, {drifted} features with drift or skew that fails the run"
    return text + (f", {reported} more flagged in comparisons that are only reported" if reported else "")


def failure_message(result: ValidationResult, report_path: str | None = None) -> str:
    """One line per anomaly (split, feature, kind) and per feature whose drift or skew fails the run."""
    lines = [f"data validation failed: {_verdict_counts(result)}"]
    if result.anomalies:
        lines.append("anomalies:")
        lines += [f"  - {a.split} / {a.feature}: {a.kind} ({a.short_description})" for a in result.anomalies]
    if result.drifted:
        lines.append("drift/skew:")
        lines += [
            f"  - {m.feature}: {m.metric} {m.distance:.3g} > threshold {m.threshold:.3g} and > noise bound "
            f"{m.noise_bound:.3g} (p {m.p_value:.2g}; {m.comparison}, n {m.n_a} vs {m.n_b})"
            for m in result.drifted
        ]
    if report_path:
        lines.append(f"report: {report_path}")
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:.4g}"


def _md_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _anomaly_rows(result: ValidationResult) -> list[list[Any]]:
    return [[a.split, a.feature, f"{a.kind} ({a.short_description})", a.description] for a in result.anomalies]


DRIFT_HEADER = [
    "feature",
    "comparison",
    "metric",
    "distance",
    "threshold",
    "noise bound",
    "p-value",
    "n_a",
    "n_b",
    "flagged",
    "gating",
]


def _p(value: float) -> str:
    return "<1e-99" if value < 1e-99 else f"{value:.2g}"


def _drift_rows(result: ValidationResult) -> list[list[Any]]:
    """One row per measurement, in the result's order (failing first, then flagged, then the rest)."""
    return [
        [
            m.feature,
            m.comparison,
            m.metric,
            f"{m.distance:.3f}",
            f"{m.threshold:.3g}",
            f"{m.noise_bound:.3f}",
            _p(m.p_value),
            m.n_a,
            m.n_b,
            "yes" if m.flagged else "no",
            "yes" if m.gating else "no (reported)",
        ]
        for m in result.drift
    ]


DRIFT_METHOD = (
    "distance: Jensen-Shannon distance (numeric, pooled-quantile bins) or L-infinity (categorical); noise bound: "
    "the distance sampling noise alone exceeds with probability drift_alpha / (features compared) at these "
    "sample sizes (n_a, n_b); flagged: distance > threshold and > noise bound; gating: a flagged feature fails the "
    "run (drift_gate)."
)


def render_markdown(result: ValidationResult) -> str:
    """Render the anomalies report: verdict, anomalies table, drift/skew table."""
    schema_line = f"curated, from `{result.schema_uri}`" if result.schema_source == "curated" else "inferred from train"
    examples = ", ".join(f"{split} {count}" for split, count in result.num_examples.items())
    lines = [
        "# Data validation",
        "",
        f"**{'PASSED' if result.ok else 'FAILED'}**: {_verdict_counts(result)}.",
        "",
        f"Schema: {schema_line} ({result.schema_features} features). Examples: {examples}.",
        "",
    ]
    if result.statistics_backend:
        why = "; ".join(d.reason for d in result.decisions if d.subject == "statistics_backend")
        lines += [f"Statistics backend: {result.statistics_backend}" + (f" ({why})." if why else "."), ""]
    lines += ["## Anomalies", ""]
    if result.anomalies:
        lines += _md_table(["split", "feature", "anomaly", "description"], _anomaly_rows(result))
    else:
        lines.append("No anomalies.")
    lines += ["", "## Drift and skew", ""]
    if result.drift:
        lines += [DRIFT_METHOD, ""] + _md_table(DRIFT_HEADER, _drift_rows(result))
    else:
        lines.append("No drift or skew comparison was made.")
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {_md_cell(note)}" for note in result.notes]
    return "\n".join(lines) + "\n"


def statistics_html(train, evaluation) -> str:
    """Render TFDV's train-vs-eval statistics view (Facets; it loads its viewer from public CDNs)."""
    from tensorflow_data_validation.utils import display_util

    fragment = display_util.get_statistics_html(train, evaluation, lhs_name="train", rhs_name="eval")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>TFDV statistics: train vs eval</title></head>'
        f"<body>\n{fragment}\n</body></html>\n"
    )


def _feature_rows(stats) -> tuple[list[list[str]], list[list[str]]]:
    """Per-feature summary rows of one dataset: (numeric rows, categorical rows)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    dataset = stats.datasets[0]
    total = dataset.num_examples or 1
    numeric, categorical = [], []
    for feature in dataset.features:
        name = feature_name(feature)
        kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
        if feature.HasField("num_stats"):
            s = feature.num_stats
            common = s.common_stats
            numeric.append(
                [
                    name,
                    kind,
                    str(common.num_non_missing),
                    f"{100.0 * common.num_missing / total:.1f}",
                    _num(s.mean),
                    _num(s.std_dev),
                    _num(s.min),
                    _num(s.median),
                    _num(s.max),
                    f"{100.0 * s.num_zeros / max(common.num_non_missing, 1):.1f}",
                ]
            )
        elif feature.HasField("string_stats"):
            s = feature.string_stats
            common = s.common_stats
            top = ", ".join(f"{v.value} ({int(v.frequency)})" for v in s.top_values[:5])
            categorical.append(
                [
                    name,
                    kind,
                    str(common.num_non_missing),
                    f"{100.0 * common.num_missing / total:.1f}",
                    str(s.unique),
                    top,
                ]
            )
    return numeric, categorical


_CSS = """
.verdict { padding: 0.6em 1em; border-radius: 4px; font-weight: bold; display: inline-block; }
.ok { background: #e3f4e1; color: #1d5e1a; } .fail { background: #fbe3e3; color: #8a1c1c; }
tr.drifted td { background: #fff3d6; } .muted { color: #666; } .small { font-size: 0.8em; }
b.bad, .mark.bad { color: #a3320b; } b.warn, .mark.warn { color: #8a5a00; }
.mark { font-size: 0.8em; border: 1px solid currentColor; border-radius: 3px; padding: 0 0.3em; margin-left: 0.3em; }
table.features td { vertical-align: top; } table.features td:last-child { font-size: 0.85em; max-width: 34em; }
tr.fails td:first-child { border-left: 4px solid #D55E00; }
tr.flagged td:first-child { border-left: 4px solid #E69F00; }
"""


def _html_table(header: list[str], rows: list[list[Any]], numeric_from: int = 99, flag_col: int | None = None) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        css = ' class="drifted"' if flag_col is not None and row[flag_col] == "yes" else ""
        cells = "".join(
            f'<td class="num">{html.escape(str(c))}</td>' if i >= numeric_from else f"<td>{html.escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        out.append(f"<tr{css}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _schema_rows(schema) -> list[list[str]]:
    from tensorflow_metadata.proto.v0 import schema_pb2

    string_domains = {d.name: list(d.value) for d in schema.string_domain}
    rows = []
    for f in schema.feature:
        required = "yes" if f.presence.min_fraction >= 1.0 else "no"
        domain = ""
        if f.HasField("string_domain"):
            domain = ", ".join(f.string_domain.value)
        elif f.domain:
            domain = ", ".join(string_domains.get(f.domain, [])) or f.domain
        elif f.HasField("int_domain"):
            domain = f"int [{f.int_domain.min if f.int_domain.HasField('min') else ''}, "
            domain += f"{f.int_domain.max if f.int_domain.HasField('max') else ''}]"
        elif f.HasField("float_domain"):
            domain = f"float [{f.float_domain.min if f.float_domain.HasField('min') else ''}, "
            domain += f"{f.float_domain.max if f.float_domain.HasField('max') else ''}]"
        elif f.HasField("bool_domain"):
            domain = "bool (0/1)"
        envs = [e for e in list(schema.default_environment) if in_environment(f, e)]
        rows.append([f.name, schema_pb2.FeatureType.Name(f.type), required, domain, ", ".join(envs)])
    return rows


def _summary(result: ValidationResult, decisions: list) -> str:
    """Return the summary strip: anomalies, failing drift, reported-only flags, decisions, the schema source."""
    reported = len(set(result.flagged_features) - set(result.drifted_features))
    return summary_strip(
        [
            ("anomalies", len(result.anomalies), "bad" if result.anomalies else "ok"),
            ("features drifted (fail the run)", len(result.drifted_features), "bad" if result.drifted else "ok"),
            ("features flagged (reported only)", reported),
            ("decisions taken for you", len(decisions), "info"),
            ("schema", result.schema_source, "info"),
        ]
    )


def _decisions_html(decisions: list) -> str:
    if not decisions:
        return '<p class="muted">No decision was taken for you.</p>'
    rows = [[d.step, d.subject or "(dataset)", d.action, d.reason] for d in decisions]
    return _html_table(["step", "column / field", "decision", "why"], rows)


def render_html_report(
    result: ValidationResult,
    train,
    evaluation,
    schema,
    *,
    baseline=None,
    serving=None,
    decisions: list | None = None,
    max_charts: int = report_charts.MAX_CHARTS,
) -> str:
    """Render a self-contained HTML page (inline CSS and SVG, no scripts, no external resources) that renders offline.

    At the top a summary strip (anomalies, features drifted and flagged, decisions, schema source); then one row
    per feature, failing ones first, with its distributions in train, eval, ``baseline`` and ``serving`` (the
    statistics given) overlaid next to its drift distances (``report_charts``; charts for the first
    ``max_charts`` features); then the decisions, anomalies, drift, per-split feature and schema tables.

    Args:
        result: What validation found.
        train: Train statistics.
        evaluation: Eval statistics.
        schema: The schema.
        baseline: The baseline statistics compared against, if any.
        serving: The serving statistics compared against, if any.
        decisions: Decisions taken upstream (ingest's), shown before validate's own (``result.decisions``).
        max_charts: Features drawn with a chart.
    """
    e = html.escape
    verdict = "PASSED" if result.ok else "FAILED"
    schema_line = (
        f"curated, from <code>{e(result.schema_uri)}</code>"
        if result.schema_source == "curated"
        else "inferred from the train statistics"
    )
    taken = list(decisions or []) + list(result.decisions)
    splits = {"train": train, "eval": evaluation, "baseline": baseline, "serving": serving}
    parts = [
        _summary(result, taken),
        f'<p><span class="verdict {"ok" if result.ok else "fail"}">{verdict}</span> {e(_verdict_counts(result))}.</p>',
        f"<p>Label: <code>{e(result.label_column)}</code>. Schema: {schema_line} ({result.schema_features} "
        "features). Examples: "
        + ", ".join(f"{e(split)} {count}" for split, count in result.num_examples.items())
        + ".</p>",
        "<h2>Features</h2>",
        '<p class="muted">Each side\'s share of its values: numeric features on common equal-width bins re-binned '
        "from the statistics' 100 quantile buckets, categorical features by value (the most common ones). "
        f"{e(DRIFT_METHOD)}</p>",
        report_charts.feature_rows(result, splits, max_charts),
        "<h2>Decisions taken for you</h2>",
        _decisions_html(taken),
        "<h2>Anomalies</h2>",
    ]
    if result.anomalies:
        parts.append(_html_table(["split", "feature", "anomaly", "description"], _anomaly_rows(result)))
    else:
        parts.append("<p>No anomalies.</p>")
    parts.append("<h2>Drift and skew</h2>")
    if result.drift:
        parts.append(f'<p class="muted">{e(DRIFT_METHOD)}</p>')
        parts.append(_html_table(DRIFT_HEADER, _drift_rows(result), numeric_from=3, flag_col=9))
    else:
        parts.append("<p>No drift or skew comparison was made.</p>")
    if result.notes:
        parts.append("<h2>Notes</h2>")
        parts.append("<ul>" + "".join(f"<li>{e(note)}</li>" for note in result.notes) + "</ul>")
    for split, stats in (("train", train), ("eval", evaluation)):
        numeric, categorical = _feature_rows(stats)
        parts.append(f"<h2>Features: {e(split)} ({stats.datasets[0].num_examples} examples)</h2>")
        if numeric:
            parts.append("<h3>Numeric</h3>")
            parts.append(
                _html_table(
                    ["feature", "type", "count", "missing %", "mean", "std", "min", "median", "max", "zeros %"],
                    numeric,
                    numeric_from=2,
                )
            )
        if categorical:
            parts.append("<h3>Categorical</h3>")
            parts.append(
                _html_table(["feature", "type", "count", "missing %", "unique", "top values (count)"], categorical, 2)
            )
    parts.append("<h2>Schema</h2>")
    parts.append(_html_table(["feature", "type", "required", "domain", "environments"], _schema_rows(schema)))
    parts.append(
        '<p class="muted">Booleans are INT features with values 0/1. Drift and skew: Jensen-Shannon distance for '
        "numeric features, L-infinity distance for categorical features, each with its sampling-noise bound.</p>"
    )
    return page("Data validation report", "\n".join(parts), css=_CSS)
