"""The inline SVG charts: valid XML, inside their viewBox, drawing the data they are given, escaping every text."""

from __future__ import annotations

import html
import math
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_tabular.components.common import chart_svg, charts, report_html
from kfp_tabular.components.common.errors import ConfigError

NS = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(1)</script> & \"quotes\" 'single' \u00e9\u2713"
NAN, INF = float("nan"), float("inf")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
POSITION_ATTRS = ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy")


def parse(svg: str) -> ET.Element:
    """Parse ``svg`` (it must be well-formed XML) and check the wrapper every chart has."""
    root = ET.fromstring(svg)
    assert root.tag == NS + "svg"
    assert root.get("class").split()[0] == "chart"
    assert root.find(NS + "title") is not None and root.get("viewBox")
    assert root.get("width") == root.get("viewBox").split()[2]
    return root


def elements(root: ET.Element, tag: str, cls: str | None = None) -> list[ET.Element]:
    return [e for e in root.iter(NS + tag) if cls is None or cls in (e.get("class") or "").split()]


def path_tokens(d: str) -> list[str]:
    return re.findall(r"[MLHVZ]|" + NUMBER.pattern, d)


def assert_inside(svg: str) -> ET.Element:
    """Every coordinate is a finite number inside the viewBox; no NaN/inf in any drawing attribute."""
    root = parse(svg)
    _, _, w, h = (float(v) for v in root.get("viewBox").split())
    for e in root.iter():
        drawn = {k: v for k, v in e.attrib.items() if not k.startswith(("data-", "aria-"))}
        assert not re.search(r"\b(nan|inf|infinity)\b", " ".join(drawn.values()), re.IGNORECASE), (e.tag, drawn)
        for attr in POSITION_ATTRS:
            if e.get(attr) is not None:
                v = float(e.get(attr))
                limit = w if attr.startswith(("x", "cx")) else h
                assert math.isfinite(v) and -0.01 <= v <= limit + 0.01, (e.tag, attr, v, w, h)
        for attr in ("width", "height"):
            if e is not root and e.get(attr) is not None:
                assert 0 <= float(e.get(attr)) <= max(w, h), (e.tag, attr, e.get(attr))
        if e.get("x") is not None and e.get("width") is not None and e.tag == NS + "rect":
            assert float(e.get("x")) + float(e.get("width")) <= w + 0.01
        if e.tag == NS + "path":
            tokens = path_tokens(e.get("d"))
            assert "".join(tokens).replace(" ", "") == e.get("d").replace(" ", ""), e.get("d")
            cmd, xy = None, 0
            for t in tokens:
                if t.isalpha():
                    cmd, xy = t, 0
                    continue
                v = float(t)
                is_x = cmd == "H" or (cmd in "ML" and xy % 2 == 0)
                xy += 1
                assert math.isfinite(v) and -0.01 <= v <= (w if is_x else h) + 0.01, (e.get("d"), t)
    return root


def frame_of(root: ET.Element) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the plot area, read from the axis lines."""
    x_axis, y_axis = elements(root.find(f"{NS}g[@class='axes']"), "line")
    return float(x_axis.get("x1")), float(y_axis.get("y1")), float(x_axis.get("x2")), float(x_axis.get("y1"))


def step_heights(path: ET.Element, base: float) -> list[float]:
    """The height of each bucket of a histogram outline: every ``V y`` that is followed by ``H``."""
    tokens = path_tokens(path.get("d"))
    return [base - float(tokens[i + 1]) for i, t in enumerate(tokens[:-2]) if t == "V" and tokens[i + 2] == "H"]


# --- histogram ------------------------------------------------------------------------------------------------
def test_histogram_heights_are_the_shares_of_each_dataset():
    edges = [0, 1, 2, 3]
    root = assert_inside(charts.histogram({"train": (edges, [10, 20, 10]), "eval": (edges, [1, 1, 2])}))
    assert root.get("data-series") == "train,eval" and root.get("data-y") == "share"
    left, top, right, bottom = frame_of(root)
    train, evl = elements(root, "path", "series")
    assert (train.get("data-series"), evl.get("data-series")) == ("train", "eval")
    t, e = step_heights(train, bottom), step_heights(evl, bottom)
    assert len(t) == len(e) == 3
    # shares 0.25/0.5/0.25 and 0.25/0.25/0.5: the tallest (0.5) spans the plot height
    assert t == pytest.approx([(bottom - top) / 2, bottom - top, (bottom - top) / 2], abs=0.02)
    assert e == pytest.approx([(bottom - top) / 2, (bottom - top) / 2, bottom - top], abs=0.02)
    xs = [float(v) for k, v in zip(path_tokens(train.get("d")), path_tokens(train.get("d"))[1:]) if k == "H"]
    assert xs == pytest.approx([left + (right - left) * i / 3 for i in (1, 2, 3)], abs=0.02)


def test_histogram_counts_are_normalised_so_row_counts_compare():
    edges = [0, 5, 10]
    small = charts.histogram({"a": (edges, [1, 3])})
    big = charts.histogram({"a": (edges, [1000, 3000])})
    assert small == big


def test_histogram_with_different_edges_draws_density_each_on_its_own_buckets():
    root = assert_inside(charts.histogram({"wide": ([0, 4], [10]), "narrow": ([0, 1, 2, 3, 4], [1, 1, 1, 1])}))
    assert root.get("data-y") == "density"
    _, _, _, bottom = frame_of(root)
    wide, narrow = elements(root, "path", "series")
    assert wide.get("data-buckets") == "1" and narrow.get("data-buckets") == "4"
    # both are uniform on [0, 4]: the same density 0.25 per unit, so the same height
    assert step_heights(wide, bottom) == pytest.approx(step_heights(narrow, bottom)[:1], abs=0.02)
    assert len(set(step_heights(narrow, bottom))) == 1


def test_histogram_refuses_edges_that_do_not_match_the_counts_naming_the_series():
    with pytest.raises(ConfigError, match="'eval'.*3 counts need 4 bucket edges, got 3"):
        charts.histogram({"eval": ([0, 1, 2], [1, 2, 3])})


@pytest.mark.parametrize(
    "series",
    [
        {},
        {"a": ([], [])},
        {"a": ([5, 5], [100]), "b": ([5, 5], [0])},  # all-equal values, zero counts
        {"a": ([0, 1, 2], [0, 0])},
        {"a": ([0, NAN, 2, INF], [1, 2, 3]), "b": ([-INF, 0, 1], [5, 5])},
        {"a": ([-3, -2, -1], [-4, 2]), "b": ([-1e308, 0, 1e308], [1, 1])},  # negative count, huge range
        {"a": ([0, 1e-300, 2e-300], [1, 1])},  # tiny widths: density would overflow
        {"a": ([0, 1, 2], [NAN, NAN])},
    ],
    ids=["none", "empty", "all-equal", "zero-counts", "nan-inf-edges", "negative-huge", "tiny-widths", "nan-counts"],
)
def test_histogram_degenerate_input_draws_without_nan(series):
    root = assert_inside(charts.histogram(series, x_label="x"))
    assert len(elements(root, "path", "series")) == len(series)


def test_histogram_of_one_repeated_value_draws_a_visible_bucket():
    root = assert_inside(charts.histogram({"a": ([7, 7], [500])}))
    (path,) = elements(root, "path", "series")
    left, top, right, bottom = frame_of(root)
    assert step_heights(path, bottom) == pytest.approx([bottom - top], abs=0.02)
    xs = [float(t) for t in NUMBER.findall(path.get("d"))[::1]]
    assert max(xs) - min(xs) > 1  # wider than a hairline


# --- bars -----------------------------------------------------------------------------------------------------
def test_bar_lengths_are_proportional_to_the_shares():
    root = assert_inside(charts.bars(["a", "b", "c"], {"train": [0.5, 0.25, 0.1], "eval": [0.4, NAN, -0.2]}))
    left, _, right, _ = frame_of(root)
    rects = elements(root, "rect", "bar")
    by = {(r.get("data-series"), float(r.get("data-value"))): float(r.get("width")) for r in rects}
    assert len(rects) == 5, "NaN draws no bar"
    assert by[("train", 0.5)] == pytest.approx(right - left, abs=0.02)
    assert by[("train", 0.25)] == pytest.approx((right - left) / 2, abs=0.02)
    assert by[("eval", 0.4)] == pytest.approx((right - left) * 0.8, abs=0.02)
    assert by[("eval", -0.2)] == 0
    assert [g.get("data-category") for g in elements(root, "g", "category")] == ["a", "b", "c"]


def test_bars_are_capped_and_scaled_to_x_max():
    cats = [f"c{i}" for i in range(30)]
    root = assert_inside(charts.bars(cats, {"s": [0.01] * 30}, max_categories=5, x_max=0.02))
    assert root.get("data-categories") == "5 of 30"
    left, _, right, _ = frame_of(root)
    widths = [float(r.get("width")) for r in elements(root, "rect", "bar")]
    assert widths == pytest.approx([(right - left) / 2] * 5, abs=0.02)


@pytest.mark.parametrize(
    ("cats", "series"),
    [
        ([], {}),
        (["a"], {}),
        (["a", "b"], {"s": []}),
        (["a"], {"s": [0.0]}),
        (["a"], {"s": [NAN]}),
        (["a"], {"s": [1e308]}),
    ],
)
def test_bars_degenerate_input(cats, series):
    assert_inside(charts.bars(cats, series))


# --- lines ----------------------------------------------------------------------------------------------------
def test_lines_map_points_thresholds_and_the_diagonal_to_the_right_pixels():
    svg = charts.lines(
        {"roc": [(0, 0), (0.5, 0.8), (1, 1)]},
        x_range=(0, 1),
        y_range=(0, 1),
        diagonal=True,
        thresholds=[("roc_auc >= 0.7", 0.7), charts.Threshold("fpr 0.25", 0.25, "x")],
        x_label="fpr",
        y_label="tpr",
    )
    root = assert_inside(svg)
    left, top, right, bottom = frame_of(root)
    (path,) = elements(root, "path", "series")
    nums = [float(v) for v in NUMBER.findall(path.get("d"))]
    assert nums == pytest.approx(
        [left, bottom, left + (right - left) / 2, bottom - 0.8 * (bottom - top), right, top], abs=0.02
    )
    y_line, x_line = elements(root, "line", "threshold")
    assert y_line.get("data-label") == "roc_auc >= 0.7" and y_line.get("data-axis") == "y"
    assert float(y_line.get("y1")) == float(y_line.get("y2")) == pytest.approx(bottom - 0.7 * (bottom - top), abs=0.02)
    assert float(x_line.get("x1")) == pytest.approx(left + 0.25 * (right - left), abs=0.02)
    (diag,) = elements(root, "line", "diagonal")
    assert [float(diag.get(a)) for a in ("x1", "y1", "x2", "y2")] == pytest.approx([left, bottom, right, top], abs=0.02)
    labels = [t.text for t in elements(root, "text")]
    assert "roc_auc >= 0.7" in labels and "fpr" in labels and "tpr" in labels


def test_lines_range_includes_thresholds_outside_the_data():
    root = assert_inside(charts.lines({"s": [(0, 0.1), (1, 0.2)]}, thresholds=[("max 0.5", 0.5)]))
    _, top, _, _ = frame_of(root)
    (t,) = elements(root, "line", "threshold")
    assert float(t.get("y1")) == pytest.approx(top, abs=0.02)


def test_lines_break_at_nan_and_mark_single_points():
    svg = charts.lines({"steps": [(1, 1), (2, 2), (3, NAN), (4, 4)], "one": [(2, 3)]}, markers=False)
    root = assert_inside(svg)
    steps, one = elements(root, "path", "series")
    assert steps.get("d").count("M") == 2 and steps.get("data-points") == "3"
    markers = elements(root, "circle", "marker")
    assert [m.get("data-series") for m in markers] == ["steps", "one"]  # the lone (4, 4) and the single point
    with_markers = parse(charts.lines({"steps": [(1, 1), (2, 2), (4, 4)]}, markers=True))
    assert len(elements(with_markers, "circle", "marker")) == 3


def test_lines_band_is_drawn_in_its_series_colour():
    root = assert_inside(charts.lines({"a": [(0, 1), (1, 2)]}, bands={"a": [(0, 0.5, 1.5), (1, 1.5, 2.5)]}))
    (band,) = elements(root, "path", "band")
    (series,) = elements(root, "path", "series")
    assert band.get("fill") == series.get("stroke") and band.get("d").endswith("Z")


@pytest.mark.parametrize(
    "series",
    [
        {},
        {"a": []},
        {"a": [(1, 1)]},
        {"a": [(1, 1), (1, 1)]},
        {"a": [(NAN, 1), (INF, 2), (3, -INF)]},
        {"a": [(-1e308, 1e308), (1e308, -1e308)]},
        {"a": [(0, 0), (1e-320, 1e-320)]},
        {"a": [(0,), (1, 2, 3)]},
    ],
    ids=["none", "empty", "one", "equal", "nan-inf", "huge", "subnormal", "ragged"],
)
def test_lines_degenerate_input(series):
    assert_inside(charts.lines(series, thresholds=[("t", NAN), ("u", 1.0)], diagonal=True, markers=True))


def test_threshold_axis_is_checked():
    with pytest.raises(ConfigError, match="threshold 'bad': axis must be 'x' or 'y'"):
        charts.lines({"a": [(0, 0)]}, thresholds=[("bad", 1, "z")])


# --- heatmap --------------------------------------------------------------------------------------------------
def test_heatmap_writes_the_counts_and_shades_by_row_share():
    root = assert_inside(charts.heatmap([[90, 10], [1, 3]], ["no", "yes"], ["no", "yes"]))
    cells = elements(root, "rect", "cell")
    assert len(cells) == 4 and root.get("data-rows") == "2" and root.get("data-shade") == "row"
    assert [t.text for t in elements(root, "text", "value")] == ["90", "10", "1", "3"]
    fill = {(c.get("data-row"), c.get("data-col")): c.get("fill") for c in cells}
    darkness = {k: sum(int(v[i : i + 2], 16) for i in (1, 3, 5)) for k, v in fill.items()}
    assert darkness[("0", "0")] < darkness[("1", "1")] < darkness[("1", "0")]  # 0.9 < 0.75 < 0.25 of the row
    by_all = parse(charts.heatmap([[90, 10], [1, 3]], ["no", "yes"], ["no", "yes"], shade="all"))
    assert [c.get("fill") for c in elements(by_all, "rect", "cell")][0] == "#0072b2"


def test_heatmap_large_counts_and_degenerate_cells():
    root = assert_inside(charts.heatmap([[1234567, NAN], [-1]], ["a", "b"], ["x", "y"]))
    assert [t.text for t in elements(root, "text", "value")] == ["1,234,567", "\u2013", "-1", "\u2013"]
    assert_inside(charts.heatmap([], [], []))
    assert_inside(charts.heatmap([[0, 0], [0, 0]], ["a", "b"], ["a", "b"]))
    many = [f"class {i}" for i in range(40)]
    assert_inside(charts.heatmap([[i * j for j in range(40)] for i in range(40)], many, many))
    with pytest.raises(ConfigError, match="shade must be"):
        charts.heatmap([[1]], ["a"], ["a"], shade="col")


# --- scatter --------------------------------------------------------------------------------------------------
def test_scatter_thins_deterministically_and_says_so():
    points = [(i, (i * 7919) % 101 - 50) for i in range(10_000)] + [(NAN, 1), (2, INF)]
    svg = charts.scatter(points, max_points=500, thresholds=[("0", 0.0)])
    root = assert_inside(svg)
    assert root.get("data-points") == "500 of 10000"
    assert len(elements(root, "circle")) == 500
    assert any("500 of 10,000 points" in (t.text or "") for t in elements(root, "text", "note"))
    assert svg == charts.scatter(list(reversed(points)), max_points=500, thresholds=[("0", 0.0)])
    kept = charts.thin(points, 500)
    assert kept[0] == (0, -50) and kept[-1][0] == 9999 and len(set(kept)) == 500


def test_scatter_draws_every_point_under_the_bound_and_checks_it():
    root = assert_inside(charts.scatter([(1, 2), (3, 4)], x_label="predicted", y_label="residual"))
    assert len(elements(root, "circle")) == 2 and not elements(root, "text", "note")
    for degenerate in ([], [(1, 1)], [(5, 5), (5, 5)], [(NAN, NAN)], [(-1e308, 1e308), (1e308, -1e308)]):
        assert_inside(charts.scatter(degenerate))
    with pytest.raises(ConfigError, match="max_points must be at least 1"):
        charts.scatter([(1, 1)], max_points=0)


# --- escaping, page -------------------------------------------------------------------------------------------
ALL_KINDS_EVIL = [
    lambda: charts.histogram({EVIL: ([0, 1], [1])}, title=EVIL, x_label=EVIL),
    lambda: charts.bars([EVIL], {EVIL: [0.5]}, title=EVIL),
    lambda: charts.lines({EVIL: [(0, 0), (1, 1)]}, title=EVIL, x_label=EVIL, y_label=EVIL, thresholds=[(EVIL, 0.5)]),
    lambda: charts.heatmap([[1]], [EVIL], [EVIL], title=EVIL, x_label=EVIL, y_label=EVIL),
    lambda: charts.scatter([(0, 0)], title=EVIL, x_label=EVIL, y_label=EVIL, thresholds=[(EVIL, 0)]),
]


@pytest.mark.parametrize("build", ALL_KINDS_EVIL, ids=["histogram", "bars", "lines", "heatmap", "scatter"])
def test_every_text_is_escaped(build):
    svg = build()
    assert "<script" not in svg and "&lt;script&gt;" in svg
    root = assert_inside(svg)
    assert root.find(NS + "title").text == EVIL
    texts = [t.text for t in root.iter(NS + "text") if t.text and "alert" in t.text]
    assert texts and all(t.startswith("<script>") for t in texts), texts  # drawn as text (maybe shortened)
    series_attrs = [e.get("data-series") for e in root.iter() if e.get("data-series")]
    assert all(v == EVIL for v in series_attrs if "alert" in v)


def test_page_is_self_contained_and_escaped():
    chart = charts.lines({"a": [(0, 0), (1, 1)]})
    html = report_html.page(EVIL, report_html.figure(chart, EVIL), subtitle=EVIL)
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert "<script" not in html
    for external in ("src=", "href=", "url(", "@import", "@font-face", "<link"):
        assert external not in html
    assert re.findall(r"https?://[^\s\"']+", html) == ["http://www.w3.org/2000/svg"]  # the SVG namespace only
    assert html.count("&lt;script&gt;") == 4  # <title>, <h1>, subtitle, caption


def test_summary_strip_tones_and_escaping():
    strip = charts.summary_strip([("anomalies", 0), ("drifted", 3), (EVIL, 12345, "bad"), ("note", "n/a", "odd")])
    root = ET.fromstring(strip)
    items = root.findall("div")
    assert [i.get("class") for i in items] == ["item ok", "item warn", "item bad", "item info"]
    assert [i.find("b").text for i in items] == ["0", "3", "12,345", "n/a"]
    assert items[2].get("data-label") == EVIL and "<script" not in strip


# --- numbers --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.25, "0.25"),
        (3.14159, "3.14"),
        (1234, "1.23k"),
        (4.5e6, "4.5M"),
        (1e20, "1e20"),
        (2e-5, "2e-5"),
        (-0.5, "-0.5"),
        (NAN, "-"),
        (100, "100"),
    ],
)
def test_numbers_are_readable(value, text):
    assert chart_svg.fmt(value) == text


@settings(max_examples=150, deadline=None)
@given(
    lo=st.floats(-1e12, 1e12, allow_nan=False),
    width=st.floats(1e-9, 1e12, allow_nan=False),
    count=st.integers(1, 8),
)
def test_ticks_are_inside_the_range_and_ordered(lo, width, count):
    hi = lo + width
    if not hi > lo:
        return
    ticks = chart_svg.ticks(lo, hi, count)
    assert ticks and ticks == sorted(ticks) and len(ticks) <= 3 * count + 2
    step = (hi - lo) / count
    assert all(lo - step * 1e-6 <= t <= hi + step * 1e-6 for t in ticks)


ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324])


@settings(max_examples=120, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.integers(0, 6).flatmap(
            lambda n: st.tuples(
                st.lists(ANY_FLOAT, min_size=n + 1, max_size=n + 1), st.lists(ANY_FLOAT, min_size=n, max_size=n)
            )
        ),
        max_size=3,
    )
)
def test_histogram_of_any_floats_is_valid_svg_inside_its_box(series):
    series = {k: (sorted(e, key=lambda v: (math.isnan(v), v)), c) for k, (e, c) in series.items()}
    root = assert_inside(charts.histogram(series))
    # characters XML cannot hold become U+FFFD; an XML parser reads tab/newline in an attribute as a space
    names = [re.sub(r"[\t\n\r]", " ", html.unescape(chart_svg.esc(k))) for k in series]
    assert [p.get("data-series") for p in elements(root, "path", "series")] == names


@settings(max_examples=120, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8), st.lists(st.tuples(ANY_FLOAT, ANY_FLOAT), max_size=8), max_size=3),
    st.lists(st.tuples(st.text(max_size=8), ANY_FLOAT), max_size=2),
)
def test_lines_and_scatter_of_any_floats_are_valid_svg_inside_their_box(series, thresholds):
    assert_inside(charts.lines(series, thresholds=thresholds, diagonal=True, markers=True))
    assert_inside(charts.scatter([p for pts in series.values() for p in pts], thresholds=thresholds, max_points=5))
