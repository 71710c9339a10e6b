"""The vectorised TFDV histogram functions give the stock functions' protos bit for bit, and statistics agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import statistics, tfdv_histograms, tfdv_io


def _cases():
    """Quantile boundaries and cumulative weights as TFDV's sketch gives them, with the awkward shapes."""
    rng = np.random.default_rng(7)
    shapes = {
        "normal": lambda n: rng.normal(size=n),
        "small integers": lambda n: rng.integers(0, 5, size=n).astype(float),
        "rounded heavy tail": lambda n: np.round(rng.exponential(size=n), 1),
        "one value": lambda n: np.full(n, 3.0),
        "infinities": lambda n: np.concatenate([rng.normal(size=n), [-np.inf] * (n % 3), [np.inf] * (n % 2 + 1)]),
        "negative tenths": lambda n: rng.integers(-3, 3, size=n) * 0.1,
        "10,001 quantiles": lambda n: rng.normal(size=10_001),
        # What TFDV asks its sketch for on a few thousand rows: 10,001 quantiles, each value repeated.
        "10,001 quantiles of few rows": lambda n: rng.choice(rng.normal(size=4 * n), size=10_001),
        "long runs": lambda n: np.repeat(rng.normal(size=5), rng.integers(1, 400, size=5)),
    }
    for name, draw in shapes.items():
        for trial in range(40):
            quantiles = np.sort(draw(int(rng.integers(1, 300))))
            cumulative = np.cumsum(rng.integers(0, 50, size=quantiles.size)).astype(float) + rng.integers(0, 5)
            finite = quantiles[np.isfinite(quantiles)]
            if finite.size:
                yield name, trial, quantiles, cumulative, finite.min(), finite.max(), float(np.sum(quantiles == np.inf))


@pytest.fixture
def stock_functions():
    tfdv_io.tfdv()
    with tfdv_histograms.stock():
        yield tfdv_histograms.original("generate_equi_width_histogram"), tfdv_histograms.original("_get_bin_weights")


def test_same_protos_as_stock_tfdv(stock_functions):
    stock_histogram, stock_weights = stock_functions
    compared = 0
    for name, trial, quantiles, cumulative, low, high, pos_inf in _cases():
        for buckets in (1, 10):
            expected = stock_histogram(quantiles, cumulative, low, high, buckets, pos_inf)
            got = tfdv_histograms.generate_equi_width_histogram(quantiles, cumulative, low, high, buckets, pos_inf)
            assert got.SerializeToString() == expected.SerializeToString(), (name, trial, buckets)
        for a, b in zip(stock_weights(quantiles, cumulative), tfdv_histograms.get_bin_weights(quantiles, cumulative)):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (name, trial)
        compared += 1
    assert compared > 250


def test_refused_input_is_left_to_tfdv(stock_functions):
    quantiles = np.array([0.0, np.nan, 1.0])
    with pytest.raises(AssertionError):  # TFDV asserts its quantiles are sorted; NaN is not
        tfdv_histograms.generate_equi_width_histogram(quantiles, np.arange(3.0), 0.0, 1.0, 10, 0.0)


def test_installed_by_tfdv_io_and_statistics_unchanged(tmp_path):
    frame = synthetic.generate(3000, 5)
    frame["tail"] = np.random.default_rng(1).pareto(1.5, size=len(frame))
    frame["ties"] = np.random.default_rng(2).integers(0, 40, size=len(frame)) * 0.5
    frame["inf"] = np.where(np.arange(len(frame)) % 97 == 0, np.inf, frame["monthly_charges"])
    path = synthetic.write(pd.DataFrame(frame), tmp_path / "data.parquet")
    tfdv = tfdv_io.tfdv()
    from tensorflow_data_validation.utils import quantiles_util

    assert quantiles_util.generate_equi_width_histogram is tfdv_histograms.generate_equi_width_histogram
    assert tfdv.__version__.startswith(tfdv_histograms.CHECKED_VERSIONS)
    fast = statistics.compute_statistics(path)
    with tfdv_histograms.stock():
        slow = statistics.compute_statistics(path)
        tfdv_io.tfdv()  # what validate calls: TFDV's own code stays in place inside stock()
        assert quantiles_util.generate_equi_width_histogram is not tfdv_histograms.generate_equi_width_histogram
    assert quantiles_util.generate_equi_width_histogram is tfdv_histograms.generate_equi_width_histogram
    assert fast.SerializeToString(deterministic=True) == slow.SerializeToString(deterministic=True)
