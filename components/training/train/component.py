"""KFP component: train a scikit-learn model on validated tabular data."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from kfp_tabular.components.common import params
from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.training.train.request import TrainRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@params.document(TrainRequest)
def train(
    train_data: Input[Dataset],
    schema: Input[Artifact],
    label_column: str,
    model: Output[Model],
    metrics: Output[Metrics],
    estimator: str = "hist_gradient_boosting",
    hyperparameters: dict = {},
    task: str = "auto",
    seed: int = 42,
    max_categories: int = 50,
    min_frequency: int = 5,
    memory_limit_mb: int = 0,
    max_train_rows: int = 0,
):
    """Train a scikit-learn Pipeline whose inputs are the features of a TFDV schema.

    The model directory holds ``model.joblib`` (a Pipeline that loads with scikit-learn, pandas and numpy
    alone, e.g. in KServe's sklearn runtime, and accepts ordered rows, records or a DataFrame) and
    ``metadata.json`` (features, task, classes, versions, hashes: ``training_data_hash`` is the sha256 of the
    train split file it was fit on, ``source_data_hash``/``source_data_uri`` where ingest read that split from).
    Before fitting, a memory estimate is checked against the limit: when every row would not fit (or
    ``max_train_rows`` caps them) a seeded, stratified sample is fitted. Each feature that alone predicts the label
    almost perfectly is a warning; those, a sample, the categoricals capped and an ``auto`` task are decisions, in
    the model's metadata under ``decisions``.

    Args:
        train_data: Training data, one Parquet file (from ingest; its ``content_hash`` and ``source_uri``
            metadata, when present, are recorded as the source, its ``positive_class`` as the model's).
        schema: TFDV schema pbtxt that defines the model's input features (from validate, or curated).
        model: Output model directory: ``model.joblib`` + ``metadata.json``.
        metrics: Output metrics of the fitted model on (a seeded sample of at most 100,000 rows of) its training
            data, ``rows`` fitted, ``metrics_sample_rows`` measured, and the count of decisions.
    """
    import logging

    from kfp_tabular.components.common.decisions import METADATA_KEY, to_metadata
    from kfp_tabular.components.training.train import core
    from kfp_tabular.components.training.train.request import TrainRequest

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request = TrainRequest(
        label_column=label_column,
        estimator=estimator,
        hyperparameters=hyperparameters,
        task=task,
        seed=seed,
        max_categories=max_categories,
        min_frequency=min_frequency,
        memory_limit_mb=memory_limit_mb,
        max_train_rows=max_train_rows,
    )
    result = core.train(
        request,
        train_path=train_data.path,
        schema_path=schema.path,
        model_dir=model.path,
        source_data_hash=train_data.metadata.get("content_hash"),
        source_data_uri=train_data.metadata.get("source_uri"),
        source_columns=train_data.metadata.get("source_columns"),
        positive_class=train_data.metadata.get("positive_class"),
    )
    meta = result.metadata
    model.framework = "sklearn"
    model.metadata.update(
        {
            "sklearn_version": meta["sklearn_version"],
            "estimator": meta["estimator"],
            "task": meta["task"],
            "model_sha256": result.model_sha256,
            "feature_order": meta["feature_order"],
            "label_column": meta["label_column"],
            "training_data_hash": meta["training_data_hash"],
            "source_data_hash": meta["source_data_hash"],
            "source_data_uri": meta["source_data_uri"],
            "positive_class": meta["positive_class"],
            "train_rows": meta["train_rows"],
            "source_rows": meta["source_rows"],
            METADATA_KEY: to_metadata(result.decisions),
        }
    )
    if meta["classes"] is not None:
        model.metadata["classes"] = meta["classes"]
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    metrics.log_metric("decisions", len(result.decisions))
    metrics.log_metric("leakage_warnings", sum(d.action == "warning" for d in result.decisions))
