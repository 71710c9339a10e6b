"""A bounded load generator: eval rows replayed as V1 ``instances`` at a set rate, outcomes counted per server.

:class:`LoadGenerator` is open-loop: a scheduler thread releases one request every ``1/rate`` seconds to a
fixed pool of worker threads (``threads``), each sending ``POST <url><path>`` with ``batch`` consecutive rows
(cycling over the rows; every ``large_every``-th request ``large_batch`` rows) and a per-request
``timeout``. When every worker is busy the tick is counted as
``skipped`` instead of queueing without bound, so a slow upstream cannot make the generator's memory or
backlog grow. It stops at ``duration`` seconds, at :meth:`stop`, or when the block of ``with`` ends.

Each answer is counted under the ``X-Served-By`` header the splitter adds (``stable``, ``canary``; ``none``
when the header is missing, e.g. a connection that failed before any server answered) and an outcome:
``ok`` (2xx), ``client_error`` (4xx), ``server_error`` (5xx), ``transport_error`` (no HTTP answer: refused,
reset, timed out). :meth:`LoadGenerator.counts` returns a snapshot (``Counts``); tests assert that
``counts.role("stable")`` has only ``ok``.

Standard library only (urllib + threads).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence

__all__ = ["Counts", "LoadGenerator", "OUTCOMES", "replay"]

OUTCOMES = ("ok", "client_error", "server_error", "transport_error")


@dataclasses.dataclass(frozen=True)
class Counts:
    """A snapshot of the generator's counters.

    Attributes:
        by_role: ``{"stable": {"ok": n, "server_error": n, ...}, "canary": {...}, ...}``.
        sent: Requests sent (answered or not).
        skipped: Ticks dropped because every worker was busy.
        errors: Up to 20 examples of non-ok answers: ``"<role> <status>: <first 200 characters of the body>"``.
    """

    by_role: Dict[str, Dict[str, int]]
    sent: int
    skipped: int
    errors: List[str]

    def role(self, name: str) -> Dict[str, int]:
        """Return the outcome counts of one server (every outcome present, zeros included)."""
        counts = self.by_role.get(name, {})
        return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}

    def total(self, name: str) -> int:
        """Return how many answers (all outcomes) ``name`` gave."""
        return sum(self.role(name).values())

    def line(self) -> str:
        """Return a one-line summary: each role's outcomes, sent and skipped."""
        parts = []
        for name in sorted(self.by_role):
            outcomes = ", ".join(f"{k} {v}" for k, v in self.role(name).items() if v)
            parts.append(f"{name}: {outcomes}")
        return f"{'; '.join(parts) or 'no answers'} (sent {self.sent}, skipped {self.skipped})"


class LoadGenerator:
    """Replay ``rows`` against ``url + path`` at ``rate`` requests/s (see the module docstring).

    Args:
        url: Base URL (the splitter's front or preview URL).
        path: The V1 predict path, e.g. ``/v1/models/model:predict``.
        rows: V1 instances (lists in the model's feature order).
        rate: Requests per second (> 0).
        batch: Rows per request (>= 1).
        duration: Seconds to run (None: until :meth:`stop`).
        threads: Worker threads (bounds the requests in flight).
        timeout: Seconds one request may take before it counts as a ``transport_error``.
        large_batch: Rows of the occasional large request (0: none).
        large_every: Every ``large_every``-th request carries ``large_batch`` rows (a client scoring a page of
            records), the others ``batch``.
    """

    def __init__(
        self,
        url: str,
        path: str,
        rows: Sequence[list],
        *,
        rate: float,
        batch: int = 1,
        duration: Optional[float] = None,
        threads: int = 16,
        timeout: float = 10.0,
        large_batch: int = 0,
        large_every: int = 0,
    ):
        if not rows:
            raise ValueError("rows: expected at least one row to replay")
        if not rate > 0:
            raise ValueError(f"rate: expected requests per second > 0, got {rate!r}")
        if batch < 1 or threads < 1:
            raise ValueError(f"batch and threads: expected >= 1, got {batch} and {threads}")
        if large_batch < 0 or large_every < 0 or bool(large_batch) != bool(large_every):
            raise ValueError(f"large_batch and large_every: both > 0 or both 0, got {large_batch} and {large_every}")
        self.large_batch, self.large_every = int(large_batch), int(large_every)
        self.endpoint = url.rstrip("/") + path
        self.rows, self.rate, self.batch = list(rows), float(rate), int(batch)
        self.duration, self.threads, self.timeout = duration, int(threads), float(timeout)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counts: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._errors: List[str] = []
        self._sent = 0
        self._skipped = 0
        self._next_row = 0
        self._tickets: "queue.Queue[Optional[int]]" = queue.Queue(maxsize=self.threads)
        self._workers: List[threading.Thread] = []
        self._scheduler: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ control

    def start(self) -> "LoadGenerator":
        """Start the workers and the scheduler; returns at once."""
        self._workers = [
            threading.Thread(target=self._work, name=f"load-worker-{i}", daemon=True) for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        self._scheduler = threading.Thread(target=self._schedule, name="load-scheduler", daemon=True)
        self._scheduler.start()
        return self

    def stop(self, wait: bool = True) -> Counts:
        """Stop sending; with ``wait``, let requests in flight finish (each bounded by ``timeout``)."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join()
        for _ in self._workers:
            self._tickets.put(None)
        if wait:
            for worker in self._workers:
                worker.join(self.timeout + 5)
        return self.counts()

    def join(self) -> Counts:
        """Wait until ``duration`` has passed (or :meth:`stop`), then stop; return the counts."""
        if self._scheduler is not None:
            self._scheduler.join()
        return self.stop()

    def __enter__(self) -> "LoadGenerator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def counts(self) -> Counts:
        """Return a snapshot of the counters."""
        with self._lock:
            return Counts(
                {role: dict(c) for role, c in self._counts.items()}, self._sent, self._skipped, list(self._errors)
            )

    # ------------------------------------------------------------------ threads

    def _schedule(self) -> None:
        start = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            due = start + tick / self.rate
            if self.duration is not None and due - start >= self.duration:
                break
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            try:
                self._tickets.put_nowait(tick)
            except queue.Full:
                with self._lock:
                    self._skipped += 1
            tick += 1

    def _body(self, ticket: int) -> bytes:
        size = (
            self.large_batch if self.large_every and ticket % self.large_every == self.large_every - 1 else self.batch
        )
        with self._lock:
            first = self._next_row
            self._next_row = (first + size) % len(self.rows)
        picked = [self.rows[(first + i) % len(self.rows)] for i in range(size)]
        return json.dumps({"instances": picked}).encode()

    def _work(self) -> None:
        while True:
            ticket = self._tickets.get()
            if ticket is None:
                return
            self._send_one(ticket)

    def _send_one(self, ticket: int) -> None:
        request = urllib.request.Request(
            self.endpoint, data=self._body(ticket), headers={"Content-Type": "application/json"}, method="POST"
        )
        role, outcome, status, body = "none", "transport_error", None, ""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                role = response.headers.get("X-Served-By", "none")
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            role = exc.headers.get("X-Served-By", "none") if exc.headers else "none"
            status = exc.code
            try:
                body = exc.read(200).decode("utf-8", "replace")
            except OSError:
                body = ""
        except (urllib.error.URLError, OSError) as exc:
            body = f"{type(exc).__name__}: {exc}"
        if status is not None:
            outcome = "ok" if status < 400 else "client_error" if status < 500 else "server_error"
        with self._lock:
            self._sent += 1
            self._counts[role][outcome] += 1
            if outcome != "ok" and len(self._errors) < 20:
                self._errors.append(f"{role} {status or outcome}: {body[:200]}")


def replay(
    url: str, path: str, rows: Sequence[list], *, rate: float, duration: float, batch: int = 1, **kwargs
) -> Counts:
    """Send a bounded replay (``rate`` requests/s for ``duration`` s) to ``url`` and return the counts.

    Blue-green's ``preview_traffic``: ``functools.partial(replay, path=..., rows=..., rate=..., duration=...)``.
    """
    generator = LoadGenerator(url, path, rows, rate=rate, batch=batch, duration=duration, **kwargs)
    generator.start()
    return generator.join()
