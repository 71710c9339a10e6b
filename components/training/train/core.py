"""Train a scikit-learn model on a Parquet dataset whose input is defined by a TFDV schema.

The model is one scikit-learn ``Pipeline`` whose pickle references only scikit-learn, pandas, numpy and the
standard library, so it loads wherever scikit-learn 1.5 is installed (KServe's sklearn runtime) without this
package::

    frame  FunctionTransformer(functools.partial(pandas.DataFrame, columns=feature_order))
    prep   ColumnTransformer, by column name:
             numeric      astype("float64") -> SimpleImputer(median) -> StandardScaler
             categorical  astype("string") -> SimpleImputer(<NA> -> "__missing__") -> OneHotEncoder(ignore unknown,
                          max_categories, min_frequency; sparse for logistic_regression)
    model  the estimator

Before fitting, :mod:`.guards` estimates the memory the fit needs (refusing it, naming the widest features,
when it would not fit) and warns about single features that predict the label almost perfectly (a leak).

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
import os
import re
from typing import Any

from kfp_tabular.components.common.artifacts import atomic_path, sha256_file
from kfp_tabular.components.common.decisions import Decision, to_metadata
from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.common.model_dir import METADATA_FILE, MODEL_FILE
from kfp_tabular.components.data_processing.ingest.labels import MAX_AUTO_CLASSES, infer_task  # noqa: F401
from kfp_tabular.components.training.train import guards, rows
from kfp_tabular.components.training.train.features import (  # noqa: F401 (the model's inputs, named here too)
    MISSING_CATEGORY,
    TO_FLOAT,
    TO_STRING,
    FeatureSpec,
    coerce_features,
    input_schema,
    read_schema,
    schema_features,
)
from kfp_tabular.components.training.train.request import ESTIMATORS, TASKS, TrainRequest  # noqa: F401 (named here)

logger = logging.getLogger(__name__)

#: Estimators fed a sparse one-hot matrix (linear models thrive on it); tree models get a dense one, bounded by
#: max_categories (HistGradientBoosting does not accept sparse input).
SPARSE_ESTIMATORS = ("logistic_regression",)
#: Training metrics are measured on a seeded sample of at most this many of the fitted rows.
METRICS_SAMPLE_ROWS = 100_000


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        metadata: The contents of ``metadata.json`` in the model directory.
        metrics: Metrics of the fitted model on its own training data.
        model_sha256: sha256 of ``model.joblib``.
        model_dir: The model directory that was written.
        decisions: Decisions taken for the user: the task (``auto``), categoricals capped, leakage warnings.
    """

    metadata: dict
    metrics: dict
    model_sha256: str
    model_dir: str
    decisions: list = dataclasses.field(default_factory=list)


def resolve_task(labels, task: str, label_column: str, source: str) -> str:
    """Decide classification or regression for a label column.

    ``auto`` follows ingest's rules (``ingest.labels.infer_task``): classification for bool, text or
    categorical labels and for integer or whole-number float labels with at most 20 distinct values,
    regression otherwise.

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
        return auto_task(labels, label_column, source).task
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


def auto_task(labels, label_column: str, source: str):
    """Return ingest's decision (``LabelTask``: task and reason) for a label column, naming the file on errors."""
    values = labels if str(labels.dtype) == "category" else labels.dropna().unique()
    try:
        return infer_task(values, "auto", label_column)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from exc


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


def build_pipeline(
    features: list[FeatureSpec], estimator, max_categories: int = 50, min_frequency: int = 5, sparse: bool = False
):
    """Assemble the (unfitted) model pipeline for the given features and estimator.

    Args:
        features: The feature specs, in model order.
        estimator: An unfitted scikit-learn estimator.
        max_categories: One-hot columns per categorical feature at most (the rest share an "infrequent" one).
        min_frequency: Categories seen in fewer training rows are grouped as "infrequent".
        sparse: Encode into a sparse matrix (for estimators that take one).

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
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="ignore",
                                max_categories=max_categories,
                                min_frequency=min_frequency if min_frequency > 1 else None,
                                sparse_output=sparse,
                            ),
                        ),
                    ]
                ),
                categorical,
            )
        )
    frame = FunctionTransformer(
        functools.partial(pd.DataFrame, columns=order), validate=False, feature_names_out="one-to-one"
    )
    return Pipeline(
        [
            ("frame", frame),
            ("prep", ColumnTransformer(transformers, sparse_threshold=1.0 if sparse else 0.0)),
            ("model", estimator),
        ]
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


def training_metrics(
    pipeline, features_frame, labels, task: str, positive: Any = None, seed: int = 0, sample: int | None = None
) -> dict:
    """Metrics of a fitted pipeline on the data it was trained on (a sanity check, not an evaluation).

    They are computed on a seeded sample of at most ``sample`` rows (default :data:`METRICS_SAMPLE_ROWS`), so a
    large split costs no second full pass; ``rows`` is the rows fitted, ``metrics_sample_rows`` the rows measured.
    ``positive`` is the positive class of a binary label for ROC AUC (None: the larger class).
    """
    import numpy as np
    from sklearn import metrics

    sample = METRICS_SAMPLE_ROWS if sample is None else sample
    result: dict[str, Any] = {"rows": int(len(labels))}
    if len(labels) > sample:
        take = np.sort(np.random.default_rng(seed).choice(len(labels), size=sample, replace=False))
        features_frame, labels = features_frame.iloc[take], labels.iloc[take]
    result["metrics_sample_rows"] = int(len(labels))
    if task == "classification":
        classes = list(pipeline.classes_)
        proba = pipeline.predict_proba(features_frame)
        predicted = np.asarray(pipeline.classes_)[proba.argmax(axis=1)]
        result["accuracy"] = float(metrics.accuracy_score(labels, predicted))
        result["log_loss"] = float(metrics.log_loss(labels, proba, labels=classes))
        if len(classes) == 2:
            index = classes.index(positive) if positive in classes else 1
            result["roc_auc"] = float(metrics.roc_auc_score(labels == classes[index], proba[:, index]))
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
    positive_class: Any = None,
    source_columns: list[str] | None = None,
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
        positive_class: The positive class of a binary label as ingest chose it (its Dataset's
            ``positive_class``); None: the minority class (a decision). Recorded in ``metadata.json``.
        source_columns: The source's columns before ingest's column decisions (its Dataset's
            ``source_columns``), recorded so a later run can tell from a header whether this model scores it.

    Returns:
        The metadata, the training metrics, the model's sha256 and the decisions taken.

    Raises:
        ConfigError: Unknown hyperparameter, or an invalid hyperparameter value.
        DataError: Unreadable schema or data, features missing from the data, unusable labels, a positive class
            that is not a class, or a fit that would not fit in memory (naming the widest features).
    """
    import joblib
    import sklearn

    label_column, estimator = request.label_column, request.estimator
    features = schema_features(schema_path, label_column)
    source = str(train_path)
    columns = rows.file_columns(train_path, "training dataset")
    if label_column not in columns:
        raise DataError(f"{source}: label column {label_column!r} not found; the file has {', '.join(columns)}")
    missing = [spec.name for spec in features if spec.name not in columns]
    if missing:
        raise DataError(
            f"{source}: missing feature column(s) {', '.join(map(repr, missing))} that the schema defines; "
            f"the file has {', '.join(columns)}"
        )
    names = {spec.name for spec in features}
    ignored = [c for c in columns if c not in names and c != label_column]
    if ignored:
        logger.info("%s: ignoring column(s) not in the schema: %s", source, ", ".join(ignored))
    table = rows.read_columns(train_path, [spec.name for spec in features] + [label_column], "training dataset")
    labels = table.column(label_column).to_pandas()
    missing_labels = int(labels.isna().sum())
    if missing_labels:
        raise DataError(f"{source}: label column {label_column!r} has {missing_labels} missing value(s)")
    if len(labels) < 2:
        raise DataError(f"{source}: expected at least 2 training rows, got {len(labels)}")

    import pyarrow as pa

    features = [
        FeatureSpec(spec.name, "bool", spec.kind)
        if spec.dtype == "int" and pa.types.is_boolean(table.schema.field(spec.name).type)
        else spec
        for spec in features
    ]
    decisions: list[Decision] = []
    resolved_task = resolve_task(labels, request.task, label_column, source)
    if request.task == "auto":
        decisions.append(Decision("train", label_column, resolved_task, auto_task(labels, label_column, source).reason))
    y = _prepare_labels(labels, resolved_task)
    del labels
    if resolved_task == "classification" and y.nunique() < 2:
        raise DataError(
            f"{source}: label column {label_column!r} has a single class ({y.iloc[0]!r}); "
            "classification needs at least two"
        )
    positive = _positive(y, resolved_task, positive_class, label_column, source, decisions)

    model, params = make_estimator(request, resolved_task)
    sparse = estimator in SPARSE_ESTIMATORS
    widths = guards.encoded_widths(table, features, request.max_categories)
    limit, where = guards.memory_limit(request.memory_limit_mb)
    classes_count = int(y.nunique()) if resolved_task == "classification" else 0
    held = int(table.nbytes + y.memory_usage(deep=True))  # the Arrow columns and the labels, held while fitting
    probe = coerce_features(table.slice(0, rows.PROBE_ROWS).to_pandas(), features, source)
    row_bytes = float(probe.memory_usage(deep=True, index=False).sum()) / max(1, len(probe))
    del probe

    def estimate(n: int) -> tuple[int, str]:
        return guards.estimate_memory(n, widths, sparse, estimator, params, classes_count, held + int(n * row_bytes))

    plan = rows.plan_rows(
        source, len(y), request.max_train_rows, resolved_task == "classification", estimate, widths, limit, where
    )
    if plan.decision is not None:
        decisions.append(plan.decision)
        take = rows.sample_indices(
            len(y), plan.rows, request.seed, y.to_numpy() if resolved_task == "classification" else None
        )
        table, y = table.take(take), y.iloc[take].reset_index(drop=True)
    table = table.drop([label_column])  # the labels are already in y
    x = coerce_features(table.to_pandas(split_blocks=True, self_destruct=True), features, source)
    schema_entries = input_schema(x, features)
    del table
    decisions += guards.leakage(x, y, features, resolved_task, positive, request.seed)
    pipeline = build_pipeline(features, model, request.max_categories, request.min_frequency, sparse)
    logger.info(
        "training %s (%s, %s) on %d of %d rows x %d features",
        estimator,
        type(model).__name__,
        resolved_task,
        len(x),
        plan.source_rows,
        len(features),
    )
    _fit(pipeline, x, y, estimator, request.hyperparameters)
    decisions += _grouped_categories(pipeline, request)
    metrics = training_metrics(pipeline, x, y, resolved_task, positive, seed=request.seed)
    del x
    classes = [_jsonable(c) for c in pipeline.classes_] if resolved_task == "classification" else None

    metadata = {
        "features": schema_entries,
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
        "source_columns": list(source_columns) if source_columns else None,
        "train_rows": int(plan.rows),
        "source_rows": int(plan.source_rows),
        "metrics_sample_rows": int(metrics["metrics_sample_rows"]),
        "positive_class": _jsonable(positive),
        "encoding": {
            "max_categories": request.max_categories,
            "min_frequency": request.min_frequency,
            "sparse": sparse,
        },
        "memory_estimate_bytes": int(plan.estimate),
        "memory_limit_bytes": int(limit),
        "decisions": to_metadata(decisions),
        "model_sha256": None,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_path(model_dir) as staged:
        staged.mkdir()
        joblib.dump(pipeline, staged / MODEL_FILE)
        metadata["model_sha256"] = sha256_file(staged / MODEL_FILE)
        (staged / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.info("wrote %s (sha256 %s); training metrics %s", model_dir, metadata["model_sha256"], metrics)
    for decision in decisions:
        logger.info("decision: %s", decision.line())
    return TrainResult(
        metadata=metadata,
        metrics=metrics,
        model_sha256=metadata["model_sha256"],
        model_dir=os.fspath(model_dir),
        decisions=decisions,
    )


def _positive(y, task: str, requested: Any, label_column: str, source: str, decisions: list) -> Any:
    """Return the positive class of a binary label: as ingest chose it, else the minority (a decision)."""
    if task != "classification" or y.nunique() != 2:
        return None
    counts = y.value_counts()
    classes = [_jsonable(c) for c in sorted(counts.index.tolist())]
    if requested is not None:
        found = [c for c in classes if c == requested or str(c) == str(requested)]
        if not found:
            raise DataError(
                f"{source}: positive class {requested!r} (the Dataset's positive_class) is not a class of label "
                f"column {label_column!r}; its classes: {', '.join(map(repr, classes))}"
            )
        return found[0]
    low, high = classes
    positive = low if counts[low] < counts[high] else high
    share = counts[positive] / len(y)
    decisions.append(
        Decision("train", label_column, "positive class", f"{positive!r}: the minority class ({share:.1%} of rows)")
    )
    return positive


def _grouped_categories(pipeline, request: TrainRequest) -> list[Decision]:
    """Decisions for each categorical feature whose rare or surplus categories share one "infrequent" column."""
    prep = pipeline.named_steps["prep"]
    if "categorical" not in prep.named_transformers_:
        return []
    encoder = prep.named_transformers_["categorical"].named_steps["onehot"]
    names = next(columns for name, _, columns in prep.transformers_ if name == "categorical")
    out = []
    for name, categories, infrequent in zip(names, encoder.categories_, encoder.infrequent_categories_):
        if infrequent is None or not len(infrequent):
            continue
        out.append(
            Decision(
                "train",
                name,
                "capped",
                f"{len(categories)} categories: {len(infrequent)} rare ones (fewer than {request.min_frequency} rows) "
                f"or beyond the {request.max_categories - 1} most frequent share one 'infrequent' column "
                f"(max_categories={request.max_categories}, min_frequency={request.min_frequency})",
            )
        )
    return out
