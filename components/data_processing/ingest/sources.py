"""Reading a source: one CSV or Parquet table from a local path or a URL, read once and hashed while read.

The source is read once, through fsspec: the bytes are hashed while they are copied into a local spool, and
the table is parsed from that copy, so the content hash always describes exactly the bytes that were parsed
(a file gives the same hash as a plain path, a ``file://`` URL or an object-store URL).

Remote sources: ``https://`` needs ``aiohttp``, ``s3://`` needs ``s3fs``, ``gs://`` needs ``gcsfs``. Endpoints
and credentials come from the environment (for S3-compatible stores: ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``, or fsspec's ``FSSPEC_S3_ENDPOINT_URL``).
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
from typing import IO, TYPE_CHECKING, Any

from kfp_tabular.components.common.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

#: File formats ``read_table`` understands, and the name endings that select them when ``file_format="auto"``.
FORMATS = ("csv", "parquet")
EXTENSIONS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: Sources up to this size are spooled in memory, larger ones in a temporary file.
_SPOOL_IN_MEMORY = 64 << 20
_CHUNK = 1 << 20
#: The pip package that provides each fsspec protocol we can name.
_PROTOCOL_PACKAGES = {
    "http": "aiohttp",
    "https": "aiohttp",
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "adl": "adlfs",
    "hf": "huggingface_hub",
}


def read_table(uri: str, file_format: str = "auto") -> pd.DataFrame:
    """Read a CSV or Parquet table from a local path or an fsspec URL.

    Args:
        uri: Local path or URL (``file://``, ``https://``, ``s3://``, ``gs://``, ...).
        file_format: ``csv``, ``parquet``, or ``auto`` to decide by the name ending (``.csv``, ``.csv.gz``,
            ``.parquet``, ``.pq``). Gzip-compressed CSV is recognised by its content.

    Returns:
        The table, with its column names exactly as stored.

    Raises:
        DataError: The file is missing, empty, not readable as the format, has no data rows, or has empty or
            duplicate column names; the message starts with the URI.
        ConfigError: ``file_format`` is not one of ``auto``, ``csv``, ``parquet``.
    """
    frame, _, _ = _load(uri, file_format)
    return frame


def read_columns(uri: str, file_format: str = "auto") -> list[str]:
    """Return a table's column names from its header alone, as :func:`read_table` would name them.

    A CSV's first line (gzip recognised by its content) or a Parquet file's schema (its footer) is read through
    fsspec; the rows are not read, so a large source costs a few kilobytes here, not a download.

    Args:
        uri: Local path or URL, as for :func:`read_table`.
        file_format: ``csv``, ``parquet`` or ``auto`` (by the name ending).

    Raises:
        DataError: The file is missing, empty, not readable as the format, or has empty or duplicate column
            names; the message starts with the URI, as :func:`read_table`'s does.
        ConfigError: ``uri`` is empty, or ``file_format`` is not one of ``auto``, ``csv``, ``parquet``.
    """
    _check_not_directory(_check_uri(uri))
    fmt = _format_of(uri, file_format)
    fs, path, protocol = _filesystem(uri)
    # A CSV header is read from the stream's start (one GET for http); Parquet needs the footer (range reads).
    options = {"block_size": 0} if protocol in ("http", "https") and fmt == "csv" else {}
    try:
        with fs.open(path, "rb", **options) as source:
            if fmt == "parquet":
                return _parquet_columns(uri, source)
            head = source.read(4)
            stream = io.BufferedReader(_Prefixed(head, source))
            return _csv_header(uri, stream, _csv_compression(uri, head))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - every backend has its own errors; name the URI and pass the cause on
        raise _source_error(uri, exc) from exc


def _load(uri: str, file_format: str) -> tuple[pd.DataFrame, str, int]:
    """Read ``uri`` once: return the parsed table, the sha256 of its bytes and their count."""
    _check_not_directory(_check_uri(uri))
    fmt = _format_of(uri, file_format)
    spool, digest, size = _fetch(uri)
    with spool:
        if size == 0:
            raise DataError(f"{uri}: the file is empty (0 bytes); expected a {fmt.upper()} table")
        spool.seek(0)
        frame = _parse_csv(uri, spool) if fmt == "csv" else _parse_parquet(uri, spool)
    return frame, digest, size


def _check_uri(uri: Any) -> str:
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"data URI: expected a path or URL, got {uri!r}")
    return uri


def _format_of(uri: str, file_format: str) -> str:
    if file_format in FORMATS:
        return file_format
    if file_format != "auto":
        raise ConfigError(f"file_format: expected one of auto, {', '.join(FORMATS)}, got {file_format!r}")
    from urllib.parse import urlsplit

    path = urlsplit(uri).path if "://" in uri else uri
    name = path.rsplit("/", 1)[-1].lower()
    for ending in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(ending):
            return EXTENSIONS[ending]
    raise DataError(
        f"{uri}: unsupported format: cannot tell it from the name; expected a name ending in "
        f"{', '.join(EXTENSIONS)}, or pass file_format='csv' or 'parquet'"
    )


def _filesystem(uri: str):
    """Return ``(filesystem, path, protocol)`` for ``uri``; a missing backend package is a DataError naming it."""
    import fsspec
    from fsspec.core import split_protocol

    protocol = split_protocol(uri)[0] or "file"
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as exc:
        package = _PROTOCOL_PACKAGES.get(protocol, protocol)
        raise DataError(
            f"{uri}: reading {protocol}:// URLs needs the {package!r} package, which is not installed "
            f"(pip install {package}): {exc}"
        ) from exc
    except ValueError as exc:
        raise DataError(f"{uri}: cannot open this URL: {exc}") from exc
    return fs, path, protocol


def _check_not_directory(uri: str) -> None:
    """Refuse a directory (local, ``file://``, or an object-store prefix) before its name is taken for a format.

    A directory of Parquet part files is not read as one table: the message lists a few of its entries, so the
    caller can name the one file meant. HTTP URLs are not checked (a web server has no directories to ask).
    """
    fs, path, protocol = _filesystem(uri)
    if protocol in ("http", "https"):
        return
    try:
        if not fs.isdir(path):
            return
        entries = sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False))
    except Exception:  # noqa: BLE001 - cannot tell: reading the file will say what is wrong
        return
    listing = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
    raise DataError(
        f"{uri}: is a directory; expected a single {', '.join(EXTENSIONS)} file (the directory holds: "
        f"{listing or 'nothing'}); give the path of one file"
    )


def _connection_problem(uri: str, exc: BaseException) -> str:
    """Say why a connection failed (refused, unknown host, timeout), or "" when ``exc`` is not about one.

    fsspec's HTTP filesystem reports every failed request as FileNotFoundError; the cause chain tells.
    """
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(uri).netloc or uri
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and all(cause is not c for c in chain):
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = {type(c).__name__ for c in chain}
    if any(isinstance(c, ConnectionRefusedError) for c in chain):
        return (
            f"the host {host} refused the connection (nothing listens on that host and port, or a firewall "
            "rejects it); check the URL's host and port"
        )
    for c in chain:
        if isinstance(c, socket.gaierror):
            return f"the host name in {host} cannot be resolved ({c.strerror or c}); check the URL's host"
    for c in chain:
        if isinstance(c, TimeoutError) or type(c).__name__ in ("ServerTimeoutError", "ConnectTimeoutError"):
            return f"the connection to {host} timed out ({c}); check that the host is reachable from here"
    generic = names & {"EndpointConnectionError", "ClientConnectorError", "ServerDisconnectedError"}
    if generic:
        found = next(c for c in chain if type(c).__name__ in generic)
        return f"cannot connect to {host} ({found}); check the URL or the endpoint setting"
    return ""


def _source_error(uri: str, exc: Exception) -> DataError:
    """Return the DataError for a source that could not be opened or read, naming the URI."""
    problem = _connection_problem(uri, exc)
    if problem:
        return DataError(f"{uri}: {problem}")
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{uri}: file not found")
    if isinstance(exc, IsADirectoryError):
        return DataError(f"{uri}: is a directory; expected a single CSV or Parquet file")
    if isinstance(exc, PermissionError):
        return DataError(f"{uri}: permission denied ({exc})")
    return DataError(f"{uri}: cannot read the file ({type(exc).__name__}: {exc})")


def _fetch(uri: str) -> tuple[IO[bytes], str, int]:
    """Copy the source into a spool while hashing it; return the spool, the hex sha256 and the size."""
    fs, path, protocol = _filesystem(uri)
    # Stream http(s) in one GET instead of range requests: not every web server honours Range.
    options = {"block_size": 0} if protocol in ("http", "https") else {}
    digest = hashlib.sha256()
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    size = 0
    try:
        with fs.open(path, "rb", **options) as source:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
    except Exception as exc:  # noqa: BLE001 - every backend has its own errors; name the URI and pass the cause on
        spool.close()
        raise _source_error(uri, exc) from exc
    return spool, digest.hexdigest(), size


def _check_names(uri: str, names: list[str]) -> None:
    empty = [str(i + 1) for i, name in enumerate(names) if not str(name).strip()]
    if empty:
        raise DataError(
            f"{uri}: empty column name at position {', '.join(empty)} (counting from 1); every column needs a "
            "name (a CSV written together with its index has an unnamed first column: write it with index=False)"
        )
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    duplicated = [name for name, count in seen.items() if count > 1]
    if duplicated:
        raise DataError(f"{uri}: duplicate column names: {', '.join(repr(n) for n in duplicated)}")


_FIELDS_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class _Prefixed(io.RawIOBase):
    """A read-only stream of ``head`` followed by the rest of ``rest`` (bytes already read put back in front)."""

    def __init__(self, head: bytes, rest: IO[bytes]):
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._head[: len(buffer)] if self._head else self._rest.read(len(buffer))
        self._head = self._head[len(data) :] if self._head else b""
        buffer[: len(data)] = data
        return len(data)


def _csv_compression(uri: str, head: bytes) -> str | None:
    """Return the compression of a CSV starting with ``head`` (gzip by its magic); refuse Parquet or nothing."""
    if not head:
        raise DataError(f"{uri}: the file is empty (0 bytes); expected a CSV table")
    if head[:4] == b"PAR1":
        raise DataError(
            f"{uri}: expected CSV but this is a Parquet file (it starts with PAR1); name it .parquet or pass "
            "file_format='parquet'"
        )
    return "gzip" if head[:2] == b"\x1f\x8b" else None


def _csv_errors(uri: str):
    """Turn pandas' and the decoders' errors while reading a CSV into DataErrors naming the URI."""
    import contextlib

    import pandas as pd

    @contextlib.contextmanager
    def translate():
        try:
            yield
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"{uri}: no columns: the file has no header line") from exc
        except pd.errors.ParserError as exc:
            match = _FIELDS_ERROR.search(str(exc))
            if match:
                expected, line, saw = match.groups()
                raise DataError(
                    f"{uri}: cannot parse CSV: line {line} has {saw} fields, expected {expected} like the header"
                ) from exc
            raise DataError(f"{uri}: cannot parse CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise DataError(f"{uri}: cannot parse CSV: the file is not UTF-8 text ({exc})") from exc
        except (OSError, EOFError) as exc:
            raise DataError(f"{uri}: cannot read the CSV ({type(exc).__name__}: {exc})") from exc

    return translate()


def _csv_header(uri: str, stream: IO[bytes], compression: str | None) -> list[str]:
    """Read and check the header of the CSV at the start of ``stream``: its first record, and nothing after it."""
    import gzip

    import pandas as pd

    with _csv_errors(uri):
        raw = gzip.GzipFile(fileobj=stream, mode="rb") if compression == "gzip" else stream
        record = b""
        while True:
            line = raw.readline()
            if not record and line and not line.strip():
                continue  # blank lines before the header, which pandas skips too
            record += line
            if not line or record.count(b'"') % 2 == 0:  # a quoted name may hold a line break
                break
    if b"\x00" in record:
        raise DataError(f"{uri}: cannot parse CSV: the header line holds NUL bytes (a binary file, not CSV text)")
    with _csv_errors(uri):
        header = pd.read_csv(io.BytesIO(record), header=None, nrows=1, dtype=str, na_filter=False, encoding="utf-8")
    names = [str(value) for value in header.iloc[0]]
    _check_names(uri, names)
    if len(names) == 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in names[0]:
                raise DataError(
                    f"{uri}: found a single column named {names[0]!r}: the file does not look comma-separated "
                    f"(its header contains {delimiter!r}); expected a comma-separated CSV"
                )
    return names


def _parse_csv(uri: str, spool: IO[bytes]) -> pd.DataFrame:
    import warnings

    import pandas as pd

    compression = _csv_compression(uri, spool.read(4))
    spool.seek(0)
    names = _csv_header(uri, spool, compression)
    spool.seek(0)
    with _csv_errors(uri), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        # index_col=False: rows longer than the header must not silently become an index.
        frame = pd.read_csv(spool, index_col=False, low_memory=False, compression=compression, encoding="utf-8")
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        line, fields = _first_long_line(spool, compression, len(names))
        raise DataError(
            f"{uri}: cannot parse CSV: line {line} has {fields} fields, expected {len(names)} like the header"
        )
    frame.columns = names
    if frame.empty:
        raise DataError(f"{uri}: has a header ({len(names)} columns) but no data rows")
    # pandas fills the missing fields of a short row with NaN: a short row leaves its last column empty.
    if len(names) > 1 and frame.iloc[:, -1].isna().any():
        short = _short_lines(spool, compression, len(names))
        if short:
            listed = ", ".join(f"line {line} has {fields}" for line, fields in short[:5])
            more = f" and {len(short) - 5} more" if len(short) > 5 else ""
            raise DataError(
                f"{uri}: cannot parse CSV: {len(short)} row(s) have fewer fields than the {len(names)} of the header "
                f"({listed}{more}); a short row is a truncated or shifted record, not missing values: fix or remove "
                "it (an empty field is written as a comma: a,,c)"
            )
    return frame


def _csv_records(spool: IO[bytes], compression: str | None):
    """Yield ``(line number, field count)`` of each non-blank record of the CSV in ``spool`` (header included)."""
    import csv
    import gzip
    import io

    spool.seek(0)
    raw = gzip.GzipFile(fileobj=spool, mode="rb") if compression == "gzip" else spool
    reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
    start = 1
    for record in reader:
        if record:  # pandas skips blank lines
            yield start, len(record)
        start = reader.line_num + 1


def _short_lines(spool: IO[bytes], compression: str | None, expected: int) -> list[tuple[int, int]]:
    """Return ``(line, fields)`` of every record with fewer than ``expected`` fields (where the record starts)."""
    return [(line, fields) for line, fields in _csv_records(spool, compression) if fields < expected]


def _first_long_line(spool: IO[bytes], compression: str | None, expected: int) -> tuple[int, int]:
    """Find the first record with more than ``expected`` fields: return its line number and field count."""
    for line, fields in _csv_records(spool, compression):
        if fields > expected:
            return line, fields
    return 0, expected


def _parquet_columns(uri: str, source: IO[bytes]) -> list[str]:
    """Return the columns :func:`_parse_parquet` gives a Parquet file, read from its schema (footer) alone.

    pandas stores a named index as columns, which the table brings back first; an unnamed one is dropped.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(source)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{uri}: not a readable Parquet file ({exc})") from exc
    names = list(schema.names)
    if not names:
        raise DataError(f"{uri}: the Parquet file has no columns")
    _check_names(uri, names)
    stored = [name for name in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(name, str)]
    named = [name for name in stored if not re.fullmatch(r"__index_level_\d+__", name)]
    columns = named + [name for name in names if name not in stored]
    _check_names(uri, columns)
    return columns


def _parse_parquet(uri: str, spool: IO[bytes]) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(spool)
        names = parquet.schema_arrow.names
        if not names:
            raise DataError(f"{uri}: the Parquet file has no columns")
        _check_names(uri, names)
        table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{uri}: not a readable Parquet file ({exc})") from exc
    try:
        frame = table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataError(f"{uri}: the Parquet file cannot be turned into a table ({exc})") from exc
    # pandas stores a named index as a column: bring it back as one; drop an unnamed (row number) index.
    named = [name for name in frame.index.names if name is not None]
    if named:
        try:
            frame = frame.reset_index(level=named)
        except ValueError as exc:
            raise DataError(f"{uri}: the stored index and a column share a name ({exc})") from exc
    frame = frame.reset_index(drop=True)
    _check_names(uri, [str(name) for name in frame.columns])
    if frame.empty:
        raise DataError(f"{uri}: the Parquet file has {len(frame.columns)} columns but no rows")
    return frame
