"""The training schema at the door: every request's values checked against what ``metadata.json`` records.

The TFDV schema travels with the model as JSON in ``metadata.json["features"]`` (the serve env cannot import
tensorflow_metadata): each entry has ``name``, ``dtype`` (int|float|bool|string), ``kind`` and, when train
recorded them, ``domain`` (the categories seen in training), ``min``/``max`` (the numeric range seen in
training), ``required`` (default true: the column must be in the request) and ``nullable`` (training saw
missing values). Types are always checked; domains, ranges and nullability only when recorded.

Each value that breaks the schema is a violation of one kind:

==================  ==========================================================================  =======
kind                what                                                                        default
==================  ==========================================================================  =======
``type``            not a value of the feature's dtype (or of the V2 datatype it was sent as)    reject
``non_finite``      ``inf``/``-inf`` (``Infinity``, ``1e400``, ``"inf"``) in a numeric feature   reject
``missing``         null in a feature training saw no nulls in (``nullable: false``)              flag
``unseen_category`` a category not in the feature's training domain                            flag
``out_of_range``    a number outside the [min, max] seen in training                            flag
==================  ==========================================================================  =======

A policy maps each kind to ``reject`` (HTTP 400 naming every violating field and what was expected) or
``flag`` (served; counted per feature in Prometheus and listed in the response's parameters). A flagged
``type`` or ``non_finite`` value is served as a missing value; flagged unseen categories and out-of-range
numbers are served as sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.deployment.model_server.errors import SchemaRejected

KINDS = ("type", "non_finite", "missing", "unseen_category", "out_of_range")
ACTIONS = ("reject", "flag")
DEFAULT_POLICY: Dict[str, str] = {
    "type": "reject",
    "non_finite": "reject",
    "missing": "flag",
    "unseen_category": "flag",
    "out_of_range": "flag",
}
#: How many violations a rejection lists (the count is always given).
MAX_LISTED = 20
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRUE_STRINGS = {"true": True, "1": True, "false": False, "0": False}
_INT_DATATYPES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (_INT64_MIN, _INT64_MAX),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
_FP_DATATYPES = ("FP16", "FP32", "FP64")
#: The V2 datatypes a request may declare for a feature of each dtype.
COMPATIBLE_DATATYPES = {
    "int": set(_INT_DATATYPES) | set(_FP_DATATYPES) | {"BYTES"},
    "float": set(_INT_DATATYPES) | set(_FP_DATATYPES) | {"BYTES"},
    "bool": set(_INT_DATATYPES) | set(_FP_DATATYPES) | {"BOOL", "BYTES"},
    "string": {"BYTES"},
}


def parse_policy(text: Optional[str]) -> Dict[str, str]:
    """``"reject"``, ``"flag"`` (every kind) or ``"kind=action,..."`` over the defaults.

    Raises:
        ConfigError: An unknown kind or action, naming it and listing the valid ones.
    """
    policy = dict(DEFAULT_POLICY)
    text = (text or "").strip()
    if not text or text == "default":
        return policy
    if text in ACTIONS:
        return {kind: text for kind in KINDS}
    for part in text.split(","):
        kind, sep, action = (p.strip() for p in part.partition("="))
        if not sep or kind not in KINDS or action not in ACTIONS:
            raise ConfigError(
                f"schema policy {text!r}: expected 'reject', 'flag' or kind=action pairs with kind one of "
                f"{', '.join(KINDS)} and action one of {', '.join(ACTIONS)}; got {part.strip()!r}"
            )
        policy[kind] = action
    return policy


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of the training schema, as ``metadata.json`` records it."""

    name: str
    dtype: Optional[str]
    kind: Optional[str] = None
    domain: Optional[frozenset] = None
    min: Optional[float] = None
    max: Optional[float] = None
    required: bool = True
    #: Training saw missing values (a null is fine); False: a null is a ``missing`` violation; None: not recorded.
    nullable: Optional[bool] = None

    @classmethod
    def from_metadata(cls, entry: Mapping[str, Any]) -> "FeatureSpec":
        """Read one entry of ``metadata.json['features']``."""
        domain = entry.get("domain")
        return cls(
            name=entry["name"],
            dtype=entry.get("dtype"),
            kind=entry.get("kind"),
            domain=frozenset(domain) if domain is not None else None,
            min=float(entry["min"]) if entry.get("min") is not None else None,
            max=float(entry["max"]) if entry.get("max") is not None else None,
            required=bool(entry.get("required", True)),
            nullable=bool(entry["nullable"]) if entry.get("nullable") is not None else None,
        )

    def expected(self) -> str:
        """Say what a value of this feature is."""
        return {
            "int": "an integer (int)",
            "float": "a number (float)",
            "bool": "true or false",
            "string": "a string (a category)",
        }.get(self.dtype or "", "a value")


@dataclass
class Violation:
    """One value that breaks the schema."""

    field: str
    kind: str
    row: int
    expected: str
    got: Any
    where: str = ""

    def message(self) -> str:
        """Say which column and row, what was expected and what was sent."""
        return f"{self.where} column '{self.field}' row {self.row}: expected {self.expected}, got {self.got!r}".strip()

    def to_json(self) -> Dict[str, Any]:
        """Return the violation as JSON-ready values."""
        got = self.got if isinstance(self.got, (str, int, float, bool)) or self.got is None else repr(self.got)
        if (isinstance(got, float) and not math.isfinite(got)) or (isinstance(got, int) and abs(got) >= 2**63):
            got = repr(got)
        return {"field": self.field, "kind": self.kind, "row": self.row, "expected": self.expected, "got": got}


@dataclass
class Checked:
    """A request's columns converted to the trained dtypes, and the violations that were flagged (served)."""

    columns: Dict[str, np.ndarray]
    rows: int
    flagged: List[Violation] = field(default_factory=list)


class Schema:
    """The check of one model's schema under one policy."""

    def __init__(self, features: Sequence[FeatureSpec], policy: Optional[Mapping[str, str]] = None):
        self.features = {spec.name: spec for spec in features}
        self.policy = dict(policy or DEFAULT_POLICY)

    def spec(self, name: str) -> FeatureSpec:
        """Return the feature's spec (an untyped one for a name the schema does not know)."""
        return self.features.get(name) or FeatureSpec(name, None)

    def check(
        self,
        columns: Mapping[str, Sequence[Any]],
        rows: int,
        where: str,
        datatypes: Optional[Mapping[str, Optional[str]]] = None,
    ) -> Checked:
        """Convert and check every column.

        Raises:
            SchemaRejected: Some value breaks the schema under a ``reject`` policy; it lists every violation
                of a rejected kind (up to ``MAX_LISTED``), each naming the column, row and what was expected.
        """
        converted: Dict[str, np.ndarray] = {}
        flagged: List[Violation] = []
        rejected: List[Violation] = []
        for name, values in columns.items():
            spec = self.spec(name)
            datatype = datatypes.get(name) if datatypes else None
            array, found = _convert(spec, values, datatype, where)
            for violation in found:
                if self.policy.get(violation.kind, "reject") == "reject":
                    rejected.append(violation)
                else:
                    flagged.append(violation)
                    if violation.kind in ("type", "non_finite"):
                        array[violation.row] = np.nan if array.dtype.kind == "f" else None
            converted[name] = array
        if rejected:
            listed = rejected[:MAX_LISTED]
            more = f" (and {len(rejected) - len(listed)} more)" if len(rejected) > len(listed) else ""
            first = listed[0]
            raise SchemaRejected(
                "; ".join(v.message() for v in listed) + more,
                field=first.field,
                expected=first.expected,
                violations=[dict(v.to_json(), action="reject") for v in listed],
            )
        return Checked(converted, rows, flagged)


# ---------------------------------------------------------------------------------------------- conversion


def _convert(spec: FeatureSpec, values: Sequence[Any], datatype: Optional[str], where: str) -> Tuple[np.ndarray, list]:
    dtype = spec.dtype
    if datatype is not None and dtype in COMPATIBLE_DATATYPES and datatype not in COMPATIBLE_DATATYPES[dtype]:
        expected = f"{spec.expected()}, sent as one of {', '.join(sorted(COMPATIBLE_DATATYPES[dtype]))}"
        found = [
            Violation(spec.name, "type", row, expected, f"datatype {datatype}", where) for row in range(len(values))
        ]
        empty = np.full(len(values), np.nan) if dtype in ("int", "float", "bool") else np.full(len(values), None)
        return empty, found
    if dtype in ("int", "float"):
        return _numbers(spec, values, datatype, where)
    if dtype == "bool":
        return _booleans(spec, values, datatype, where)
    if dtype == "string":
        return _strings(spec, values, where)
    return _untyped(values), []


def _missing(spec: FeatureSpec, row: int, where: str) -> List[Violation]:
    if spec.nullable is False:
        return [
            Violation(spec.name, "missing", row, f"{spec.expected()} (training saw no missing values)", None, where)
        ]
    return []


def _numbers(spec: FeatureSpec, values: Sequence[Any], datatype: Optional[str], where: str):
    out = np.empty(len(values), dtype=np.float64)
    found: List[Violation] = []
    is_int = spec.dtype == "int"
    int_range = _INT_DATATYPES.get(datatype or "")
    declared_fp = datatype in _FP_DATATYPES
    for row, value in enumerate(values):
        number, problem = _number(value, is_int, int_range, declared_fp, datatype)
        if problem is not None:
            kind, expected = problem
            found.append(Violation(spec.name, kind, row, expected or spec.expected(), value, where))
            out[row] = np.nan
            continue
        out[row] = number
        if number != number:
            found.extend(_missing(spec, row, where))
        elif (spec.min is not None and number < spec.min) or (spec.max is not None and number > spec.max):
            found.append(
                Violation(spec.name, "out_of_range", row, f"a value in [{spec.min}, {spec.max}]", value, where)
            )
        elif spec.domain is not None and number not in spec.domain:
            found.append(Violation(spec.name, "unseen_category", row, "one of the training values", value, where))
    return out, found


def _number(value: Any, is_int: bool, int_range, declared_fp: bool, datatype: Optional[str]):
    """``(float, None)`` or ``(nan, (kind, expected))``; None and NaN are missing values."""
    if value is None:
        return math.nan, None
    if isinstance(value, (bool, np.bool_)):
        return math.nan, ("type", None)
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if int_range is not None and not int_range[0] <= value <= int_range[1]:
            return math.nan, ("type", f"an integer that fits {datatype}")
        if is_int and not _INT64_MIN <= value <= _INT64_MAX:
            return math.nan, ("type", "an integer that fits int64")
        return float(value), None
    if isinstance(value, (float, np.floating)):
        number = float(value)
    elif isinstance(value, (str, bytes)) and not declared_fp and int_range is None:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        try:
            number = float(text)
        except ValueError:
            return math.nan, ("type", None)
    else:
        expected = f"a number ({datatype} data)" if datatype and datatype != "BYTES" else None
        return math.nan, ("type", expected)
    if number != number:
        return math.nan, None
    if math.isinf(number):
        return math.nan, ("non_finite", "a finite number")
    if int_range is not None and not number.is_integer():
        return math.nan, ("type", f"an integer ({datatype} data)")
    if is_int and not number.is_integer():
        return math.nan, ("type", None)
    if is_int and not _INT64_MIN <= number <= _INT64_MAX:
        return math.nan, ("type", "an integer that fits int64")
    return number, None


def _booleans(spec: FeatureSpec, values: Sequence[Any], datatype: Optional[str], where: str):
    out = np.empty(len(values), dtype=np.float64)
    found: List[Violation] = []
    for row, value in enumerate(values):
        flag = _boolean(value)
        if flag is None:
            out[row] = np.nan
            if value is None or (isinstance(value, float) and value != value):
                found.extend(_missing(spec, row, where))
            else:
                found.append(Violation(spec.name, "type", row, spec.expected(), value, where))
        else:
            out[row] = 1.0 if flag else 0.0
    return out, found


def _boolean(value: Any) -> Optional[bool]:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, (str, bytes)):
        text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else value).strip().lower()
        return _TRUE_STRINGS.get(text)
    return None


def _strings(spec: FeatureSpec, values: Sequence[Any], where: str):
    out = np.empty(len(values), dtype=object)
    found: List[Violation] = []
    domain = spec.domain
    for row, value in enumerate(values):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            out[row] = value
            if domain is not None and value not in domain:
                found.append(Violation(spec.name, "unseen_category", row, _domain_words(domain), value, where))
        elif value is None or (isinstance(value, float) and value != value):
            out[row] = None
            found.extend(_missing(spec, row, where))
        else:
            out[row] = None
            found.append(Violation(spec.name, "type", row, spec.expected(), value, where))
    return out, found


def _domain_words(domain: frozenset) -> str:
    values = sorted(map(str, domain))
    shown = ", ".join(repr(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    return f"one of the categories seen in training ({shown})"


def _untyped(values: Sequence[Any]) -> np.ndarray:
    """Pass on a column the metadata gives no dtype: values as sent, None as NaN."""
    out = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):
        out[row] = np.nan if value is None else value
    return out
