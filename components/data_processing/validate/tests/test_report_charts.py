"""The validation report's charts: the shares drawn are the statistics' counts, failing features come first."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import report_charts, reports, statistics
from kfp_tabular.components.data_processing.validate.results import Anomaly, DriftMeasurement, ValidationResult

NS = "{http://www.w3.org/2000/svg}"


def _stats(features: dict, rows: int):
    """A one-dataset statistics proto; ``features``: name -> ("quantiles", [(low, high, count)], missing) or
    ("values", {value: count}, missing)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=rows)
    for name, (kind, content, missing) in features.items():
        feature = dataset.features.add()
        feature.path.step.append(name)
        if kind == "quantiles":
            feature.type = statistics_pb2.FeatureNameStatistics.FLOAT
            num = feature.num_stats
            num.common_stats.num_missing = missing
            num.common_stats.num_non_missing = rows - missing
            hist = num.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
            for low, high, count in content:
                hist.buckets.add(low_value=low, high_value=high, sample_count=count)
        else:
            feature.type = statistics_pb2.FeatureNameStatistics.STRING
            s = feature.string_stats
            s.common_stats.num_missing = missing
            s.common_stats.num_non_missing = rows - missing
            s.common_stats.tot_num_values = rows - missing
            for value, count in sorted(content.items(), key=lambda kv: -kv[1]):
                s.rank_histogram.buckets.add(label=value, sample_count=count)
                s.top_values.add(value=value, frequency=count)
    return stats


def test_numeric_shares_are_the_quantile_bucket_counts_on_common_bins():
    # Float edges: [0, 0.5] holds 50 values, [0.5, 3] 50, 5 rows missing; 24 equal bins of width 0.125 over [0, 3].
    train = _stats({"x": ("quantiles", [(0.0, 0.5, 50), (0.5, 3.0, 50)], 5)}, 105)
    chart = report_charts.feature_charts({"train": train, "eval": None})["x"]
    assert chart.kind == "numeric" and set(chart.shares) == {"train"}
    assert chart.edges == pytest.approx([i * 0.125 for i in range(25)])
    assert chart.shares["train"] == pytest.approx([0.125] * 4 + [0.025] * 20)
    assert chart.missing == {"train": pytest.approx(5 / 105)}


def test_small_integer_ranges_get_a_bin_per_value_and_each_side_its_own_shares():
    # Integer edges 0..4: bins centred on 0, 1, 2, 3, 4; linear within [1, 2] and [2, 4], a point mass at 0.
    train = _stats({"n": ("quantiles", [(0, 0, 10), (0, 1, 0), (1, 2, 30), (2, 4, 60)], 0)}, 100)
    evaluation = _stats({"n": ("quantiles", [(0, 2, 20), (2, 2, 20)], 10)}, 50)
    baseline = _stats({"n": ("quantiles", [(1, 1, 7)], 0)}, 7)
    chart = report_charts.feature_charts({"train": train, "eval": evaluation, "baseline": baseline})["n"]
    assert chart.edges == [-0.5, 0.5, 1.5, 2.5, 3.5, 4.5]
    assert chart.shares["train"] == pytest.approx([0.10, 0.15, 0.30, 0.30, 0.15])
    assert chart.shares["eval"] == pytest.approx([0.125, 0.25, 0.625, 0.0, 0.0])
    assert chart.shares["baseline"] == pytest.approx([0.0, 1.0, 0.0, 0.0, 0.0])
    assert chart.missing == {"train": 0.0, "eval": 0.2, "baseline": 0.0}
    svg = ET.fromstring(report_charts.draw(chart))
    assert svg.get("class") == "chart histogram" and svg.get("data-y") == "share"
    assert [p.get("data-series") for p in svg.iter(NS + "path") if p.get("class") == "series"] == [
        "train",
        "eval",
        "baseline",
    ]


def test_categorical_shares_are_top_value_frequencies_over_the_values():
    train = _stats({"c": ("values", {"red": 50, "green": 30, "blue": 20}, 10)}, 110)
    baseline = _stats({"c": ("values", {"red": 10, "green": 60, "violet": 30}, 0)}, 100)
    without = report_charts.feature_charts({"train": train, "eval": train})["c"]
    assert without.kind == "categorical" and set(without.shares) == {"train", "eval"}
    assert without.categories == ["red", "green", "blue"]
    assert without.shares["train"] == pytest.approx([0.5, 0.3, 0.2])
    assert without.missing["train"] == pytest.approx(10 / 110)
    # values beyond the rank histogram count in the denominator: 50 of 100 values are neither a nor b
    beyond = report_charts.feature_charts({"train": _stats({"c": ("values", {"a": 40, "b": 10}, 0)}, 100)})["c"]
    assert beyond.shares["train"] == pytest.approx([0.4, 0.1])
    chart = report_charts.feature_charts({"train": train, "eval": train, "baseline": baseline})["c"]
    # ordered by the mean share over the sides: green 0.4 (0.3, 0.3, 0.6), red 0.37, blue 0.13, violet 0.1
    assert chart.categories == ["green", "red", "blue", "violet"]
    assert chart.shares["baseline"] == pytest.approx([0.6, 0.1, 0.0, 0.3])
    assert chart.shares["eval"] == pytest.approx([0.3, 0.5, 0.2, 0.0])
    svg = ET.fromstring(report_charts.draw(chart))
    drawn = [(r.get("data-series"), float(r.get("data-value"))) for r in svg.iter(NS + "rect") if r.get("data-series")]
    assert drawn[:3] == [("train", 0.3), ("eval", 0.3), ("baseline", 0.6)]


def test_shares_against_real_tfdv_statistics(tmp_path):
    frame = synthetic.generate(3000, 7)
    path = synthetic.write(frame, tmp_path / "data.parquet")
    stats = statistics.generate_statistics(path)
    found = report_charts.feature_charts({"train": stats})
    by_name = {statistics.feature_name(f): f for f in stats.datasets[0].features}
    for name, chart in found.items():
        feature = by_name[name]
        assert sum(chart.shares["train"]) == pytest.approx(1.0), name
        if chart.kind == "numeric":
            s = feature.num_stats
            width = chart.edges[1] - chart.edges[0]
            mids = [(lo + hi) / 2 for lo, hi in zip(chart.edges, chart.edges[1:])]
            mean = sum(m * share for m, share in zip(mids, chart.shares["train"]))
            assert abs(mean - s.mean) <= width / 2 + 1e-9, (name, mean, s.mean, width)
            assert chart.missing["train"] == pytest.approx(s.common_stats.num_missing / 3000)
        else:
            s = feature.string_stats
            tops = {v.value: v.frequency for v in s.top_values}
            for value, share in zip(chart.categories, chart.shares["train"]):
                if value in tops:
                    assert share == pytest.approx(tops[value] / s.common_stats.num_non_missing), (name, value)
            assert chart.missing["train"] == pytest.approx(s.common_stats.num_missing / 3000)
    assert found["contract_type"].kind == "categorical" and found["monthly_charges"].kind == "numeric"
    assert frame["total_charges"].isna().mean() == pytest.approx(found["total_charges"].missing["train"])


def _measurement(feature, comparison="eval_vs_train", flagged=False, gating=False):
    return DriftMeasurement(
        comparison, "drift", feature, "js_distance", 0.2, 0.1, 0.05, 0.001, 100, 100, flagged, gating
    )


RESULT = ValidationResult(
    anomalies=[Anomaly("eval", "zeta", "SCHEMA_MISSING_COLUMN", "Column dropped", "gone", "ERROR")],
    drift=[
        _measurement("alpha"),
        _measurement("mid", flagged=True),
        _measurement("omega", "batch_vs_baseline", flagged=True, gating=True),
        _measurement("beta", "batch_vs_baseline", flagged=False, gating=True),
    ],
    schema_source="inferred",
    schema_uri="",
    num_examples={"train": 100, "eval": 100},
    num_features={},
    schema_features=5,
    label_column="alpha",
)


def test_failing_features_come_first_then_flagged_then_by_name():
    order = report_charts.ordered(RESULT, ["mid", "beta", "alpha", "omega"])
    assert [(v.feature, v.group) for v in order] == [("omega", 0), ("zeta", 0), ("mid", 1), ("alpha", 2), ("beta", 2)]
    assert order[0].drifted and not order[0].anomalous and order[1].anomalous and order[2].flagged


def test_page_rows_in_that_order_with_marks_summary_and_a_chart_limit():
    quantiles = [(0.0, 1.0, 50), (1.0, 2.0, 50)]
    features = {name: ("quantiles", quantiles, 0) for name in ("alpha", "beta", "mid", "omega")}
    stats = _stats(features, 100)
    page = reports.render_html_report(RESULT, stats, stats, _schema(), baseline=stats, max_charts=2)
    rows = re.findall(r'<tr class="(\w+)" data-feature="([^"]+)">|<tr data-feature="([^"]+)">', page)
    assert [(css, a or b) for css, a, b in rows] == [
        ("fails", "omega"),
        ("fails", "zeta"),
        ("flagged", "mid"),
        ("", "alpha"),
        ("", "beta"),
    ]
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart histogram"') == 1  # zeta has no stats
    assert page.count("not drawn (charts for the first 2 features)") == 3
    assert "5 features: charts for the first 2 in this order" in page
    strip = dict(re.findall(r'data-label="([^"]+)" data-count="([^"]*)"', page))
    assert strip == {
        "anomalies": "1",
        "features drifted (fail the run)": "1",
        "features flagged (reported only)": "1",
        "decisions taken for you": "0",
        "schema": "inferred",
    }
    assert page.index("Column dropped") < page.index("<h2>Anomalies</h2>")
    assert 'data-series="train,eval,baseline"' in page


def _schema():
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    schema.feature.add(name="alpha", type=schema_pb2.FLOAT)
    return schema


def test_report_lists_upstream_and_own_decisions():
    from kfp_tabular.components.common.decisions import Decision

    stats = _stats({"alpha": ("values", {"a": 3}, 0)}, 3)
    own = Decision("validate", "statistics_backend", "dataframe", "fits memory")
    upstream = Decision("ingest", "id", "dropped", "unique per row <b>")
    result = ValidationResult([], [], "inferred", "", {"train": 3}, {}, 1, "alpha", decisions=[own])
    page = reports.render_html_report(result, stats, stats, _schema(), decisions=[upstream])
    assert 'data-label="decisions taken for you" data-count="2"' in page
    assert page.index("unique per row &lt;b&gt;") < page.index("fits memory")
    assert "<b>" not in page.split("unique per row")[1][:5]


def test_feature_without_values_draws_no_chart():
    stats = _stats({"empty": ("quantiles", [], 10)}, 10)
    chart = report_charts.feature_charts({"train": stats})["empty"]
    assert chart.kind == "none" and report_charts.draw(chart) == ""


def test_infinite_bucket_edges_are_clipped_to_the_finite_range():
    stats = _stats({"x": ("quantiles", [(float("-inf"), 0.0, 5), (0.0, 1.0, 90), (1.0, float("inf"), 5)], 0)}, 100)
    chart = report_charts.feature_charts({"train": stats})["x"]
    assert chart.edges[0] == 0.0 and chart.edges[-1] == 1.0
    assert sum(chart.shares["train"]) == pytest.approx(1.0)
    assert chart.shares["train"][0] == pytest.approx(0.05 + 0.9 / 24)


def test_wide_frames_keep_every_feature_listed(tmp_path):
    frame = pd.DataFrame({f"f{i}": [float(i + j) for j in range(20)] for i in range(12)})
    stats = statistics.generate_statistics(synthetic.write(frame, tmp_path / "wide.parquet"))
    result = ValidationResult([], [], "inferred", "", {"train": 20}, {}, 12, "f0")
    page = reports.render_html_report(result, stats, stats, _schema(), max_charts=5)
    assert page.count('class="chart histogram"') == 5
    assert len(re.findall(r'<tr data-feature="f\d+">', page)) == 12
