"""The window analysis: distances, the noise bound, each check and the verdict (inconclusive never passes)."""

from __future__ import annotations

import math
import random

import pytest

from kfp_tabular.components.deployment.rollout.analysis import (
    DRIFT_ALPHA,
    analyze,
    drift_alpha,
    drift_noise_bound,
    js_distance,
    psi,
    simulated_psi_bound,
)
from kfp_tabular.components.deployment.rollout.metrics import BIN_EDGES, RevisionMetrics
from kfp_tabular.components.deployment.rollout.policy import RolloutPolicy, Thresholds

# A plausible score distribution over the 21 bins (the last, above 1.0, empty).
SHAPE = (1, 2, 3, 5, 8, 10, 12, 12, 10, 8, 6, 5, 4, 3, 3, 2, 2, 1, 1, 1, 0)
assert len(SHAPE) == len(BIN_EDGES)


def counts(n: int, shape=SHAPE) -> tuple[float, ...]:
    """``n`` predictions spread exactly in proportion to ``shape`` (rounded)."""
    total = sum(shape)
    return tuple(float(round(n * s / total)) for s in shape)


def metrics(role, requests, *, errors=0, client=0, p99=0.1, scores=None) -> RevisionMetrics:
    return RevisionMetrics(
        role=role,
        selector=f'model_sha256="{role}"',
        requests=float(requests),
        server_errors=float(errors),
        client_errors=float(client),
        p99_seconds=p99 if requests else None,
        score_counts=counts(requests - errors - client) if scores is None else scores,
    )


# -- distances ------------------------------------------------------------------------------------------------


def test_js_distance_bounds_and_symmetry() -> None:
    assert js_distance([5, 5, 0], [5, 5, 0]) == 0.0
    assert js_distance([3, 0], [0, 7]) == pytest.approx(1.0)
    a, b = [10, 20, 30, 0], [30, 20, 10, 5]
    assert js_distance(a, b) == pytest.approx(js_distance(b, a))
    assert 0 < js_distance(a, b) < 1
    # Scale-free: counts are normalized.
    assert js_distance([1, 2, 3], [2, 2, 2]) == pytest.approx(js_distance([100, 200, 300], [7, 7, 7]))


def test_js_distance_known_value() -> None:
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); JSD = 1/2 log2(4/3) + 1/2 (1/2 log2(2/3) + 1/2 log2(2)).
    jsd = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5 * math.log2(2))
    assert js_distance([4, 0], [1, 1]) == pytest.approx(math.sqrt(jsd))


def test_psi_known_value_and_smoothing() -> None:
    # No empty bins: the plain formula (smoothing changes it by ~1e-4 relative).
    p, q = [30, 70], [50, 50]
    plain = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert psi(p, q) == pytest.approx(plain, rel=1e-3)
    assert psi(p, p) == 0.0
    # An empty bin on one side is finite (epsilon), large.
    assert math.isfinite(psi([10, 0], [5, 5])) and psi([10, 0], [5, 5]) > 2
    # Bins empty on both sides change nothing.
    assert psi([3, 7, 0, 0], [5, 5, 0, 0]) == pytest.approx(psi([3, 7], [5, 5]))


def test_distances_refuse_mismatched_or_empty_vectors() -> None:
    with pytest.raises(ValueError, match="same bins"):
        js_distance([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least one count"):
        psi([0, 0], [1, 1])
    with pytest.raises(ValueError, match="finite counts"):
        js_distance([1, float("nan")], [1, 1])


@pytest.mark.parametrize(("n_canary", "n_stable"), [(60, 540), (300, 2700), (2000, 18000)])
def test_js_noise_bound_holds_on_samples_of_one_distribution(n_canary, n_stable) -> None:
    """Samples that cannot differ exceed the bound about alpha of the time (1% here; the test allows 3%)."""
    rng = random.Random(12)
    bins = list(range(len(SHAPE)))

    def sample(n):
        out = [0.0] * len(bins)
        for b in rng.choices(bins, weights=SHAPE, k=n):
            out[b] += 1
        return out

    occupied = sum(1 for s in SHAPE if s)
    bound = drift_noise_bound("js", n_canary, n_stable, occupied)
    exceed = sum(js_distance(sample(n_canary), sample(n_stable)) > bound for _ in range(300))
    assert exceed <= 9, f"{exceed}/300 exceed the {DRIFT_ALPHA} bound {bound:.3f}"
    # And the bound is not loose: at twice the distance it would be exceeded by none; half the bound often.
    half = sum(js_distance(sample(n_canary), sample(n_stable)) > bound / 2 for _ in range(100))
    assert half > 10


def test_noise_bound_shrinks_with_sample_size() -> None:
    small = drift_noise_bound("js", 50, 450, 20)
    large = drift_noise_bound("js", 5000, 45000, 20)
    assert small > 0.2 and large < 0.05
    assert drift_noise_bound("psi", 5000, 45000, 20) < drift_noise_bound("psi", 50, 450, 20)
    assert drift_noise_bound("js", 0, 10, 20) == math.inf


# -- checks and verdict ---------------------------------------------------------------------------------------


def test_identical_revisions_pass() -> None:
    result = analyze(metrics("canary", 500), metrics("stable", 4500), RolloutPolicy())
    assert result.verdict == "passed", result
    assert [c.name for c in result.checks] == ["success_rate", "p99_seconds", "p99_ratio", "prediction_drift"]
    assert all(c.passed for c in result.checks)
    drift = result.check("prediction_drift")
    assert drift.canary == pytest.approx(0.0, abs=0.02) and drift.threshold == 0.1


def test_server_errors_fail_client_errors_do_not() -> None:
    policy = RolloutPolicy()
    failed = analyze(metrics("canary", 500, errors=10), metrics("stable", 4500), policy)
    assert failed.verdict == "failed"
    check = failed.check("success_rate")
    assert check.canary == pytest.approx(0.98) and check.passed is False and check.threshold == 0.99
    assert "success_rate 0.98 vs threshold 0.99" in failed.reason
    fine = analyze(metrics("canary", 500, client=100), metrics("stable", 4500), policy)
    assert fine.verdict == "passed" and fine.check("success_rate").canary == 1.0


def test_latency_absolute_and_ratio() -> None:
    policy = RolloutPolicy()
    slow = analyze(metrics("canary", 500, p99=1.5), metrics("stable", 4500, p99=0.1), policy)
    assert slow.verdict == "failed"
    assert slow.check("p99_seconds").passed is False and slow.check("p99_ratio").passed is False
    relative = analyze(metrics("canary", 500, p99=0.5), metrics("stable", 4500, p99=0.2), policy)
    assert relative.verdict == "failed" and relative.check("p99_seconds").passed
    assert relative.check("p99_ratio").canary == pytest.approx(2.5)
    # Below the floor a ratio is noise: 10x of 2 ms passes, with a note.
    tiny = analyze(metrics("canary", 500, p99=0.02), metrics("stable", 4500, p99=0.002), policy)
    assert tiny.verdict == "passed"
    ratio = tiny.check("p99_ratio")
    assert ratio.passed and ratio.canary == pytest.approx(10) and "floor" in ratio.note


def test_shifted_predictions_fail_on_drift() -> None:
    shifted = tuple(reversed(SHAPE[:-1])) + (0,)
    canary = metrics("canary", 500, scores=counts(500, shifted))
    result = analyze(canary, metrics("stable", 4500), RolloutPolicy())
    assert result.verdict == "failed"
    drift = result.check("prediction_drift")
    assert drift.passed is False and drift.canary > 0.3 and "differ" in drift.note
    psi_policy = RolloutPolicy(thresholds=Thresholds(drift_metric="psi", max_prediction_drift=0.25))
    assert analyze(canary, metrics("stable", 4500), psi_policy).check("prediction_drift").canary > 0.25


def test_small_difference_within_noise_passes_with_a_note() -> None:
    # A moderate reshuffle over few predictions: above the threshold but within what 50 predictions give.
    shape = list(SHAPE)
    shape[5], shape[12] = shape[12], shape[5]  # JS distance 0.14 between the shapes
    canary = metrics("canary", 50, scores=counts(50, tuple(shape)))
    result = analyze(canary, metrics("stable", 450), RolloutPolicy(min_requests=50))
    drift = result.check("prediction_drift")
    assert drift.canary > 0.1 and drift.passed, drift
    assert "within sampling noise" in drift.note
    assert drift.limit > drift.canary > drift.threshold and f"fails above {drift.limit:.3g}" in drift.note
    # The same shapes over many predictions are a real difference.
    many = analyze(
        metrics("canary", 50000, scores=counts(50000, tuple(shape))), metrics("stable", 450000), RolloutPolicy()
    )
    assert many.check("prediction_drift").passed is False


@pytest.mark.parametrize("requests", [0, 49])
def test_too_few_canary_requests_is_inconclusive_even_when_checks_fail(requests) -> None:
    canary = metrics("canary", requests, errors=requests // 2)
    result = analyze(canary, metrics("stable", 4500), RolloutPolicy(min_requests=50))
    assert result.verdict == "inconclusive"
    assert f"{requests} canary requests, fewer than min_requests 50" in result.reason


def test_no_stable_predictions_is_inconclusive() -> None:
    stable = metrics("stable", 0)
    result = analyze(metrics("canary", 500), stable, RolloutPolicy())
    assert result.verdict == "inconclusive"
    assert result.check("prediction_drift").passed is None and "no stable predictions" in result.reason


def test_canary_without_predictions_is_inconclusive_not_passed() -> None:
    canary = metrics("canary", 500, client=500)  # every request refused at the door
    result = analyze(canary, metrics("stable", 4500), RolloutPolicy())
    assert result.verdict == "inconclusive" and "no canary predictions" in result.reason


def test_unmeasured_predictions_pass_the_drift_check_with_a_note() -> None:
    canary = metrics("canary", 500, scores=())
    stable = metrics("stable", 4500, scores=())
    result = analyze(canary, stable, RolloutPolicy())
    assert result.verdict == "passed" and "not measured" in result.check("prediction_drift").note


def test_failure_beats_nothing_missing() -> None:
    # A failing check with a stable p99 missing (ratio not judged) still fails.
    stable = RevisionMetrics("stable", "s", 0.0, 0.0, 0.0, None, counts(4500))
    result = analyze(metrics("canary", 500, errors=100), stable, RolloutPolicy())
    assert result.verdict == "failed" and result.check("p99_ratio").passed is None


@pytest.mark.parametrize(("n_canary", "n_stable"), [(50, 450), (300, 2700)])
def test_psi_small_sample_bound_is_simulated_and_holds(n_canary, n_stable) -> None:
    """PSI's epsilon inflates small samples far beyond the chi-square approximation; the simulated bound holds."""
    rng = random.Random(7)
    bins = list(range(len(SHAPE)))

    def sample(n):
        out = [0.0] * len(bins)
        for b in rng.choices(bins, weights=SHAPE, k=n):
            out[b] += 1
        return out

    bound = simulated_psi_bound(counts(n_canary), counts(n_stable))
    occupied = sum(1 for s in SHAPE if s)
    assert bound > drift_noise_bound("psi", n_canary, n_stable, occupied)
    assert simulated_psi_bound(counts(n_canary), counts(n_stable)) == bound  # seeded: reproducible
    values = [psi(sample(n_canary), sample(n_stable)) for _ in range(300)]
    assert sum(v > bound for v in values) <= 9
    assert sum(v > drift_noise_bound("psi", n_canary, n_stable, occupied) for v in values) > 9


def test_psi_policy_passes_identical_small_windows_and_fails_shifted_ones() -> None:
    policy = RolloutPolicy(thresholds=Thresholds(drift_metric="psi", max_prediction_drift=0.25))
    same = analyze(metrics("canary", 60), metrics("stable", 540), policy)
    assert same.verdict == "passed", same
    shifted = tuple(reversed(SHAPE[:-1])) + (0,)
    # PSI is noisy over sparse bins: at 60 predictions this mirror shift (JS distance 0.4, caught by js) is within
    # PSI's sampling noise; at 600 it is not.
    small = analyze(metrics("canary", 60, scores=counts(60, shifted)), metrics("stable", 540), policy)
    assert small.verdict == "passed" and "within sampling noise" in small.check("prediction_drift").note
    assert (
        analyze(metrics("canary", 60, scores=counts(60, shifted)), metrics("stable", 540), RolloutPolicy()).verdict
        == "failed"
    )
    moved = analyze(metrics("canary", 600, scores=counts(600, shifted)), metrics("stable", 5400), policy)
    assert moved.verdict == "failed" and moved.check("prediction_drift").canary > 0.5


def test_drift_alpha_is_shared_by_a_canary_s_steps() -> None:
    assert drift_alpha(RolloutPolicy()) == pytest.approx(DRIFT_ALPHA / 4)
    assert drift_alpha(RolloutPolicy(steps=(100,))) == DRIFT_ALPHA
    assert drift_alpha(RolloutPolicy(strategy="blue-green")) == DRIFT_ALPHA
    # More windows, a higher bound each: the same difference fails a one-window rollout only.
    four = drift_noise_bound("js", 200, 1800, 20, drift_alpha(RolloutPolicy()))
    one = drift_noise_bound("js", 200, 1800, 20, DRIFT_ALPHA)
    assert four > one
    canary, stable = metrics("canary", 200), metrics("stable", 1800)
    note = analyze(canary, stable, RolloutPolicy()).check("prediction_drift").note
    used = drift_noise_bound("js", canary.predictions, stable.predictions, 20, DRIFT_ALPHA / 4)
    assert f"noise bound {used:.3g}" in note


def _mixture(weight: float) -> tuple[float, ...]:
    """SHAPE mixed with its mirror image: a distribution a chosen JS distance away from SHAPE."""
    mirror = tuple(reversed(SHAPE[:-1])) + (0,)
    total, total_m = sum(SHAPE), sum(mirror)
    return tuple((1 - weight) * s / total + weight * m / total_m for s, m in zip(SHAPE, mirror))


def test_a_true_difference_below_the_threshold_is_rarely_failed_one_above_it_is_caught() -> None:
    """A real but small difference (JS 0.06 < 0.1) plus noise must not fail; a real 0.2 must, at the same sizes.

    The case a cluster test met: a good candidate (true JS 0.04 to stable) measured 0.106 over ~800 predictions,
    above both the threshold and the noise bound of a no-difference null. The limit adds the two as divergences.
    """
    rng = random.Random(7)
    bins = list(range(len(SHAPE)))

    def sample(weights, n):
        out = [0.0] * len(bins)
        for b in rng.choices(bins, weights=weights, k=n):
            out[b] += 1
        return tuple(out)

    base = tuple(s / sum(SHAPE) for s in SHAPE)
    close = min((w / 200 for w in range(200)), key=lambda w: abs(js_distance(_mixture(w), base) - 0.06))
    far = min((w / 200 for w in range(200)), key=lambda w: abs(js_distance(_mixture(w), base) - 0.2))
    policy = RolloutPolicy(min_requests=50)

    def failed(weight, trials=200):
        fails = 0
        for _ in range(trials):
            canary = sample(_mixture(weight), 800)
            stable = sample(base, 3000)
            result = analyze(metrics("canary", 800, scores=canary), metrics("stable", 3000, scores=stable), policy)
            fails += result.check("prediction_drift").passed is False
        return fails

    assert failed(close) <= 4  # <= 2%: the rollout's alpha (1%) with slack for 200 draws
    assert failed(far, trials=50) >= 48
