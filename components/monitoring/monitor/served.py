"""Reading served rows: the collector's Parquet batches of a time window, from local storage or fsspec URLs.

The collector writes ``<sink>/date=YYYY-MM-DD/<batch>.parquet`` (each batch atomically; names starting with ``.``
or ``_`` are temporaries or markers and are skipped). Only the date partitions a window touches are listed and
read; rows are then kept by their ``time`` (a timestamp, or ISO 8601 text; no zone: UTC) within ``[start, end)``.
Every error names the file or the sink and what was expected. pandas, pyarrow and fsspec are imported inside.
"""

from __future__ import annotations

import dataclasses
import datetime

from kfp_tabular.components.common.errors import DataError

TIME = "time"
MODEL_SHA256 = "model_sha256"
SCORE = "score"
PREDICTION = "prediction"
#: Columns the collector adds to the features; never treated as features.
SERVICE_COLUMNS = (
    PREDICTION,
    SCORE,
    "model_name",
    MODEL_SHA256,
    "event_id",
    TIME,
    "inference_service",
    "namespace",
)


@dataclasses.dataclass
class Window:
    """The served rows of one window.

    Attributes:
        start: Start (inclusive, UTC).
        end: End (exclusive, UTC).
        rows: The rows (a pandas DataFrame), sorted by time.
        files: The batch files read (those of the partitions the window touches).
    """

    start: datetime.datetime
    end: datetime.datetime
    rows: object
    files: list[str]

    def describe(self) -> dict[str, str]:
        """Return the window as ISO 8601 text."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def _dates(start: datetime.datetime, end: datetime.datetime) -> list[str]:
    """Return the ``YYYY-MM-DD`` partitions a window ``[start, end)`` touches."""
    day, last = start.date(), (end - datetime.timedelta(microseconds=1)).date()
    found = []
    while day <= last:
        found.append(day.isoformat())
        day += datetime.timedelta(days=1)
    return found


def open_sink(uri: str):
    """Return ``(filesystem, root)`` of the sink; a sink that does not exist is a DataError naming it."""
    import fsspec

    from kfp_tabular.components.common.model_dir import normalize_uri

    try:
        fs, root = fsspec.core.url_to_fs(normalize_uri(uri))
        exists = fs.isdir(root)
    except (ImportError, ValueError, OSError) as exc:
        raise DataError(f"served data {uri!r}: cannot be opened ({type(exc).__name__}: {exc})") from exc
    if not exists:
        raise DataError(f"served data {uri!r}: not found (expected a directory of date=YYYY-MM-DD/*.parquet batches)")
    return fs, root.rstrip("/")


def list_batches(fs, root: str, start: datetime.datetime, end: datetime.datetime) -> list[str]:
    """Return the batch files of the partitions ``[start, end)`` touches, sorted."""
    files = []
    for date in _dates(start, end):
        folder = f"{root}/date={date}"
        try:
            names = fs.ls(folder, detail=False) if fs.isdir(folder) else []
        except FileNotFoundError:
            names = []
        for name in names:
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if base.endswith(".parquet") and not base.startswith((".", "_")):
                files.append(name)
    return sorted(files)


def _read_batch(fs, path: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with fs.open(path, "rb") as handle:
            return pq.read_table(handle)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: expected a Parquet batch of served rows ({exc})") from exc


def _times(column, source: str):
    """Return ``column`` as UTC timestamps; text that is not a time is a DataError naming the column."""
    import pandas as pd

    try:
        times = pd.to_datetime(column, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: column {TIME!r} must hold timestamps or ISO 8601 times ({exc})") from exc
    if times.isna().any():
        raise DataError(f"{source}: column {TIME!r} has {int(times.isna().sum())} row(s) without a time")
    return times


def read_window(uri: str, start: datetime.datetime, end: datetime.datetime, fs=None, root: str = "") -> Window:
    """Read the served rows with ``start <= time < end`` (possibly none: the caller decides what that means).

    Raises:
        DataError: The sink is missing, a batch is not Parquet, or lacks a ``time`` column, or a time is not one.
    """
    import pandas as pd
    import pyarrow as pa

    if fs is None:
        fs, root = open_sink(uri)
    files = list_batches(fs, root, start, end)
    frames = []
    for path in files:
        table = _read_batch(fs, path)
        if TIME not in table.column_names:
            raise DataError(f"{path}: no {TIME!r} column (columns: {', '.join(table.column_names)})")
        frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        frame[TIME] = _times(frame[TIME], path)
        keep = (frame[TIME] >= pd.Timestamp(start)) & (frame[TIME] < pd.Timestamp(end))
        if keep.any():
            frames.append(frame[keep])
    if frames:
        rows = pd.concat(frames, ignore_index=True).sort_values(TIME, kind="stable").reset_index(drop=True)
    else:
        rows = pd.DataFrame({TIME: pd.Series([], dtype="datetime64[ns, UTC]")})
    return Window(start=start, end=end, rows=rows, files=files)
