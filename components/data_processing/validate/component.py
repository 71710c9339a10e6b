"""KFP component: validate train/eval data with TFDV (statistics, schema, anomalies, drift, skew, reports)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from kfp_tabular.components.common import params
from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.data_processing.validate.request import ValidateRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@params.document(ValidateRequest)
def validate_data(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    label_column: str,
    train_statistics: Output[Artifact],
    eval_statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    anomalies_report: Output[Markdown],
    statistics_html: Output[HTML],
    report: Output[HTML],
    metrics: Output[Metrics],
    schema_uri: str = "",
    baseline_statistics_uri: str = "",
    serving_statistics_uri: str = "",
    numeric_drift_threshold: float = 0.03,
    categorical_drift_threshold: float = 0.05,
    drift_alpha: float = 0.01,
    drift_gate: str = "baseline",
    fail_on_anomalies: bool = True,
    statistics_backend: str = "auto",
    memory_budget_mb: int = 0,
    beam_pipeline_args: list = [],
) -> NamedTuple("Outputs", [("anomaly_count", int), ("drifted_features", list)]):
    """Validate train and eval data with TensorFlow Data Validation; fail the run on anomalies or real drift.

    Computes statistics of both splits, takes the curated schema from ``schema_uri`` (or infers one from the train
    statistics), validates train and eval against it (TRAINING environment), and measures, sample-size aware, eval
    vs train (reported), eval vs the baseline statistics and serving vs train (gating by default, ``drift_gate``).
    Every output is written before the verdict, so a failed run still leaves its reports where the executor keeps
    them.

    Args:
        train_data: Train split, one Parquet file (from the ingest component).
        eval_data: Eval split, one Parquet file.
        train_statistics: Train statistics, binary TFDV ``DatasetFeatureStatisticsList``; metadata: the backend
            that computed them and, with ``auto``, the decision that chose it (``decisions``).
        eval_statistics: Eval statistics, binary TFDV ``DatasetFeatureStatisticsList``.
        schema: The schema used, text proto: the curated file unchanged or the inferred schema.
        anomalies: TFDV ``Anomalies`` text proto of all splits (keys ``<split>/<feature>``).
        anomalies_report: Markdown tables of anomalies and drift/skew measurements (distance, threshold, noise
            bound, p-value, sample sizes, flagged, gating).
        statistics_html: TFDV's train-vs-eval statistics view (its viewer loads from public CDNs).
        report: Self-contained HTML report (per-feature summaries, anomalies, drift, schema); renders offline.
        metrics: Anomaly count, drifted and flagged feature counts, examples per split and every drift/skew
            measurement (``<comparison>_<feature>`` distance, ``_threshold``, ``_noise_bound``, ``_p_value``,
            ``_flagged``).

    Returns:
        anomaly_count: Number of anomalies over all splits.
        drifted_features: Names of the features whose drift or skew fails the run (flagged in a gating comparison).
    """
    import collections

    from kfp_tabular.components.common.decisions import METADATA_KEY, from_metadata, to_metadata
    from kfp_tabular.components.data_processing.validate import core, statistics
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest

    request = ValidateRequest(
        label_column=label_column,
        schema_uri=schema_uri,
        baseline_statistics_uri=baseline_statistics_uri,
        serving_statistics_uri=serving_statistics_uri,
        numeric_drift_threshold=numeric_drift_threshold,
        categorical_drift_threshold=categorical_drift_threshold,
        drift_alpha=drift_alpha,
        drift_gate=drift_gate,
        fail_on_anomalies=fail_on_anomalies,
        statistics_backend=statistics_backend,
        memory_budget_mb=memory_budget_mb,
        beam_pipeline_args=beam_pipeline_args,
    )
    backend, args = request.statistics_backend, request.beam_pipeline_args
    result = core.validate(
        statistics.select_data_location(train_data.path, train_data.uri, backend, args),
        statistics.select_data_location(eval_data.path, eval_data.uri, backend, args),
        request,
        train_statistics_path=train_statistics.path,
        eval_statistics_path=eval_statistics.path,
        schema_path=schema.path,
        anomalies_path=anomalies.path,
        anomalies_report_path=anomalies_report.path,
        statistics_html_path=statistics_html.path,
        report_path=report.path,
        upstream_decisions=from_metadata(train_data.metadata.get(METADATA_KEY)),
    )

    for split, artifact in (("train", train_statistics), ("eval", eval_statistics)):
        artifact.metadata.update(
            {
                "split": split,
                "num_examples": result.num_examples[split],
                "num_features": result.num_features[split],
                "format": "tfdv.DatasetFeatureStatisticsList (binary proto)",
                "backend": result.statistics_backend,
                METADATA_KEY: to_metadata(result.decisions),
            }
        )
    schema.metadata.update(
        {
            "source": result.schema_source,
            "schema_uri": result.schema_uri,
            "num_features": result.schema_features,
            "label_column": label_column,
            "format": "tfdv.Schema (text proto)",
        }
    )
    verdict = {
        "ok": result.ok,
        "anomaly_count": len(result.anomalies),
        "drifted_features": result.drifted_features,
        "flagged_features": result.flagged_features,
        "schema_source": result.schema_source,
    }
    for artifact in (anomalies, anomalies_report, report):
        artifact.metadata.update(verdict)
    anomalies.metadata["format"] = "tfdv.Anomalies (text proto), keys <split>/<feature>"
    for name, value in sorted(result.metrics().items()):
        metrics.log_metric(name, value)

    outputs = collections.namedtuple("Outputs", ["anomaly_count", "drifted_features"])
    return outputs(len(result.anomalies), result.drifted_features)
