"""The model's inputs: the features a TFDV schema defines, and the coercion the pickled pipeline repeats.

INT and FLOAT features are numeric (an INT feature with a ``bool_domain`` is a 0/1 ``bool``), BYTES features are
categorical. The schema is read with ``tensorflow_metadata`` and protobuf only: training never imports
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import os
from pathlib import Path

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.common.tfdv_schema import parse_schema

logger = logging.getLogger(__name__)

#: What a missing categorical value becomes before one-hot encoding.
MISSING_CATEGORY = "__missing__"

#: The coercions, shared by the training data and the pickled pipeline (stdlib callables: picklable anywhere).
TO_FLOAT = operator.methodcaller("astype", "float64")
TO_STRING = operator.methodcaller("astype", "string")

# Lifecycle stages whose features TFDV does not expect in the data: they are not model inputs.
_SKIPPED_STAGES = ("DEPRECATED", "DISABLED", "PLANNED", "DEBUG_ONLY")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One model input as the schema defines it.

    Attributes:
        name: Column name.
        dtype: ``int``, ``float``, ``bool`` or ``string``.
        kind: ``numeric`` or ``categorical``.
    """

    name: str
    dtype: str
    kind: str


def read_schema(schema_path: str | os.PathLike):
    """Parse a TFDV Schema text proto (pbtxt) without importing TensorFlow or TFDV.

    Args:
        schema_path: Path of the ``.pbtxt`` file.

    Returns:
        A ``tensorflow_metadata.proto.v0.schema_pb2.Schema`` message.

    Raises:
        DataError: The file is missing, unreadable or not a Schema text proto.
    """
    try:
        text = Path(schema_path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{schema_path}: TFDV schema file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{schema_path}: could not read the TFDV schema as UTF-8 text ({exc})") from exc
    return parse_schema(text, str(schema_path))


def schema_features(schema_path: str | os.PathLike, label_column: str) -> list[FeatureSpec]:
    """List the model inputs a schema defines, in schema order, without the label.

    INT and FLOAT features are numeric (an INT feature with a ``bool_domain`` is a 0/1 ``bool``); BYTES
    features are categorical. Features in a DEPRECATED, DISABLED, PLANNED or DEBUG_ONLY lifecycle stage are
    not inputs.

    Args:
        schema_path: Path of the TFDV schema pbtxt.
        label_column: Name of the label feature, which is left out.

    Returns:
        The feature specs.

    Raises:
        DataError: The schema is unreadable, has a feature of another type (STRUCT, unknown) or defines no
            feature besides the label.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = read_schema(schema_path)
    features: list[FeatureSpec] = []
    for feature in schema.feature:
        if feature.name == label_column:
            continue
        stage = schema_pb2.LifecycleStage.Name(feature.lifecycle_stage)
        if stage in _SKIPPED_STAGES:
            logger.info("schema feature %r is %s: not a model input", feature.name, stage)
            continue
        type_name = schema_pb2.FeatureType.Name(feature.type)
        if type_name == "INT":
            spec = FeatureSpec(feature.name, "bool" if feature.HasField("bool_domain") else "int", "numeric")
        elif type_name == "FLOAT":
            spec = FeatureSpec(feature.name, "float", "numeric")
        elif type_name == "BYTES":
            spec = FeatureSpec(feature.name, "string", "categorical")
        else:
            raise DataError(
                f"{schema_path}: feature {feature.name!r} has type {type_name}; expected INT, FLOAT or BYTES "
                "(tabular features only)"
            )
        features.append(spec)
    if not features:
        raise DataError(f"{schema_path}: the schema defines no feature besides the label {label_column!r}")
    return features


def coerce_features(frame, features: list[FeatureSpec], source: str = "data"):
    """Return the feature columns in order, coerced the way the pickled pipeline coerces them.

    Numeric columns become float64 (bools 0/1, ``None`` NaN); categorical columns become Python strings with
    missing values as NaN.

    Args:
        frame: A DataFrame holding at least the feature columns.
        features: The feature specs, in model order.
        source: What the frame came from (a file name), for error messages.

    Returns:
        A new DataFrame with exactly the feature columns (float64 columns are shared with ``frame``, not copied).

    Raises:
        DataError: A feature column is missing, or a numeric column holds values that are not numbers or
            infinite values.
    """
    import numpy as np

    missing = [spec.name for spec in features if spec.name not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing feature column(s) {', '.join(map(repr, missing))} that the schema defines; "
            f"the file has {', '.join(map(str, frame.columns))}"
        )
    out = {}
    for spec in features:
        column = frame[spec.name]
        if spec.kind == "numeric":
            try:
                values = column.astype("float64", copy=False)  # TO_FLOAT, without copying a float64 column
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"{source}: column {spec.name!r} should be numeric ({spec.dtype} in the schema) but holds "
                    f"values that are not numbers ({exc})"
                ) from exc
            if np.isinf(values.to_numpy()).any():
                raise DataError(f"{source}: column {spec.name!r} holds infinite values; expected finite numbers")
            out[spec.name] = values
        else:
            text = TO_STRING(column)
            out[spec.name] = text.astype(object).where(text.notna(), np.nan)
    import pandas as pd

    return pd.DataFrame(out, index=frame.index, copy=False)


#: A categorical feature with more distinct training values than this travels without a closed domain.
MAX_DOMAIN_VALUES = 1000


def input_schema(frame, features: list[FeatureSpec]) -> list[dict]:
    """Describe each input as the server checks it: ``metadata.json["features"]`` (see common/model_dir.py).

    Each entry is the feature's name, dtype and kind plus what training saw: ``min``/``max`` of a numeric
    feature (finite values), the ``domain`` of a categorical one (its distinct values, when there are at most
    :data:`MAX_DOMAIN_VALUES`), ``required`` (the column must be in a request) and ``nullable`` (training
    saw missing values, so a null is no violation).

    Args:
        frame: The training features as :func:`coerce_features` returns them.
        features: The schema's features.
    """
    import numpy as np

    entries = []
    for spec in features:
        column = frame[spec.name]
        entry = {**dataclasses.asdict(spec), "required": True, "nullable": bool(column.isna().any())}
        present = column.dropna()
        if spec.kind == "numeric" and spec.dtype != "bool" and len(present):
            values = present.to_numpy(dtype="float64")
            finite = values[np.isfinite(values)]
            if len(finite):
                entry["min"], entry["max"] = float(finite.min()), float(finite.max())
        elif spec.kind == "categorical":
            distinct = present.astype(str).unique()
            if 0 < len(distinct) <= MAX_DOMAIN_VALUES:
                entry["domain"] = sorted(str(value) for value in distinct)
        entries.append(entry)
    return entries
