"""Inference payloads flattened into rows: one row per instance, named features, prediction and score.

Requests (V1 and V2 give the same rows for the same instances):

- V1 ``{"instances": [...]}`` (or ``"inputs"``): records (``{"age": 41, ...}``) by name; lists (``[41, ...]``)
  by position, named by the model's ``feature_order`` when the collector knows it (``--model-metadata``),
  else ``input_0``, ``input_1``, ... (counted: ``unnamed``);
- V2 ``{"inputs": [{"name", "shape", "datatype", "data"}, ...]}``: one tensor per feature (shape ``[n]`` or
  ``[n, 1]``, what ``content_type: pd`` sends) by tensor name; one ``[n, k]`` tensor by position as V1 lists.
  ``data`` may be flat (row-major) or nested; binary tensor data (the binary extension) is decoded into ``data`` by
  ``events.inline_binary`` first.

Responses:

- V1 ``{"predictions": [...]}``: a label or value per instance, or a probability list per instance
  (``PREDICT_PROBA``; the label is then ``labels[i]``, else ``classes[argmax]``, else the argmax);
- V2 ``{"model_name", "outputs": [...]}``: ``predict`` and ``predict_proba`` when present (our server, KServe's
  sklearn runtime with ``predict_proba``), else the first output (a label/value per instance, or probabilities).

``score`` is the positive-class probability of a binary classifier (column 1 of the probabilities, as the model
server's ``kfp_tabular_prediction_score`` and the rollout analysis use it), the predicted class's probability
of a multi-class one, and null when the response has no probabilities. A value that is not a scalar (a nested
list or object) is kept as its JSON text, so each column holds one kind of value.

Every malformed payload raises :class:`~.events.EventError` (400, reason ``bad_payload``) naming the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from kfp_tabular.components.monitoring.collector.events import EventError

__all__ = ["RESERVED", "Predictions", "parse_request", "parse_response"]

#: The collector's own columns, after the features; a feature with one of these names is refused.
RESERVED = (
    "prediction",
    "score",
    "model_name",
    "model_sha256",
    "event_id",
    "instance",
    "time",
    "inference_service",
    "namespace",
    "endpoint",
)
_V2_KEYS = {"name", "shape", "datatype"}
_INT_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOAT_TYPES = {"FP16", "FP32", "FP64", "BF16"}


@dataclass(frozen=True)
class Predictions:
    """A response: one prediction and one score (or None) per instance, and the model name when it says."""

    predictions: List[Any]
    scores: List[Optional[float]]
    model_name: Optional[str] = None


def _bad(event_id: str, message: str) -> EventError:
    return EventError(400, "bad_payload", f"event {event_id!r}: {message}")


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def parse_request(payload: Any, event_id: str, feature_order: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """Return the request's instances as rows ``{feature: value}``.

    Args:
        payload: The decoded JSON body of the request event.
        event_id: For messages.
        feature_order: The model's feature names in order, for positional instances (V1 lists, a V2 matrix).

    Raises:
        EventError: Not a V1 or V2 request, inconsistent tensor shapes, binary data, or a reserved feature name.
    """
    if not isinstance(payload, dict):
        raise _bad(event_id, f"request: expected a JSON object with 'instances' or 'inputs', got {_kind(payload)}")
    inputs = payload.get("inputs")
    if isinstance(inputs, list) and inputs and all(isinstance(t, dict) and _V2_KEYS <= set(t) for t in inputs):
        rows = _v2_request(inputs, event_id, feature_order)
    else:
        instances = payload.get("instances", inputs)
        if not isinstance(instances, list):
            raise _bad(
                event_id,
                "request: expected V1 'instances' (a list of records or lists) or V2 'inputs' (tensors with name, "
                f"shape, datatype, data); got keys {sorted(payload)[:10]}",
            )
        rows = [_v1_instance(item, i, event_id, feature_order) for i, item in enumerate(instances)]
    for row in rows[:1]:
        clash = sorted(set(row) & set(RESERVED))
        if clash:
            raise _bad(event_id, f"feature {clash[0]!r} has the name of a collector column ({', '.join(RESERVED)})")
    return rows


def _v1_instance(item: Any, index: int, event_id: str, order: Optional[Sequence[str]]) -> Dict[str, Any]:
    if isinstance(item, dict):
        return {str(k): _scalar(v) for k, v in item.items()}
    values = item if isinstance(item, list) else [item]
    return dict(zip(_names(len(values), order), (_scalar(v) for v in values)))


def _names(count: int, order: Optional[Sequence[str]]) -> List[str]:
    if order is not None and len(order) == count:
        return list(order)
    return [f"input_{i}" for i in range(count)]


def _flatten(data: Any) -> List[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    flat: List[Any] = []
    for value in data:
        flat.extend(_flatten(value))
    return flat


def _tensor(tensor: Dict[str, Any], event_id: str, where: str) -> tuple:
    name, shape, datatype = tensor.get("name"), tensor.get("shape"), str(tensor.get("datatype", "")).upper()
    label = f"{where} '{name}'"
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _bad(event_id, f"{label}: shape {shape!r} is not a list of non-negative integers")
    parameters = tensor.get("parameters") or {}
    if "data" not in tensor or (isinstance(parameters, dict) and "binary_data_size" in parameters):
        raise _bad(event_id, f"{label}: no JSON 'data' (binary tensor data is not read by the collector)")
    data = _flatten(tensor["data"])
    expected = math.prod(shape)
    if len(data) != expected:
        raise _bad(event_id, f"{label}: {len(data)} values for shape {shape} (expected {expected})")
    return name, shape, [_typed(v, datatype) for v in data]


def _typed(value: Any, datatype: str) -> Any:
    if value is None:
        return None
    if datatype in _FLOAT_TYPES and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if datatype in _INT_TYPES and isinstance(value, float) and value.is_integer():
        return int(value)
    if datatype == "BOOL" and isinstance(value, int):
        return bool(value)
    return _scalar(value)


def _v2_request(tensors: List[Dict[str, Any]], event_id: str, order: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
    parsed = [_tensor(t, event_id, "input") for t in tensors]
    if len(parsed) == 1 and len(parsed[0][1]) == 2:  # one [n, k] matrix: positional, like V1 lists
        _, (n, k), data = parsed[0]
        names = _names(k, order)
        return [dict(zip(names, data[i * k : (i + 1) * k])) for i in range(n)]
    rows = parsed[0][1][0]
    columns = {}
    for name, shape, data in parsed:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1) or shape[0] != rows:
            raise _bad(
                event_id,
                f"input '{name}': shape {shape}, expected [{rows}] or [{rows}, 1] like the other inputs (one "
                "tensor per feature), or a single [n, k] tensor",
            )
        columns[str(name)] = data
    return [{name: values[i] for name, values in columns.items()} for i in range(rows)]


def parse_response(payload: Any, event_id: str) -> Predictions:
    """Return the response's predictions and scores, one each per instance.

    Raises:
        EventError: Neither a V1 ``predictions`` list nor V2 ``outputs``, or outputs of different lengths.
    """
    if not isinstance(payload, dict):
        raise _bad(event_id, f"response: expected a JSON object with 'predictions' or 'outputs', got {_kind(payload)}")
    outputs = payload.get("outputs")
    if isinstance(outputs, list) and outputs and all(isinstance(t, dict) and _V2_KEYS <= set(t) for t in outputs):
        return _v2_response(outputs, event_id, payload.get("model_name"))
    predictions = payload.get("predictions", outputs)
    if not isinstance(predictions, list):
        raise _bad(
            event_id,
            f"response: expected V1 'predictions' (a list) or V2 'outputs' (tensors); got keys {sorted(payload)[:10]}",
        )
    labels, classes = payload.get("labels"), payload.get("classes")
    values, scores = [], []
    for i, item in enumerate(predictions):
        if isinstance(item, list) and item and all(_is_number(p) for p in item):
            best = max(range(len(item)), key=item.__getitem__)
            if isinstance(labels, list) and len(labels) == len(predictions):
                values.append(_scalar(labels[i]))
            elif isinstance(classes, list) and len(classes) == len(item):
                values.append(_scalar(classes[best]))
            else:
                values.append(best)
            scores.append(_score(item))
        else:
            values.append(_scalar(item))
            scores.append(None)
    return Predictions(values, scores, None)


def _v2_response(outputs: List[Dict[str, Any]], event_id: str, model_name: Any) -> Predictions:
    parsed = {str(name): (shape, data) for name, shape, data in (_tensor(t, event_id, "output") for t in outputs)}
    predict = parsed.get("predict")
    proba = parsed.get("predict_proba")
    if predict is None and proba is None:
        first = next(iter(parsed.values()))
        if len(first[0]) == 2 and first[0][1] > 1:
            proba = first
        else:
            predict = first
    rows_of = [s[0] for s, _ in (t for t in (predict, proba) if t is not None)]
    if len(set(rows_of)) != 1:
        raise _bad(event_id, f"outputs predict and predict_proba have {rows_of} rows, expected the same")
    probabilities = None
    if proba is not None:
        (n, *rest), data = proba
        k = rest[0] if rest else 1
        probabilities = [data[i * k : (i + 1) * k] for i in range(n)]
    if predict is not None:
        values = predict[1]
    else:
        values = [max(range(len(p)), key=p.__getitem__) for p in probabilities]
    scores = [_score(p) for p in probabilities] if probabilities is not None else [None] * len(values)
    return Predictions(list(values), scores, str(model_name) if model_name not in (None, "") else None)


def _score(probabilities: Sequence[Any]) -> Optional[float]:
    numbers = [float(p) for p in probabilities if _is_number(p)]
    if len(numbers) != len(probabilities) or not numbers:
        return None
    return numbers[1] if len(numbers) == 2 else max(numbers)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)
