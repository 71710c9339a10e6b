"""Shared fixtures: small churn datasets as Parquet, a TFDV-inferred schema, single-threaded numerics."""

import dataclasses
import os
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
def single_threaded():
    """OpenMP spin-waits make HistGradientBoosting ~15x slower on a busy 2-core machine: use one thread."""
    from threadpoolctl import threadpool_limits

    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # for subprocesses (kfp.local tasks, isolated loads)
    with threadpool_limits(limits=1):
        yield
    if previous is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = previous


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
