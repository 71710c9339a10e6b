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
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from kfp_tabular.components.common import blessing as blessings
from kfp_tabular.components.common import model_dir as contract
from kfp_tabular.components.common.artifacts import write_text
from kfp_tabular.components.common.decisions import Decision, from_metadata
from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.evaluation.evaluate.report import _bound_text, _fmt, render_report  # noqa: F401
from kfp_tabular.components.evaluation.evaluate.request import (  # noqa: F401 (check_thresholds: named here too)
    HIGHER_IS_BETTER,
    EvaluateRequest,
    check_thresholds,
    metric_names,
)
from kfp_tabular.components.evaluation.evaluate.scoring import (  # noqa: F401 (named here too)
    MAX_ROC_POINTS,
    _labels_like_classes,
    _safe,
    file_columns,
    read_columns,
    score,
    thin_curve,
)

logger = logging.getLogger(__name__)

PRIMARY_METRIC = {"classification": "roc_auc", "regression": "rmse"}
#: The fields an evaluation needs in ``metadata.json``.
REQUIRED_METADATA = ("feature_order", "label_column", "task")


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
        positive_class: The class binary precision, recall, F1 and ROC AUC measure, else None.
        prediction_distribution: The candidate's predictions counted over fixed bins (``distribution``): recorded
            in the blessing for the monitor to compare served predictions with.
        curves: The HTML report's chart data from the candidate's one prediction (``scoring.score``'s ``curves``:
            PR curve, positive rate, calibration bins; regression: drawn rows), else None.
        baseline_charts: The baseline's ``confusion_matrix``, ``roc_curve`` and ``curves`` on the same data, or None
            without a (usable) baseline.
        decisions: Decisions this evaluation took (the positive class when nobody upstream chose it).
        upstream_decisions: Decisions taken upstream (the eval data's, the model's ``metadata.json``), shown in the
            report.
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
    positive_class: Any = None
    curves: dict | None = None
    prediction_distribution: dict | None = None
    baseline_charts: dict | None = None
    decisions: list = dataclasses.field(default_factory=list)
    upstream_decisions: list = dataclasses.field(default_factory=list)

    @property
    def reason(self) -> str:
        """The reasons as one line."""
        return "; ".join(self.reasons)


class BaselineError(Exception):
    """The baseline model could not be loaded or could not score the eval data (fails the gate)."""


def load_model_dir(model_dir: str | os.PathLike, what: str = "model directory"):
    """Load a model directory written by the train component (the contract of ``common.model_dir``).

    Args:
        model_dir: Directory with ``model.joblib`` and ``metadata.json``.
        what: What the directory is, for error messages.

    Returns:
        ``(pipeline, metadata, model_sha256)``; the model file is hashed once, and checked against the sha256
        recorded in ``metadata.json``.

    Raises:
        DataError: A file is missing or unreadable, a required metadata field is missing or malformed, or the
            model file does not match the sha256 recorded in ``metadata.json``.
    """
    import joblib

    if not Path(model_dir).is_dir():
        raise DataError(
            f"{model_dir}: {what} not found (expected a directory with {contract.MODEL_FILE} and "
            f"{contract.METADATA_FILE})"
        )
    metadata = contract.read_metadata(model_dir, required=REQUIRED_METADATA)
    if metadata["task"] not in contract.TASKS:
        raise DataError(
            f"{Path(model_dir) / contract.METADATA_FILE}: field 'task': expected one of "
            f"{', '.join(contract.TASKS)}, got {metadata['task']!r}"
        )
    model_sha256 = contract.verify_model_file(model_dir, metadata)
    model_path = contract.find_model_file(model_dir)
    try:
        pipeline = joblib.load(model_path)
    except Exception as exc:  # unpickling raises anything the pickled objects raise
        raise DataError(f"{model_path}: could not load the model ({type(exc).__name__}: {exc})") from exc
    return pipeline, metadata, model_sha256


def fetch_model_dir(uri: str, destination: str | os.PathLike) -> str:
    """Return a local directory holding the model at ``uri`` (a local path or an fsspec URL).

    Remote models (``s3://``, KFP's ``minio://``, ``gs://``, ``memory://``, ...) have their ``model.joblib``
    and ``metadata.json`` copied into ``destination`` (the model file first, metadata last); local paths (and
    ``file://``) are used in place.

    Raises:
        DataError: The remote directory lacks one of the files or cannot be read.
    """
    if "://" not in uri:
        return uri
    uri = contract.normalize_uri(uri)
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
    for name in contract.upload_order(contract.REQUIRED_FILES):
        try:
            fs.get_file(f"{root}/{name}", str(local / name))
        except FileNotFoundError as exc:
            raise DataError(f"{uri}: model directory has no {name}") from exc
        except OSError as exc:
            raise DataError(f"{uri}: could not copy {name} ({exc})") from exc
    return str(local)


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


def _score_baseline(
    baseline_model_dir: str,
    frame,
    label_column: str,
    eval_path: str,
    task: str,
    positive: Any = None,
    columns: list | None = None,
) -> dict:
    """Load and score the baseline (``score``'s whole result); raise BaselineError naming the baseline and the problem.

    Features the baseline needs beyond the candidate's are read from the eval file then (only those columns).
    """
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp:
        try:
            local = fetch_model_dir(baseline_model_dir, tmp)
            pipeline, metadata, _ = load_model_dir(local, "baseline model directory")
        except DataError as exc:
            raise BaselineError(f"baseline model {baseline_model_dir} could not be loaded: {exc}") from exc
        if metadata["task"] != task:
            raise BaselineError(
                f"baseline model {baseline_model_dir} is a {metadata['task']} model; the candidate is {task}"
            )
        extra = [c for c in metadata["feature_order"] if c not in frame.columns and c in (columns or [])]
        if extra:
            import pandas as pd

            frame = pd.concat([frame, read_columns(eval_path, extra)], axis=1)
        try:
            return score(pipeline, metadata, frame, label_column, eval_path, positive, columns)
        except DataError as exc:
            raise BaselineError(f"baseline model {baseline_model_dir} cannot score the eval data: {exc}") from exc


def evaluate(
    request: EvaluateRequest,
    model_dir: str | os.PathLike,
    eval_path: str | os.PathLike,
    blessing_path: str | os.PathLike,
    report_path: str | os.PathLike,
    positive_class: Any = None,
    data_decisions: list | None = None,
    report_html_path: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Evaluate a candidate model, compare it with thresholds and a baseline, write the blessing and report.

    The positive class of a binary label (what precision, recall, F1, ROC AUC and the ROC curve measure) is
    ``positive_class`` (the eval Dataset's, chosen by ingest), else the model's (``metadata.json``), else the
    minority class of the eval labels (a decision); the baseline is measured on the same class.

    Args:
        request: The label column, the thresholds (None for the task's default: ``{"roc_auc": 0.7}`` for
            classification, ``{}`` for regression), the baseline model (a local path or fsspec URL; empty for
            none) and the tolerance against it.
        model_dir: Candidate model directory (``model.joblib`` + ``metadata.json``).
        eval_path: Eval data, one Parquet file with the features and the label.
        blessing_path: Where to write the blessing JSON (``common.blessing``).
        report_path: Where to write the Markdown report.
        positive_class: The positive class of a binary label, as a class value (ingest's ``positive_class``).
        data_decisions: Decisions taken upstream about the eval data (ingest's, from its Dataset's metadata),
            listed in the report with the model's own.
        report_html_path: Where to write the self-contained HTML report (verdict, curves, confusion matrices,
            calibration, residuals, candidate and baseline side by side, thresholds drawn); None: not written.

    Returns:
        The result; ``blessed`` is False when a check failed (never an exception).

    Raises:
        ConfigError: Thresholds that do not apply to the model's task.
        DataError: Unreadable eval data or candidate model, eval data the candidate cannot score, or a positive
            class that is not one of the model's classes.
    """
    label_column, baseline_model_uri = request.label_column, request.baseline_model_uri
    pipeline, metadata, model_sha256 = load_model_dir(model_dir, "candidate model directory")
    task = metadata["task"]
    checked = check_thresholds(request.thresholds, task)
    if metadata["label_column"] != label_column:
        logger.warning(
            "label_column %r differs from the label %r the model was trained on", label_column, metadata["label_column"]
        )
    columns = file_columns(eval_path, "eval dataset")
    frame = read_columns(eval_path, [c for c in [*metadata["feature_order"], label_column] if c in columns])
    if len(frame) == 0:
        raise DataError(f"{eval_path}: the eval dataset has no rows")
    positive, decisions = _positive_class(pipeline, metadata, frame, label_column, positive_class, str(eval_path))
    scored = score(pipeline, metadata, frame, label_column, str(eval_path), positive, columns)
    del pipeline

    baseline_metrics = None
    baseline_charts = None
    baseline_problem = None
    if baseline_model_uri:
        try:
            baseline_scored = _score_baseline(
                baseline_model_uri, frame, label_column, str(eval_path), task, positive, columns
            )
            baseline_metrics = baseline_scored.pop("metrics")
            baseline_charts = baseline_scored
        except BaselineError as exc:
            baseline_problem = str(exc)
    blessed, reasons, verdicts = decide(
        scored["metrics"], checked, baseline_metrics, request.tolerance, task, baseline_problem
    )
    result = EvaluationResult(
        blessed=blessed,
        reasons=reasons,
        metrics=scored["metrics"],
        baseline_metrics=baseline_metrics,
        thresholds=checked,
        tolerance=request.tolerance,
        task=task,
        model_sha256=model_sha256,
        eval_rows=int(len(frame)),
        classes=scored["classes"],
        confusion_matrix=scored["confusion_matrix"],
        roc_curve=scored["roc_curve"],
        positive_class=positive,
        curves=scored["curves"],
        prediction_distribution=scored["distribution"],
        baseline_charts=baseline_charts,
        decisions=[*decisions, *_drawing_decisions(scored["curves"])],
        upstream_decisions=[*(data_decisions or []), *from_metadata(metadata.get("decisions"))],
    )
    verdict = blessings.Blessing(
        blessed=result.blessed,
        reasons=result.reasons,
        model_sha256=result.model_sha256,
        metrics=result.metrics,
        baseline_metrics=result.baseline_metrics,
        thresholds=result.thresholds,
        tolerance=result.tolerance,
        model_dir=str(model_dir),
        baseline_model_dir=baseline_model_uri,
        positive_class=result.positive_class,
        prediction_distribution=result.prediction_distribution,
    )
    report = render_report(result, str(model_dir), str(eval_path), baseline_model_uri, verdicts)
    blessings.write(blessing_path, verdict)
    write_text(report_path, report)
    if report_html_path is not None:
        from kfp_tabular.components.evaluation.evaluate.report_html import render_html

        write_text(report_html_path, render_html(result, str(model_dir), str(eval_path), baseline_model_uri, verdicts))
    logger.info("%s: %s", "blessed" if blessed else "not blessed", result.reason)
    for decision in result.decisions:
        logger.info("decision: %s", decision.line())
    return result


def _drawing_decisions(curves: dict | None) -> list[Decision]:
    """Return the decision to draw a sample of a regression's rows (the metrics use every row)."""
    if not curves or "rows" not in curves or len(curves["predicted"]) >= curves["rows"]:
        return []
    drawn, rows = len(curves["predicted"]), curves["rows"]
    return [
        Decision(
            "evaluate",
            "report",
            "sampled",
            f"the residual and predicted-vs-actual charts draw {drawn:,} of {rows:,} eval rows, evenly spaced in the "
            "order of the prediction (smallest and largest kept); the metrics use every row",
        )
    ]


def _positive_class(pipeline, metadata: dict, frame, label_column: str, requested: Any, source: str):
    """Return the positive class of a binary model and the decisions taken choosing it (``(None, [])`` otherwise)."""
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(pipeline, "classes_", [])]
    if metadata["task"] != "classification" or len(classes) != 2:
        return None, []

    def match(value: Any, where: str) -> Any:
        found = [c for c in classes if c == value or str(c) == str(value)]
        if not found:
            raise DataError(
                f"{where}: positive class {value!r} is not a class of the model (classes: "
                f"{', '.join(map(repr, classes))})"
            )
        return found[0]

    decisions = []
    recorded = metadata.get("positive_class")
    if requested is not None:
        positive = match(requested, source)
        if recorded is not None and match(recorded, "metadata.json") != positive:
            decisions.append(
                Decision(
                    "evaluate",
                    label_column,
                    "warning",
                    f"the model was trained with positive class {recorded!r}; measured with the eval data's "
                    f"{positive!r}",
                )
            )
        return positive, decisions
    if recorded is not None:
        return match(recorded, "metadata.json"), decisions
    labels = frame[label_column] if label_column in frame.columns else None
    if labels is None or labels.isna().any():
        return classes[-1], decisions  # score() names the problem
    y = _labels_like_classes(labels, classes, source, label_column)
    counts = [int((y == c).sum()) for c in classes]
    positive = classes[0] if counts[0] < counts[1] else classes[1]
    share = counts[classes.index(positive)] / len(y)
    decisions.append(
        Decision(
            "evaluate",
            label_column,
            "positive class",
            f"{positive!r}: the minority class of the eval data ({share:.1%} of rows); neither the eval data nor the "
            "model names one",
        )
    )
    return positive, decisions
