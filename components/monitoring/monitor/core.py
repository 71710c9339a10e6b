"""Monitoring a deployed model's served traffic: skew, drift, anomalies, predictions, estimated performance.

:func:`monitor` reads the deployed model's lineage record (``common.lineage``) and, from it, the model's training
statistics, schema, blessing metrics and evaluation prediction distribution; reads the served rows of a time
window (``served``: the collector's Parquet batches) and then, reusing validate's code (TFDV statistics, the
sample-size-aware distances of ``validate.drift``, TFDV's validation in ``validate.anomalies``):

1. **skew**: each feature of the schema's ``SERVING`` environment, served window vs training statistics
   (TFDV's skew comparator semantics: a schema's ``skew_comparator`` threshold wins; Jensen-Shannon distance for
   numeric features, L-infinity for categorical ones), flagged when above its threshold *and* sampling noise;
2. **drift**: the same, this window vs the previous window of the same length (``drift_comparator``), when that
   window holds at least ``min_rows`` rows (else the report says there was none to compare with);
3. **anomalies**: the window's statistics validated against the schema in ``SERVING`` (reported);
4. **predictions**: the served scores (classifiers) or values (regressors) counted over the evaluation's fixed
   bins, the Jensen-Shannon distance to the evaluation's counts and the rollout analysis' noise bound;
5. **estimated performance** (classifiers with scores): CBPE (``cbpe``) against the blessing's metrics.

Every feature's values are reported, flagged or not. The decision: retrain when a feature skewed or drifted,
the predictions drifted, or the estimated accuracy / ROC AUC fell below the blessing's minus the tolerance; a
window with fewer than ``min_rows`` rows decides no retrain, saying so. Every output is written after all is
computed, atomically: a failure leaves none of them.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import tempfile
from typing import Any

from kfp_tabular.components.common import lineage as lineages
from kfp_tabular.components.common.artifacts import atomic_path, write_json, write_text
from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.monitoring.monitor import served
from kfp_tabular.components.monitoring.monitor.request import MonitorRequest

logger = logging.getLogger(__name__)

SKEW = "serving_vs_train"
DRIFT = "window_vs_previous"


@dataclasses.dataclass(frozen=True)
class PredictionDrift:
    """The served predictions against the evaluation's, over the same fixed bins."""

    what: str
    kind: str
    edges: list[float]
    served_counts: list[int]
    eval_counts: list[float]
    distance: float
    threshold: float
    noise_bound: float
    n_served: int
    n_eval: int
    flagged: bool

    def as_dict(self) -> dict:
        """Return the JSON form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class MonitorResult:
    """What :func:`monitor` found and decided (``decision`` is the JSON the retrain trigger reads)."""

    retrain: bool
    reasons: list[str]
    window: dict[str, str]
    previous_window: dict[str, str]
    rows: int
    previous_rows: int
    min_rows: int
    model_sha256: str
    lineage_uri: str
    served_data_uri: str
    task: str
    skew: list = dataclasses.field(default_factory=list)
    drift: list = dataclasses.field(default_factory=list)
    anomalies: list = dataclasses.field(default_factory=list)
    prediction: PredictionDrift | None = None
    performance: dict | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    decisions: list[Decision] = dataclasses.field(default_factory=list)

    @property
    def skewed_features(self) -> list[str]:
        """Features whose skew was flagged."""
        return sorted({m.feature for m in self.skew if m.flagged})

    @property
    def drifted_features(self) -> list[str]:
        """Features whose skew or drift was flagged (what retraining is about)."""
        return sorted({m.feature for m in [*self.skew, *self.drift] if m.flagged})

    def decision(self) -> dict[str, Any]:
        """Return the decision JSON: ``retrain``, ``reasons``, ``drifted_features``, ``window``, ``rows`` and more."""
        return {
            "retrain": self.retrain,
            "reasons": list(self.reasons),
            "drifted_features": self.drifted_features,
            "skewed_features": self.skewed_features,
            "window_drifted_features": sorted({m.feature for m in self.drift if m.flagged}),
            "prediction_drift": self.prediction.as_dict() if self.prediction else None,
            "estimated_performance": self.performance,
            "anomalies": len(self.anomalies),
            "window": dict(self.window),
            "previous_window": dict(self.previous_window),
            "rows": self.rows,
            "previous_rows": self.previous_rows,
            "min_rows": self.min_rows,
            "model_sha256": self.model_sha256,
            "task": self.task,
            "lineage_uri": self.lineage_uri,
            "served_data_uri": self.served_data_uri,
            "decisions": [d.as_dict() for d in self.decisions],
        }

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for a KFP ``Metrics`` artifact (every feature's distances, flagged or not)."""
        out = {
            "retrain": float(self.retrain),
            "rows": float(self.rows),
            "previous_rows": float(self.previous_rows),
            "skewed_features": float(len(self.skewed_features)),
            "drifted_features": float(len(self.drifted_features)),
            "anomalies": float(len(self.anomalies)),
        }
        for m in [*self.skew, *self.drift]:
            out[f"{m.comparison}_{m.feature}"] = float(m.distance)
        if self.prediction:
            out["prediction_drift"] = self.prediction.distance
        for name, value in (self.performance or {}).get("estimated", {}).items():
            if isinstance(value, (int, float)) and value is not None:
                out[f"estimated_{name}"] = float(value)
        return out


def _filter_model(window: served.Window, sha: str, what: str) -> tuple[Any, list[Decision]]:
    """Keep the rows of the deployed model (``model_sha256`` equal, or null: unattributed)."""
    rows = window.rows
    if len(rows) == 0:
        return rows, []
    if served.MODEL_SHA256 not in rows.columns:
        reason = (
            f"the {what} has no {served.MODEL_SHA256!r} column: all {len(rows):,} rows taken as the deployed model's"
        )
        return rows, [Decision("monitor", served.MODEL_SHA256, "assumed", reason)]
    column = rows[served.MODEL_SHA256]
    unknown = column.isna()
    other = ~unknown & (column.astype(str) != sha)
    decisions = []
    if other.any():
        counts = column[other].astype(str).value_counts()
        listed = ", ".join(f"{s[:12]}: {n:,}" for s, n in counts.items())
        decisions.append(
            Decision(
                "monitor",
                served.MODEL_SHA256,
                "excluded",
                f"{int(other.sum()):,} of {len(rows):,} rows of the {what} were served by other models ({listed}); "
                f"only model {sha[:12]}'s rows are monitored",
            )
        )
    if unknown.any():
        decisions.append(
            Decision(
                "monitor",
                served.MODEL_SHA256,
                "assumed",
                f"{int(unknown.sum()):,} rows of the {what} carry no model sha256 (KServe's logger agent without "
                "the collector's --model-sha map): taken as the deployed model's",
            )
        )
    return rows[~other].reset_index(drop=True), decisions


def _statistics(frame, features: list[str], schema, workdir: str, name: str):
    """TFDV statistics of the features of ``frame`` (written to Parquet, validate's statistics path)."""
    from kfp_tabular.components.data_processing.validate import statistics

    path = os.path.join(workdir, f"{name}.parquet")
    frame[features].to_parquet(path, index=False)
    stats = statistics.generate_statistics(path, "dataframe", [], schema)
    stats.datasets[0].name = name
    return stats


def _binary_scores(rows, classes: list) -> tuple[Any, list[Decision]]:
    """Return the probability of ``classes[1]`` per row from ``score`` (and ``prediction``), with any decision.

    The contract's binary score is the probability of ``classes[1]`` (what the model server observes). A collector
    that stored the predicted class's probability instead shows it: every score >= 0.5 while both classes are
    predicted; then ``p1 = score`` where ``classes[1]`` was predicted, ``1 - score`` elsewhere (a decision).
    """
    import numpy as np

    score = rows[served.SCORE].astype("float64").to_numpy()
    if served.PREDICTION not in rows.columns:
        return score, []
    predicted = rows[served.PREDICTION].astype(str).to_numpy()
    second = predicted == str(classes[1])
    if np.all(score >= 0.5) and second.any() and (~second).any():
        reason = (
            f"every score is >= 0.5 while both classes are predicted: the scores are the predicted class's "
            f"probability; the probability of {classes[1]!r} is the score where it was predicted, 1 - score elsewhere"
        )
        return np.where(second, score, 1.0 - score), [Decision("monitor", served.SCORE, "interpreted", reason)]
    return score, []


def _prediction_drift(rows, reference: dict, request: MonitorRequest, classes: list | None):
    """Compare the served predictions with the evaluation's counts: ``(PredictionDrift | None, notes, decisions)``."""
    from kfp_tabular.components.deployment.rollout import analysis
    from kfp_tabular.components.evaluation.evaluate import distribution

    column = served.SCORE if reference["kind"] == "score" else served.PREDICTION
    if column not in rows.columns or rows[column].isna().all():
        return None, [f"predictions: the served rows have no {column!r} values: not compared with the evaluation's"], []
    decisions = []
    values = rows[column].dropna()
    if reference["kind"] == "score" and classes and len(classes) == 2:
        values, decisions = _binary_scores(rows.dropna(subset=[column]), classes)
    try:
        import numpy as np

        values = np.asarray(values, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise DataError(f"served data: column {column!r} must hold numbers ({exc})") from exc
    counts = distribution.count(values, reference["edges"])
    n_served, n_eval = sum(counts), float(sum(reference["counts"]))
    if n_served == 0:
        return None, [f"predictions: no finite {column!r} value in the window: not compared"], decisions
    distance = analysis.js_distance(counts, reference["counts"])
    occupied = sum(1 for a, b in zip(counts, reference["counts"]) if a > 0 or b > 0)
    bound = analysis.drift_noise_bound("js", n_served, n_eval, occupied, request.alpha)
    found = PredictionDrift(
        what=reference.get("what", column),
        kind=reference["kind"],
        edges=list(reference["edges"]),
        served_counts=counts,
        eval_counts=list(reference["counts"]),
        distance=distance,
        threshold=request.prediction_drift_threshold,
        noise_bound=bound,
        n_served=int(n_served),
        n_eval=int(n_eval),
        flagged=distance > request.prediction_drift_threshold and distance > bound,
    )
    return found, [], decisions


def _eval_estimate(reference: dict | None, classes: list) -> float | None:
    """CBPE's accuracy on the evaluation's own binned scores (bin midpoints): how calibrated the scores were."""
    if not reference or reference.get("kind") != "score":
        return None
    edges = [0.0, *reference["edges"]]
    total = float(sum(reference["counts"]))
    expected = 0.0
    for i, n in enumerate(reference["counts"][: len(edges) - 1]):
        mid = (edges[i] + edges[i + 1]) / 2
        expected += n * (max(mid, 1 - mid) if len(classes) == 2 else mid)
    return expected / total if total else None


def _performance(rows, record, request: MonitorRequest, reference: dict | None):
    """CBPE of the window against the blessing's metrics; return (performance dict | None, notes)."""
    import numpy as np

    from kfp_tabular.components.monitoring.monitor import cbpe

    if record.task != "classification":
        return None, ["estimated performance: not estimated for a regressor (CBPE needs predicted probabilities)"]
    if served.SCORE not in rows.columns or rows[served.SCORE].isna().all():
        return None, ["estimated performance: the served rows have no 'score': not estimated"]
    scored = rows.dropna(subset=[served.SCORE])
    classes = list(record.classes or [])
    if len(classes) == 2:
        p1, _ = _binary_scores(scored, classes)
        estimate = cbpe.estimate_binary(np.asarray(p1, dtype="float64"))
    else:
        estimate = cbpe.estimate_multiclass(scored[served.SCORE].astype("float64").to_numpy())
    metrics = record.metrics or record.blessing.get("metrics", {})
    compared = {}
    for name, value in (("accuracy", estimate.accuracy), ("roc_auc", estimate.roc_auc)):
        blessed = metrics.get(name)
        if value is None or not isinstance(blessed, (int, float)):
            continue
        floor = blessed - request.performance_tolerance
        compared[name] = {"estimated": value, "blessing": blessed, "floor": floor, "below": value < floor}
    notes = []
    on_eval = _eval_estimate(reference, classes)
    if on_eval is not None and isinstance(metrics.get("accuracy"), (int, float)):
        gap = on_eval - metrics["accuracy"]
        if abs(gap) > request.performance_tolerance / 2:
            notes.append(
                f"estimated performance: on the evaluation's own scores CBPE gives accuracy {on_eval:.3f} against the "
                f"measured {metrics['accuracy']:.3f} ({gap:+.3f}): the scores are not well calibrated, so the "
                "estimates are off by about as much"
            )
    performance = {
        "method": "CBPE (confidence-based performance estimation, assumes calibrated scores)",
        "estimated": estimate.as_dict(),
        "estimated_on_eval_scores": on_eval,
        "compared": compared,
        "tolerance": request.performance_tolerance,
    }
    return performance, notes


def _reasons(result: MonitorResult, request: MonitorRequest) -> tuple[bool, list[str]]:
    """Decide: retrain or not, and why (every reason with its numbers)."""
    if result.rows < request.min_rows:
        return False, [
            f"only {result.rows:,} served rows in the window ({result.window['start']} to {result.window['end']}), "
            f"fewer than min_rows {request.min_rows:,}: no decision on so little data"
        ]
    reasons = []
    for m in [*result.skew, *result.drift]:
        if m.flagged:
            what = "skew (serving vs training)" if m.comparison == SKEW else "drift (this window vs the previous)"
            metric = (
                "JS distance" if m.metric == "js_distance" else "L-infinity" if m.metric == "l_infinity" else m.metric
            )
            reasons.append(
                f"{what}: {m.feature}: {metric} {m.distance:.3f} > threshold {m.threshold:.3g} and > noise bound "
                f"{m.noise_bound:.3f} (n {m.n_a:,} vs {m.n_b:,})"
            )
    p = result.prediction
    if p is not None and p.flagged:
        reasons.append(
            f"prediction drift: {p.what}: JS distance {p.distance:.3f} from the evaluation's > threshold "
            f"{p.threshold:.3g} and > noise bound {p.noise_bound:.3f} (n {p.n_served:,} vs {p.n_eval:,})"
        )
    for name, c in (result.performance or {}).get("compared", {}).items():
        if c["below"]:
            reasons.append(
                f"estimated performance: {name} {c['estimated']:.3f} (CBPE) < blessing's {c['blessing']:.3f} - "
                f"tolerance {request.performance_tolerance:g} = {c['floor']:.3f}"
            )
    if reasons:
        return True, reasons
    why = [
        f"no feature skewed or drifted past its threshold ({len(result.skew)} skew, {len(result.drift)} drift checks)"
    ]
    if p is not None:
        if p.distance <= p.threshold:
            why.append(f"predictions within {p.threshold:g} of the evaluation's (JS distance {p.distance:.3f})")
        else:
            why.append(
                f"predictions' JS distance {p.distance:.3f} from the evaluation's is above {p.threshold:g} but within "
                f"sampling noise (bound {p.noise_bound:.3f} at n {p.n_served:,} vs {p.n_eval:,})"
            )
    for name, c in (result.performance or {}).get("compared", {}).items():
        why.append(f"estimated {name} {c['estimated']:.3f} >= {c['floor']:.3f}")
    return False, why


def monitor(
    request: MonitorRequest,
    *,
    decision_path: str | os.PathLike | None = None,
    report_path: str | os.PathLike | None = None,
    report_html_path: str | os.PathLike | None = None,
    served_data_path: str | os.PathLike | None = None,
    now: datetime.datetime | None = None,
) -> MonitorResult:
    """Monitor one window of served traffic against the deployed model's lineage; write the outputs.

    Args:
        request: The checked parameters (where the served data and the lineage record are, the window, thresholds).
        decision_path: Output: the decision JSON (:meth:`MonitorResult.decision`).
        report_path: Output: the Markdown report.
        report_html_path: Output: the self-contained HTML report.
        served_data_path: Output: the window's served rows of the deployed model (Parquet), for retraining.
        now: The current time (tests); the window ends here when ``request.window_end`` is empty.

    Raises:
        DataError: The lineage record, its statistics or schema, or the served data is unreadable or malformed;
            the window holds no row of the deployed model; served rows lack a feature of the schema.
        ConfigError: A location the lineage record names does not exist.
    """
    from kfp_tabular.components.data_processing.validate import anomalies as tfdv_anomalies
    from kfp_tabular.components.data_processing.validate import drift, tfdv_io
    from kfp_tabular.components.data_processing.validate import schema as schemas

    record = lineages.read(request.lineage_uri)
    start, end = request.window(now)
    previous_start = start - (end - start)
    window = served.read_window(request.served_data_uri, start, end)
    previous = served.read_window(request.served_data_uri, previous_start, start)
    if len(window.rows) == 0:
        raise DataError(
            f"served data {request.served_data_uri!r}: no rows in the window {start.isoformat()} to {end.isoformat()} "
            f"({len(window.files)} batch file(s) in the date partitions it touches)"
        )
    rows, decisions = _filter_model(window, record.model_sha256, "window")
    previous_rows, more = _filter_model(previous, record.model_sha256, "previous window")
    decisions += more
    if len(rows) == 0:
        raise DataError(
            f"served data {request.served_data_uri!r}: none of the window's {len(window.rows):,} rows was served by "
            f"the deployed model {record.model_sha256} (lineage {request.lineage_uri})"
        )

    from kfp_tabular.components.common.model_dir import normalize_uri

    schema = tfdv_io.load_schema(normalize_uri(record.schema_uri))  # KFP's minio:// artifact URIs read as s3://
    train = tfdv_io.load_statistics(
        normalize_uri(record.statistics_uri), f"lineage {request.lineage_uri}: statistics_uri"
    )
    label = record.label_column
    skew_thresholds = schemas.drift_thresholds(
        schema, request.numeric_threshold, request.categorical_threshold, skew=True, label_column=label
    )
    features = list(skew_thresholds)
    missing = [f for f in features if f not in rows.columns]
    if missing:
        raise DataError(
            f"served data {request.served_data_uri!r}: the window's rows lack feature column(s) "
            f"{', '.join(map(repr, missing))} of the model's schema ({record.schema_uri}); columns: "
            f"{', '.join(c for c in rows.columns if c not in served.SERVICE_COLUMNS)}"
        )
    drift_thresholds = {
        f: t
        for f, t in schemas.drift_thresholds(
            schema, request.numeric_threshold, request.categorical_threshold, skew=False, label_column=label
        ).items()
        if f in skew_thresholds
    }
    notes: list[str] = []
    extra = [c for c in rows.columns if c not in skew_thresholds and c not in served.SERVICE_COLUMNS and c != label]
    if extra:
        notes.append(f"served columns outside the schema's SERVING features, not monitored: {', '.join(extra)}")
    with tempfile.TemporaryDirectory(prefix="monitor-") as workdir:
        serving = _statistics(rows, features, schema, workdir, "serving")
        compare_previous = len(previous_rows) >= request.min_rows
        before = _statistics(previous_rows, features, schema, workdir, "previous") if compare_previous else None
    _, found_anomalies = tfdv_anomalies.validate_serving(serving, schema)
    notes += schemas.unseen_values(serving, schemas.for_split(schema, serving), "serving")
    serving_s = drift.summaries(serving)
    skew, said = drift.compare(
        serving_s,
        drift.summaries(train),
        drift.Comparison(SKEW, "skew", True),
        skew_thresholds,
        request.alpha,
        "train statistics",
    )
    notes += said
    drift_found = []
    if before is not None:
        drift_found, said = drift.compare(
            serving_s,
            drift.summaries(before),
            drift.Comparison(DRIFT, "drift", True),
            drift_thresholds,
            request.alpha,
            "previous window statistics",
        )
        notes += said
    else:
        notes.append(
            f"drift: the previous window ({previous_start.isoformat()} to {start.isoformat()}) holds "
            f"{len(previous_rows):,} rows of this model, fewer than min_rows {request.min_rows:,}: no drift "
            "comparison this time (skew against the training statistics still is)"
        )
    reference = record.prediction_distribution or record.blessing.get("prediction_distribution")
    prediction = None
    if reference:
        prediction, said, more = _prediction_drift(rows, reference, request, record.classes)
        notes += said
        decisions += [d for d in more if d not in decisions]
    else:
        notes.append(
            "predictions: the lineage record and its blessing carry no evaluation prediction distribution "
            "(a model evaluated before it was recorded): not compared"
        )
    performance, said = _performance(rows, record, request, reference)
    notes += said
    order = lambda m: (not m.flagged, m.feature)  # noqa: E731
    result = MonitorResult(
        retrain=False,
        reasons=[],
        window=window.describe(),
        previous_window={"start": previous_start.isoformat(), "end": start.isoformat()},
        rows=len(rows),
        previous_rows=len(previous_rows),
        min_rows=request.min_rows,
        model_sha256=record.model_sha256,
        lineage_uri=request.lineage_uri,
        served_data_uri=request.served_data_uri,
        task=record.task,
        skew=sorted(skew, key=order),
        drift=sorted(drift_found, key=order),
        anomalies=found_anomalies,
        prediction=prediction,
        performance=performance,
        notes=notes,
        decisions=decisions,
    )
    result.retrain, result.reasons = _reasons(result, request)

    from kfp_tabular.components.monitoring.monitor import report

    markdown = report.render_markdown(result)
    page = report.render_html(result, train, serving, before, schema) if report_html_path else ""
    if served_data_path:
        with atomic_path(served_data_path) as staged:
            rows.to_parquet(staged, index=False)
    if report_path:
        write_text(report_path, markdown)
    if report_html_path:
        write_text(report_html_path, page)
    if decision_path:
        write_json(decision_path, result.decision())
    logger.info("%s: %s", "retrain" if result.retrain else "no retrain", "; ".join(result.reasons))
    return result
