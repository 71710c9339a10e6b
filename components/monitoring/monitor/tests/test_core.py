"""The monitor's core on real data: a churn model, served traffic like its training data and drifted traffic."""

from __future__ import annotations

import datetime
import json

import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.monitoring.monitor import core
from kfp_tabular.components.monitoring.monitor.request import MonitorRequest
from kfp_tabular.components.monitoring.monitor.tests.traffic import NOW, churn, served_rows, write_batches

DAY = datetime.timedelta(days=1)
FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "age",
    "support_calls",
    "contract_type",
    "payment_method",
    "internet_service",
    "region",
    "paperless_billing",
    "has_partner",
]


def traffic(deployed, sink, window_frame, previous_frame=None, **rows_fields):
    """Write the window's rows in [NOW - 1 day, NOW) and the previous window's the day before."""
    write_batches(sink, served_rows(deployed, window_frame, NOW - DAY, NOW, **rows_fields))
    if previous_frame is not None:
        write_batches(sink, served_rows(deployed, previous_frame, NOW - 2 * DAY, NOW - DAY))


def run(deployed, sink, out, **fields):
    request = MonitorRequest(served_data_uri=str(sink), lineage_uri=str(deployed.lineage), **fields)
    paths = {
        "decision_path": out / "decision.json",
        "report_path": out / "report.md",
        "report_html_path": out / "report.html",
        "served_data_path": out / "served.parquet",
    }
    result = core.monitor(request, now=NOW, **paths)
    return result, paths


def test_traffic_like_the_training_data_is_not_retrained_and_every_feature_is_reported(deployed, tmp_path):
    import pandas as pd

    sink = tmp_path / "sink"
    traffic(deployed, sink, churn(1200, seed=31), churn(1200, seed=32))
    result, paths = run(deployed, sink, tmp_path)
    assert not result.retrain, result.reasons
    assert result.rows == 1200 and result.previous_rows == 1200
    assert sorted(m.feature for m in result.skew) == sorted(FEATURES)  # every feature, none flagged
    assert sorted(m.feature for m in result.drift) == sorted(FEATURES)
    assert not result.drifted_features
    assert result.prediction is not None and not result.prediction.flagged
    assert result.prediction.distance < result.prediction.threshold
    estimated = result.performance["compared"]["accuracy"]
    assert not estimated["below"] and abs(estimated["estimated"] - deployed.blessing["metrics"]["accuracy"]) < 0.03
    decision = json.loads(paths["decision_path"].read_text())
    assert decision["retrain"] is False and decision["rows"] == 1200 and decision["drifted_features"] == []
    assert decision["window"] == {"start": (NOW - DAY).isoformat(), "end": NOW.isoformat()}
    assert decision["reasons"][0].startswith("no feature skewed or drifted past its threshold")
    markdown = paths["report_path"].read_text()
    assert "**NO RETRAIN**" in markdown and all(f"| {f} | serving_vs_train |" in markdown for f in FEATURES)
    assert len(pd.read_parquet(paths["served_data_path"])) == 1200


def test_drifted_traffic_is_retrained_naming_the_drifted_features(deployed, tmp_path):
    sink = tmp_path / "sink"
    traffic(deployed, sink, churn(1200, seed=41, variant="drifted"), churn(1200, seed=42))
    result, paths = run(deployed, sink, tmp_path)
    assert result.retrain
    # The drifted variant: monthly charges +25, fewer month-to-month contracts, shorter tenure (and a new payment
    # method at 10%: an anomaly, its L-infinity distance ~0.1 is at the threshold).
    for feature in ("monthly_charges", "contract_type", "tenure_months"):
        assert feature in result.skewed_features, (feature, result.reasons)
        assert any(r.startswith(f"skew (serving vs training): {feature}:") for r in result.reasons)
        assert any(r.startswith(f"drift (this window vs the previous): {feature}:") for r in result.reasons)
    for feature in ("region", "age", "has_partner"):  # drawn like the training data
        assert feature not in result.drifted_features
    decision = json.loads(paths["decision_path"].read_text())
    assert decision["retrain"] and set(decision["drifted_features"]) == set(result.drifted_features)
    assert any("payment_method" in a.feature for a in result.anomalies)  # 'crypto': outside the schema's domain
    html = paths["report_html_path"].read_text()
    assert "<script" not in html and 'data-feature="monthly_charges"' in html
    assert "RETRAIN" in html and "predictions:" in html


def test_too_few_rows_decide_no_retrain_saying_so(deployed, tmp_path):
    sink = tmp_path / "sink"
    traffic(deployed, sink, churn(60, seed=51, variant="drifted"))
    result, paths = run(deployed, sink, tmp_path, min_rows=200)
    assert not result.retrain and result.rows == 60
    assert "fewer than min_rows 200" in result.reasons[0] and len(result.reasons) == 1
    assert any("no drift comparison this time" in n for n in result.notes)
    assert result.skew, "the values are reported even when no decision is taken"


def test_rows_of_other_models_are_left_out_as_a_decision(deployed, tmp_path):
    import pandas as pd

    sink = tmp_path / "sink"
    ours = served_rows(deployed, churn(500, seed=61), NOW - DAY, NOW).assign(loyalty_tier="gold")
    theirs = served_rows(deployed, churn(300, seed=62, variant="drifted"), NOW - DAY, NOW, sha="f" * 64)
    unknown = served_rows(deployed, churn(100, seed=63), NOW - DAY, NOW, sha=None)
    write_batches(sink, pd.concat([ours, theirs, unknown], ignore_index=True))
    result, _ = run(deployed, sink, tmp_path)
    assert result.rows == 600
    actions = {d.action: d.reason for d in result.decisions}
    assert "300 of 900 rows" in actions["excluded"] and "ffffffffffff: 300" in actions["excluded"]
    assert "100 rows of the window carry no model sha256" in actions["assumed"]
    assert any(n.endswith("not monitored: loyalty_tier") for n in result.notes)
    assert not result.retrain, result.reasons


def test_scores_stored_as_the_predicted_class_probability_are_read_as_such(deployed, tmp_path):
    sink = tmp_path / "sink"
    rows = served_rows(deployed, churn(800, seed=71), NOW - DAY, NOW)
    rows["score"] = rows["score"].where(rows["score"] >= 0.5, 1 - rows["score"])
    write_batches(sink, rows)
    result, _ = run(deployed, sink, tmp_path)
    assert any(d.action == "interpreted" for d in result.decisions)
    assert not result.prediction.flagged and not result.retrain, result.reasons


def _regressor_rows(deployed, frame, start, end):
    """Served rows of the regressor: features, ``prediction`` (no ``score``), ``model_sha256``, ``time``."""
    import pandas as pd

    out = frame.drop(columns=["churned", "monthly_charges"])
    out["prediction"] = deployed.pipeline.predict(out)
    out["model_sha256"] = deployed.metadata["model_sha256"]
    step = (end - start) / len(out)
    out["time"] = pd.to_datetime([start + step * i for i in range(len(out))], utc=True)
    return out


def test_a_regressor_is_monitored_on_its_predicted_values(deployed_regressor, tmp_path):
    deployed = deployed_regressor
    assert deployed.blessing["prediction_distribution"]["kind"] == "value"
    like = tmp_path / "like"
    write_batches(like, _regressor_rows(deployed, churn(1000, seed=111), NOW - DAY, NOW))
    result, _ = run(deployed, like, tmp_path / "like-out")
    assert not result.retrain, result.reasons
    assert result.performance is None and any("not estimated for a regressor" in n for n in result.notes)
    assert result.prediction is not None and not result.prediction.flagged
    # No fiber-optic customers (35% of training): the predicted monthly charges move down with the input.
    shifted = churn(4000, seed=112)
    shifted = shifted[shifted["internet_service"] != "fiber-optic"].head(1000)
    drifted = tmp_path / "drifted"
    write_batches(drifted, _regressor_rows(deployed, shifted, NOW - DAY, NOW))
    result, _ = run(deployed, drifted, tmp_path / "drifted-out")
    assert result.retrain and result.prediction.flagged
    assert any(r.startswith("prediction drift: predicted value: JS distance") for r in result.reasons)
    assert "internet_service" in result.skewed_features


def test_a_multiclass_model_is_monitored_on_the_predicted_class_probability(deployed_multiclass, tmp_path):
    deployed = deployed_multiclass
    assert len(deployed.metadata["classes"]) == 3
    assert deployed.blessing["prediction_distribution"]["what"] == "probability of the predicted class"
    sink = tmp_path / "sink"
    write_batches(sink, served_rows(deployed, churn(1000, seed=131).drop(columns=["churned"]), NOW - DAY, NOW))
    result, _ = run(deployed, sink, tmp_path)
    assert not result.retrain, result.reasons
    assert "contract_type" not in [m.feature for m in result.skew]  # the label is not a served feature
    estimated = result.performance["estimated"]
    assert estimated["roc_auc"] is None and set(result.performance["compared"]) == {"accuracy"}
    assert abs(estimated["accuracy"] - deployed.blessing["metrics"]["accuracy"]) < 0.05
    assert not result.prediction.flagged


# --- bad inputs: a clear error, nothing written ---------------------------------------------------------------


def _nothing_written(out):
    return not any((out / name).exists() for name in ("decision.json", "report.md", "report.html", "served.parquet"))


def test_an_empty_window_is_an_error_naming_the_window(deployed, tmp_path):
    sink = tmp_path / "sink"
    write_batches(sink, served_rows(deployed, churn(50, seed=81), NOW - 3 * DAY, NOW - 2 * DAY))
    with pytest.raises(DataError, match=r"no rows in the window 2026-11-29T12:00:00\+00:00 to 2026-11-30T12:00"):
        run(deployed, sink, tmp_path)
    assert _nothing_written(tmp_path)
    with pytest.raises(DataError, match="not found"):
        run(deployed, tmp_path / "no-such-sink", tmp_path)
    assert _nothing_written(tmp_path)


def test_missing_feature_columns_are_named(deployed, tmp_path):
    sink = tmp_path / "sink"
    write_batches(sink, served_rows(deployed, churn(300, seed=82), NOW - DAY, NOW).drop(columns=["age", "region"]))
    with pytest.raises(DataError, match=r"lack feature column\(s\) 'age', 'region' of the model's schema"):
        run(deployed, sink, tmp_path)
    assert _nothing_written(tmp_path)


def test_a_batch_that_is_not_parquet_is_named(deployed, tmp_path):
    sink = tmp_path / "sink"
    traffic(deployed, sink, churn(300, seed=83))
    bad = sink / f"date={(NOW - DAY).date().isoformat()}" / "broken.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="a batch could not be read as Parquet .*broken.parquet"):
        run(deployed, sink, tmp_path)
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda text: text[:-20], "expected a lineage record in JSON, got invalid JSON"),
        (
            lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "statistics_uri"}),
            "statistics_uri",
        ),
        (lambda text: json.dumps({**json.loads(text), "model_sha256": "abc"}), "field 'model_sha256' must be"),
        (lambda text: json.dumps({**json.loads(text), "task": "ranking"}), "field 'task' must be one of"),
        (
            lambda text: json.dumps(
                {**json.loads(text), "prediction_distribution": {"kind": "score", "edges": [1, 0]}}
            ),
            "field 'prediction_distribution': 'edges' must increase",
        ),
    ],
)
def test_a_lineage_record_that_does_not_parse_is_named_with_its_field(deployed, tmp_path, change, message):
    sink = tmp_path / "sink"
    traffic(deployed, sink, churn(300, seed=84))
    broken = tmp_path / "lineage.json"
    broken.write_text(change(deployed.lineage.read_text()))
    request = MonitorRequest(served_data_uri=str(sink), lineage_uri=str(broken))
    with pytest.raises(DataError, match=message) as caught:
        core.monitor(request, now=NOW, decision_path=tmp_path / "decision.json", report_path=tmp_path / "report.md")
    assert str(broken) in str(caught.value)
    assert _nothing_written(tmp_path)


def test_a_lineage_record_is_found_in_a_model_directory(deployed, tmp_path):
    import shutil

    sink = tmp_path / "sink"
    traffic(deployed, sink, churn(300, seed=85))
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(deployed.lineage, folder / "lineage.json")
    result = core.monitor(MonitorRequest(served_data_uri=str(sink), lineage_uri=str(folder)), now=NOW)
    assert result.rows == 300


@pytest.mark.parametrize(
    "fields, name",
    [
        ({"served_data_uri": ""}, "served_data_uri"),
        ({"window_end": "yesterday"}, "window_end"),
        ({"window_hours": 0}, "window_hours"),
        ({"min_rows": 0}, "min_rows"),
        ({"numeric_threshold": 1.5}, "numeric_threshold"),
        ({"alpha": 0.9}, "alpha"),
        ({"performance_tolerance": -0.1}, "performance_tolerance"),
    ],
)
def test_request_checks_name_the_field(fields, name):
    values = {"served_data_uri": "/data/served", "lineage_uri": "/models/lineage.json", **fields}
    with pytest.raises(ConfigError, match=f"^{name}:"):
        MonitorRequest(**values)


def test_window_end_and_length():
    request = MonitorRequest("/s", "/l", window_end="2026-11-30T06:00:00", window_hours=6)
    start, end = request.window()
    assert end == datetime.datetime(2026, 11, 30, 6, tzinfo=datetime.timezone.utc)
    assert start == end - datetime.timedelta(hours=6)


def test_the_html_report_renders_offline_in_a_browser_with_its_charts(deployed, tmp_path):
    """Headless Chromium, network off: no request, the prediction histogram and every feature's chart drawn."""
    from tests.plugin import in_ci
    from tests.support import browser

    chromium = browser.find_chromium()
    if chromium is None:
        message = "chromium not found: `make browser` installs Debian's package"
        pytest.fail(message, pytrace=False) if in_ci() else pytest.skip(message)
    sink = tmp_path / "sink"
    traffic(deployed, sink, churn(800, seed=121, variant="drifted"), churn(800, seed=122))
    _, paths = run(deployed, sink, tmp_path)
    page = paths["report_html_path"]
    rendered = browser.render(page, browser.screenshot_dir() / "monitor-report.png", chromium)
    assert rendered.requests == []
    kinds = browser.chart_kinds(rendered.dom)
    # The predictions and 4 numeric features as histograms; 7 categorical ones (support_calls: a categorical INT).
    assert kinds["histogram"] == 1 + 4 and kinds["bars"] >= 7
    assert all(f'data-feature="{f}"' in rendered.dom for f in FEATURES)
    assert not browser.is_blank(browser.screenshot_dir() / "monitor-report.png")


def test_no_retrain_reason_says_when_prediction_drift_is_above_the_threshold_but_within_noise(tmp_path) -> None:
    """The wording follows the numbers: 'within 0.1' only when the distance is; otherwise 'within sampling noise'."""
    from kfp_tabular.components.monitoring.monitor.core import MonitorResult, PredictionDrift, _reasons
    from kfp_tabular.components.monitoring.monitor.request import MonitorRequest

    def result(distance: float) -> MonitorResult:
        prediction = PredictionDrift(
            "score", "binary", [0.5, 1.0], [300, 300], [0.5, 0.5], distance, 0.1, 0.15, 600, 800, False
        )
        window = {"start": "2026-11-30T00:00:00+00:00", "end": "2026-11-30T01:00:00+00:00"}
        return MonitorResult(
            False, [], window, {}, 600, 0, 200, "0" * 64, "l", "s", "classification", prediction=prediction
        )

    request = MonitorRequest(served_data_uri=str(tmp_path), lineage_uri=str(tmp_path / "lineage.json"))
    _, within = _reasons(result(0.08), request)
    assert "predictions within 0.1 of the evaluation's (JS distance 0.080)" in within
    _, noisy = _reasons(result(0.12), request)
    assert not any("within 0.1" in line for line in noisy)
    assert any(
        "0.120 from the evaluation's is above 0.1 but within sampling noise (bound 0.150" in line for line in noisy
    )
