"""Statistics (TFX's StatisticsGen): TFDV statistics of one Parquet file, in memory or as a Beam pipeline.

Boolean columns: TFDV has no boolean type. Both backends convert boolean columns to INT 0/1 (nulls stay missing),
so a boolean feature appears as an INT feature in statistics and schema whichever backend computed it. Every
integer column is widened to int64 and every float column to float64 the same way in both backends.

Heavy packages (TFDV, Beam, pandas, pyarrow) are imported inside the functions.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from contextlib import contextmanager
from typing import Iterator

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.validate import tfdv_io

logger = logging.getLogger(__name__)

#: ``auto`` picks ``dataframe`` or ``beam`` by the data's estimated size in memory (``backend.choose``).
BACKENDS = ("auto", "dataframe", "beam")

#: Beam runners (lower case, with or without the "runner" suffix) that run on this machine and can therefore read
#: the task's local artifact files (Beam's StandardOptions.LOCAL_RUNNERS).
LOCAL_BEAM_RUNNERS = frozenset(
    name + suffix
    for name in ("", "direct", "bundlebaseddirect", "switchingdirect", "fnapi", "prism", "testdirect")
    for suffix in ("", "runner")
)
#: URL schemes Beam's file systems read (KFP's ``minio://`` is not one of them).
BEAM_URL_SCHEMES = ("gs://", "s3://", "hdfs://", "azfs://")
#: Runner used when the Beam arguments name none: the in-process engine DirectRunner runs batch pipelines on,
#: without DirectRunner's first attempt (Beam 2.72) to download the Prism runner from GitHub.
DEFAULT_BEAM_RUNNER = "FnApiRunner"
#: Quantile-histogram buckets of every numeric feature (TFDV's default is 10): drift is measured on them, and 10
#: buckets would hide a shift inside a decile and crush a heavy tail into one bucket.
QUANTILE_BUCKETS = 100


def feature_name(feature) -> str:
    """Name a feature of statistics: its path ``a.b`` (nested features) or its name."""
    return ".".join(feature.path.step) if feature.HasField("path") else feature.name


def feature_names(stats) -> list[str]:
    """Names of the features of the (single) dataset of a ``DatasetFeatureStatisticsList``."""
    return [feature_name(f) for f in stats.datasets[0].features]


def check_backend(backend: str, beam_pipeline_args, field: str = "backend") -> list[str]:
    """Check a backend choice and its Beam arguments; return the arguments as a list of strings.

    Numbers among the arguments (``["--num_workers", 3]``) are turned into strings; anything else that is not a
    string is a ConfigError. Beam arguments with the ``dataframe`` backend are ignored with a warning.

    Raises:
        ConfigError: ``field`` (the backend parameter's name) is not one of :data:`BACKENDS`, the arguments are
            not a list, or an argument is neither a string nor a number.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"{field}: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if beam_pipeline_args is not None and not isinstance(beam_pipeline_args, (list, tuple)):
        raise ConfigError(f"beam_pipeline_args: expected a list of strings, got {beam_pipeline_args!r}")
    args = list(beam_pipeline_args or [])
    bad = [a for a in args if isinstance(a, bool) or not isinstance(a, (str, int, float))]
    if bad:
        raise ConfigError(f"beam_pipeline_args: expected a list of strings like '--runner=DirectRunner', got {bad!r}")
    if args and backend == "dataframe":
        logger.warning("beam_pipeline_args are ignored with backend=%r (only backend='beam' runs Beam)", backend)
    return [str(a) for a in args]


def beam_option(args: list[str], name: str) -> str:
    """Value of ``--name=value`` or ``--name value`` in Beam pipeline arguments ("" when absent)."""
    flag = f"--{name}"
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return ""


def select_data_location(path: str, uri: str, backend: str, beam_pipeline_args: list[str] | None) -> str:
    """Choose what the statistics step reads: the task-local file, or the artifact URI for remote Beam workers.

    A KFP task sees its input artifact as a local file (``.path``). Workers of a remote Beam runner (Dataflow,
    Flink, Spark) do not; they need the artifact's URI (``gs://...``, ``s3://...``).

    Args:
        path: The artifact's local path.
        uri: The artifact's URI.
        backend: Statistics backend.
        beam_pipeline_args: Beam pipeline options (``--runner=...``).

    Returns:
        ``uri`` for the ``beam`` backend (or ``auto``, which picks ``beam`` for such a runner) on a runner other
        than the local ones when ``uri`` is a URL Beam's file systems read (``gs://``, ``s3://``, ``hdfs://``,
        ``azfs://``), else ``path``.
    """
    if remote_runner(beam_pipeline_args) and backend in ("beam", "auto") and (uri or "").startswith(BEAM_URL_SCHEMES):
        return uri
    return path


def remote_runner(beam_pipeline_args) -> str:
    """Return the runner the Beam arguments name when it is not one of the local ones (``""`` otherwise)."""
    runner = beam_option(list(beam_pipeline_args or []), "runner")
    return runner if runner.lower() not in LOCAL_BEAM_RUNNERS else ""


# --------------------------------------------------------------------------------------------------------------
# Reading Parquet
# --------------------------------------------------------------------------------------------------------------


def _normalize_arrow_table(table):
    """Give TFDV the column types it handles, identically for both backends.

    bool -> int64 (0/1, nulls stay null), every integer -> int64, every float -> float64, dictionary-encoded
    (pandas categorical) -> its value type; strings and binaries are kept. Other types (timestamps, lists,
    structs, ...) are dropped with a warning, as ``generate_statistics_from_dataframe`` would drop them silently.
    """
    import pyarrow as pa

    names, columns, dropped = [], [], []
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = kind.value_type
        try:
            if pa.types.is_boolean(kind) or pa.types.is_integer(kind):
                column = column.cast(pa.int64())
            elif pa.types.is_floating(kind):
                column = column.cast(pa.float64())
            elif not (
                pa.types.is_string(kind)
                or pa.types.is_large_string(kind)
                or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind)
            ):
                dropped.append(f"{name} ({kind})")
                continue
        except pa.ArrowInvalid as exc:
            raise DataError(f"column {name!r}: cannot be represented as int64/float64 for TFDV ({exc})") from exc
        names.append(name)
        columns.append(column)
    if dropped:
        logger.warning("columns with types TFDV cannot describe are left out of the statistics: %s", dropped)
    return pa.Table.from_arrays(columns, names=names)


@contextmanager
def _parquet_file(data_path: str, backend: str) -> Iterator:
    """Open a Parquet file (``pyarrow.parquet.ParquetFile``, footer read only); errors name the file.

    The ``beam`` backend opens URLs with Beam's file systems (what its runners read), the rest with fsspec.
    """
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not tfdv_io.is_url(data_path) and not os.path.isfile(data_path):
        raise DataError(f"{data_path}: Parquet data file not found")
    try:
        if backend == "beam" and tfdv_io.is_url(data_path):
            from apache_beam.io.filesystems import FileSystems

            opened = FileSystems.open(data_path)
        else:
            opened = fsspec.open(data_path, "rb").open()
        with opened as handle:
            yield pq.ParquetFile(handle)
    except FileNotFoundError as exc:
        raise DataError(f"{data_path}: Parquet data file not found") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{data_path}: expected a Parquet file ({exc})") from exc


def integer_ranges(data_path: str, backend: str = "dataframe") -> dict[str, tuple[int, int] | None]:
    """Smallest and largest value of every integer and boolean column, without a pass over the data.

    The ranges come from the Parquet footer's column-chunk statistics; only a column whose statistics are
    missing is read (that column alone). ``None``: the column holds no value.

    Args:
        data_path: Parquet file, as for :func:`generate_statistics`.
        backend: Statistics backend (decides how URLs are opened).

    Raises:
        DataError: The file is missing or not Parquet.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    def is_integer(kind) -> bool:
        kind = kind.value_type if pa.types.is_dictionary(kind) else kind
        return pa.types.is_boolean(kind) or pa.types.is_integer(kind)

    with _parquet_file(data_path, backend) as parquet:
        names = [field.name for field in parquet.schema_arrow if is_integer(field.type)]
        index = {parquet.metadata.schema.column(j).path: j for j in range(parquet.metadata.num_columns)}
        ranges: dict[str, tuple[int, int] | None] = {}
        unread = []
        for name in names:
            low_high = []
            for i in range(parquet.metadata.num_row_groups):
                group = parquet.metadata.row_group(i)
                stats = group.column(index[name]).statistics if name in index else None
                if stats is not None and stats.has_min_max:
                    low_high.append((int(stats.min), int(stats.max)))
                elif stats is None or stats.null_count != group.num_rows:
                    unread.append(name)  # values without statistics: read them
                    break
            else:
                ranges[name] = (min(lo for lo, _ in low_high), max(hi for _, hi in low_high)) if low_high else None
        if unread:
            table = _normalize_arrow_table(parquet.read(columns=unread))
            for name in unread:
                found = pc.min_max(table.column(name))
                ranges[name] = None if found["min"].as_py() is None else (found["min"].as_py(), found["max"].as_py())
    return ranges


def _read_parquet_table(data_path: str):
    with _parquet_file(data_path, "dataframe") as parquet:
        return parquet.read()


# --------------------------------------------------------------------------------------------------------------
# The two backends
# --------------------------------------------------------------------------------------------------------------


def _stats_options(schema=None):
    """TFDV statistics options: :data:`QUANTILE_BUCKETS` quantile buckets, the schema's categorical INT features.

    With a schema, INT features it marks categorical get categorical statistics (value counts).
    """
    tfdv = tfdv_io.tfdv()
    return tfdv.StatsOptions(schema=schema, num_quantiles_histogram_buckets=QUANTILE_BUCKETS)


def _dataframe_statistics(data_path: str, schema=None):
    import pandas as pd
    import pyarrow as pa

    table = _normalize_arrow_table(_read_parquet_table(data_path))
    if table.num_rows == 0:
        raise DataError(f"{data_path}: the Parquet file has no rows")
    # Nullable Int64 keeps integer columns with nulls integers (numpy int64 would turn them into floats).
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return tfdv_io.tfdv().generate_statistics_from_dataframe(frame, _stats_options(schema), n_jobs=1)


def _to_record_batches(table) -> list:
    """Beam step: one Parquet chunk (``pa.Table``) -> TFDV's RecordBatches of list arrays."""
    from tfx_bsl.arrow import table_util

    table = _normalize_arrow_table(table)
    return [table_util.CanonicalizeRecordBatch(batch) for batch in table.to_batches() if batch.num_rows]


def _beam_statistics(data_path: str, beam_pipeline_args: list[str], schema=None):
    import shutil

    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_metadata.proto.v0 import statistics_pb2

    tfdv = tfdv_io.tfdv()
    if not tfdv_io.is_url(data_path):
        with _parquet_file(data_path, "beam") as parquet:
            if parquet.metadata.num_rows == 0:
                raise DataError(f"{data_path}: the Parquet file has no rows")

    # Remote runners write the result where their workers can: under --temp_location when it is given.
    temp_root = beam_option(beam_pipeline_args, "temp_location")
    local_tmp = None
    if not temp_root:
        local_tmp = tempfile.mkdtemp(prefix="tfdv-stats-")
        temp_root = local_tmp
    output = FileSystems.join(temp_root, f"tfdv-stats-{uuid.uuid4().hex}.pb")
    try:
        args = list(beam_pipeline_args)
        if not beam_option(args, "runner"):
            args.append(f"--runner={DEFAULT_BEAM_RUNNER}")
        with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
            _ = (
                pipeline
                | "ReadParquet" >> beam.io.ReadFromParquetBatched(data_path)
                | "ToTFDVRecordBatches" >> beam.FlatMap(_to_record_batches)
                | "GenerateStatistics" >> tfdv.GenerateStatistics(_stats_options(schema))
                | "WriteStatistics" >> tfdv.WriteStatisticsToBinaryFile(output)
            )
        with FileSystems.open(output) as handle:
            data = handle.read()
    finally:
        if local_tmp:
            shutil.rmtree(local_tmp, ignore_errors=True)
        elif FileSystems.exists(output):
            FileSystems.delete([output])
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    stats.ParseFromString(data)
    return stats


def generate_statistics(data_path: str, backend: str = "dataframe", beam_pipeline_args=(), schema=None):
    """Statistics of one Parquet file with a backend and arguments already checked (:func:`check_backend`).

    One pass over the data. :func:`compute_statistics` is the checked entry point; ``validate`` calls this.

    Args:
        data_path: Parquet file: a local path, or (backend ``beam``) any location the Beam runner can read.
        backend: ``dataframe``, ``beam`` or ``auto`` (:func:`.backend.choose` picks one by size).
        beam_pipeline_args: Beam pipeline options (strings).
        schema: A ``Schema`` to shape the statistics: INT features it marks categorical get value counts.

    Raises:
        DataError: The file is missing, not Parquet, or has no rows.
    """
    if backend == "auto":
        from kfp_tabular.components.data_processing.validate import backend as backends

        backend = backends.choose(backend, [data_path], beam_pipeline_args=beam_pipeline_args).backend
    if backend == "beam":
        stats = _beam_statistics(data_path, list(beam_pipeline_args), schema)
    else:
        stats = _dataframe_statistics(data_path, schema)
    if len(stats.datasets) != 1 or stats.datasets[0].num_examples == 0:
        raise DataError(f"{data_path}: the Parquet file has no rows")
    return stats


def compute_statistics(
    data_path: str,
    backend: str = "dataframe",
    beam_pipeline_args: list[str] | None = None,
    output_path: str | None = None,
    schema_uri: str = "",
):
    """Compute TFDV statistics of one Parquet file (as written by the ingest component).

    Args:
        data_path: Parquet file: a local path, or (backend ``beam``) any location the Beam runner can read.
        backend: ``dataframe``: TFDV in memory, one process (fast for data that fits in memory);
            ``beam``: a Beam pipeline with ``beam_pipeline_args`` (in-process FnApiRunner unless the arguments name
            Dataflow, Flink, Spark, ...); ``auto``: ``dataframe`` when the file's estimated size in memory fits
            the memory budget, else ``beam`` (``backend.choose``). All give the same statistics.
        beam_pipeline_args: Beam pipeline options, e.g. ``["--runner=DataflowRunner", "--temp_location=gs://..."]``.
            Remote runners write their result under ``--temp_location``.
        output_path: When given, the statistics are also written there (binary proto, atomically).
        schema_uri: A schema to shape the statistics (INT features it marks categorical get value counts).
            Statistics that ``validate`` compares (baseline, serving) must be computed with the same schema.

    Returns:
        A ``DatasetFeatureStatisticsList`` with one dataset. Boolean columns appear as INT features (0/1).

    Raises:
        ConfigError: Unknown backend or malformed Beam arguments.
        DataError: The file is missing, not Parquet, or has no rows.
    """
    args = check_backend(backend, beam_pipeline_args)
    schema = tfdv_io.load_schema(schema_uri) if schema_uri else None
    stats = generate_statistics(data_path, backend, args, schema)
    if output_path:
        tfdv_io.write_binary(output_path, stats)
    return stats
