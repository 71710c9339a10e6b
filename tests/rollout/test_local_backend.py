"""NginxTrafficBackend and the load generator against two tiny real HTTP servers (no model servers needed).

Real nginx (Debian's, ``make rollout-deps``): skipped without it, failed when ``CI`` is set.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from kfp_tabular.components.common.errors import DeployError


def _require_nginx() -> None:
    from kfp_tabular.components.deployment.rollout.local import NGINX_BINARY

    if not os.access(NGINX_BINARY, os.X_OK):
        reason = f"{NGINX_BINARY} missing (make rollout-deps)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)


class _Upstream:
    """A threaded HTTP server answering its name; ``delay`` seconds per request; ``status`` to answer."""

    def __init__(self, name: str, delay: float = 0.0, status: int = 200):
        outer = self
        self.name, self.delay, self.status, self.hits = name, delay, status, 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.hits += 1
                if outer.delay:
                    time.sleep(outer.delay)
                body = outer.name.encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstreams():
    a, b = _Upstream("A"), _Upstream("B")
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def backend(tmp_path, upstreams):
    _require_nginx()
    from kfp_tabular.components.deployment.rollout.local import NginxTrafficBackend, Upstream

    a, b = upstreams
    with NginxTrafficBackend(
        tmp_path / "nginx", Upstream(a.address, 'model_sha256="a"'), Upstream(b.address, 'model_sha256="b"')
    ) as nginx:
        yield nginx


def _ask(url: str, n: int) -> Counter:
    counts: Counter = Counter()
    for _ in range(n):
        with urllib.request.urlopen(url + "/v1/models/m:predict", timeout=5) as response:
            counts[(response.headers["X-Served-By"], response.read().decode())] += 1
    return counts


def test_split_follows_each_step_as_soon_as_the_call_returns(backend):
    assert _ask(backend.url, 50) == Counter({("stable", "A"): 50})
    backend.set_canary_percent(25)
    counts = _ask(backend.url, 400)
    assert set(counts) == {("stable", "A"), ("canary", "B")}
    assert 60 <= counts[("canary", "B")] <= 140  # 100 expected; binomial sd 8.7
    backend.set_canary_percent(100)
    # no request routed by the previous configuration once the call returned (old workers retired first)
    assert _ask(backend.url, 100) == Counter({("canary", "B"): 100})
    assert backend.percent == 100 and backend.generation == 3
    with urllib.request.urlopen(backend.url + "/__split", timeout=5) as response:
        assert response.headers["X-Split-Generation"] == "3"


def test_promote_swaps_roles_and_rollback_is_all_stable_at_once(backend):
    backend.set_canary_percent(50)
    backend.promote()
    assert backend.stable_selector == 'model_sha256="b"' and backend.canary_selector == 'model_sha256="a"'
    assert _ask(backend.url, 50) == Counter({("stable", "B"): 50})
    backend.set_canary_percent(50)
    backend.rollback("test")
    assert _ask(backend.url, 50) == Counter({("stable", "B"): 50})
    assert backend.history[-1].endswith("rolled back: test")


def test_preview_serves_only_the_candidate_while_the_front_stays_on_stable(backend):
    url = backend.stage_preview()
    assert url == backend.preview_url != backend.url
    assert _ask(url, 20) == Counter({("canary", "B"): 20})
    assert _ask(backend.url, 20) == Counter({("stable", "A"): 20})


def test_reloads_under_load_lose_no_request(backend):
    from kfp_tabular.pipelines.rollout.load import LoadGenerator

    rows = [[1, "x"], [2, "y"]]
    with LoadGenerator(backend.url, "/v1/models/m:predict", rows, rate=100, threads=8) as load:
        for percent in (10, 50, 90, 0, 100, 0):
            backend.set_canary_percent(percent)
            time.sleep(0.2)
        counts = load.stop()
    assert counts.role("stable")["ok"] == counts.total("stable") > 0
    assert counts.role("canary")["ok"] == counts.total("canary") > 0
    assert counts.total("none") == 0, counts.errors


def test_bad_percent_is_refused(backend):
    with pytest.raises(DeployError, match="canary percent must be an integer in 0..100, got 101"):
        backend.set_canary_percent(101)
    assert backend.percent == 0


def test_nginx_is_gone_after_the_block(tmp_path, upstreams):
    _require_nginx()
    from kfp_tabular.components.deployment.rollout.local import NginxTrafficBackend, Upstream

    a, b = upstreams
    with NginxTrafficBackend(tmp_path / "n", Upstream(a.address, "a"), Upstream(b.address, "b")) as nginx:
        master = nginx._process.pid
        workers = nginx._workers()
        url = nginx.url
    assert workers
    for pid in [master, *workers]:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/__split", timeout=2)


def test_load_generator_is_bounded_and_counts_outcomes(upstreams):
    from kfp_tabular.pipelines.rollout.load import LoadGenerator, replay

    a, _ = upstreams
    counts = replay(f"http://{a.address}", "/p", [[1]], rate=50, duration=1.0, batch=3)
    assert 40 <= counts.sent <= 51 and counts.skipped == 0
    assert counts.role("none")["ok"] == counts.sent  # no splitter: no X-Served-By

    slow = _Upstream("S", delay=0.5)
    try:
        generator = LoadGenerator(f"http://{slow.address}", "/p", [[1]], rate=50, duration=1.0, threads=2)
        generator.start()
        counts = generator.join()
    finally:
        slow.close()
    assert counts.sent <= 6 and counts.skipped > 30  # two workers, 0.5 s each: the rest is skipped, not queued

    failing = _Upstream("F", status=503)
    try:
        counts = replay(f"http://{failing.address}", "/p", [[1]], rate=20, duration=0.5)
    finally:
        failing.close()
    assert counts.role("none")["server_error"] == counts.sent > 0


def test_load_generator_counts_refused_connections_as_transport_errors():
    from kfp_tabular.pipelines.rollout.load import replay
    from kfp_tabular.pipelines.rollout.rig import free_port

    counts = replay(f"http://127.0.0.1:{free_port()}", "/p", [[1]], rate=20, duration=0.3)
    assert counts.role("none")["transport_error"] == counts.sent > 0
