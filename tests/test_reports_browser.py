"""Reports in a real browser: headless Chromium opens each report from disk with the network off.

Each report must make no network request, hold the charts it should (``<svg class="chart KIND">`` counted in the
DOM after load) and not be blank; its screenshot is kept for a person to look at (``tests/support/browser.py``:
``test-outputs/screenshots/<id>.png`` or ``$KFP_TABULAR_SCREENSHOTS``). The harness itself is checked first: a
page that fetches an image, a CSS @import, a style sheet over https, a script, a web font and a loopback image
must show every one of those requests, and an empty page must count as blank.

To add a report: one ``pytest.param(build, expected_charts, id=...)`` line in :data:`REPORTS`, where ``build``
takes a temporary directory and returns the path of the HTML file it wrote there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from kfp_tabular.components.common import charts
from kfp_tabular.components.common.chart_svg import esc
from tests.plugin import in_ci
from tests.support import browser

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable; the test is skipped without one (failed when ``CI`` is set)."""
    exe = browser.find_chromium()
    if exe is None:
        message = "chromium not found: `make browser` installs Debian's package"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return exe


def chart_demo(folder: Path) -> Path:
    """Write a page with every chart kind (and hostile labels) built by ``common.charts``."""
    ages = list(range(0, 101, 10))
    body = [charts.summary_strip([("anomalies", 2, "bad"), ("drifted", 1), ("decisions", 3, "info"), ("ok", 0)])]
    body.append("<h2>Features</h2><table><tr><th>feature</th><th>distribution</th><th>drift</th></tr>")
    features = {
        "age": {
            "train": (ages, [3, 9, 14, 18, 17, 13, 10, 8, 5, 3]),
            "eval": (ages, [2, 7, 12, 19, 18, 14, 11, 9, 5, 3]),
        },
        EVIL: {
            "train": ([0, 1, 2, 3, 4], [10, 40, 40, 10]),
            "eval": ([0, 2, 4], [30, 70]),
            "baseline": ([0.5, 1.5, 2.5, 3.5], [20, 50, 30]),
        },
        "constant \u00e9\u00e8 \u2713": {"train": ([7, 7], [500]), "eval": ([7, 7], [80])},
        "empty": {"train": ([], []), "eval": ([0, 1], [float("nan")])},
    }
    for name, series in features.items():
        chart = charts.histogram(series, title=f"{name}: train vs eval", x_label=name)
        body.append(f"<tr><td>{esc(name)}</td><td>{chart}</td><td class='num'>0.12 / 0.1</td></tr>")
    cats = ["red", "green", "blue & <teal>", "\u2013 other \u2013"]
    for title, series in (
        ("colour", {"train": [0.5, 0.3, 0.15, 0.05], "eval": [0.45, 0.35, 0.1, float("nan")]}),
        ("plan", {"train": [0.7, 0.3, 0, 0], "eval": [0.6, 0.4, 0, 0], "baseline": [0.65, 0.35, 0, 0]}),
    ):
        body.append(f"<tr><td>{title}</td><td>{charts.bars(cats, series, title=title)}</td><td>-</td></tr>")
    body.append("</table><h2>Model</h2>")
    roc = {
        "candidate": [(0, 0), (0.05, 0.4), (0.1, 0.62), (0.3, 0.85), (0.6, 0.95), (1, 1)],
        "baseline": [(0, 0), (0.1, 0.45), (0.3, 0.7), (0.6, 0.9), (1, 1)],
    }
    pr = {"candidate": [(0, 1), (0.4, 0.92), (0.7, 0.8), (1, 0.35)], "baseline": [(0, 1), (0.5, 0.8), (1, 0.35)]}
    calib = {"candidate": [(0.05, 0.04), (0.25, 0.3), (0.5, 0.46), (0.75, 0.8), (0.95, 0.9)]}
    rollout = {"error rate": [(1, 0.01), (2, 0.012), (3, 0.02), (4, float("nan")), (5, 0.011)]}
    body += [
        charts.figure(
            charts.lines(
                roc,
                title="ROC",
                x_label="false positive rate",
                y_label="true positive rate",
                x_range=(0, 1),
                y_range=(0, 1),
                diagonal=True,
            ),
            "ROC: candidate vs baseline",
        ),
        charts.figure(
            charts.lines(
                pr,
                title="precision-recall",
                x_label="recall",
                y_label="precision",
                thresholds=[("precision >= 0.7", 0.7)],
            ),
            "precision-recall with its threshold",
        ),
        charts.figure(
            charts.lines(
                calib,
                title="calibration",
                x_label="predicted",
                y_label="observed",
                diagonal=True,
                markers=True,
                bands={"candidate": [(0.05, 0.0, 0.1), (0.5, 0.4, 0.52), (0.95, 0.85, 0.95)]},
            ),
            "reliability curve",
        ),
        charts.figure(
            charts.lines(
                rollout,
                title="rollout",
                x_label="step",
                y_label="error rate",
                markers=True,
                thresholds=[("max error 0.015", 0.015), ("promoted", 3, "x")],
            ),
            "rollout steps against the threshold",
        ),
        charts.figure(charts.heatmap([[820, 40], [65, 275]], ["no", "yes"], ["no", "yes"]), "confusion matrix"),
        charts.figure(
            charts.scatter(
                [(i / 10, math.sin(i) * (1 + i / 1000)) for i in range(4000)],
                title="residuals",
                x_label="predicted",
                y_label="residual",
                thresholds=[("0", 0.0)],
                max_points=800,
            ),
            "residuals vs predicted",
        ),
    ]
    path = folder / "chart-demo.html"
    path.write_text(charts.page("Chart demo " + EVIL, "".join(body), subtitle="every chart kind"), encoding="utf-8")
    return path


def validation_report(folder: Path) -> Path:
    """Write the validation report of a real validate run: a drifted batch (default data's churn generator,
    variant "drifted") against a baseline's statistics (the default variant), curated schema, with an upstream
    decision as ingest would hand it over.
    """
    from kfp_tabular.components.common.decisions import Decision
    from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
    from kfp_tabular.components.data_processing.validate import core, statistics
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest

    schema = str(Path(synthetic.__file__).parent / "churn_schema.pbtxt")
    baseline = str(folder / "baseline.pb")
    base = synthetic.write(synthetic.generate(3000, 31), folder / "baseline.parquet")
    statistics.compute_statistics(base, output_path=baseline, schema_uri=schema)
    train = synthetic.write(synthetic.generate(3000, 32, "drifted"), folder / "train.parquet")
    evaluation = synthetic.write(synthetic.generate(1000, 33, "drifted"), folder / "eval.parquet")
    request = ValidateRequest(
        synthetic.LABEL, schema_uri=schema, baseline_statistics_uri=baseline, fail_on_anomalies=False
    )
    path = folder / "validation-report.html"
    upstream = [Decision("ingest", "customer_id", "dropped", "identifier <checked & escaped>")]
    result = core.validate(train, evaluation, request, report_path=str(path), upstream_decisions=upstream)
    assert result.drifted_features and result.anomalies, "the drifted batch should fail against the baseline"
    page = path.read_text(encoding="utf-8")
    assert page.count('data-series="train,eval,baseline"') == 11  # every feature but has_partner (baseline only)
    assert "identifier &lt;checked &amp; escaped&gt;" in page  # ingest's decision, escaped
    return path


def evaluation_report(folder: Path) -> Path:
    """Write the evaluation report of a real evaluate run: a candidate (gradient boosting) against a baseline
    (logistic regression), both trained by the train core on the default data's churn generator, two thresholds.
    """
    from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
    from kfp_tabular.components.evaluation.evaluate import core
    from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest
    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    schema = str(Path(synthetic.__file__).parent / "churn_schema.pbtxt")
    data = synthetic.write(synthetic.generate(3000, 41), folder / "train.parquet")
    evaluation = synthetic.write(synthetic.generate(2000, 42), folder / "eval.parquet")
    train(TrainRequest(synthetic.LABEL, "logistic_regression"), data, schema, folder / "baseline")
    train(TrainRequest(synthetic.LABEL, "hist_gradient_boosting", {"max_iter": 40}), data, schema, folder / "model")
    request = EvaluateRequest(
        synthetic.LABEL, {"roc_auc": 0.7, "precision": 0.5}, baseline_model_uri=str(folder / "baseline")
    )
    path = folder / "evaluation-report.html"
    result = core.evaluate(
        request, folder / "model", evaluation, folder / "blessing.json", folder / "report.md", report_html_path=path
    )
    assert result.baseline_metrics is not None and result.baseline_charts is not None
    page = path.read_text(encoding="utf-8")
    assert page.count('data-series="candidate,baseline"') == 5  # 2 gate charts, ROC, PR, calibration
    return path


#: (build, expected chart counts by kind, id): the lead adds the validation and evaluation reports here.
REPORTS = [
    pytest.param(chart_demo, {"histogram": 4, "bars": 2, "lines": 4, "heatmap": 1, "scatter": 1}, id="chart-demo"),
    pytest.param(validation_report, {"histogram": 5, "bars": 7}, id="validation-report"),
    pytest.param(evaluation_report, {"lines": 5, "heatmap": 2}, id="evaluation-report"),
]

EXTERNAL_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<style>@import url("http://css.example.test/imported.css");
@font-face { font-family: "Remote"; src: url("http://fonts.example.test/remote.woff2") format("woff2"); }
p.remote { font-family: "Remote", sans-serif; }</style>
<link rel="stylesheet" href="https://cdn.example.test/style.css">
<script src="http://scripts.example.test/app.js"></script>
</head><body><p class="remote">text in a web font</p>
<img src="http://images.example.test/picture.png" alt="remote image">
<img src="http://127.0.0.1:8999/loopback.png" alt="loopback image"></body></html>
"""


def test_the_harness_sees_every_request_a_page_attempts(chromium, tmp_path):
    page = tmp_path / "external.html"
    page.write_text(EXTERNAL_PAGE, encoding="utf-8")
    rendered = browser.render(page, tmp_path / "external.png", chromium)
    hosts = {browser.request_host(line) for line in rendered.requests}
    expected = {"css.example.test", "fonts.example.test", "cdn.example.test", "scripts.example.test"}
    expected |= {"images.example.test", "127.0.0.1"}
    assert expected <= hosts, f"requests the proxy did not see: {sorted(expected - hosts)}; saw {rendered.requests}"
    assert any(line.startswith("CONNECT cdn.example.test:443") for line in rendered.requests), rendered.requests


def test_the_harness_calls_an_empty_page_blank(chromium, tmp_path):
    page = tmp_path / "empty.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    rendered = browser.render(page, tmp_path / "empty.png", chromium)
    assert rendered.blank(), browser.ink(rendered.screenshot)
    assert rendered.charts() == {}
    assert rendered.requests == []


@pytest.mark.parametrize(("build", "expected"), REPORTS)
def test_report_renders_offline_with_its_charts(chromium, tmp_path, request, build: Callable[[Path], Path], expected):
    page = build(tmp_path)
    shot = browser.screenshot_dir() / f"{request.node.callspec.id}.png"
    rendered = browser.render(page, shot, chromium)
    assert rendered.requests == [], f"{page.name} made network requests: {rendered.requests}"
    assert dict(rendered.charts()) == expected, f"{page.name}: charts in the DOM (screenshot: {shot})"
    assert not rendered.blank(), f"{page.name} looks blank: {browser.ink(shot)} (screenshot: {shot})"
    tags = browser.tag_counts(rendered.dom)
    assert tags["script"] == tags["iframe"] == tags["link"] == 0, f"{page.name}: scripts or links in the DOM: {tags}"


@pytest.mark.slow
def test_the_reports_of_a_real_run_open_offline_with_every_feature_and_the_curves(chromium, tmp_path):
    """What `make run` writes: both reports of a real kfp.local run, opened from the run's own reports/ folder."""
    from kfp_tabular.components.common.tfdv_schema import parse_schema
    from kfp_tabular.pipelines.training.train_and_deploy.run_local import run_local

    summary = run_local(output_dir=tmp_path / "out", rows=3000, seed=5, console="silent")
    assert summary.succeeded, summary.error
    assert set(summary.reports) == {"validation", "evaluation"}
    schema_path = summary.artifacts["validate-data/schema"]
    schema = parse_schema(Path(schema_path).read_text(encoding="utf-8"), schema_path)
    for name, path in summary.reports.items():
        shot = browser.screenshot_dir() / f"run-local-{name}.png"
        rendered = browser.render(Path(path), shot, chromium)
        assert rendered.requests == [], f"{path} made network requests: {rendered.requests}"
        assert not rendered.blank(), f"{path} looks blank (screenshot: {shot})"
        kinds = dict(rendered.charts())
        if name == "validation":  # every feature of the schema drawn: numbers as histograms, categories as bars
            assert kinds.get("histogram", 0) + kinds.get("bars", 0) == len(schema.feature), kinds
        else:  # ROC, precision-recall and reliability curves, the gate's metric chart(s), the confusion matrix
            assert kinds.get("lines", 0) >= 4 and kinds.get("heatmap", 0) == 1, kinds
