"""Reading served rows: the collector's Parquet batches of a time window, from local storage or fsspec URLs.

The collector writes ``<sink>/date=YYYY-MM-DD/<batch>.parquet`` (``collector/sink.py``: its layout and reader are
the contract); only the date partitions a window touches are read, rows kept by ``time`` within ``[start, end)``.
This module adds what the monitor needs around the collector's reader: a missing sink and unreadable batches are
DataErrors naming them, and the rows come as pandas. pandas, pyarrow and fsspec are imported inside.
"""

from __future__ import annotations

import dataclasses
import datetime

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.monitoring.collector.sink import METADATA_COLUMNS

TIME = "time"
MODEL_SHA256 = "model_sha256"
SCORE = "score"
PREDICTION = "prediction"
#: Columns the collector adds to the features; never treated as features.
SERVICE_COLUMNS = METADATA_COLUMNS


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


def read_window(uri: str, start: datetime.datetime, end: datetime.datetime) -> Window:
    """Read the served rows with ``start <= time < end`` (possibly none: the caller decides what that means).

    The collector's own reader (``collector.sink.read_window``: its layout, types unified across batches as the
    writer does, by path so pyarrow 10 does not abort at exit), as a pandas DataFrame (integers nullable ``Int64``).

    Raises:
        DataError: The sink is missing, a batch is not Parquet, or has no ``time`` column.
    """
    import pandas as pd
    import pyarrow as pa

    from kfp_tabular.components.common.model_dir import normalize_uri
    from kfp_tabular.components.monitoring.collector import sink

    open_sink(uri)
    location = normalize_uri(uri)
    try:
        files = sink.batch_files(location, start, end)
        table = sink.read_window(location, start, end)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"served data {uri!r}: a batch could not be read as Parquet ({exc})") from exc
    except KeyError as exc:
        raise DataError(
            f"served data {uri!r}: a batch lacks the collector's columns ({exc}); expected {TIME!r}, "
            "'event_id', 'instance' and the features"
        ) from exc
    rows = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return Window(start=start, end=end, rows=rows, files=files)
