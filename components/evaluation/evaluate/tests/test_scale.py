"""Evaluate at scale: only the needed columns are read, metrics on class indices, reports of bounded size."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from kfp_tabular.components.evaluation.evaluate import core, scoring
from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest

LABEL = "churned"


def evaluate(model_dir, eval_path, tmp_path, **fields):
    request = EvaluateRequest(label_column=LABEL, **fields)
    return core.evaluate(request, model_dir, eval_path, tmp_path / "blessing.json", tmp_path / "report.md")


def test_only_the_models_features_and_the_label_are_read(trained, churn, tmp_path, monkeypatch):
    # A wide column the model does not use: never read.
    frame = churn.eval_frame.assign(unused_blob=["x" * 1000] * len(churn.eval_frame))
    frame.to_parquet(tmp_path / "eval.parquet", index=False)
    reads = []
    real = scoring.read_columns
    monkeypatch.setattr(
        core, "read_columns", lambda path, columns, *a: reads.append(list(columns)) or real(path, columns)
    )
    result = evaluate(trained["logistic"], tmp_path / "eval.parquet", tmp_path)
    features = json.loads((trained["logistic"] / "metadata.json").read_text())["feature_order"]
    assert reads == [[*features, LABEL]]
    assert result.eval_rows == len(frame) and result.metrics["roc_auc"] > 0.7


def test_a_baseline_needing_another_feature_reads_just_that_column(trained, churn, tmp_path):
    frame = churn.eval_frame.assign(customer_segment=np.where(np.arange(len(churn.eval_frame)) % 2, "a", "b"))
    frame.to_parquet(tmp_path / "eval.parquet", index=False)
    result = evaluate(
        trained["logistic"],
        tmp_path / "eval.parquet",
        tmp_path,
        baseline_model_uri=str(trained["extra_feature"]),
        tolerance=1.0,
    )
    assert result.baseline_metrics is not None and result.baseline_metrics["roc_auc"] > 0.7
    assert result.blessed, result.reasons


def test_string_labels_scored_on_class_indices_match_scikit_learn(trained, churn, tmp_path):
    import joblib

    request = EvaluateRequest(label_column="contract_type", thresholds={"accuracy": 0.0})
    result = core.evaluate(
        request, trained["multiclass"], churn.eval, tmp_path / "blessing.json", tmp_path / "report.md"
    )
    model = joblib.load(trained["multiclass"] / "model.joblib")
    proba = model.predict_proba(churn.eval_frame)
    predicted = model.classes_[proba.argmax(axis=1)]
    y = churn.eval_frame["contract_type"].astype(str).to_numpy()
    classes = list(model.classes_)
    macro = {"average": "macro", "labels": classes, "zero_division": 0}
    expected = {
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes),
        "accuracy": skm.accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, **macro),
        "recall": skm.recall_score(y, predicted, **macro),
        "f1": skm.f1_score(y, predicted, **macro),
        "log_loss": skm.log_loss(y, proba, labels=classes),
    }
    assert result.metrics == pytest.approx(expected, abs=1e-12)
    assert result.confusion_matrix["matrix"] == skm.confusion_matrix(y, predicted, labels=classes).tolist()


@pytest.mark.parametrize("n", [50, 5_000, 200_000])
def test_the_roc_curve_is_thinned_to_a_bounded_size(n):
    rng = np.random.default_rng(n)
    truth = rng.integers(0, 2, n).astype(bool)
    score = rng.random(n) + truth * 0.3
    curve = scoring.thin_curve(*skm.roc_curve(truth, score))
    full = skm.roc_curve(truth, score)
    assert len(curve["fpr"]) == min(len(full[0]), scoring.MAX_ROC_POINTS)
    assert (curve["fpr"][0], curve["tpr"][0], curve["fpr"][-1], curve["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapz(curve["tpr"], curve["fpr"]) == pytest.approx(skm.roc_auc_score(truth, score), abs=0.01)


def test_a_large_eval_set_gives_reports_of_the_same_size(trained, churn, tmp_path):
    big = pd.concat([churn.eval_frame] * 50, ignore_index=True)  # 100,000 rows
    big.to_parquet(tmp_path / "big.parquet", index=False)
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = evaluate(trained["boosting"], churn.eval, tmp_path / "small")
    large = evaluate(trained["boosting"], tmp_path / "big.parquet", tmp_path / "large")
    assert large.eval_rows == 100_000 and len(large.roc_curve["fpr"]) <= scoring.MAX_ROC_POINTS
    assert large.metrics == pytest.approx(small.metrics, abs=1e-9)  # the same rows fifty times
    for name in ("blessing.json", "report.md"):
        sizes = [(tmp_path / where / name).stat().st_size for where in ("small", "large")]
        assert sizes[1] < 1.2 * sizes[0] + 200, name
