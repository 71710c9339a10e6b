"""Small inline SVG charts for the HTML reports: no JavaScript, no fonts, no external resources.

Each function takes plain data (lists, dicts, floats) and returns one ``<svg class="chart KIND">`` string with a
``viewBox``, a ``<title>`` and ``data-*`` attributes naming what is drawn; every drawn series is an element of its
own carrying ``data-series``. Series are told apart by an Okabe-Ito colour *and* a dash pattern. Degenerate input
(no data, one point, all-equal values, zero counts, NaN or infinite values, negative counts, huge ranges) draws
an empty or flat chart and never writes NaN/inf into the SVG. Page-level helpers live in :mod:`report_html`.

    histogram  overlaid outline histograms of several datasets (train / eval / baseline)
    bars       grouped horizontal bars of category shares
    lines      curves (ROC, precision-recall, calibration, a rollout's steps) with thresholds and a diagonal
    heatmap    a confusion matrix with the counts in the cells
    scatter    points (residuals vs predicted), thinned deterministically to a bounded number
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from kfp_tabular.components.common.chart_svg import (
    LARGE,
    SMALL,
    Frame,
    axes,
    count,
    esc,
    finite,
    fmt,
    legend,
    no_data,
    num,
    pct,
    shorten,
    span,
    stroke,
    style,
    svg,
    text,
)
from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.report_html import figure, page, summary_strip

__all__ = [
    "LARGE",
    "SMALL",
    "Threshold",
    "bars",
    "figure",
    "heatmap",
    "histogram",
    "lines",
    "page",
    "scatter",
    "summary_strip",
]


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A threshold drawn on the chart it concerns: a labelled line at ``value`` across the ``axis`` ("x" or "y")."""

    label: str
    value: float
    axis: str = "y"


def _thresholds(items: Sequence[Threshold | tuple]) -> list[Threshold]:
    out = []
    for item in items or ():
        t = item if isinstance(item, Threshold) else Threshold(*item)
        if t.axis not in ("x", "y"):
            raise ConfigError(f"threshold {t.label!r}: axis must be 'x' or 'y', got {t.axis!r}")
        if finite(t.value) is not None:
            out.append(Threshold(str(t.label), finite(t.value), t.axis))
    return out


def _threshold_lines(frame: Frame, items: list[Threshold], font: int) -> str:
    parts = ['<g class="thresholds">']
    for t in items:
        if t.axis == "y":
            x1, x2, y1 = frame.left, frame.right, frame.y(t.value)
            y2 = y1
            label = text(frame.right - 2, y1 - 2, t.label, font, "end", ' fill="#B00"')
        else:
            x1 = x2 = frame.x(t.value)
            y1, y2 = frame.top, frame.bottom
            label = text(x1 + 2, frame.top + font, t.label, font, extra=' fill="#B00"')
        parts.append(
            f'<line class="threshold" data-axis="{t.axis}" data-value="{esc(repr(t.value))}" '
            f'data-label="{esc(t.label)}" x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" '
            f'stroke="#B00" stroke-width="1" stroke-dasharray="3 2"/>{label}'
        )
    parts.append("</g>")
    return "".join(parts)


def _font(size: tuple[int, int]) -> int:
    return 9 if size[1] < 150 else 10


def _margins(font: int, x_label: str, y_label: str) -> tuple[float, float, float, float]:
    """Return (left, top, right, bottom) of a curve or scatter: room for tick labels and the axis titles."""
    return (48 if y_label else 38), font + 8, 12, font + 8 + (font + 4 if x_label else 0)


# --- histogram ------------------------------------------------------------------------------------------------
def _buckets(name: str, edges: Sequence[float], values: Sequence[float]) -> list[tuple[float, float, float]]:
    """Return ``name``'s usable buckets as (low, high, share): missing/negative counts and non-finite edges out."""
    edges, values = list(edges), list(values)
    if values and len(edges) != len(values) + 1:
        raise ConfigError(
            f"histogram series {name!r}: {len(values)} counts need {len(values) + 1} bucket edges, got {len(edges)}"
        )
    raw = []
    for i, value in enumerate(values):
        lo, hi, v = finite(edges[i]), finite(edges[i + 1]), finite(value)
        if lo is None or hi is None or v is None or v < 0 or hi < lo:
            continue
        raw.append((lo, hi, v))
    total = sum(v for _, _, v in raw)
    return [(lo, hi, v / total if total > 0 else 0.0) for lo, hi, v in raw]


def histogram(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "distribution",
    x_label: str = "",
    size: tuple[int, int] = SMALL,
) -> str:
    """Draw overlaid outline histograms of several datasets on a common x range.

    Args:
        series: name -> (bucket edges, counts or shares), ``len(edges) == len(counts) + 1``; each dataset keeps
            its own edges. Counts are normalised to shares so different row counts compare. When every dataset
            has the same edges the y axis is the share of rows per bucket (``data-y="share"``), otherwise the
            share per unit of x (``data-y="density"``) so that areas compare. A bucket of zero width (all values
            equal) is drawn 2% of the x range wide.
        title: The accessible title.
        x_label: The x axis title.
        size: (width, height) in pixels.
    """
    font = _font(size)
    prepared = {name: _buckets(name, e, v) for name, (e, v) in series.items()}
    names = list(prepared)
    same = len({tuple((lo, hi) for lo, hi, _ in b) for b in prepared.values()}) <= 1
    x_lo, x_hi = span([x for b in prepared.values() for lo, hi, _ in b for x in (lo, hi)])
    narrow = (x_hi - x_lo) * 0.02
    shapes: dict[str, list[tuple[float, float, float]]] = {}
    for name, buckets in prepared.items():
        drawn = []
        for lo, hi, share in buckets:
            if hi - lo < narrow / 10:
                mid = lo / 2 + hi / 2
                lo, hi = mid - narrow / 2, mid + narrow / 2
            drawn.append((lo, hi, share if same else min(share / (hi - lo), 1e300)))
        shapes[name] = drawn
    x_lo = min([x_lo] + [lo for b in shapes.values() for lo, _, _ in b])
    x_hi = max([x_hi] + [hi for b in shapes.values() for _, hi, _ in b])
    y_hi = max([h for b in shapes.values() for _, _, h in b if h > 0], default=1.0)
    bottom = font + 6 + (font + 3 if x_label else 0)
    frame = Frame.make(size, (30, font + 6, 6, bottom), (x_lo, x_hi), (0.0, y_hi))
    body = [legend(names, frame.left, font + 1, frame.right - frame.left, font)]
    body.append(axes(frame, x_label=x_label, x_count=3, y_count=2, y_fmt=pct if same else fmt, font=font))
    base = frame.y(0.0)
    for i, name in enumerate(names):
        d, prev = [], None
        for lo, hi, h in shapes[name]:
            x0, x1, y = frame.x(lo), frame.x(hi), frame.y(h)
            if prev is None or abs(x0 - prev) > 0.01:
                d.append(f"{'V ' + num(base) + ' ' if prev is not None else ''}M {num(x0)} {num(base)}")
            d.append(f"V {num(y)} H {num(x1)}")
            prev = x1
        if d:
            d.append(f"V {num(base)}")
        path = " ".join(d) or f"M {num(frame.left)} {num(base)}"
        body.append(
            f'<path class="series" data-series="{esc(name)}" data-buckets="{len(shapes[name])}" '
            f'd="{path}" {stroke(i)}/>'
        )
    if not any(shapes.values()):
        body.append(no_data(frame, font))
    data = {"series": ",".join(names), "y": "share" if same else "density"}
    return svg("histogram", size, title, "".join(body), data)


# --- bars -----------------------------------------------------------------------------------------------------
def bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str = "top categories",
    width: int = SMALL[0],
    max_categories: int = 10,
    x_max: float | None = None,
) -> str:
    """Draw grouped horizontal bars: a row per category, a bar per series, its length proportional to the share.

    Args:
        categories: Category labels, in drawing order (the caller picks the top ones).
        series: name -> one share per category; NaN/missing shares draw no bar, negative ones a zero-length bar.
        title: The accessible title.
        width: The width in pixels; the height follows from the number of categories and series.
        max_categories: At most this many categories are drawn (``data-categories`` says how many of how many).
        x_max: The share at the right end (default: the largest share).
    """
    names = list(series)
    cats = list(categories)[: max(0, max_categories)]
    font, bar_h, gap = 9, 5 if len(names) > 2 else 7, 4
    row_h = max(1, len(names)) * bar_h + gap
    label_w = min(90.0, width * 0.36)
    height = int(font + 6 + max(1, len(cats)) * row_h + font + 8)
    values = {n: [finite(v) for v in list(series[n])[: len(cats)]] for n in names}
    top = max([v for vs in values.values() for v in vs if v is not None and v > 0], default=0.0)
    hi = finite(x_max) if x_max is not None and finite(x_max) and finite(x_max) > 0 else (top or 1.0)
    frame = Frame.make((width, height), (label_w + 4, font + 6, 8, font + 8), (0.0, hi), (0.0, 1.0))
    body = [legend(names, 4, font + 1, width - 8, font, kinds="box")]
    body.append(axes(frame, x_count=3, y_count=0, x_fmt=pct, font=font))
    for r, cat in enumerate(cats):
        y0 = frame.top + r * row_h + gap / 2
        body.append(
            f'<g class="category" data-category="{esc(cat)}"><title>{esc(cat)}</title>'
            + text(frame.left - 4, y0 + row_h / 2 + font / 3 - gap / 2, shorten(cat, int(label_w / 5.4)), font, "end")
        )
        for i, name in enumerate(names):
            v = values[name][r] if r < len(values[name]) else None
            if v is None:
                continue
            length = frame.x(max(0.0, v)) - frame.left
            colour, _ = style(i)
            body.append(
                f'<rect class="bar" data-series="{esc(name)}" data-value="{esc(repr(v))}" x="{num(frame.left)}" '
                f'y="{num(y0 + i * bar_h)}" width="{num(length)}" height="{num(bar_h - 1)}" fill="{colour}">'
                f"<title>{esc(name)}: {esc(pct(v))}</title></rect>"
            )
        body.append("</g>")
    if not cats:
        body.append(no_data(frame, font))
    data = {"series": ",".join(names), "categories": f"{len(cats)} of {len(categories)}"}
    return svg("bars", (width, height), title, "".join(body), data)


# --- lines ----------------------------------------------------------------------------------------------------
def _points(points: Sequence) -> list[list[tuple[float, float]]]:
    """Split a series at its missing/NaN points into runs of finite (x, y)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for p in points or ():
        x, y = (finite(p[0]), finite(p[1])) if len(p) >= 2 else (None, None)
        if x is None or y is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x, y))
    return [r for r in runs if r]


def lines(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "curve",
    x_label: str = "",
    y_label: str = "",
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    thresholds: Sequence[Threshold | tuple] = (),
    markers: bool = False,
    bands: Mapping[str, Sequence[tuple[float, float, float]]] | None = None,
    size: tuple[int, int] = LARGE,
) -> str:
    """Draw curves with an optional diagonal reference, threshold lines, point markers and shaded bands.

    Args:
        series: name -> [(x, y), ...] in drawing order; a NaN/missing point breaks the line there.
        title: The accessible title.
        x_label: The x axis title.
        y_label: The y axis title.
        x_range: (lo, hi) of the x axis (default: the data and the x thresholds).
        y_range: (lo, hi) of the y axis (default: the data and the y thresholds).
        diagonal: Draw the y = x reference line (ROC, calibration).
        thresholds: :class:`Threshold` or (label, value[, axis]) tuples, e.g. ``("roc_auc >= 0.7", 0.7)``.
        markers: Draw a circle at each point (a rollout's steps); single points are always marked.
        bands: name -> [(x, low, high), ...] shaded in the colour of the series of the same name (grey otherwise).
        size: (width, height) in pixels.
    """
    font = _font(size)
    runs = {name: _points(pts) for name, pts in series.items()}
    names = list(runs)
    limits = _thresholds(thresholds)
    band_pts = {name: [(finite(b[0]), finite(b[1]), finite(b[2])) for b in pts] for name, pts in (bands or {}).items()}
    band_pts = {n: [b for b in pts if None not in b] for n, pts in band_pts.items()}
    xs = [x for rs in runs.values() for r in rs for x, _ in r] + [b[0] for pts in band_pts.values() for b in pts]
    ys = [y for rs in runs.values() for r in rs for _, y in r] + [
        v for pts in band_pts.values() for b in pts for v in b[1:]
    ]
    xs += [t.value for t in limits if t.axis == "x"]
    ys += [t.value for t in limits if t.axis == "y"]
    x_lo, x_hi = span(x_range if x_range else xs)
    y_lo, y_hi = span(y_range if y_range else ys)
    frame = Frame.make(size, _margins(font, x_label, y_label), (x_lo, x_hi), (y_lo, y_hi))
    body = [legend(names, frame.left, font + 2, frame.right - frame.left, font)]
    body.append(axes(frame, x_label=x_label, y_label=y_label, font=font))
    for name, pts in band_pts.items():
        if len(pts) < 2:
            continue
        colour = style(names.index(name))[0] if name in names else "#888"
        upper = [f"{num(frame.x(x))} {num(frame.y(h))}" for x, _, h in pts]
        lower = [f"{num(frame.x(x))} {num(frame.y(lo))}" for x, lo, _ in reversed(pts)]
        body.append(
            f'<path class="band" data-series="{esc(name)}" d="M {" L ".join(upper + lower)} Z" '
            f'fill="{colour}" fill-opacity="0.15" stroke="none"/>'
        )
    if diagonal:
        lo, hi = max(x_lo, y_lo), min(x_hi, y_hi)
        if hi > lo:
            body.append(
                f'<line class="diagonal" x1="{num(frame.x(lo))}" y1="{num(frame.y(lo))}" x2="{num(frame.x(hi))}" '
                f'y2="{num(frame.y(hi))}" stroke="#bbb" stroke-width="1" stroke-dasharray="4 3"/>'
            )
    body.append(_threshold_lines(frame, limits, font))
    for i, name in enumerate(names):
        d = " ".join("M " + " L ".join(f"{num(frame.x(x))} {num(frame.y(y))}" for x, y in run) for run in runs[name])
        body.append(
            f'<path class="series" data-series="{esc(name)}" data-points="{sum(map(len, runs[name]))}" '
            f'd="{d or "M 0 0"}" {stroke(i, 2)}/>'
        )
        colour = style(i)[0]
        for run in runs[name]:
            if markers or len(run) == 1:
                for x, y in run:
                    body.append(
                        f'<circle class="marker" data-series="{esc(name)}" cx="{num(frame.x(x))}" '
                        f'cy="{num(frame.y(y))}" r="2.5" fill="{colour}"><title>{esc(name)}: ({esc(fmt(x))}, '
                        f"{esc(fmt(y))})</title></circle>"
                    )
    if not any(runs.values()):
        body.append(no_data(frame, font))
    data = {"series": ",".join(names), "thresholds": len(limits)}
    return svg("lines", size, title, "".join(body), data)


# --- heatmap --------------------------------------------------------------------------------------------------
def heatmap(
    matrix: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str = "confusion matrix",
    x_label: str = "predicted",
    y_label: str = "actual",
    shade: str = "row",
) -> str:
    """Draw a matrix of cells, the value written in each (a confusion matrix: rows actual, columns predicted).

    Args:
        matrix: Rows of values; a short row or a NaN cell draws an empty cell with a dash.
        row_labels: One label per row.
        col_labels: One label per column.
        title: The accessible title.
        x_label: The column axis title.
        y_label: The row axis title.
        shade: "row" shades each cell by its share of the row (recall for a confusion matrix, readable with
            imbalanced classes), "all" by its share of the largest cell.
    """
    if shade not in ("row", "all"):
        raise ConfigError(f"heatmap shade must be 'row' or 'all', got {shade!r}")
    rows = [[finite(v) for v in row] for row in matrix]
    n, m = len(row_labels), len(col_labels)
    cell = max(14.0, min(36.0, 300.0 / max(1, n, m)))
    font = 9 if cell < 28 else 10
    label_w = 70.0
    left, top = label_w + font + 6, 2 * font + 10
    width, height = int(left + m * cell + 6), int(top + n * cell + 6)
    peak = max([v for r in rows for v in r if v is not None and v > 0], default=0.0)
    body = [text(left + m * cell / 2, font + 1, x_label, font, "middle", ' class="x-label"')]
    cy = top + n * cell / 2
    body.append(text(font, cy, y_label, font, "middle", f' class="y-label" transform="rotate(-90 {font} {num(cy)})"'))
    for j, lab in enumerate(col_labels):
        body.append(
            f"<g><title>{esc(lab)}</title>"
            + text(left + (j + 0.5) * cell, top - 4, shorten(lab, max(2, int(cell / 5.5))), font, "middle")
            + "</g>"
        )
    for i, lab in enumerate(row_labels):
        row = rows[i] if i < len(rows) else []
        row_total = sum(v for v in row if v is not None and v > 0)
        body.append(
            f"<g><title>{esc(lab)}</title>"
            + text(left - 4, top + (i + 0.5) * cell + font / 3, shorten(lab, 12), font, "end")
            + "</g>"
        )
        for j in range(m):
            v = row[j] if j < len(row) else None
            denom = row_total if shade == "row" else peak
            t = max(0.0, min(1.0, v / denom)) if v is not None and denom > 0 else 0.0
            fill = _blend(t)
            x, y = left + j * cell, top + i * cell
            body.append(
                f'<rect class="cell" data-row="{i}" data-col="{j}" data-value="{esc(repr(v))}" x="{num(x)}" '
                f'y="{num(y)}" width="{num(cell)}" height="{num(cell)}" fill="{fill}" stroke="#fff"/>'
            )
            colour = "#fff" if t > 0.55 else "#222"
            body.append(
                text(
                    x + cell / 2,
                    y + cell / 2 + font / 3,
                    "\u2013" if v is None else count(v),
                    font,
                    "middle",
                    f' class="value" fill="{colour}"',
                )
            )
    if not n or not m:
        body.append(text(width / 2, height / 2, "no data", font, "middle", ' class="no-data" fill="#888"'))
    data = {"rows": n, "cols": m, "shade": shade}
    return svg("heatmap", (max(width, 120), max(height, 60)), title, "".join(body), data)


def _blend(t: float) -> str:
    """Return white blended towards the palette's blue by ``t`` in [0, 1]."""
    r, g, b = (int(round(255 + (c - 255) * t)) for c in (0x00, 0x72, 0xB2))
    return f"#{r:02x}{g:02x}{b:02x}"


# --- scatter --------------------------------------------------------------------------------------------------
def thin(points: Sequence[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    """Return the finite points, at most ``max_points`` of them: sorted by x, then every k-th evenly spaced.

    Deterministic (no randomness): the same input always draws the same points, spread over the whole x range,
    and the first and last (smallest and largest x) are always kept.
    """
    pts = sorted(
        (x, y)
        for x, y in ((finite(p[0]), finite(p[1])) for p in points if len(p) >= 2)
        if x is not None and y is not None
    )
    if len(pts) <= max_points:
        return pts
    if max_points <= 1:
        return pts[:max_points]
    n = len(pts)
    return [pts[round(i * (n - 1) / (max_points - 1))] for i in range(max_points)]


def scatter(
    points: Sequence[tuple[float, float]],
    *,
    title: str = "scatter",
    x_label: str = "",
    y_label: str = "",
    thresholds: Sequence[Threshold | tuple] = (),
    max_points: int = 1500,
    size: tuple[int, int] = LARGE,
) -> str:
    """Draw points (e.g. residuals vs predicted) with optional threshold lines, thinned to ``max_points``.

    Args:
        points: (x, y) pairs; NaN/missing ones are skipped.
        title: The accessible title.
        x_label: The x axis title.
        y_label: The y axis title.
        thresholds: :class:`Threshold` or (label, value[, axis]) tuples (e.g. ``("0", 0.0)`` for residuals).
        max_points: At most this many points are drawn (see :func:`thin`); ``data-points`` says
            "drawn of finite" and a note on the chart says so when points were left out.
        size: (width, height) in pixels.
    """
    if max_points < 1:
        raise ConfigError(f"scatter max_points must be at least 1, got {max_points}")
    font = _font(size)
    finite_n = sum(1 for p in points if len(p) >= 2 and finite(p[0]) is not None and finite(p[1]) is not None)
    drawn = thin(points, max_points)
    limits = _thresholds(thresholds)
    x_lo, x_hi = span([x for x, _ in drawn] + [t.value for t in limits if t.axis == "x"])
    y_lo, y_hi = span([y for _, y in drawn] + [t.value for t in limits if t.axis == "y"])
    frame = Frame.make(size, _margins(font, x_label, y_label), (x_lo, x_hi), (y_lo, y_hi))
    body = [axes(frame, x_label=x_label, y_label=y_label, font=font)]
    body.append(_threshold_lines(frame, limits, font))
    colour = style(0)[0]
    body.append(f'<g class="points" fill="{colour}" fill-opacity="0.45">')
    body.extend(f'<circle cx="{num(frame.x(x))}" cy="{num(frame.y(y))}" r="1.6"/>' for x, y in drawn)
    body.append("</g>")
    if len(drawn) < finite_n:
        note = f"{count(len(drawn))} of {count(finite_n)} points (evenly spaced by x)"
        body.append(text(frame.left + 2, font + 2, note, font, extra=' class="note" fill="#666"'))
    if not drawn:
        body.append(no_data(frame, font))
    return svg("scatter", size, title, "".join(body), {"points": f"{len(drawn)} of {finite_n}"})
