"""Payload logging: our emulation of KServe's logger agent, so the monitoring loop runs on one machine.

On a cluster KServe's agent (a sidecar proxy in front of the model server, ``spec.predictor.logger``) sends a
CloudEvent for every inference request and every successful response. ``--logger_url`` makes this server
send the same events itself (off by default), in the agent's format (KServe ``pkg/logger``, see
docs/payload-logging.md for what was checked):

- binary content mode, ``ce-specversion: 1.0``, ``ce-id`` (the request's ``Ce-Id`` header, else a new UUID;
  the same on the request and its response), ``ce-type`` ``org.kubeflow.serving.inference.request`` /
  ``.response``, ``ce-source`` (``--logger_source``, default this server's URL), ``ce-time``;
- extensions ``ce-inferenceservicename`` (default: the model name), ``ce-namespace``, ``ce-component``
  (``predictor``), ``ce-endpoint`` (``default``; ``canary`` for a canary), ``ce-metadata`` (``{}``);
- the body: the request's or the response's bytes as they were; ``Content-Type``: the request's, on both;
- ``--logger_mode all|request|response``; the response is logged only when its status is 200, as the agent
  does (a request the model refused has a request event and no response event);
- and one extension KServe's agent does not send: ``ce-modelsha256``, the sha256 of the model file that
  answered, so the collector can tell a canary's rows from the stable model's.

Never in the request's critical path: the ASGI middleware copies the bytes it already passes through and
puts the events on a bounded queue without waiting (full: the events are dropped and counted); sender threads
POST them with keep-alive connections and a timeout. A collector that is down, slow or refusing costs the
predictions nothing: its events are counted in ``kfp_tabular_payload_log_events_total{outcome}`` as
``dropped`` (queue full), ``failed`` (connection error or timeout) or ``refused`` (a non-2xx answer).
Unlike KServe's agent (whose queue blocks the request when full), nothing here waits for the collector.
"""

from __future__ import annotations

import http.client
import logging
import os
import queue
import re
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from prometheus_client import Counter, Gauge

from kfp_tabular.components.deployment.model_server import metrics

__all__ = ["LOGGER_MODES", "Emitter", "LoggerSettings", "PayloadLogger"]

LOGGER_MODES = ("all", "request", "response")
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
_V1 = re.compile(r"^/v1/models/(?P<name>[^/:]+):predict$")
_V2 = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/[^/]+)?/infer$")

logger = logging.getLogger(__name__)

EVENTS = Counter(
    "kfp_tabular_payload_log_events",
    "Payload-logger CloudEvents by outcome: sent, dropped (queue full), failed (connection), refused (non-2xx)",
    ["model_name", "model_sha256", "type", "outcome"],
)
QUEUED = Gauge("kfp_tabular_payload_log_queued", "Payload-logger events waiting to be sent")


@dataclass(frozen=True)
class LoggerSettings:
    """Where and what to log (the ``--logger_*`` options). Picklable: it travels into ``--workers`` processes."""

    url: str
    mode: str = "all"
    source: str = ""
    inference_service: str = ""
    namespace: str = ""
    component: str = "predictor"
    endpoint: str = "default"
    queue_size: int = 1000
    workers: int = 2
    timeout: float = 2.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--logger_url: expected an http:// or https:// URL, got {self.url!r}")
        if self.mode not in LOGGER_MODES:
            raise ValueError(f"--logger_mode: expected one of {', '.join(LOGGER_MODES)}, got {self.mode!r}")
        if self.queue_size < 1 or self.workers < 1 or not self.timeout > 0:
            raise ValueError("--logger_queue_size and --logger_workers: at least 1; --logger_timeout: positive")


_Message = Tuple[str, str, Dict[str, str], bytes]  # model name, event type, headers, body


class Emitter:
    """A bounded queue and sender threads (started on first use, again in each worker process)."""

    def __init__(self, settings: LoggerSettings):
        self.settings = settings
        parts = urllib.parse.urlsplit(settings.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._queue: "queue.Queue[_Message]" = queue.Queue(maxsize=settings.queue_size)
        self._pid: Optional[int] = None
        self._lock = threading.Lock()

    def emit(self, messages: List[_Message]) -> None:
        """Queue events without waiting; a full queue drops them (counted)."""
        self._ensure_started()
        for message in messages:
            try:
                self._queue.put_nowait(message)
            except queue.Full:
                self._count(message, "dropped")
        QUEUED.set(self._queue.qsize())

    def _ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(maxsize=self.settings.queue_size)  # a forked copy's queue is not ours
            for i in range(self.settings.workers):
                threading.Thread(target=self._run, name=f"payload-logger-{i}", daemon=True).start()
            self._pid = os.getpid()

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self.settings.timeout)

    def _run(self) -> None:
        connection: Optional[http.client.HTTPConnection] = None
        while True:
            message = self._queue.get()
            QUEUED.set(self._queue.qsize())
            _, _, headers, body = message
            for attempt in (1, 2):  # a kept-alive connection the collector closed: once more on a new one
                reused = connection is not None
                try:
                    if connection is None:
                        connection = self._connect()
                    connection.request("POST", self._path, body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    self._count(message, "sent" if 200 <= response.status < 300 else "refused")
                    if response.status >= 300:
                        logger.info(
                            "payload logger: %s answered %d to event %s",
                            self.settings.url,
                            response.status,
                            headers.get("ce-id"),
                        )
                    if response.will_close:
                        connection.close()
                        connection = None
                    break
                except (OSError, http.client.HTTPException) as exc:
                    if connection is not None:
                        connection.close()
                    connection = None
                    if reused and attempt == 1 and not isinstance(exc, TimeoutError):
                        continue
                    self._count(message, "failed")
                    logger.debug("payload logger: sending to %s failed: %s", self.settings.url, exc)
                    break

    def _count(self, message: _Message, outcome: str) -> None:
        name, kind, headers, _ = message
        EVENTS.labels(
            model_name=name, model_sha256=headers.get("ce-modelsha256", "unknown"), type=kind, outcome=outcome
        ).inc()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class PayloadLogger:
    """ASGI middleware copying inference requests and responses into CloudEvents (see the module docstring)."""

    def __init__(self, app: Any, settings: LoggerSettings):
        self.app = app
        self.settings = settings
        self.emitter = Emitter(settings)

    async def __call__(self, scope: Dict[str, Any], receive: Callable[[], Awaitable[Dict]], send: Callable) -> None:
        """Serve the request; afterwards queue its events (never waiting on the collector)."""
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        match = _V1.match(path) or _V2.match(path)
        if match is None:
            await self.app(scope, receive, send)
            return
        request_time = _now()
        request_body: List[bytes] = []
        response_body: List[bytes] = []
        status = {"code": 0}

        async def receive_and_copy() -> Dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                request_body.append(message.get("body", b""))
            return message

        async def send_and_copy(message: Dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body":
                response_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_and_copy, send_and_copy)
        finally:
            try:
                self._log(
                    match.group("name"),
                    scope,
                    request_time,
                    b"".join(request_body),
                    status["code"],
                    b"".join(response_body),
                )
            except Exception:  # logging must never fail a prediction
                logger.exception("payload logger: could not queue the events of %s", path)

    def _log(
        self, name: str, scope: Dict[str, Any], request_time: str, request: bytes, status: int, response: bytes
    ) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        event_id = headers.get("ce-id") or str(uuid.uuid4())
        content_type = headers.get("content-type", "application/json")
        if "cloudevents" in content_type:  # a structured-mode type would make the body look like an envelope
            content_type = "application/json"
        settings = self.settings
        common = {
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-source": settings.source or "http://localhost/",
            "ce-inferenceservicename": settings.inference_service or name,
            "ce-namespace": settings.namespace,
            "ce-component": settings.component,
            "ce-endpoint": settings.endpoint,
            "ce-metadata": "{}",
            "content-type": content_type,
        }
        sha = metrics.MODEL_SHA256.get(name)
        if sha:
            common["ce-modelsha256"] = sha
        messages: List[_Message] = []
        if settings.mode in ("all", "request"):
            messages.append((name, "request", {**common, "ce-type": REQUEST_TYPE, "ce-time": request_time}, request))
        if status == 200 and settings.mode in ("all", "response"):
            messages.append((name, "response", {**common, "ce-type": RESPONSE_TYPE, "ce-time": _now()}, response))
        if messages:
            self.emitter.emit(messages)
