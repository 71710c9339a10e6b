"""Data validation with TensorFlow Data Validation (TFDV): the logic behind the ``validate_data`` component.

:func:`validate` orchestrates the steps TFX splits over StatisticsGen, SchemaGen/ImportSchemaGen,
ExampleValidator and DistributionValidator, each in its own module:

1. ``statistics``: statistics of the train and eval Parquet files (TFDV in memory, or a Beam pipeline;
   ``backend`` picks one by the data's estimated size when ``statistics_backend="auto"``);
2. ``schema``: the curated one from ``schema_uri`` (passed on unchanged) or one inferred from the train
   statistics, with the label kept out of the ``SERVING`` environment;
3. ``anomalies``: train and eval validated in ``TRAINING``, serving statistics (when given) in ``SERVING``;
4. ``drift``: eval against train (reported), eval against the baseline statistics and serving against train
   (gating by default), each feature flagged only when its distance is above the threshold and beyond sampling
   noise at these sample sizes;
5. ``reports``: the merged TFDV Anomalies, a Markdown table, TFDV's statistics view and a self-contained HTML
   page; ``tfdv_io`` reads and writes the protos. The parameters are a checked ``request.ValidateRequest``.

Each split's data is read once: with an inferred schema, the integer columns a schema would call categorical
are found from the Parquet footer first, so the one statistics pass already summarises them as categorical.
"""

from __future__ import annotations

import logging

from kfp_tabular.components.common.artifacts import write_text
from kfp_tabular.components.common.errors import DataError, ValidationFailed
from kfp_tabular.components.data_processing.validate import anomalies as tfdv_anomalies
from kfp_tabular.components.data_processing.validate import backend as backends
from kfp_tabular.components.data_processing.validate import drift, reports, statistics, tfdv_io
from kfp_tabular.components.data_processing.validate import schema as schemas
from kfp_tabular.components.data_processing.validate.request import ValidateRequest
from kfp_tabular.components.data_processing.validate.results import ValidationResult

logger = logging.getLogger(__name__)


def _train_statistics_and_schema(train_path: str, request: ValidateRequest, curated, backend: str):
    """Train statistics (one pass) and the schema: the curated one, or one inferred from those statistics."""
    args = request.beam_pipeline_args
    # A schema shapes the statistics (categorical INT features get value counts for L-infinity). Without a
    # curated one, a partial schema marks the small-range integer columns the inferred schema will call
    # categorical, found from the Parquet footer, so the statistics need no second pass.
    shaping = curated
    if curated is None:
        shaping = schemas.categorical_int_schema(statistics.integer_ranges(train_path, backend))
    train = statistics.generate_statistics(train_path, backend, args, shaping)
    columns = statistics.feature_names(train)
    if request.label_column not in columns:
        raise DataError(f"{train_path}: label column {request.label_column!r} not found; columns: {', '.join(columns)}")
    schema = curated if curated is not None else schemas.infer_schema(train, request.label_column)
    return train, schema


def validate(
    train_path: str,
    eval_path: str,
    request: ValidateRequest,
    *,
    train_statistics_path: str | None = None,
    eval_statistics_path: str | None = None,
    schema_path: str | None = None,
    anomalies_path: str | None = None,
    anomalies_report_path: str | None = None,
    statistics_html_path: str | None = None,
    report_path: str | None = None,
    upstream_decisions: list | None = None,
) -> ValidationResult:
    """Validate train and eval data: statistics, schema, anomalies, drift, skew and reports.

    Every output path is optional (``None``: not written). All outputs are written, atomically, before the verdict:
    when validation fails the reports are there to read.

    Args:
        train_path: Train Parquet file.
        eval_path: Eval Parquet file.
        request: The checked parameters (label, schema, baseline and serving statistics, thresholds, backend).
        train_statistics_path: Output: train statistics (binary ``DatasetFeatureStatisticsList``).
        eval_statistics_path: Output: eval statistics (binary).
        schema_path: Output: the schema (pbtxt): the curated file unchanged, or the inferred schema.
        anomalies_path: Output: TFDV ``Anomalies`` (pbtxt) of all splits, keys ``<split>/<feature>``.
        anomalies_report_path: Output: Markdown tables of anomalies and drift.
        statistics_html_path: Output: TFDV's train-vs-eval statistics view (loads its viewer from public CDNs).
        report_path: Output: self-contained HTML report (no scripts, no external resources): a summary strip, every
            feature's distributions in train, eval, baseline and serving drawn next to its drift verdicts, the tables.
        upstream_decisions: Decisions taken before validation (ingest's: a column dropped, a label's task), shown in
            the HTML report before validate's own.

    Returns:
        The :class:`~kfp_tabular.components.data_processing.validate.results.ValidationResult`.

    Raises:
        ConfigError: A location in the request does not exist or the curated schema lacks the label.
        DataError: Input data or a referenced file is unreadable or malformed.
        ValidationFailed: Anomalies or gating drift/skew (``request.drift_gate``) were found and
            ``request.fail_on_anomalies`` is True.
    """
    curated_text, curated = "", None
    if request.schema_uri:
        curated_text, curated = tfdv_io.read_schema(request.schema_uri)
        schemas.check_label_in_schema(curated, request.label_column, request.schema_uri)
    compared = {}
    for field in ("baseline_statistics_uri", "serving_statistics_uri"):
        uri = getattr(request, field)
        compared[field] = tfdv_io.load_statistics(uri, field) if uri else None
    baseline, serving = compared["baseline_statistics_uri"], compared["serving_statistics_uri"]

    choice = backends.choose(
        request.statistics_backend, [train_path, eval_path], request.memory_budget_mb, request.beam_pipeline_args
    )
    if choice.decision is not None:
        logger.info("%s", choice.decision.line())
    train, schema = _train_statistics_and_schema(train_path, request, curated, choice.backend)
    evaluation = statistics.generate_statistics(eval_path, choice.backend, request.beam_pipeline_args, schema)
    for field, stats in compared.items():
        if stats is not None:
            schemas.check_comparable(train, stats, getattr(request, field), field, request.label_column)
    train.datasets[0].name = "train"
    evaluation.datasets[0].name = "eval"

    findings = tfdv_anomalies.validate_splits(train, evaluation, schema, serving=serving)
    measurements, notes = drift.measure(
        train,
        evaluation,
        schema,
        label_column=request.label_column,
        numeric=request.numeric_drift_threshold,
        categorical=request.categorical_drift_threshold,
        alpha=request.drift_alpha,
        gate=request.drift_gate,
        baseline=baseline,
        serving=serving,
    )
    for split, stats in (("eval", evaluation), ("serving", serving)):
        if stats is not None:
            notes += schemas.unseen_values(stats, schemas.for_split(schema, stats), split)
    splits = {"train": train, "eval": evaluation, "baseline": baseline, "serving": serving}
    present = {split: stats.datasets[0] for split, stats in splits.items() if stats is not None}
    result = ValidationResult(
        anomalies=findings.anomalies,
        drift=measurements,
        schema_source="curated" if curated is not None else "inferred",
        schema_uri=request.schema_uri,
        num_examples={split: dataset.num_examples for split, dataset in present.items()},
        num_features={split: len(dataset.features) for split, dataset in present.items()},
        schema_features=len(schema.feature),
        label_column=request.label_column,
        notes=notes,
        statistics_backend=choice.backend,
        decisions=[choice.decision] if choice.decision is not None else [],
    )

    markdown = reports.render_markdown(result)
    if train_statistics_path:
        tfdv_io.write_binary(train_statistics_path, train)
    if eval_statistics_path:
        tfdv_io.write_binary(eval_statistics_path, evaluation)
    if schema_path:
        write_text(schema_path, curated_text if curated is not None else tfdv_io.to_text(schema))
    if anomalies_path:
        write_text(anomalies_path, tfdv_io.to_text(tfdv_anomalies.merge_anomalies(findings)))
    if anomalies_report_path:
        write_text(anomalies_report_path, markdown)
    if statistics_html_path:
        write_text(statistics_html_path, reports.statistics_html(train, evaluation))
    if report_path:
        write_text(
            report_path,
            reports.render_html_report(
                result, train, evaluation, schema, baseline=baseline, serving=serving, decisions=upstream_decisions
            ),
        )

    if not result.ok:
        message = reports.failure_message(result, report_path)
        if request.fail_on_anomalies:
            logger.error("%s\n\n%s", message, markdown)
            exc = ValidationFailed(message)
            exc.result = result
            raise exc
        logger.warning("%s (fail_on_anomalies=False: continuing)", message)
    return result
