"""Tests of the ingest core: reading, checks, the seeded split and the atomic writes (no KFP)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.ingest.core import IngestResult, ingest, read_columns, read_table
from kfp_tabular.components.data_processing.ingest.request import IngestRequest
from kfp_tabular.components.data_processing.synthetic_data.core import generate

LABEL = "churned"


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate(1000, seed=7)


@pytest.fixture()
def churn_csv(tmp_path: Path, churn: pd.DataFrame) -> Path:
    path = tmp_path / "churn.csv"
    churn.to_csv(path, index=False)
    return path


def run(source, out: Path, **kwargs) -> IngestResult:
    out.mkdir(parents=True, exist_ok=True)
    request = IngestRequest(data_uri=str(source), label_column=kwargs.pop("label_column", LABEL), **kwargs)
    return ingest(request, out / "train", out / "eval")


def written(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob("*") if p.is_file()) if out.exists() else []


def assert_data_error(source, match: str, out: Path, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as info:
        run(source, out, **kwargs)
    message = str(info.value)
    assert message.startswith(str(source)), message
    assert written(out) == []
    return message


# --- reading -------------------------------------------------------------------------------------------------


def test_reads_csv_gzip_parquet_and_pq_alike(tmp_path, churn):
    churn.to_csv(tmp_path / "a.csv", index=False)
    churn.to_csv(tmp_path / "a.csv.gz", index=False, compression="gzip")
    churn.to_parquet(tmp_path / "a.parquet", index=False)
    churn.to_parquet(tmp_path / "a.pq", index=False)
    from_csv = read_table(str(tmp_path / "a.csv"))
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "a.csv.gz")), from_csv)
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "a.parquet")), churn)
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "a.pq")), churn)
    pd.testing.assert_frame_equal(from_csv, churn, check_dtype=False)


@pytest.mark.parametrize(
    "name, write",
    [
        ("a.csv", lambda frame, path: frame.to_csv(path, index=False)),
        ("a.csv.gz", lambda frame, path: frame.to_csv(path, index=False, compression="gzip")),
        ("gzip-named-plain.csv", lambda frame, path: frame.to_csv(path, index=False, compression="gzip")),
        ("a.parquet", lambda frame, path: frame.to_parquet(path, index=False)),
        ("a.pq", lambda frame, path: frame.to_parquet(path, index=False)),
        ("named-index.parquet", lambda frame, path: frame.set_index("region").to_parquet(path)),
        ("unnamed-index.parquet", lambda frame, path: frame.set_axis(range(10, 10 + len(frame))).to_parquet(path)),
        ("range-index.parquet", lambda frame, path: frame.to_parquet(path)),
    ],
)
def test_read_columns_equals_read_tables_columns(tmp_path, churn, name, write):
    write(churn, tmp_path / name)
    source = str(tmp_path / name)
    assert read_columns(source) == read_table(source).columns.tolist()
    assert read_columns((tmp_path / name).as_uri()) == read_table(source).columns.tolist()


def test_read_columns_reads_the_header_only(tmp_path, churn):
    """A body that read_table refuses does not matter: read_columns stops after the header line."""
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b,churned\n" + b"1,2,3,4,5\n\xff\xfe garbage" * 200_000)
    with pytest.raises(DataError, match="cannot parse CSV"):
        read_table(str(path))
    assert read_columns(str(path)) == ["a", "b", "churned"]


def test_file_format_overrides_the_name(tmp_path, churn):
    churn.head(20).to_csv(tmp_path / "export.txt", index=False)
    churn.head(20).to_parquet(tmp_path / "export.bin", index=False)
    assert len(read_table(str(tmp_path / "export.txt"), file_format="csv")) == 20
    assert len(read_table(str(tmp_path / "export.bin"), file_format="parquet")) == 20
    assert read_columns(str(tmp_path / "export.bin"), file_format="parquet") == churn.columns.tolist()
    with pytest.raises(ConfigError, match="file_format: expected one of auto, csv, parquet, got 'xlsx'"):
        read_table(str(tmp_path / "export.txt"), file_format="xlsx")


def test_parquet_named_index_becomes_a_column_and_unnamed_index_is_dropped(tmp_path):
    frame = pd.DataFrame({"customer": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    frame.set_index("customer").to_parquet(tmp_path / "named.parquet")
    frame.set_axis([10, 20, 30]).to_parquet(tmp_path / "unnamed.parquet")
    assert read_table(str(tmp_path / "named.parquet")).columns.tolist() == ["customer", "x"]
    unnamed = read_table(str(tmp_path / "unnamed.parquet"))
    assert unnamed.columns.tolist() == ["customer", "x"]
    assert unnamed.index.tolist() == [0, 1, 2]


def test_same_bytes_same_hash_via_path_and_file_url(tmp_path, churn_csv):
    expected = hashlib.sha256(churn_csv.read_bytes()).hexdigest()
    by_path = run(churn_csv, tmp_path / "a")
    by_url = run(churn_csv.as_uri(), tmp_path / "b")
    assert by_path.content_hash == by_url.content_hash == expected
    assert by_url.source_uri == churn_csv.as_uri()
    churn_csv.write_bytes(churn_csv.read_bytes().replace(b"north", b"North", 1))
    assert run(churn_csv, tmp_path / "c").content_hash != expected


def test_gzip_hash_is_of_the_compressed_bytes(tmp_path, churn):
    path = tmp_path / "c.csv.gz"
    churn.to_csv(path, index=False, compression="gzip")
    assert run(path, tmp_path / "out").content_hash == hashlib.sha256(path.read_bytes()).hexdigest()


# --- result and split ----------------------------------------------------------------------------------------


def test_result_describes_source_and_splits(tmp_path, churn_csv, churn):
    result = run(churn_csv, tmp_path / "out")
    train = pd.read_parquet(tmp_path / "out" / "train")
    evaluation = pd.read_parquet(tmp_path / "out" / "eval")
    assert (result.rows, result.train_rows, result.eval_rows) == (1000, 800, 200)
    assert (len(train), len(evaluation)) == (800, 200)
    assert result.columns == churn.columns.tolist() == train.columns.tolist() == evaluation.columns.tolist()
    assert result.task == "classification"
    assert result.label_classes == [0, 1]
    assert result.positive_rate == pytest.approx(churn[LABEL].mean())
    as_dict = result.as_dict()
    assert as_dict["source_uri"] == str(churn_csv)
    assert as_dict["label_classes"] == [0, 1]
    assert set(as_dict) >= {"content_hash", "rows", "train_rows", "eval_rows", "columns", "label_column", "task"}


def test_eval_fraction_rounds_eval_rows_up(tmp_path, churn_csv):
    result = run(churn_csv, tmp_path / "out", eval_fraction=0.3333)
    assert (result.train_rows, result.eval_rows) == (666, 334)


def test_eval_rows_are_not_off_by_one_from_float_rounding(tmp_path):
    pd.DataFrame({"x": [i % 7 for i in range(100)], "y": [i / 3 for i in range(100)]}).to_parquet(
        tmp_path / "h.parquet"
    )
    result = run(tmp_path / "h.parquet", tmp_path / "out", label_column="y", eval_fraction=0.07)
    assert (result.train_rows, result.eval_rows) == (93, 7)


def test_split_is_deterministic_per_seed(tmp_path, churn_csv):
    run(churn_csv, tmp_path / "one", seed=3)
    run(churn_csv, tmp_path / "two", seed=3)
    run(churn_csv, tmp_path / "other", seed=4)
    one = pd.read_parquet(tmp_path / "one" / "eval")
    pd.testing.assert_frame_equal(one, pd.read_parquet(tmp_path / "two" / "eval"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "one" / "train"), pd.read_parquet(tmp_path / "two" / "train")
    )
    assert (tmp_path / "one" / "eval").read_bytes() == (tmp_path / "two" / "eval").read_bytes()
    other = pd.read_parquet(tmp_path / "other" / "eval")
    assert not one.equals(other)
    assert len(one.merge(other)) < len(one) / 2


def test_splits_partition_the_rows(tmp_path, churn):
    # A row number would be dropped as an ID: trace the rows with even numbers (not consecutive, not named an ID).
    frame = churn.assign(trace=np.arange(len(churn)) * 2)
    frame.to_parquet(tmp_path / "ids.parquet", index=False)
    result = run(tmp_path / "ids.parquet", tmp_path / "out")
    assert [d for d in result.decisions if d.subject == "trace"] == []
    train = pd.read_parquet(tmp_path / "out" / "train")
    evaluation = pd.read_parquet(tmp_path / "out" / "eval")
    assert set(train.trace).isdisjoint(evaluation.trace)
    assert sorted([*train.trace, *evaluation.trace]) == list(range(0, 2 * len(churn), 2))
    # each split keeps the source order
    assert train.trace.is_monotonic_increasing and evaluation.trace.is_monotonic_increasing


@pytest.mark.parametrize("stratify", [True, False])
def test_split_on_positions_is_scikit_learns_split_of_the_frame(churn, stratify):
    from sklearn.model_selection import train_test_split

    from kfp_tabular.components.data_processing.ingest import core

    labels = churn["churned"] if stratify else None
    train, evaluation = core._split("data.csv", churn, labels, 700, 42)
    expected = train_test_split(churn, test_size=700, random_state=42, shuffle=True, stratify=labels)
    pd.testing.assert_frame_equal(train, expected[0].sort_index())
    pd.testing.assert_frame_equal(evaluation, expected[1].sort_index())


def test_splits_are_written_in_bounded_row_groups(tmp_path, churn, monkeypatch):
    import pyarrow.parquet as pq

    from kfp_tabular.components.data_processing.ingest import core

    assert core.row_group_rows(pd.DataFrame({"a": [1]})) == core.ROW_GROUP_ROWS[1]  # narrow: the most rows
    wide = pd.DataFrame(np.zeros((1, 20_000)))
    assert core.row_group_rows(wide) == core.ROW_GROUP_ROWS[0]  # very wide: the fewest
    monkeypatch.setattr(core, "ROW_GROUP_ROWS", (100, 1 << 20))
    monkeypatch.setattr(core, "ROW_GROUP_BYTES", 100 * 8 * len(churn.columns))
    churn.to_parquet(tmp_path / "d.parquet", index=False)
    result = run(tmp_path / "d.parquet", tmp_path / "out")
    train = pq.ParquetFile(tmp_path / "out" / "train")
    assert train.metadata.num_row_groups == -(-result.train_rows // 100)
    assert max(train.metadata.row_group(i).num_rows for i in range(train.metadata.num_row_groups)) == 100


def test_stratification_keeps_the_class_ratio(tmp_path):
    frame = generate(3000, seed=11)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    overall = frame[LABEL].mean()
    # Ten seeds: an unstratified split of 600 eval rows misses the 1% band on most of them.
    for seed in range(10):
        run(tmp_path / "d.parquet", tmp_path / str(seed), seed=seed)
        for split in ("train", "eval"):
            assert abs(pd.read_parquet(tmp_path / str(seed) / split)[LABEL].mean() - overall) < 0.01


def test_stratification_of_a_string_label_with_three_classes(tmp_path):
    frame = generate(3000, seed=5)
    frame.to_csv(tmp_path / "d.csv", index=False)
    result = run(tmp_path / "d.csv", tmp_path / "out", label_column="contract_type")
    assert result.task == "classification"
    assert result.label_classes == ["month-to-month", "one-year", "two-year"]
    assert result.positive_rate is None
    overall = frame["contract_type"].value_counts(normalize=True)
    for split in ("train", "eval"):
        shares = pd.read_parquet(tmp_path / "out" / split)["contract_type"].value_counts(normalize=True)
        assert (shares - overall).abs().max() < 0.01


def test_types_and_missing_values_survive_the_parquet_round_trip(tmp_path):
    n = 60
    frame = pd.DataFrame(
        {
            "trace": np.arange(n) * 5,
            "count": np.arange(n) % 9,
            "price": np.where(np.arange(n) % 7 == 0, np.nan, np.arange(n) / 4),
            "city": ["berlin" if i % 2 else "paris" for i in range(n)],
            "note": [None if i % 5 == 0 else f"n{i % 6}" for i in range(n)],
            "flag": [bool(i % 3) for i in range(n)],
            "label": [i % 2 for i in range(n)],
        }
    )
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    frame.to_csv(tmp_path / "t.csv", index=False)
    for name in ("t.parquet", "t.csv"):
        out = tmp_path / name.replace(".", "_")
        run(tmp_path / name, out, label_column="label")
        both = pd.concat([pd.read_parquet(out / "train"), pd.read_parquet(out / "eval")])
        both = both.sort_values("trace").reset_index(drop=True)
        assert both.dtypes.astype(str).tolist() == ["int64", "int64", "float64", "object", "object", "bool", "int64"]
        pd.testing.assert_frame_equal(both, frame)
        assert both["price"].isna().sum() == 9 and both["note"].isna().sum() == 12


def test_bool_label_with_missing_values_in_features_from_csv(tmp_path):
    text = "x,flag,y\n" + "".join(f"{i},{'' if i % 4 == 0 else bool(i % 2)},{i % 3 == 0}\n" for i in range(30))
    (tmp_path / "b.csv").write_text(text)
    result = run(tmp_path / "b.csv", tmp_path / "out", label_column="y", min_rows=30)
    assert result.task == "classification"
    assert result.label_classes == [False, True]
    assert result.positive_class is True and result.positive_rate == pytest.approx(10 / 30)
    train = pd.read_parquet(tmp_path / "out" / "train")
    assert train["y"].dtype == bool
    assert train["flag"].isna().any() and set(train["flag"].dropna()) <= {True, False}


@pytest.mark.parametrize(
    ("values", "task", "expected"),
    [
        (lambda i: i % 20, "auto", "classification"),
        (lambda i: i % 21, "auto", "regression"),
        (lambda i: i / 7, "auto", "regression"),
        (lambda i: ["a", "b", "c"][i % 3], "auto", "classification"),
        (lambda i: i % 2 == 0, "auto", "classification"),
        (lambda i: float(i % 2), "auto", "classification"),
        (lambda i: float(i % 20), "auto", "classification"),
        (lambda i: float(i % 21), "auto", "regression"),
        (lambda i: i % 21, "classification", "classification"),
        (lambda i: i % 3, "regression", "regression"),
    ],
)
def test_task_resolution(tmp_path, values, task, expected):
    frame = pd.DataFrame({"x": [i % 5 for i in range(105)], "y": [values(i) for i in range(105)]})
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    result = run(tmp_path / "d.parquet", tmp_path / "out", label_column="y", task=task, eval_fraction=0.5)
    assert result.task == expected
    if expected == "regression":
        assert result.label_classes is None and result.positive_rate is None
    else:
        assert result.label_classes == sorted(set(frame["y"].tolist()))
        assert all(type(c) in (bool, int, str) for c in result.label_classes)


def test_categorical_label_from_parquet(tmp_path):
    frame = pd.DataFrame({"x": [i % 3 for i in range(20)], "y": pd.Categorical(["no", "yes"] * 10)})
    frame.to_parquet(tmp_path / "c.parquet", index=False)
    result = run(tmp_path / "c.parquet", tmp_path / "out", label_column="y", min_rows=20)
    assert (result.task, result.label_classes, result.positive_rate) == ("classification", ["no", "yes"], 0.5)


def test_existing_outputs_are_replaced_on_success(tmp_path, churn_csv):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train").write_text("old")
    (out / "eval").write_text("old")
    run(churn_csv, out)
    assert (out / "train").read_bytes()[:4] == b"PAR1" and (out / "eval").read_bytes()[:4] == b"PAR1"
    assert sorted(p.name for p in out.iterdir()) == ["eval", "train"]


# --- errors: reading ----------------------------------------------------------------------------------------


def _write(name: str, content):
    """A source maker: ``content`` is bytes, text, or a function of (path, churn) that writes the file."""

    def make(tmp_path: Path, churn: pd.DataFrame) -> Path:
        path = tmp_path / name
        if callable(content):
            content(path, churn)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        return path

    return make


def _arrow(*args, **kwargs):
    """A writer of the pyarrow table ``pa.table(*args, **kwargs)`` (shapes pandas cannot write)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return lambda path, _: pq.write_table(pa.table(*args, **kwargs), path)


def _truncated(path, churn):
    churn.to_parquet(path.with_name("whole.parquet"), index=False)
    path.write_bytes(path.with_name("whole.parquet").read_bytes()[:-100])


#: (maker, message pattern, whether the header alone shows the problem: read_columns raises the same error).
BAD_SOURCES = {
    "missing": (_write("nope.csv", None), "nope.csv: file not found", True),
    "directory": (
        _write("dir.csv", lambda path, _: path.mkdir()),
        r"is a directory; expected a single \.csv, \.csv\.gz, \.parquet, \.pq file \(the directory holds: nothing\)",
        True,
    ),
    "empty csv": (_write("empty.csv", b""), r"the file is empty \(0 bytes\); expected a CSV", True),
    "empty parquet": (_write("empty.parquet", b""), r"empty \(0 bytes\); expected a PARQUET", False),
    "blank csv": (_write("blank.csv", "\n\n\n"), "no columns: the file has no header line", True),
    "header only": (_write("header.csv", "a,b,churned\n"), r"has a header \(3 columns\) but no data rows", False),
    "parquet without rows": (
        _write("none.parquet", lambda path, churn: churn.head(0).to_parquet(path, index=False)),
        "has 12 columns but no rows",
        False,
    ),
    "parquet without columns": (
        _write("nothing.parquet", _arrow({})),
        "the Parquet file has no columns",
        True,
    ),
    "garbage parquet": (
        _write("junk.parquet", b"this is not a parquet file\n" * 20),
        "not a readable Parquet file",
        True,
    ),
    "truncated parquet": (_write("cut.parquet", _truncated), "not a readable Parquet file", True),
    "parquet named csv": (
        _write("wrong.csv", lambda path, churn: churn.to_parquet(path, index=False)),
        "expected CSV but this is a Parquet file",
        True,
    ),
    "binary as csv": (_write("bin.csv", bytes(range(256)) * 8), "cannot parse CSV", True),
    "not utf-8": (_write("latin.csv", "name,café\nx,1\n".encode("latin-1")), "the file is not UTF-8 text", True),
    "semicolons": (
        _write("semi.csv", "a;b;churned\n1;2;0\n3;4;1\n"),
        "found a single column named 'a;b;churned'",
        True,
    ),
    "tabs": (
        _write("tabs.csv", "a\tchurned\n1\t0\n"),
        r"does not look comma-separated \(its header contains '\\t'\)",
        True,
    ),
    "written with its index": (
        _write("indexed.csv", lambda path, churn: churn.head(10).to_csv(path)),
        "empty column name at position 1 .*index=False",
        True,
    ),
    "blank csv column name": (_write("gap.csv", "a, ,churned\n1,2,0\n"), "empty column name at position 2", True),
    "blank parquet column name": (
        _write("gap.parquet", lambda path, _: pd.DataFrame({"": [1], "churned": [0]}).to_parquet(path, index=False)),
        "empty column name at position 1",
        True,
    ),
    "duplicate csv columns": (_write("dup.csv", "a,b,a,churned\n1,2,3,0\n"), "duplicate column names: 'a'", True),
    "duplicate parquet columns": (
        _write("dup.parquet", _arrow([[1, 2], [3, 4], [0, 1]], names=["x", "x", "y"])),
        "duplicate column names: 'x'",
        True,
    ),
    "unsupported format": (
        _write("data.json", '{"a": 1}'),
        "unsupported format: .*file_format='csv' or 'parquet'",
        True,
    ),
}


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_unreadable_sources_are_data_errors_naming_the_file(tmp_path, churn, case):
    make, match, _ = BAD_SOURCES[case]
    assert_data_error(make(tmp_path, churn), match, tmp_path / "out")


@pytest.mark.parametrize("case", [case for case, (_, _, in_header) in BAD_SOURCES.items() if in_header])
def test_read_columns_refuses_a_bad_header_with_read_tables_message(tmp_path, churn, case):
    make, match, _ = BAD_SOURCES[case]
    source = str(make(tmp_path, churn))
    with pytest.raises(DataError, match=match) as from_table:
        read_table(source)
    with pytest.raises(DataError, match=match) as from_header:
        read_columns(source)
    assert str(from_header.value).split(" (")[0] == str(from_table.value).split(" (")[0]
    assert str(from_header.value).startswith(source)


def test_missing_file_url(tmp_path):
    url = (tmp_path / "nope.csv").as_uri()
    with pytest.raises(DataError, match=f"^{url}: file not found"):
        read_table(url)
    with pytest.raises(DataError, match=f"^{url}: file not found"):
        read_columns(url)


@pytest.mark.parametrize(
    ("text", "line", "saw", "expected"),
    [
        ("a,b,churned\n1,2,0\n3,4,1\n5,6,7,1\n", 4, 4, 3),  # a long row in the middle
        ("a,b,churned\n1,2,0,9\n3,4,1,9\n", 2, 4, 3),  # every row longer: pandas would make an index of it
        ("a,b,churned\n1,2,0,9\n3,4,1\n", 2, 4, 3),  # the first row longer, the rest fine
    ],
)
def test_row_with_wrong_number_of_fields_names_the_line(tmp_path, text, line, saw, expected):
    (tmp_path / "rows.csv").write_text(text)
    assert_data_error(
        tmp_path / "rows.csv",
        f"cannot parse CSV: line {line} has {saw} fields, expected {expected} like the header",
        tmp_path / "out",
    )


def test_short_rows_are_an_error_naming_the_lines(tmp_path):
    """pandas pads a short row with NaN; a truncated record is refused with its line (where the record starts)."""
    (tmp_path / "short.csv").write_text('a,b,c\n1,2,3\n4,5\n6,7,8\n"two\nlines",1,\n\n9\n')
    with pytest.raises(
        DataError, match=r"2 row\(s\) have fewer fields than the 3 of the header \(line 3 has 2, line 8 has 1\)"
    ):
        read_table(str(tmp_path / "short.csv"))
    (tmp_path / "empty_last.csv").write_text("a,b,c\n1,2,\n4,5,6\n")
    assert np.isnan(read_table(str(tmp_path / "empty_last.csv")).loc[0, "c"])  # an empty field is a missing value


def test_a_directory_of_parquet_parts_is_named_as_a_directory(tmp_path, churn):
    """Whatever its name: a directory is not taken for a file of an unknown format."""
    parts = tmp_path / "churn"
    parts.mkdir()
    for i in range(7):
        churn.iloc[i::7].to_parquet(parts / f"part-{i}.parquet", index=False)
    for source in (str(parts), parts.as_uri()):
        message = assert_data_error(
            source, "is a directory; expected a single .csv, .csv.gz, .parquet, .pq file", tmp_path / "o"
        )
        assert (
            "(the directory holds: part-0.parquet, part-1.parquet, part-2.parquet, part-3.parquet, "
            "part-4.parquet, ... (7 entries))" in message
        )
        with pytest.raises(DataError, match="is a directory"):
            read_columns(source)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_says_so(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/data/churn.csv"
    message = assert_data_error(
        url, f"the host 127.0.0.1:{url.split(':')[2].split('/')[0]} refused the connection", tmp_path / "o"
    )
    assert "not found" not in message
    with pytest.raises(DataError, match="refused the connection"):
        read_columns(url)


def test_an_unknown_host_says_so(tmp_path):
    assert_data_error(
        "http://no-such-host.invalid/d.csv", "the host name in no-such-host.invalid cannot be resolved", tmp_path / "o"
    )


def test_unknown_protocol():
    with pytest.raises(DataError, match="^nosuch://bucket/d.csv: cannot open this URL: Protocol not known"):
        read_table("nosuch://bucket/d.csv")


def test_missing_protocol_package_is_named():
    # gcsfs is in the lock; a fresh interpreter where it cannot be imported shows what a user without it sees.
    code = (
        "import sys\n"
        "sys.modules['gcsfs'] = None\n"
        "from kfp_tabular.components.data_processing.ingest.core import read_table\n"
        "try:\n"
        "    read_table('gs://bucket/d.csv')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__ + ': ' + str(exc))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^DataError: gs://bucket/d.csv: .*needs the 'gcsfs' package.*pip install gcsfs", out.stdout), (
        out.stdout
    )


# --- errors: the label and the parameters ---------------------------------------------------------------------


def test_label_column_missing_lists_the_columns(tmp_path, churn_csv):
    message = assert_data_error(churn_csv, "label column 'churn' not found", tmp_path / "out", label_column="churn")
    assert "available columns: tenure_months, monthly_charges," in message and message.endswith("churned")


def test_label_with_missing_values(tmp_path, churn):
    frame = churn.copy()
    frame[LABEL] = frame[LABEL].astype("float64")
    frame.loc[[3, 10, 500], LABEL] = np.nan
    frame.to_parquet(tmp_path / "gaps.parquet", index=False)
    assert_data_error(
        tmp_path / "gaps.parquet",
        r"label column 'churned' has 3 missing values \(first at data rows 4, 11, 501",
        tmp_path / "out",
    )


def test_only_the_label_column(tmp_path):
    (tmp_path / "label.csv").write_text("churned\n0\n1\n0\n1\n0\n1\n")
    assert_data_error(tmp_path / "label.csv", "only the label column 'churned' is present", tmp_path / "out")


def test_single_class(tmp_path):
    pd.DataFrame({"x": range(60), "churned": [1] * 60}).to_parquet(tmp_path / "one.parquet", index=False)
    assert_data_error(tmp_path / "one.parquet", "has a single class 1; classification needs at least 2", tmp_path / "o")


def test_class_with_one_row(tmp_path):
    frame = pd.DataFrame({"x": range(60), "churned": ["a"] * 28 + ["b"] * 28 + ["c"] * 4})
    frame.to_parquet(tmp_path / "rare.parquet", index=False)
    assert_data_error(
        tmp_path / "rare.parquet", r"classes with fewer than 5 rows: 'c' \(4 rows\); each class needs", tmp_path / "o"
    )


def test_too_few_rows_per_split(tmp_path):
    pd.DataFrame({"x": range(4), "y": [0.5, 1.5, 2.5, 3.5]}).to_parquet(tmp_path / "tiny.parquet", index=False)
    assert_data_error(
        tmp_path / "tiny.parquet",
        r"4 rows with eval_fraction=0.2 give 3 train and 1 eval rows; each split needs at least 2",
        tmp_path / "out",
        label_column="y",
        min_rows=4,
    )


def test_eval_split_smaller_than_the_classes(tmp_path):
    frame = pd.DataFrame({"x": range(30), "y": ["a", "b", "c", "d", "e", "f"] * 5})
    frame.to_parquet(tmp_path / "six.parquet", index=False)
    assert_data_error(
        tmp_path / "six.parquet",
        "fewer than the 6 classes of 'y'",
        tmp_path / "out",
        label_column="y",
        eval_fraction=0.1,
        min_rows=30,
    )


def test_regression_needs_a_numeric_label(tmp_path, churn_csv):
    assert_data_error(
        churn_csv,
        "label column 'region' holds text; regression needs a numeric label",
        tmp_path / "out",
        label_column="region",
        task="regression",
    )


def test_regression_needs_two_values(tmp_path):
    pd.DataFrame({"x": range(60), "y": [2.5] * 60}).to_parquet(tmp_path / "flat.parquet", index=False)
    assert_data_error(
        tmp_path / "flat.parquet", "has the single value 2.5", tmp_path / "out", label_column="y", task="regression"
    )


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2, float("nan"), True, "0.2"])
def test_eval_fraction_out_of_range(tmp_path, churn_csv, fraction):
    with pytest.raises(ConfigError, match="eval_fraction: expected a number strictly between 0 and 1"):
        run(churn_csv, tmp_path / "out", eval_fraction=fraction)
    assert written(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed: expected an integer between 0 and 2\\*\\*32 - 1, got -1"),
        ({"seed": 1.5}, "seed: expected an integer"),
        ({"task": "clustering"}, "task: expected one of auto, classification, regression, got 'clustering'"),
        ({"label_column": ""}, "label_column: expected a column name"),
    ],
)
def test_bad_parameters(tmp_path, churn_csv, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run(churn_csv, tmp_path / "out", **kwargs)
    assert written(tmp_path / "out") == []


def test_same_train_and_eval_path(tmp_path, churn_csv):
    with pytest.raises(ConfigError, match="train_path and eval_path: expected two different files"):
        ingest(IngestRequest(str(churn_csv), LABEL), tmp_path / "x", os.path.join(str(tmp_path), "sub", "..", "x"))
    assert not (tmp_path / "x").exists()


# --- nothing half-written ----------------------------------------------------------------------------------


def test_failing_second_write_leaves_neither_file(tmp_path, churn_csv):
    (tmp_path / "blocker").write_text("a file where a directory is expected")
    train, evaluation = tmp_path / "out" / "train", tmp_path / "blocker" / "eval"
    with pytest.raises(OSError):
        ingest(IngestRequest(str(churn_csv), LABEL), train, evaluation)
    assert not train.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["blocker", "churn.csv", "out"]


def test_failure_keeps_existing_outputs(tmp_path, churn_csv):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train").write_text("previous train")
    (out / "eval").write_text("previous eval")
    with pytest.raises(DataError):
        run(churn_csv, out, label_column="nope")
    assert (out / "train").read_text() == "previous train" and (out / "eval").read_text() == "previous eval"
    assert sorted(p.name for p in out.iterdir()) == ["eval", "train"]


def test_failing_parquet_write_is_a_data_error_and_leaves_nothing(tmp_path, churn_csv, monkeypatch):
    import pyarrow as pa

    def refuse(frame, *args, **kwargs):
        raise pa.ArrowInvalid("cannot mix bytes and int in one column")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", refuse)
    with pytest.raises(DataError, match=f"^{churn_csv}: the table cannot be stored as Parquet: cannot mix"):
        run(churn_csv, tmp_path / "out")
    assert written(tmp_path / "out") == []


# --- remote sources --------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_http_csv_and_parquet(tmp_path, http_root, churn):
    root, base = http_root
    churn.to_csv(root / "churn.csv", index=False)
    churn.to_parquet(root / "churn.parquet", index=False)
    result = run(f"{base}/churn.csv", tmp_path / "out")
    assert result.content_hash == hashlib.sha256((root / "churn.csv").read_bytes()).hexdigest()
    assert result.rows == 1000 and result.source_uri == f"{base}/churn.csv"
    pd.testing.assert_frame_equal(read_table(f"{base}/churn.parquet"), churn)
    pd.testing.assert_frame_equal(read_table(f"{base}/churn.csv?version=2"), read_table(str(root / "churn.csv")))
    assert read_columns(f"{base}/churn.csv") == read_columns(f"{base}/churn.parquet") == churn.columns.tolist()


def test_http_missing_file(tmp_path, http_root):
    _, base = http_root
    assert_data_error(f"{base}/missing.csv", "file not found", tmp_path / "out")


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@pytest.fixture(scope="module")
def s3_endpoint(moto_s3):
    """moto's S3 server on loopback (``moto_s3`` from tests/support/s3.py, registered by tests/plugin.py)."""
    pytest.importorskip("s3fs")
    return moto_s3


@pytest.fixture()
def s3_bucket(s3_endpoint, monkeypatch, churn):
    import boto3
    import s3fs

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = "ingest-test-data"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="churn.csv", Body=churn.to_csv(index=False).encode())
    client.put_object(Bucket=bucket, Key="churn.parquet", Body=churn.to_parquet(index=False))
    s3fs.S3FileSystem.clear_instance_cache()
    yield bucket
    s3fs.S3FileSystem.clear_instance_cache()


def test_s3_through_aws_endpoint_url(tmp_path, s3_endpoint, s3_bucket, churn, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    result = run(f"s3://{s3_bucket}/churn.csv", tmp_path / "out")
    expected = hashlib.sha256(churn.to_csv(index=False).encode()).hexdigest()
    assert (result.rows, result.content_hash) == (1000, expected)
    pd.testing.assert_frame_equal(read_table(f"s3://{s3_bucket}/churn.parquet"), churn)
    assert read_columns(f"s3://{s3_bucket}/churn.parquet") == churn.columns.tolist()
    assert_data_error(f"s3://{s3_bucket}/missing.csv", "file not found", tmp_path / "missing")
    assert_data_error("s3://no-such-bucket-here/d.csv", "file not found", tmp_path / "no-bucket")


def test_s3_through_fsspec_config_variable(tmp_path, s3_endpoint, s3_bucket):
    # fsspec reads FSSPEC_<PROTOCOL>_<KWARG> when it is imported: check it in a fresh interpreter.
    code = (
        "from kfp_tabular.components.data_processing.ingest.core import read_table\n"
        f"print(len(read_table('s3://{s3_bucket}/churn.parquet')))\n"
    )
    env = {**os.environ, **S3_ENV, "FSSPEC_S3_ENDPOINT_URL": s3_endpoint}
    env.pop("AWS_ENDPOINT_URL_S3", None)
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1000"


def test_gzip_over_http(tmp_path, http_root, churn):
    root, base = http_root
    (root / "c.csv.gz").write_bytes(gzip.compress(churn.to_csv(index=False).encode()))
    assert len(read_table(f"{base}/c.csv.gz")) == 1000
    assert read_columns(f"{base}/c.csv.gz") == churn.columns.tolist()
