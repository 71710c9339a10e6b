"""The validation report's pictures: per feature, the distributions of train, eval and baseline (serving) drawn.

:func:`feature_charts` turns the statistics protos into chart data (plain numbers, tested against the protos),
:func:`ordered` puts the features a reader must look at first, :func:`feature_rows` draws them with
:mod:`kfp_tabular.components.common.charts` next to their drift distances and verdicts.

- **numeric** features: the 100 quantile buckets each side's statistics hold (``statistics.QUANTILE_BUCKETS``;
  TFDV's standard histogram has only 10 equal-width buckets, each side over its own range, which hides the shape
  and cannot be overlaid) re-binned onto :data:`NUMERIC_BINS` common equal-width bins over the pooled range,
  linearly within a quantile bucket, a zero-width bucket a point mass (the same reading as the drift measure,
  ``drift._cdf``). Every side then has the same edges, so the y axis is each bin's share of that side's values and
  sides of any size compare. Small integer ranges (at most :data:`MAX_INTEGER_BINS` values) get one bin per
  integer.
- **categorical** features: the share of each value (rank histogram, else top values) of all the side's values,
  for the :data:`TOP_CATEGORIES` values with the largest mean share over the sides.

Missing values are not drawn; their share is written under the chart. numpy is imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import math

from kfp_tabular.components.common import charts
from kfp_tabular.components.common.chart_svg import esc, fmt, pct
from kfp_tabular.components.data_processing.validate.drift import Summary, _cdf, summaries
from kfp_tabular.components.data_processing.validate.results import ValidationResult

#: Common equal-width bins of a numeric feature's histogram.
NUMERIC_BINS = 24
#: An integer feature spanning at most this many values gets one bin per value.
MAX_INTEGER_BINS = 40
#: Categories drawn per categorical feature (the largest mean shares).
TOP_CATEGORIES = 8
#: Features drawn with a chart, in :func:`ordered` order; the rest are listed without one (bounded page size).
MAX_CHARTS = 300
#: Drawing order of the sides (those present); each is a series of the chart.
SIDES = ("train", "eval", "baseline", "serving")
#: Which sides a comparison compares, for the report's wording.
COMPARISONS = {
    "eval_vs_train": "eval vs train",
    "batch_vs_baseline": "train+eval vs baseline",
    "serving_vs_train": "serving vs train",
}


@dataclasses.dataclass(frozen=True)
class FeatureChart:
    """What is drawn for one feature.

    Attributes:
        feature: Feature path.
        kind: ``numeric``, ``categorical`` or ``none`` (no side has values).
        edges: Numeric: the common bin edges (``len(edges) == bins + 1``).
        categories: Categorical: every value seen, largest mean share first (the first :data:`TOP_CATEGORIES`
            are drawn).
        shares: side -> one share per bin (numeric) or per category (categorical) of that side's values.
        missing: side -> share of that side's rows without a value (numeric: NaN included).
    """

    feature: str
    kind: str
    edges: list[float] = dataclasses.field(default_factory=list)
    categories: list[str] = dataclasses.field(default_factory=list)
    shares: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    missing: dict[str, float] = dataclasses.field(default_factory=dict)


def _finite_range(parts: list) -> tuple[float, float] | None:
    import numpy as np

    edges = np.concatenate([p[:, :2].ravel() for p in parts]) if parts else np.array([])
    edges = edges[np.isfinite(edges)]
    return (float(edges.min()), float(edges.max())) if len(edges) else None


def _edges(lo: float, hi: float, parts: list) -> list[float]:
    import numpy as np

    integer = all(np.all(np.isfinite(p[:, :2])) and np.all(p[:, :2] == np.round(p[:, :2])) for p in parts)
    if integer and hi - lo + 1 <= MAX_INTEGER_BINS:
        return [v - 0.5 for v in range(int(lo), int(hi) + 2)]
    if hi <= lo:
        return [lo, hi]
    return list(np.linspace(lo, hi, NUMERIC_BINS + 1))


def numeric_shares(summary: Summary, edges: list[float]) -> list[float]:
    """Share of ``summary``'s values in each bin ``(edges[i], edges[i+1]]`` (the first bin also holds its low edge).

    Infinite bucket edges are clipped to the finite range of the edges. A side without values gets zeros.
    """
    import numpy as np

    values = float(sum(part[:, 2].sum() for part in summary.buckets))
    if values <= 0 or len(edges) < 2:
        return [0.0] * max(0, len(edges) - 1)
    lo, hi = edges[0], edges[-1]
    clipped = [
        np.column_stack([np.clip(np.nan_to_num(p[:, :2], posinf=hi, neginf=lo), lo, hi), p[:, 2]])
        for p in summary.buckets
    ]
    cut = _cdf(dataclasses.replace(summary, buckets=clipped), np.asarray(edges[1:-1], dtype=float))
    cumulative = np.concatenate([[0.0], cut, [values]])
    return [float(v) for v in np.clip(np.diff(cumulative), 0.0, None) / values]


def categorical_shares(summary: Summary, categories: list[str]) -> list[float]:
    """Share of each category among all ``summary``'s values (the values beyond the rank histogram included)."""
    total = sum(summary.counts.values()) + summary.other
    return [summary.counts.get(c, 0.0) / total if total > 0 else 0.0 for c in categories]


def _missing(summary: Summary) -> float:
    return summary.missing / summary.rows if summary.rows else 0.0


def chart_data(feature: str, sides: dict[str, Summary]) -> FeatureChart:
    """Return the chart of one feature from its summaries per side (only the sides that have the feature)."""
    kinds = {s.kind for s in sides.values()}
    missing = {side: _missing(s) for side, s in sides.items()}
    if kinds == {"categorical"}:
        mean: dict[str, float] = {}
        for s in sides.values():
            total = sum(s.counts.values()) + s.other
            for value, n in s.counts.items():
                mean[value] = mean.get(value, 0.0) + (n / total if total > 0 else 0.0) / len(sides)
        categories = sorted(mean, key=lambda v: (-mean[v], v))
        shares = {side: categorical_shares(s, categories) for side, s in sides.items()}
        return FeatureChart(feature, "categorical", categories=categories, shares=shares, missing=missing)
    numeric = {side: s for side, s in sides.items() if s.kind == "numeric"}
    parts = [p for s in numeric.values() for p in s.buckets if len(p)]
    bounds = _finite_range(parts)
    if bounds is None or len(kinds) != 1:
        return FeatureChart(feature, "none", missing=missing)
    edges = _edges(*bounds, parts)
    shares = {side: numeric_shares(s, edges) for side, s in numeric.items()}
    return FeatureChart(feature, "numeric", edges=[float(e) for e in edges], shares=shares, missing=missing)


def read_sides(splits: dict[str, object]) -> dict[str, dict[str, Summary]]:
    """Read ``splits`` (a side of :data:`SIDES` -> its statistics, or None when absent) into summaries per side."""
    return {side: summaries(stats) for side, stats in splits.items() if stats is not None}


def charted(read: dict[str, dict[str, Summary]], name: str) -> FeatureChart | None:
    """Return the chart data of feature ``name`` from the sides that have it (None when none has)."""
    sides = {side: found[name] for side, found in read.items() if name in found}
    return chart_data(name, sides) if sides else None


def feature_charts(splits: dict[str, object]) -> dict[str, FeatureChart]:
    """Chart data of every feature of ``splits`` (a side -> its statistics, or None when absent), by name."""
    read = read_sides(splits)
    names = sorted({name for found in read.values() for name in found})
    return {name: charted(read, name) for name in names}


@dataclasses.dataclass(frozen=True)
class FeatureVerdict:
    """How one feature fared: its group in the order (0: fails the run, 1: flagged in a reported comparison, 2: ok)."""

    feature: str
    group: int
    anomalous: bool
    drifted: bool
    flagged: bool


def ordered(result: ValidationResult, features) -> list[FeatureVerdict]:
    """Order the features: anomalous or drifted (failing) first, then flagged in reported-only comparisons, then rest.

    By name within each group. ``features`` are the names with statistics; anomalous ones are added.
    """
    anomalous = {a.feature for a in result.anomalies if a.feature != "(dataset)"}
    drifted, flagged = set(result.drifted_features), set(result.flagged_features)
    out = []
    for name in set(features) | anomalous:
        group = 0 if name in anomalous or name in drifted else 1 if name in flagged else 2
        out.append(FeatureVerdict(name, group, name in anomalous, name in drifted, name in flagged))
    return sorted(out, key=lambda v: (v.group, v.feature))


def draw(chart: FeatureChart) -> str:
    """Return the chart's SVG ("" for a feature without values)."""
    title = f"{chart.feature}: distribution"
    if chart.kind == "numeric":
        series = {side: (chart.edges, chart.shares[side]) for side in SIDES if side in chart.shares}
        return charts.histogram(series, title=title)
    if chart.kind == "categorical":
        series = {side: chart.shares[side] for side in SIDES if side in chart.shares}
        return charts.bars(chart.categories, series, title=title, max_categories=TOP_CATEGORIES)
    return ""


def _drift_lines(measurements: list, found: list) -> str:
    parts = []
    for m in measurements:
        verdict = (
            '<b class="bad">drift: fails the run</b>'
            if m.fails
            else '<b class="warn">drift (reported only)</b>'
            if m.flagged
            else "within threshold or noise"
        )
        metric = "JS" if m.metric == "js_distance" else "L\u221e" if m.metric == "l_infinity" else m.metric
        parts.append(
            f"<div>{esc(COMPARISONS.get(m.comparison, m.comparison))}: {esc(metric)} <b>{m.distance:.3f}</b> "
            f"(threshold {m.threshold:.3g}, noise bound {m.noise_bound:.3f}) \u2014 {verdict}</div>"
        )
    for a in found:
        parts.append(f'<div><b class="bad">anomaly</b> ({esc(a.split)}): {esc(a.short_description)}</div>')
    return "".join(parts) or '<span class="muted">not compared</span>'


def _caption(chart: FeatureChart | None) -> str:
    if chart is None:
        return '<div class="muted">no statistics</div>'
    sides = [side for side in SIDES if side in chart.missing]
    text = "missing: " + ", ".join(f"{side} {pct(chart.missing[side])}" for side in sides)
    if chart.kind == "numeric":
        text += f"; x: {fmt(chart.edges[0] if chart.edges else math.nan)} to {fmt(chart.edges[-1])}"
    elif chart.kind == "categorical" and len(chart.categories) > TOP_CATEGORIES:
        text += f"; top {TOP_CATEGORIES} of {len(chart.categories)} values"
    return f'<div class="muted small">{esc(text)}</div>'


def feature_rows(result: ValidationResult, splits: dict[str, object], max_charts: int = MAX_CHARTS) -> str:
    """Return the per-feature table: marked name, chart (the first ``max_charts`` in order), drift, verdict."""
    read = read_sides(splits)
    verdicts = ordered(result, {name for found in read.values() for name in found})
    by_feature: dict[str, tuple[list, list]] = {v.feature: ([], []) for v in verdicts}
    for m in result.drift:
        by_feature.setdefault(m.feature, ([], []))[0].append(m)
    for a in result.anomalies:
        by_feature.setdefault(a.feature, ([], []))[1].append(a)
    rows = ['<table class="features"><tr><th>feature</th><th>distribution</th><th>drift and anomalies</th></tr>']
    for i, v in enumerate(verdicts):
        marks = "".join(
            f' <span class="mark {tone}">{label}</span>'
            for flag, tone, label in (
                (v.anomalous, "bad", "anomaly"),
                (v.drifted, "bad", "drifted"),
                (v.flagged and not v.drifted, "warn", "flagged"),
            )
            if flag
        )
        if i < max_charts:
            chart = charted(read, v.feature)
            picture = (draw(chart) if chart is not None else "") + _caption(chart)
        else:
            picture = f'<span class="muted">not drawn (charts for the first {max_charts} features)</span>'
        css = ' class="fails"' if v.group == 0 else ' class="flagged"' if v.group == 1 else ""
        rows.append(
            f'<tr{css} data-feature="{esc(v.feature)}"><td><b>{esc(v.feature)}</b>{marks}</td>'
            f"<td>{picture}</td><td>{_drift_lines(*by_feature[v.feature])}</td></tr>"
        )
    rows.append("</table>")
    note = ""
    if len(verdicts) > max_charts:
        note = (
            f'<p class="muted">{len(verdicts)} features: charts for the first {max_charts} in this order '
            "(failing, then flagged, then by name); the others are listed without one and in the tables below.</p>"
        )
    return note + "\n".join(rows)
