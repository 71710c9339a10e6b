"""The bench scripts' own logic: the fits, the RSS measurement, the bare script's split, the table, TFX missing.

Not in the default test paths (bench/ is not a package the pipeline ships); run them by name:

    .venv/bin/python -m pytest -c tests/pytest.ini --rootdir . bench/tests -q
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

bl = importlib.import_module("benchlib")


def test_loglog_fit_recovers_the_exponent():
    rows = [50_000, 100_000, 1_000_000, 5_000_000]
    a, b = bl.loglog_fit(rows, [3.0 * r**0.8 for r in rows])
    assert b == pytest.approx(0.8, abs=1e-9)
    assert a == pytest.approx(3.0, rel=1e-9)
    assert bl.loglog_fit([1000], [2.0]) is None  # one size: no exponent
    assert bl.loglog_fit([1000, 1000], [2.0, 3.0]) is None  # one distinct size


def test_scale_fits_each_task_and_the_whole_run():
    scale = importlib.import_module("scale")
    points = [
        {
            "rows": r,
            "seconds": 10 + r / 1000,
            "peak_rss_mb": 100.0,
            "tasks": [
                {"name": "ingest", "seconds": r / 10_000, "peak_rss_mb": r / 1000},
                {"name": "train", "seconds": (r / 10_000) ** 2, "peak_rss_mb": 500.0},
            ],
        }
        for r in (10_000, 100_000, 1_000_000)
    ]
    fits = {f["name"]: f for f in scale.fit(points)}
    assert fits["ingest"]["b"] == pytest.approx(1.0) and fits["ingest"]["d"] == pytest.approx(1.0)
    assert fits["train"]["b"] == pytest.approx(2.0) and fits["train"]["d"] == pytest.approx(0.0, abs=1e-12)
    assert 0 < fits["(whole run)"]["b"] < 1  # a fixed cost flattens the whole run's curve


def test_measure_reports_the_peak_rss_of_the_child():
    measured = bl.measure([sys.executable, "-c", "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096])"])
    assert measured.returncode == 0
    assert measured.peak_rss_mb >= 300
    failed = bl.measure([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match="exit 3"):
        failed.check("a failing command")


def test_bare_script_splits_like_ingest(tmp_path):
    import pandas as pd

    from kfp_tabular.components.data_processing.ingest.core import ingest
    from kfp_tabular.components.data_processing.ingest.request import IngestRequest
    from kfp_tabular.components.data_processing.synthetic_data import core

    bare = importlib.import_module("bare_pipeline")
    csv = core.write(core.generate(2_000, 7), tmp_path / "data.csv")
    ingest(IngestRequest(data_uri=csv, label_column="churned"), tmp_path / "train.parquet", tmp_path / "eval.parquet")
    train, evaluation = bare.read_and_split(csv)
    for ours_path, split in ((tmp_path / "train.parquet", train), (tmp_path / "eval.parquet", evaluation)):
        ours = pd.read_parquet(ours_path)
        assert len(ours) == len(split)
        for column in ("churned", "monthly_charges", "contract_type"):
            assert ours[column].tolist() == split[column].tolist()


def test_table_shows_tfx_missing_as_no_figure(monkeypatch, tmp_path):
    monkeypatch.setenv("KFP_TABULAR_CACHE", str(tmp_path))
    tfx_compare = importlib.import_module("tfx_compare")
    why = tfx_compare.tfx_ready()
    assert "not built" in why and str(tmp_path) in why
    run_all = importlib.import_module("run_all")
    ours = {"source": "cores in subprocesses", "steps": {"ingest": {"seconds": 2.0}, "validate": {"seconds": 3.0}}}
    results = {
        "end_to_end": {"error": "end_to_end.py exited with 1"},
        "tfx_compare": {"rows": 1000, "ours": {**ours, "seconds": 5.0, "peak_rss_mb": 10.0}, "tfx": {"error": why}},
        "statistics_inprocess": {"error": "x"},
        "compile_time": {"repeat": 3, "ours": {"seconds": 1.0}, "trivial": {"seconds": 4.0}, "ratio": 0.25},
        "scale": {"fits": []},
    }
    text = run_all.table(results)
    assert "no figure: TFX venv" in text
    assert "ours/trivial 0.25x" in text
    assert "TFX/ours" not in text  # no ratio without a TFX time


def test_last_json_takes_the_last_result_line():
    output = 'noise\n{"a": 1}\nmore noise {not json}\n{"b": 2}\ntrailing'
    assert bl.last_json(output) == {"b": 2}
    with pytest.raises(ValueError):
        bl.last_json("nothing here")
    assert math.isclose(bl.loglog_fit([1, 10], [1, 10])[1], 1.0)
