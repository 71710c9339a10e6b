"""TFDV statistics on one machine: the in-memory DataFrame path against the Apache Beam path.

Both backends of ``validate.core.compute_statistics`` run on the same Parquet file in the same process; the
script prints each time (best of ``--repeat``) and the ratio beam / dataframe. Absolute times depend on the
machine and its load; compare ratios measured in one run.

    .venv/bin/python bench/statistics_backends.py --rows 200000

``--memory`` runs each backend once more in a fresh process and prints its peak resident memory, the footer
estimate ``statistics_backend="auto"`` compares with its budget (``validate/backend.py``), and the measured
factor (peak - TFDV's own memory) / (footer bytes) that ``backend.IN_MEMORY_FACTOR`` must cover. The file is
written as ingest writes its splits (bounded row groups), or give one with ``--data``.

    .venv/bin/python bench/statistics_backends.py --rows 4000000 --repeat 1 --memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib as bl

_CHILD = """
import json, resource, sys, time
from kfp_tabular.components.data_processing.validate import statistics, tfdv_io
tfdv_io.tfdv()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
started = time.perf_counter()
statistics.generate_statistics(sys.argv[1], sys.argv[2])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "base": base, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def peak_memory(data: str, backend: str) -> dict:
    """Run one backend in a fresh process: its time, TFDV's own resident memory and the peak, in bytes."""
    out = subprocess.run([sys.executable, "-c", _CHILD, data, backend], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_like_ingest(frame, path: Path) -> str:
    """Write a table as ingest writes a split (row groups of ~64 MB of values)."""
    from kfp_tabular.components.data_processing.ingest.core import row_group_rows

    frame.to_parquet(path, index=False, engine="pyarrow", row_group_size=row_group_rows(frame))
    return str(path)


def main() -> None:
    """Run the comparison and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also measure each backend's peak memory")
    parser.add_argument("--data", default="", help="a Parquet file to use instead of generated churn data")
    args = parser.parse_args()

    from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
    from kfp_tabular.components.data_processing.validate import backend as backends
    from kfp_tabular.components.data_processing.validate import statistics as core

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or write_like_ingest(synthetic.generate(args.rows, 1), Path(tmp) / "data.parquet")
        rows = args.rows if not args.data else "(given file)"
        core.compute_statistics(data)  # warm-up: the TFDV import and first-call costs are not the backend's
        dataframe = bl.best_of(args.repeat, lambda: core.compute_statistics(data, backend="dataframe"))
        beam = bl.best_of(args.repeat, lambda: core.compute_statistics(data, backend="beam"))
        print(f"rows={rows} dataframe={dataframe:.2f}s beam={beam:.2f}s ratio beam/dataframe={beam / dataframe:.1f}x")
        if args.memory:
            estimate = backends.in_memory_bytes(data)
            footer = (estimate - backends.TFDV_BASE_BYTES) / backends.IN_MEMORY_FACTOR
            mb = 1 << 20
            for name in ("dataframe", "beam"):
                found = peak_memory(data, name)
                factor = (found["peak"] - found["base"]) / footer
                print(
                    f"{name}: peak {found['peak'] / mb:.0f} MB (TFDV alone {found['base'] / mb:.0f} MB), footer "
                    f"bytes {footer / mb:.0f} MB, measured factor {factor:.1f} (IN_MEMORY_FACTOR "
                    f"{backends.IN_MEMORY_FACTOR:g}), auto's estimate {estimate / mb:.0f} MB"
                )
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
