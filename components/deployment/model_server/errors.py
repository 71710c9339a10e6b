"""The client errors the model server raises, and the one JSON shape every 4xx has on V1 and V2.

Only these come out of request parsing and the schema check (``payload``, ``schema``): a :class:`RequestError`
(HTTP 400) or its subclasses. Each names the field (``instances[3]``, ``input 'x'``, ``column 'age'``), what
was expected and what was sent. The body of every client error, whatever raised it (this module, KServe's
own ``InvalidInput``, FastAPI's request validation, the size limit), is::

    {"error": "<one sentence naming the field>", "field": "<field or null>", "expected": "<what or null>",
     "status": 400, "violations": [{"field", "kind", "row", "expected", "got"}, ...]}   # violations: schema only

4xx are logged on one line at INFO, without a traceback: a client's mistake is not a server error.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence

from kserve.errors import InvalidInput

__all__ = ["BodyTooLarge", "RequestError", "SchemaRejected", "error_body", "log_client_error"]

logger = logging.getLogger("kfp_tabular.model_server.requests")


class RequestError(InvalidInput):
    """A request the server cannot serve because of what the client sent (HTTP 400 unless ``status`` says)."""

    status = 400

    def __init__(
        self,
        message: str,
        *,
        field: Optional[str] = None,
        expected: Optional[str] = None,
        violations: Sequence[Dict[str, Any]] = (),
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.expected = expected
        self.violations: List[Dict[str, Any]] = list(violations)

    def to_json(self) -> Dict[str, Any]:
        """Return the error body of this error."""
        return error_body(self.status, self.message, self.field, self.expected, self.violations)


class SchemaRejected(RequestError):
    """Values the training schema rules out, under a policy that rejects them; ``violations`` lists each."""


class BodyTooLarge(RequestError):
    """The request body is over the server's size limit (HTTP 413)."""

    status = 413


def error_body(
    status: int,
    message: str,
    field: Optional[str] = None,
    expected: Optional[str] = None,
    violations: Sequence[Dict[str, Any]] = (),
) -> Dict[str, Any]:
    """Return the one error shape (see the module docstring)."""
    body: Dict[str, Any] = {"error": message, "field": field, "expected": expected, "status": status}
    if violations:
        body["violations"] = list(violations)
    return body


def log_client_error(method: str, path: str, status: int, message: str) -> None:
    """One INFO line per client error, no traceback."""
    logger.info("%s %s -> %d: %s", method, path, status, message.replace("\n", " ")[:500])
