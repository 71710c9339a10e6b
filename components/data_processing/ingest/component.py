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
    drop_columns: list = [],
    id_columns: list = [],
    text_columns: list = [],
    datetime_columns: list = [],
    categorical_columns: list = [],
    positive_class: str = "",
    min_rows: int = 50,
) -> NamedTuple("Outputs", [("task", str), ("rows", int)]):
    """Read a CSV or Parquet table, decide the columns' roles and the label's task, and write a seeded split.

    The split is stratified by the label for classification. Both splits are written or neither is. Each
    decision taken for the user (a column dropped or expanded, the task, the positive class) is in both
    Datasets' metadata under ``decisions``.

    Args:
        train_data: The train split, one Parquet file (the feature columns ingest kept, and the label).
        eval_data: The eval split, one Parquet file.
        metrics: Row and column counts, the positive rate of a binary label, and the number of decisions.

    Returns:
        task: The resolved task, ``classification`` or ``regression``.
        rows: Number of rows read from the source.
    """
    from collections import namedtuple

    from kfp_tabular.components.common.decisions import METADATA_KEY, to_metadata
    from kfp_tabular.components.data_processing.ingest.core import ingest as run_ingest
    from kfp_tabular.components.data_processing.ingest.request import IngestRequest

    request = IngestRequest(
        data_uri=data_uri,
        label_column=label_column,
        eval_fraction=eval_fraction,
        seed=seed,
        task=task,
        drop_columns=drop_columns,
        id_columns=id_columns,
        text_columns=text_columns,
        datetime_columns=datetime_columns,
        categorical_columns=categorical_columns,
        positive_class=positive_class,
        min_rows=min_rows,
    )
    result = run_ingest(request, train_path=train_data.path, eval_path=eval_data.path)
    shared = {
        METADATA_KEY: to_metadata(result.decisions),
        "positive_class": result.positive_class,
        "source_columns": result.source_columns,
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
    metrics.log_metric("source_columns", len(result.source_columns))
    metrics.log_metric("decisions", len(result.decisions))
    metrics.log_metric("dropped_columns", sum(d.action == "dropped" for d in result.decisions))
    if result.positive_rate is not None:
        metrics.log_metric("positive_rate", result.positive_rate)
    outputs = namedtuple("Outputs", ["task", "rows"])
    return outputs(result.task, result.rows)
