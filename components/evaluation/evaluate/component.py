"""KFP component: evaluate a model on eval data and write a blessing (the deployment gate)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    eval_data: Input[Dataset],
    label_column: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    blessing: Output[Artifact],
    report: Output[Markdown],
    thresholds: dict = {"roc_auc": 0.7, "r2": 0.0},
    baseline_model_uri: str = "",
    tolerance: float = 0.01,
) -> NamedTuple("Outputs", [("blessed", bool), ("reason", str)]):
    """Score a model on eval data, apply thresholds and a baseline comparison, and write the blessing.

    A model that fails the gate is not an error: the blessing says ``"blessed": false`` with the reasons,
    and the downstream deploy step reads it and changes nothing.

    Args:
        model: Candidate model directory from the train component.
        eval_data: Eval data, one Parquet file with the features and the label.
        label_column: Name of the label column.
        metrics: Output scalar metrics of the candidate on the eval data.
        classification_metrics: Output confusion matrix and, for binary classification, the ROC curve.
        blessing: Output blessing JSON: blessed, reasons, metrics, baseline_metrics, thresholds, tolerance,
            model_sha256.
        report: Output Markdown report: metrics table (candidate, baseline, threshold, pass/fail), verdict,
            confusion matrix.
        thresholds: Metric name -> bound. Higher-is-better metrics (roc_auc, accuracy, precision, recall, f1,
            r2) must be >= the bound, lower-is-better ones (log_loss, rmse, mae) <= it. Metrics of the other
            task are skipped (the default, AUC >= 0.7 and R2 >= 0, fits either task); at least one must apply.
        baseline_model_uri: Model directory of the current model (local path or fsspec URL such as
            ``s3://bucket/models/churn/v3``); the candidate must not be worse by more than ``tolerance`` on
            each threshold metric (or on roc_auc / rmse when there are no thresholds). Empty: no baseline.
        tolerance: Allowed absolute regression against the baseline.

    Returns:
        blessed: Whether the model passed the gate.
        reason: The failed checks (or the passed ones), joined with "; ".
    """
    import logging
    import math
    from collections import namedtuple

    from kfp_tabular.components.evaluation.evaluate import core

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = core.evaluate(
        model_dir=model.path,
        eval_path=eval_data.path,
        label_column=label_column,
        blessing_path=blessing.path,
        report_path=report.path,
        thresholds=dict(thresholds) if thresholds is not None else None,
        baseline_model_dir=baseline_model_uri,
        tolerance=tolerance,
    )
    for name, value in result.metrics.items():
        if value is not None:
            metrics.log_metric(name, value)
    metrics.log_metric("eval_rows", result.eval_rows)
    if result.confusion_matrix:
        classification_metrics.log_confusion_matrix(
            result.confusion_matrix["labels"], result.confusion_matrix["matrix"]
        )
    if result.roc_curve:
        # KFP stores the curve in JSON metadata: the first threshold (inf) becomes a large finite number.
        finite = [t if math.isfinite(t) else 1e9 for t in result.roc_curve["thresholds"]]
        classification_metrics.log_roc_curve(result.roc_curve["fpr"], result.roc_curve["tpr"], finite)
    blessing.metadata.update({"blessed": result.blessed, "reasons": result.reasons, "task": result.task})
    report.metadata["blessed"] = result.blessed
    outputs = namedtuple("Outputs", ["blessed", "reason"])
    return outputs(result.blessed, result.reason)
