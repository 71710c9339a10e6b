"""What a rollout does and what it judges: :class:`RolloutPolicy` and its :class:`Thresholds`.

Both are frozen dataclasses checked on construction: a wrong value raises ConfigError naming the field and
what was expected. Each field carries its one description (``common.params.param``) so deploy's request, the
CLI and the pipeline reuse them. :meth:`RolloutPolicy.from_params` builds a policy from the flat pipeline
parameters (``rollout_strategy``, ``rollout_steps`` as ``"10,25,50,100"``, ...). Standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import param

STRATEGIES = ("canary", "blue-green", "manual")
DRIFT_METRICS = ("js", "psi")
#: Longest analysis window accepted (a day): longer is almost surely a unit mistake.
MAX_INTERVAL_SECONDS = 86400.0

#: Flat pipeline parameter -> (object, field) it sets; ``from_params`` reads these names.
FLAT_NAMES = {
    "rollout_strategy": ("policy", "strategy"),
    "rollout_steps": ("policy", "steps"),
    "step_interval_seconds": ("policy", "step_interval_seconds"),
    "min_requests": ("policy", "min_requests"),
    "max_inconclusive": ("policy", "max_inconclusive"),
    "failure_limit": ("policy", "failure_limit"),
    "min_success_rate": ("thresholds", "min_success_rate"),
    "max_p99_seconds": ("thresholds", "max_p99_seconds"),
    "max_p99_ratio": ("thresholds", "max_p99_ratio"),
    "p99_floor_seconds": ("thresholds", "p99_floor_seconds"),
    "max_prediction_drift": ("thresholds", "max_prediction_drift"),
    "drift_metric": ("thresholds", "drift_metric"),
}


def _number(value: Any, field: str, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{field}: expected {expected}, got {value!r}")
    return float(value)


def _integer(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{field}: expected an integer >= {minimum}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The checks of each analysis window: canary against absolute bounds and against stable."""

    min_success_rate: float = param(
        "Least share of the canary's requests that are not server errors (5xx) in a window, 0..1; 4xx are the "
        "client's and do not count against the canary.",
        0.99,
    )
    max_p99_seconds: float = param("Largest canary p99 request latency in seconds (absolute bound), > 0.", 1.0)
    max_p99_ratio: float = param(
        "Largest canary p99 / stable p99, >= 1; judged only when stable's p99 is at least p99_floor_seconds.", 2.0
    )
    p99_floor_seconds: float = param(
        "Below this stable p99 (seconds) latency ratios are noise: the ratio check passes with a note, >= 0.", 0.05
    )
    max_prediction_drift: float = param(
        "Largest distance between the canary's and stable's predicted-score histograms in a window: Jensen-Shannon "
        "distance (base 2, 0..1; must be in (0, 1]) or PSI (> 0), per drift_metric.",
        0.1,
    )
    drift_metric: str = param("``js`` (Jensen-Shannon distance, base 2) or ``psi`` (population stability).", "js")

    def __post_init__(self) -> None:
        """Check every threshold (ConfigError names the field)."""
        rate = _number(self.min_success_rate, "min_success_rate", "a number from 0 to 1 (e.g. 0.99)")
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"min_success_rate: expected a number from 0 to 1 (e.g. 0.99), got {rate}")
        p99 = _number(self.max_p99_seconds, "max_p99_seconds", "a number of seconds > 0 (e.g. 1.0)")
        if p99 <= 0:
            raise ConfigError(f"max_p99_seconds: expected a number of seconds > 0 (e.g. 1.0), got {p99}")
        ratio = _number(self.max_p99_ratio, "max_p99_ratio", "a number >= 1 (e.g. 2.0)")
        if ratio < 1.0:
            raise ConfigError(f"max_p99_ratio: expected a number >= 1 (e.g. 2.0), got {ratio}")
        floor = _number(self.p99_floor_seconds, "p99_floor_seconds", "a number of seconds >= 0 (e.g. 0.05)")
        if floor < 0:
            raise ConfigError(f"p99_floor_seconds: expected a number of seconds >= 0 (e.g. 0.05), got {floor}")
        if self.drift_metric not in DRIFT_METRICS:
            raise ConfigError(f"drift_metric: expected one of {', '.join(DRIFT_METRICS)}, got {self.drift_metric!r}")
        expected = "a number in (0, 1] (JS distance)" if self.drift_metric == "js" else "a number > 0 (PSI)"
        drift = _number(self.max_prediction_drift, "max_prediction_drift", expected)
        if drift <= 0 or (self.drift_metric == "js" and drift > 1.0):
            raise ConfigError(f"max_prediction_drift: expected {expected}, got {drift}")
        for name, value in (
            ("min_success_rate", rate),
            ("max_p99_seconds", p99),
            ("max_p99_ratio", ratio),
            ("p99_floor_seconds", floor),
            ("max_prediction_drift", drift),
        ):
            object.__setattr__(self, name, value)


def parse_steps(value: Any, field: str = "steps") -> tuple[int, ...]:
    """Traffic percents from ``"10,25,50,100"`` or a list/tuple of integers, checked.

    Raises:
        ConfigError: Not integers, not strictly increasing, outside 1..100, or the last is not 100.
    """
    expected = "strictly increasing integer percents from 1 to 100 ending with 100, e.g. '10,25,50,100'"
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
        try:
            value = [int(part) for part in parts]
        except ValueError:
            raise ConfigError(f"{field}: expected {expected}, got {value!r}") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{field}: expected {expected}, got {value!r}")
    for step in value:
        if isinstance(step, bool) or not isinstance(step, int):
            raise ConfigError(f"{field}: expected {expected}, got {value!r} ({step!r} is not an integer)")
        if not 1 <= step <= 100:
            raise ConfigError(f"{field}: expected {expected}, got {step} (outside 1..100)")
    for before, after in zip(value, value[1:]):
        if after <= before:
            raise ConfigError(f"{field}: expected {expected}, got {after} after {before} (not increasing)")
    if value[-1] != 100:
        raise ConfigError(f"{field}: expected {expected}, got last step {value[-1]} (the last must be 100)")
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class RolloutPolicy:
    """How traffic moves to a candidate model and when it is promoted or rolled back."""

    strategy: str = param(
        "``canary`` (traffic in steps, each judged over a window), ``blue-green`` (judged at 0% on a preview URL, "
        "then 100% at once) or ``manual`` (the first step's traffic; a person promotes).",
        "canary",
    )
    steps: tuple[int, ...] = param(
        "Canary traffic percents, strictly increasing from 1 to 100 and ending with 100 (e.g. ``10,25,50,100``).",
        (10, 25, 50, 100),
    )
    step_interval_seconds: float = param(
        "The analysis window of each step in seconds (canary and stable read over the same window), > 0.", 60.0
    )
    min_requests: int = param(
        "Canary requests needed in a window to judge it; fewer make the window inconclusive (never a pass).", 50
    )
    max_inconclusive: int = param(
        "Consecutive inconclusive windows at one step (or of the blue-green preview) that roll back, >= 1.", 3
    )
    failure_limit: int = param(
        "Failed analyses tolerated over the whole rollout (the step is judged again); one more rolls back, >= 0.", 0
    )
    thresholds: Thresholds = param("The checks of each window (see Thresholds).", Thresholds())

    def __post_init__(self) -> None:
        """Check every field (ConfigError names the field)."""
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        object.__setattr__(self, "steps", parse_steps(self.steps))
        interval = _number(self.step_interval_seconds, "step_interval_seconds", "a number of seconds > 0")
        if not 0 < interval <= MAX_INTERVAL_SECONDS:
            raise ConfigError(
                f"step_interval_seconds: expected a number of seconds > 0 and <= {MAX_INTERVAL_SECONDS:g}, "
                f"got {interval}"
            )
        object.__setattr__(self, "step_interval_seconds", interval)
        _integer(self.min_requests, "min_requests", 0)
        _integer(self.max_inconclusive, "max_inconclusive", 1)
        _integer(self.failure_limit, "failure_limit", 0)
        if not isinstance(self.thresholds, Thresholds):
            raise ConfigError(f"thresholds: expected a Thresholds, got {type(self.thresholds).__name__}")

    @classmethod
    def from_params(cls, **flat: Any) -> "RolloutPolicy":
        """Build a policy from flat pipeline parameters (:data:`FLAT_NAMES`); other names are ignored.

        ``rollout_steps`` may be ``"10,25,50,100"`` or a list of integers. Integral floats (a JSON ``50.0``) are
        accepted for the integer fields. Errors name the flat parameter.
        """
        policy_kwargs: dict[str, Any] = {}
        threshold_kwargs: dict[str, Any] = {}
        for name, value in flat.items():
            if name not in FLAT_NAMES:
                continue
            target, field = FLAT_NAMES[name]
            if field in ("min_requests", "max_inconclusive", "failure_limit") and _integral_float(value):
                value = int(value)
            (policy_kwargs if target == "policy" else threshold_kwargs)[field] = value
        try:
            thresholds = Thresholds(**threshold_kwargs)
            return cls(**policy_kwargs, thresholds=thresholds)
        except ConfigError as exc:
            field, sep, rest = str(exc).partition(":")
            flat_name = {f: n for n, (_, f) in FLAT_NAMES.items()}.get(field)
            if sep and flat_name and flat_name != field:
                raise ConfigError(f"{flat_name}:{rest}") from exc
            raise

    def to_params(self) -> dict[str, Any]:
        """Return the flat parameters that build this policy again (``rollout_steps`` as a comma string)."""
        flat: dict[str, Any] = {}
        for name, (target, field) in FLAT_NAMES.items():
            value = getattr(self if target == "policy" else self.thresholds, field)
            flat[name] = ",".join(str(step) for step in value) if field == "steps" else value
        return flat

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready description (nested thresholds, steps as a list)."""
        out = dataclasses.asdict(self)
        out["steps"] = list(self.steps)
        return out


def _integral_float(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()
