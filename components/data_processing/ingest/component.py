"""KFP component: read a CSV/Parquet table from a path or URL and split it into train and eval Datasets."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from kfp_tabular.components.common import params
from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.data_processing.ingest.request import IngestRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@params.document(IngestRequest)
def ingest(
    data_uri: str,
    label_column: str,
    train_data: Output[Dataset],
    eval_data: Output[Dataset],
    metrics: Output[Metrics],
    eval_fraction: float = 0.2,
    seed: int = 42,
    task: str = "auto",
) -> NamedTuple("Outputs", [("task", str), ("rows", int)]):
    """Read a CSV or Parquet table, check the label, and write a seeded train/eval split as Parquet.

    The split is stratified by the label for classification. Both splits are written or neither is.

    Args:
        train_data: The train split, one Parquet file.
        eval_data: The eval split, one Parquet file.
        metrics: Row and column counts, and the positive rate of a binary label.

    Returns:
        task: The resolved task, ``classification`` or ``regression``.
        rows: Number of rows read from the source.
    """
    from collections import namedtuple

    from kfp_tabular.components.data_processing.ingest.core import ingest as run_ingest
    from kfp_tabular.components.data_processing.ingest.request import IngestRequest

    request = IngestRequest(
        data_uri=data_uri, label_column=label_column, eval_fraction=eval_fraction, seed=seed, task=task
    )
    result = run_ingest(request, train_path=train_data.path, eval_path=eval_data.path)
    shared = {
        "columns": result.columns,
        "source_uri": result.source_uri,
        "content_hash": result.content_hash,
        "label_column": result.label_column,
        "task": result.task,
        "label_classes": result.label_classes,
    }
    train_data.metadata.update({"rows": result.train_rows, "split": "train", **shared})
    eval_data.metadata.update({"rows": result.eval_rows, "split": "eval", **shared})
    metrics.log_metric("rows", result.rows)
    metrics.log_metric("train_rows", result.train_rows)
    metrics.log_metric("eval_rows", result.eval_rows)
    metrics.log_metric("columns", len(result.columns))
    if result.positive_rate is not None:
        metrics.log_metric("positive_rate", result.positive_rate)
    outputs = namedtuple("Outputs", ["task", "rows"])
    return outputs(result.task, result.rows)
