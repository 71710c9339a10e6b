"""Drift and skew that mean drift: sample-size-aware distances computed from two TFDV statistics protos.

Both sides are put on common bins built from the statistics alone (no raw rows: a baseline may be only the
production model's training statistics):

- **numeric** features: up to :data:`MAX_NUMERIC_BINS` bins at quantiles of the pooled distribution. Each side's
  cumulative distribution is read from its quantile histogram (:data:`QUANTILE_BUCKETS` buckets, linear within a
  bucket, a zero-width bucket is a point mass), so an outlier moves one bin's edge, not the mass of the others.
  The distance is the Jensen-Shannon distance (square root of the divergence, base 2, in [0, 1]).
- **categorical** features (BYTES, categorical INT): one bin per value of the rank histograms, an ``other`` bin for
  values beyond them; the distance is the L-infinity distance (largest difference of a value's share).

Missing values (and NaN) are a bin of their own, so a change of missingness is drift too.

Sampling noise: under "no drift" both samples come from the pooled distribution. ``n_a`` and ``n_b`` rows are
drawn from the pooled multinomial over the same bins :data:`NULL_DRAWS` times (seeded per comparison and
feature) and the distance is computed each time; a scaled chi-square ``s * chi2(d)`` fitted to the squared
distances (mean and variance) gives the tail: the p-value of the measured distance and the **noise bound**, the
distance sampling noise exceeds with probability ``alpha / m`` (Bonferroni over the ``m`` features of the
comparison). A feature is **flagged** only when its distance is above the threshold (the effect size that
matters) *and* above the noise bound (equivalently p-value < alpha / m).

numpy and scipy only, imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import zlib

from kfp_tabular.components.data_processing.validate.results import DriftMeasurement
from kfp_tabular.components.data_processing.validate.statistics import QUANTILE_BUCKETS, feature_name

JS_DISTANCE = "js_distance"
L_INFINITY = "l_infinity"
#: A feature of the baseline that the new batch lacks: the whole distribution is gone (distance 1).
MISSING = "missing"
#: Most bins a numeric feature is compared on (pooled-quantile bins: each holds ~1/10 of the pooled rows).
MAX_NUMERIC_BINS = 10
#: Numeric bins get at least this many rows of the smaller sample each (fewer bins for small samples).
MIN_ROWS_PER_BIN = 10
MIN_NUMERIC_BINS = 4
#: Draws from the pooled distribution per feature for the sampling-noise fit.
NULL_DRAWS = 500
SEED = 8_2026


@dataclasses.dataclass
class Summary:
    """One feature of one statistics proto, as distributions are read from it.

    Attributes:
        kind: ``numeric`` (quantile histogram) or ``categorical`` (value counts).
        rows: Examples of the dataset (the sample size).
        missing: Rows without a value, plus NaN values.
        buckets: Numeric: quantile buckets as rows ``(low, high, count)``, one array per dataset (several when
            merged), each sorted as TFDV writes them.
        resolution: Numeric: quantile buckets per dataset (the coarsest one's when merged); 0: no values.
        counts: Categorical: value -> count (the rank histogram).
        other: Categorical: values beyond the rank histogram.
    """

    kind: str
    rows: int
    missing: float
    buckets: list = dataclasses.field(default_factory=list)
    resolution: int = 0
    counts: dict = dataclasses.field(default_factory=dict)
    other: float = 0.0


def summaries(stats) -> dict[str, Summary]:
    """Read every top-level feature of a ``DatasetFeatureStatisticsList`` (one dataset) into a :class:`Summary`."""
    import numpy as np
    from tensorflow_metadata.proto.v0 import statistics_pb2

    quantiles = statistics_pb2.Histogram.QUANTILES
    dataset = stats.datasets[0]
    rows = int(dataset.num_examples)
    found = {}
    for feature in dataset.features:
        name = feature_name(feature)
        if feature.HasField("num_stats"):
            common = feature.num_stats.common_stats
            hist = next((h for h in feature.num_stats.histograms if h.type == quantiles), None)
            buckets = np.array(
                [(b.low_value, b.high_value, b.sample_count) for b in (hist.buckets if hist else [])], dtype=float
            ).reshape(-1, 3)
            nan = float(hist.num_nan) if hist else 0.0
            missing = float(common.num_missing) + nan
            parts = [buckets] if len(buckets) else []
            found[name] = Summary("numeric", rows, missing, buckets=parts, resolution=len(buckets))
        elif feature.HasField("string_stats"):
            s = feature.string_stats
            pairs = [(b.label, b.sample_count) for b in s.rank_histogram.buckets] or [
                (v.value, v.frequency) for v in s.top_values
            ]
            counts = {label: float(count) for label, count in pairs}
            total = float(s.common_stats.tot_num_values or s.common_stats.num_non_missing)
            other = max(total - sum(counts.values()), 0.0)
            found[name] = Summary("categorical", rows, float(s.common_stats.num_missing), counts=counts, other=other)
    return found


def merge(*sides: dict[str, Summary]) -> dict[str, Summary]:
    """One summary per feature of several datasets together (e.g. train and eval: the run's whole batch).

    Quantile buckets are kept per dataset (the cumulative counts of the union are the sum of each one's), value
    counts added. A feature missing from one dataset or summarised differently is left out.
    """
    merged = {}
    for name, first in sides[0].items():
        parts = [side.get(name) for side in sides]
        if any(part is None or part.kind != first.kind for part in parts):
            continue
        counts: dict[str, float] = {}
        for part in parts:
            for value, count in part.counts.items():
                counts[value] = counts.get(value, 0.0) + count
        numeric = first.kind == "numeric"
        with_values = [part.resolution for part in parts if part.resolution]
        merged[name] = Summary(
            first.kind,
            sum(part.rows for part in parts),
            sum(part.missing for part in parts),
            buckets=[array for part in parts for array in part.buckets],
            resolution=min(with_values) if numeric and with_values else 0,
            counts=counts,
            other=sum(part.other for part in parts),
        )
    return merged


def _cdf(summary: Summary, x):
    """Count the values <= x (each of ``x``): linear within a quantile bucket, a zero-width bucket is a point mass."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    total = np.zeros(len(x))
    for buckets in summary.buckets:
        low, high, count = buckets[:, 0], buckets[:, 1], buckets[:, 2]
        before = np.concatenate([[0.0], np.cumsum(count)])
        full = np.searchsorted(high, x, side="right")  # buckets entirely <= x (contiguous, sorted)
        part = np.minimum(full, len(count) - 1)
        width = high[part] - low[part]
        fraction = np.clip((x - low[part]) / np.where(width > 0, width, 1.0), 0.0, 1.0)
        partial = np.where((full < len(count)) & (width > 0), count[part] * fraction, 0.0)
        total += before[full] + partial
    return total


def numeric_bins(a: Summary, b: Summary):
    """Count both sides on common pooled-quantile bins (plus the missing bin): ``(counts_a, counts_b)``.

    Bin edges are chosen among the quantile-bucket edges of the side with fewer buckets (both sides' when equal),
    where that side's cumulative counts are exact; the number of bins gives the smaller sample about
    :data:`MIN_ROWS_PER_BIN` rows per bin, between :data:`MIN_NUMERIC_BINS` and :data:`MAX_NUMERIC_BINS`, and
    never more than the coarser side's quantile buckets.
    """
    import numpy as np

    values = [float(sum(part[:, 2].sum() for part in s.buckets)) for s in (a, b)]
    if not (a.resolution and b.resolution):  # a side without values: only "has values" and missing differ
        return np.array([values[0], a.missing]), np.array([values[1], b.missing])
    coarse = min(a.resolution, b.resolution)
    source = [s for s in (a, b) if s.resolution == coarse]
    edges = np.unique(np.concatenate([part[:, :2].ravel() for s in source for part in s.buckets]))
    bins = int(np.clip(min(values) // MIN_ROWS_PER_BIN, MIN_NUMERIC_BINS, MAX_NUMERIC_BINS))
    bins = min(bins, coarse)
    cum_a, cum_b = _cdf(a, edges), _cdf(b, edges)
    pooled = (cum_a + cum_b) / (values[0] + values[1])
    targets = np.arange(1, bins) / bins
    chosen = np.unique(np.abs(pooled[None, :] - targets[:, None]).argmin(axis=1))
    chosen = chosen[pooled[chosen] < 1.0]  # the last edge holds everything: it closes no bin
    cuts_a = np.concatenate([[0.0], cum_a[chosen], [values[0]]])
    cuts_b = np.concatenate([[0.0], cum_b[chosen], [values[1]]])
    counts_a = np.append(np.clip(np.diff(cuts_a), 0.0, None), a.missing)
    counts_b = np.append(np.clip(np.diff(cuts_b), 0.0, None), b.missing)
    return counts_a, counts_b


def categorical_bins(a: Summary, b: Summary):
    """Count both sides per value (union of the rank histograms), ``other`` and missing."""
    import numpy as np

    labels = sorted(set(a.counts) | set(b.counts))
    counts_a = np.array([a.counts.get(v, 0.0) for v in labels] + [a.other, a.missing])
    counts_b = np.array([b.counts.get(v, 0.0) for v in labels] + [b.other, b.missing])
    return counts_a, counts_b


def js_distance(p, q):
    """Jensen-Shannon distance (sqrt of the divergence, base 2, in [0, 1]) between rows of distributions."""
    import numpy as np

    m = (p + q) / 2.0

    def kl(x):
        safe = np.where(x > 0, x, 1.0) / np.where(m > 0, m, 1.0)
        return np.sum(np.where(x > 0, x * np.log2(safe), 0.0), axis=-1)

    return np.sqrt(np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0))


def l_infinity(p, q):
    """L-infinity distance: the largest difference of one bin's share, between rows of distributions."""
    import numpy as np

    return np.max(np.abs(p - q), axis=-1)


DISTANCES = {JS_DISTANCE: js_distance, L_INFINITY: l_infinity}


@dataclasses.dataclass(frozen=True)
class Noise:
    """The sampling-noise fit of one feature: squared distance ~ ``scale * chi2(dof)`` under "no drift"."""

    scale: float
    dof: float

    def p_value(self, distance: float) -> float:
        """Probability that sampling noise alone gives at least ``distance``."""
        from scipy import special

        if self.scale <= 0:
            return 1.0 if distance <= 1e-12 else 0.0
        return float(special.chdtrc(self.dof, distance**2 / self.scale))

    def bound(self, alpha: float) -> float:
        """Return the distance that sampling noise exceeds with probability ``alpha``."""
        from scipy import special

        if self.scale <= 0:
            return 0.0
        return float(min(1.0, (self.scale * special.chdtri(self.dof, alpha)) ** 0.5))


def sampling_noise(pooled, n_a: int, n_b: int, metric: str, rng, draws: int = NULL_DRAWS) -> Noise:
    """Fit the distance's distribution when both samples (``n_a``, ``n_b`` rows) come from ``pooled``."""
    import numpy as np

    sample_a = rng.multinomial(n_a, pooled, size=draws) / max(n_a, 1)
    sample_b = rng.multinomial(n_b, pooled, size=draws) / max(n_b, 1)
    squared = DISTANCES[metric](sample_a, sample_b) ** 2
    mean, var = float(np.mean(squared)), float(np.var(squared))
    if mean <= 0 or var <= 0:
        return Noise(0.0, 1.0)
    return Noise(scale=var / (2.0 * mean), dof=2.0 * mean * mean / var)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What to compare: the name (``eval_vs_train``, ...), the kind (``drift``/``skew``), whether it gates."""

    name: str
    kind: str
    gating: bool


def compare(
    ours: dict[str, Summary],
    theirs: dict[str, Summary],
    comparison: Comparison,
    thresholds: dict[str, tuple[float, float]],
    alpha: float,
    reference_name: str = "reference",
) -> tuple[list[DriftMeasurement], list[str]]:
    """Measure every feature of ``thresholds`` between two datasets; return measurements and notes.

    Args:
        ours: Side a (eval, the run's batch, serving): :func:`summaries` of its statistics.
        theirs: Side b (train, baseline).
        comparison: Name, kind and gating of this comparison.
        thresholds: Feature -> (numeric threshold, categorical threshold); the feature's statistics decide
            which applies (numeric summary: Jensen-Shannon distance; value counts: L-infinity).
        alpha: Family-wise false-positive rate of this comparison (Bonferroni over its features).
        reference_name: How side b is named in notes (e.g. ``baseline statistics``).
    """
    import numpy as np

    notes, pairs = [], []
    sides = comparison.name.split("_vs_")
    for feature, (numeric, categorical) in thresholds.items():
        a, b = ours.get(feature), theirs.get(feature)
        if a is not None and b is not None and a.kind == b.kind:
            pairs.append((feature, a, b, numeric if a.kind == "numeric" else categorical))
        elif a is not None and b is not None:
            notes.append(f"{comparison.name}: {feature}: summarised differently on the two sides, not compared")
        elif a is not None or b is not None:
            absent = sides[0] if a is None else sides[1]
            notes.append(f"{comparison.name}: {feature}: not in the {absent} statistics, not compared")
    coarse = sorted(
        {
            s.resolution
            for _, a, b, _ in pairs
            for s in (a, b)
            if s.kind == "numeric" and 0 < s.resolution < QUANTILE_BUCKETS
        }
    )
    if coarse:
        notes.append(
            f"{comparison.name}: statistics with only {coarse[0]} quantile buckets (this component computes "
            f"{QUANTILE_BUCKETS}): numeric features compared on at most {coarse[0]} bins, so smaller shifts go "
            f"unseen; recompute the {reference_name} with statistics.compute_statistics"
        )
    corrected = alpha / max(len(pairs), 1)
    measured = []
    for feature, a, b, threshold in pairs:
        metric = JS_DISTANCE if a.kind == "numeric" else L_INFINITY
        counts_a, counts_b = numeric_bins(a, b) if a.kind == "numeric" else categorical_bins(a, b)
        keep = (counts_a + counts_b) > 0
        counts_a, counts_b = counts_a[keep], counts_b[keep]
        total_a, total_b = counts_a.sum(), counts_b.sum()
        if total_a <= 0 or total_b <= 0:
            notes.append(f"{comparison.name}: {feature}: no rows on one side, not compared")
            continue
        p, q = counts_a / total_a, counts_b / total_b
        distance = float(DISTANCES[metric](p, q))
        pooled = (counts_a + counts_b) / (total_a + total_b)
        rng = np.random.default_rng([SEED, zlib.crc32(f"{comparison.name}/{feature}".encode())])
        noise = sampling_noise(pooled, a.rows, b.rows, metric, rng)
        bound, p_value = noise.bound(corrected), noise.p_value(distance)
        measured.append(
            DriftMeasurement(
                comparison=comparison.name,
                kind=comparison.kind,
                feature=feature,
                metric=metric,
                distance=distance,
                threshold=threshold,
                noise_bound=bound,
                p_value=p_value,
                n_a=a.rows,
                n_b=b.rows,
                flagged=distance > threshold and p_value < corrected,
                gating=comparison.gating,
            )
        )
    return measured, notes


def vanished(current: dict[str, Summary], reference: dict[str, Summary], comparison: Comparison) -> list:
    """Measure each feature of the baseline that the new batch lacks: distance 1, flagged.

    The schema inferred from the batch does not know such a feature, so nothing else would say that a column the
    production model was trained on is gone (a curated schema's feature is TFDV's ``SCHEMA_MISSING_COLUMN``).
    """
    return [
        DriftMeasurement(
            comparison=comparison.name,
            kind=comparison.kind,
            feature=feature,
            metric=MISSING,
            distance=1.0,
            threshold=0.0,
            noise_bound=0.0,
            p_value=0.0,
            n_a=0,
            n_b=summary.rows,
            flagged=True,
            gating=comparison.gating,
        )
        for feature, summary in sorted(reference.items())
        if feature not in current and summary.rows > 0
    ]


#: ``drift_gate`` values: which comparisons fail the run when they flag a feature.
GATES = ("baseline", "all", "none")


def measure(train, evaluation, schema, *, label_column, numeric, categorical, alpha, gate, baseline=None, serving=None):
    """Measure every comparison of a run: eval vs train, and against baseline and serving statistics when given.

    ``eval_vs_train``; ``batch_vs_baseline``: the run's train and eval data together (the new batch) against the
    baseline statistics; ``serving_vs_train``: skew of the serving statistics against train.

    ``gate`` (:data:`GATES`): ``baseline``: comparisons against given statistics (baseline drift, serving skew)
    fail the run, ``eval_vs_train`` (the run's own random split, which cannot drift) is only reported; ``all``:
    every comparison gates; ``none``: none does.

    Returns:
        ``(measurements, notes)``: measurements sorted flagged first, then by comparison and feature.
    """
    from kfp_tabular.components.data_processing.validate import schema as schemas

    against_given = gate in ("baseline", "all")
    drift_thresholds = schemas.drift_thresholds(schema, numeric, categorical, skew=False, label_column=label_column)
    train_s, eval_s = summaries(train), summaries(evaluation)
    plan = [(Comparison("eval_vs_train", "drift", gate == "all"), eval_s, train_s, drift_thresholds, "train")]
    if baseline is not None:
        batch = merge(train_s, eval_s)
        comparison = Comparison("batch_vs_baseline", "drift", against_given)
        plan.append((comparison, batch, summaries(baseline), drift_thresholds, "baseline"))
    if serving is not None:
        skew_thresholds = schemas.drift_thresholds(schema, numeric, categorical, skew=True, label_column=label_column)
        comparison = Comparison("serving_vs_train", "skew", against_given)
        plan.append((comparison, summaries(serving), train_s, skew_thresholds, "train"))
    measurements, notes = [], []
    for comparison, current, reference, thresholds, reference_name in plan:
        found, said = compare(current, reference, comparison, thresholds, alpha, f"{reference_name} statistics")
        measurements += found
        notes += said
        if comparison.name == "batch_vs_baseline":
            # A feature of the schema that the batch lacks is TFDV's anomaly (SCHEMA_MISSING_COLUMN) already.
            known = {feature.name for feature in schema.feature}
            measurements += [m for m in vanished(current, reference, comparison) if m.feature not in known]
    order = {c.name: i for i, (c, *_rest) in enumerate(plan)}
    measurements.sort(key=lambda m: (not m.fails, not m.flagged, order[m.comparison], m.feature))
    return measurements, notes
