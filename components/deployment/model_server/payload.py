"""Request parsing: a V1 body or a V2 ``InferRequest`` into columns of raw values in the trained feature order.

Only :class:`~kfp_tabular.components.deployment.model_server.errors.RequestError` comes out of here (HTTP 400),
each naming the field (``instances[3]``, ``input 'x'``) and what was expected. The values themselves are
checked and converted by ``schema.Schema.check``.

Shapes accepted:

- V1 ``{"instances": [...]}`` (or ``"inputs"``): rows as lists in feature order, or as records
  ``{"column": value}`` in any key order (extra keys ignored; a feature the schema marks ``required: false``
  may be left out, the others must be present, null for a missing value);
- V2 with ``parameters.content_type == "pd"``: one input per feature column, any order, shape ``[rows]`` or
  ``[rows, 1]``;
- V2 otherwise: one 2-D input ``[rows, n_features]`` with the features in order (row-major, flat or nested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from kserve.protocol.infer_type import InferInput, InferRequest

from kfp_tabular.components.deployment.model_server.errors import RequestError

__all__ = ["Table", "V2_DATATYPES", "parse_v1", "parse_v2"]

#: The tensor datatypes of the V2 protocol.
V2_DATATYPES = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
)
_SCALARS = (str, bytes, bool, int, float, np.generic)


@dataclass
class Table:
    """Raw column values (None for a missing value) in feature order, with the V2 datatype each came in."""

    columns: Dict[str, List[Any]]
    rows: int
    where: str
    datatypes: Optional[Dict[str, Optional[str]]] = None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, _SCALARS)


def describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return f"{type(value).__name__} {value!r}"


# ---------------------------------------------------------------------------------------------------- V1


def parse_v1(body: Any, order: Optional[Sequence[str]], optional: frozenset = frozenset()) -> Union[Table, np.ndarray]:
    """Parse a V1 body into a :class:`Table`; without a feature order, the rows as an array (passed on as sent)."""
    if not isinstance(body, dict):
        raise RequestError(
            f"request body: expected a JSON object sent with Content-Type: application/json, got {type(body).__name__}",
            field="body",
            expected="a JSON object",
        )
    key = "instances" if "instances" in body else "inputs" if "inputs" in body else None
    if key is None:
        raise RequestError(
            f"V1 request: expected a field 'instances' (or 'inputs'), got fields {sorted(map(str, body)) or 'none'}",
            field="instances",
            expected="a non-empty list of rows",
        )
    rows = body[key]
    if not isinstance(rows, list) or not rows:
        raise RequestError(
            f"'{key}': expected a non-empty list of rows, got {describe(rows)}",
            field=key,
            expected="a non-empty list of rows",
        )
    first = rows[0]
    if isinstance(first, dict) and all(isinstance(row, dict) for row in rows):
        return _records(rows, key, order, optional)
    if isinstance(first, list) and all(isinstance(row, list) for row in rows):
        return _lists(rows, key, order)
    kind = type(first) if isinstance(first, (dict, list)) else None
    bad = next(i for i, row in enumerate(rows) if kind is None or not isinstance(row, kind))
    raise RequestError(
        f"'{key}[{bad}]': expected every row to be a list of values in feature order or every row to be "
        f"an object of column: value, got {describe(rows[bad])}",
        field=f"{key}[{bad}]",
        expected="a list of values in feature order, or an object of column: value",
    )


def _records(records: List[Dict], key: str, order: Optional[Sequence[str]], optional: frozenset) -> Table:
    order = list(order) if order else [str(k) for k in records[0]]
    columns: Dict[str, List[Any]] = {name: [] for name in order}
    for i, record in enumerate(records):
        for name in order:
            if name in record:
                value = record[name]
                if not _is_scalar(value):
                    raise RequestError(
                        f"'{key}[{i}]' column '{name}': expected a single value, got {describe(value)} "
                        "(send one object per row)",
                        field=f"{key}[{i}].{name}",
                        expected="a single value",
                    )
                columns[name].append(value)
            elif name in optional:
                columns[name].append(None)
            else:
                missing = [n for n in order if n not in record and n not in optional]
                raise RequestError(
                    f"'{key}[{i}]': missing feature column(s) {', '.join(repr(m) for m in missing)} "
                    "(send null for a missing value)",
                    field=f"{key}[{i}].{missing[0]}",
                    expected="every required feature column",
                )
    return Table(columns, len(records), key)


def _lists(rows: List[List], key: str, order: Optional[Sequence[str]]) -> Union[Table, np.ndarray]:
    width = len(order) if order else len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            expected = f"{width} values" + (f" in feature order ({', '.join(order)})" if order else "")
            raise RequestError(
                f"'{key}[{i}]': expected {expected}, got {len(row)}", field=f"{key}[{i}]", expected=expected
            )
        for j, value in enumerate(row):
            if not _is_scalar(value):
                column = f"column '{order[j]}'" if order else f"position {j}"
                raise RequestError(
                    f"'{key}[{i}]' {column}: expected a single value, got {describe(value)}",
                    field=f"{key}[{i}][{j}]",
                    expected="a single value",
                )
    if not order:
        return _rectangular(rows, key)
    return Table({name: [row[j] for row in rows] for j, name in enumerate(order)}, len(rows), key)


def _rectangular(rows: Any, where: str) -> np.ndarray:
    try:
        return np.asarray(rows)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(f"'{where}': rows are not a rectangular table ({exc})", field=where) from exc


# ---------------------------------------------------------------------------------------------------- V2


def content_type(request: InferRequest) -> str:
    parameters = request.parameters
    if not parameters:
        return ""
    value = parameters.get("content_type")
    if value is not None and hasattr(value, "string_param"):  # gRPC InferParameter
        return str(value.string_param)
    return str(value) if value is not None else ""


def parse_v2(
    request: InferRequest, order: Optional[Sequence[str]], optional: frozenset = frozenset()
) -> Union[Table, np.ndarray]:
    """Parse a V2 request into a :class:`Table` (or, without a feature order, the one input's array)."""
    if not request.inputs:
        raise RequestError(
            "V2 request: field 'inputs' is empty: expected at least one input tensor",
            field="inputs",
            expected="at least one input tensor",
        )
    for tensor in request.inputs:
        if tensor.datatype not in V2_DATATYPES:
            raise RequestError(
                f"input '{tensor.name}': datatype {tensor.datatype!r} is not a V2 datatype "
                f"(expected one of {', '.join(V2_DATATYPES)})",
                field=f"input '{tensor.name}'",
                expected=f"datatype one of {', '.join(V2_DATATYPES)}",
            )
    if content_type(request) == "pd":
        return _columns(request, order, optional)
    if len(request.inputs) != 1:
        raise RequestError(
            f"V2 request: got {len(request.inputs)} inputs; send one 2-D input with the features in order, "
            'or one input per feature with "parameters": {"content_type": "pd"}',
            field="inputs",
            expected='one 2-D input, or "parameters": {"content_type": "pd"}',
        )
    return _matrix(request.inputs[0], order)


def _shape(tensor: InferInput) -> List[int]:
    shape = list(tensor.shape or [])
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise RequestError(
            f"input '{tensor.name}': shape {shape} is not a list of non-negative integers",
            field=f"input '{tensor.name}'",
            expected="a shape of non-negative integers",
        )
    return shape


def _values(tensor: InferInput, size: int) -> List[Any]:
    """Return the tensor's values, flat (row-major): JSON data as sent, binary data decoded by its datatype."""
    where = f"input '{tensor.name}'"
    data = tensor.data
    if isinstance(data, list):
        flat = _flatten(data)
    else:  # binary data (the V2 binary extension) or a gRPC tensor
        try:
            array = tensor.as_numpy()
        except Exception as exc:  # the codec raises whatever numpy or struct raise on short or odd bytes
            raise RequestError(
                f"{where}: binary data does not decode as {tensor.datatype} with shape {list(tensor.shape or [])} "
                f"({type(exc).__name__}: {exc})",
                field=where,
                expected=f"{tensor.datatype} data of shape {list(tensor.shape or [])}",
            ) from None
        flat = array.reshape(-1).tolist()
    if len(flat) != size:
        raise RequestError(
            f"{where}: shape {list(tensor.shape or [])} needs {size} values, data has {len(flat)}",
            field=where,
            expected=f"{size} values",
        )
    return flat


def _flatten(data: List[Any]) -> List[Any]:
    if not any(isinstance(v, list) for v in data):
        for value in data:
            if not _is_scalar(value):
                raise RequestError(
                    f"data: expected scalar values, got {describe(value)}", field="data", expected="scalar values"
                )
        return data
    flat: List[Any] = []
    for value in data:
        if isinstance(value, list):
            flat.extend(_flatten(value))
        elif _is_scalar(value):
            flat.append(value)
        else:
            raise RequestError(
                f"data: expected scalar values, got {describe(value)}", field="data", expected="scalar values"
            )
    return flat


def _matrix(tensor: InferInput, order: Optional[Sequence[str]]) -> Union[Table, np.ndarray]:
    where = f"input '{tensor.name}'"
    shape = _shape(tensor)
    width = len(order) if order else None
    if len(shape) != 2 or (width is not None and shape[1] != width):
        expected = f"[rows, {width}]" if width is not None else "[rows, columns]"
        raise RequestError(
            f"{where}: expected a 2-D shape {expected} with the features in order"
            + (f" ({', '.join(order)})" if order else "")
            + f", got shape {shape}",
            field=where,
            expected=f"shape {expected}",
        )
    rows, columns = shape
    try:
        values = _values(tensor, rows * columns)
    except RequestError as exc:
        raise RequestError(
            f"{where}: data does not match datatype {tensor.datatype} and shape {shape} ({exc.message})",
            field=where,
            expected=exc.expected,
        ) from None
    if not order:
        return _rectangular([values[i * columns : (i + 1) * columns] for i in range(rows)], where)
    table = {name: values[j::columns] for j, name in enumerate(order)}
    return Table(table, rows, where, {name: tensor.datatype for name in order})


def _columns(request: InferRequest, order: Optional[Sequence[str]], optional: frozenset) -> Table:
    rows = None
    by_name: Dict[str, InferInput] = {}
    for tensor in request.inputs:
        shape = _shape(tensor)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(
                f"input '{tensor.name}': with content_type 'pd' each input is one column: expected shape "
                f"[rows] or [rows, 1], got {shape}",
                field=f"input '{tensor.name}'",
                expected="shape [rows] or [rows, 1]",
            )
        data = tensor.data
        size = len(data) if isinstance(data, list) else shape[0]
        if size != shape[0]:
            raise RequestError(
                f"input '{tensor.name}': shape {shape} says {shape[0]} rows, data has {size}",
                field=f"input '{tensor.name}'",
                expected=f"{shape[0]} values",
            )
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise RequestError(
                f"input '{tensor.name}': has {shape[0]} rows but input '{request.inputs[0].name}' has {rows}",
                field=f"input '{tensor.name}'",
                expected=f"{rows} rows like the other inputs",
            )
        if tensor.name in by_name:
            raise RequestError(
                f"input '{tensor.name}': sent twice", field=f"input '{tensor.name}'", expected="one input per column"
            )
        by_name[tensor.name] = tensor
    order = list(order) if order else list(by_name)
    missing = [name for name in order if name not in by_name and name not in optional]
    if missing:
        raise RequestError(
            f"V2 request: missing input(s) for feature column(s) {', '.join(repr(m) for m in missing)}",
            field=f"input '{missing[0]}'",
            expected="one input per required feature column",
        )
    columns: Dict[str, List[Any]] = {}
    datatypes: Dict[str, Optional[str]] = {}
    for name in order:
        tensor = by_name.get(name)
        if tensor is None:
            columns[name], datatypes[name] = [None] * rows, None
        else:
            columns[name], datatypes[name] = _values(tensor, rows), tensor.datatype
    return Table(columns, rows, "V2 request", datatypes)
