"""Train a scikit-learn model on a Parquet dataset whose input is defined by a TFDV schema.

The model is one scikit-learn ``Pipeline`` whose pickle references only scikit-learn, pandas, numpy and the
standard library, so it loads wherever scikit-learn 1.5 is installed (KServe's sklearn runtime) without this
package::

    frame  FunctionTransformer(functools.partial(pandas.DataFrame, columns=feature_order))
    prep   ColumnTransformer, by column name:
             numeric      astype("float64") -> SimpleImputer(median) -> StandardScaler
             categorical  astype("string") -> SimpleImputer(<NA> -> "__missing__") -> OneHotEncoder(ignore unknown)
    model  the estimator

The first step turns ordered rows (lists, arrays: KServe V1 ``instances``) and records into named columns and
re-selects a DataFrame's columns by name, so every input shape gives the same predictions. The dtype
coercion lives inside the pipeline too: JSON gives Python ints, bools, strings and ``None``, and the model
treats them exactly like the typed columns it was trained on (bools become 0/1, ``None`` is missing).

The schema is read with ``tensorflow_metadata`` and protobuf only: training never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import logging
import math
import operator
import os
import re
from pathlib import Path
from typing import Any

from kfp_tabular.components.common.artifacts import atomic_path, read_parquet, sha256_file
from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.common.model_dir import METADATA_FILE, MODEL_FILE
from kfp_tabular.components.common.tfdv_schema import parse_schema
from kfp_tabular.components.training.train.request import ESTIMATORS, TASKS, TrainRequest  # noqa: F401 (named here)

logger = logging.getLogger(__name__)

#: task="auto" calls an integer label with at most this many distinct values a classification target.
MAX_AUTO_CLASSES = 20
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


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        metadata: The contents of ``metadata.json`` in the model directory.
        metrics: Metrics of the fitted model on its own training data.
        model_sha256: sha256 of ``model.joblib``.
        model_dir: The model directory that was written.
    """

    metadata: dict
    metrics: dict
    model_sha256: str
    model_dir: str


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
        A new DataFrame with exactly the feature columns.

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
                values = TO_FLOAT(column)
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

    return pd.DataFrame(out, index=frame.index)


def resolve_task(labels, task: str, label_column: str, source: str) -> str:
    """Decide classification or regression for a label column.

    ``auto`` means classification for bool, string or categorical labels and for integer labels with at
    most 20 distinct values, regression otherwise.

    Args:
        labels: The label column.
        task: ``auto``, ``classification`` or ``regression`` (checked by :class:`TrainRequest`).
        label_column: Its name, for error messages.
        source: The data file, for error messages.

    Raises:
        DataError: The label cannot be used for the task asked for.
    """
    import pandas as pd
    from pandas.api import types

    is_text = (
        types.is_object_dtype(labels) or types.is_string_dtype(labels) or isinstance(labels.dtype, pd.CategoricalDtype)
    )
    is_bool = types.is_bool_dtype(labels) and not is_text
    is_int = types.is_integer_dtype(labels) and not is_bool
    is_float = types.is_float_dtype(labels)
    if task == "auto":
        if is_bool or is_text:
            return "classification"
        if is_int:
            return "classification" if labels.nunique() <= MAX_AUTO_CLASSES else "regression"
        if is_float:
            return "regression"
        raise DataError(f"{source}: label column {label_column!r} has dtype {labels.dtype}; cannot infer the task")
    if task == "classification":
        if is_float and not (labels == labels.round()).all():
            raise DataError(
                f"{source}: label column {label_column!r} holds non-integer floats; classification needs "
                "discrete labels (use task='regression')"
            )
        return task
    if not (is_int or is_float or is_bool):
        raise DataError(
            f"{source}: label column {label_column!r} has dtype {labels.dtype}; regression needs a numeric label"
        )
    return task


def _estimator_table():
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    return {
        ("logistic_regression", "classification"): (LogisticRegression, {"max_iter": 1000}),
        ("logistic_regression", "regression"): (Ridge, {}),
        ("hist_gradient_boosting", "classification"): (HistGradientBoostingClassifier, {}),
        ("hist_gradient_boosting", "regression"): (HistGradientBoostingRegressor, {}),
        ("random_forest", "classification"): (RandomForestClassifier, {}),
        ("random_forest", "regression"): (RandomForestRegressor, {}),
    }


def make_estimator(request: TrainRequest, task: str):
    """Build an unfitted estimator and return it with the hyperparameters it was given.

    Hyperparameters coming through KFP arrive as JSON, where every number may be a float: a float with an
    integral value is made an int when the estimator rejects the float (``max_depth=3.0`` -> 3).

    Args:
        request: The estimator, its hyperparameters (constructor arguments that override the defaults) and the
            seed (``random_state`` unless the hyperparameters set one).
        task: ``classification`` or ``regression``.

    Returns:
        ``(estimator, effective_hyperparameters)``: our defaults, the seed and the overrides.

    Raises:
        ConfigError: Unknown hyperparameter name, or an invalid value.
    """
    from sklearn.utils._param_validation import InvalidParameterError

    estimator, hyperparameters = request.estimator, request.hyperparameters
    cls, defaults = _estimator_table()[(estimator, task)]
    valid = cls().get_params(deep=False)
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise ConfigError(
            f"hyperparameters: unknown hyperparameter(s) {', '.join(map(repr, unknown))} for {estimator} "
            f"({cls.__name__}); valid: {', '.join(sorted(valid))}"
        )
    params = {**defaults, "random_state": request.seed, **hyperparameters}
    model = cls(**params)
    for _ in range(len(params) + 1):
        try:
            model._validate_params()
            break
        except InvalidParameterError as exc:
            match = re.search(r"The '(\w+)' parameter", str(exc))
            name = match.group(1) if match else None
            value = params.get(name)
            if isinstance(value, float) and value.is_integer():
                params[name] = int(value)
                model.set_params(**{name: params[name]})
                continue
            raise ConfigError(f"hyperparameters: invalid value for {estimator} ({cls.__name__}): {exc}") from exc
    return model, params


def build_pipeline(features: list[FeatureSpec], estimator):
    """Assemble the (unfitted) model pipeline for the given features and estimator.

    Args:
        features: The feature specs, in model order.
        estimator: An unfitted scikit-learn estimator.

    Returns:
        A ``sklearn.pipeline.Pipeline`` with steps ``frame``, ``prep`` and ``model``.
    """
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    order = [spec.name for spec in features]
    numeric = [spec.name for spec in features if spec.kind == "numeric"]
    categorical = [spec.name for spec in features if spec.kind == "categorical"]
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("coerce", FunctionTransformer(TO_FLOAT, validate=False, feature_names_out="one-to-one")),
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("coerce", FunctionTransformer(TO_STRING, validate=False, feature_names_out="one-to-one")),
                        (
                            "impute",
                            SimpleImputer(missing_values=pd.NA, strategy="constant", fill_value=MISSING_CATEGORY),
                        ),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    frame = FunctionTransformer(
        functools.partial(pd.DataFrame, columns=order), validate=False, feature_names_out="one-to-one"
    )
    return Pipeline(
        [("frame", frame), ("prep", ColumnTransformer(transformers, sparse_threshold=0.0)), ("model", estimator)]
    )


def _fit(pipeline, features_frame, labels, estimator_name: str, hyperparameters: dict) -> None:
    """Fit; a parameter the estimator rejects (alone or in combination) is a ConfigError."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        pipeline.fit(features_frame, labels)
    except InvalidParameterError as exc:
        raise ConfigError(f"hyperparameters: invalid value for {estimator_name}: {exc}") from exc
    except ValueError as exc:
        # The data was checked and coerced before: with overrides, a ValueError here is their combination
        # (e.g. penalty="l1" with the default lbfgs solver).
        if not hyperparameters:
            raise
        given = json.dumps(hyperparameters, default=str)
        raise ConfigError(f"hyperparameters: {estimator_name} rejected {given} while fitting: {exc}") from exc


def training_metrics(pipeline, features_frame, labels, task: str) -> dict:
    """Metrics of a fitted pipeline on the data it was trained on (a sanity check, not an evaluation)."""
    import numpy as np
    from sklearn import metrics

    result: dict[str, Any] = {"rows": int(len(labels))}
    if task == "classification":
        classes = list(pipeline.classes_)
        proba = pipeline.predict_proba(features_frame)
        predicted = np.asarray(pipeline.classes_)[proba.argmax(axis=1)]
        result["accuracy"] = float(metrics.accuracy_score(labels, predicted))
        result["log_loss"] = float(metrics.log_loss(labels, proba, labels=classes))
        if len(classes) == 2:
            result["roc_auc"] = float(metrics.roc_auc_score(labels == classes[-1], proba[:, -1]))
        else:
            result["roc_auc"] = float(
                metrics.roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=classes)
            )
    else:
        predicted = pipeline.predict(features_frame)
        result["rmse"] = float(math.sqrt(metrics.mean_squared_error(labels, predicted)))
        result["mae"] = float(metrics.mean_absolute_error(labels, predicted))
        result["r2"] = float(metrics.r2_score(labels, predicted))
    return result


def _prepare_labels(labels, task: str):
    from pandas.api import types

    if task == "regression":
        return labels.astype("float64")
    if types.is_bool_dtype(labels):
        return labels.astype(bool)
    if types.is_float_dtype(labels) or types.is_integer_dtype(labels):
        return labels.astype("int64")
    return labels.astype(str).astype(object)


def _jsonable(value):
    """Python scalars for numpy scalars (class labels, hyperparameters), so json.dumps accepts them."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    return value


def train(
    request: TrainRequest,
    train_path: str | os.PathLike,
    schema_path: str | os.PathLike,
    model_dir: str | os.PathLike,
    source_data_hash: str | None = None,
    source_data_uri: str | None = None,
) -> TrainResult:
    """Fit the model pipeline and write the model directory (``model.joblib`` + ``metadata.json``).

    The directory is written atomically: on any error nothing is left at ``model_dir``. ``metadata.json``
    records ``training_data_hash``, the sha256 of ``train_path`` (the exact file the model was fit on), and,
    separately, where that split came from: ``source_data_hash`` and ``source_data_uri`` (ingest's
    ``content_hash`` and ``source_uri``), null when not known.

    Args:
        request: The label column, estimator, hyperparameters (names checked against ``get_params()``), task
            and seed.
        train_path: Parquet file with the feature columns and the label.
        schema_path: TFDV schema pbtxt that defines the features (the label, by name, is left out).
        model_dir: Directory to write.
        source_data_hash: sha256 of the source bytes the split was made from, when known.
        source_data_uri: Where that source was read from, when known.

    Returns:
        The metadata, the training metrics and the model's sha256.

    Raises:
        ConfigError: Unknown hyperparameter, or an invalid hyperparameter value.
        DataError: Unreadable schema or data, features missing from the data, unusable labels.
    """
    import joblib
    import sklearn

    label_column, estimator = request.label_column, request.estimator
    features = schema_features(schema_path, label_column)
    frame = read_parquet(train_path, "training dataset")
    source = str(train_path)
    if label_column not in frame.columns:
        raise DataError(
            f"{source}: label column {label_column!r} not found; the file has {', '.join(map(str, frame.columns))}"
        )
    missing_labels = int(frame[label_column].isna().sum())
    if missing_labels:
        raise DataError(f"{source}: label column {label_column!r} has {missing_labels} missing value(s)")
    if len(frame) < 2:
        raise DataError(f"{source}: expected at least 2 training rows, got {len(frame)}")
    names = {spec.name for spec in features}
    ignored = [str(c) for c in frame.columns if c not in names and c != label_column]
    if ignored:
        logger.info("%s: ignoring column(s) not in the schema: %s", source, ", ".join(ignored))

    features = [
        FeatureSpec(spec.name, "bool", spec.kind)
        if spec.dtype == "int" and spec.name in frame.columns and frame[spec.name].dtype == bool
        else spec
        for spec in features
    ]
    x = coerce_features(frame, features, source)
    resolved_task = resolve_task(frame[label_column], request.task, label_column, source)
    y = _prepare_labels(frame[label_column], resolved_task)
    if resolved_task == "classification" and y.nunique() < 2:
        raise DataError(
            f"{source}: label column {label_column!r} has a single class ({y.iloc[0]!r}); "
            "classification needs at least two"
        )

    model, params = make_estimator(request, resolved_task)
    pipeline = build_pipeline(features, model)
    logger.info(
        "training %s (%s, %s) on %d rows x %d features",
        estimator,
        type(model).__name__,
        resolved_task,
        len(x),
        len(features),
    )
    _fit(pipeline, x, y, estimator, request.hyperparameters)
    metrics = training_metrics(pipeline, x, y, resolved_task)
    classes = [_jsonable(c) for c in pipeline.classes_] if resolved_task == "classification" else None

    metadata = {
        "features": [dataclasses.asdict(spec) for spec in features],
        "feature_order": [spec.name for spec in features],
        "label_column": label_column,
        "task": resolved_task,
        "classes": classes,
        "estimator": estimator,
        "estimator_class": f"{type(model).__module__}.{type(model).__name__}",
        "hyperparameters": {key: _jsonable(value) for key, value in params.items()},
        "seed": request.seed,
        "sklearn_version": sklearn.__version__,
        "training_data_hash": sha256_file(train_path),
        "source_data_hash": source_data_hash or None,
        "source_data_uri": source_data_uri or None,
        "train_rows": int(len(x)),
        "model_sha256": None,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_path(model_dir) as staged:
        staged.mkdir()
        joblib.dump(pipeline, staged / MODEL_FILE)
        metadata["model_sha256"] = sha256_file(staged / MODEL_FILE)
        (staged / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.info("wrote %s (sha256 %s); training metrics %s", model_dir, metadata["model_sha256"], metrics)
    return TrainResult(
        metadata=metadata, metrics=metrics, model_sha256=metadata["model_sha256"], model_dir=os.fspath(model_dir)
    )
