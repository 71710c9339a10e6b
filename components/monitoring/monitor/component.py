"""KFP component: monitor a window of served traffic against the deployed model; decide whether to retrain."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Output

from kfp_tabular.components.common import params
from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.monitoring.monitor.request import MonitorRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@params.document(MonitorRequest)
def monitor(
    served_data_uri: str,
    lineage_uri: str,
    decision: Output[Artifact],
    report: Output[Markdown],
    report_html: Output[HTML],
    served_data: Output[Dataset],
    metrics: Output[Metrics],
    window_end: str = "",
    window_hours: float = 24.0,
    min_rows: int = 200,
    numeric_threshold: float = 0.1,
    categorical_threshold: float = 0.1,
    alpha: float = 0.01,
    prediction_drift_threshold: float = 0.1,
    performance_tolerance: float = 0.05,
) -> NamedTuple("Outputs", [("retrain", bool), ("reason", str), ("rows", int)]):
    """Compare a window of served traffic with the deployed model's training data and evaluation; decide on retraining.

    The deployed model's lineage record names its training statistics, schema, blessing metrics and evaluation
    prediction distribution. The window's served rows (the collector's Parquet batches) are compared with them:
    TFDV skew per feature against the training statistics and drift against the previous window (Jensen-Shannon
    or L-infinity distance, flagged above the threshold and beyond sampling noise), schema anomalies in SERVING,
    the served prediction distribution against the evaluation's (the rollout's fixed bins), and the accuracy and
    ROC AUC estimated from the scores (CBPE). Every feature's values are reported. Bad input (no rows in the
    window, missing feature columns, an unreadable lineage record) fails the task and writes no output.

    Args:
        decision: Output decision JSON: ``retrain``, ``reasons``, ``drifted_features``, ``skewed_features``,
            ``window``, ``rows``, ``prediction_drift``, ``estimated_performance``, ``model_sha256`` and more; its
            metadata holds ``retrain``, ``reasons`` and the decisions taken for the user.
        report: Output Markdown report: the decision and its reasons, every feature's skew and drift values,
            the prediction distribution, the estimated performance, anomalies, notes and decisions.
        report_html: Output self-contained HTML report the KFP UI renders: the same, with each feature's
            distribution in training, the window and the previous window drawn, and the predictions' histogram.
        served_data: Output the window's served rows of the deployed model (Parquet: features, prediction,
            score, model_sha256, time, ...), the new data for retraining (its metadata: rows, window).
        metrics: Output scalar metrics: retrain, rows, counts of skewed/drifted features, every feature's
            distances, the prediction drift and the estimated metrics.

    Returns:
        retrain: Whether to retrain.
        reason: The reasons, joined with "; ".
        rows: Served rows of the deployed model in the window.
    """
    import logging
    from collections import namedtuple

    from kfp_tabular.components.common.decisions import METADATA_KEY, to_metadata
    from kfp_tabular.components.monitoring.monitor import core
    from kfp_tabular.components.monitoring.monitor.request import MonitorRequest

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request = MonitorRequest(
        served_data_uri=served_data_uri,
        lineage_uri=lineage_uri,
        window_end=window_end,
        window_hours=window_hours,
        min_rows=min_rows,
        numeric_threshold=numeric_threshold,
        categorical_threshold=categorical_threshold,
        alpha=alpha,
        prediction_drift_threshold=prediction_drift_threshold,
        performance_tolerance=performance_tolerance,
    )
    result = core.monitor(
        request,
        decision_path=decision.path,
        report_path=report.path,
        report_html_path=report_html.path,
        served_data_path=served_data.path,
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    taken = to_metadata(result.decisions)
    decision.metadata.update(
        {
            "retrain": result.retrain,
            "reasons": result.reasons,
            "drifted_features": result.drifted_features,
            "model_sha256": result.model_sha256,
            METADATA_KEY: taken,
        }
    )
    served_data.metadata.update(
        {"rows": result.rows, "window": result.window, "model_sha256": result.model_sha256, METADATA_KEY: taken}
    )
    for artifact in (report, report_html):
        artifact.metadata.update({"retrain": result.retrain, METADATA_KEY: taken})
    outputs = namedtuple("Outputs", ["retrain", "reason", "rows"])
    return outputs(result.retrain, "; ".join(result.reasons), result.rows)
