"""The local traffic backend: Debian's nginx as the weighted splitter between two real model servers.

:class:`NginxTrafficBackend` runs its own nginx master (``nginx -p <dir> -c <dir>/nginx.conf -e <log>``, pid,
logs and temp paths under ``<dir>``, ``daemon off``; as root its workers run as root too, so nothing needs a
system path or another user) with two upstreams, ``stable`` and ``canary``, the two model servers:

- the front listener (:attr:`url`) splits requests with ``split_clients`` on ``$request_id`` (a fresh random id
  per request, so the split is per request, not per client) in the canary's percentage;
- the preview listener (:attr:`preview_url`) sends every request to the candidate: blue-green checks it there
  before it takes any of the front's traffic;
- every response carries ``X-Served-By: stable|canary`` (who answered) and ``X-Split-Generation: <n>``, the
  configuration generation that routed it.

Each change (:meth:`set_canary_percent`, :meth:`promote`, :meth:`rollback`) writes the configuration, checks it
with ``nginx -t`` and reloads the master (SIGHUP: graceful, in-flight requests finish on the old workers); the
call returns only once ``GET /__split`` on a new connection answers the new generation, i.e. once new requests
follow the new weights. A promotion makes the candidate the stable upstream at 100% (the roles swap, and so do
the PromQL selectors); a rollback puts 100% on stable at once.

The selectors are the ``model_sha256`` labels the model servers put on their metrics: the sha256 of each
model directory's model file (``common.artifacts.sha256_file``, as ``model_server.model.TabularModel.load``
registers it).

Standard library only; this module satisfies ``engine.TrafficBackend``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Optional, Union

from kfp_tabular.components.common.errors import DeployError

__all__ = ["NGINX_BINARY", "NginxTrafficBackend", "Upstream", "model_selector"]

#: Debian's nginx (packages ``nginx-light`` / ``nginx``); override with $KFP_TABULAR_NGINX.
NGINX_BINARY = os.environ.get("KFP_TABULAR_NGINX", "/usr/sbin/nginx")
_SPLIT_PATH = "/__split"


def model_selector(model_dir: Union[str, os.PathLike]) -> str:
    """Return the PromQL label matcher of the metrics a model server serving ``model_dir`` exports.

    Raises:
        DataError: The directory holds no model file or more than one (``common.model_dir.find_model_file``).
    """
    from kfp_tabular.components.common.artifacts import sha256_file
    from kfp_tabular.components.common.model_dir import find_model_file

    return f'model_sha256="{sha256_file(find_model_file(model_dir))}"'


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One model server behind the splitter: its ``host:port`` and the PromQL selector of its metrics."""

    address: str
    selector: str


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NginxTrafficBackend:
    """A real nginx splitting traffic between a stable and a canary model server (see the module docstring).

    Args:
        run_dir: Directory for nginx's prefix: ``nginx.conf``, ``nginx.pid``, ``logs/``, ``temp/``.
        stable: The model server serving today's model.
        canary: The model server serving the candidate.
        port: Front port on 127.0.0.1 (0: a free one).
        preview_port: Blue-green preview port on 127.0.0.1 (0: a free one).
        binary: The nginx executable.
        ready_timeout: Seconds to wait for nginx to answer after a start or a reload.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`): the master and its workers are stopped
    on exit, also when the block fails.
    """

    def __init__(
        self,
        run_dir: Union[str, os.PathLike],
        stable: Upstream,
        canary: Upstream,
        *,
        port: int = 0,
        preview_port: int = 0,
        binary: str = NGINX_BINARY,
        ready_timeout: float = 15.0,
    ):
        self.run_dir = Path(run_dir).resolve()
        self.stable, self.canary = stable, canary
        self.port = port or _free_port()
        self.preview_port = preview_port or _free_port()
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.percent = 0
        self.generation = 0
        self.history: List[str] = []  # one line per applied configuration: generation, weights, upstreams
        self._process: Optional[subprocess.Popen] = None

    # ------------------------------------------------------------------ the TrafficBackend protocol

    @property
    def description(self) -> str:
        """Name the splitter and its two upstreams (for logs and the analysis record)."""
        return f"nginx 127.0.0.1:{self.port} (stable {self.stable.address}, canary {self.canary.address})"

    @property
    def stable_selector(self) -> str:
        """Return the PromQL label matcher of the stable model server's metrics."""
        return self.stable.selector

    @property
    def canary_selector(self) -> str:
        """Return the PromQL label matcher of the canary model server's metrics."""
        return self.canary.selector

    @property
    def url(self) -> str:
        """The front URL: traffic split between stable and canary."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def preview_url(self) -> str:
        """The preview URL: the candidate only."""
        return f"http://127.0.0.1:{self.preview_port}"

    def set_canary_percent(self, percent: int) -> None:
        """Send ``percent`` % of new requests to the canary; returns once new requests follow it."""
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise DeployError(f"{self.description}: canary percent must be an integer in 0..100, got {percent!r}")
        self._apply(percent)

    def promote(self) -> None:
        """Make the candidate the stable upstream and send it 100% of the traffic."""
        self.stable, self.canary = self.canary, self.stable
        self._apply(0, note="promoted: the candidate is stable")

    def rollback(self, reason: str) -> None:
        """Send 100% of the traffic to stable at once."""
        self._apply(0, note=f"rolled back: {reason}")

    def stage_preview(self) -> str:
        """Blue-green: the candidate keeps 0% of the front's traffic and answers alone on :attr:`preview_url`."""
        self._apply(0, note="preview")
        return self.preview_url

    # ------------------------------------------------------------------ process

    def start(self) -> "NginxTrafficBackend":
        """Write the configuration (0% canary), start nginx and wait until it answers."""
        if not os.access(self.binary, os.X_OK):
            raise DeployError(
                f"{self.binary}: nginx not found or not executable (Debian: apt-get install nginx-light; "
                "`make rollout-deps`)"
            )
        for sub in ("logs", "temp"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self.generation = 1
        self._write_conf(0)
        self._check_conf()
        log = open(self.run_dir / "logs" / "nginx.out", "ab")
        self._process = subprocess.Popen(
            self._base_args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self.percent = 0
        self.history.append(self._line(0, "started"))
        self._wait_generation(self.generation)
        return self

    def stop(self) -> None:
        """Stop nginx (SIGQUIT: graceful; SIGKILL to its process group after 5 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(5)

    def __enter__(self) -> "NginxTrafficBackend":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ configuration

    def _base_args(self) -> List[str]:
        return [
            self.binary,
            "-p",
            f"{self.run_dir}/",
            "-c",
            str(self.run_dir / "nginx.conf"),
            "-e",
            str(self.run_dir / "logs" / "error.log"),
        ]

    def _apply(self, percent: int, note: str = "") -> None:
        if self._process is None or self._process.poll() is not None:
            raise DeployError(f"{self.description}: nginx is not running (see {self.run_dir / 'logs'})")
        self.generation += 1
        self._write_conf(percent)
        self._check_conf()
        old_workers = self._workers()
        self._process.send_signal(signal.SIGHUP)
        self._wait_retired(old_workers)
        self._wait_generation(self.generation)
        self.percent = percent
        self.history.append(self._line(percent, note))

    def _line(self, percent: int, note: str) -> str:
        line = (
            f"generation {self.generation}: canary {percent}% ({self.canary.address}), stable {100 - percent}% "
            f"({self.stable.address})"
        )
        return f"{line}: {note}" if note else line

    def _write_conf(self, percent: int) -> None:
        conf = self.run_dir / "nginx.conf"
        tmp = conf.with_suffix(".tmp")
        tmp.write_text(self.render(percent), encoding="utf-8")
        os.replace(tmp, conf)

    def render(self, percent: int) -> str:
        """Return the nginx configuration sending ``percent`` % of the front's requests to the canary."""
        run = self.run_dir
        if percent <= 0:
            split = "* stable;"
        elif percent >= 100:
            split = "* canary;"
        else:
            split = f"{percent}% canary; * stable;"
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {run}/temp/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        headers = (
            f"        add_header X-Served-By $pool always;\n"
            f"        add_header X-Split-Generation {self.generation} always;\n"
        )
        proxy = (
            "        proxy_http_version 1.1;\n"
            '        proxy_set_header Connection "";\n'
            "        proxy_read_timeout 60s;\n"
            "        proxy_next_upstream off;\n"
        )
        return f"""# written by kfp_tabular.components.deployment.rollout.local (generation {self.generation})
{user}daemon off;
master_process on;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format split '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent $request_time '
                     'pool=$pool upstream=$upstream_addr generation={self.generation}';
    access_log {run}/logs/access.log split;
{temp}
    client_max_body_size 16m;
    upstream stable {{ server {self.stable.address}; keepalive 32; }}
    upstream canary {{ server {self.canary.address}; keepalive 32; }}
    split_clients "$request_id" $pool {{ {split} }}
    server {{
        listen 127.0.0.1:{self.port};
        location = {_SPLIT_PATH} {{
            default_type text/plain;
            add_header X-Split-Generation {self.generation} always;
            return 200 "generation={self.generation} canary={percent}%\\n";
        }}
        location / {{
            proxy_pass http://$pool;
{proxy}{headers}        }}
    }}
    server {{
        listen 127.0.0.1:{self.preview_port};
        location / {{
            proxy_pass http://canary;
{proxy}{headers.replace("$pool", "canary")}        }}
    }}
}}
"""

    def _check_conf(self) -> None:
        result = subprocess.run([*self._base_args(), "-t", "-q"], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise DeployError(
                f"{self.run_dir / 'nginx.conf'}: nginx -t refused the configuration: "
                f"{(result.stderr or result.stdout).strip()}"
            )

    def _workers(self) -> List[int]:
        """Return the pids of the master's worker processes (Linux /proc)."""
        master = self._process.pid if self._process is not None else -1
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(entry))
        return pids

    def _wait_retired(self, pids: List[int]) -> None:
        """Wait until the old workers stopped accepting: gone, or retitled "worker process is shutting down".

        After a reload nginx's master starts the new workers, then tells the old ones to quit ~100 ms later;
        until then both accept new connections, so a probe answered by a new worker proves nothing yet.
        """
        deadline = time.monotonic() + self.ready_timeout
        pending = list(pids)
        while pending and time.monotonic() < deadline:
            still = []
            for pid in pending:
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if title and b"shutting down" not in title:
                    still.append(pid)
            pending = still
            if pending:
                time.sleep(0.01)
        if pending:
            raise DeployError(
                f"{self.description}: nginx's old worker(s) {pending} still accepting {self.ready_timeout:.0f} s "
                "after a reload"
            )

    def _wait_generation(self, generation: int) -> None:
        """Poll ``/__split`` on new connections until it answers ``generation`` (the reload took)."""
        deadline = time.monotonic() + self.ready_timeout
        seen = "no answer"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise DeployError(
                    f"{self.description}: nginx exited with {self._process.returncode}; see "
                    f"{self.run_dir / 'logs' / 'error.log'}"
                )
            try:
                with urllib.request.urlopen(self.url + _SPLIT_PATH, timeout=2) as response:
                    seen = response.headers.get("X-Split-Generation", "none")
                    if seen == str(generation):
                        return
            except (urllib.error.URLError, OSError) as exc:
                seen = f"{type(exc).__name__}: {exc}"
            time.sleep(0.02)
        raise DeployError(
            f"{self.description}: configuration generation {generation} not serving after "
            f"{self.ready_timeout:.0f} s (last answer: {seen}); see {self.run_dir / 'logs' / 'error.log'}"
        )
