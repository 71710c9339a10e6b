"""The HTML report's chart data against the metrics and predictions it came from, and the page's pieces."""

import html
import html.parser

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from kfp_tabular.components.evaluation.evaluate import core, curves, report_html, scoring
from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest

LABEL = "churned"


class Fixed:
    """A model whose predictions are given: probabilities (classifier) or values (regressor), row for row."""

    def __init__(self, output, classes=None):
        self.output = np.asarray(output)
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def predict_proba(self, x):
        assert len(x) == len(self.output)
        return self.output

    def predict(self, x):
        assert len(x) == len(self.output)
        return self.output


def binary(rows: int, seed: int = 0):
    """Labels and probabilities of a useful but imperfect binary classifier (about 30% positives)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.3).astype(int)
    logit = 1.2 * (2 * y - 1) + rng.normal(0, 1.3, rows)
    p = 1 / (1 + np.exp(-logit))
    return y, np.column_stack([1 - p, p])


def scored_classifier(y, proba, classes=(0, 1)):
    frame = pd.DataFrame({"x": np.zeros(len(y)), LABEL: y})
    meta = {"feature_order": ["x"], "task": "classification"}
    return scoring.score(Fixed(proba, list(classes)), meta, frame, LABEL, "eval.parquet", classes[1])


def result_of(scored, task="classification", baseline=None, thresholds=None):
    metrics = scored["metrics"]
    thresholds = {"roc_auc": 0.7} if thresholds is None else thresholds
    base_metrics = None if baseline is None else baseline["metrics"]
    blessed, reasons, verdicts = core.decide(metrics, thresholds, base_metrics, 0.01, task)
    charts = None if baseline is None else {k: v for k, v in baseline.items() if k != "metrics"}
    result = core.EvaluationResult(
        blessed=blessed,
        reasons=reasons,
        metrics=metrics,
        baseline_metrics=base_metrics,
        thresholds=thresholds,
        tolerance=0.01,
        task=task,
        model_sha256="0" * 64,
        eval_rows=len(scored["curves"].get("actual", [])) if task == "regression" else 0,
        classes=scored["classes"],
        confusion_matrix=scored["confusion_matrix"],
        roc_curve=scored["roc_curve"],
        positive_class=1 if task == "classification" else None,
        curves=scored["curves"],
        baseline_charts=charts,
    )
    return result, verdicts


class Elements(html.parser.HTMLParser):
    """Every start tag of a page with its attributes, grouped by the chart it is inside."""

    def __init__(self):
        super().__init__()
        self.charts: list[dict] = []
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg" and "chart" in attrs.get("class", ""):
            self.charts.append({"kind": attrs["class"].split()[1], "title": attrs.get("aria-label"), "tags": []})
        elif self.charts and tag != "svg":
            self.charts[-1]["tags"].append((tag, attrs))


def charts_of(page: str) -> list[dict]:
    parser = Elements()
    parser.feed(page)
    return parser.charts


def test_the_roc_curve_drawn_has_the_area_of_the_reported_roc_auc():
    y, proba = binary(100_000)
    scored = scored_classifier(y, proba)
    roc = scored["roc_curve"]
    assert len(roc["fpr"]) == scoring.MAX_ROC_POINTS  # thinned: 100k rows give far more cut-offs
    area = np.trapz(roc["tpr"], roc["fpr"])
    assert area == pytest.approx(scored["metrics"]["roc_auc"], abs=2e-3)
    assert scored["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), abs=1e-12)


def test_the_precision_recall_points_are_precision_and_recall_at_their_cut_offs():
    y, proba = binary(20_000, seed=1)
    pr = scored_classifier(y, proba)["curves"]["pr"]
    assert 2 < len(pr["recall"]) <= curves.MAX_CURVE_POINTS
    for cut, recall, precision in list(zip(pr["thresholds"], pr["recall"], pr["precision"]))[::17]:
        chosen = proba[:, 1] >= cut
        assert recall == pytest.approx((chosen & (y == 1)).sum() / (y == 1).sum())
        assert precision == pytest.approx((chosen & (y == 1)).sum() / chosen.sum())
    assert scored_classifier(y, proba)["curves"]["positive_rate"] == pytest.approx(y.mean())


def test_the_calibration_bins_hold_every_row_and_their_observed_frequency():
    y, proba = binary(30_000, seed=2)
    bins = scored_classifier(y, proba)["curves"]["calibration"]
    assert sum(bins["counts"]) == len(y) and bins["bins"] == curves.CALIBRATION_BINS
    index = np.minimum((proba[:, 1] * 10).astype(int), 9)
    for b in range(10):
        rows = index == b
        assert bins["counts"][b] == rows.sum()
        if rows.any():
            assert bins["observed"][b] == pytest.approx(y[rows].mean())
            assert bins["mean_predicted"][b] == pytest.approx(proba[rows, 1].mean())
        else:
            assert bins["observed"][b] is None


def test_a_multiclass_reliability_curve_is_of_the_confidence():
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([1, 1, 1], 5000)
    y = np.array([rng.choice(3, p=p) for p in proba])
    scored = scored_classifier(y, proba, classes=(0, 1, 2))
    bins = scored["curves"]["calibration"]
    assert bins["kind"] == "confidence" and sum(bins["counts"]) == 5000
    total_right = sum(o * c for o, c in zip(bins["observed"], bins["counts"]) if o is not None)
    assert total_right == pytest.approx(scored["metrics"]["accuracy"] * 5000)
    assert scored["curves"]["pr"] is None and scored["roc_curve"] is None


def test_the_page_draws_the_confusion_matrices_and_curves_of_both_models():
    y, proba = binary(5000, seed=4)
    candidate = scored_classifier(y, proba)
    _, worse = binary(5000, seed=5)
    baseline = scored_classifier(y, 0.5 * proba + 0.5 * worse)
    result, verdicts = result_of(candidate, baseline=baseline, thresholds={"roc_auc": 0.7, "precision": 0.4})
    page = report_html.render_html(result, "model", "eval.parquet", "baseline", verdicts)
    drawn = charts_of(page)
    assert [c["kind"] for c in drawn] == ["lines"] * 2 + ["lines"] * 3 + ["heatmap"] * 2
    for chart, model in zip(drawn[-2:], (candidate, baseline)):
        cells = [a for tag, a in chart["tags"] if tag == "rect" and a.get("class") == "cell"]
        values = [[0, 0], [0, 0]]
        for a in cells:
            values[int(a["data-row"])][int(a["data-col"])] = int(float(a["data-value"]))
        assert values == model["confusion_matrix"]["matrix"]
    roc, pr, calibration = drawn[2:5]
    series = {a["data-series"]: int(a["data-points"]) for tag, a in roc["tags"] if a.get("class") == "series"}
    assert series == {"candidate": len(candidate["roc_curve"]["fpr"]), "baseline": len(baseline["roc_curve"]["fpr"])}
    lines = {a["data-label"]: float(a["data-value"]) for tag, a in pr["tags"] if a.get("class") == "threshold"}
    assert lines["precision >= 0.4"] == 0.4
    assert [v for k, v in lines.items() if k.startswith("no skill")] == [pytest.approx(y.mean())]
    markers = [a for tag, a in calibration["tags"] if a.get("class") == "marker" and a["data-series"] == "candidate"]
    assert len(markers) == sum(1 for c in candidate["curves"]["calibration"]["counts"] if c)
    # Each checked metric's chart: the threshold and the baseline's bound (baseline - tolerance) as lines.
    gate = {c["title"].split(":")[0]: c for c in drawn[:2]}
    assert set(gate) == {"roc_auc", "precision"}
    bounds = {
        a["data-label"]: float(a["data-value"]) for _, a in gate["roc_auc"]["tags"] if a.get("class") == "threshold"
    }
    assert bounds == {"threshold >= 0.7": 0.7, "baseline - 0.01": pytest.approx(baseline["metrics"]["roc_auc"] - 0.01)}
    assert "<script" not in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_residuals_drawn_are_actual_minus_predicted_of_real_rows():
    rng = np.random.default_rng(6)
    rows = 50_000
    y = rng.normal(50, 10, rows)
    predicted = y + rng.normal(0, 3, rows)
    frame = pd.DataFrame({"x": np.zeros(rows), "target": y})
    scored = scoring.score(Fixed(predicted), {"feature_order": ["x"], "task": "regression"}, frame, "target", "eval")
    drawn = scored["curves"]
    assert drawn["rows"] == rows and len(drawn["predicted"]) == curves.MAX_SCATTER_POINTS
    assert drawn["predicted"] == sorted(drawn["predicted"])  # evenly spaced in the order of the prediction
    assert drawn["predicted"][0] == predicted.min() and drawn["predicted"][-1] == predicted.max()
    by_prediction = dict(zip(predicted.tolist(), y.tolist()))
    assert all(by_prediction[p] == a for p, a in zip(drawn["predicted"], drawn["actual"]))
    points = report_html.residual_points(drawn)
    assert all(r == pytest.approx(a - p) for (p, r), a in zip(points, drawn["actual"]))
    result, verdicts = result_of(scored, task="regression", thresholds={"r2": 0.5})
    page = report_html.render_html(result, "model", "eval.parquet", "", verdicts)
    scatters = [c for c in charts_of(page) if c["kind"] == "scatter"]
    assert len(scatters) == 2
    for chart in scatters:
        assert sum(1 for tag, _ in chart["tags"] if tag == "circle") == curves.MAX_SCATTER_POINTS
    assert f"1,000 of {rows:,} rows drawn" in page
    assert core._drawing_decisions(drawn)[0].action == "sampled"


def test_a_real_evaluation_writes_the_page_with_a_baseline(trained, churn, tmp_path):
    request = EvaluateRequest(label_column=LABEL, baseline_model_uri=str(trained["logistic"]))
    result = core.evaluate(
        request,
        trained["boosting"],
        churn.eval,
        tmp_path / "blessing.json",
        tmp_path / "report.md",
        report_html_path=tmp_path / "report.html",
    )
    page = (tmp_path / "report.html").read_text()
    verdict = "BLESSED" if result.blessed else "NOT BLESSED"
    assert f"<title>Model evaluation: {verdict}</title>" in page
    assert all(f"<li>{html.escape(reason)}</li>" in page for reason in result.reasons)
    kinds = [c["kind"] for c in charts_of(page)]
    assert kinds.count("heatmap") == 2 and kinds.count("lines") == 4  # roc_auc's gate chart, ROC, PR, calibration
    assert sum(result.curves["calibration"]["counts"]) == result.eval_rows == 2000
    assert result.baseline_charts["confusion_matrix"]["matrix"] != result.confusion_matrix["matrix"]
