"""KFP component: evaluate a model on eval data and write a blessing (the deployment gate)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_tabular.components.common import params
from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@params.document(EvaluateRequest)
def evaluate(
    model: Input[Model],
    eval_data: Input[Dataset],
    label_column: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    blessing: Output[Artifact],
    report: Output[Markdown],
    report_html: Output[HTML],
    thresholds: dict = {"roc_auc": 0.7, "r2": 0.0},
    baseline_model_uri: str = "",
    tolerance: float = 0.01,
) -> NamedTuple("Outputs", [("blessed", bool), ("reason", str)]):
    """Score a model on eval data, apply thresholds and a baseline comparison, and write the blessing.

    A model that fails the gate is not an error: the blessing says ``"blessed": false`` with the reasons,
    and the downstream deploy step reads it and changes nothing.

    Args:
        model: Candidate model directory from the train component.
        eval_data: Eval data, one Parquet file with the features and the label (from ingest: its
            ``positive_class`` is the class binary precision, recall, F1 and ROC AUC measure, else the model's,
            else the minority class; its ``decisions`` are listed in the report).
        metrics: Output scalar metrics of the candidate on the eval data.
        classification_metrics: Output confusion matrix and, for binary classification, the ROC curve.
        blessing: Output blessing JSON: blessed, reasons, metrics, baseline_metrics, thresholds, tolerance,
            model_sha256; its metadata adds the task, the positive class and the evaluation's decisions.
        report: Output Markdown report: metrics table (candidate, baseline, threshold, pass/fail), verdict,
            confusion matrix, positive class, and the decisions taken for the user upstream and here (the task
            log's twin of ``report_html``).
        report_html: Output self-contained HTML report the KFP UI renders: the verdict and its reasons, each
            checked metric drawn against its threshold and the baseline bound, ROC, precision-recall and
            reliability curves and the confusion matrices (classification) or residuals vs predicted and
            predicted vs actual (regression), candidate and baseline side by side, and the decisions.

    Returns:
        blessed: Whether the model passed the gate.
        reason: The failed checks (or the passed ones), joined with "; ".
    """
    import logging
    import math
    from collections import namedtuple

    from kfp_tabular.components.common.decisions import METADATA_KEY, from_metadata, to_metadata
    from kfp_tabular.components.evaluation.evaluate import core
    from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request = EvaluateRequest(
        label_column=label_column, thresholds=thresholds, baseline_model_uri=baseline_model_uri, tolerance=tolerance
    )
    result = core.evaluate(
        request,
        model_dir=model.path,
        eval_path=eval_data.path,
        blessing_path=blessing.path,
        report_path=report.path,
        report_html_path=report_html.path,
        positive_class=eval_data.metadata.get("positive_class"),
        data_decisions=from_metadata(eval_data.metadata.get(METADATA_KEY)),
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
    blessing.metadata.update(
        {
            "blessed": result.blessed,
            "reasons": result.reasons,
            "task": result.task,
            "positive_class": result.positive_class,
            METADATA_KEY: to_metadata(result.decisions),
        }
    )
    report.metadata.update({"blessed": result.blessed, METADATA_KEY: to_metadata(result.decisions)})
    report_html.metadata.update({"blessed": result.blessed, METADATA_KEY: to_metadata(result.decisions)})
    outputs = namedtuple("Outputs", ["blessed", "reason"])
    return outputs(result.blessed, result.reason)
