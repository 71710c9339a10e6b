"""Data validation with TensorFlow Data Validation (TFDV): the logic behind the ``validate_data`` component.

What it does, TFX-style (StatisticsGen + SchemaGen/ImportSchemaGen + ExampleValidator + DistributionValidator):

1. statistics for the train and eval Parquet files (TFDV in memory, or a Beam pipeline on any runner);
2. a schema: the curated one from ``schema_uri`` (passed on unchanged) or one inferred from the train statistics,
   with the label kept out of the ``SERVING`` environment;
3. anomalies: train and eval statistics validated against the schema in the ``TRAINING`` environment, serving
   statistics (when given) in the ``SERVING`` environment;
4. drift (eval against the baseline statistics, or against train) and skew (train against serving) with TFDV's
   comparators: Jensen-Shannon divergence for numeric features, L-infinity distance for categorical ones;
5. reports: the merged TFDV Anomalies, a Markdown table, TFDV's statistics view and a self-contained HTML page that
   renders without network access.

Boolean columns: TFDV has no boolean type. Both statistics backends convert boolean columns to INT 0/1 (nulls stay
missing), so a boolean feature appears as an INT feature in statistics and schema whichever backend computed it.
Every integer column is widened to int64 and every float column to float64 the same way in both backends.

TFDV is imported only inside functions: importing it takes seconds and ~650 MB, and nothing that compiles a
pipeline should pay for that.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import tempfile
import uuid
from typing import Any, Iterable

from kfp_tabular.components.common.artifacts import atomic_path, write_text
from kfp_tabular.components.common.errors import ConfigError, DataError, ValidationFailed

logger = logging.getLogger(__name__)

BACKENDS = ("dataframe", "beam")
TRAINING = "TRAINING"
SERVING = "SERVING"

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

#: TFDV reasons that say "the distance is above the threshold": reported as drift/skew, not as anomalies.
_COMPARATOR_HIGH = frozenset(
    {
        "COMPARATOR_L_INFTY_HIGH",
        "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
        "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH",
    }
)
_METRIC_NAMES = {
    "L_INFTY": "l_infinity",
    "JENSEN_SHANNON_DIVERGENCE": "jensen_shannon_divergence",
    "NORMALIZED_ABSOLUTE_DIFFERENCE": "normalized_abs_difference",
}


# --------------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One TFDV anomaly reason.

    Attributes:
        split: Which statistics were validated: ``train``, ``eval`` or ``serving``.
        feature: Feature path (``a.b`` for nested features); ``(dataset)`` for dataset-level anomalies.
        kind: TFDV's reason type, e.g. ``SCHEMA_MISSING_COLUMN``.
        short_description: TFDV's short description, e.g. ``Column dropped``.
        description: TFDV's full description.
        severity: ``ERROR``, ``WARNING`` or ``UNKNOWN``.
    """

    split: str
    feature: str
    kind: str
    short_description: str
    description: str
    severity: str


@dataclasses.dataclass(frozen=True)
class DriftMeasurement:
    """One distance TFDV measured between two statistics for one feature.

    Attributes:
        comparison: ``eval vs train``, ``eval vs baseline`` (drift) or ``train vs serving`` (skew).
        kind: ``drift`` or ``skew``.
        feature: Feature path.
        metric: ``jensen_shannon_divergence``, ``l_infinity`` or ``normalized_abs_difference``.
        value: The measured distance.
        threshold: The comparator's threshold.
        drifted: ``value > threshold`` (TFDV's rule).
    """

    comparison: str
    kind: str
    feature: str
    metric: str
    value: float
    threshold: float
    drifted: bool


@dataclasses.dataclass
class ValidationResult:
    """What :func:`validate` found.

    Attributes:
        anomalies: Schema anomalies of every validated split (drift/skew distances above threshold are in ``drift``).
        drift: Every drift and skew measurement, above the threshold or not.
        schema_source: ``curated`` (read from ``schema_uri``) or ``inferred`` (from the train statistics).
        schema_uri: Where the curated schema came from; empty when inferred.
        num_examples: Rows per split (``train``, ``eval`` and, when given, ``serving``/``baseline``).
        num_features: Features per split in the statistics.
        schema_features: Number of features in the schema.
        label_column: The label feature.
    """

    anomalies: list[Anomaly]
    drift: list[DriftMeasurement]
    schema_source: str
    schema_uri: str
    num_examples: dict[str, int]
    num_features: dict[str, int]
    schema_features: int
    label_column: str

    @property
    def drifted(self) -> list[DriftMeasurement]:
        """The measurements above their threshold."""
        return [m for m in self.drift if m.drifted]

    @property
    def drifted_features(self) -> list[str]:
        """Sorted names of the features with drift or skew above the threshold."""
        return sorted({m.feature for m in self.drifted})

    @property
    def ok(self) -> bool:
        """True when there are no anomalies and no feature drifted or skewed."""
        return not self.anomalies and not self.drifted

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for a KFP ``Metrics`` artifact."""
        out: dict[str, float] = {
            "anomaly_count": float(len(self.anomalies)),
            "drifted_feature_count": float(len(self.drifted_features)),
            "schema_features": float(self.schema_features),
        }
        for split, count in self.num_examples.items():
            out[f"{split}_examples"] = float(count)
        for m in self.drift:
            out[f"{m.kind}_{m.feature}"] = max(out.get(f"{m.kind}_{m.feature}", 0.0), float(m.value))
        return out

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary."""
        return {
            "ok": self.ok,
            "anomalies": [dataclasses.asdict(a) for a in self.anomalies],
            "drift": [dataclasses.asdict(m) for m in self.drift],
            "drifted_features": self.drifted_features,
            "schema_source": self.schema_source,
            "schema_uri": self.schema_uri,
            "num_examples": dict(self.num_examples),
            "num_features": dict(self.num_features),
            "schema_features": self.schema_features,
            "label_column": self.label_column,
        }


# --------------------------------------------------------------------------------------------------------------
# Loading helpers
# --------------------------------------------------------------------------------------------------------------


def _tfdv():
    """Import TFDV (slow, heavy): only when statistics or validation are really needed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow_data_validation as tfdv

    return tfdv


def _is_url(path: str) -> bool:
    return "://" in path


def _read_bytes(uri: str, what: str) -> bytes:
    """Read a local path or fsspec URL; a missing or unreachable location is a ConfigError naming it."""
    import fsspec

    try:
        with fsspec.open(uri, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {uri!r}: not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{what} {uri!r}: is a directory, expected a file") from exc
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"{what} {uri!r}: cannot be read ({type(exc).__name__}: {exc})") from exc


def _parse_statistics(data: bytes, uri: str, what: str):
    """Parse a binary DatasetFeatureStatisticsList holding exactly one dataset."""
    from google.protobuf.message import DecodeError
    from tensorflow_metadata.proto.v0 import statistics_pb2

    stats = statistics_pb2.DatasetFeatureStatisticsList()
    try:
        stats.ParseFromString(data)
    except DecodeError as exc:
        raise DataError(f"{what} {uri!r}: expected a binary TFDV DatasetFeatureStatisticsList proto ({exc})") from exc
    if len(stats.datasets) != 1 or not stats.datasets[0].features:
        raise DataError(
            f"{what} {uri!r}: expected a binary TFDV DatasetFeatureStatisticsList with one dataset of features, "
            f"got {len(stats.datasets)} datasets"
        )
    return stats


def load_statistics(uri: str, what: str = "statistics"):
    """Load TFDV statistics written by :func:`compute_statistics` from a local path or fsspec URL.

    Args:
        uri: Location of a binary ``DatasetFeatureStatisticsList``.
        what: How the location is named in error messages (e.g. the parameter name).

    Returns:
        The ``DatasetFeatureStatisticsList``.

    Raises:
        ConfigError: The location does not exist or cannot be read.
        DataError: The file is not such a proto with one dataset.
    """
    return _parse_statistics(_read_bytes(uri, what), uri, what)


def _parse_schema_text(text: str, uri: str):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    try:
        text_format.Parse(text, schema)
    except text_format.ParseError as exc:
        raise DataError(f"schema {uri!r}: expected a TFDV Schema in text format (pbtxt): {exc}") from exc
    if not schema.feature:
        raise DataError(f"schema {uri!r}: the schema defines no features")
    return schema


def _read_schema(uri: str):
    """Return ``(text, schema)`` of a curated schema."""
    data = _read_bytes(uri, "schema_uri")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"schema {uri!r}: expected a UTF-8 text proto (pbtxt), got binary data") from exc
    return text, _parse_schema_text(text, uri)


def load_schema(uri: str):
    """Load a TFDV schema (text proto) from a local path or fsspec URL (``gs://``, ``s3://``, ...).

    Args:
        uri: Location of the schema ``.pbtxt``.

    Returns:
        The ``tensorflow_metadata`` ``Schema``.

    Raises:
        ConfigError: The location does not exist or cannot be read.
        DataError: The file is not a text-format Schema or defines no features.
    """
    return _read_schema(uri)[1]


def _schema_to_text(schema) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(schema)


def _write_proto_binary(path: str, message) -> None:
    with atomic_path(path) as staged:
        staged.write_bytes(message.SerializeToString())


# --------------------------------------------------------------------------------------------------------------
# Statistics
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


def _to_record_batches(table) -> list:
    """Beam step: one Parquet chunk (``pa.Table``) -> TFDV's RecordBatches of list arrays."""
    from tfx_bsl.arrow import table_util

    table = _normalize_arrow_table(table)
    return [table_util.CanonicalizeRecordBatch(batch) for batch in table.to_batches() if batch.num_rows]


def _read_parquet_table(data_path: str):
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not _is_url(data_path) and not os.path.isfile(data_path):
        raise DataError(f"{data_path}: Parquet data file not found")
    try:
        with fsspec.open(data_path, "rb") as handle:
            return pq.read_table(handle)
    except FileNotFoundError as exc:
        raise DataError(f"{data_path}: Parquet data file not found") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{data_path}: expected a Parquet file ({exc})") from exc


def _stats_options(schema=None):
    """TFDV statistics options; with a schema, INT features it marks categorical get categorical statistics."""
    tfdv = _tfdv()
    return tfdv.StatsOptions(schema=schema) if schema is not None else tfdv.StatsOptions()


def _dataframe_statistics(data_path: str, schema=None):
    import pandas as pd
    import pyarrow as pa

    tfdv = _tfdv()
    table = _normalize_arrow_table(_read_parquet_table(data_path))
    if table.num_rows == 0:
        raise DataError(f"{data_path}: the Parquet file has no rows")
    # Nullable Int64 keeps integer columns with nulls integers (numpy int64 would turn them into floats).
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return tfdv.generate_statistics_from_dataframe(frame, _stats_options(schema), n_jobs=1)


def _beam_option(args: list[str], name: str) -> str:
    """Value of ``--name=value`` or ``--name value`` in Beam pipeline arguments ("" when absent)."""
    flag = f"--{name}"
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return ""


def _beam_statistics(data_path: str, beam_pipeline_args: list[str], schema=None):
    import apache_beam as beam
    import pyarrow as pa
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    tfdv = _tfdv()
    if not _is_url(data_path):
        if not os.path.isfile(data_path):
            raise DataError(f"{data_path}: Parquet data file not found")
        try:
            rows = pq.read_metadata(data_path).num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{data_path}: expected a Parquet file ({exc})") from exc
        if rows == 0:
            raise DataError(f"{data_path}: the Parquet file has no rows")

    # Remote runners write the result where their workers can: under --temp_location when it is given.
    temp_root = _beam_option(beam_pipeline_args, "temp_location")
    local_tmp = None
    if not temp_root:
        local_tmp = tempfile.mkdtemp(prefix="tfdv-stats-")
        temp_root = local_tmp
    output = FileSystems.join(temp_root, f"tfdv-stats-{uuid.uuid4().hex}.pb")
    try:
        args = list(beam_pipeline_args)
        if not _beam_option(args, "runner"):
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
            import shutil

            shutil.rmtree(local_tmp, ignore_errors=True)
        elif FileSystems.exists(output):
            FileSystems.delete([output])
    from tensorflow_metadata.proto.v0 import statistics_pb2

    stats = statistics_pb2.DatasetFeatureStatisticsList()
    stats.ParseFromString(data)
    return stats


def _check_backend(backend: str, beam_pipeline_args) -> list[str]:
    if backend not in BACKENDS:
        raise ConfigError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    args = list(beam_pipeline_args or [])
    bad = [a for a in args if not isinstance(a, str)]
    if bad:
        raise ConfigError(f"beam_pipeline_args: expected a list of strings like '--runner=DirectRunner', got {bad!r}")
    if args and backend != "beam":
        logger.warning("beam_pipeline_args are ignored with backend=%r (only backend='beam' runs Beam)", backend)
    return args


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
            Dataflow, Flink, Spark, ...). Both give the same statistics.
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
    schema = _read_schema(schema_uri)[1] if schema_uri else None
    stats = _compute_statistics(data_path, backend, _check_backend(backend, beam_pipeline_args), schema)
    if output_path:
        _write_proto_binary(output_path, stats)
    return stats


def _compute_statistics(data_path: str, backend: str, args: list[str], schema=None):
    if backend == "beam":
        stats = _beam_statistics(data_path, args, schema)
    else:
        stats = _dataframe_statistics(data_path, schema)
    if len(stats.datasets) != 1 or stats.datasets[0].num_examples == 0:
        raise DataError(f"{data_path}: the Parquet file has no rows")
    return stats


# --------------------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------------------


def _feature_name(path_steps: Iterable[str]) -> str:
    return ".".join(path_steps)


def _check_comparable(current, other, uri: str, field: str) -> None:
    """Refuse statistics whose features were summarized differently (numeric vs categorical) from ours.

    A categorical INT feature of the schema has value counts only when the schema was given to statistics
    generation; comparing those with a numeric summary would report drift that is not there.
    """

    def kinds(stats):
        return {
            (_feature_name(f.path.step) if f.HasField("path") else f.name): f.WhichOneof("stats")
            for f in stats.datasets[0].features
        }

    ours, theirs = kinds(current), kinds(other)
    differ = sorted(name for name in ours.keys() & theirs.keys() if ours[name] != theirs[name])
    if differ:
        detail = ", ".join(f"{name} ({theirs[name]} there, {ours[name]} here)" for name in differ)
        raise DataError(
            f"{uri} ({field}): statistics not comparable with this run's for {detail}; compute them with the "
            "same schema (compute_statistics(..., schema_uri=...))"
        )


def _statistics_feature_names(stats) -> list[str]:
    return [_feature_name(f.path.step) if f.HasField("path") else f.name for f in stats.datasets[0].features]


def _schema_feature(schema, name: str):
    for feature in schema.feature:
        if feature.name == name:
            return feature
    return None


def infer_schema(statistics, label_column: str | None = None):
    """Infer a schema from (train) statistics, with TRAINING and SERVING environments.

    Both environments are default environments; the label is marked ``not_in_environment: "SERVING"``, so serving
    data without the label validates cleanly in ``SERVING`` while train/eval data must carry it (``TRAINING``).

    Args:
        statistics: A ``DatasetFeatureStatisticsList`` (one dataset).
        label_column: The label feature; ``None`` or empty for unlabeled data.

    Returns:
        The inferred ``Schema``.

    Raises:
        DataError: ``label_column`` is not a feature of the statistics.
    """
    tfdv = _tfdv()
    schema = tfdv.infer_schema(statistics)
    for env in (TRAINING, SERVING):
        if env not in schema.default_environment:
            schema.default_environment.append(env)
    if label_column:
        label = _schema_feature(schema, label_column)
        if label is None:
            raise DataError(
                f"label_column {label_column!r} is not a column of the data; columns: "
                f"{', '.join(_statistics_feature_names(statistics))}"
            )
        if SERVING not in label.not_in_environment:
            label.not_in_environment.append(SERVING)
    _mark_small_counts_categorical(schema, statistics)
    return schema


#: An INT feature whose values span at most this many integers is a code or a count, not a measurement.
MAX_CATEGORICAL_INT_RANGE = 20


def _mark_small_counts_categorical(schema, statistics) -> list[str]:
    """Mark INT features with a small integer range (counts, flags, codes) categorical; return their names.

    TFDV's Jensen-Shannon divergence bins a small count into equal-width buckets that follow the sample's
    maximum, so two samples of one distribution measured 0.17-0.28 at 800-2,000 rows (TFDV #216). A
    categorical INT is compared value by value with the L-infinity distance instead, which is stable.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    ranges = {}
    for feature in statistics.datasets[0].features:
        if feature.WhichOneof("stats") == "num_stats":
            name = _feature_name(feature.path.step) if feature.HasField("path") else feature.name
            ranges[name] = (feature.num_stats.min, feature.num_stats.max)
    marked = []
    for feature in schema.feature:
        low_high = ranges.get(feature.name)
        if feature.type != schema_pb2.INT or low_high is None:
            continue
        if low_high[1] - low_high[0] <= MAX_CATEGORICAL_INT_RANGE:
            feature.int_domain.is_categorical = True
            marked.append(feature.name)
    return marked


def _in_environment(feature, env: str) -> bool:
    if env in feature.not_in_environment:
        return False
    return not feature.in_environment or env in feature.in_environment


def _set_comparators(
    schema, numeric_threshold: float, categorical_threshold: float, skew: bool, label_column: str
) -> None:
    """Give every top-level feature a drift (and skew) comparator unless the schema already sets one.

    BYTES and categorical INT features get the L-infinity distance (TFDV's categorical comparator); other INT and
    FLOAT features get the
    approximate Jensen-Shannon divergence (L-infinity on numeric statistics is always 0, TFDV issue #147). A
    comparator the (curated) schema defines for a feature is kept: per-feature tuning wins over the defaults.
    Skew comparators are only set on features that exist in the SERVING environment, never on the label (it is
    not served, whatever the schema's environments say).
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    for feature in schema.feature:
        if feature.type == schema_pb2.STRUCT:
            continue
        served = skew and feature.name != label_column and _in_environment(feature, SERVING)
        fields = ["drift_comparator"] + (["skew_comparator"] if served else [])
        for field in fields:
            if feature.HasField(field):
                continue
            comparator = getattr(feature, field)
            if feature.type == schema_pb2.BYTES or (
                feature.type == schema_pb2.INT and feature.int_domain.is_categorical
            ):
                comparator.infinity_norm.threshold = categorical_threshold
            else:
                comparator.jensen_shannon_divergence.threshold = numeric_threshold


# --------------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------------


def _check_threshold(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected a number in (0, 1], got {value!r}") from exc
    if not 0.0 < value <= 1.0:
        raise ConfigError(
            f"{name}: expected a number in (0, 1] (Jensen-Shannon divergence and L-infinity distance lie in [0, 1]; "
            f"1.0 never flags), got {value!r}"
        )
    return value


def _environment(schema, env: str) -> str | None:
    return env if env in schema.default_environment else None


def _collect_anomalies(split: str, anomalies) -> list[Anomaly]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    type_name = anomalies_pb2.AnomalyInfo.Type.Name
    severity_name = anomalies_pb2.AnomalyInfo.Severity.Name
    found = []
    infos = [(key, info) for key, info in sorted(anomalies.anomaly_info.items())]
    if anomalies.HasField("dataset_anomaly_info"):
        infos.append(("(dataset)", anomalies.dataset_anomaly_info))
    for key, info in infos:
        feature = _feature_name(info.path.step) if info.path.step else key
        reasons = list(info.reason) or [None]
        for reason in reasons:
            if reason is None:
                kind, short, desc = "UNKNOWN_TYPE", info.short_description, info.description
            else:
                kind, short, desc = type_name(reason.type), reason.short_description, reason.description
            if kind in _COMPARATOR_HIGH:
                continue
            found.append(Anomaly(split, feature, kind, short, desc.strip(), severity_name(info.severity)))
    return found


def _collect_drift(anomalies, drift_comparison: str, skew_comparison: str) -> list[DriftMeasurement]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    metric_name = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name
    found = []
    for info in anomalies.drift_skew_info:
        feature = _feature_name(info.path.step)
        for kind, comparison, measurements in (
            ("drift", drift_comparison, info.drift_measurements),
            ("skew", skew_comparison, info.skew_measurements),
        ):
            for m in measurements:
                name = metric_name(m.type)
                found.append(
                    DriftMeasurement(
                        comparison=comparison,
                        kind=kind,
                        feature=feature,
                        metric=_METRIC_NAMES.get(name, name.lower()),
                        value=float(m.value),
                        threshold=float(m.threshold),
                        drifted=float(m.value) > float(m.threshold),
                    )
                )
    return found


def _merge_anomalies(per_split: dict, validation_schema):
    """One TFDV ``Anomalies`` proto for all splits: ``anomaly_info`` keys become ``<split>/<feature>``.

    ``drift_skew_info`` is concatenated: drift measurements come from the eval comparison, skew measurements from
    the train-vs-serving comparison. ``baseline`` is the schema the statistics were validated against (with the
    comparators), so the file alone says what was checked.
    """
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    merged = anomalies_pb2.Anomalies()
    merged.baseline.CopyFrom(validation_schema)
    merged.anomaly_name_format = anomalies_pb2.Anomalies.SERIALIZED_PATH
    for split, anomalies in per_split.items():
        for key, info in sorted(anomalies.anomaly_info.items()):
            merged.anomaly_info[f"{split}/{key}"].CopyFrom(info)
        if anomalies.HasField("dataset_anomaly_info"):
            # A single field in the proto: a dataset-level anomaly is kept as an anomaly_info entry of its split.
            merged.anomaly_info[f"{split}/(dataset)"].CopyFrom(anomalies.dataset_anomaly_info)
        merged.drift_skew_info.extend(anomalies.drift_skew_info)
        merged.data_missing = merged.data_missing or anomalies.data_missing
    return merged


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
        ``uri`` for the ``beam`` backend on a runner other than the local ones when ``uri`` is a URL Beam's
        file systems read (``gs://``, ``s3://``, ``hdfs://``, ``azfs://``), else ``path``.
    """
    runner = _beam_option(list(beam_pipeline_args or []), "runner").lower()
    if backend == "beam" and runner not in LOCAL_BEAM_RUNNERS and (uri or "").startswith(BEAM_URL_SCHEMES):
        return uri
    return path


def validate(
    train_path: str,
    eval_path: str,
    label_column: str,
    *,
    train_statistics_path: str | None = None,
    eval_statistics_path: str | None = None,
    schema_path: str | None = None,
    anomalies_path: str | None = None,
    anomalies_report_path: str | None = None,
    statistics_html_path: str | None = None,
    report_path: str | None = None,
    schema_uri: str = "",
    baseline_statistics_uri: str = "",
    serving_statistics_uri: str = "",
    numeric_drift_threshold: float = 0.1,
    categorical_drift_threshold: float = 0.1,
    fail_on_anomalies: bool = True,
    backend: str = "dataframe",
    beam_pipeline_args: list[str] | None = None,
) -> ValidationResult:
    """Validate train and eval data: statistics, schema, anomalies, drift, skew and reports.

    Every output path is optional (``None``: not written). All outputs are written, atomically, before the verdict:
    when validation fails the reports are there to read.

    Args:
        train_path: Train Parquet file.
        eval_path: Eval Parquet file.
        label_column: The label; must be a column of the train data (and a feature of a curated schema).
        train_statistics_path: Output: train statistics (binary ``DatasetFeatureStatisticsList``).
        eval_statistics_path: Output: eval statistics (binary).
        schema_path: Output: the schema (pbtxt): the curated file unchanged, or the inferred schema.
        anomalies_path: Output: TFDV ``Anomalies`` (pbtxt) of all splits, keys ``<split>/<feature>``.
        anomalies_report_path: Output: Markdown tables of anomalies and drift.
        statistics_html_path: Output: TFDV's train-vs-eval statistics view (loads its viewer from public CDNs).
        report_path: Output: self-contained HTML report (no scripts, no external resources).
        schema_uri: Curated schema (pbtxt) as a local path or fsspec URL; empty: infer from the train statistics.
        baseline_statistics_uri: Statistics to compare eval with for drift (e.g. the last production run's);
            empty: compare eval with train.
        serving_statistics_uri: Serving statistics: when given, train-vs-serving skew is measured and the serving
            statistics are validated in the SERVING environment.
        numeric_drift_threshold: Jensen-Shannon divergence above which an INT/FLOAT feature drifted, in (0, 1].
        categorical_drift_threshold: L-infinity distance above which a categorical feature drifted, in (0, 1].
            Both thresholds apply to features whose schema sets no comparator of its own.
        fail_on_anomalies: Raise :class:`ValidationFailed` on anomalies or drift (after writing the outputs);
            False: log a warning and return the result.
        backend: Statistics backend, ``dataframe`` or ``beam``.
        beam_pipeline_args: Beam pipeline options for the ``beam`` backend.

    Returns:
        The :class:`ValidationResult`.

    Raises:
        ConfigError: A parameter is out of range or names a location that does not exist.
        DataError: Input data or a referenced file is unreadable or malformed.
        ValidationFailed: Anomalies or drift were found and ``fail_on_anomalies`` is True.
    """
    numeric_drift_threshold = _check_threshold("numeric_drift_threshold", numeric_drift_threshold)
    categorical_drift_threshold = _check_threshold("categorical_drift_threshold", categorical_drift_threshold)
    args = _check_backend(backend, beam_pipeline_args)
    if not label_column:
        raise ConfigError("label_column: expected the name of the label column, got an empty string")

    curated_text, schema = ("", None)
    if schema_uri:
        curated_text, schema = _read_schema(schema_uri)
        if _schema_feature(schema, label_column) is None:
            raise ConfigError(
                f"schema_uri {schema_uri!r} defines no feature {label_column!r} (label_column); features: "
                f"{', '.join(f.name for f in schema.feature)}"
            )
    baseline = load_statistics(baseline_statistics_uri, "baseline_statistics_uri") if baseline_statistics_uri else None
    serving = load_statistics(serving_statistics_uri, "serving_statistics_uri") if serving_statistics_uri else None

    # A curated schema shapes the statistics too (categorical INT features get value counts for L-infinity).
    train = _compute_statistics(train_path, backend, args, schema)
    if label_column not in _statistics_feature_names(train):
        raise DataError(
            f"{train_path}: label column {label_column!r} not found; columns: "
            f"{', '.join(_statistics_feature_names(train))}"
        )
    if schema is None:
        schema = infer_schema(train, label_column)
        if any(f.int_domain.is_categorical for f in schema.feature):
            # Summarize the features the inferred schema calls categorical the same way a curated one would.
            train = _compute_statistics(train_path, backend, args, schema)
    evaluation = _compute_statistics(eval_path, backend, args, schema)
    if baseline is not None:
        _check_comparable(train, baseline, baseline_statistics_uri, "baseline_statistics_uri")
    if serving is not None:
        _check_comparable(train, serving, serving_statistics_uri, "serving_statistics_uri")
    train.datasets[0].name = "train"
    evaluation.datasets[0].name = "eval"

    tfdv = _tfdv()
    validation_schema = type(schema)()
    validation_schema.CopyFrom(schema)
    _set_comparators(
        validation_schema,
        numeric_drift_threshold,
        categorical_drift_threshold,
        skew=serving is not None,
        label_column=label_column,
    )
    training_env = _environment(validation_schema, TRAINING)
    drift_comparison = "eval vs baseline" if baseline is not None else "eval vs train"
    skew_comparison = "train vs serving"

    per_split = {
        "train": tfdv.validate_statistics(
            train, validation_schema, environment=training_env, serving_statistics=serving
        ),
        "eval": tfdv.validate_statistics(
            evaluation,
            validation_schema,
            environment=training_env,
            previous_statistics=baseline if baseline is not None else train,
        ),
    }
    if serving is not None:
        per_split["serving"] = tfdv.validate_statistics(
            serving, validation_schema, environment=_environment(validation_schema, SERVING)
        )

    anomalies = [a for split, proto in per_split.items() for a in _collect_anomalies(split, proto)]
    drift = [m for proto in per_split.values() for m in _collect_drift(proto, drift_comparison, skew_comparison)]
    num_examples = {"train": train.datasets[0].num_examples, "eval": evaluation.datasets[0].num_examples}
    num_features = {"train": len(train.datasets[0].features), "eval": len(evaluation.datasets[0].features)}
    for split, stats in (("baseline", baseline), ("serving", serving)):
        if stats is not None:
            num_examples[split] = stats.datasets[0].num_examples
            num_features[split] = len(stats.datasets[0].features)
    result = ValidationResult(
        anomalies=anomalies,
        drift=sorted(drift, key=lambda m: (m.kind, m.feature)),
        schema_source="curated" if schema_uri else "inferred",
        schema_uri=schema_uri,
        num_examples=num_examples,
        num_features=num_features,
        schema_features=len(schema.feature),
        label_column=label_column,
    )

    markdown = render_markdown(result)
    if train_statistics_path:
        _write_proto_binary(train_statistics_path, train)
    if eval_statistics_path:
        _write_proto_binary(eval_statistics_path, evaluation)
    if schema_path:
        write_text(schema_path, curated_text if schema_uri else _schema_to_text(schema))
    if anomalies_path:
        write_text(anomalies_path, _schema_to_text(_merge_anomalies(per_split, validation_schema)))
    if anomalies_report_path:
        write_text(anomalies_report_path, markdown)
    if statistics_html_path:
        write_text(statistics_html_path, _statistics_html(train, evaluation))
    if report_path:
        write_text(report_path, render_html_report(result, train, evaluation, schema))

    if not result.ok:
        message = failure_message(result, report_path)
        if fail_on_anomalies:
            logger.error("%s\n\n%s", message, markdown)
            exc = ValidationFailed(message)
            exc.result = result
            raise exc
        logger.warning("%s (fail_on_anomalies=False: continuing)", message)
    return result


def failure_message(result: ValidationResult, report_path: str | None = None) -> str:
    """One line per anomaly (split, feature, kind) and per drifted feature."""
    lines = [
        f"data validation failed: {len(result.anomalies)} anomalies, "
        f"{len(result.drifted_features)} features with drift or skew above the threshold"
    ]
    if result.anomalies:
        lines.append("anomalies:")
        lines += [f"  - {a.split} / {a.feature}: {a.kind} ({a.short_description})" for a in result.anomalies]
    if result.drifted:
        lines.append("drift/skew:")
        lines += [
            f"  - {m.feature}: {m.metric} {m.value:.4g} > {m.threshold:.4g} ({m.kind}, {m.comparison})"
            for m in result.drifted
        ]
    if report_path:
        lines.append(f"report: {report_path}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.4g}"


def _md_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _anomaly_rows(result: ValidationResult) -> list[list[Any]]:
    return [[a.split, a.feature, f"{a.kind} ({a.short_description})", a.description] for a in result.anomalies]


def _drift_rows(result: ValidationResult) -> list[list[Any]]:
    return [
        [m.feature, m.comparison, m.metric, _num(m.value), _num(m.threshold), "yes" if m.drifted else "no"]
        for m in result.drift
    ]


def render_markdown(result: ValidationResult) -> str:
    """Render the anomalies report: verdict, anomalies table, drift/skew table."""
    schema_line = f"curated, from `{result.schema_uri}`" if result.schema_source == "curated" else "inferred from train"
    examples = ", ".join(f"{split} {count}" for split, count in result.num_examples.items())
    lines = [
        "# Data validation",
        "",
        f"**{'PASSED' if result.ok else 'FAILED'}**: {len(result.anomalies)} anomalies, "
        f"{len(result.drifted_features)} features with drift or skew above the threshold.",
        "",
        f"Schema: {schema_line} ({result.schema_features} features). Examples: {examples}.",
        "",
        "## Anomalies",
        "",
    ]
    if result.anomalies:
        lines += _md_table(["split", "feature", "anomaly", "description"], _anomaly_rows(result))
    else:
        lines.append("No anomalies.")
    lines += ["", "## Drift and skew", ""]
    if result.drift:
        lines += _md_table(["feature", "comparison", "metric", "value", "threshold", "drifted"], _drift_rows(result))
    else:
        lines.append("No drift or skew comparison was made.")
    return "\n".join(lines) + "\n"


def _statistics_html(train, evaluation) -> str:
    from tensorflow_data_validation.utils import display_util

    fragment = display_util.get_statistics_html(train, evaluation, lhs_name="train", rhs_name="eval")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>TFDV statistics: train vs eval</title></head>'
        f"<body>\n{fragment}\n</body></html>\n"
    )


def _feature_rows(stats) -> tuple[list[list[str]], list[list[str]]]:
    """Per-feature summary rows of one dataset: (numeric rows, categorical rows)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    dataset = stats.datasets[0]
    total = dataset.num_examples or 1
    numeric, categorical = [], []
    for feature in dataset.features:
        name = _feature_name(feature.path.step) if feature.HasField("path") else feature.name
        kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
        if feature.HasField("num_stats"):
            s = feature.num_stats
            common = s.common_stats
            numeric.append(
                [
                    name,
                    kind,
                    str(common.num_non_missing),
                    f"{100.0 * common.num_missing / total:.1f}",
                    _num(s.mean),
                    _num(s.std_dev),
                    _num(s.min),
                    _num(s.median),
                    _num(s.max),
                    f"{100.0 * s.num_zeros / max(common.num_non_missing, 1):.1f}",
                ]
            )
        elif feature.HasField("string_stats"):
            s = feature.string_stats
            common = s.common_stats
            top = ", ".join(f"{v.value} ({int(v.frequency)})" for v in s.top_values[:5])
            categorical.append(
                [
                    name,
                    kind,
                    str(common.num_non_missing),
                    f"{100.0 * common.num_missing / total:.1f}",
                    str(s.unique),
                    top,
                ]
            )
    return numeric, categorical


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 1.6em; } h3 { font-size: 1.1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { padding: 0.6em 1em; border-radius: 4px; font-weight: bold; display: inline-block; }
.ok { background: #e3f4e1; color: #1d5e1a; } .fail { background: #fbe3e3; color: #8a1c1c; }
tr.drifted td { background: #fff3d6; } .muted { color: #666; }
"""


def _html_table(header: list[str], rows: list[list[Any]], numeric_from: int = 99, flag_col: int | None = None) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        css = ' class="drifted"' if flag_col is not None and row[flag_col] == "yes" else ""
        cells = "".join(
            f'<td class="num">{html.escape(str(c))}</td>' if i >= numeric_from else f"<td>{html.escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        out.append(f"<tr{css}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _schema_rows(schema) -> list[list[str]]:
    from tensorflow_metadata.proto.v0 import schema_pb2

    string_domains = {d.name: list(d.value) for d in schema.string_domain}
    rows = []
    for f in schema.feature:
        required = "yes" if f.presence.min_fraction >= 1.0 else "no"
        domain = ""
        if f.HasField("string_domain"):
            domain = ", ".join(f.string_domain.value)
        elif f.domain:
            domain = ", ".join(string_domains.get(f.domain, [])) or f.domain
        elif f.HasField("int_domain"):
            domain = f"int [{f.int_domain.min if f.int_domain.HasField('min') else ''}, "
            domain += f"{f.int_domain.max if f.int_domain.HasField('max') else ''}]"
        elif f.HasField("float_domain"):
            domain = f"float [{f.float_domain.min if f.float_domain.HasField('min') else ''}, "
            domain += f"{f.float_domain.max if f.float_domain.HasField('max') else ''}]"
        elif f.HasField("bool_domain"):
            domain = "bool (0/1)"
        envs = [e for e in list(schema.default_environment) if _in_environment(f, e)]
        rows.append([f.name, schema_pb2.FeatureType.Name(f.type), required, domain, ", ".join(envs)])
    return rows


def render_html_report(result: ValidationResult, train, evaluation, schema) -> str:
    """Render a self-contained HTML page (inline CSS, no scripts, no external resources) that renders offline."""
    e = html.escape
    verdict = "PASSED" if result.ok else "FAILED"
    schema_line = (
        f"curated, from <code>{e(result.schema_uri)}</code>"
        if result.schema_source == "curated"
        else "inferred from the train statistics"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Data validation report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Data validation report</h1>",
        f'<p><span class="verdict {"ok" if result.ok else "fail"}">{verdict}</span> '
        f"{len(result.anomalies)} anomalies, {len(result.drifted_features)} features with drift or skew above "
        "the threshold.</p>",
        f"<p>Label: <code>{e(result.label_column)}</code>. Schema: {schema_line} ({result.schema_features} "
        "features). Examples: "
        + ", ".join(f"{e(split)} {count}" for split, count in result.num_examples.items())
        + ".</p>",
        "<h2>Anomalies</h2>",
    ]
    if result.anomalies:
        parts.append(_html_table(["split", "feature", "anomaly", "description"], _anomaly_rows(result)))
    else:
        parts.append("<p>No anomalies.</p>")
    parts.append("<h2>Drift and skew</h2>")
    if result.drift:
        parts.append(
            _html_table(
                ["feature", "comparison", "metric", "value", "threshold", "drifted"],
                _drift_rows(result),
                numeric_from=3,
                flag_col=5,
            )
        )
    else:
        parts.append("<p>No drift or skew comparison was made.</p>")
    for split, stats in (("train", train), ("eval", evaluation)):
        numeric, categorical = _feature_rows(stats)
        parts.append(f"<h2>Features: {e(split)} ({stats.datasets[0].num_examples} examples)</h2>")
        if numeric:
            parts.append("<h3>Numeric</h3>")
            parts.append(
                _html_table(
                    ["feature", "type", "count", "missing %", "mean", "std", "min", "median", "max", "zeros %"],
                    numeric,
                    numeric_from=2,
                )
            )
        if categorical:
            parts.append("<h3>Categorical</h3>")
            parts.append(
                _html_table(["feature", "type", "count", "missing %", "unique", "top values (count)"], categorical, 2)
            )
    parts.append("<h2>Schema</h2>")
    parts.append(_html_table(["feature", "type", "required", "domain", "environments"], _schema_rows(schema)))
    parts.append(
        '<p class="muted">Booleans are INT features with values 0/1. Drift and skew: approximate Jensen-Shannon '
        "divergence for numeric features, L-infinity distance for categorical features (TFDV).</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
