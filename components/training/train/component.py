"""KFP component: train a scikit-learn model on validated tabular data."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
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
):
    """Train a scikit-learn Pipeline whose inputs are the features of a TFDV schema.

    The model directory holds ``model.joblib`` (a Pipeline that loads with scikit-learn, pandas and numpy
    alone, e.g. in KServe's sklearn runtime, and accepts ordered rows, records or a DataFrame) and
    ``metadata.json`` (features, task, classes, versions, hashes).

    Args:
        train_data: Training data, one Parquet file (from ingest).
        schema: TFDV schema pbtxt that defines the model's input features (from validate, or curated).
        label_column: Name of the label column; it is excluded from the features.
        model: Output model directory: ``model.joblib`` + ``metadata.json``.
        metrics: Output metrics of the fitted model on its training data.
        estimator: ``logistic_regression`` (Ridge for regression), ``hist_gradient_boosting`` or
            ``random_forest``.
        hyperparameters: Constructor arguments for the estimator, e.g. ``{"max_iter": 200}``; names are
            checked against the estimator.
        task: ``auto`` (classification for bool/string labels or integers with at most 20 values),
            ``classification`` or ``regression``.
        seed: Random seed of the estimator.
    """
    import logging

    from kfp_tabular.components.common.artifacts import sha256_file
    from kfp_tabular.components.training.train import core

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data_hash = train_data.metadata.get("content_hash") or sha256_file(train_data.path)
    result = core.train(
        train_path=train_data.path,
        schema_path=schema.path,
        label_column=label_column,
        model_dir=model.path,
        estimator=estimator,
        hyperparameters=dict(hyperparameters or {}),
        task=task,
        seed=seed,
        training_data_hash=data_hash,
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
        }
    )
    if meta["classes"] is not None:
        model.metadata["classes"] = meta["classes"]
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
