"""Reading and writing TFDV protos: statistics (binary) and schemas (text), from local paths or fsspec URLs.

Every error names the file and the parameter it came from. TFDV itself is imported lazily by :func:`tfdv`:
importing it takes seconds and ~650 MB, and nothing that compiles a pipeline should pay for that.
"""

from __future__ import annotations

import os

from kfp_tabular.components.common.artifacts import atomic_path
from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.common.tfdv_schema import parse_schema


def tfdv():
    """Import TFDV (slow, heavy): only when statistics or validation are really needed.

    Its numeric-histogram code is replaced by vectorised functions that give the same protos
    (:mod:`.tfdv_histograms`): minutes saved on wide data.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow_data_validation

    from kfp_tabular.components.data_processing.validate import tfdv_histograms

    tfdv_histograms.install()
    return tensorflow_data_validation


def is_url(path: str) -> bool:
    """Tell ``scheme://...`` locations (True) from local paths (False)."""
    return "://" in path


def read_bytes(uri: str, what: str) -> bytes:
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


def parse_statistics(data: bytes, uri: str, what: str):
    """Parse a binary ``DatasetFeatureStatisticsList`` holding exactly one dataset of features."""
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
    """Load TFDV statistics (as ``compute_statistics`` writes them) from a local path or fsspec URL.

    Args:
        uri: Location of a binary ``DatasetFeatureStatisticsList``.
        what: How the location is named in error messages (e.g. the parameter name).

    Returns:
        The ``DatasetFeatureStatisticsList``.

    Raises:
        ConfigError: The location does not exist or cannot be read.
        DataError: The file is not such a proto with one dataset.
    """
    return parse_statistics(read_bytes(uri, what), uri, what)


def read_schema(uri: str):
    """Return ``(text, schema)`` of a curated schema: the text is passed on byte for byte, comments included."""
    data = read_bytes(uri, "schema_uri")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"schema {uri!r}: expected a UTF-8 text proto (pbtxt), got binary data") from exc
    schema = parse_schema(text, f"schema {uri!r}")
    if not schema.feature:
        raise DataError(f"schema {uri!r}: the schema defines no features")
    return text, schema


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
    return read_schema(uri)[1]


def to_text(message) -> str:
    """Render a proto (Schema, Anomalies) in text format."""
    from google.protobuf import text_format

    return text_format.MessageToString(message)


def write_binary(path: str, message) -> None:
    """Write a proto (statistics) as binary, atomically."""
    with atomic_path(path) as staged:
        staged.write_bytes(message.SerializeToString())
