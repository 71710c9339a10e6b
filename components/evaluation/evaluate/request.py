"""The evaluate parameters: one description and one check each (used by the component, the core, CLI and runner).

Which thresholds apply depends on the task, known for sure only once the model is read: the request checks
what it can alone (names, bounds, ranges), :meth:`EvaluateRequest.check_for_task` checks the rest before a
run, and :func:`check_thresholds` is what the evaluation applies. Standard library only.
"""

from __future__ import annotations

import dataclasses
import logging
import math

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import param

logger = logging.getLogger(__name__)

CLASSIFICATION_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
HIGHER_IS_BETTER = frozenset({"roc_auc", "accuracy", "precision", "recall", "f1", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
#: What ``thresholds=None`` means for each task.
DEFAULT_THRESHOLDS = {"classification": {"roc_auc": 0.7}, "regression": {}}
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
MODEL_TASKS = ("classification", "regression")


def metric_names(task: str) -> tuple[str, ...]:
    """Names of the metrics computed (and allowed as thresholds) for a task."""
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def _check_bounds(thresholds: dict | None, task: str | None = None) -> None:
    """Refuse a non-mapping, a metric of neither task, or a bound that is not finite inside the metric's range."""
    if thresholds is None:
        return
    if not isinstance(thresholds, dict):
        raise ConfigError(f"thresholds: expected a mapping of metric name to bound, got {type(thresholds).__name__}")
    for name, bound in thresholds.items():
        if name not in METRIC_RANGES:
            valid = metric_names(task) if task else tuple(METRIC_RANGES)
            model = f" for a {task} model" if task else ""
            raise ConfigError(f"thresholds: unknown metric {name!r}{model}; valid: {', '.join(valid)}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise ConfigError(f"thresholds: bound for {name!r} must be a finite number, got {bound!r}")
        low, high = METRIC_RANGES[name]
        if not low <= bound <= high:
            raise ConfigError(f"thresholds: bound for {name!r} must lie in [{low}, {high}], got {bound!r}")


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
    _check_bounds(thresholds, task)
    valid = metric_names(task)
    other = "regression" if task == "classification" else "classification"
    checked = {name: float(bound) for name, bound in thresholds.items() if name in valid}
    skipped = [name for name in thresholds if name not in valid]
    if skipped and not checked:
        names = ", ".join(skipped)
        raise ConfigError(
            f"thresholds: unknown metric {skipped[0]!r} for a {task} model ({names} applies to {other} only); "
            f"valid: {', '.join(valid)}"
        )
    if skipped:
        logger.info("thresholds: %s apply to %s models only; not checked for this %s model", skipped, other, task)
    return checked


@dataclasses.dataclass(frozen=True)
class EvaluateRequest:
    """How a candidate model is judged."""

    label_column: str = param("Name of the label column.")
    thresholds: dict | None = param(
        "Metric name -> bound. Higher-is-better metrics (roc_auc, accuracy, precision, recall, f1, r2) must be >= "
        "the bound, lower-is-better ones (log_loss, rmse, mae) <= it. Metrics of the other task are skipped (the "
        "default, AUC >= 0.7 and R2 >= 0, fits either task); at least one must apply.",
        {"roc_auc": 0.7, "r2": 0.0},
    )
    baseline_model_uri: str = param(
        "Model directory of the current model (local path or fsspec URL such as ``s3://bucket/models/churn/v3``); "
        "the candidate must not be worse by more than ``tolerance`` on each threshold metric (or on roc_auc / rmse "
        "when there are no thresholds). Empty: no baseline.",
        "",
    )
    tolerance: float = param("Allowed absolute regression against the baseline (a finite number >= 0).", 0.01)

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str) or not self.label_column:
            raise ConfigError(f"label_column: expected the name of the label column, got {self.label_column!r}")
        _check_bounds(self.thresholds)
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", dict(self.thresholds))
        if not isinstance(self.baseline_model_uri, str):
            raise ConfigError(
                f"baseline_model_uri: expected a path or URL, or empty for none, got {self.baseline_model_uri!r}"
            )
        tolerance = self.tolerance
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance):
            raise ConfigError(f"tolerance: expected a finite number >= 0, got {tolerance!r}")
        if tolerance < 0:
            raise ConfigError(f"tolerance: expected a finite number >= 0, got {tolerance!r}")
        object.__setattr__(self, "tolerance", float(tolerance))

    def check_for_task(self, task: str) -> None:
        """Raise ConfigError unless the thresholds can apply to a model of ``task``, before any run.

        Args:
            task: ``classification``, ``regression``, or ``auto`` (the task is decided from the data later:
                the thresholds must then apply to at least one of the two).
        """
        if task not in (*MODEL_TASKS, "auto"):
            raise ConfigError(f"task: expected one of auto, {', '.join(MODEL_TASKS)}, got {task!r}")
        errors = []
        for candidate in MODEL_TASKS if task == "auto" else (task,):
            try:
                check_thresholds(self.thresholds, candidate)
                return
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
