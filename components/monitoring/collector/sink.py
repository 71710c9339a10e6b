"""Parquet batches of served rows on fsspec storage: the layout, the atomic write, the read of a time window.

Layout (the contract the monitor and the monitoring pipeline read)::

    <sink>/date=YYYY-MM-DD/part-<YYYYmmddTHHMMSSffffffZ>-<8 hex>.parquet

one file per batch and UTC day of the rows' ``time`` (a batch across midnight is two files), named by its
first row's time, so names sort by time. Columns: the features (as sent), then ``prediction``, ``score``,
``model_name``, ``model_sha256``, ``event_id``, ``time`` (timestamp, microseconds, UTC), ``inference_service``,
``namespace``, ``endpoint``, ``instance`` (the row's position in its request). A column's type is the one kind
of value it holds in the batch: int64, float64 (ints and floats mixed), bool, string (text mixed with anything
else is written as text), or null (only nulls).

Atomic: a local file is written under a hidden temporary name in the same directory, flushed to disk and
renamed; an object store gets the whole object in one put (``pipe_file``). Readers (``read_window``) list only
``*.parquet`` names that do not start with ``.``, so nobody reads a partial batch.

``read_window`` runs with pyarrow 10 (the pipeline image) and newer (the serve image): the files use
Parquet format 2.6 types every pyarrow since 8 reads. Types that differ between batches (int64 in one,
float64 in another, null in a third) are unified as the writer does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "METADATA_COLUMNS",
    "BatchWriter",
    "batch_files",
    "read_window",
    "to_table",
]

#: The collector's columns after the features (``rows.RESERVED`` in the order written).
METADATA_COLUMNS = (
    "prediction",
    "score",
    "model_name",
    "model_sha256",
    "event_id",
    "time",
    "inference_service",
    "namespace",
    "endpoint",
    "instance",
)
_STRING_COLUMNS = ("model_name", "model_sha256", "event_id", "inference_service", "namespace", "endpoint")
FILE_METADATA_KEY = b"kfp_tabular.collector"


def _filesystem(sink: str, storage_options: Optional[Dict[str, Any]] = None):
    import fsspec

    fs, root = fsspec.core.url_to_fs(sink, **(storage_options or {}))
    return fs, root.rstrip("/")


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _kind_of(values: Sequence[Any]) -> str:
    kinds = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool):
            kinds.add("bool")
        elif isinstance(value, int):
            kinds.add("int" if -(2**63) <= value < 2**63 else "string")
        elif isinstance(value, float):
            kinds.add("float")
        else:
            kinds.add("string")
    return _merge_kinds(kinds)


def _merge_kinds(kinds: Iterable[str]) -> str:
    kinds = set(kinds) - {"null"}
    if not kinds:
        return "null"
    if len(kinds) == 1:
        return next(iter(kinds))
    if "string" in kinds:
        return "string"
    if "float" in kinds:
        return "float"
    return "int"  # bool and int


def _array(values: Sequence[Any], kind: str):
    import pyarrow as pa

    if kind == "null":
        return pa.nulls(len(values))
    if kind == "string":
        return pa.array(
            [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values], pa.string()
        )
    if kind == "float":
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kind == "int":
        return pa.array([None if v is None else int(v) for v in values], pa.int64())
    return pa.array(values, pa.bool_())


def to_table(rows: Sequence[Dict[str, Any]]):
    """Build the batch's Arrow table from rows (features first, then ``METADATA_COLUMNS``)."""
    import pyarrow as pa

    names: Dict[str, None] = {}
    for row in rows:
        for name in row:
            if name not in METADATA_COLUMNS:
                names.setdefault(name, None)
    columns, fields = [], []
    for name in [*names, *METADATA_COLUMNS]:
        values = [row.get(name) for row in rows]
        if name == "time":
            array = pa.array(values, pa.timestamp("us", tz="UTC"))
        elif name in _STRING_COLUMNS:
            array = _array(values, "string")
        elif name == "instance":
            array = _array(values, "int")
        elif name == "score":
            array = _array(values, "float")
        else:
            array = _array(values, _kind_of(values))
        columns.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _split_by_day(rows: Sequence[Dict[str, Any]]) -> List[Tuple[dt.date, List[Dict[str, Any]]]]:
    days: Dict[dt.date, List[Dict[str, Any]]] = {}
    for row in rows:
        days.setdefault(row["time"].astimezone(dt.timezone.utc).date(), []).append(row)
    return sorted(days.items())


class BatchWriter:
    """Write batches of rows under ``sink``, each file atomically (see the module docstring).

    Args:
        sink: A local path or fsspec URL (``s3://bucket/prefix``, ``gs://...``).
        storage_options: Passed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}`` for MinIO).
    """

    def __init__(self, sink: str, storage_options: Optional[Dict[str, Any]] = None):
        self.sink = sink
        self.fs, self.root = _filesystem(sink, storage_options)
        self.local = _is_local(self.fs)

    def write(self, rows: Sequence[Dict[str, Any]]) -> List[str]:
        """Write the rows (one file per UTC day of their ``time``); return the paths written."""
        written = []
        for day, day_rows in _split_by_day(rows):
            written.append(self._write_file(day, day_rows))
        return written

    def _write_file(self, day: dt.date, rows: List[Dict[str, Any]]) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = to_table(rows)
        times = [r["time"] for r in rows]
        first = min(times).astimezone(dt.timezone.utc)
        info = {"rows": len(rows), "first_time": first.isoformat(), "last_time": max(times).isoformat()}
        table = table.replace_schema_metadata({FILE_METADATA_KEY: json.dumps(info).encode()})
        name = f"part-{first:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}.parquet"
        directory = f"{self.root}/date={day.isoformat()}"
        path = f"{directory}/{name}"
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, version="2.6", compression="snappy")
        data = buffer.getvalue().to_pybytes()
        if self.local:
            os.makedirs(directory, exist_ok=True)
            temporary = f"{directory}/.{name}.{os.getpid()}.tmp"
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            _fsync_directory(directory)
        else:
            self.fs.pipe_file(path, data)  # one put of the whole object: it exists complete or not at all
        return path if self.local else f"{_protocol(self.fs)}://{path}"


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _protocol(fs) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def _as_utc(value: Optional[Any]) -> Optional[dt.datetime]:
    if value is None:
        return None
    if isinstance(value, str):
        from kfp_tabular.components.monitoring.collector.events import parse_time

        try:
            return parse_time(value)
        except ValueError:
            value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def batch_files(
    sink: str,
    start: Optional[Any] = None,
    end: Optional[Any] = None,
    storage_options: Optional[Dict[str, Any]] = None,
) -> List[str]:
    """List the batch files whose day overlaps ``[start, end)``, sorted by name (time); URLs for object stores.

    Args:
        sink: The collector's ``--sink``.
        start: Inclusive lower bound of the rows' ``time`` (datetime, date or ISO text; naive means UTC), or None.
        end: Exclusive upper bound, or None.
        storage_options: Passed to fsspec.
    """
    fs, root = _filesystem(sink, storage_options)
    start, end = _as_utc(start), _as_utc(end)
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    found = []
    for entry in sorted(entries):
        base = entry.rstrip("/").rsplit("/", 1)[-1]
        if not base.startswith("date="):
            continue
        try:
            day = dt.date.fromisoformat(base[5:])
        except ValueError:
            continue
        if start is not None and day < start.date():
            continue
        if end is not None and (day > end.date() or (day == end.date() and end.time() == dt.time(0))):
            continue
        for path in sorted(fs.ls(entry, detail=False)):
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                found.append(path if _is_local(fs) else f"{_protocol(fs)}://{path}")
    return found


def read_window(
    sink: str,
    start: Optional[Any] = None,
    end: Optional[Any] = None,
    *,
    columns: Optional[Sequence[str]] = None,
    storage_options: Optional[Dict[str, Any]] = None,
):
    """Read the served rows with ``start <= time < end`` from the collector's batches, as one Arrow table.

    Sorted by ``time``, ``event_id``, ``instance``. Columns missing from a batch (a feature no request in it
    sent) are null there. With no batch in the window: an empty table of the collector's own columns.

    Args:
        sink: The collector's ``--sink`` (local path or fsspec URL).
        start: Inclusive lower bound (datetime, date or ISO text; naive means UTC), or None for no bound.
        end: Exclusive upper bound, or None.
        columns: Only these columns (the others are not read), or None for all.
        storage_options: Passed to fsspec.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    fs, _ = _filesystem(sink, storage_options)
    start, end = _as_utc(start), _as_utc(end)
    tables = []
    for path in batch_files(sink, start, end, storage_options):
        # By path through the filesystem: pyarrow 10 (the pipeline image) reading a Python file object or a
        # buffer aborts the interpreter at exit now and then ("terminate called without an active exception").
        table = pq.read_table(fs._strip_protocol(path), filesystem=fs)
        mask = None
        times = table.column("time")
        if start is not None:
            mask = pc.greater_equal(times, pa.scalar(start, pa.timestamp("us", tz="UTC")))
        if end is not None:
            below = pc.less(times, pa.scalar(end, pa.timestamp("us", tz="UTC")))
            mask = below if mask is None else pc.and_(mask, below)
        if mask is not None:
            table = table.filter(mask)
        if table.num_rows:
            tables.append(table.replace_schema_metadata(None))
    if not tables:
        table = to_table([])
    else:
        table = _concat(tables)
        table = table.sort_by([("time", "ascending"), ("event_id", "ascending"), ("instance", "ascending")])
    if columns is not None:
        missing = [c for c in columns if c not in table.column_names]
        if missing and tables:
            raise KeyError(f"{sink}: no column {missing[0]!r} in the batches (columns: {table.column_names})")
        table = table.select([c for c in columns if c in table.column_names])
    return table


def _arrow_kind(data_type) -> str:
    import pyarrow as pa

    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_integer(data_type):
        return "int"
    if pa.types.is_floating(data_type):
        return "float"
    return "string"


def _concat(tables: List[Any]):
    import pyarrow as pa

    order: Dict[str, List[Any]] = {}
    for table in tables:
        for schema_field in table.schema:
            order.setdefault(schema_field.name, []).append(schema_field.type)
    target = {}
    for name, types in order.items():
        if name == "time" or all(t == types[0] for t in types):
            target[name] = types[0]
        else:
            kind = _merge_kinds(_arrow_kind(t) for t in types)
            target[name] = {"null": pa.null(), "bool": pa.bool_(), "int": pa.int64(), "float": pa.float64()}.get(
                kind, pa.string()
            )
    names = list(order)
    features = [n for n in names if n not in METADATA_COLUMNS]
    names = features + [n for n in METADATA_COLUMNS if n in order]
    schema = pa.schema([pa.field(n, target[n]) for n in names])
    unified = []
    for table in tables:
        arrays = []
        for schema_field in schema:
            if schema_field.name in table.column_names:
                column = table.column(schema_field.name)
                if column.type != schema_field.type:
                    column = column.cast(schema_field.type)
                arrays.append(column)
            else:
                arrays.append(pa.nulls(table.num_rows, schema_field.type))
        unified.append(pa.Table.from_arrays(arrays, schema=schema))
    return pa.concat_tables(unified)
