"""Start and stop the collector as a process from Python (tests, ``make loop-demo``): standard library only.

::

    from kfp_tabular.components.monitoring.collector.launch import CollectorProcess

    with CollectorProcess(sink="local_outputs/served", roll_rows=1000, roll_seconds=5) as collector:
        ...  # model server with --logger_url collector.url
    # leaving the block sends SIGTERM: the pending batch is written before the process exits

The collector needs the serve environment (pyarrow, uvicorn, prometheus_client): ``python`` defaults to
``$KFP_TABULAR_SERVE_PYTHON``, else ``<repo>/.venv-serve/bin/python``, else this interpreter.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ["CollectorProcess", "free_port", "parse_metrics", "serve_python"]

MODULE = "kfp_tabular.components.monitoring.collector"
_REPO = Path(__file__).resolve().parents[3]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def serve_python() -> str:
    """Return the interpreter of the serve environment (see the module docstring)."""
    override = os.environ.get("KFP_TABULAR_SERVE_PYTHON")
    if override:
        return override
    candidate = _REPO / ".venv-serve" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_metrics(text: str) -> Dict[str, float]:
    """Prometheus text -> ``{'name{labels}': value}`` (labels as written, sorted as the client writes them)."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


class CollectorProcess:
    """``python -m kfp_tabular.components.monitoring.collector`` as a child process.

    Args:
        sink: The ``--sink`` URI.
        roll_rows: ``--roll-rows``.
        roll_seconds: ``--roll-seconds``.
        port: ``--port`` (default: a free one).
        args: More command-line arguments (``["--pair-ttl", "5", "--model-metadata", "churn=..."]``).
        log_path: Where its stdout and stderr go (default: discarded).
        python: The interpreter (default: ``serve_python()``).
        env: Extra environment variables (e.g. AWS credentials for s3://).
    """

    def __init__(
        self,
        sink: str,
        roll_rows: int = 10_000,
        roll_seconds: float = 60.0,
        port: Optional[int] = None,
        args: Sequence[str] = (),
        log_path: Optional[os.PathLike] = None,
        python: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else None
        self.command: List[str] = [
            python or serve_python(),
            "-m",
            MODULE,
            "--sink",
            str(sink),
            "--roll-rows",
            str(roll_rows),
            "--roll-seconds",
            str(roll_seconds),
            "--port",
            str(self.port),
            *args,
        ]
        self.env = {**os.environ, **(env or {})}
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 60.0) -> "CollectorProcess":
        """Start it and wait until ``/readyz`` answers 200 (RuntimeError with its log if it exits or times out)."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(self.command, cwd=_REPO, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        finally:
            if self.log_path:
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"collector exited with {self.process.returncode} before it was ready:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"collector not ready after {timeout:.0f} s:\n{self.log()}")

    def metrics(self) -> Dict[str, float]:
        """Its ``/metrics``, parsed."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            return parse_metrics(response.read().decode("utf-8"))

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (the pending batch is written), wait; return the exit code (0: every row written)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"collector did not stop within {timeout:.0f} s of SIGTERM:\n{self.log()}")
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL (nothing is flushed)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        """Its output so far (when ``log_path`` was given)."""
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-20000:]
        return "(no log_path)"

    def __enter__(self) -> "CollectorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
