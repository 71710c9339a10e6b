"""Judging one analysis window: the canary against absolute bounds and against stable (pure functions).

:func:`analyze` runs four checks and gives a verdict:

- ``success_rate``: canary's share of requests that are not server errors >= ``min_success_rate``;
- ``p99_seconds``: canary p99 latency <= ``max_p99_seconds``;
- ``p99_ratio``: canary p99 / stable p99 <= ``max_p99_ratio``, judged only when stable's p99 is at least
  ``p99_floor_seconds`` (below it a ratio of two tiny latencies is noise: the check passes with a note);
- ``prediction_drift``: the distance between the canary's and stable's predicted-score histograms (the same fixed
  bins) fails when it is above :func:`drift_limit`: ``max_prediction_drift`` plus the distance sampling noise
  alone exceeds with probability :func:`drift_alpha` at these sample sizes (the noise bound), added as
  divergences add; a small window cannot fail a model on noise, and the note says what the window could resolve.

Verdict: ``inconclusive`` when the canary served fewer than ``min_requests`` requests (or none), or stable made
no predictions to compare with, or the canary made none (never a pass on no data); else ``failed`` when a check
failed, else ``passed``. ``Check.passed`` is None for a check that could not be judged.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import statistics
import zlib
from statistics import NormalDist
from typing import Any, Sequence

from kfp_tabular.components.deployment.rollout.metrics import RevisionMetrics
from kfp_tabular.components.deployment.rollout.policy import RolloutPolicy

VERDICTS = ("passed", "failed", "inconclusive")
#: PSI's smoothing: each bin's share becomes (share + PSI_EPSILON) / (1 + k * PSI_EPSILON) so an empty bin on one
#: side gives a large but finite term (ln(share / 1e-4)) instead of infinity.
PSI_EPSILON = 1e-4
#: Probability that sampling noise alone exceeds the drift noise bound somewhere in a rollout: a canary's windows
#: share it (Bonferroni: DRIFT_ALPHA / number of steps each), so a good model is rarely rolled back on noise.
DRIFT_ALPHA = 0.01
#: PSI's noise bound is simulated below this many canary predictions (the chi-square approximation holds above).
PSI_SIMULATE_BELOW = 1000
PSI_DRAWS = 200


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of a window: the values compared, the bound, the result (None: not judged) and why.

    ``canary`` is the value judged against ``threshold``: the canary's success rate or p99, the p99 ratio, the
    drift distance. ``stable`` is stable's own value where there is one (success rate, p99), else None. ``limit``
    is the value the check actually fails beyond when that is not the threshold itself (the drift check: the
    threshold plus the window's sampling noise, :func:`drift_limit`), else None.
    """

    name: str
    canary: float | None
    stable: float | None
    threshold: float
    passed: bool | None
    note: str = ""
    limit: float | None = None


@dataclasses.dataclass(frozen=True)
class StepAnalysis:
    """The verdict of one window, its checks and why in one phrase (without the verdict: "12 canary requests, ...")."""

    verdict: str
    checks: list[Check]
    reason: str = ""

    def check(self, name: str) -> Check:
        """Return the check called ``name``."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    @property
    def failed_checks(self) -> list[Check]:
        """The checks that failed."""
        return [check for check in self.checks if check.passed is False]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)


def _shares(counts: Sequence[float], name: str) -> list[float]:
    if any(not math.isfinite(c) or c < 0 for c in counts):
        raise ValueError(f"{name}: expected finite counts >= 0, got {list(counts)}")
    total = float(sum(counts))
    if total <= 0:
        raise ValueError(f"{name}: expected at least one count > 0 (an empty histogram has no distribution)")
    return [c / total for c in counts]


def _pair(p: Sequence[float], q: Sequence[float]) -> tuple[list[float], list[float]]:
    if len(p) != len(q):
        raise ValueError(f"expected count vectors over the same bins, got {len(p)} and {len(q)} bins")
    return _shares(p, "p"), _shares(q, "q")


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2) of two count vectors: 0 identical, 1 disjoint.

    No smoothing is needed: each side is compared with the mixture, which is positive wherever either is.
    """
    ps, qs = _pair(p, q)
    divergence = 0.0
    for a, b in zip(ps, qs):
        m = (a + b) / 2
        if a > 0:
            divergence += 0.5 * a * math.log2(a / m)
        if b > 0:
            divergence += 0.5 * b * math.log2(b / m)
    return math.sqrt(min(1.0, max(0.0, divergence)))


def psi(p: Sequence[float], q: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Return the PSI of two count vectors, sum((p - q) * ln(p / q)), shares smoothed by ``epsilon``.

    Bins empty on both sides are left out (they contribute nothing either way). Rules of thumb: < 0.1 stable,
    0.1-0.25 moderate, > 0.25 large shift.
    """
    ps, qs = _pair(p, q)
    kept = [(a, b) for a, b in zip(ps, qs) if a > 0 or b > 0]
    k = len(kept)
    total = 0.0
    for a, b in kept:
        a = (a + epsilon) / (1 + k * epsilon)
        b = (b + epsilon) / (1 + k * epsilon)
        total += (a - b) * math.log(a / b)
    return max(0.0, total)


def drift_limit(metric: str, threshold: float, noise: float) -> float:
    """Return the measured drift above which a window fails: the threshold plus this window's sampling noise.

    A measured distance mixes the true difference with sampling noise. Squared JS distance (a divergence) and PSI
    add up approximately (the true divergence plus the noise's chi-square share), so a window fails when the
    measurement exceeds what a true difference *at the threshold* plus noise at its ``alpha`` quantile would
    give: ``sqrt(threshold**2 + noise**2)`` for the JS distance, ``threshold + noise`` for PSI. A model whose true
    distance is below the threshold is rolled back on noise with probability at most ``alpha``; a window too small
    to resolve the threshold says so in the check's note instead of failing a good model.
    """
    if metric == "psi":
        return threshold + noise
    return min(1.0, math.sqrt(threshold**2 + noise**2))


def drift_noise_bound(metric: str, n_canary: float, n_stable: float, bins: int, alpha: float = DRIFT_ALPHA) -> float:
    """Return the drift value noise alone exceeds with probability ``alpha`` (one distribution, these sizes).

    Two samples of sizes n and m from one distribution over k occupied bins: the homogeneity chi-square
    X^2 = nm/(n+m) * sum((p - q)^2 / pi) ~ chi2(k - 1); JS divergence (nats) ~= X^2 (1/n + 1/m) / 8, so the squared
    JS distance (base 2) ~= (1/n + 1/m) chi2(k - 1) / (8 ln 2); PSI ~= (1/n + 1/m) chi2(k - 1). The chi-square
    quantile is Wilson-Hilferty's approximation.
    """
    if n_canary <= 0 or n_stable <= 0:
        return math.inf
    quantile = _chi2_quantile(max(1, bins - 1), 1 - alpha)
    scale = 1 / n_canary + 1 / n_stable
    if metric == "psi":
        return scale * quantile
    return min(1.0, math.sqrt(scale * quantile / (8 * math.log(2))))


def _chi2_quantile(dof: float, probability: float) -> float:
    """Wilson-Hilferty's approximation of the chi-square quantile (any dof > 0)."""
    z = NormalDist().inv_cdf(probability)
    return max(0.0, dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3)


def simulated_psi_bound(
    canary_counts: Sequence[float], stable_counts: Sequence[float], alpha: float = DRIFT_ALPHA
) -> float:
    """Return the PSI sampling noise alone exceeds with probability ``alpha``, by simulation (small samples).

    PSI's epsilon makes a bin that happens to be empty on one side cost ``share * ln(share / epsilon)``, which the
    chi-square approximation does not see: with fewer than :data:`PSI_SIMULATE_BELOW` canary predictions,
    :data:`PSI_DRAWS` pairs of samples are drawn from the pooled histogram (seeded by the counts, so a window's
    verdict is reproducible; stable's size capped at ``max(2000, 4 * canary)``, which errs towards a higher
    bound) and a scaled chi-square ``s * chi2(d)`` fitted to their PSI (mean and variance) gives the quantile.
    """
    pooled = [a + b for a, b in zip(canary_counts, stable_counts)]
    bins = [i for i, c in enumerate(pooled) if c > 0]
    cumulative = list(itertools.accumulate(pooled[i] for i in bins))
    n_canary = max(1, round(sum(canary_counts)))
    n_stable = max(1, min(round(sum(stable_counts)), max(2000, 4 * n_canary)))
    rng = random.Random(zlib.crc32(repr([round(c) for c in pooled] + [n_canary, n_stable]).encode()))

    def sample(n: int) -> list[float]:
        out = [0.0] * len(bins)
        for index in rng.choices(range(len(bins)), cum_weights=cumulative, k=n):
            out[index] += 1
        return out

    values = [psi(sample(n_canary), sample(n_stable)) for _ in range(PSI_DRAWS)]
    mean = statistics.fmean(values)
    variance = statistics.pvariance(values, mean)
    if mean <= 0 or variance <= 0:
        return max(values)
    scale, dof = variance / (2 * mean), 2 * mean * mean / variance
    return scale * _chi2_quantile(dof, 1 - alpha)


def drift_alpha(policy: RolloutPolicy) -> float:
    """Return the false-alarm probability of one window's drift check: DRIFT_ALPHA over the canary's steps."""
    return DRIFT_ALPHA / (len(policy.steps) if policy.strategy == "canary" else 1)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _success_check(canary: RevisionMetrics, stable: RevisionMetrics, policy: RolloutPolicy) -> Check:
    bound = policy.thresholds.min_success_rate
    rate = canary.success_rate
    if rate is None:
        return Check("success_rate", None, stable.success_rate, bound, None, "no canary requests in the window")
    note = (
        f"{canary.server_errors:.0f} server errors, {canary.client_errors:.0f} client errors (not counted) in "
        f"{canary.requests:.0f} requests"
    )
    return Check("success_rate", rate, stable.success_rate, bound, rate >= bound, note)


def _latency_checks(canary: RevisionMetrics, stable: RevisionMetrics, policy: RolloutPolicy) -> list[Check]:
    t = policy.thresholds
    c99, s99 = canary.p99_seconds, stable.p99_seconds
    if c99 is None:
        absolute = Check("p99_seconds", None, s99, t.max_p99_seconds, None, "no canary latency in the window")
    else:
        absolute = Check("p99_seconds", c99, s99, t.max_p99_seconds, c99 <= t.max_p99_seconds)
    if c99 is None or s99 is None:
        which = "canary" if c99 is None else "stable"
        ratio = Check("p99_ratio", None, None, t.max_p99_ratio, None, f"no {which} latency to compare")
    elif s99 < t.p99_floor_seconds:
        value = c99 / s99 if s99 > 0 else None
        note = f"stable p99 {s99:.4g}s < floor {t.p99_floor_seconds:g}s: a ratio of small latencies is noise"
        ratio = Check("p99_ratio", value, None, t.max_p99_ratio, True, note)
    else:
        value = c99 / s99
        note = f"canary p99 {c99:.4g}s / stable p99 {s99:.4g}s"
        ratio = Check("p99_ratio", value, None, t.max_p99_ratio, value <= t.max_p99_ratio, note)
    return [absolute, ratio]


def _drift_check(canary: RevisionMetrics, stable: RevisionMetrics, policy: RolloutPolicy) -> Check:
    t = policy.thresholds
    metric = t.drift_metric
    if not canary.score_counts and not stable.score_counts:
        return Check("prediction_drift", None, None, t.max_prediction_drift, True, "not measured (no score query)")
    n_c, n_s = canary.predictions, stable.predictions
    if n_c <= 0 or n_s <= 0:
        which = "canary" if n_c <= 0 else "stable"
        return Check("prediction_drift", None, None, t.max_prediction_drift, None, f"no {which} predictions")
    value = js_distance(canary.score_counts, stable.score_counts)
    if metric == "psi":
        value = psi(canary.score_counts, stable.score_counts)
    bins = sum(1 for a, b in zip(canary.score_counts, stable.score_counts) if a > 0 or b > 0)
    if metric == "psi" and n_c < PSI_SIMULATE_BELOW:
        noise = simulated_psi_bound(canary.score_counts, stable.score_counts, drift_alpha(policy))
    else:
        noise = drift_noise_bound(metric, n_c, n_s, bins, drift_alpha(policy))
    limit = drift_limit(metric, t.max_prediction_drift, noise)
    passed = value <= limit
    name = "JS distance" if metric == "js" else "PSI"
    note = f"{name} over {bins} occupied bins, {n_c:.0f} canary vs {n_s:.0f} stable predictions"
    note += f"; noise bound {noise:.3g}, fails above {limit:.3g}"
    if not passed:
        note += " (more than the threshold and this window's sampling noise together: the predictions differ)"
    elif value > t.max_prediction_drift:
        note += " (above the threshold but within sampling noise at these sizes)"
    elif noise > t.max_prediction_drift:
        note += f" (this window resolves only differences above {noise:.3g})"
    return Check("prediction_drift", value, None, t.max_prediction_drift, passed, note, limit)


def analyze(canary: RevisionMetrics, stable: RevisionMetrics, policy: RolloutPolicy) -> StepAnalysis:
    """Judge one window (see the module docstring); ``stable`` is what the canary is compared with."""
    checks = [_success_check(canary, stable, policy), *_latency_checks(canary, stable, policy)]
    checks.append(_drift_check(canary, stable, policy))
    drift = checks[-1]
    if canary.requests <= 0 or canary.requests < policy.min_requests:
        reason = f"{canary.requests:.0f} canary requests, fewer than min_requests {policy.min_requests}"
        return StepAnalysis("inconclusive", checks, reason)
    if drift.passed is None:
        reason = f"prediction drift not judged ({drift.note})"
        return StepAnalysis("inconclusive", checks, reason)
    failed = [c for c in checks if c.passed is False]
    if failed:
        parts = [f"{c.name} {_fmt(c.canary)} vs threshold {_fmt(c.threshold)}" for c in failed]
        return StepAnalysis("failed", checks, "; ".join(parts))
    unjudged = [c.name for c in checks if c.passed is None]
    if unjudged:
        return StepAnalysis("inconclusive", checks, f"not judged: {', '.join(unjudged)}")
    return StepAnalysis("passed", checks, "every check within its threshold")
