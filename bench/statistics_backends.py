"""TFDV statistics on one machine: the in-memory DataFrame path against the Apache Beam path.

Both backends of ``validate.core.compute_statistics`` run on the same Parquet file in the same process; the
script prints each time (best of ``--repeat``) and the ratio beam / dataframe. Absolute times depend on the
machine and its load; compare ratios measured in one run.

    .venv/bin/python bench/statistics_backends.py --rows 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def best_of(repeat: int, fn) -> float:
    """Best wall time of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    """Run the comparison and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
    from kfp_tabular.components.data_processing.validate import statistics as core

    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic.write(synthetic.generate(args.rows, 1), Path(tmp) / "data.parquet")
        core.compute_statistics(data)  # warm-up: the TFDV import and first-call costs are not the backend's
        dataframe = best_of(args.repeat, lambda: core.compute_statistics(data, backend="dataframe"))
        beam = best_of(args.repeat, lambda: core.compute_statistics(data, backend="beam"))
    print(f"rows={args.rows} dataframe={dataframe:.2f}s beam={beam:.2f}s ratio beam/dataframe={beam / dataframe:.1f}x")


if __name__ == "__main__":
    main()
