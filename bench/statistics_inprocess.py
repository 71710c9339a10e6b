"""Statistics: our validate step's ``statistics.generate_statistics`` against in-process TFDV on the same data.

Both run in this process on the same Parquet file of the bundled data, with the curated schema shaping the
statistics and 100 quantile buckets:

- ours: ``validate.statistics.generate_statistics(path, "dataframe", (), schema)`` (reads the Parquet file,
  normalises the column types, calls TFDV);
- TFDV from the file: ``pandas.read_parquet`` + booleans as 0/1 + ``tfdv.generate_statistics_from_dataframe``;
- TFDV from memory: ``tfdv.generate_statistics_from_dataframe`` on a frame already read (reading not timed).

Best of ``--repeat`` after one warm-up call of each (TFDV's import and first-call costs are nobody's). It prints
each time and the ratios ours/TFDV.

    .venv/bin/python bench/statistics_inprocess.py --rows 1000000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import benchlib as bl


def compare(rows: int, repeat: int) -> dict:
    """Time the three ways on the same Parquet file."""
    import pandas as pd
    import tensorflow_data_validation as tfdv

    from kfp_tabular.components.data_processing.synthetic_data.core import curated_schema_path
    from kfp_tabular.components.data_processing.validate import statistics

    schema = tfdv.load_schema_text(curated_schema_path())
    options = tfdv.StatsOptions(schema=schema, num_quantiles_histogram_buckets=100)
    with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
        path = str(Path(tmp) / "data.parquet")
        pd.read_csv(bl.bench_data(rows)).to_parquet(path, index=False)

        def ours():
            return statistics.generate_statistics(path, "dataframe", (), schema)

        def from_frame(frame):
            return tfdv.generate_statistics_from_dataframe(frame, options, n_jobs=1)

        def tfdv_file():
            frame = pd.read_parquet(path)
            return from_frame(frame.astype({c: "int64" for c in frame.columns if frame[c].dtype == bool}))

        frame = pd.read_parquet(path)
        frame = frame.astype({c: "int64" for c in frame.columns if frame[c].dtype == bool})
        a, b = ours(), tfdv_file()  # warm-up
        same = [f.name or ".".join(f.path.step) for f in a.datasets[0].features] == [
            f.name or ".".join(f.path.step) for f in b.datasets[0].features
        ]
        times = {
            "ours": bl.best_of(repeat, ours),
            "tfdv_file": bl.best_of(repeat, tfdv_file),
            "tfdv_memory": bl.best_of(repeat, lambda: from_frame(frame)),
        }
    return {
        "rows": rows,
        "repeat": repeat,
        "seconds": times,
        "ratio_ours_over_tfdv_file": times["ours"] / times["tfdv_file"],
        "ratio_ours_over_tfdv_memory": times["ours"] / times["tfdv_memory"],
        "same_features": same,
    }


def report(result: dict) -> str:
    """Format the result as one line."""
    t = result["seconds"]
    return (
        f"statistics, {result['rows']:,} rows (best of {result['repeat']}): ours {bl.fmt_s(t['ours'])}, "
        f"TFDV from the file {bl.fmt_s(t['tfdv_file'])}, TFDV from memory {bl.fmt_s(t['tfdv_memory'])}: "
        f"ours/TFDV(file) {result['ratio_ours_over_tfdv_file']:.2f}x, "
        f"ours/TFDV(memory) {result['ratio_ours_over_tfdv_memory']:.2f}x"
        + ("" if result["same_features"] else " (WARNING: the two give different feature lists)")
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the report and the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default="", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    bl.load_line("start")
    result = compare(args.rows, args.repeat)
    print(report(result), flush=True)
    end = bl.load_line("end")
    bl.write_result(args.json, {"bench": "statistics_inprocess", **result, "load_end": end})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
