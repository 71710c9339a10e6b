"""TFDV's numeric histograms without its per-bucket Python loops: the same protos, bit for bit, ~100x sooner.

TFDV 1.16 builds each numeric feature's histograms in Python (``utils/quantiles_util.py``). With
``num_quantiles_histogram_buckets`` = 100 (``statistics.QUANTILE_BUCKETS``, what drift is measured on) it asks
its sketch for 100 x 100 = 10,000 quantiles per feature, turns them into a 10,000-bucket proto one
``buckets.add`` at a time, and merges that into the 10-bucket equal-width histogram by calling a Python
``_overlap`` per bucket and interval. On 2,000 numeric columns that was ~90% of validate's time (two splits,
~4,000 features: minutes), whatever the number of rows.

:func:`install` replaces two functions of ``tensorflow_data_validation.utils.quantiles_util`` with numpy versions
that compute the same floating-point operations in the same order:

- ``_get_bin_weights``: runs of equal upper bounds are found with one comparison of neighbours; only those runs
  (rare: repeated values) are averaged, with the same ``slice.sum()`` call as TFDV's;
- ``generate_equi_width_histogram``: each interval's overlap with every quantile bucket is evaluated for all
  buckets at once, case by case as TFDV's ``_overlap`` does, and the weights are added left to right
  (``numpy.cumsum`` from 0.0, like TFDV's ``sample_count +=``); buckets TFDV skips contribute exactly 0. The
  10,000-bucket intermediate proto is never built.

Every statistics proto is therefore identical to stock TFDV's (tests/test_tfdv_histograms.py compares both on
random, repeated-value, point-mass and infinite inputs). Input TFDV's own code would refuse (NaN bounds) is
handed to the original functions, which raise as before. Installed only on the TFDV version it was checked
against (:data:`CHECKED_VERSIONS`); on any other the stock functions stay (slower, same results).
"""

from __future__ import annotations

import contextlib
import logging

logger = logging.getLogger(__name__)

#: TFDV versions whose ``quantiles_util`` these replacements were compared with.
CHECKED_VERSIONS = ("1.16.",)

_ORIGINALS: dict = {}
#: Inside :func:`stock`: :func:`install` (called by every ``tfdv_io.tfdv()``) leaves TFDV's own functions.
_SUSPENDED = []


def _module():
    from tensorflow_data_validation.utils import quantiles_util

    return quantiles_util


def original(name: str):
    """Return TFDV's own ``quantiles_util`` function ``name`` (as it was before :func:`install`)."""
    return _ORIGINALS.get(name) or getattr(_module(), name)


def get_bin_weights(boundaries, cum_bin_weights):
    """``quantiles_util._get_bin_weights``: bucket bounds and weights from cumulative weights, vectorised."""
    import numpy as np

    cum_bin_weights = cum_bin_weights.astype(np.float64)
    low_bounds = boundaries[:-1]
    high_bounds = boundaries[1:]
    bin_counts = np.diff(cum_bin_weights)
    size = low_bounds.size
    if size == 0:
        return low_bounds, high_bounds, bin_counts
    # Runs of buckets with one upper bound share their weight evenly (TFDV compares each with the run's first).
    # TFDV sums each run with ``slice.sum()``; runs of one length are summed together, a row each, with the same
    # numpy reduction along the row, so every sum is the same float.
    starts = np.flatnonzero(np.concatenate([[True], high_bounds[1:] != high_bounds[:-1]]))
    lengths = np.diff(np.append(starts, size))
    for length in np.unique(lengths[lengths > 1]).tolist():
        members = starts[lengths == length][:, None] + np.arange(length)
        bin_counts[members] = (bin_counts[members].sum(axis=1) / length)[:, None]
    # The weight at the minimum is spread over the leading buckets identical to the first one.
    same = (low_bounds == low_bounds[0]) & (high_bounds == high_bounds[0])
    leading = size if same.all() else int(np.argmin(same))
    if leading > 0:
        bin_counts[0:leading] += cum_bin_weights[0] / leading
    return low_bounds, high_bounds, bin_counts


def _overlaps(low, high, low_bound, high_bound, first_bucket: bool):
    """``quantiles_util._overlap`` of every bucket with one interval (the fraction only); None: a case TFDV refuses."""
    import numpy as np

    point_at_low = (high == low) & (low == low_bound)
    width = high - low
    with np.errstate(divide="ignore", invalid="ignore"):
        choices = [
            np.full(low.shape, 1.0 if first_bucket else 0.0),  # case 0: a point bucket on the left edge
            np.zeros(low.shape),  # case 1: the bucket precedes the interval
            np.zeros(low.shape),  # case 2: the bucket follows it
            np.ones(low.shape),  # case 3: the bucket is contained
            (high_bound - low) / width,  # case 4: the interval overlaps the bucket on the left
            (high - low_bound) / width,  # case 5: ... on the right
            (high_bound - low_bound) / width,  # case 6: the interval lies inside the bucket
        ]
    conditions = [
        point_at_low,
        high < low_bound,
        low > high_bound,
        (low_bound <= low) & (high_bound >= high),
        low_bound <= low,
        high_bound >= high,
        (low_bound > low) & (high_bound < high),
    ]
    matched = np.logical_or.reduce(conditions)
    if not matched.all():
        return None
    return np.select(conditions, choices)


def generate_equi_width_histogram(quantiles, cumulative_counts, finite_min, finite_max, num_buckets, num_pos_inf):
    """``quantiles_util.generate_equi_width_histogram``, vectorised: the same ``Histogram`` proto."""
    import numpy as np
    from tensorflow_metadata.proto.v0 import statistics_pb2

    quantiles_util = _module()
    fallback = (quantiles, cumulative_counts, finite_min, finite_max, num_buckets, num_pos_inf)
    if not (np.isfinite(finite_min) and np.isfinite(finite_max)) or np.isnan(quantiles).any():
        return original("generate_equi_width_histogram")(*fallback)
    assert np.all(quantiles[:-1] <= quantiles[1:])
    quantiles, cumulative_counts, num_neg_inf = quantiles_util._strip_infinities(
        quantiles, cumulative_counts, finite_max, num_pos_inf
    )
    # TFDV stores these in a proto (doubles) first; float64 arrays hold the same values.
    low, high, weights = (np.asarray(a, dtype=np.float64) for a in get_bin_weights(quantiles, cumulative_counts))
    if finite_min == finite_max:
        new_boundaries = np.array([finite_min, finite_max])
    else:
        new_boundaries = np.linspace(finite_min, finite_max, num_buckets + 1)
        if not np.isfinite(new_boundaries).all():
            return statistics_pb2.Histogram(type=statistics_pb2.Histogram.STANDARD)
    # Only buckets with high >= low_bound and low <= high_bound can overlap an interval (both bounds are sorted):
    # the others add exactly 0.0 in TFDV's sum, so leaving them out changes no bit.
    starts = np.searchsorted(high, new_boundaries[:-1], side="left")
    ends = np.searchsorted(low, new_boundaries[1:], side="right")
    counts = []
    for i in range(new_boundaries.size - 1):
        part = slice(int(starts[i]), max(int(starts[i]), int(ends[i])))
        overlap = _overlaps(low[part], high[part], new_boundaries[i], new_boundaries[i + 1], i == 0)
        if overlap is None:
            return original("generate_equi_width_histogram")(*fallback)
        # Left to right from 0.0, as TFDV's ``sample_count += overlap * count``.
        counts.append(float(np.cumsum(np.concatenate([[0.0], overlap * weights[part]]))[-1]))
    result = statistics_pb2.Histogram(type=statistics_pb2.Histogram.STANDARD)
    if num_neg_inf:
        result.buckets.add(low_value=float("-inf"), high_value=float("-inf"), sample_count=num_neg_inf)
    for i, count in enumerate(counts):
        result.buckets.add(low_value=new_boundaries[i], high_value=new_boundaries[i + 1], sample_count=count)
    if num_pos_inf:
        result.buckets.add(low_value=float("inf"), high_value=float("inf"), sample_count=num_pos_inf)
    return result


_REPLACEMENTS = {"_get_bin_weights": get_bin_weights, "generate_equi_width_histogram": generate_equi_width_histogram}


def install() -> bool:
    """Put the vectorised functions in place of TFDV's (idempotent); False when this TFDV version is unchecked."""
    import tensorflow_data_validation

    if _SUSPENDED:
        return False
    version = getattr(tensorflow_data_validation, "__version__", "")
    if not version.startswith(CHECKED_VERSIONS):
        checked = ", ".join(CHECKED_VERSIONS)
        logger.info("TFDV %s: its own histogram code is used (the vectorised one was checked on %s)", version, checked)
        return False
    module = _module()
    for name, replacement in _REPLACEMENTS.items():
        _ORIGINALS.setdefault(name, getattr(module, name))
        setattr(module, name, replacement)
    return True


def uninstall() -> None:
    """Put TFDV's own functions back."""
    module = _module()
    for name, function in _ORIGINALS.items():
        setattr(module, name, function)


@contextlib.contextmanager
def stock():
    """Run a block with TFDV's own histogram code (benchmarks and tests compare the two)."""
    installed = bool(_ORIGINALS) and getattr(_module(), "_get_bin_weights") is get_bin_weights
    uninstall()
    _SUSPENDED.append(True)
    try:
        yield
    finally:
        _SUSPENDED.pop()
        if installed:
            install()
