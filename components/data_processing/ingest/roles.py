"""Column roles: which columns become features, decided once, here, from the data ingest reads.

Marks given by the user (``drop_columns``, ``id_columns``, ``text_columns``, ``datetime_columns``,
``categorical_columns``) win over detection. Every other column (never the label) goes through these rules,
in this order; each rule that fires is a :class:`~kfp_tabular.components.common.decisions.Decision`:

- all values missing: dropped;
- values that are not numbers, text, booleans or dates (lists, structs, bytes): dropped;
- constant (one distinct value, no missing value): dropped;
- datetime values (Parquet ``timestamp``/``date``): expanded to calendar features, the original dropped;
- durations: converted to seconds; ``decimal.Decimal`` values: converted to float;
- integers unique per row (at least 20 rows) that are consecutive (a row number) or named like an ID
  (``id``, ``customer_id``, ``CustomerID``, ``row_no``): an ID, dropped;
- ``inf`` or ``|x| > 1e150`` in a number column: an **error** naming the column;
- text whose values are at least 50% numbers, but not all: an **error** naming the column and the odd values
  (unless it is marked categorical: then it is cast to text, a decision);
- text of which at least 95% (of a sample of 1,000 distinct values) parse as dates: expanded, original dropped;
- free text (mean length >= 30 characters, at least half the values contain a space, at least half distinct):
  dropped;
- text unique per row (no missing value, at least 20 rows): an ID, dropped;
- text with at least 90% distinct values (at least 20 rows): nearly unique, dropped.

A date becomes ``<name>_year``, ``<name>_month``, ``<name>_day_of_week`` (0 = Monday) and, when any value has
a time of day, ``<name>_hour`` (time zones converted to UTC); values that do not parse become missing. Text
with many distinct values is kept: train caps its one-hot encoding (``max_categories``). Huge numbers are an
error, not clipped: ``inf`` or ``1e308`` in a feature is a broken value upstream (squaring values above ~1e154
overflows float64 in the model's scaler), and clipping would hide it.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import re
from typing import TYPE_CHECKING, Any

from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.common.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

#: A unique-per-row column is an ID only with at least this many rows.
ID_MIN_ROWS = 20
#: Text with at least this share of distinct values (and ID_MIN_ROWS rows) is dropped as nearly unique.
NEARLY_UNIQUE_SHARE = 0.9
#: Free text: mean length, share of values containing whitespace, share of distinct values.
TEXT_MIN_MEAN_LENGTH = 30
TEXT_MIN_SPACED_SHARE = 0.5
TEXT_MIN_DISTINCT_SHARE = 0.5
#: Text is a date when at least this share of (a sample of) its values parse as dates.
DATE_PARSE_SHARE = 0.95
DATE_SAMPLE = 1000
#: Text whose values are at least this share numbers (but not all) mixes numbers and text.
MIXED_NUMBER_SHARE = 0.5
#: Larger magnitudes (and inf) are refused: squares of values above ~1.3e154 overflow float64.
HUGE = 1e150
#: The last word of a column name that says "identifier" (``customer_id``, ``CustomerID``, ``row_no``).
_ID_WORDS = {"id", "ids", "uuid", "guid", "idx", "index", "key", "no", "nr", "rownames", "rowname"}
_STEP = "ingest"


@dataclasses.dataclass(frozen=True)
class Marks:
    """Columns the user marked (the request's lists)."""

    drop: tuple[str, ...] = ()
    id: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    datetime: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    @classmethod
    def of(cls, request) -> Marks:
        """Return the marks of an ingest request."""
        return cls(
            tuple(request.drop_columns),
            tuple(request.id_columns),
            tuple(request.text_columns),
            tuple(request.datetime_columns),
            tuple(request.categorical_columns),
        )

    def fields(self) -> dict[str, tuple[str, ...]]:
        """Parameter name -> marked columns."""
        return {
            "drop_columns": self.drop,
            "id_columns": self.id,
            "text_columns": self.text,
            "datetime_columns": self.datetime,
            "categorical_columns": self.categorical,
        }


def check_marks(marks: Marks, columns: list[str], uri: str) -> None:
    """Refuse a marked column the table does not have (ConfigError naming the parameter and the column)."""
    present = set(columns)
    for field, names in marks.fields().items():
        unknown = [name for name in names if name not in present]
        if unknown:
            raise ConfigError(f"{field}: column {unknown[0]!r} not found in {uri}; its columns: {', '.join(columns)}")


def assign_roles(frame: pd.DataFrame, label_column: str, marks: Marks, uri: str) -> tuple[pd.DataFrame, list[Decision]]:
    """Apply the marks and the detection rules; return the feature table (label included) and the decisions.

    Args:
        frame: The table as read.
        label_column: The label, never dropped or changed here.
        marks: The user's marks (checked with :func:`check_marks` first).
        uri: The source, for messages.

    Raises:
        DataError: A column holds huge or infinite numbers, mixes numbers and text (and is not marked
            categorical), a column marked as dates does not parse, an expanded date column's name is taken, or
            no feature is left.
    """
    import pandas as pd

    decisions: list[Decision] = []
    out: dict[str, Any] = {}
    marked = {name: role for role, names in dataclasses.asdict(marks).items() for name in names}
    for name in frame.columns:
        column = frame[name]
        if name == label_column:
            out[name] = column
            continue
        role = marked.get(name)
        kept = _marked(name, column, role, uri, decisions) if role else _detect(name, column, uri, decisions)
        for new_name, values in kept.items():
            if new_name != name and (new_name in frame.columns or new_name in out):
                raise DataError(
                    f"{uri}: column {name!r} is expanded into {new_name!r}, but a column of that name exists; "
                    f"rename one, or mark {name!r} in drop_columns"
                )
            out[new_name] = values
    if len(out) < 2:
        dropped = ", ".join(d.subject for d in decisions if d.action == "dropped")
        raise DataError(
            f"{uri}: no feature column is left besides the label {label_column!r} (dropped: {dropped}); "
            "expected at least one usable feature"
        )
    return pd.DataFrame(out, index=frame.index), decisions


def _decide(decisions: list[Decision], name: str, action: str, reason: str) -> dict:
    decisions.append(Decision(_STEP, str(name), action, reason))
    return {}


def _marked(name: str, column: pd.Series, role: str, uri: str, decisions: list[Decision]) -> dict:
    if role == "drop":
        return _decide(decisions, name, "dropped", "listed in drop_columns")
    if role == "id":
        return _decide(decisions, name, "dropped", "an ID (listed in id_columns): identifies rows, predicts nothing")
    if role == "text":
        return _decide(decisions, name, "dropped", "free text (listed in text_columns): no text features are built")
    if role == "datetime":
        parsed = _to_datetime(column)
        bad = column[column.notna() & parsed.isna()]
        if len(bad):
            raise DataError(
                f"{uri}: column {name!r} is listed in datetime_columns, but {len(bad)} value(s) are not dates "
                f"(e.g. {', '.join(map(repr, bad.astype(str).unique()[:3]))}); expected dates such as 2024-05-31 or "
                "2024-05-31T14:00:00"
            )
        return _expand(name, parsed, "listed in datetime_columns", decisions)
    return _categorical(name, column, decisions)


def _categorical(name: str, column: pd.Series, decisions: list[Decision]) -> dict:
    """Cast a column marked categorical to text (whole floats without ``.0``), keeping missing values."""
    import pandas as pd
    from pandas.api import types

    values = column
    if types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")
    text = values.astype(str).where(values.notna(), None).astype(object)
    _decide(
        decisions,
        name,
        "categorical",
        f"listed in categorical_columns: values cast to text ({int(text.nunique())} categories)",
    )
    return {name: pd.Series(text, index=column.index, name=name)}


def _detect(name: str, column: pd.Series, uri: str, decisions: list[Decision]) -> dict:
    from pandas.api import types

    rows = len(column)
    present = column.dropna()
    if present.empty:
        return _decide(decisions, name, "dropped", f"all {rows} values are missing")
    kinds = _value_kinds(present) if types.is_object_dtype(column) else {}
    unusable = {k: v for k, v in kinds.items() if k not in ("text", "number", "bool", "date", "decimal")}
    if unusable:
        kind, count = max(unusable.items(), key=lambda item: item[1])
        return _decide(
            decisions, name, "dropped", f"holds {kind} values ({count} rows): not a number, text, boolean or date"
        )
    distinct = present.nunique()
    if distinct == 1 and len(present) == rows:
        return _decide(decisions, name, "dropped", f"constant: every row is {_short(present.iloc[0])}")
    if types.is_datetime64_any_dtype(column) or kinds.get("date") == len(present):
        return _expand(name, _to_datetime(column), "a date/time column", decisions)
    if types.is_timedelta64_dtype(column):
        _decide(decisions, name, "converted", "durations converted to seconds (a number)")
        return {name: column.dt.total_seconds()}
    if kinds.get("decimal") == len(present):
        _decide(decisions, name, "converted", "decimal values converted to float")
        return {name: column.astype("float64")}
    if types.is_bool_dtype(column) or kinds.get("bool") == len(present):
        return {name: column}
    if types.is_numeric_dtype(column):
        return _numeric(name, column, present, uri, decisions)
    if set(kinds) - {"text"} and kinds.get("text"):
        others = ", ".join(sorted(set(kinds) - {"text"}))
        raise DataError(
            f"{uri}: column {name!r} mixes text with {others} values; expected one type (mark it in "
            "categorical_columns to keep it as text categories, or in drop_columns)"
        )
    return _text(name, column, present, uri, decisions)


def _value_kinds(present: pd.Series) -> dict[str, int]:
    """Count the non-missing values of an object column by kind (text, number, bool, date, decimal, ...)."""
    import numpy as np
    from pandas.api.types import infer_dtype

    if infer_dtype(present, skipna=True) == "string":  # every value is text: one pass in C, not one call a row
        return {"text": len(present)}

    def kind(value: Any) -> str:
        if isinstance(value, str):
            return "text"
        if isinstance(value, (bool, np.bool_)):
            return "bool"
        if isinstance(value, (int, float, np.integer, np.floating)):
            return "number"
        if isinstance(value, (datetime.date, np.datetime64)):
            return "date"
        if isinstance(value, decimal.Decimal):
            return "decimal"
        if isinstance(value, (list, tuple, dict, set, np.ndarray)):
            return "list/struct"
        if isinstance(value, (bytes, bytearray)):
            return "binary"
        return type(value).__name__

    return present.map(kind).value_counts().to_dict()


def _short(value: Any, width: int = 40) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _looks_like_id(name: str) -> bool:
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", str(name))
    return bool(words) and (words[-1].lower() in _ID_WORDS or str(name).lower().startswith("unnamed"))


def _numeric(name: str, column: pd.Series, present: pd.Series, uri: str, decisions: list[Decision]) -> dict:
    import numpy as np
    from pandas.api import types

    values = present.to_numpy(dtype="float64")
    huge = ~np.isfinite(values) | (np.abs(values) > HUGE)
    if huge.any():
        rows = [str(i + 1) for i in np.flatnonzero(column.notna().to_numpy())[np.flatnonzero(huge)][:3]]
        examples = ", ".join(sorted({repr(float(v)) for v in values[huge][:3]}))
        raise DataError(
            f"{uri}: column {name!r} holds {int(huge.sum())} infinite or huge value(s) ({examples}; first at data "
            f"rows {', '.join(rows)}, counting from 1); expected finite numbers of magnitude at most {HUGE:g} "
            "(a model's arithmetic overflows beyond it): fix or blank these values, or list the column in "
            "drop_columns"
        )
    rows = len(column)
    if types.is_integer_dtype(column) and rows >= ID_MIN_ROWS and len(present) == rows and present.is_unique:
        consecutive = int(values.max() - values.min()) == rows - 1
        if consecutive or _looks_like_id(name):
            why = "consecutive integers (a row number)" if consecutive else "integers named like an ID"
            return _decide(decisions, name, "dropped", f"an ID: {why}, unique in each of the {rows} rows")
    return {name: column}


def _text(name: str, column: pd.Series, present: pd.Series, uri: str, decisions: list[Decision]) -> dict:
    import pandas as pd

    rows, count = len(column), len(present)
    text = present.astype(str)
    # Each distinct value is parsed and measured once, weighted by its rows (exact integer sums: the same
    # shares and mean as row by row, at the cost of one hash pass on millions of rows).
    counts = text.value_counts(sort=False)
    weights = counts.to_numpy()
    is_number = pd.to_numeric(pd.Series(counts.index.to_numpy(), dtype=object), errors="coerce").notna().to_numpy()
    share = int(weights[is_number].sum()) / count
    if MIXED_NUMBER_SHARE <= share < 1.0:
        numbers = pd.to_numeric(text, errors="coerce")
        odd = text[numbers.isna()].value_counts()
        found = int(numbers.notna().sum())
        shown = ", ".join(f"{_short(value)} ({n} rows)" for value, n in odd.head(5).items())
        raise DataError(
            f"{uri}: column {name!r} mixes numbers ({found} values) with text ({len(text) - found} values: {shown}); "
            "expected numbers. A marker of missing values should be an empty field; to keep the "
            "column as categories list it in categorical_columns, or drop it with drop_columns"
        )
    if share < MIXED_NUMBER_SHARE:
        sample = text.drop_duplicates().head(DATE_SAMPLE)
        parsed = _to_datetime(sample)
        has_digit = sample.str.contains(r"\d", regex=True)
        if float((parsed.notna() & has_digit).mean()) >= DATE_PARSE_SHARE:
            full = _to_datetime(column)
            failed = int((column.notna() & full.isna()).sum())
            note = f"; {failed} value(s) that are not dates became missing" if failed else ""
            return _expand(name, full, f"text that parses as dates ({_short(present.iloc[0])}, ...){note}", decisions)
    distinct = len(counts)
    mean_length = int((counts.index.str.len().to_numpy() * weights).sum()) / count
    # Whitespace is looked for (a regex a row) only in text long enough to be free text.
    long_enough = mean_length >= TEXT_MIN_MEAN_LENGTH
    spaced = float(text.str.contains(r"\s", regex=True).mean()) if long_enough else 0.0
    if long_enough and spaced >= TEXT_MIN_SPACED_SHARE and distinct >= TEXT_MIN_DISTINCT_SHARE * count:
        return _decide(
            decisions,
            name,
            "dropped",
            f"free text (mean length {mean_length:.0f} characters, {distinct} distinct values in {count} rows): "
            "no text features are built; list it in categorical_columns to keep it as categories",
        )
    if rows >= ID_MIN_ROWS and count == rows and distinct == rows:
        return _decide(decisions, name, "dropped", f"an ID: text unique in each of the {rows} rows")
    if rows >= ID_MIN_ROWS and distinct >= NEARLY_UNIQUE_SHARE * count:
        return _decide(
            decisions,
            name,
            "dropped",
            f"nearly unique text ({distinct} distinct values in {count} rows, >= {NEARLY_UNIQUE_SHARE:.0%}): "
            "as categories it cannot generalise; list it in categorical_columns to keep it",
        )
    return {name: column}


def _to_datetime(values: pd.Series) -> pd.Series:
    """Parse dates (text, date objects, datetime64) to naive UTC ``datetime64``; what does not parse is NaT."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(values, errors="coerce", utc=True)
        except (TypeError, ValueError, OverflowError):
            parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None)


def _expand(name: str, parsed: pd.Series, why: str, decisions: list[Decision]) -> dict:
    """Calendar features of a date column: year, month, day of week, and hour when times are present."""
    parts = {"year": parsed.dt.year, "month": parsed.dt.month, "day_of_week": parsed.dt.dayofweek}
    present = parsed.dropna()
    if ((present.dt.hour != 0) | (present.dt.minute != 0) | (present.dt.second != 0)).any():
        parts["hour"] = parsed.dt.hour
    out = {}
    for part, values in parts.items():
        out[f"{name}_{part}"] = values.astype("float64") if values.isna().any() else values.astype("int64")
    _decide(
        decisions,
        name,
        "expanded",
        f"{why}: replaced by {', '.join(out)} (UTC); the served model expects these columns too",
    )
    return out
