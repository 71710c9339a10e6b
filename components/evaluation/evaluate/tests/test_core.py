import json
import math
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn import metrics as skm

from kfp_tabular.components.common import blessing as blessings
from kfp_tabular.components.common.artifacts import sha256_file
from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.evaluation.evaluate import core
from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest

LABEL = "churned"
BLESSING_KEYS = {
    "blessed",
    "reasons",
    "metrics",
    "baseline_metrics",
    "thresholds",
    "tolerance",
    "model_sha256",
    "model_dir",
    "baseline_model_dir",
    "positive_class",
    "prediction_distribution",
}


def run(model_dir, eval_path, tmp_path, label=LABEL, **fields):
    """Evaluate through the request, as the component does; ``fields`` are EvaluateRequest fields."""
    request = EvaluateRequest(label_column=label, **fields)
    result = core.evaluate(request, model_dir, eval_path, tmp_path / "blessing.json", tmp_path / "report.md")
    blessing = json.loads((tmp_path / "blessing.json").read_text(), parse_constant=_no_constants)
    return result, blessing, (tmp_path / "report.md").read_text()


def _no_constants(name):
    raise AssertionError(f"blessing JSON holds {name}: not strict JSON")


def reference_scores(model_dir, frame):
    model = joblib.load(Path(model_dir) / "model.joblib")
    metadata = json.loads((Path(model_dir) / "metadata.json").read_text())
    return model, model.predict_proba(frame[metadata["feature_order"]])


# --- metrics --------------------------------------------------------------------------------------------------


def test_binary_metrics_match_scikit_learn(trained, churn, tmp_path):
    result, blessing, _ = run(trained["logistic"], churn.eval, tmp_path)
    model, proba = reference_scores(trained["logistic"], churn.eval_frame)
    y = churn.eval_frame[LABEL].to_numpy()
    predicted = model.predict(churn.eval_frame)
    expected = {
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "accuracy": skm.accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted),
        "recall": skm.recall_score(y, predicted),
        "f1": skm.f1_score(y, predicted),
        "log_loss": skm.log_loss(y, proba),
    }
    assert result.metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, abs=1e-12), name
    assert blessing["metrics"] == pytest.approx(expected, abs=1e-12)
    assert result.confusion_matrix == {"labels": ["0", "1"], "matrix": skm.confusion_matrix(y, predicted).tolist()}
    assert sum(map(sum, result.confusion_matrix["matrix"])) == result.eval_rows == 2000
    curve = result.roc_curve
    assert 2 < len(curve["fpr"]) <= core.MAX_ROC_POINTS
    assert len(curve["fpr"]) == len(curve["tpr"]) == len(curve["thresholds"])
    assert (curve["fpr"][0], curve["tpr"][0], curve["fpr"][-1], curve["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(curve["fpr"]) >= 0) and np.all(np.diff(curve["tpr"]) >= 0)
    # The downsampled curve still integrates to (nearly) the AUC.
    assert np.trapz(curve["tpr"], curve["fpr"]) == pytest.approx(expected["roc_auc"], abs=0.01)
    assert result.classes == [0, 1]


def test_positive_class_is_the_larger_label(trained, churn, tmp_path):
    # Labels as strings "no"/"yes": the positive class is "yes" (classes[-1]).
    frame = churn.train_frame.assign(churned=np.where(churn.train_frame[LABEL] == 1, "yes", "no"))
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    eval_frame = churn.eval_frame.assign(churned=np.where(churn.eval_frame[LABEL] == 1, "yes", "no"))
    eval_frame.to_parquet(tmp_path / "e.parquet", index=False)
    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    train(TrainRequest(LABEL, "logistic_regression"), tmp_path / "t.parquet", churn.schema, tmp_path / "m")
    result, _, _ = run(tmp_path / "m", tmp_path / "e.parquet", tmp_path)
    model, proba = reference_scores(tmp_path / "m", eval_frame)
    y = eval_frame[LABEL]
    assert result.classes == ["no", "yes"]
    assert result.metrics["recall"] == pytest.approx(skm.recall_score(y, model.predict(eval_frame), pos_label="yes"))
    assert result.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", proba[:, 1]))


def test_multiclass_metrics_are_macro_averaged(trained, churn, tmp_path):
    result, _, report = run(trained["multiclass"], churn.eval, tmp_path, label="contract_type", thresholds={})
    model, proba = reference_scores(trained["multiclass"], churn.eval_frame)
    y = churn.eval_frame["contract_type"]
    predicted = model.predict(churn.eval_frame)
    assert result.classes == ["month-to-month", "one-year", "two-year"]
    assert result.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert result.metrics["f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert result.metrics["precision"] == pytest.approx(skm.precision_score(y, predicted, average="macro"))
    assert result.metrics["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert np.array(result.confusion_matrix["matrix"]).shape == (3, 3)
    assert result.roc_curve is None
    assert "| two-year |" in report


def test_regression_metrics_and_no_thresholds_by_default_for_none(trained, churn, tmp_path):
    result, blessing, _ = run(trained["regression"], churn.eval, tmp_path, label="monthly_charges", thresholds=None)
    model = joblib.load(trained["regression"] / "model.joblib")
    y = churn.eval_frame["monthly_charges"]
    predicted = model.predict(churn.eval_frame)
    assert result.task == "regression"
    assert result.metrics == pytest.approx(
        {
            "rmse": math.sqrt(skm.mean_squared_error(y, predicted)),
            "mae": skm.mean_absolute_error(y, predicted),
            "r2": skm.r2_score(y, predicted),
        }
    )
    assert result.thresholds == {} and result.blessed
    assert "nothing to check" in result.reason
    assert blessing["thresholds"] == {} and result.confusion_matrix is None and result.roc_curve is None


# --- thresholds -----------------------------------------------------------------------------------------------


def test_thresholds_pass_and_fail_both_ways(trained, churn, tmp_path):
    auc = run(trained["logistic"], churn.eval, tmp_path)[0].metrics["roc_auc"]
    passed, blessing, report = run(trained["logistic"], churn.eval, tmp_path, thresholds={"roc_auc": auc - 0.01})
    assert passed.blessed and blessing["blessed"] is True
    assert passed.reasons == [f"roc_auc {auc:.4f} >= {auc - 0.01:g}"]
    assert "# Model evaluation: BLESSED" in report and "| roc_auc |" in report and "| pass |" in report
    failed, blessing, report = run(trained["logistic"], churn.eval, tmp_path, thresholds={"roc_auc": auc + 0.01})
    assert not failed.blessed and blessing["blessed"] is False
    assert len(failed.reasons) == 1 and "roc_auc" in failed.reasons[0] and "does not meet" in failed.reasons[0]
    assert "NOT BLESSED" in report and "**FAIL** (threshold)" in report


def test_only_failed_metrics_are_reasons(trained, churn, tmp_path):
    result, blessing, _ = run(trained["logistic"], churn.eval, tmp_path, thresholds={"accuracy": 0.5, "f1": 0.99})
    assert not result.blessed
    assert len(result.reasons) == 1 and result.reasons[0].startswith("f1 ")
    assert blessing["thresholds"] == {"accuracy": 0.5, "f1": 0.99}


def test_lower_is_better_metrics_must_stay_below_the_bound(trained, churn, tmp_path):
    log_loss = run(trained["logistic"], churn.eval, tmp_path)[0].metrics["log_loss"]
    assert run(trained["logistic"], churn.eval, tmp_path, thresholds={"log_loss": log_loss + 0.01})[0].blessed
    failed = run(trained["logistic"], churn.eval, tmp_path, thresholds={"log_loss": log_loss - 0.01})[0]
    assert not failed.blessed and "<= " in failed.reason
    rmse = run(trained["regression"], churn.eval, tmp_path, label="monthly_charges")[0].metrics["rmse"]
    kwargs = {"label": "monthly_charges"}
    assert run(trained["regression"], churn.eval, tmp_path, thresholds={"rmse": rmse * 1.1}, **kwargs)[0].blessed
    assert not run(trained["regression"], churn.eval, tmp_path, thresholds={"rmse": rmse * 0.9}, **kwargs)[0].blessed
    assert not run(trained["regression"], churn.eval, tmp_path, thresholds={"r2": 0.999}, **kwargs)[0].blessed


def test_noise_labels_are_not_blessed(trained, churn, tmp_path):
    result, blessing, report = run(trained["noise"], churn.noise_eval, tmp_path)
    assert result.metrics["roc_auc"] < 0.6
    assert not result.blessed and blessing["blessed"] is False
    assert "roc_auc" in blessing["reasons"][0] and ">= 0.7" in blessing["reasons"][0]
    assert "NOT BLESSED" in report


def test_undefined_metric_fails_its_threshold_and_is_null_in_json(trained, churn, tmp_path):
    one_class = churn.eval_frame[churn.eval_frame[LABEL] == 0]
    one_class.to_parquet(tmp_path / "one.parquet", index=False)
    result, blessing, report = run(trained["logistic"], tmp_path / "one.parquet", tmp_path)
    assert result.metrics["roc_auc"] is None and blessing["metrics"]["roc_auc"] is None
    assert result.metrics["accuracy"] is not None
    assert not result.blessed and "undefined" in result.reason
    assert "| roc_auc | n/a |" in report


@pytest.mark.parametrize(
    "thresholds, match",
    [
        ({"auc": 0.7}, "unknown metric 'auc'.*valid: roc_auc, accuracy, precision, recall, f1, log_loss"),
        ({"rmse": 3.0}, "rmse applies to regression only"),
        ({"roc_auc": "high"}, "bound for 'roc_auc' must be a finite number"),
        ({"roc_auc": float("nan")}, "finite number"),
        ({"roc_auc": True}, "finite number"),
        (["roc_auc"], "expected a mapping"),
        ({"roc_auc": 1.5}, r"bound for 'roc_auc' must lie in \[0.0, 1.0\], got 1.5"),
        ({"f1": -0.2}, r"bound for 'f1' must lie in \[0.0, 1.0\]"),
        ({"log_loss": -1}, r"bound for 'log_loss' must lie in \[0.0, inf\]"),
    ],
)
def test_bad_thresholds_are_config_errors(trained, churn, tmp_path, thresholds, match):
    with pytest.raises(ConfigError, match=match):
        run(trained["logistic"], churn.eval, tmp_path, thresholds=thresholds)
    assert not (tmp_path / "blessing.json").exists()


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"label_column": ""}, "label_column: expected the name of the label column"),
        ({"tolerance": -0.1}, "tolerance: expected a finite number >= 0, got -0.1"),
        ({"tolerance": float("inf")}, "tolerance: expected a finite number >= 0"),
        ({"tolerance": "0.1"}, "tolerance: expected a finite number >= 0, got '0.1'"),
        ({"baseline_model_uri": None}, "baseline_model_uri: expected a path or URL"),
        ({"thresholds": {"auc": 0.7}}, "thresholds: unknown metric 'auc'; valid: roc_auc, .*, rmse, mae, r2"),
        ({"thresholds": {"r2": 2}}, r"thresholds: bound for 'r2' must lie in \[-inf, 1.0\], got 2"),
    ],
)
def test_the_request_refuses_bad_parameters_naming_the_field(fields, match):
    with pytest.raises(ConfigError, match=match):
        EvaluateRequest(**{"label_column": LABEL, **fields})


@pytest.mark.parametrize(
    "thresholds, task, match",
    [
        ({"rmse": 3.0}, "auto", None),
        ({"roc_auc": 0.7, "r2": 0.0}, "classification", None),
        ({"rmse": 3.0}, "regression", None),
        (None, "regression", None),
        ({"rmse": 3.0}, "classification", "rmse applies to regression only"),
        ({"roc_auc": 0.7}, "regression", "roc_auc applies to classification only"),
        ({}, "clustering", "task: expected one of auto, classification, regression, got 'clustering'"),
    ],
)
def test_check_for_task_before_the_run(thresholds, task, match):
    request = EvaluateRequest(LABEL, thresholds=thresholds)
    if match is None:
        request.check_for_task(task)
    else:
        with pytest.raises(ConfigError, match=match):
            request.check_for_task(task)


def test_classification_default_thresholds_do_not_apply_to_regression(trained, churn, tmp_path):
    with pytest.raises(ConfigError, match="roc_auc applies to classification only.*valid: rmse, mae, r2"):
        run(trained["regression"], churn.eval, tmp_path, label="monthly_charges", thresholds={"roc_auc": 0.7})


def test_the_pipeline_default_fits_both_tasks(trained, churn, tmp_path):
    default = {"roc_auc": 0.7, "r2": 0.0}
    classified = run(trained["logistic"], churn.eval, tmp_path / "c", thresholds=default)[0]
    assert classified.thresholds == {"roc_auc": 0.7} and classified.blessed
    regressed = run(trained["regression"], churn.eval, tmp_path / "r", label="monthly_charges", thresholds=default)[0]
    assert regressed.thresholds == {"r2": 0.0}
    assert regressed.blessed == (regressed.metrics["r2"] >= 0.0)


@pytest.mark.parametrize("tolerance", [-0.1, float("inf"), "0.1"])
def test_bad_tolerance_is_a_config_error(trained, churn, tmp_path, tolerance):
    with pytest.raises(ConfigError, match="tolerance"):
        run(trained["logistic"], churn.eval, tmp_path, tolerance=tolerance)


# --- baseline -------------------------------------------------------------------------------------------------


def test_baseline_better_by_more_than_the_tolerance_blocks_the_blessing(trained, churn, tmp_path):
    result, blessing, report = run(
        trained["noise"], churn.eval, tmp_path, thresholds={"roc_auc": 0.4}, baseline_model_uri=str(trained["logistic"])
    )
    assert result.metrics["roc_auc"] >= 0.4  # the threshold alone would pass
    assert blessing["baseline_metrics"]["roc_auc"] > result.metrics["roc_auc"] + 0.01
    assert not result.blessed
    assert len(result.reasons) == 1 and "worse than the baseline" in result.reasons[0]
    assert blessing["baseline_model_dir"] == str(trained["logistic"])
    assert "**FAIL** (baseline)" in report


def test_tolerance_boundary_against_the_baseline(trained, churn, tmp_path):
    candidate = run(trained["boosting"], churn.eval, tmp_path, thresholds={})
    baseline = run(trained["logistic"], churn.eval, tmp_path, thresholds={})
    gap = baseline[0].metrics["roc_auc"] - candidate[0].metrics["roc_auc"]
    assert gap > 0.002, "the test needs a candidate that is somewhat worse than the baseline"
    kwargs = {"thresholds": {}, "baseline_model_uri": str(trained["logistic"])}
    within = run(trained["boosting"], churn.eval, tmp_path, tolerance=gap + 0.001, **kwargs)[0]
    beyond = run(trained["boosting"], churn.eval, tmp_path, tolerance=gap - 0.001, **kwargs)[0]
    assert within.blessed and "within" in within.reason
    assert not beyond.blessed and "worse than the baseline" in beyond.reason


def test_the_same_model_as_baseline_is_blessed(trained, churn, tmp_path):
    result, blessing, report = run(
        trained["logistic"],
        churn.eval,
        tmp_path,
        thresholds={"roc_auc": 0.7, "log_loss": 0.6},
        baseline_model_uri=str(trained["logistic"]),
    )
    assert result.blessed
    assert blessing["baseline_metrics"] == blessing["metrics"]
    assert len(result.reasons) == 4  # two thresholds, two baseline comparisons
    assert "| log_loss |" in report


def test_lower_is_better_baseline_comparison(trained, churn, tmp_path):
    better = run(trained["logistic"], churn.eval, tmp_path, thresholds={})[0].metrics["log_loss"]
    worse = run(trained["noise"], churn.eval, tmp_path, thresholds={})[0].metrics["log_loss"]
    assert worse > better + 0.01
    kwargs = {"thresholds": {"log_loss": 10.0}}
    assert not run(trained["noise"], churn.eval, tmp_path, baseline_model_uri=str(trained["logistic"]), **kwargs)[
        0
    ].blessed
    assert run(trained["logistic"], churn.eval, tmp_path, baseline_model_uri=str(trained["noise"]), **kwargs)[0].blessed


def test_regression_baseline_compares_rmse(trained, churn, tmp_path):
    result = run(
        trained["regression"],
        churn.eval,
        tmp_path,
        label="monthly_charges",
        thresholds=None,  # no thresholds for regression: the baseline is compared on the primary metric
        baseline_model_uri=str(trained["regression"]),
    )[0]
    assert result.blessed and result.reasons[0].startswith("rmse ")


def test_baseline_that_cannot_score_the_eval_data_is_not_blessed(trained, churn, tmp_path):
    result, blessing, _ = run(
        trained["logistic"], churn.eval, tmp_path, baseline_model_uri=str(trained["extra_feature"])
    )
    assert not result.blessed
    assert blessing["baseline_metrics"] is None
    reason = result.reasons[-1]
    assert str(trained["extra_feature"]) in reason and "cannot score" in reason and "customer_segment" in reason


def test_missing_or_mismatched_baseline_is_not_blessed(trained, churn, tmp_path):
    missing = run(trained["logistic"], churn.eval, tmp_path, baseline_model_uri=str(tmp_path / "nowhere"))[0]
    assert not missing.blessed and "could not be loaded" in missing.reason and "nowhere" in missing.reason
    other_task = run(trained["logistic"], churn.eval, tmp_path, baseline_model_uri=str(trained["regression"]))[0]
    assert not other_task.blessed and "regression model" in other_task.reason
    other_labels = run(trained["logistic"], churn.eval, tmp_path, baseline_model_uri=str(trained["multiclass"]))[0]
    assert not other_labels.blessed and "cannot score" in other_labels.reason


def test_remote_baseline_is_copied_through_fsspec(trained, churn, tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ("model.joblib", "metadata.json"):
        fs.pipe(f"/models/churn/v1/{name}", (trained["logistic"] / name).read_bytes())
    try:
        result, blessing, _ = run(
            trained["logistic"], churn.eval, tmp_path, baseline_model_uri="memory://models/churn/v1"
        )
        assert result.blessed and blessing["baseline_metrics"] == blessing["metrics"]
        incomplete = run(trained["logistic"], churn.eval, tmp_path, baseline_model_uri="memory://models/none")[0]
        assert not incomplete.blessed and "memory://models/none" in incomplete.reason
    finally:
        fs.rm("/models", recursive=True)


# --- bad inputs -----------------------------------------------------------------------------------------------


def test_blessing_json_has_exactly_the_contract_fields(trained, churn, tmp_path):
    result, blessing, _ = run(trained["logistic"], churn.eval, tmp_path)
    assert set(blessing) == BLESSING_KEYS
    metadata = json.loads((trained["logistic"] / "metadata.json").read_text())
    assert blessing["model_sha256"] == metadata["model_sha256"] == result.model_sha256
    assert blessing["model_dir"] == str(trained["logistic"]) and blessing["baseline_model_dir"] == ""
    assert blessing["baseline_metrics"] is None and blessing["tolerance"] == 0.01
    assert blessing["prediction_distribution"] == result.prediction_distribution
    assert blessing["thresholds"] == {"roc_auc": 0.7}
    assert blessing["reasons"] == result.reasons and isinstance(blessing["blessed"], bool)
    assert blessing["positive_class"] == result.positive_class == 1  # the minority class of the churn label
    assert blessings.read(tmp_path / "blessing.json").as_dict() == blessing  # the one blessing contract
    assert blessings.read(tmp_path / "blessing.json").mismatch(sha256_file(trained["logistic"] / "model.joblib")) == ""


@pytest.mark.parametrize(
    "change, label, match",
    [
        (None, LABEL, "Parquet file not found"),
        (lambda frame: frame.drop(columns=["region"]), LABEL, "missing feature column\\(s\\) 'region'"),
        (lambda frame: frame, "nope", "label column 'nope' not found"),
        (lambda frame: frame.assign(churned=2), LABEL, "value\\(s\\) 2 the model was not trained on"),
        (lambda frame: frame.head(0), LABEL, "the eval dataset has no rows"),
    ],
)
def test_eval_data_problems_are_data_errors_naming_the_file(trained, churn, tmp_path, change, label, match):
    data = tmp_path / "eval.parquet"
    if change is not None:
        change(churn.eval_frame).to_parquet(data, index=False)
    with pytest.raises(DataError, match=match) as info:
        run(trained["logistic"], data, tmp_path, label=label)
    assert str(data) in str(info.value)
    assert not (tmp_path / "blessing.json").exists()


def test_candidate_model_problems_are_data_errors(trained, churn, tmp_path):
    with pytest.raises(DataError, match="candidate model directory not found"):
        run(tmp_path / "nomodel", churn.eval, tmp_path)
    tampered = tmp_path / "tampered"
    shutil.copytree(trained["logistic"], tampered)
    joblib.dump(joblib.load(trained["noise"] / "model.joblib"), tampered / "model.joblib")
    with pytest.raises(DataError, match="does not match"):
        run(tampered, churn.eval, tmp_path)
    (tampered / "metadata.json").write_text("{not json")
    with pytest.raises(DataError, match="metadata.json"):
        run(tampered, churn.eval, tmp_path)
    (tampered / "metadata.json").unlink()
    with pytest.raises(DataError, match="has no metadata.json"):
        run(tampered, churn.eval, tmp_path)


def test_labels_of_another_type_are_matched_to_the_classes(trained, churn, tmp_path):
    churn.eval_frame.assign(churned=churn.eval_frame[LABEL].astype(float)).to_parquet(
        tmp_path / "f.parquet", index=False
    )
    churn.eval_frame.assign(churned=churn.eval_frame[LABEL].astype(bool)).to_parquet(
        tmp_path / "b.parquet", index=False
    )
    reference = run(trained["logistic"], churn.eval, tmp_path)[0].metrics
    assert run(trained["logistic"], tmp_path / "f.parquet", tmp_path)[0].metrics == reference
    assert run(trained["logistic"], tmp_path / "b.parquet", tmp_path)[0].metrics == reference


def test_object_columns_of_python_scalars_score_the_same(trained, churn):
    # A table fed from JSON holds Python ints, bools, strings and None in object columns: the model coerces them.
    pipeline, metadata, _ = core.load_model_dir(trained["boosting"])
    as_objects = churn.eval_frame.astype(object).where(churn.eval_frame.notna(), None)
    as_objects[LABEL] = churn.eval_frame[LABEL]
    assert all(dtype.kind == "O" for dtype in as_objects.drop(columns=[LABEL]).dtypes)
    reference = core.score(pipeline, metadata, churn.eval_frame, LABEL, "eval")["metrics"]
    assert core.score(pipeline, metadata, as_objects, LABEL, "eval")["metrics"] == reference


def test_prediction_distribution_counts_every_eval_prediction_over_the_rollout_bins(trained, churn, tmp_path):
    """The blessing records the eval predictions over the rollout's fixed bins: P(classes[1]) of each row, counted."""
    import joblib
    import numpy as np
    import pandas as pd

    from kfp_tabular.components.common import blessing as blessings
    from kfp_tabular.components.deployment.rollout.metrics import BIN_EDGES

    result, _, _ = run(trained["logistic"], churn.eval, tmp_path)
    recorded = blessings.read(tmp_path / "blessing.json").prediction_distribution
    assert recorded == result.prediction_distribution and recorded["kind"] == "score"
    assert recorded["edges"] == list(BIN_EDGES[:-1]) and len(recorded["counts"]) == len(BIN_EDGES)
    frame = pd.read_parquet(churn.eval)
    pipeline = joblib.load(trained["logistic"] / "model.joblib")
    p1 = pipeline.predict_proba(frame.drop(columns=[LABEL]))[:, 1]
    expected = [int(((p1 > lo) & (p1 <= hi)).sum()) for lo, hi in zip((-np.inf, *BIN_EDGES[:-1]), BIN_EDGES)]
    assert recorded["counts"] == expected and sum(expected) == len(frame) == recorded["rows"]
    assert sum(recorded["class_counts"].values()) == len(frame)
