"""Shared fixtures: small churn datasets as Parquet, a TFDV-inferred schema, single-threaded numerics."""

import dataclasses
from pathlib import Path

import pytest

LABEL = "churned"


@dataclasses.dataclass
class ChurnFiles:
    train: Path
    eval: Path
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
    train_frame = generate(3000, seed=11)
    eval_frame = generate(2000, seed=12)
    train_frame.to_parquet(root / "train.parquet", index=False)
    eval_frame.to_parquet(root / "eval.parquet", index=False)
    write_schema(train_frame, root / "schema.pbtxt")
    return ChurnFiles(root / "train.parquet", root / "eval.parquet", root / "schema.pbtxt", train_frame, eval_frame)
