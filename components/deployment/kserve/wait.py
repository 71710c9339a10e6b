"""The wait loop: poll an InferenceService until the readiness predicate holds, fails or time runs out.

The outcome is a value (:class:`WaitOutcome`) the caller reads and acts on (roll back, report); only a
permission error, which waiting cannot cure, is raised.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from kfp_tabular.components.common.errors import DeployError
from kfp_tabular.components.deployment.kserve.client import get
from kfp_tabular.components.deployment.kserve.readiness import Expectation

MAX_POLL_INTERVAL_S = 2.0


@dataclasses.dataclass(frozen=True)
class WaitOutcome:
    """How a wait ended.

    Attributes:
        ok: The expectation held.
        obj: The last object read (None if none could be read).
        message: What status said last; on failure, what was awaited and what went wrong.
        timed_out: The wait ran out of time (as opposed to a failure the controller reported).
    """

    ok: bool
    obj: dict | None
    message: str
    timed_out: bool = False


def wait_for(
    api_client: Any,
    namespace: str,
    name: str,
    expectation: Expectation,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    read: Callable[[Any, str, str], dict | None] = get,
) -> WaitOutcome:
    """Poll the InferenceService until ``expectation`` holds, the controller reports a failure, or time runs out.

    Transient API errors are retried until the deadline. ``sleep`` and ``read`` (how one object is read:
    ``client.get``) can be replaced, e.g. to replay recorded status documents.

    Raises:
        DeployError: HTTP 401/403 while reading (a permission problem does not go away by waiting).
    """
    import urllib3

    deadline = time.monotonic() + timeout_seconds
    interval = 0.1
    last = "nothing read yet"
    obj = None
    while True:
        try:
            current = read(api_client, namespace, name)
        except (DeployError, urllib3.exceptions.HTTPError, OSError) as exc:
            if getattr(exc, "http_status", None) in (401, 403):
                raise
            current, verdict, last = None, "wait", f"API error while reading ({exc}); retrying"
        else:
            if current is None:
                return WaitOutcome(False, obj, f"InferenceService {namespace}/{name} disappeared while waiting")
            obj = current
            verdict, last = expectation.check(obj)
        if verdict == "ok":
            return WaitOutcome(True, obj, last)
        if verdict == "failed":
            message = f"InferenceService {namespace}/{name} failed while waiting for {expectation.describe()}: {last}"
            return WaitOutcome(False, obj, message)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            message = (
                f"timed out after {timeout_seconds:g}s waiting for {expectation.describe()} on InferenceService "
                f"{namespace}/{name}; last status: {last}"
            )
            return WaitOutcome(False, obj, message, timed_out=True)
        sleep(min(interval, remaining))
        interval = min(interval * 1.5, MAX_POLL_INTERVAL_S)
