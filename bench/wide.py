"""Wide data: ingest and validate on a 2,000-column table against TFDV's own statistics of the same data.

One process, one seeded table (``--columns`` - 10 normal floats, 9 string columns, an int label): ingest's core
writes the split, validate's core runs on it (statistics of both splits, inferred schema, anomalies, drift,
reports), and the baseline is TFDV's ``generate_statistics_from_dataframe`` on the train split alone, with the
options validate uses (100 quantile buckets) and TFDV's own histogram code, measured in the same run. Ratios
below 1 mean validate does all its work in less time than stock TFDV needs for one split's statistics.
``--stock`` also times validate with TFDV's histogram code (what validate cost before ``tfdv_histograms``).

    .venv/bin/python bench/wide.py --rows 5000 --columns 2000

Absolute times depend on the machine and its load (printed); compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def write_wide(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    """Write the wide CSV: ``columns - 10`` normal floats, 9 string columns of 8 values, an int label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"f{i}": rng.normal(size=rows) for i in range(columns - 10)}
    for i in range(9):
        data[f"c{i}"] = rng.choice(list("abcdefgh"), size=rows)
    data["label"] = (data["f0"] + rng.normal(size=rows) > 0).astype(int)
    pd.DataFrame(data).to_csv(path, index=False)


def timed(fn):
    """Return ``(result, seconds)`` of one call."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    """Run ingest, validate and the baseline on one wide table; print times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--columns", type=int, default=2000)
    parser.add_argument("--stock", action="store_true", help="also time validate with TFDV's histogram code")
    args = parser.parse_args()

    from kfp_tabular.components.data_processing.ingest.core import ingest
    from kfp_tabular.components.data_processing.ingest.request import IngestRequest
    from kfp_tabular.components.data_processing.validate import core, statistics, tfdv_histograms, tfdv_io
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest

    tfdv = tfdv_io.tfdv()  # the import (seconds) is no task's cost here
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "wide.csv"
        write_wide(source, args.rows, args.columns)
        train, evaluation = str(root / "train.parquet"), str(root / "eval.parquet")
        split = IngestRequest(data_uri=str(source), label_column="label")
        _, ingest_s = timed(lambda: ingest(split, train, evaluation))

        request = ValidateRequest(label_column="label", fail_on_anomalies=False, statistics_backend="dataframe")
        out = {name: str(root / name) for name in ("train_statistics_path", "eval_statistics_path", "report_path")}
        out.update({name: str(root / name) for name in ("schema_path", "anomalies_path", "anomalies_report_path")})
        out["statistics_html_path"] = str(root / "statistics_html")
        result, validate_s = timed(lambda: core.validate(train, evaluation, request, **out))

        import pandas as pd

        frame = pd.read_parquet(train)
        options = tfdv.StatsOptions(num_quantiles_histogram_buckets=statistics.QUANTILE_BUCKETS)
        with tfdv_histograms.stock():
            _, baseline_s = timed(lambda: tfdv.generate_statistics_from_dataframe(frame, options, n_jobs=1))
            stock_s = timed(lambda: core.validate(train, evaluation, request, **out))[1] if args.stock else None

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"wide table: {args.rows} rows x {args.columns} columns; load average {load} ({os.cpu_count()} cores)")
    print(f"ingest:   {ingest_s:7.1f} s  ratio to baseline {ingest_s / baseline_s:5.2f}")
    print(
        f"validate: {validate_s:7.1f} s  ratio to baseline {validate_s / baseline_s:5.2f}  "
        f"({len(result.drift)} drift measurements, {len(result.anomalies)} anomalies)"
    )
    if stock_s is not None:
        print(f"validate with TFDV's histogram code: {stock_s:7.1f} s  ratio to baseline {stock_s / baseline_s:5.2f}")
    print(f"baseline: {baseline_s:7.1f} s  TFDV generate_statistics_from_dataframe, train split, stock TFDV")


if __name__ == "__main__":
    main()
