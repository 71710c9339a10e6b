"""KServe's payload-logger CloudEvents: one HTTP POST (binary or structured content mode) parsed into an Event.

The format is that of KServe's logger agent (``pkg/logger/handler.go`` and ``worker.go``): one event per
inference request and one per response, CloudEvents spec 1.0 in *binary* content mode -- the attributes in
``ce-*`` headers, the body the raw request or response payload -- with

- ``ce-type``: ``org.kubeflow.serving.inference.request`` or ``org.kubeflow.serving.inference.response``;
- ``ce-id``: the same for a request and its response (the client's ``Ce-Id`` header, else a new UUID);
- ``ce-source`` (the agent's URL), ``ce-specversion`` (``1.0``), ``ce-time`` (when the event was sent);
- extensions ``ce-inferenceservicename``, ``ce-namespace``, ``ce-component``, ``ce-endpoint`` (``default`` or
  ``canary``), ``ce-metadata`` (a JSON object of the request headers named in the logger's ``metadataHeaders``)
  and, when set, ``ce-annotations``;
- ``Content-Type``: the *request's* content type, on both events (so often ``application/json``, and
  ``application/x-www-form-urlencoded`` for ``curl -d``): the body is read as JSON whatever it says.

Our model server adds the extension ``ce-modelsha256`` (the sha256 of the model file that answered); KServe's
agent does not send it. A V2 request or response in the binary tensor extension (a JSON header followed by the
tensors' bytes; the event does not carry ``Inference-Header-Content-Length``, so the header's end is found by
parsing) has its binary tensors decoded into ``data``. Structured mode (``Content-Type:
application/cloudevents+json``, the attributes and ``data`` or ``data_base64`` in one JSON object) is read too;
batched mode is not (415).

Everything wrong with an event raises :class:`EventError` carrying the HTTP status, a metric reason and a
message naming the header or field and what was expected.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

__all__ = [
    "EXTENSIONS",
    "REQUEST_TYPE",
    "RESPONSE_TYPE",
    "Event",
    "EventError",
    "inline_binary",
    "loads_json",
    "parse_event",
    "parse_time",
]

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
KINDS = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
SPEC_VERSION = "1.0"
#: Extension attributes read from an event (lowercase, as CloudEvents requires).
EXTENSIONS = ("inferenceservicename", "namespace", "component", "endpoint", "modelsha256")
STRUCTURED = "application/cloudevents+json"
BATCHED = "application/cloudevents-batch+json"
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


class EventError(Exception):
    """An event the collector refuses: ``status`` (4xx), ``reason`` (the metric label) and the message."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def to_json(self) -> dict:
        """Return the response body: ``{"error", "reason", "status"}``."""
        return {"error": self.message, "reason": self.reason, "status": self.status}


@dataclass(frozen=True)
class Event:
    """One payload-logger event: its attributes and the decoded JSON payload."""

    id: str
    kind: str
    source: str
    time: datetime
    payload: Any
    inference_service: Optional[str] = None
    namespace: Optional[str] = None
    component: Optional[str] = None
    endpoint: Optional[str] = None
    model_sha256: Optional[str] = None


def loads_json(body: bytes) -> Any:
    """Decode JSON; like the model server, non-finite numbers (``NaN``, ``Infinity``) are read as floats.

    Raises:
        ValueError: The bytes are not JSON.
    """
    try:
        import orjson
    except ImportError:  # the pipeline env has no orjson: the standard library reads the same values
        return json.loads(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (any number of fraction digits, as Go writes them) to an aware UTC datetime.

    Raises:
        ValueError: Not an RFC 3339 timestamp.
    """
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"expected an RFC 3339 timestamp such as 2026-01-31T12:00:00.123456789Z, got {text[:60]!r}")
    day, clock, fraction, zone = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    zone = "+00:00" if zone in ("Z", "z") else zone
    return datetime.fromisoformat(f"{day}T{clock}.{micro}{zone}").astimezone(timezone.utc)


def parse_event(headers: Mapping[str, str], body: bytes, now: Optional[datetime] = None) -> Event:
    """Parse one POSTed CloudEvent.

    Args:
        headers: The HTTP headers, names in lowercase.
        body: The raw body.
        now: The receive time, used when the event has no ``time`` (default: the clock).

    Raises:
        EventError: A required attribute is missing or wrong, the type is not KServe's request or response,
            the time is not RFC 3339, or the payload is not JSON.
    """
    now = now or datetime.now(timezone.utc)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == BATCHED:
        raise EventError(415, "batched_mode", "CloudEvents batched content mode is not supported: send one event")
    if content_type == STRUCTURED:
        return _structured(body, now)
    attributes = {key[3:]: value for key, value in headers.items() if key.startswith("ce-")}
    if not attributes:
        raise EventError(
            400,
            "missing_id",
            "not a CloudEvent: no ce-* headers (binary mode) and Content-Type is not application/cloudevents+json "
            "(structured mode); expected KServe's logger headers ce-id, ce-type, ce-source, ce-specversion",
        )
    _check_attributes(attributes, "header ce-")
    try:
        payload = loads_json(body) if body else None
    except (ValueError, RecursionError) as exc:
        payload = inline_binary(body)  # V2's binary tensor extension: a JSON header, then the tensors' bytes
        if payload is None:
            raise EventError(400, "not_json", f"event {attributes['id']!r}: the body is not JSON ({exc})") from None
    if payload is None:
        raise EventError(400, "not_json", f"event {attributes['id']!r}: the body is empty, expected the JSON payload")
    return _event(attributes, payload, now, "header ce-")


def _structured(body: bytes, now: datetime) -> Event:
    try:
        envelope = loads_json(body)
    except (ValueError, RecursionError) as exc:
        raise EventError(400, "not_json", f"structured CloudEvent: the body is not JSON ({exc})") from None
    if not isinstance(envelope, dict):
        raise EventError(400, "not_json", "structured CloudEvent: expected a JSON object with the attributes and data")
    attributes = {str(k).lower(): v for k, v in envelope.items() if k not in ("data", "data_base64")}
    _check_attributes(attributes, "attribute ")
    if "data_base64" in envelope:
        try:
            payload = loads_json(base64.b64decode(envelope["data_base64"], validate=True))
        except (binascii.Error, ValueError, TypeError, RecursionError) as exc:
            raise EventError(
                400, "not_json", f"event {attributes['id']!r}: data_base64 is not base64 of JSON ({exc})"
            ) from None
    elif "data" in envelope:
        payload = envelope["data"]
        if isinstance(payload, str):
            try:
                payload = loads_json(payload.encode("utf-8"))
            except (ValueError, RecursionError) as exc:
                raise EventError(400, "not_json", f"event {attributes['id']!r}: data is not JSON ({exc})") from None
    else:
        raise EventError(400, "not_json", f"event {attributes['id']!r}: no data or data_base64, expected the payload")
    return _event(attributes, payload, now, "attribute ")


def _check_attributes(attributes: Mapping[str, Any], where: str) -> None:
    event_id = attributes.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise EventError(400, "missing_id", f"{where}id is missing or empty: expected the event id")
    version = attributes.get("specversion")
    if version != SPEC_VERSION:
        raise EventError(
            400, "bad_specversion", f"event {event_id!r}: {where}specversion is {version!r}, expected '1.0'"
        )
    kind = attributes.get("type")
    if kind not in KINDS:
        raise EventError(
            400,
            "unknown_type",
            f"event {event_id!r}: {where}type is {str(kind)[:100]!r}, expected {REQUEST_TYPE} or {RESPONSE_TYPE}",
        )
    source = attributes.get("source")
    if not isinstance(source, str) or not source.strip():
        raise EventError(400, "missing_source", f"event {event_id!r}: {where}source is missing, expected a URI")


def _event(attributes: Mapping[str, Any], payload: Any, now: datetime, where: str) -> Event:
    event_id = attributes["id"]
    when = now
    if attributes.get("time") not in (None, ""):
        try:
            when = parse_time(str(attributes["time"]))
        except ValueError as exc:
            raise EventError(400, "bad_time", f"event {event_id!r}: {where}time: {exc}") from None
    extensions = {name: attributes.get(name) for name in EXTENSIONS}
    text = {name: (str(value) if value not in (None, "") else None) for name, value in extensions.items()}
    return Event(
        id=event_id,
        kind=KINDS[attributes["type"]],
        source=str(attributes["source"]),
        time=when,
        payload=payload,
        inference_service=text["inferenceservicename"],
        namespace=text["namespace"],
        component=text["component"],
        endpoint=text["endpoint"],
        model_sha256=text["modelsha256"],
    )


_BINARY_FORMATS = {
    "BOOL": "?",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}


def inline_binary(body: bytes) -> Optional[dict]:
    """Decode a V2 binary-extension body into a JSON payload whose tensors carry ``data``; None if it is not one.

    The JSON header ends where a JSON object parsed from the body's start ends; the tensors whose ``parameters``
    have ``binary_data_size`` take that many bytes of the rest, in order (little-endian, row-major; ``BYTES``
    elements each a 4-byte little-endian length and the bytes). The sizes must add up to the rest exactly.
    """
    import struct

    try:
        header, end = json.JSONDecoder().raw_decode(body.decode("latin-1"))
        header = loads_json(body[:end])
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    tensors = [t for key in ("inputs", "outputs") for t in header.get(key) or [] if isinstance(t, dict)]
    binary = [t for t in tensors if isinstance(t.get("parameters"), dict) and "binary_data_size" in t["parameters"]]
    tail, offset = body[end:], 0
    if not binary or sum(int(t["parameters"]["binary_data_size"]) for t in binary) != len(tail):
        return None
    for tensor in binary:
        size = int(tensor["parameters"].pop("binary_data_size"))
        chunk, offset = tail[offset : offset + size], offset + size
        datatype = str(tensor.get("datatype", "")).upper()
        if datatype == "BYTES":
            values, at = [], 0
            while at + 4 <= len(chunk):
                (length,) = struct.unpack_from("<I", chunk, at)
                values.append(chunk[at + 4 : at + 4 + length].decode("utf-8", "replace"))
                at += 4 + length
        elif datatype in _BINARY_FORMATS:
            width = struct.calcsize(_BINARY_FORMATS[datatype])
            if size % width:
                return None
            values = list(struct.unpack(f"<{size // width}{_BINARY_FORMATS[datatype]}", chunk))
        else:
            return None
        tensor["data"] = values
    return header
