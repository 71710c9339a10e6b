"""The local rollout rig: real processes on 127.0.0.1, each a context manager that waits until it is ready.

Three pieces, every one a real program with its log under the directory it is given, stopped on exit (also
when the block raises: SIGTERM to its process group, SIGKILL after 5 s):

- :func:`model_server` / :func:`model_servers` (several at once): our model server in the serve env
  (``.venv-serve/bin/python -m kfp_tabular.components.deployment.model_server --model_dir D --http_port P``, the
  flags a cluster's runtime passes: V1 answers carry labels, and every classifier prediction is still observed in
  ``kfp_tabular_prediction_score``); ready when ``GET /v1/models/<name>`` answers 200. Yields a :class:`ModelServer`.
- :func:`prometheus`: Debian's Prometheus (``/usr/bin/prometheus``) with a config written here: the given
  targets scraped every second, TSDB in ``<dir>/tsdb``; ready when ``/-/ready`` answers 200. Yields a
  :class:`Prometheus` (``.url`` for ``rollout.metrics.PrometheusReader``).
- :func:`splitter`: nginx between a stable and a canary :class:`ModelServer`
  (``components.deployment.rollout.local.NginxTrafficBackend``, which manages its own nginx process).

Example (the cluster test reuses the first two)::

    with model_servers(run / "servers", {"stable": model_a, "canary": model_b}) as servers:
        addresses = [s.address for s in servers.values()]
        with prometheus(run / "prometheus", addresses) as prom:
            prom.wait_scraped(addresses)
            reader = PrometheusReader(prom.url)

Standard library only. Binaries: $KFP_TABULAR_PROMETHEUS (default /usr/bin/prometheus), $KFP_TABULAR_NGINX
(default /usr/sbin/nginx), the serve env's python $KFP_TABULAR_SERVE_PYTHON (default <repo>/.venv-serve/bin/python).
``make rollout-deps`` installs Debian's prometheus and nginx-light when missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Union

from kfp_tabular.components.common.errors import DeployError

__all__ = [
    "ModelServer",
    "Prometheus",
    "free_port",
    "model_server",
    "model_servers",
    "prometheus",
    "prometheus_binary",
    "serve_python",
    "splitter",
]

REPO = Path(__file__).resolve().parents[2]
PathLike = Union[str, os.PathLike]


def serve_python() -> str:
    """Return the serve env's python: $KFP_TABULAR_SERVE_PYTHON, else <repo>/.venv-serve/bin/python."""
    return os.environ.get("KFP_TABULAR_SERVE_PYTHON") or str(REPO / ".venv-serve" / "bin" / "python")


def prometheus_binary() -> str:
    """Return the Prometheus executable: $KFP_TABULAR_PROMETHEUS, else Debian's /usr/bin/prometheus."""
    return os.environ.get("KFP_TABULAR_PROMETHEUS") or "/usr/bin/prometheus"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------- processes


class _Process:
    """A child process in its own session, output to ``log``, killed with its process group on :meth:`stop`."""

    def __init__(self, name: str, args: Sequence[str], log: Path, env: Optional[dict] = None):
        self.name, self.args, self.log = name, list(args), log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def wait_http(self, url: str, timeout: float) -> None:
        """Poll ``url`` until it answers 200; DeployError (with the log's tail) on exit or timeout."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise DeployError(
                    f"{self.name} exited with {self.popen.returncode} before {url} answered; {self.log}:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise DeployError(f"{self.name}: {url} not ready after {timeout:.0f} s ({last}); {self.log}:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after 5 s."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


# ---------------------------------------------------------------------------------------------- model servers


@dataclasses.dataclass(frozen=True)
class ModelServer:
    """A running model server: where it listens, what it serves, and the PromQL selector of its metrics."""

    model_dir: Path
    model_name: str
    port: int
    sha256: str
    log: Path

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>`` (a Prometheus target, an nginx upstream)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Return the base URL."""
        return f"http://{self.address}"

    @property
    def selector(self) -> str:
        """PromQL label matcher of this server's metrics: ``model_sha256="<sha256 of the model file>"``."""
        return f'model_sha256="{self.sha256}"'

    def predict_path(self) -> str:
        """Return the V1 predict path (``/v1/models/<name>:predict``)."""
        return f"/v1/models/{self.model_name}:predict"


def _server_args(python: str, model_dir: Path, model_name: str, port: int, extra_args: Sequence[str]) -> List[str]:
    return [
        python,
        "-m",
        "kfp_tabular.components.deployment.model_server",
        "--model_dir",
        str(model_dir),
        "--model_name",
        model_name,
        "--http_port",
        str(port),
        *extra_args,
    ]


@contextlib.contextmanager
def model_servers(
    log_dir: PathLike,
    model_dirs: Mapping[str, PathLike],
    *,
    model_name: str = "model",
    extra_args: Sequence[str] = (),
    python: Optional[str] = None,
    timeout: float = 120.0,
) -> Iterator[Dict[str, ModelServer]]:
    """Run one model server per model directory (started together, so their imports overlap).

    Args:
        log_dir: Each server logs to ``<log_dir>/<key>/model_server.log``.
        model_dirs: ``{key: model directory}`` (``model.joblib`` + ``metadata.json``).
        model_name: The name every server serves under (``/v1/models/<model_name>:predict``).
        extra_args: More ``__main__`` flags for every server (e.g. ``["--schema_policy", "flag"]``).
        python: The serve env's python (default :func:`serve_python`).
        timeout: Seconds to wait for all of them to be ready (KServe's import and the models' load).

    Yields:
        ``{key: ModelServer}``, each on a free port of 127.0.0.1, ready.

    Raises:
        DeployError: A server exited or did not become ready; the message has its log's tail. Every server
            started is stopped.
    """
    from kfp_tabular.components.common.artifacts import sha256_file
    from kfp_tabular.components.common.model_dir import find_model_file

    python = python or serve_python()
    if not os.access(python, os.X_OK):
        raise DeployError(f"{python}: the serve env's python is missing (make serve-env)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started: List[_Process] = []
    servers: Dict[str, ModelServer] = {}
    try:
        for key, model_dir in model_dirs.items():
            model_dir = Path(model_dir).resolve()
            sha256 = sha256_file(find_model_file(model_dir))
            port = free_port()
            log = Path(log_dir) / key / "model_server.log"
            args = _server_args(python, model_dir, model_name, port, extra_args)
            started.append(_Process(f"model server {key} ({model_dir.name}) :{port}", args, log, env))
            servers[key] = ModelServer(model_dir, model_name, port, sha256, log)
        deadline = time.monotonic() + timeout
        for process, server in zip(started, servers.values()):
            process.wait_http(f"{server.url}/v1/models/{model_name}", max(1.0, deadline - time.monotonic()))
        yield servers
    finally:
        for process in started:
            process.stop()


@contextlib.contextmanager
def model_server(log_dir: PathLike, model_dir: PathLike, **kwargs) -> Iterator[ModelServer]:
    """Run our model server on ``model_dir`` (serve env) until the block ends; yield a :class:`ModelServer`.

    ``log_dir`` gets ``model_server.log``; ``kwargs`` are :func:`model_servers`'s (``model_name``,
    ``extra_args``, ``python``, ``timeout``).
    """
    with model_servers(Path(log_dir).parent, {Path(log_dir).name: model_dir}, **kwargs) as servers:
        yield next(iter(servers.values()))


# ---------------------------------------------------------------------------------------------- Prometheus


@dataclasses.dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its URL (for ``PrometheusReader``), its directory and log."""

    port: int
    directory: Path
    log: Path

    @property
    def url(self) -> str:
        """Return the base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def targets_up(self) -> dict:
        """Return ``{"host:port": health}`` of the active scrape targets (``up``, ``down``, ``unknown``)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets?state=active", timeout=5) as response:
            data = json.load(response)["data"]["activeTargets"]
        return {t["labels"].get("instance", t.get("scrapeUrl", "")): t.get("health") for t in data}

    def wait_scraped(self, addresses: Sequence[str], timeout: float = 30.0) -> None:
        """Wait until every target in ``addresses`` has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        health: dict = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                health = self.targets_up()
                if all(health.get(a) == "up" for a in addresses):
                    return
            time.sleep(0.2)
        raise DeployError(f"Prometheus {self.url}: targets not all up after {timeout:.0f} s: {health or 'no answer'}")


def prometheus_config(targets: Sequence[str], scrape_interval: str = "1s") -> str:
    """Return the Prometheus configuration scraping ``targets`` (``host:port``) at ``/metrics``."""
    listed = ", ".join(json.dumps(t) for t in targets)
    return (
        "# written by kfp_tabular.pipelines.rollout.rig\n"
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  scrape_timeout: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        "scrape_configs:\n"
        "  - job_name: kfp-tabular-model-servers\n"
        "    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: [{listed}]\n"
    )


@contextlib.contextmanager
def prometheus(
    directory: PathLike,
    targets: Sequence[str],
    *,
    port: int = 0,
    scrape_interval: str = "1s",
    binary: Optional[str] = None,
    timeout: float = 60.0,
) -> Iterator[Prometheus]:
    """Run Prometheus scraping ``targets`` until the block ends; yield a :class:`Prometheus`.

    Args:
        directory: Holds ``prometheus.yml``, ``tsdb/`` and ``prometheus.log``.
        targets: ``host:port`` of each model server.
        port: Listen port on 127.0.0.1 (0: a free one).
        scrape_interval: Prometheus duration (``1s``): also the scrape timeout.
        binary: The executable (default :func:`prometheus_binary`).
        timeout: Seconds to wait for ``/-/ready``.

    Raises:
        DeployError: Prometheus is missing, exited or did not become ready (with its log's tail).
    """
    binary = binary or prometheus_binary()
    if not os.access(binary, os.X_OK):
        raise DeployError(f"{binary}: Prometheus not found (Debian: apt-get install prometheus; `make rollout-deps`)")
    directory = Path(directory).resolve()
    (directory / "tsdb").mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(prometheus_config(targets, scrape_interval), encoding="utf-8")
    port = port or free_port()
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
    process = _Process(f"prometheus :{port}", args, directory / "prometheus.log")
    try:
        process.wait_http(f"http://127.0.0.1:{port}/-/ready", timeout)
        yield Prometheus(port, directory, directory / "prometheus.log")
    finally:
        process.stop()


# ---------------------------------------------------------------------------------------------- the splitter


@contextlib.contextmanager
def splitter(directory: PathLike, stable: ModelServer, canary: ModelServer):
    """Run nginx splitting traffic between ``stable`` and ``canary`` (0% canary to start); yield the backend.

    Yields:
        ``components.deployment.rollout.local.NginxTrafficBackend``: ``.url`` (the split front),
        ``.preview_url`` (candidate only), the ``TrafficBackend`` methods.
    """
    from kfp_tabular.components.deployment.rollout.local import NginxTrafficBackend, Upstream

    backend = NginxTrafficBackend(
        directory, Upstream(stable.address, stable.selector), Upstream(canary.address, canary.selector)
    )
    with backend:
        yield backend
