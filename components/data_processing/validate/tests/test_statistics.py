"""Statistics: both backends, type normalisation, errors naming the file, data location, integer ranges."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import statistics, tfdv_io
from tests.support.statistics import feature_stats


def test_statistics_backends_agree(data):
    frame_stats = statistics.compute_statistics(data["train"])
    beam_stats = statistics.compute_statistics(data["train"], backend="beam", beam_pipeline_args=[])
    assert frame_stats.datasets[0].num_examples == beam_stats.datasets[0].num_examples == 5000
    assert feature_stats(frame_stats) == feature_stats(beam_stats)
    names = set(feature_stats(frame_stats))
    assert names == set(synthetic.generate(10, 0).columns)
    means = {".".join(f.path.step): f.num_stats.mean for f in frame_stats.datasets[0].features}
    beam_means = {".".join(f.path.step): f.num_stats.mean for f in beam_stats.datasets[0].features}
    assert means == pytest.approx(beam_means)


@pytest.mark.parametrize("backend", ["dataframe", "beam"])
def test_booleans_become_int(tmp_path, backend):
    frame = pd.DataFrame(
        {
            "flag": [True, False, True, True] * 25,
            "maybe": pd.array([True, None, False, True] * 25, dtype="boolean"),
            "small": pd.array([1, 2, None, 4] * 25, dtype="Int32"),
            "name": ["a", "b", None, "d"] * 25,
        }
    )
    path = synthetic.write(frame, tmp_path / "bools.parquet")
    from tensorflow_metadata.proto.v0 import statistics_pb2

    INT = statistics_pb2.FeatureNameStatistics.INT
    computed = statistics.compute_statistics(path, backend=backend)
    stats = feature_stats(computed)
    assert stats["flag"] == (INT, "num_stats", 100, 0)
    assert stats["maybe"] == (INT, "num_stats", 75, 25)
    assert stats["small"] == (INT, "num_stats", 75, 25)
    assert stats["name"][1:] == ("string_stats", 75, 25)
    flag = next(f for f in computed.datasets[0].features if f.path.step == ["flag"])
    assert (flag.num_stats.min, flag.num_stats.max, flag.num_stats.mean) == (0, 1, 0.75)


def test_compute_statistics_writes_output(data, tmp_path):
    target = tmp_path / "deep" / "stats.pb"
    stats = statistics.compute_statistics(data["eval"], output_path=str(target))
    assert tfdv_io.load_statistics(str(target)) == stats
    assert [p.name for p in target.parent.iterdir()] == ["stats.pb"]


def _missing(tmp_path):
    return str(tmp_path / "nope.parquet")


def _not_parquet(tmp_path):
    bad = tmp_path / "data.parquet"
    bad.write_text("a,b\n1,2\n")
    return str(bad)


def _no_rows(tmp_path):
    return synthetic.write(synthetic.generate(10, 0).iloc[:0], tmp_path / "empty.parquet")


@pytest.mark.parametrize("backend", ["dataframe", "beam"])
@pytest.mark.parametrize(
    "make, error",
    [(_missing, "not found"), (_not_parquet, "expected a Parquet file"), (_no_rows, "the Parquet file has no rows")],
)
def test_compute_statistics_bad_data_names_the_file(tmp_path, backend, make, error):
    path = make(tmp_path)
    with pytest.raises(DataError, match=re.escape(path) + ".*" + error):
        statistics.compute_statistics(path, backend=backend)


@pytest.mark.parametrize(
    "backend, args, error",
    [
        ("spark", [], "backend: expected one of auto, dataframe, beam, got 'spark'"),
        ("beam", ["--runner", None], "beam_pipeline_args: expected a list of strings"),
        ("beam", "--runner=DirectRunner", "beam_pipeline_args: expected a list of strings"),
    ],
)
def test_compute_statistics_bad_backend(data, backend, args, error):
    with pytest.raises(ConfigError, match=error):
        statistics.compute_statistics(data["train"], backend=backend, beam_pipeline_args=args)


def test_check_backend_turns_numbers_into_strings():
    assert statistics.check_backend("beam", ["--num_workers", 3]) == ["--num_workers", "3"]


def test_beam_args_with_dataframe_backend_warn(data, caplog):
    statistics.compute_statistics(data["eval"], beam_pipeline_args=["--runner=DataflowRunner"])
    assert "beam_pipeline_args are ignored with backend='dataframe'" in caplog.text


LOCAL, REMOTE = "/tmp/inputs/train/data", "gs://bucket/run/train"


@pytest.mark.parametrize(
    "uri, backend, args, expected",
    [
        (REMOTE, "dataframe", ["--runner=DataflowRunner"], LOCAL),
        (REMOTE, "beam", [], LOCAL),
        (REMOTE, "beam", ["--runner", "DirectRunner"], LOCAL),
        (REMOTE, "beam", ["--runner=FnApiRunner"], LOCAL),
        (REMOTE, "beam", ["--runner=DataflowRunner"], REMOTE),
        (REMOTE, "beam", ["--runner", "FlinkRunner"], REMOTE),
        ("/local/uri", "beam", ["--runner=SparkRunner"], LOCAL),
    ],
)
def test_select_data_location(uri, backend, args, expected):
    assert statistics.select_data_location(LOCAL, uri, backend, args) == expected


@pytest.mark.parametrize("backend", ["dataframe", "beam"])
@pytest.mark.parametrize("write_statistics", [True, False])
def test_integer_ranges(tmp_path, backend, write_statistics):
    table = pa.table(
        {
            "count": pa.array([3, None, 7, 5], pa.int32()),
            "flag": pa.array([True, False, None, True]),
            "empty": pa.array([None, None, None, None], pa.int64()),
            "code": pa.array([-2, 40, 1, 0], pa.int64()).dictionary_encode(),
            "price": [1.5, 2.5, 3.5, 4.5],
            "name": ["a", "b", "c", "d"],
        }
    )
    path = tmp_path / "ints.parquet"
    pq.write_table(table, path, write_statistics=write_statistics, row_group_size=2)
    assert statistics.integer_ranges(str(path), backend) == {
        "count": (3, 7),
        "flag": (0, 1),
        "empty": None,
        "code": (-2, 40),
    }
