"""Score a model directory on eval data and decide whether it is blessed (TFX Evaluator style).

The blessing is always written: a model that fails the gate gets ``"blessed": false`` and the reasons, never
an exception. Exceptions are kept for inputs that make an evaluation impossible (no eval data, a candidate
model directory that cannot be read, thresholds that do not apply to the task).

Rules:
- Each threshold names a metric and a bound: higher-is-better metrics (roc_auc, accuracy, precision, recall,
  f1, r2) must be >= the bound, lower-is-better metrics (log_loss, rmse, mae) <= the bound.
- With a baseline model, the candidate must not be worse than the baseline by more than ``tolerance``
  (absolute) on each threshold metric, or on the primary metric (roc_auc, rmse) when there are no
  thresholds. A baseline that cannot be loaded or cannot score the eval data fails the gate, naming why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from kfp_tabular.components.common.artifacts import read_parquet, sha256_file, write_json, write_text
from kfp_tabular.components.common.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CLASSIFICATION_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
HIGHER_IS_BETTER = frozenset({"roc_auc", "accuracy", "precision", "recall", "f1", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
PRIMARY_METRIC = {"classification": "roc_auc", "regression": "rmse"}
DEFAULT_THRESHOLDS = {"classification": {"roc_auc": 0.7}, "regression": {}}
#: The ROC curve kept in the result is downsampled to at most this many points.
MAX_ROC_POINTS = 200


@dataclasses.dataclass
class EvaluationResult:
    """What :func:`evaluate` decided and measured.

    Attributes:
        blessed: Whether the candidate passed every threshold and the baseline comparison.
        reasons: Why it was not blessed (every failed check), or the checks it passed.
        metrics: Candidate metrics on the eval data (None where a metric is undefined on this data).
        baseline_metrics: Baseline metrics on the same data, or None without a (usable) baseline.
        thresholds: The thresholds that were applied.
        tolerance: The allowed absolute regression against the baseline.
        task: ``classification`` or ``regression``.
        model_sha256: sha256 of the candidate's ``model.joblib``.
        eval_rows: Number of eval rows.
        classes: Class labels (classification) or None.
        confusion_matrix: ``{"labels": [str], "matrix": [[int]]}`` (rows: actual, columns: predicted) or None.
        roc_curve: ``{"fpr", "tpr", "thresholds"}`` lists for binary classification (at most 200 points; the
            first threshold is ``inf``, as scikit-learn returns it), else None.
    """

    blessed: bool
    reasons: list
    metrics: dict
    baseline_metrics: dict | None
    thresholds: dict
    tolerance: float
    task: str
    model_sha256: str
    eval_rows: int
    classes: list | None = None
    confusion_matrix: dict | None = None
    roc_curve: dict | None = None

    @property
    def reason(self) -> str:
        """The reasons as one line."""
        return "; ".join(self.reasons)


class BaselineError(Exception):
    """The baseline model could not be loaded or could not score the eval data (fails the gate)."""


def metric_names(task: str) -> tuple[str, ...]:
    """Names of the metrics computed (and allowed as thresholds) for a task."""
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def load_model_dir(model_dir: str | os.PathLike, what: str = "model directory"):
    """Load a model directory written by the train component.

    Args:
        model_dir: Directory with ``model.joblib`` and ``metadata.json``.
        what: What the directory is, for error messages.

    Returns:
        ``(pipeline, metadata)``.

    Raises:
        DataError: A file is missing or unreadable, or ``model.joblib`` does not match the sha256 recorded in
            ``metadata.json``.
    """
    import joblib

    directory = Path(model_dir)
    model_path = directory / MODEL_FILE
    metadata_path = directory / METADATA_FILE
    if not directory.is_dir():
        raise DataError(f"{model_dir}: {what} not found (expected a directory with {MODEL_FILE} and {METADATA_FILE})")
    for path in (model_path, metadata_path):
        if not path.is_file():
            raise DataError(f"{model_dir}: {what} has no {path.name}")
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{metadata_path}: expected the model metadata as JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise DataError(f"{metadata_path}: expected a JSON object, got {type(metadata).__name__}")
    for key in ("feature_order", "label_column", "task"):
        if key not in metadata:
            raise DataError(f"{metadata_path}: missing the field {key!r}")
    if metadata["task"] not in PRIMARY_METRIC:
        raise DataError(f"{metadata_path}: task must be classification or regression, got {metadata['task']!r}")
    expected = metadata.get("model_sha256")
    if expected:
        actual = sha256_file(model_path)
        if actual != expected:
            raise DataError(
                f"{model_path}: sha256 {actual} does not match {expected} recorded in {METADATA_FILE} "
                "(the model file was changed or replaced)"
            )
    try:
        pipeline = joblib.load(model_path)
    except Exception as exc:  # unpickling raises anything the pickled objects raise
        raise DataError(f"{model_path}: could not load the model ({type(exc).__name__}: {exc})") from exc
    return pipeline, metadata


def fetch_model_dir(uri: str, destination: str | os.PathLike) -> str:
    """Return a local directory holding the model at ``uri`` (a local path or an fsspec URL).

    Remote models (``s3://``, ``gs://``, ``memory://``, ...) have their ``model.joblib`` and
    ``metadata.json`` copied into ``destination``; local paths (and ``file://``) are used in place.

    Raises:
        DataError: The remote directory lacks one of the files or cannot be read.
    """
    if "://" not in uri:
        return uri
    if uri.startswith("minio://"):  # KFP's default artifact store names MinIO objects this way; it speaks S3
        uri = "s3://" + uri[len("minio://") :]
    if uri.startswith("file://"):
        return uri[len("file://") :]
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise DataError(f"{uri}: cannot open this URL with fsspec ({exc})") from exc
    root = root.rstrip("/")
    local = Path(destination)
    local.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, METADATA_FILE):
        try:
            fs.get_file(f"{root}/{name}", str(local / name))
        except FileNotFoundError as exc:
            raise DataError(f"{uri}: model directory has no {name}") from exc
        except OSError as exc:
            raise DataError(f"{uri}: could not copy {name} ({exc})") from exc
    return str(local)


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
    unknown = sorted({str(v) for v in set(converted.tolist())} - {str(c) for c in classes})
    if unknown:
        raise DataError(
            f"{source}: label column {label_column!r} holds value(s) {', '.join(unknown)} the model was not "
            f"trained on (classes: {', '.join(map(str, classes))})"
        )
    return converted


def _safe(fn, *args, **kwargs) -> float | None:
    """Return a metric value, or None where scikit-learn finds it undefined on this data (e.g. one class)."""
    try:
        value = float(fn(*args, **kwargs))
    except ValueError as exc:
        logger.info("metric %s undefined on this data: %s", getattr(fn, "__name__", fn), exc)
        return None
    return value if math.isfinite(value) else None


def _downsample(values: list, keep: list[int]) -> list:
    return [values[i] for i in keep]


def score(pipeline, metadata: dict, frame, label_column: str, source: str) -> dict:
    """Compute the metrics of one model on a frame holding its features and the label.

    Args:
        pipeline: The loaded model.
        metadata: Its ``metadata.json``.
        frame: Eval data (raw dtypes: the pipeline coerces).
        label_column: Name of the label column.
        source: The eval file, for error messages.

    Returns:
        ``{"metrics": {...}, "classes": [...] | None, "confusion_matrix": {...} | None, "roc_curve": {...} | None}``

    Raises:
        DataError: A feature or the label is missing, labels are missing or unknown to the model, or the
            model fails to predict.
    """
    import numpy as np
    from sklearn import metrics as skm

    features = list(metadata["feature_order"])
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing feature column(s) {', '.join(map(repr, missing))} that the model needs; "
            f"the file has {', '.join(map(str, frame.columns))}"
        )
    if label_column not in frame.columns:
        raise DataError(f"{source}: label column {label_column!r} not found")
    labels = frame[label_column]
    if int(labels.isna().sum()):
        raise DataError(f"{source}: label column {label_column!r} has {int(labels.isna().sum())} missing value(s)")
    x = frame[features]
    task = metadata["task"]
    out: dict[str, Any] = {"classes": None, "confusion_matrix": None, "roc_curve": None}
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
        return out

    classes = list(getattr(pipeline, "classes_", metadata.get("classes") or []))
    classes = [c.item() if hasattr(c, "item") else c for c in classes]
    y = _labels_like_classes(labels, classes, source, label_column)
    try:
        proba = np.asarray(pipeline.predict_proba(x), dtype="float64")
    except Exception as exc:  # the model's own error: name it with the data file
        raise DataError(f"{source}: the model could not predict ({type(exc).__name__}: {exc})") from exc
    predicted = np.asarray(pipeline.classes_)[proba.argmax(axis=1)]
    binary = len(classes) == 2
    if binary:
        positive = classes[-1]
        truth = y == positive
        averaging = {"average": "binary", "pos_label": positive}
        roc_auc = _safe(skm.roc_auc_score, truth, proba[:, -1])
    else:
        averaging = {"average": "macro", "labels": classes}
        roc_auc = _safe(skm.roc_auc_score, y, proba, multi_class="ovr", average="macro", labels=classes)
    out["metrics"] = {
        "roc_auc": roc_auc,
        "accuracy": _safe(skm.accuracy_score, y, predicted),
        "precision": _safe(skm.precision_score, y, predicted, zero_division=0, **averaging),
        "recall": _safe(skm.recall_score, y, predicted, zero_division=0, **averaging),
        "f1": _safe(skm.f1_score, y, predicted, zero_division=0, **averaging),
        "log_loss": _safe(skm.log_loss, y, proba, labels=classes),
    }
    out["classes"] = classes
    matrix = skm.confusion_matrix(y, predicted, labels=classes)
    out["confusion_matrix"] = {"labels": [str(c) for c in classes], "matrix": matrix.astype(int).tolist()}
    if binary and truth.any() and not truth.all():
        fpr, tpr, thresholds = skm.roc_curve(truth, proba[:, -1])
        keep = list(range(len(fpr)))
        if len(keep) > MAX_ROC_POINTS:
            keep = sorted(set(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).round().astype(int).tolist()))
        out["roc_curve"] = {
            "fpr": _downsample(fpr.tolist(), keep),
            "tpr": _downsample(tpr.tolist(), keep),
            "thresholds": _downsample(thresholds.tolist(), keep),
        }
    return out


#: Bounds a metric can take: a threshold outside them can never be met (or always is) and is refused.
METRIC_RANGES = {
    "roc_auc": (0.0, 1.0),
    "accuracy": (0.0, 1.0),
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "log_loss": (0.0, math.inf),
    "rmse": (0.0, math.inf),
    "mae": (0.0, math.inf),
    "r2": (-math.inf, 1.0),
}


def check_thresholds(thresholds: dict | None, task: str) -> dict:
    """Validate thresholds for a task and return those that apply as ``{name: float}``.

    ``None`` means the default: ``{"roc_auc": 0.7}`` for classification, ``{}`` for regression. A mapping may
    name metrics of both tasks (the pipeline's default ``{"roc_auc": 0.7, "r2": 0.0}`` does, so it fits
    either task); those of the other task are skipped with a log line, but at least one must apply.

    Raises:
        ConfigError: Not a mapping, a metric of neither task, only metrics of the other task, or a bound that
            is not a finite number inside the metric's range.
    """
    if thresholds is None:
        return dict(DEFAULT_THRESHOLDS[task])
    if not isinstance(thresholds, dict):
        raise ConfigError(f"thresholds: expected a mapping of metric name to bound, got {type(thresholds).__name__}")
    valid = metric_names(task)
    other = "regression" if task == "classification" else "classification"
    checked, skipped = {}, []
    for name, bound in thresholds.items():
        if name not in valid and name not in metric_names(other):
            raise ConfigError(f"thresholds: unknown metric {name!r} for a {task} model; valid: {', '.join(valid)}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise ConfigError(f"thresholds: bound for {name!r} must be a finite number, got {bound!r}")
        low, high = METRIC_RANGES[name]
        if not low <= bound <= high:
            raise ConfigError(f"thresholds: bound for {name!r} must lie in [{low}, {high}], got {bound!r}")
        if name in valid:
            checked[name] = float(bound)
        else:
            skipped.append(name)
    if skipped and not checked:
        names = ", ".join(skipped)
        raise ConfigError(
            f"thresholds: unknown metric {skipped[0]!r} for a {task} model ({names} applies to {other} only); "
            f"valid: {', '.join(valid)}"
        )
    if skipped:
        logger.info("thresholds: %s apply to %s models only; not checked for this %s model", skipped, other, task)
    return checked


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _bound_text(name: str, bound: float) -> str:
    return f"{'>=' if name in HIGHER_IS_BETTER else '<='} {bound:g}"


def _passes(name: str, value: float, bound: float) -> bool:
    return value >= bound if name in HIGHER_IS_BETTER else value <= bound


def decide(
    metrics: dict,
    thresholds: dict,
    baseline_metrics: dict | None,
    tolerance: float,
    task: str,
    baseline_problem: str | None = None,
) -> tuple[bool, list[str], dict[str, list[str]]]:
    """Apply the gate rules.

    Args:
        metrics: Candidate metrics.
        thresholds: Validated thresholds.
        baseline_metrics: Baseline metrics, or None when there is no baseline.
        tolerance: Allowed absolute regression against the baseline.
        task: ``classification`` or ``regression``.
        baseline_problem: Why a configured baseline could not be used (fails the gate).

    Returns:
        ``(blessed, reasons, failed_checks)``: the reasons are the failures when not blessed, the passed
        checks otherwise; ``failed_checks`` maps each checked metric to the checks it failed
        (``threshold``, ``baseline``), an empty list when it passed.
    """
    failures: list[str] = []
    passes: list[str] = []
    verdicts: dict[str, list[str]] = {}
    for name, bound in thresholds.items():
        value = metrics.get(name)
        if value is None:
            failures.append(f"{name} is undefined on the eval data; threshold {_bound_text(name, bound)} not met")
            verdicts.setdefault(name, []).append("threshold")
        elif _passes(name, value, bound):
            passes.append(f"{name} {_fmt(value)} {_bound_text(name, bound)}")
            verdicts.setdefault(name, [])
        else:
            failures.append(f"{name} {_fmt(value)} does not meet threshold {_bound_text(name, bound)}")
            verdicts.setdefault(name, []).append("threshold")
    if baseline_problem:
        failures.append(baseline_problem)
    elif baseline_metrics is not None:
        compared = list(thresholds) or [PRIMARY_METRIC[task]]
        for name in compared:
            value, base = metrics.get(name), baseline_metrics.get(name)
            if value is None or base is None:
                failures.append(f"{name} cannot be compared with the baseline (undefined on the eval data)")
                verdicts.setdefault(name, []).append("baseline")
                continue
            higher = name in HIGHER_IS_BETTER
            worse_by = (base - value) if higher else (value - base)
            if worse_by > tolerance + 1e-12:
                failures.append(
                    f"{name} {_fmt(value)} is worse than the baseline's {_fmt(base)} by {worse_by:.4f} "
                    f"(tolerance {tolerance:g})"
                )
                verdicts.setdefault(name, []).append("baseline")
            else:
                passes.append(f"{name} {_fmt(value)} is within {tolerance:g} of the baseline's {_fmt(base)} or better")
                verdicts.setdefault(name, [])
    if not thresholds and baseline_metrics is None and not baseline_problem:
        passes.append("no thresholds and no baseline configured: nothing to check")
    blessed = not failures
    return blessed, (passes if blessed else failures), verdicts


def render_report(
    result: EvaluationResult, model_dir: str, eval_path: str, baseline_model_dir: str, verdicts: dict
) -> str:
    """Render the Markdown evaluation report."""
    verdict = "BLESSED" if result.blessed else "NOT BLESSED"
    lines = [
        f"# Model evaluation: {verdict}",
        "",
        f"- model: `{model_dir}` (sha256 `{result.model_sha256}`)",
        f"- eval data: `{eval_path}` ({result.eval_rows} rows)",
        f"- task: {result.task}",
        f"- baseline: `{baseline_model_dir}`" if baseline_model_dir else "- baseline: none",
        f"- tolerance against the baseline: {result.tolerance:g}",
        "",
        "## Metrics",
        "",
        "| metric | candidate | baseline | threshold | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in metric_names(result.task):
        base = "-" if result.baseline_metrics is None else _fmt(result.baseline_metrics.get(name))
        bound = _bound_text(name, result.thresholds[name]) if name in result.thresholds else "-"
        failed = verdicts.get(name)
        outcome = "-" if failed is None else (f"**FAIL** ({', '.join(failed)})" if failed else "pass")
        lines.append(f"| {name} | {_fmt(result.metrics.get(name))} | {base} | {bound} | {outcome} |")
    lines += ["", "## Verdict", "", f"**{verdict}**", ""]
    lines += [f"- {reason}" for reason in result.reasons]
    if result.confusion_matrix:
        labels = result.confusion_matrix["labels"]
        lines += ["", "## Confusion matrix (rows: actual, columns: predicted)", ""]
        lines.append("| actual \\ predicted | " + " | ".join(labels) + " |")
        lines.append("| --- " * (len(labels) + 1) + "|")
        for label, row in zip(labels, result.confusion_matrix["matrix"]):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _score_baseline(baseline_model_dir: str, frame, label_column: str, eval_path: str, task: str) -> dict:
    """Load and score the baseline; raise BaselineError naming the baseline and the problem."""
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp:
        try:
            local = fetch_model_dir(baseline_model_dir, tmp)
            pipeline, metadata = load_model_dir(local, "baseline model directory")
        except DataError as exc:
            raise BaselineError(f"baseline model {baseline_model_dir} could not be loaded: {exc}") from exc
        if metadata["task"] != task:
            raise BaselineError(
                f"baseline model {baseline_model_dir} is a {metadata['task']} model; the candidate is {task}"
            )
        try:
            return score(pipeline, metadata, frame, label_column, eval_path)["metrics"]
        except DataError as exc:
            raise BaselineError(f"baseline model {baseline_model_dir} cannot score the eval data: {exc}") from exc


def evaluate(
    model_dir: str,
    eval_path: str,
    label_column: str,
    blessing_path: str,
    report_path: str,
    thresholds: dict | None = None,
    baseline_model_dir: str = "",
    tolerance: float = 0.01,
) -> EvaluationResult:
    """Evaluate a candidate model, compare it with thresholds and a baseline, write the blessing and report.

    Args:
        model_dir: Candidate model directory (``model.joblib`` + ``metadata.json``).
        eval_path: Eval data, one Parquet file with the features and the label.
        label_column: Name of the label column.
        blessing_path: Where to write the blessing JSON.
        report_path: Where to write the Markdown report.
        thresholds: Metric name -> bound; None for the task's default (``{"roc_auc": 0.7}`` for
            classification, ``{}`` for regression).
        baseline_model_dir: Baseline model directory, a local path or fsspec URL; empty for none.
        tolerance: How much worse (absolute) than the baseline the candidate may be on each compared metric.

    Returns:
        The result; ``blessed`` is False when a check failed (never an exception).

    Raises:
        ConfigError: Invalid thresholds or tolerance.
        DataError: Unreadable eval data or candidate model, or eval data the candidate cannot score.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance):
        raise ConfigError(f"tolerance: expected a finite number >= 0, got {tolerance!r}")
    if tolerance < 0:
        raise ConfigError(f"tolerance: expected a finite number >= 0, got {tolerance!r}")
    if not label_column:
        raise ConfigError("label_column: expected the name of the label column, got an empty string")
    pipeline, metadata = load_model_dir(model_dir, "candidate model directory")
    task = metadata["task"]
    checked = check_thresholds(thresholds, task)
    if metadata.get("label_column") and metadata["label_column"] != label_column:
        logger.warning(
            "label_column %r differs from the label %r the model was trained on", label_column, metadata["label_column"]
        )
    frame = read_parquet(eval_path, "eval dataset")
    if len(frame) == 0:
        raise DataError(f"{eval_path}: the eval dataset has no rows")
    scored = score(pipeline, metadata, frame, label_column, str(eval_path))

    baseline_metrics = None
    baseline_problem = None
    if baseline_model_dir:
        try:
            baseline_metrics = _score_baseline(baseline_model_dir, frame, label_column, str(eval_path), task)
        except BaselineError as exc:
            baseline_problem = str(exc)
    blessed, reasons, verdicts = decide(
        scored["metrics"], checked, baseline_metrics, float(tolerance), task, baseline_problem
    )
    result = EvaluationResult(
        blessed=blessed,
        reasons=reasons,
        metrics=scored["metrics"],
        baseline_metrics=baseline_metrics,
        thresholds=checked,
        tolerance=float(tolerance),
        task=task,
        model_sha256=metadata.get("model_sha256") or sha256_file(Path(model_dir) / MODEL_FILE),
        eval_rows=int(len(frame)),
        classes=scored["classes"],
        confusion_matrix=scored["confusion_matrix"],
        roc_curve=scored["roc_curve"],
    )
    blessing = {
        "blessed": result.blessed,
        "reasons": result.reasons,
        "metrics": result.metrics,
        "baseline_metrics": result.baseline_metrics,
        "thresholds": result.thresholds,
        "tolerance": result.tolerance,
        "model_sha256": result.model_sha256,
        "model_dir": str(model_dir),
        "baseline_model_dir": baseline_model_dir,
    }
    report = render_report(result, str(model_dir), str(eval_path), baseline_model_dir, verdicts)
    write_json(blessing_path, blessing)
    write_text(report_path, report)
    logger.info("%s: %s", "blessed" if blessed else "not blessed", result.reason)
    return result
