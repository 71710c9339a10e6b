"""The HTTP door of the inference routes: size limit, content type, binary header, outcome metrics, error shape.

A plain ASGI middleware in front of KServe's FastAPI app. For ``POST /v1/models/<name>:predict`` and
``POST /v2/models/<name>[/versions/<v>]/infer`` it

- refuses a body over ``max_body_bytes`` with 413 before it is parsed (``Content-Length``, else while reading);
- reads a V2 request without ``Content-Type`` as JSON, as V1 does (tritonclient's JSON mode sends none),
  unless it carries ``Inference-Header-Content-Length`` (the binary extension);
- checks that ``Inference-Header-Content-Length`` is an integer within the body (else 400, never a 500);
- counts every inference request by outcome and times it (``metrics``).

The exception handlers give every client error the one shape of ``errors.error_body`` and log it on one line.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

import orjson

from kfp_tabular.components.deployment.model_server import metrics
from kfp_tabular.components.deployment.model_server.errors import error_body, log_client_error

__all__ = ["DEFAULT_MAX_BODY_BYTES", "InferenceGate", "install_error_handlers"]

#: Default request body limit: 16 MiB (a 1,000-row JSON batch is about 250 kB).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
_V1 = re.compile(r"^/v1/models/(?P<name>[^/:]+):predict$")
_V2 = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/[^/]+)?/infer$")
BINARY_HEADER = b"inference-header-content-length"

logger = logging.getLogger(__name__)

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]


class InferenceGate:
    """ASGI middleware (see the module docstring)."""

    def __init__(self, app: Any, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gate an inference request; pass anything else on."""
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        match = _V1.match(path)
        protocol = "v1"
        if match is None:
            match, protocol = _V2.match(path), "v2"
            if match is None:
                await self.app(scope, receive, send)
                return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_record(message: Dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._gate(scope, receive, send_and_record, protocol, path)
        finally:
            metrics.observe_request(match.group("name"), protocol, status["code"], time.perf_counter() - started)

    async def _gate(self, scope: Scope, receive: Receive, send: Send, protocol: str, path: str) -> None:
        headers: List = list(scope.get("headers") or [])
        names = {key.lower(): value for key, value in headers}
        declared = names.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(send, path, 413, f"request body: {int(declared)} bytes is over the limit", declared)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await self._refuse(send, path, 413, "request body: over the limit", None)
                return
        if protocol == "v2":
            binary = names.get(BINARY_HEADER)
            if binary is not None:
                text = binary.decode("latin-1").strip()
                if not text.isdigit() or int(text) > len(body):
                    await self._send_error(
                        send,
                        path,
                        400,
                        f"header Inference-Header-Content-Length: expected the byte length of the JSON part, an "
                        f"integer from 0 to the body's {len(body)} bytes, got {text[:40]!r}",
                        "Inference-Header-Content-Length",
                        f"an integer from 0 to {len(body)}",
                    )
                    return
            elif b"content-type" not in names:
                headers.append((b"content-type", b"application/json"))
                scope = dict(scope, headers=headers)
        delivered = False

        async def replay() -> Dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, path: str, status: int, message: str, declared: Optional[bytes]) -> None:
        limit = f"at most {self.max_body_bytes} bytes (--max_body_bytes)"
        await self._send_error(send, path, status, f"{message}: expected {limit}", "body", limit)

    async def _send_error(self, send: Send, path: str, status: int, message: str, field: str, expected: str) -> None:
        log_client_error("POST", path, status, message)
        content = _dumps(error_body(status, message, field, expected))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})


def install_error_handlers(app: Any) -> None:
    """Give every client error the one JSON shape, logged on one line at INFO (no traceback)."""
    from fastapi.exceptions import RequestValidationError
    from kserve.errors import InvalidInput
    from starlette.exceptions import HTTPException
    from starlette.responses import Response

    from kfp_tabular.components.deployment.model_server.errors import RequestError

    async def client_error(request, exc):
        if isinstance(exc, RequestError):
            body = exc.to_json()
        elif isinstance(exc, RequestValidationError):
            body = _validation_body(exc)
        elif isinstance(exc, HTTPException):
            body = error_body(exc.status_code, str(exc.detail))
        else:
            body = error_body(400, str(exc))
        log_client_error(request.method, request.url.path, body["status"], body["error"])
        return Response(_dumps(body), status_code=body["status"], media_type="application/json")

    for kind in (RequestError, InvalidInput, RequestValidationError, HTTPException):
        app.add_exception_handler(kind, client_error)


def _dumps(body: Dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # a value orjson cannot encode (an integer over 64 bits): as text
        return json.dumps(body, default=repr).encode()


def _validation_body(exc: Any) -> Dict[str, Any]:
    """FastAPI's 422 (a V2 body that is not JSON or not the V2 request shape) as one 400 naming the field."""
    problems = exc.errors() or [{}]
    first = problems[0]
    location = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    text = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        message = f"request body: expected JSON (Content-Type: application/json), {text}"
        return error_body(400, message, "body", "a JSON object")
    message = f"V2 request field '{location}': {text}" + (
        f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    )
    return error_body(400, message, location, first.get("type"))
