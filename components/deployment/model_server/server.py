"""The KServe model server: ``HostModelServer`` (bind address, the HTTP gate, one error shape) and its data plane.

The model itself is ``model.TabularModel``; request parsing is ``payload``, the schema check ``schema``, the
derived fast path ``fastpath``, Prometheus metrics ``metrics``, the HTTP door ``gate``, client errors
``errors``. This module wires them into KServe 0.21's ``ModelServer``:

- the REST server binds ``host`` (KServe fixes 0.0.0.0);
- its FastAPI app gets the ``gate.InferenceGate`` middleware and the client-error handlers when KServe builds
  it (in each worker process with ``--workers`` > 1), and, with ``--logger_url``, the payload logger
  (``logger.PayloadLogger``, inside the gate: it sees the requests the gate lets through);
- its data plane reads a V1 body that strict JSON refuses only for non-finite numbers (``Infinity``, ``NaN``,
  ``1e400``) with Python's JSON reader, so the schema check names the column instead of a parse error; any
  other body that is not JSON, and a V2 binary request that does not decode, is a 400.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional

import orjson
from kserve import ModelServer
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.server import RESTServer

from kfp_tabular.components.deployment.model_server.errors import RequestError
from kfp_tabular.components.deployment.model_server.gate import (
    DEFAULT_MAX_BODY_BYTES,
    InferenceGate,
    install_error_handlers,
)
from kfp_tabular.components.deployment.model_server.logger import LoggerSettings, PayloadLogger
from kfp_tabular.components.deployment.model_server.model import ENV_PREDICT_PROBA, TabularModel
from kfp_tabular.components.deployment.model_server.model_files import find_latest_model

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "ENV_PREDICT_PROBA",
    "HostModelServer",
    "TabularModel",
    "find_latest_model",
]

#: The REST bind address of the command line: localhost for ``make serve``; the cluster runtime passes 0.0.0.0.
DEFAULT_HOST = "127.0.0.1"
_JSON_TYPES = ("application/json", "application/cloudevents+json")
_BINARY_HEADER = "inference-header-content-length"

logger = logging.getLogger(__name__)


class TabularDataPlane(DataPlane):
    """KServe's data plane with decoding errors as client errors (400 naming what was wrong)."""

    def decode(self, body, headers, protocol_version: str = "v1", model_name: str = None):
        if isinstance(body, (bytes, bytearray)) and protocol_version.lower() != "v2":
            content_type = (headers or {}).get("content-type", "application/json").split(";")[0].strip()
            if content_type in _JSON_TYPES and not any(k.lower().startswith("ce-") for k in headers or {}):
                body = _loads(bytes(body))
        return super().decode(body, headers, protocol_version=protocol_version, model_name=model_name)

    def decode_inference_request(self, body, headers: Dict, model_name: str) -> InferRequest:
        if not isinstance(body, (bytes, bytearray)):
            return super().decode_inference_request(body, headers, model_name)
        length = (headers or {}).get(_BINARY_HEADER)
        if length is None:
            raise RequestError(
                "V2 request: the body is not JSON (Content-Type is not application/json) and the header "
                "Inference-Header-Content-Length of the binary extension is missing",
                field="Content-Type",
                expected="application/json, or the binary extension's Inference-Header-Content-Length",
            )
        try:
            return InferRequest.from_bytes(bytes(body), int(length), model_name)
        except RequestError:
            raise
        except Exception as exc:  # the JSON part or the binary part does not decode: the client's bytes
            raise RequestError(
                f"V2 binary request: the body does not decode ({type(exc).__name__}: {exc})",
                field="body",
                expected=f"a JSON header of {length} bytes followed by the binary tensor data",
            ) from None


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as strict:
        try:  # Python's reader takes NaN, Infinity and 1e400 (as inf): the schema check then names the column
            return json.loads(body)
        except (ValueError, RecursionError):
            raise RequestError(
                f"request body: expected JSON (Content-Type: application/json), {strict}",
                field="body",
                expected="a JSON object",
            ) from None


class TabularRESTServer(RESTServer):
    """KServe's REST server whose app gets the inference gate and the client-error handlers."""

    max_body_bytes = DEFAULT_MAX_BODY_BYTES
    payload_logger: Optional[LoggerSettings] = None

    def create_application(self):
        super().create_application()
        from kserve.model_server import app

        install_error_handlers(app)
        if self.payload_logger is not None:  # added first: the gate (added last) wraps it
            app.add_middleware(PayloadLogger, settings=self.payload_logger)
        app.add_middleware(InferenceGate, max_body_bytes=self.max_body_bytes)


class HostModelServer(ModelServer):
    """KServe's ``ModelServer`` with the REST server bound to ``host`` instead of KServe's fixed 0.0.0.0.

    KServe 0.21's ``RESTServer`` builds its ``uvicorn.Config`` with ``host="0.0.0.0"`` and no way to change it.
    ``ModelServer.start`` creates the REST server (one process, or the parent of ``--workers`` processes),
    then runs ``_serve`` in a new event loop; uvicorn reads ``config.host`` only when it binds, which happens
    inside ``_serve``. So ``_serve`` sets the host on that config first. gRPC (off unless enabled) still binds
    ``[::]``, as KServe's ``GRPCServer`` fixes it too.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        payload_logger: Optional[LoggerSettings] = None,
        **kwargs: Any,
    ):
        """Create the server.

        Args:
            host: Address the REST server binds: ``127.0.0.1`` for this machine only, ``0.0.0.0`` for all
                IPv4 interfaces (what a pod needs), or any address uvicorn accepts.
            max_body_bytes: Largest inference request body served; a larger one gets HTTP 413.
            payload_logger: Send KServe logger CloudEvents of every inference (``logger``); None: off.
            **kwargs: Passed on to ``kserve.ModelServer``.
        """
        super().__init__(**kwargs)
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.payload_logger = payload_logger
        self.dataplane = TabularDataPlane(model_registry=self.registered_models)

    async def _serve(self) -> None:
        configs = [server.config for server in self._rest_servers()]
        if not configs:
            raise RuntimeError(
                "HostModelServer: kserve.ModelServer.start created no REST server this class knows how to bind "
                "(expected _rest_server or _rest_multiprocess_server._rest_server, as in kserve 0.21)"
            )
        for config in configs:
            config.host = self.host
        for server in self._rest_servers():
            server.__class__ = TabularRESTServer  # pickles by name into --workers processes
            server.max_body_bytes = self.max_body_bytes
            server.payload_logger = self.payload_logger
        await super()._serve()

    def _rest_servers(self) -> list:
        servers = [self._rest_server]
        if self._rest_multiprocess_server is not None:
            servers.append(getattr(self._rest_multiprocess_server, "_rest_server", None))
        return [server for server in servers if server is not None and hasattr(server, "config")]
