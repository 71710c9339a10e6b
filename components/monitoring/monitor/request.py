"""The monitor's parameters (all but its artifacts): one description and one check each.

The component builds a :class:`MonitorRequest` first thing and hands it to ``core.monitor``; a pipeline's CLI and
local runner can build the same request from a run's arguments before anything runs. Standard library only.
"""

from __future__ import annotations

import dataclasses
import datetime
import math

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import param

#: Longest window (hours): 31 days of daily partitions.
MAX_WINDOW_HOURS = 24.0 * 31


def _fraction(name: str, value, low_open: bool = True, high: float = 1.0) -> float:
    expected = f"{name}: expected a number in {'(' if low_open else '['}0, {high:g}], got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(expected)
    if not (0.0 < value <= high if low_open else 0.0 <= value <= high):
        raise ConfigError(expected)
    return float(value)


def parse_time(text: str, field: str) -> datetime.datetime:
    """Parse an ISO 8601 time (``2026-11-30T12:00:00Z``, ``2026-11-30``); a time without zone is UTC."""
    try:
        parsed = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise ConfigError(f"{field}: expected an ISO 8601 time like 2026-11-30T12:00:00Z, got {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class MonitorRequest:
    """What to monitor and when to retrain; checked on construction (``ConfigError`` names the field)."""

    served_data_uri: str = param(
        "Where the collector writes served rows: a local path or fsspec URL (``s3://``, ``gs://``) holding "
        "``date=YYYY-MM-DD/*.parquet`` batches with the feature columns, ``prediction``, ``score``, "
        "``model_sha256`` and ``time``."
    )
    lineage_uri: str = param(
        "The deployed model's lineage record (``common.lineage``: a JSON file, or a directory holding "
        "``lineage.json``; local path or fsspec URL): the training statistics, schema, blessing metrics and "
        "evaluation prediction distribution are read from it, never passed by hand."
    )
    window_end: str = param(
        "End of the window (exclusive), ISO 8601 (``2026-11-30T12:00:00Z``; no zone: UTC); empty: now.", ""
    )
    window_hours: float = param(
        f"Length of the window in hours, in (0, {MAX_WINDOW_HOURS:g}]; the previous window (for drift) is the "
        "same length just before it.",
        24.0,
    )
    min_rows: int = param(
        "Fewest served rows in the window to decide on: with fewer, the values are still reported but the decision "
        "is no retrain, saying so (a window without rows is an error). The previous window needs as many to be "
        "compared for drift.",
        200,
    )
    numeric_threshold: float = param(
        "Jensen-Shannon distance (base 2, in (0, 1]) above which a numeric feature skewed (serving vs training "
        "statistics) or drifted (this window vs the previous one); flagged only when also beyond sampling noise "
        "(alpha). A schema's skew_comparator / drift_comparator for a feature wins (TFDV's semantics).",
        0.1,
    )
    categorical_threshold: float = param(
        "L-infinity distance (largest change of one value's share, in (0, 1]) above which a categorical feature "
        "skewed or drifted; flagged only when also beyond sampling noise. A schema's comparator wins.",
        0.1,
    )
    alpha: float = param(
        "False-positive rate of each comparison (skew, drift, prediction drift), in (0, 0.5]: a distance is "
        "flagged only when sampling noise at these sample sizes reaches it with probability below alpha / "
        "(features compared) (Bonferroni).",
        0.01,
    )
    prediction_drift_threshold: float = param(
        "Jensen-Shannon distance (base 2, in (0, 1]) between the served predictions and the evaluation's over the "
        "same fixed bins above which the prediction distribution drifted (the rollout analysis' default); flagged "
        "only when also beyond sampling noise.",
        0.1,
    )
    performance_tolerance: float = param(
        "How far (absolute, in [0, 1]) the estimated accuracy or ROC AUC (CBPE, from the served scores) may fall "
        "below the blessing's metric before the model is retrained.",
        0.05,
    )

    def __post_init__(self):
        for name in ("served_data_uri", "lineage_uri"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{name}: expected a local path or URL, got {value!r}")
        if not isinstance(self.window_end, str):
            raise ConfigError(f"window_end: expected an ISO 8601 time or empty (now), got {self.window_end!r}")
        if self.window_end:
            parse_time(self.window_end, "window_end")
        hours = self.window_hours
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= MAX_WINDOW_HOURS:
            raise ConfigError(f"window_hours: expected a number of hours in (0, {MAX_WINDOW_HOURS:g}], got {hours!r}")
        object.__setattr__(self, "window_hours", float(hours))
        rows = self.min_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ConfigError(f"min_rows: expected a whole number of rows >= 1, got {rows!r}")
        for name in ("numeric_threshold", "categorical_threshold", "prediction_drift_threshold"):
            object.__setattr__(self, name, _fraction(name, getattr(self, name)))
        object.__setattr__(self, "alpha", _fraction("alpha", self.alpha, high=0.5))
        tolerance = _fraction("performance_tolerance", self.performance_tolerance, low_open=False)
        object.__setattr__(self, "performance_tolerance", tolerance)

    def window(self, now: datetime.datetime | None = None) -> tuple[datetime.datetime, datetime.datetime]:
        """Return ``(start, end)`` of the window in UTC (``end`` exclusive)."""
        if self.window_end:
            end = parse_time(self.window_end, "window_end")
        else:
            end = now or datetime.datetime.now(datetime.timezone.utc)
        return end - datetime.timedelta(hours=self.window_hours), end
