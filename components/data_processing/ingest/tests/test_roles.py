"""Column roles (roles.py) through ingest on small tables built here: each rule, each mark, each error."""

from __future__ import annotations

import datetime
import decimal
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.ingest.core import IngestResult, ingest
from kfp_tabular.components.data_processing.ingest.request import IngestRequest

N = 60


def base(n: int = N) -> pd.DataFrame:
    """A label and one ordinary feature."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"f": rng.integers(0, 5, n), "y": [i % 2 for i in range(n)]})


def run(tmp_path: Path, frame: pd.DataFrame, fmt: str = "parquet", **kwargs) -> IngestResult:
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return ingest(IngestRequest(str(path), "y", **kwargs), out / "train", out / "eval")


def outputs(tmp_path: Path) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "out" / "train")


def decided(result: IngestResult, column: str) -> list[tuple[str, str]]:
    return [(d.action, d.reason) for d in result.decisions if d.subject == column]


def refused(tmp_path: Path, frame: pd.DataFrame, error, match: str, fmt: str = "parquet", **kwargs) -> str:
    with pytest.raises(error, match=match) as info:
        run(tmp_path, frame, fmt, **kwargs)
    assert not (tmp_path / "out" / "train").exists() and not (tmp_path / "out" / "eval").exists()
    return str(info.value)


# --- detection: one rule each ----------------------------------------------------------------------------------


def _dates(n=N, freq="D", start="2023-01-01"):
    return pd.date_range(start, periods=n, freq=freq)


DETECTED = {
    "all missing": ([np.nan] * N, "dropped", "all 60 values are missing"),
    "constant": (["x"] * N, "dropped", "constant: every row is 'x'"),
    "row number": (list(range(100, 100 + N)), "dropped", "an ID: consecutive integers (a row number)"),
    "text ID": ([f"C-{i * 7:05d}" for i in range(N)], "dropped", "an ID: text unique in each of the 60 rows"),
    "nearly unique": (
        [f"k{i}" if i % 20 else None for i in range(N)],
        "dropped",
        "nearly unique text (57 distinct values in 57 rows",
    ),
    "free text": (
        [f"customer {i} wrote a long complaint about billing" for i in range(N)],
        "dropped",
        "free text (mean length 4",
    ),
    "dates as text": (
        list(_dates().strftime("%Y-%m-%d")),
        "expanded",
        "text that parses as dates ('2023-01-01', ...): replaced by c_year, c_month, c_day_of_week (UTC)",
    ),
    "timestamps as text with a few bad values": (
        [v if i not in (5, 9) else "unknown" for i, v in enumerate(_dates(freq="7h").strftime("%d.%m.%Y %H:%M"))],
        "expanded",
        "2 value(s) that are not dates became missing: replaced by c_year, c_month, c_day_of_week, c_hour",
    ),
    "durations": (pd.to_timedelta(np.arange(N) % 7, unit="h"), "converted", "durations converted to seconds"),
}


@pytest.mark.parametrize("case", DETECTED)
def test_detection_rule(tmp_path, case):
    values, action, reason = DETECTED[case]
    result = run(tmp_path, base().assign(c=values))
    [(got_action, got_reason)] = decided(result, "c")
    assert got_action == action and reason in got_reason, got_reason
    assert "c" not in outputs(tmp_path).columns or action == "converted"
    assert "y" in result.columns and result.label_column == "y"


def test_parquet_datetime_with_time_zone_and_date_columns_are_expanded(tmp_path):
    frame = base().assign(at=_dates(freq="5h").tz_localize("Europe/Berlin"))
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
        "day", pa.array([datetime.date(2024, 2, 1) + datetime.timedelta(days=i) for i in range(N)], pa.date32())
    )
    pq.write_table(table, tmp_path / "data.parquet")
    out = tmp_path / "out"
    result = ingest(IngestRequest(str(tmp_path / "data.parquet"), "y"), out / "train", out / "eval")
    assert [d.action for d in result.decisions if d.subject in ("at", "day")] == ["expanded", "expanded"]
    both = pd.concat([pd.read_parquet(out / "train"), pd.read_parquet(out / "eval")]).sort_index()
    assert {"at_year", "at_month", "at_day_of_week", "at_hour", "day_year", "day_month", "day_day_of_week"} <= set(
        both.columns
    )
    assert "day_hour" not in both.columns and "at" not in both.columns and "day" not in both.columns
    # 2023-01-01 00:00 in Berlin is 2022-12-31 23:00 UTC, a Saturday
    first = both.iloc[0]
    assert (first["at_year"], first["at_month"], first["at_day_of_week"], first["at_hour"]) == (2022, 12, 5, 23)
    assert (first["day_year"], first["day_month"], first["day_day_of_week"]) == (2024, 2, 3)


def test_list_and_struct_columns_are_dropped_with_a_decision(tmp_path):
    table = pa.table(
        {
            "f": [i % 4 for i in range(N)],
            "tags": pa.array([["a", "b"][: i % 3] for i in range(N)], pa.list_(pa.string())),
            "point": pa.array([{"x": i, "y": -i} for i in range(N)]),
            "y": [i % 2 for i in range(N)],
        }
    )
    pq.write_table(table, tmp_path / "data.parquet")
    out = tmp_path / "out"
    result = ingest(IngestRequest(str(tmp_path / "data.parquet"), "y"), out / "train", out / "eval")
    assert [(d.subject, d.action) for d in result.decisions if d.action == "dropped"] == [
        ("tags", "dropped"),
        ("point", "dropped"),
    ]
    assert "holds list/struct values (60 rows)" in decided(result, "tags")[0][1]
    assert result.columns == ["f", "y"]


def test_decimal_values_become_floats(tmp_path):
    table = pa.table(
        {
            "f": [i % 4 for i in range(N)],
            "amount": pa.array([decimal.Decimal(f"{i}.25") for i in range(N)], pa.decimal128(10, 2)),
            "y": [i % 2 for i in range(N)],
        }
    )
    pq.write_table(table, tmp_path / "data.parquet")
    out = tmp_path / "out"
    result = ingest(IngestRequest(str(tmp_path / "data.parquet"), "y"), out / "train", out / "eval")
    assert decided(result, "amount") == [("converted", "decimal values converted to float")]
    assert pd.read_parquet(out / "train")["amount"].dtype == "float64"


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("measure", np.arange(N) * 2.5),  # unique floats are a measurement, never an ID
        ("amount", list(range(0, 3 * N, 3))),  # unique integers, not consecutive, not named an ID
        ("category", [f"c{i % 30}" for i in range(N)]),  # many categories, but not nearly unique: train caps them
        ("flag", [None if i % 3 == 0 else "on" for i in range(N)]),  # one value plus missing: missingness informs
        ("small", list(range(10)) * 6),
        ("big", [1e100 * (i % 3) for i in range(N)]),  # large but finite and far from overflowing
    ],
)
def test_ordinary_columns_are_kept_without_a_decision(tmp_path, column, values):
    result = run(tmp_path, base().assign(**{column: values}))
    assert decided(result, column) == []
    assert column in outputs(tmp_path).columns


def test_an_integer_named_like_an_id_is_dropped(tmp_path):
    for name in ("customer_id", "CustomerID", "Id", "row_no", "rownames"):
        result = run(tmp_path, base().assign(**{name: list(range(0, 5 * N, 5))}))
        assert decided(result, name) == [
            ("dropped", "an ID: integers named like an ID, unique in each of the 60 rows")
        ], name


def test_the_label_is_never_dropped(tmp_path):
    frame = pd.DataFrame({"f": [i % 3 for i in range(N)], "y": [float(i) for i in range(N)]})
    result = run(tmp_path, frame)
    assert result.task == "regression" and "y" in result.columns and decided(result, "y")[0][0] == "regression"


# --- errors ----------------------------------------------------------------------------------------------------


def test_a_column_mixing_numbers_and_text_is_an_error_naming_it_and_the_odd_values(tmp_path):
    values = [str(i % 9) if i % 10 else "?" for i in range(N)]
    message = refused(
        tmp_path,
        base().assign(ca=values),
        DataError,
        r"column 'ca' mixes numbers \(54 values\) with text \(6 values: '\?' \(6 rows\)\); expected numbers",
        fmt="csv",
    )
    assert message.startswith(str(tmp_path / "data.csv")) and "categorical_columns" in message


def test_marked_categorical_a_mixed_column_is_cast_to_text(tmp_path):
    values = [str(i % 9) if i % 10 else "?" for i in range(N)]
    result = run(
        tmp_path,
        base().assign(ca=values, code=[float(i % 4) for i in range(N)]),
        "csv",
        categorical_columns=["ca", "code"],
    )
    assert decided(result, "ca") == [
        ("categorical", "listed in categorical_columns: values cast to text (10 categories)")
    ]
    written = outputs(tmp_path)
    assert set(written["code"]) <= {"0", "1", "2", "3"}  # whole floats without ".0"
    assert written["ca"].map(type).eq(str).all()


@pytest.mark.parametrize(
    ("value", "shown"),
    [(np.inf, "inf"), (-np.inf, "-inf"), (1e308, "1e+308"), (-3e200, "-3e+200")],
)
def test_infinite_or_huge_numbers_are_an_error_naming_the_column(tmp_path, value, shown):
    values = np.arange(N) / 3
    values[7] = value
    refused(
        tmp_path,
        base().assign(x=values),
        DataError,
        rf"column 'x' holds 1 infinite or huge value\(s\) \({re.escape(shown)}; first at data rows 8, counting",
    )


def test_infinity_in_a_csv_is_refused_too(tmp_path):
    frame = base().assign(x=[("inf" if i == 3 else str(i / 2)) for i in range(N)])
    refused(tmp_path, frame, DataError, r"column 'x' holds 1 infinite or huge value\(s\) \(inf;", fmt="csv")


def test_nothing_left_but_the_label(tmp_path):
    frame = pd.DataFrame({"id": range(N), "empty": [None] * N, "y": [i % 2 for i in range(N)]})
    refused(tmp_path, frame, DataError, r"no feature column is left besides the label 'y' \(dropped: id, empty\)")


def test_an_expanded_name_that_is_taken(tmp_path):
    frame = base().assign(at=list(_dates().strftime("%Y-%m-%d")), at_year=[i % 3 for i in range(N)])
    refused(tmp_path, frame, DataError, "column 'at' is expanded into 'at_year', but a column of that name exists")


# --- marks -----------------------------------------------------------------------------------------------------


def test_marks_win_over_detection(tmp_path):
    frame = base().assign(
        a=[i % 4 for i in range(N)], b=[i % 5 for i in range(N)], c=[f"t{i % 3}" for i in range(N)], d=range(N)
    )
    result = run(tmp_path, frame, drop_columns=["a"], id_columns=["b"], text_columns=["c"], categorical_columns=["d"])
    assert [(d.subject, d.action) for d in result.decisions if d.subject != "y"] == [
        ("a", "dropped"),
        ("b", "dropped"),
        ("c", "dropped"),
        ("d", "categorical"),  # a row number, but marked categorical: kept as text
    ]
    assert decided(result, "a") == [("dropped", "listed in drop_columns")]
    assert (
        "listed in id_columns" in decided(result, "b")[0][1] and "listed in text_columns" in decided(result, "c")[0][1]
    )
    assert outputs(tmp_path).columns.tolist() == ["f", "y", "d"]


def test_a_marked_datetime_column_is_expanded_and_must_parse(tmp_path):
    frame = base().assign(when=list(_dates(freq="h").strftime("%Y/%m/%d %H:00")))
    result = run(tmp_path, frame, datetime_columns=["when"])
    assert decided(result, "when")[0][0] == "expanded" and "listed in datetime_columns" in decided(result, "when")[0][1]
    assert "when_hour" in outputs(tmp_path).columns
    bad = base().assign(when=["2024-01-01"] * (N - 2) + ["soon", "later"])
    (tmp_path / "bad").mkdir()
    refused(
        tmp_path / "bad",
        bad,
        DataError,
        r"column 'when' is listed in datetime_columns, but 2 value\(s\) are not dates \(e.g. 'soon', 'later'\)",
        datetime_columns=["when"],
    )


def test_an_unknown_marked_column_is_a_config_error_naming_the_parameter(tmp_path):
    message = refused(
        tmp_path, base(), ConfigError, "^id_columns: column 'nope' not found in .*data.parquet", id_columns=["nope"]
    )
    assert message.endswith("its columns: f, y")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"drop_columns": ["y"]}, "drop_columns: lists the label column 'y'; the label is never a feature"),
        ({"id_columns": ["a"], "text_columns": ["a"]}, "text_columns: column 'a' is also listed in id_columns"),
        ({"categorical_columns": "a"}, "categorical_columns: expected a list of column names, got 'a'"),
        ({"datetime_columns": [""]}, "datetime_columns: expected a list of column names"),
        ({"min_rows": 3}, "min_rows: expected an integer >= 4, got 3"),
        ({"positive_class": 1}, "positive_class: expected a class label as text, or empty, got 1"),
    ],
)
def test_mark_parameters_are_checked_by_the_request(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        IngestRequest("d.csv", "y", **kwargs)
