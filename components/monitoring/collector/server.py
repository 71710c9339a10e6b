"""The collector service: an ASGI app on uvicorn that receives KServe logger events and writes Parquet batches.

``POST`` (any path but the ones below): one CloudEvent (``events``), paired (``pairing``), its rows buffered;
the buffer is rolled into a batch when it holds ``roll_rows`` rows or its first row is ``roll_seconds`` old,
and a writer thread writes each batch (``sink``), retrying a failed write with backoff, so a slow or failing
sink never blocks the event loop. Answers: 200 ``{"id", "state": "pending"|"written", "rows"}`` (200, because
KServe's agent logs any other status as an error); 4xx ``{"error", "reason", "status"}`` for a refused event;
503 ``overloaded`` when more than ``max_buffered_rows`` rows wait for the sink.

``GET /healthz`` (alive), ``GET /readyz`` (accepting events), ``GET /metrics`` (Prometheus, ``metrics``).
SIGTERM (uvicorn's graceful shutdown): stop accepting, drop the halves still waiting (counted unpaired,
``shutdown``), write the buffered rows, wait for the writer, exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import signal
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from kfp_tabular.components.monitoring.collector.events import EventError, parse_event
from kfp_tabular.components.monitoring.collector.metrics import Metrics
from kfp_tabular.components.monitoring.collector.pairing import Pairer
from kfp_tabular.components.monitoring.collector.settings import DEFAULT_MAX_BODY_BYTES, Settings
from kfp_tabular.components.monitoring.collector.sink import BatchWriter

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Collector", "Settings", "build_app", "serve"]

logger = logging.getLogger("kfp_tabular.collector")


class _Writer(threading.Thread):
    """Writes batches in order; a failed write is retried with backoff until it succeeds or the collector stops."""

    def __init__(self, writer: BatchWriter, metrics: Metrics, retries_at_stop: int = 3):
        super().__init__(name="collector-writer", daemon=True)
        self.writer = writer
        self.metrics = metrics
        self.batches: "queue.Queue[Optional[List[Dict[str, Any]]]]" = queue.Queue()
        self.queued_rows = 0
        self.lost_rows = 0
        self.retries_at_stop = retries_at_stop
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def submit(self, rows: List[Dict[str, Any]]) -> None:
        with self._lock:
            self.queued_rows += len(rows)
        self.batches.put(rows)

    def run(self) -> None:
        while True:
            rows = self.batches.get()
            if rows is None:
                return
            self._write(rows)
            with self._lock:
                self.queued_rows -= len(rows)

    def _write(self, rows: List[Dict[str, Any]]) -> None:
        delay, failures = 0.5, 0
        while True:
            started = time.perf_counter()
            try:
                paths = self.writer.write(rows)
            except Exception as exc:  # any storage failure: keep the rows, retry
                failures += 1
                self.metrics.write_errors.inc()
                logger.error(
                    "batch of %d rows: write to %s failed (%s: %s)",
                    len(rows),
                    self.writer.sink,
                    type(exc).__name__,
                    exc,
                )
                if self.stopping.is_set() and failures > self.retries_at_stop:
                    self.lost_rows += len(rows)
                    logger.error("batch of %d rows lost: the sink still fails at shutdown", len(rows))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.metrics.write_seconds.observe(time.perf_counter() - started)
            self.metrics.batches.inc(len(paths))
            self.metrics.rows.inc(len(rows))
            logger.info("wrote %d rows: %s", len(rows), ", ".join(paths))
            return

    def stop(self, timeout: Optional[float] = None) -> None:
        self.stopping.set()
        self.batches.put(None)
        self.join(timeout)


class Collector:
    """The collector's state: pairing table, row buffer, writer thread (no HTTP; ``build_app`` wraps it)."""

    def __init__(self, settings: Settings, writer: Optional[BatchWriter] = None, clock: Callable[[], float] = None):
        self.settings = settings
        self.clock = clock or time.monotonic
        self.metrics = Metrics()
        self.pairer = Pairer(
            mode=settings.mode,
            ttl=settings.pair_ttl,
            max_pending=settings.max_pending,
            model_sha=dict(settings.model_sha),
            feature_order=dict(settings.feature_order),
            on_unpaired=self._unpaired,
        )
        self.writer = _Writer(writer or BatchWriter(settings.sink, settings.storage_options), self.metrics)
        self.buffer: List[Dict[str, Any]] = []
        self.buffer_started: Optional[float] = None
        self.accepting = False

    def start(self) -> None:
        """Start the writer thread and accept events."""
        self.writer.start()
        self.accepting = True

    def _unpaired(self, part: str, reason: str, rows: int) -> None:
        self.metrics.unpaired.labels(part=part, reason=reason).inc()
        self.metrics.unpaired_rows.labels(part=part, reason=reason).inc(rows)
        logger.warning(
            "unpaired %s dropped (%s): %d instances without their %s",
            part,
            reason,
            rows,
            "response" if part == "request" else "request",
        )

    def ingest(self, headers: Dict[str, str], body: bytes) -> Tuple[int, Dict[str, Any]]:
        """Take one POSTed event; return the HTTP status and JSON body of the answer."""
        kind = {
            "org.kubeflow.serving.inference.request": "request",
            "org.kubeflow.serving.inference.response": "response",
        }.get(headers.get("ce-type", ""), "unknown")
        try:
            if not self.accepting:
                raise EventError(503, "stopping", "the collector is shutting down")
            if self.writer.queued_rows + len(self.buffer) > self.settings.max_buffered_rows:
                raise EventError(
                    503,
                    "overloaded",
                    f"{self.writer.queued_rows + len(self.buffer)} rows wait for the sink (over "
                    f"--max-buffered-rows {self.settings.max_buffered_rows}): retry later",
                )
            event = parse_event(headers, body, datetime.now(timezone.utc))
            kind = event.kind
            rows = self.pairer.add(event, self.clock())
        except EventError as exc:
            return self._refuse(kind, exc)
        self.metrics.events.labels(type=kind, outcome="accepted").inc()
        if rows:
            if not self.buffer:
                self.buffer_started = self.clock()
            self.buffer.extend(rows)
            while len(self.buffer) >= self.settings.roll_rows:  # batches of exactly roll_rows rows
                batch, self.buffer = self.buffer[: self.settings.roll_rows], self.buffer[self.settings.roll_rows :]
                self.writer.submit(batch)
                self.buffer_started = self.clock() if self.buffer else None
        self._gauges()
        return 200, {"id": event.id, "state": "written" if rows else "pending", "rows": len(rows)}

    def _refuse(self, kind: str, exc: EventError) -> Tuple[int, Dict[str, Any]]:
        self.metrics.events.labels(type=kind, outcome=exc.reason).inc()
        self.metrics.rejected.labels(reason=exc.reason, status=str(exc.status)).inc()
        logger.info("refused %s event (%d %s): %s", kind, exc.status, exc.reason, exc.message)
        return exc.status, exc.to_json()

    def refuse(self, headers: Dict[str, str], status: int, reason: str, message: str) -> Tuple[int, Dict[str, Any]]:
        """Refuse an event before it is parsed (e.g. its body is too large)."""
        kind = {
            "org.kubeflow.serving.inference.request": "request",
            "org.kubeflow.serving.inference.response": "response",
        }.get(headers.get("ce-type", ""), "unknown")
        return self._refuse(kind, EventError(status, reason, message))

    def tick(self) -> None:
        """Expire unpaired halves; roll the buffer when its first row is ``roll_seconds`` old."""
        now = self.clock()
        self.pairer.expire(now)
        if self.buffer and self.buffer_started is not None and now - self.buffer_started >= self.settings.roll_seconds:
            self.roll()
        self._gauges()

    def roll(self) -> None:
        """Hand the buffered rows to the writer as one batch."""
        if self.buffer:
            rows, self.buffer, self.buffer_started = self.buffer, [], None
            self.writer.submit(rows)

    def close(self, timeout: Optional[float] = None) -> int:
        """Stop accepting, drop waiting halves, write the buffer, wait for the writer; return rows lost (0)."""
        self.accepting = False
        self.pairer.drain()
        self.roll()
        self.writer.stop(timeout)
        self._gauges()
        return self.writer.lost_rows

    def _gauges(self) -> None:
        self.metrics.pending.set(self.pairer.pending)
        self.metrics.buffered.set(len(self.buffer) + self.writer.queued_rows)


def _tick_interval(settings: Settings) -> float:
    return max(0.05, min(1.0, settings.roll_seconds / 4, settings.pair_ttl / 4))


def build_app(collector: Collector):
    """Build the ASGI app (uvicorn runs it) around a collector."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    settings = collector.settings
    state: Dict[str, Any] = {}

    async def ticker() -> None:
        interval = _tick_interval(settings)
        while True:
            await asyncio.sleep(interval)
            try:
                collector.tick()
            except Exception:  # never let the ticker die: the next tick tries again
                logger.exception("collector tick failed")

    async def lifespan(receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                collector.start()
                state["ticker"] = asyncio.get_running_loop().create_task(ticker())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                task = state.get("ticker")
                if task is not None:
                    task.cancel()
                lost = await asyncio.get_running_loop().run_in_executor(None, collector.close, None)
                logger.info("collector stopped: buffered rows written%s", f", {lost} rows LOST" if lost else "")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def respond(send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope.get("method"), scope.get("path", "")
        if method == "GET" and path in ("/healthz", "/readyz", "/metrics"):
            if path == "/metrics":
                await respond(send, 200, generate_latest(collector.metrics.registry), CONTENT_TYPE_LATEST.encode())
            elif path == "/readyz" and not collector.accepting:
                await respond(send, 503, b'{"ready": false}')
            else:
                await respond(send, 200, b'{"ok": true}')
            return
        if method != "POST":
            await respond(send, 405, json.dumps({"error": f"{method} {path}: POST CloudEvents here"}).encode())
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        limit = settings.max_body_bytes
        declared = headers.get("content-length", "")
        too_large = declared.isdigit() and int(declared) > limit
        body = bytearray()
        more = not too_large
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                too_large = True
                break
        if too_large:
            size = declared if declared.isdigit() else f"over {limit}"
            status, answer = collector.refuse(
                headers, 413, "too_large", f"event body of {size} bytes: expected at most {limit} (--max-body-bytes)"
            )
        else:
            status, answer = collector.ingest(headers, bytes(body))
        await respond(send, status, json.dumps(answer).encode())

    return app


def serve(settings: Settings) -> int:
    """Run the collector until SIGTERM/SIGINT; return 0, or 1 when rows could not be written at shutdown."""
    import uvicorn

    collector = Collector(settings)
    config = uvicorn.Config(
        build_app(collector),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    stopped_by: List[int] = []
    for number in (signal.SIGTERM, signal.SIGINT):
        # uvicorn (0.29+) restores the handlers it found and raises the signal again after its graceful shutdown;
        # these make that a normal exit, so the exit code says whether every row was written.
        signal.signal(number, lambda received, frame: stopped_by.append(received))
    uvicorn.Server(config).run()
    if stopped_by:
        logger.info("collector exited after signal %s", signal.Signals(stopped_by[0]).name)
    return 1 if collector.writer.lost_rows else 0
