"""The label: which task it calls for, which class is positive, how many rows a model needs.

Standard library only, so a runner can decide the task from a label column before anything runs (and check
the evaluation thresholds against it) without importing pandas here; ingest and train apply the same rules.

Rules (``task="auto"``), on the label's distinct non-missing values:

- text (or a pandas categorical) or booleans: classification;
- integers: classification with at most :data:`MAX_AUTO_CLASSES` distinct values, regression otherwise;
- floats whose values are all whole numbers (``1.0``/``0.0``) with at most :data:`MAX_AUTO_CLASSES` distinct
  values: classification (ingest stores them as integers); other floats: regression;
- a label mixing numbers and text, or holding ``inf``: an error.

The positive class of a binary label (what precision, recall, F1 and ROC AUC measure) is the one named by
``positive_class``, else the **minority class** (on a tie, the larger of the two sorted values, e.g. ``1``,
``True``, ``"yes"``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable

from kfp_tabular.components.common.errors import ConfigError, DataError

#: ``task="auto"``: a label with at most this many distinct whole-number values is a classification label.
MAX_AUTO_CLASSES = 20
#: The default of ingest's ``min_rows``: fewer rows cannot train and evaluate a model worth a gate.
MIN_ROWS = 50
#: Every class of a classification label needs at least this many rows (a stratified split puts some in each split).
MIN_CLASS_ROWS = 5


@dataclasses.dataclass(frozen=True)
class LabelTask:
    """The task a label column calls for.

    Attributes:
        task: ``classification`` or ``regression``.
        reason: Why, with the numbers that decided it (one line, for a decision).
        whole_floats: The label holds floats that are all whole numbers and the task is classification: they
            are class labels stored as floats (ingest casts them to integers).
    """

    task: str
    reason: str
    whole_floats: bool = False


def native(value: Any) -> Any:
    """Turn a numpy scalar into the plain Python value (JSON- and metadata-friendly)."""
    return value.item() if hasattr(value, "item") and callable(value.item) else value


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "text"


def _show(values: Iterable[Any], limit: int = 5) -> str:
    items = list(values)
    shown = ", ".join(repr(v) for v in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def infer_task(values: Iterable[Any], task: str = "auto", label_column: str = "label") -> LabelTask:
    """Decide classification or regression from a label column's values (the module's rules).

    Pure and cheap: pass the distinct values (``series.unique()``) or all of them; missing values (None, NaN,
    pandas NA) are ignored. A pandas categorical column is classification whatever its categories.

    Args:
        values: The label's values (a list, an array, a pandas Series).
        task: ``auto``, or ``classification`` / ``regression`` to check that the label allows it.
        label_column: The label's name, for messages.

    Returns:
        The task and the reason.

    Raises:
        ConfigError: ``task`` is not auto, classification or regression.
        DataError: No values; a label mixing numbers and text, holding infinite values; non-integer floats
            for classification; text, booleans or a single value for regression.
    """
    if task not in ("auto", "classification", "regression"):
        raise ConfigError(f"task: expected one of auto, classification, regression, got {task!r}")
    categorical = str(getattr(values, "dtype", "")) == "category"
    distinct = list(dict.fromkeys(native(v) for v in values if not _missing(native(v))))
    if not distinct:
        raise DataError(f"label column {label_column!r} has no values")
    kinds = {_kind(v) for v in distinct}
    numbers = [v for v in distinct if _kind(v) in ("int", "float")]
    if "text" in kinds and (kinds & {"int", "float", "bool"}) and not categorical:
        texts = [v for v in distinct if _kind(v) == "text"]
        raise DataError(
            f"label column {label_column!r} mixes numbers ({_show(numbers or distinct)}) and text ({_show(texts)}); "
            "expected one type of label"
        )
    infinite = [v for v in numbers if isinstance(v, float) and math.isinf(v)]
    if infinite:
        raise DataError(
            f"label column {label_column!r} holds infinite values ({_show(infinite)}); expected finite labels"
        )
    whole = all(float(v).is_integer() for v in numbers)
    count = len(distinct)

    if task == "regression":
        if categorical or kinds & {"text", "bool"}:
            what = "categorical" if categorical else ("text" if "text" in kinds else "booleans")
            raise DataError(f"label column {label_column!r} holds {what}; regression needs a numeric label")
        if count < 2:
            raise DataError(
                f"label column {label_column!r} has the single value {distinct[0]!r}; regression needs at least 2 "
                "distinct values"
            )
        return LabelTask("regression", "requested (task='regression')")
    if task == "classification":
        if "float" in kinds and not whole:
            examples = [v for v in numbers if not float(v).is_integer()]
            raise DataError(
                f"label column {label_column!r} holds non-integer numbers ({_show(examples)}); classification needs "
                "discrete labels (use task='regression')"
            )
        return LabelTask("classification", "requested (task='classification')", "float" in kinds)

    if categorical:
        return LabelTask("classification", f"the label is categorical ({count} categories)")
    if kinds == {"bool"}:
        return LabelTask("classification", "the label holds booleans")
    if "text" in kinds:
        return LabelTask("classification", f"the label holds text ({count} distinct values)")
    if kinds == {"int"}:
        if count <= MAX_AUTO_CLASSES:
            why = f"integer label with {count} distinct values (at most {MAX_AUTO_CLASSES})"
            return LabelTask("classification", why)
        return LabelTask("regression", f"integer label with {count} distinct values (more than {MAX_AUTO_CLASSES})")
    if whole and count <= MAX_AUTO_CLASSES:
        shown = ", ".join(repr(float(v)) for v in sorted(numbers)[:5])
        return LabelTask(
            "classification",
            f"float label whose {count} distinct values ({shown}) are all whole numbers (at most "
            f"{MAX_AUTO_CLASSES}): class labels stored as floats, cast to integers",
            True,
        )
    if whole:
        return LabelTask("regression", f"numeric label with {count} distinct values (more than {MAX_AUTO_CLASSES})")
    return LabelTask("regression", f"numeric label with non-integer values ({count} distinct)")


def sorted_values(values: Iterable[Any]) -> list[Any]:
    """Sort label values as plain Python values (mixed types by type name, then text)."""
    natives = [native(v) for v in values]
    try:
        return sorted(natives)
    except TypeError:
        return sorted(natives, key=lambda v: (type(v).__name__, str(v)))


def _matches(value: Any, requested: str) -> bool:
    if isinstance(value, bool):
        return requested.strip().lower() in (("true", "1") if value else ("false", "0"))
    if isinstance(value, float) and value.is_integer():
        return requested.strip() in (str(value), str(int(value)))
    return str(value) == requested or (not isinstance(value, str) and str(value) == requested.strip())


def positive_class(counts: dict[Any, int], requested: str, label_column: str) -> tuple[Any, str] | None:
    """Choose the positive class of a label: ``(value, reason)``, or None when there is none to choose.

    Args:
        counts: Class value -> rows (all classes of a classification label); empty for regression.
        requested: ``positive_class`` as given ("" = the default: the minority class of a binary label). It
            names a value as text: ``"yes"``, ``"1"`` (also matches ``1.0``), ``"true"`` (a boolean).
        label_column: The label's name, for messages.

    Raises:
        ConfigError: ``requested`` is set for a regression or multiclass label, or is not one of its values.
    """
    values = sorted_values(counts)
    if len(values) != 2:
        if requested:
            what = "a regression label" if not values else f"a label with {len(values)} classes"
            raise ConfigError(
                f"positive_class: {requested!r} given, but {label_column!r} is {what}; positive_class applies to "
                "binary labels only (leave it empty)"
            )
        return None
    counted = {native(k): v for k, v in counts.items()}
    total = sum(counted.values())
    if requested:
        found = [v for v in values if _matches(v, requested)]
        if not found:
            raise ConfigError(
                f"positive_class: {requested!r} is not a value of label column {label_column!r} (its values: "
                f"{', '.join(map(repr, values))})"
            )
        value = found[0]
        return value, f"{value!r} as set by positive_class ({counted[value] / total:.1%} of rows)"
    low, high = values
    value = low if counted[low] < counted[high] else high
    share = counted[value] / total
    why = "the minority class" if counted[low] != counted[high] else "the classes are balanced: the larger value"
    return value, f"{value!r}: {why} ({share:.1%} of rows); set positive_class to choose the other"
