"""Request and response events paired by event id into rows: a bounded pending table with a time to live.

KServe's agent sends a request event and, when the prediction succeeded (HTTP 200), a response event with the
same id, from several workers: either may arrive first. A half waits in the pending table until its other half
arrives (then the instances become rows, exactly once), or until the TTL passes or the table is full (then it
is dropped and counted as *unpaired*: a request the model refused has no response). An id already written or
expired is remembered (a bounded set), so a repeated event is refused (409, ``duplicate``) and a half arriving
after its other half expired is refused (410, ``late``): a row is never written twice.

With ``mode="request"`` (a logger that sends requests only) each request becomes rows at once, prediction null;
with ``mode="response"`` each response becomes rows of predictions without features.

The clock is passed in (``now``, seconds, monotonic), so the table is tested without waiting.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from kfp_tabular.components.monitoring.collector.events import Event, EventError
from kfp_tabular.components.monitoring.collector.rows import Predictions, parse_request, parse_response

__all__ = ["MODES", "Pairer"]

MODES = ("all", "request", "response")


@dataclass
class _Pending:
    arrived: float
    request: Optional[Tuple[Event, List[Dict[str, Any]]]] = None
    response: Optional[Tuple[Event, Predictions]] = None


@dataclass
class Pairer:
    """Pair events into rows.

    Args:
        mode: ``all`` (pair), ``request`` or ``response`` (what the logger sends).
        ttl: Seconds a half waits for the other.
        max_pending: Halves held at most; the oldest is dropped (counted ``evicted``) to make room.
        remember: Ids of written or expired events remembered, to refuse repeats and late halves.
        model_sha: Model name -> sha256, for events without the ``modelsha256`` extension.
        feature_order: Model name -> feature names in order, for positional instances; a single entry applies to
            every model.
    """

    mode: str = "all"
    ttl: float = 60.0
    max_pending: int = 10_000
    remember: int = 200_000
    model_sha: Mapping[str, str] = field(default_factory=dict)
    feature_order: Mapping[str, Sequence[str]] = field(default_factory=dict)
    unpaired: Counter = field(default_factory=Counter)
    on_unpaired: Optional[Callable[[str, str, int], None]] = None
    _pending: "OrderedDict[str, _Pending]" = field(default_factory=OrderedDict)
    _closed: "OrderedDict[str, str]" = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def pending(self) -> int:
        """Events waiting for their other half."""
        return len(self._pending)

    def add(self, event: Event, now: float) -> List[Dict[str, Any]]:
        """Take one event; return the rows it completes (possibly none).

        Raises:
            EventError: A malformed payload (400), an event not expected in this mode (400), a repeated event
                (409) or a half whose other half already expired (410).
        """
        if self.mode != "all" and event.kind != self.mode:
            raise EventError(
                400,
                "unexpected_type",
                f"event {event.id!r}: a {event.kind} event, but this collector's "
                f"--mode is {self.mode} (it expects {self.mode} events only)",
            )
        closed = self._closed.get(event.id)
        if closed is not None:
            if closed == "written":
                raise EventError(409, "duplicate", f"event {event.id!r}: its rows were already written")
            raise EventError(
                410,
                "late",
                f"event {event.id!r}: its {_other(event.kind)} arrived more than --pair-ttl "
                f"{self.ttl:g} s earlier and was dropped as unpaired",
            )
        if event.kind == "request":
            half: Any = (event, parse_request(event.payload, event.id, self._order(event.inference_service)))
        else:
            half = (event, parse_response(event.payload, event.id))
        if self.mode == "request":
            return self._close(event.id, self._rows(half, None))
        if self.mode == "response":
            return self._close(event.id, self._rows(None, half))
        entry = self._pending.get(event.id)
        if entry is None:
            self.expire(now)
            while len(self._pending) >= self.max_pending:
                oldest, dropped = self._pending.popitem(last=False)
                self._drop(oldest, dropped, "evicted")
            entry = self._pending[event.id] = _Pending(arrived=now)
        if getattr(entry, event.kind) is not None:
            raise EventError(409, "duplicate", f"event {event.id!r}: a second {event.kind} event with this id")
        setattr(entry, event.kind, half)
        if entry.request is None or entry.response is None:
            return []
        del self._pending[event.id]
        try:
            rows = self._rows(entry.request, entry.response)
        except EventError:
            self._remember(event.id, "expired")
            raise
        return self._close(event.id, rows)

    def expire(self, now: float) -> int:
        """Drop the halves older than the TTL (counted as unpaired); return how many."""
        count = 0
        while self._pending:
            event_id, entry = next(iter(self._pending.items()))
            if now - entry.arrived < self.ttl:
                break
            del self._pending[event_id]
            self._drop(event_id, entry, "ttl")
            count += 1
        return count

    def drain(self) -> int:
        """Drop every waiting half (at shutdown), counted as unpaired; return how many."""
        count = len(self._pending)
        while self._pending:
            event_id, entry = self._pending.popitem(last=False)
            self._drop(event_id, entry, "shutdown")
        return count

    def _drop(self, event_id: str, entry: _Pending, reason: str) -> None:
        part = "request" if entry.request is not None else "response"
        rows = len(entry.request[1]) if entry.request is not None else len(entry.response[1].predictions)
        self.unpaired[(part, reason)] += 1
        self._remember(event_id, "expired")
        if self.on_unpaired is not None:
            self.on_unpaired(part, reason, rows)

    def _close(self, event_id: str, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        self._remember(event_id, "written")
        return rows

    def _remember(self, event_id: str, state: str) -> None:
        self._closed[event_id] = state
        while len(self._closed) > self.remember:
            self._closed.popitem(last=False)

    def _order(self, model: Optional[str]) -> Optional[Sequence[str]]:
        if model is not None and model in self.feature_order:
            return self.feature_order[model]
        if len(self.feature_order) == 1:
            return next(iter(self.feature_order.values()))
        return None

    def _rows(self, request, response) -> List[Dict[str, Any]]:
        req_event, features = request if request is not None else (None, None)
        resp_event, predicted = response if response is not None else (None, None)
        events = [e for e in (req_event, resp_event) if e is not None]
        first = events[0]
        n = len(features) if features is not None else len(predicted.predictions)
        if features is not None and predicted is not None and len(predicted.predictions) != n:
            raise EventError(
                400,
                "mismatch",
                f"event {first.id!r}: the request has {n} instances but the response "
                f"{len(predicted.predictions)} predictions",
            )
        model = (predicted.model_name if predicted is not None else None) or _first(e.inference_service for e in events)
        sha = _first(e.model_sha256 for e in reversed(events)) or self.model_sha.get(model or "")
        common = {
            "model_name": model,
            "model_sha256": sha,
            "event_id": first.id,
            "time": first.time,
            "inference_service": _first(e.inference_service for e in events),
            "namespace": _first(e.namespace for e in events),
            "endpoint": _first(e.endpoint for e in events),
        }
        rows = []
        for i in range(n):
            row = dict(features[i]) if features is not None else {}
            row["prediction"] = predicted.predictions[i] if predicted is not None else None
            row["score"] = predicted.scores[i] if predicted is not None else None
            row.update(common)
            row["instance"] = i
            rows.append(row)
        return rows


def _first(values) -> Optional[str]:
    return next((v for v in values if v), None)


def _other(kind: str) -> str:
    return "response" if kind == "request" else "request"
