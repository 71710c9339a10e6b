"""Run train -> evaluate for real under kfp.local (SubprocessRunner), fed by dsl.importer."""

import json
import math
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.evaluation.evaluate.component import evaluate
from kfp_tabular.components.training.train.component import train

LABEL = "churned"
# Our base image is the pipeline env itself; SubprocessRunner runs the body in this interpreter, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")

Outputs = NamedTuple(
    "Outputs",
    [
        ("blessed", bool),
        ("reason", str),
        ("blessing", Artifact),
        ("report", Markdown),
        ("report_html", HTML),
        ("metrics", Metrics),
        ("classification_metrics", ClassificationMetrics),
    ],
)


@dsl.pipeline
def train_and_evaluate(train_uri: str, eval_uri: str, schema_uri: str, baseline_model_uri: str) -> Outputs:
    train_data = dsl.importer(artifact_uri=train_uri, artifact_class=Dataset)
    eval_data = dsl.importer(artifact_uri=eval_uri, artifact_class=Dataset)
    schema = dsl.importer(artifact_uri=schema_uri, artifact_class=Artifact)
    trained = train(
        train_data=train_data.output, schema=schema.output, label_column=LABEL, estimator="logistic_regression"
    )
    scored = evaluate(
        model=trained.outputs["model"],
        eval_data=eval_data.output,
        label_column=LABEL,
        baseline_model_uri=baseline_model_uri,
    )
    return Outputs(
        scored.outputs["blessed"],
        scored.outputs["reason"],
        scored.outputs["blessing"],
        scored.outputs["report"],
        scored.outputs["report_html"],
        scored.outputs["metrics"],
        scored.outputs["classification_metrics"],
    )


def test_train_then_evaluate_blesses_a_good_model(churn, local_runner):
    run = train_and_evaluate(
        train_uri=str(churn.train), eval_uri=str(churn.eval), schema_uri=str(churn.schema), baseline_model_uri=""
    )
    out = run.outputs
    assert out["blessed"] is True
    blessing = json.loads(Path(out["blessing"].path).read_text())
    assert blessing["blessed"] is True and blessing["thresholds"] == {"roc_auc": 0.7}
    assert out["reason"] == "; ".join(blessing["reasons"])
    assert out["blessing"].metadata["blessed"] is True
    assert out["blessing"].metadata["reasons"] == blessing["reasons"]
    report = Path(out["report"].path).read_text()
    assert report.startswith("# Model evaluation: BLESSED") and "## Confusion matrix" in report
    page = Path(out["report_html"].path).read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>Model evaluation: BLESSED</title>" in page
    assert page.count('class="chart heatmap"') == 1 and page.count('class="chart lines"') == 4  # gate, ROC, PR, calib
    assert out["report_html"].metadata["blessed"] is True
    metrics = out["metrics"].metadata
    assert metrics["roc_auc"] == pytest.approx(blessing["metrics"]["roc_auc"])
    assert metrics["eval_rows"] == 2000
    classification = out["classification_metrics"].metadata
    matrix = [row["row"] for row in classification["confusionMatrix"]["rows"]]
    assert [spec["displayName"] for spec in classification["confusionMatrix"]["annotationSpecs"]] == ["0", "1"]
    assert sum(map(sum, matrix)) == 2000
    points = classification["confidenceMetrics"]
    assert 2 < len(points) <= 200
    assert all(math.isfinite(p["confidenceThreshold"]) for p in points)
    assert points[0]["confidenceThreshold"] > 1  # sklearn's inf, made finite for KFP


def test_noise_labels_run_through_and_are_not_blessed(churn, local_runner):
    run = train_and_evaluate(
        train_uri=str(churn.noise_train),
        eval_uri=str(churn.noise_eval),
        schema_uri=str(churn.schema),
        baseline_model_uri="",
    )
    assert run.outputs["blessed"] is False
    assert "roc_auc" in run.outputs["reason"] and "does not meet threshold" in run.outputs["reason"]
    blessing = json.loads(Path(run.outputs["blessing"].path).read_text())
    assert blessing["blessed"] is False and blessing["metrics"]["roc_auc"] < 0.6
    assert "NOT BLESSED" in Path(run.outputs["report"].path).read_text()


def _artifacts(tmp_path, model_dir, eval_path):
    return {
        "model": Model(name="model", uri=str(model_dir)),
        "eval_data": Dataset(name="eval_data", uri=str(eval_path)),
        "metrics": Metrics(name="metrics", uri=str(tmp_path / "metrics")),
        "classification_metrics": ClassificationMetrics(name="cm", uri=str(tmp_path / "cm")),
        "blessing": Artifact(name="blessing", uri=str(tmp_path / "blessing")),
        "report": Markdown(name="report", uri=str(tmp_path / "report")),
        "report_html": HTML(name="report_html", uri=str(tmp_path / "report.html")),
    }


def test_evaluate_python_func_with_a_baseline(trained, churn, tmp_path):
    arts = _artifacts(tmp_path, trained["noise"], churn.eval)
    blessed, reason = evaluate.python_func(
        label_column=LABEL, thresholds={"roc_auc": 0.4}, baseline_model_uri=str(trained["logistic"]), **arts
    )
    assert blessed is False and "worse than the baseline" in reason
    assert arts["blessing"].metadata["blessed"] is False
    assert json.loads(Path(arts["blessing"].path).read_text())["baseline_metrics"]["roc_auc"] > 0.75
    page = Path(arts["report_html"].path).read_text()
    assert page.count('class="chart heatmap"') == 2  # the candidate's and the baseline's confusion matrices


def test_evaluate_python_func_regression_thresholds(trained, churn, tmp_path):
    arts = _artifacts(tmp_path, trained["regression"], churn.eval)
    # The default {"roc_auc": 0.7, "r2": 0.0} fits a regression model: its r2 floor applies, roc_auc is skipped.
    blessed, reason = evaluate.python_func(label_column="monthly_charges", **arts)
    assert reason.startswith("r2 ") and "roc_auc" not in reason
    with pytest.raises(ConfigError, match="roc_auc applies to classification only"):
        evaluate.python_func(label_column="monthly_charges", thresholds={"roc_auc": 0.7}, **arts)
    blessed, reason = evaluate.python_func(label_column="monthly_charges", thresholds={"r2": 0.5}, **arts)
    assert blessed is True and reason.startswith("r2 ")
    assert "rmse" in arts["metrics"].metadata and "confusionMatrix" not in arts["classification_metrics"].metadata
    assert Path(arts["report_html"].path).read_text().count('class="chart scatter"') == 2
    # 2,000 eval rows, 1,000 drawn: the sample is a decision the run summary shows.
    sampled = [d for d in arts["report_html"].metadata["decisions"] if d["action"] == "sampled"]
    assert len(sampled) == 1 and "1,000 of 2,000" in sampled[0]["reason"]


def test_the_component_parameters_are_the_request_fields():
    """Same names and defaults, and each field's one description reaches the component spec (the KFP UI)."""
    from kfp_tabular.components.evaluation.evaluate.component import evaluate as component
    from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest
    from tests.support.requests import component_request_differences

    assert component_request_differences(component, EvaluateRequest) == []
