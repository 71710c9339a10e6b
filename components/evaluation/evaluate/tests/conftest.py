"""Shared fixtures: small churn datasets as Parquet, a TFDV-inferred schema, trained model directories."""

import dataclasses
from pathlib import Path

import pytest

LABEL = "churned"


@dataclasses.dataclass
class ChurnFiles:
    root: Path
    train: Path
    eval: Path
    noise_train: Path
    noise_eval: Path
    schema: Path
    train_frame: object
    eval_frame: object


def write_schema(frame, path: Path) -> Path:
    """Infer a TFDV schema from a frame and write it as pbtxt (the way validate produces one)."""
    import tensorflow_data_validation as tfdv

    stats = tfdv.generate_statistics_from_dataframe(frame)
    tfdv.write_schema_text(tfdv.infer_schema(stats), str(path))
    return path


@pytest.fixture(scope="session")
def schema_writer():
    """The function that infers and writes a schema (TFDV is imported only by tests that use it)."""
    return write_schema


@pytest.fixture(scope="module", autouse=True)
def single_threaded(single_threaded_openmp):
    """HistGradientBoosting under one OpenMP thread here (see tests.plugin.single_threaded_openmp)."""
    yield


@pytest.fixture(scope="session")
def churn(tmp_path_factory) -> ChurnFiles:
    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    root = tmp_path_factory.mktemp("churn")
    train_frame = generate(3000, seed=21)
    eval_frame = generate(2000, seed=22)
    train_frame.to_parquet(root / "train.parquet", index=False)
    eval_frame.to_parquet(root / "eval.parquet", index=False)
    generate(3000, seed=23, variant="noise").to_parquet(root / "noise_train.parquet", index=False)
    generate(2000, seed=24, variant="noise").to_parquet(root / "noise_eval.parquet", index=False)
    write_schema(train_frame, root / "schema.pbtxt")
    return ChurnFiles(
        root,
        root / "train.parquet",
        root / "eval.parquet",
        root / "noise_train.parquet",
        root / "noise_eval.parquet",
        root / "schema.pbtxt",
        train_frame,
        eval_frame,
    )


@pytest.fixture(scope="session")
def trained(churn, tmp_path_factory):
    """Model directories written by the train core: name -> path."""
    import numpy as np

    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    root = tmp_path_factory.mktemp("models")
    schema, data = churn.schema, churn.train
    logistic = TrainRequest(LABEL, "logistic_regression")
    train(logistic, data, schema, root / "logistic")
    train(TrainRequest(LABEL, "hist_gradient_boosting", {"max_iter": 40}), data, schema, root / "boosting")
    train(logistic, churn.noise_train, schema, root / "noise")
    train(TrainRequest("monthly_charges", "logistic_regression"), data, schema, root / "regression")
    train(TrainRequest("contract_type", "logistic_regression"), data, schema, root / "multiclass")
    # A model that needs a column the eval data does not have.
    extra = churn.train_frame.assign(customer_segment=np.where(np.arange(len(churn.train_frame)) % 2, "a", "b"))
    extra.to_parquet(root / "extra.parquet", index=False)
    write_schema(extra, root / "extra.pbtxt")
    train(logistic, root / "extra.parquet", root / "extra.pbtxt", root / "extra_feature")
    return {p.name: p for p in root.iterdir() if p.is_dir()}
