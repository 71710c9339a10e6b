"""Ingest: read a table, decide each column's role and the label's task, and write a seeded train/eval split.

The seams: :mod:`.sources` reads a source (once, hashed while read), :mod:`.labels` decides the task and the
positive class (standard library only), :mod:`.roles` decides which columns become features. This module checks
the rows and the label, applies the roles, splits (stratified for classification) and writes both Parquet files
atomically and together. Every choice taken for the user is a
:class:`~kfp_tabular.components.common.decisions.Decision` in the result.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.ingest import labels, roles
from kfp_tabular.components.data_processing.ingest.labels import MAX_AUTO_CLASSES, MIN_CLASS_ROWS, infer_task  # noqa: F401
from kfp_tabular.components.data_processing.ingest.request import IngestRequest
from kfp_tabular.components.data_processing.ingest.sources import _load, read_columns, read_table  # noqa: F401

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` read and wrote.

    Attributes:
        source_uri: The URI or path the table was read from, as given.
        content_hash: Hex sha256 of the source bytes (as stored, e.g. still gzip-compressed).
        rows: Rows in the source table.
        train_rows: Rows written to the train split.
        eval_rows: Rows written to the eval split.
        columns: Column names written to both splits, in source order (the label included; dropped columns
            left out, expanded dates in place of their column).
        label_column: Name of the label column.
        task: ``classification`` or ``regression``.
        label_classes: Sorted distinct label values for classification, else None.
        positive_rate: For a binary label, the share of rows of the positive class, else None.
        positive_class: The positive class of a binary label (``positive_class`` or the minority), else None.
        source_columns: The columns as read from the source.
        decisions: Every decision taken for the user (columns dropped, expanded, cast; the task; the positive
            class), in the order taken.
    """

    source_uri: str
    content_hash: str
    rows: int
    train_rows: int
    eval_rows: int
    columns: list[str]
    label_column: str
    task: str
    label_classes: list[Any] | None
    positive_rate: float | None = None
    positive_class: Any = None
    source_columns: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the result as a plain, JSON-serialisable dict."""
        return asdict(self)


def label_task(data_uri: str, label_column: str, task: str = "auto") -> labels.LabelTask:
    """Read a source's label column and decide its task as ingest will (to check thresholds before a run).

    Args:
        data_uri: Local path or URL, as for :func:`read_table`.
        label_column: The label's name.
        task: ``auto``, ``classification`` or ``regression``.

    Raises:
        DataError: The source cannot be read, has no such column, or the label does not allow the task.
    """
    frame = read_table(data_uri)
    if label_column not in frame.columns:
        available = ", ".join(map(str, frame.columns))
        raise DataError(f"{data_uri}: label column {label_column!r} not found; available columns: {available}")
    return _infer(data_uri, frame[label_column], label_column, task)


def ingest(request: IngestRequest, train_path: str | os.PathLike, eval_path: str | os.PathLike) -> IngestResult:
    """Read a table, check its rows and label, decide the columns' roles, and write a seeded train/eval split.

    Both splits are written as Parquet, atomically and together, and only after every check passed: when
    anything fails, neither file is written (an existing file at either path is left as it was).

    Args:
        request: What to read, the column marks, the label's task and positive class, and the split.
        train_path: File to write the train split to (Parquet).
        eval_path: File to write the eval split to (Parquet).

    Returns:
        An ``IngestResult`` describing the source, the two splits and the decisions taken.

    Raises:
        ConfigError: The two paths are the same file; a marked column or the positive class is not in the data.
        DataError: The table cannot be read; it has fewer than ``min_rows`` rows; the label column is missing,
            has missing values, mixes types, or has classes with fewer than 5 rows; a column holds huge values or
            mixes numbers and text; no feature is left; the message starts with the URI.
    """
    data_uri, label_column = request.data_uri, request.label_column
    fraction, seed = request.eval_fraction, request.seed
    train_path, eval_path = os.fspath(train_path), os.fspath(eval_path)
    if os.path.abspath(train_path) == os.path.abspath(eval_path):
        raise ConfigError(f"train_path and eval_path: expected two different files, both are {train_path!r}")

    frame, content_hash, _ = _load(data_uri, "auto")
    columns = [str(name) for name in frame.columns]
    if label_column not in frame.columns:
        raise DataError(f"{data_uri}: label column {label_column!r} not found; available columns: {', '.join(columns)}")
    if len(columns) < 2:
        raise DataError(f"{data_uri}: only the label column {label_column!r} is present; expected feature columns too")
    marks = roles.Marks.of(request)
    roles.check_marks(marks, columns, data_uri)
    rows = len(frame)
    if rows < request.min_rows:
        raise DataError(
            f"{data_uri}: too few rows: {rows}; at least {request.min_rows} are needed to train and evaluate a model "
            "(min_rows)"
        )
    label = frame[label_column]
    missing = label.isna().to_numpy()
    if missing.any():
        first = ", ".join(str(i + 1) for i in missing.nonzero()[0][:5])
        raise DataError(
            f"{data_uri}: label column {label_column!r} has {int(missing.sum())} missing values "
            f"(first at data rows {first}, counting from 1); drop or fill them before ingest"
        )
    decisions: list[Decision] = []
    decided = _infer(data_uri, label, label_column, request.task)
    resolved = decided.task
    if request.task == "auto":
        decisions.append(Decision("ingest", label_column, resolved, decided.reason))
    if decided.whole_floats:
        label = label.astype("int64")
        frame = frame.assign(**{label_column: label})

    # Round first: 0.07 * 100 is 7.000000000000001 in floating point and must give 7 eval rows, not 8.
    eval_rows = math.ceil(round(fraction * rows, 9))
    train_rows = rows - eval_rows
    if train_rows < 2 or eval_rows < 2:
        raise DataError(
            f"{data_uri}: {rows} rows with eval_fraction={fraction} give {train_rows} train and {eval_rows} eval "
            "rows; each split needs at least 2 rows"
        )
    classes, positive, positive_rate = None, None, None
    if resolved == "classification":
        classes = _check_classes(data_uri, label, label_column, rows, fraction, train_rows, eval_rows)
    counts = {labels.native(k): int(v) for k, v in label.value_counts().items()} if classes else {}
    chosen = labels.positive_class(counts, request.positive_class, label_column)
    if chosen:
        positive, why = chosen
        positive_rate = counts[positive] / rows
        decisions.append(Decision("ingest", label_column, "positive class", why))

    features, role_decisions = roles.assign_roles(frame, label_column, marks, data_uri)
    decisions += role_decisions
    stratify = features[label_column] if resolved == "classification" else None
    train, evaluation = _split(data_uri, features, stratify, eval_rows, seed)
    _write_pair(data_uri, train, train_path, evaluation, eval_path)
    return IngestResult(
        source_uri=data_uri,
        content_hash=content_hash,
        rows=rows,
        train_rows=len(train),
        eval_rows=len(evaluation),
        columns=[str(name) for name in features.columns],
        label_column=label_column,
        task=resolved,
        label_classes=classes,
        positive_rate=positive_rate,
        positive_class=positive,
        source_columns=columns,
        decisions=decisions,
    )


def _infer(uri: str, label: pd.Series, label_column: str, task: str) -> labels.LabelTask:
    """Decide the label's task from its distinct values (the rules of :mod:`.labels`), naming the source."""
    values = label if str(label.dtype) == "category" else label.dropna().unique()
    try:
        return infer_task(values, task, label_column)
    except DataError as exc:
        raise DataError(f"{uri}: {exc}") from exc


def _check_classes(
    uri: str, label: pd.Series, label_column: str, rows: int, fraction: float, train_rows: int, eval_rows: int
) -> list[Any]:
    """Check a classification label's classes (at least 2, each with MIN_CLASS_ROWS rows); return them sorted."""
    counts = label.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"{uri}: label column {label_column!r} has a single class {labels.native(counts.index[0])!r}; "
            "classification needs at least 2"
        )
    rare = counts[counts < MIN_CLASS_ROWS]
    if len(rare):
        listed = ", ".join(f"{labels.native(value)!r} ({count} rows)" for value, count in rare.head(10).items())
        raise DataError(
            f"{uri}: label column {label_column!r} has classes with fewer than {MIN_CLASS_ROWS} rows: {listed}; "
            f"each class needs at least {MIN_CLASS_ROWS} rows to be learned and evaluated"
        )
    if min(train_rows, eval_rows) < len(counts):
        raise DataError(
            f"{uri}: {rows} rows with eval_fraction={fraction} give {train_rows} train and {eval_rows} "
            f"eval rows, fewer than the {len(counts)} classes of {label_column!r}; a stratified split needs "
            "at least one row of every class in each split"
        )
    return labels.sorted_values(counts.index)


def _split(uri: str, frame: pd.DataFrame, stratify: pd.Series | None, eval_rows: int, seed: int):
    """Split the rows (scikit-learn's seeded, stratified ``train_test_split``); each split keeps the source order.

    The split is drawn on row positions (the same draw as on the frame: it depends on the row count and the
    labels only) and each side is taken once, in source order: one copy of the table, not two.
    """
    import numpy as np
    from sklearn.model_selection import train_test_split

    try:
        train_at, eval_at = train_test_split(
            np.arange(len(frame)), test_size=eval_rows, random_state=seed, shuffle=True, stratify=stratify
        )
    except ValueError as exc:
        raise DataError(f"{uri}: cannot split the rows into train and eval: {exc}") from exc
    # Keep the source order inside each split: a split is then a reproducible subset that is easy to trace back.
    return frame.take(np.sort(train_at)), frame.take(np.sort(eval_at))


def _write_pair(uri: str, train: pd.DataFrame, train_path: str, evaluation: pd.DataFrame, eval_path: str) -> None:
    """Write both splits, or neither: the eval file is staged inside the train file's staging."""
    from pathlib import Path

    from kfp_tabular.components.common.artifacts import atomic_path

    eval_in_place = False
    try:
        with atomic_path(train_path) as train_staged:
            _write_parquet(uri, train, train_staged)
            with atomic_path(eval_path) as eval_staged:
                _write_parquet(uri, evaluation, eval_staged)
            eval_in_place = True
    except BaseException:
        if eval_in_place:
            Path(eval_path).unlink(missing_ok=True)
        raise


#: Rows of one Parquet row group: about this many bytes of values (the unit a streaming reader holds in memory:
#: validate's ``beam`` backend reads a split one row group at a time) ...
ROW_GROUP_BYTES = 64 << 20
#: ... and between these many rows.
ROW_GROUP_ROWS = (10_000, 1 << 20)


def row_group_rows(frame: pd.DataFrame) -> int:
    """Rows per Parquet row group for this table: ~:data:`ROW_GROUP_BYTES` of values, within :data:`ROW_GROUP_ROWS`."""
    row_bytes = max(8 * len(frame.columns), 1)
    low, high = ROW_GROUP_ROWS
    return int(min(max(ROW_GROUP_BYTES // row_bytes, low), high))


def _write_parquet(uri: str, frame: pd.DataFrame, path: os.PathLike) -> None:
    import pyarrow as pa

    try:
        # Bounded row groups (pyarrow's default puts up to 64 Mi rows in one) let readers stream the file.
        frame.to_parquet(path, index=False, engine="pyarrow", row_group_size=row_group_rows(frame))
    except (pa.ArrowException, TypeError) as exc:
        raise DataError(f"{uri}: the table cannot be stored as Parquet: {exc}") from exc
