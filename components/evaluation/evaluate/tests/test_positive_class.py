"""The positive class on real data: a 90%-"Yes" label measured on its minority unless told, and the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets, metrics

from kfp_tabular.components.common import blessing as blessings
from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.evaluation.evaluate.core import evaluate
from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest

LABEL = "diagnosis"


@pytest.fixture(scope="module")
def skewed(tmp_path_factory, schema_writer):
    """Breast cancer with 90% "Yes" (benign), a model trained on it (train chose the minority, "No")."""
    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    root = tmp_path_factory.mktemp("skewed")
    frame = datasets.load_breast_cancer(as_frame=True).frame
    frame = pd.concat([frame[frame.target == 1], frame[frame.target == 0].head(40)]).sample(frac=1, random_state=0)
    frame = frame.reset_index(drop=True).rename(columns={"target": LABEL})
    frame[LABEL] = np.where(frame[LABEL] == 1, "Yes", "No")
    train_frame, eval_frame = frame.iloc[::2].reset_index(drop=True), frame.iloc[1::2].reset_index(drop=True)
    train_frame.to_parquet(root / "train.parquet", index=False)
    eval_frame.to_parquet(root / "eval.parquet", index=False)
    schema = schema_writer(train_frame, root / "schema.pbtxt")
    result = train(TrainRequest(LABEL, "logistic_regression"), root / "train.parquet", schema, root / "model")
    assert result.metadata["positive_class"] == "No"
    return root, eval_frame


def run(root, tmp_path, **kwargs):
    return evaluate(
        EvaluateRequest(LABEL, thresholds={"recall": 0.5}),
        root / "model",
        root / "eval.parquet",
        tmp_path / "blessing.json",
        tmp_path / "report.md",
        **kwargs,
    )


def expected(root, eval_frame, positive):
    import joblib

    model = joblib.load(root / "model" / "model.joblib")
    x = eval_frame.drop(columns=LABEL)
    predicted = model.predict(x)
    proba = model.predict_proba(x)[:, list(model.classes_).index(positive)]
    truth = eval_frame[LABEL]
    return {
        "precision": metrics.precision_score(truth, predicted, pos_label=positive),
        "recall": metrics.recall_score(truth, predicted, pos_label=positive),
        "roc_auc": metrics.roc_auc_score(truth == positive, proba),
    }


def test_the_models_positive_class_is_measured_the_minority(skewed, tmp_path):
    root, eval_frame = skewed
    result = run(root, tmp_path)
    assert result.positive_class == "No" and result.decisions == []
    for name, value in expected(root, eval_frame, "No").items():
        assert result.metrics[name] == pytest.approx(value)
    report = (tmp_path / "report.md").read_text()
    assert "- positive class (precision, recall, F1, ROC AUC): `'No'`" in report
    assert "## Decisions taken for you" in report and "| train | diagnosis | positive class |" in report


def test_the_eval_datas_positive_class_wins_and_a_disagreement_is_a_warning(skewed, tmp_path):
    root, eval_frame = skewed
    result = run(root, tmp_path, positive_class="Yes")
    assert result.positive_class == "Yes"
    for name, value in expected(root, eval_frame, "Yes").items():
        assert result.metrics[name] == pytest.approx(value)
    assert result.metrics["recall"] > 0.9  # the majority class is easy to recall: why the default is the minority
    assert [(d.action, d.subject) for d in result.decisions] == [("warning", LABEL)]
    assert "trained with positive class 'No'; measured with the eval data's 'Yes'" in result.decisions[0].reason


def test_without_any_positive_class_the_eval_minority_is_chosen_and_reported(skewed, tmp_path):
    root, _ = skewed
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.joblib").write_bytes((root / "model" / "model.joblib").read_bytes())
    meta = json.loads((root / "model" / "metadata.json").read_text())
    meta.pop("positive_class")
    (bare / "metadata.json").write_text(json.dumps(meta))
    result = evaluate(
        EvaluateRequest(LABEL, thresholds={"f1": 0.1}),
        bare,
        root / "eval.parquet",
        tmp_path / "b.json",
        tmp_path / "r.md",
        data_decisions=[Decision("ingest", "mean area", "dropped", "listed in drop_columns")],
    )
    assert result.positive_class == "No"
    assert [(d.step, d.action) for d in result.decisions] == [("evaluate", "positive class")]
    assert "the minority class of the eval data (12.6% of rows)" in result.decisions[0].reason
    report = (tmp_path / "r.md").read_text()
    assert "| ingest | mean area | dropped | listed in drop_columns |" in report
    assert "| evaluate | diagnosis | positive class |" in report


def test_a_positive_class_that_is_not_a_class_is_an_error_and_nothing_is_written(skewed, tmp_path):
    root, _ = skewed
    with pytest.raises(
        DataError, match=r"eval.parquet: positive class 'maybe' is not a class of the model \(classes: 'No', 'Yes'\)"
    ):
        run(root, tmp_path, positive_class="maybe")
    assert not (tmp_path / "blessing.json").exists() and not (tmp_path / "report.md").exists()


def test_the_component_records_the_positive_class_and_decisions(skewed, tmp_path):
    from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

    from kfp_tabular.components.common.decisions import from_metadata, to_metadata
    from kfp_tabular.components.evaluation.evaluate.component import evaluate as component

    root, _ = skewed
    data = Dataset(
        uri=str(root / "eval.parquet"),
        metadata={
            "positive_class": "No",
            "decisions": to_metadata([Decision("ingest", "sample_id", "dropped", "an ID")]),
        },
    )
    out = {name: tmp_path / name for name in ("metrics", "cm", "blessing", "report")}
    blessing, report = Artifact(uri=str(out["blessing"])), Markdown(uri=str(out["report"]))
    component.python_func(
        model=Model(uri=str(root / "model")),
        eval_data=data,
        label_column=LABEL,
        metrics=Metrics(uri=str(out["metrics"])),
        classification_metrics=ClassificationMetrics(uri=str(out["cm"])),
        blessing=blessing,
        report=report,
        report_html=HTML(uri=str(tmp_path / "report.html")),
        thresholds={"roc_auc": 0.7},
    )
    assert blessing.metadata["positive_class"] == "No" and from_metadata(blessing.metadata["decisions"]) == []
    written = blessings.read(out["blessing"])
    assert written.blessed and written.positive_class == "No"
    assert "| ingest | sample_id | dropped | an ID |" in out["report"].read_text()
    assert "<td>ingest</td><td>sample_id</td><td>dropped</td><td>an ID</td>" in (tmp_path / "report.html").read_text()
