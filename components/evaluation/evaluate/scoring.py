"""Scoring one model on eval data: the columns it needs read once, one prediction, metrics without per-row Python.

Class metrics are computed on class indices (the label's position in the model's classes, the columns of
``predict_proba``): the confusion matrix is one ``bincount``, ROC AUC comes from the one ROC curve, and the
curve kept for the report and KFP's ClassificationMetrics is thinned to at most :data:`MAX_ROC_POINTS` points,
so a million eval rows give reports of the same size as a thousand.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.evaluation.evaluate import curves, distribution

logger = logging.getLogger(__name__)

#: The ROC curve kept in the result is thinned to at most this many points.
MAX_ROC_POINTS = 200


def _labels_like_classes(labels, classes: list, source: str, label_column: str):
    """Return the eval labels with the type of the model's classes, or raise naming unknown labels."""
    import numpy as np

    values = labels.to_numpy()
    kind = labels.dtype.kind
    if classes and all(isinstance(c, bool) for c in classes):
        converted = values.astype(bool) if kind in "biuf" else values
    elif classes and all(isinstance(c, (int, np.integer)) for c in classes) and kind in "biu":
        converted = values.astype("int64")
    elif classes and all(isinstance(c, (int, np.integer)) for c in classes) and kind == "f":
        converted = values.astype("int64") if (values == np.round(values)).all() else values
    elif classes and all(isinstance(c, str) for c in classes):
        converted = labels.astype(str).to_numpy()
    else:
        converted = values
    import pandas as pd

    unknown = sorted({str(v) for v in pd.unique(converted).tolist()} - {str(c) for c in classes})
    if unknown:
        raise DataError(
            f"{source}: label column {label_column!r} holds value(s) {', '.join(unknown)} the model was not "
            f"trained on (classes: {', '.join(map(str, classes))})"
        )
    return converted


def file_columns(path: str | os.PathLike, what: str) -> list[str]:
    """Return the columns of a Parquet file from its footer; a DataError names a missing or non-Parquet file."""
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise DataError(f"{path}: {what} Parquet file not found")
    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: expected a {what} in Parquet format, could not read it ({exc})") from exc


def read_columns(path: str | os.PathLike, columns: list[str], what: str = "eval dataset"):
    """Read only ``columns`` of a Parquet file into pandas (one conversion, Arrow buffers released as it goes)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns, memory_map=True)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: expected a {what} in Parquet format, could not read it ({exc})") from exc
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _safe(fn, *args, **kwargs) -> float | None:
    """Return a metric value, or None where scikit-learn finds it undefined on this data (e.g. one class)."""
    try:
        value = float(fn(*args, **kwargs))
    except ValueError as exc:
        logger.info("metric %s undefined on this data: %s", getattr(fn, "__name__", fn), exc)
        return None
    return value if math.isfinite(value) else None


def thin_curve(fpr, tpr, thresholds, limit: int = MAX_ROC_POINTS) -> dict:
    """Keep at most ``limit`` points of a ROC curve, evenly spaced by index, always the first and last ones."""
    import numpy as np

    keep = np.arange(len(fpr))
    if len(keep) > limit:
        keep = np.unique(np.linspace(0, len(fpr) - 1, limit).round().astype(np.int64))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": thresholds[keep].tolist()}


def score(
    pipeline, metadata: dict, frame, label_column: str, source: str, positive: Any = None, columns: list | None = None
) -> dict:
    """Compute the metrics of one model on a frame holding its features and the label.

    The model predicts once; the class metrics are computed on class indices (no per-row Python), ROC AUC from
    the one ROC curve, which is kept thinned to at most :data:`MAX_ROC_POINTS` points.

    Args:
        pipeline: The loaded model.
        metadata: Its ``metadata.json``.
        frame: Eval data (raw dtypes: the pipeline coerces); other columns are ignored (the model's first step
            selects its features by name).
        label_column: Name of the label column.
        source: The eval file, for error messages.
        positive: The positive class of a binary label (one of the model's classes); None: the larger class.
        columns: The eval file's columns, named when a feature is missing (default: the frame's).

    Returns:
        ``{"metrics": {...}, "classes": [...] | None, "confusion_matrix": {...} | None, "roc_curve": {...} | None,
        "curves": {...}, "distribution": {...}}``: ``curves`` is the report's chart data from the same prediction
        (:mod:`curves`), ``distribution`` the predictions counted over fixed bins (:mod:`distribution`).

    Raises:
        DataError: A feature or the label is missing, labels are missing or unknown to the model, or the
            model fails to predict.
    """
    import numpy as np
    from sklearn import metrics as skm

    features = list(metadata["feature_order"])
    missing = [name for name in features if name not in frame.columns]
    if missing:
        available = columns if columns is not None else list(frame.columns)
        raise DataError(
            f"{source}: missing feature column(s) {', '.join(map(repr, missing))} that the model needs; "
            f"the file has {', '.join(map(str, available))}"
        )
    if label_column not in frame.columns:
        raise DataError(f"{source}: label column {label_column!r} not found")
    labels = frame[label_column]
    if int(labels.isna().sum()):
        raise DataError(f"{source}: label column {label_column!r} has {int(labels.isna().sum())} missing value(s)")
    x = frame if list(frame.columns) == features else frame[features]
    task = metadata["task"]
    out: dict[str, Any] = dict.fromkeys(("classes", "confusion_matrix", "roc_curve", "curves", "distribution"))
    if task == "regression":
        if labels.dtype.kind not in "biuf":
            raise DataError(f"{source}: label column {label_column!r} has dtype {labels.dtype}; expected numbers")
        try:
            predicted = np.asarray(pipeline.predict(x), dtype="float64")
        except Exception as exc:  # the model's own error: name it with the data file
            raise DataError(f"{source}: the model could not predict ({type(exc).__name__}: {exc})") from exc
        y = labels.to_numpy(dtype="float64")
        out["metrics"] = {
            "rmse": _safe(lambda a, b: math.sqrt(skm.mean_squared_error(a, b)), y, predicted),
            "mae": _safe(skm.mean_absolute_error, y, predicted),
            "r2": _safe(skm.r2_score, y, predicted) if len(y) > 1 else None,
        }
        out["curves"] = curves.regression(y, predicted)
        out["distribution"] = distribution.regressor(predicted)
        return out

    classes = list(getattr(pipeline, "classes_", metadata.get("classes") or []))
    classes = [c.item() if hasattr(c, "item") else c for c in classes]
    y = _labels_like_classes(labels, classes, source, label_column)
    try:
        proba = np.asarray(pipeline.predict_proba(x), dtype="float64")
    except Exception as exc:  # the model's own error: name it with the data file
        raise DataError(f"{source}: the model could not predict ({type(exc).__name__}: {exc})") from exc
    # Class indices: the label's position in ``classes`` (the model's order, the columns of proba).
    codes = _class_codes(y, classes)
    predicted = proba.argmax(axis=1)
    k = len(classes)
    indices = list(range(k))
    binary = k == 2
    roc = None
    index = None
    if binary:
        index = classes.index(positive) if positive in classes else 1
        positive = classes[index]
        truth = codes == index
        averaging = {"average": "binary", "pos_label": index}
        if truth.any() and not truth.all():
            roc = skm.roc_curve(truth, proba[:, index])
        roc_auc = _safe(skm.auc, roc[0], roc[1]) if roc is not None else None
    else:
        averaging = {"average": "macro", "labels": indices}
        roc_auc = _safe(skm.roc_auc_score, codes, proba, multi_class="ovr", average="macro", labels=indices)
    out["metrics"] = {
        "roc_auc": roc_auc,
        "accuracy": float((codes == predicted).mean()),
        "precision": _safe(skm.precision_score, codes, predicted, zero_division=0, **averaging),
        "recall": _safe(skm.recall_score, codes, predicted, zero_division=0, **averaging),
        "f1": _safe(skm.f1_score, codes, predicted, zero_division=0, **averaging),
        "log_loss": _safe(skm.log_loss, codes, proba, labels=indices),
    }
    out["classes"] = classes
    matrix = np.bincount(codes * k + predicted, minlength=k * k).reshape(k, k)
    out["confusion_matrix"] = {"labels": [str(c) for c in classes], "matrix": matrix.astype(int).tolist()}
    if roc is not None:
        out["roc_curve"] = thin_curve(*roc)
    out["curves"] = curves.classification(proba, codes, predicted, index, roc)
    out["distribution"] = distribution.classifier(proba, classes)
    return out


def _class_codes(y, classes: list):
    """Each label's index in ``classes`` (labels already checked to be classes)."""
    import numpy as np
    import pandas as pd

    if all(isinstance(c, str) for c in classes):
        keys = [str(c) for c in classes]
        values = pd.Series(y).astype(str)
    else:
        keys, values = classes, pd.Series(y)
    codes = pd.Categorical(values, categories=keys).codes
    if (codes < 0).any():  # e.g. an int label against float classes: match by text, as the check above did
        codes = pd.Categorical(values.astype(str), categories=[str(c) for c in classes]).codes
    return np.asarray(codes, dtype=np.int64)
