"""PrometheusReader against a REAL Prometheus scraping a real exporter of our model server's metrics.

The exporter is ``prometheus_client.start_http_server`` serving the model server's own metrics module
(``components/deployment/model_server/metrics.py``, so the metric names and buckets are the server's), run in the
serve environment (``.venv-serve``, where prometheus_client lives) and driven over stdin: the test sends known
requests, latencies and scores for revisions told apart by ``model_sha256``. Prometheus (the Debian package's
binary) scrapes it every second with its own temporary storage on a free port, and is killed at the end.

Checked against what was sent (docs/rollouts.md, "Counting over a window"): counts, errors, success rates and
score bins exact (where plain ``increase()`` extrapolates 250 to ~268 and reads 0 for a series born by a burst);
a restarted server's reset counter within one scrape interval's traffic and the extrapolation bound; p99 in the
latency bucket observed; every template (kfp-tabular, kserve-knative) valid PromQL for this Prometheus.
Also: errors name the URL and the query (unreachable, bad PromQL, non-success status, NaN counts); a revision
without requests has no p99 and empty bins. Nothing is skipped: a missing binary or serve env fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.rollout.metrics import (
    BIN_EDGES,
    TEMPLATES,
    PrometheusReader,
    QueryTemplates,
    Window,
)

REPO = Path(__file__).resolve().parents[4]
SERVE_PYTHON = Path(os.environ.get("KFP_TABULAR_SERVE_PYTHON") or REPO / ".venv-serve" / "bin" / "python")
SCRAPE = 1.0
STABLE, CANARY, LATE, BURST, RESET = ("a" * 64, "b" * 64, "c" * 64, "d" * 64, "f" * 64)
TICKS, TICK = 25, 0.2  # 5 s of traffic
#: The requests query the canned answers are asked (as the errors quote it).
REQUESTS_QUERY = repr(TEMPLATES["kfp-tabular"].render("requests", 'model_sha256="x"', "60s"))

EXPORTER = r"""
import json, sys
from prometheus_client import start_http_server
from kfp_tabular.components.deployment.model_server import metrics as m

server, _ = start_http_server(0, addr="127.0.0.1")
print(server.server_port, flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    for name, sha in cmd.get("register", []):
        m.register_model(name, sha)
    for name, sha in cmd.get("zero", []):  # the series exist at 0 before any traffic
        for outcome in ("ok", "client_error", "server_error"):
            m.REQUESTS.labels(model_name=name, model_sha256=sha, protocol="v1", outcome=outcome)
        m.LATENCY.labels(model_name=name, model_sha256=sha, protocol="v1")
        m.SCORES.labels(model_name=name, model_sha256=sha)
    for name, sha in cmd.get("restart", []):  # a restarted server: its counters start again from zero
        m.REQUESTS.remove(name, sha, "v1", "ok")
        m.REQUESTS.labels(model_name=name, model_sha256=sha, protocol="v1", outcome="ok")
    for name, status, seconds in cmd.get("requests", []):
        m.observe_request(name, "v1", status, seconds)
    for name, scores in cmd.get("scores", []):
        m.observe_scores(name, scores)
    print("ok", flush=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prometheus_binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if not found:
        pytest.fail(
            "the prometheus binary is missing: install Debian's package "
            "(sudo apt-get install -y --no-install-recommends prometheus, part of make test's prerequisites)",
            pytrace=False,
        )
    return found


class Exporter:
    def __init__(self, log_path: Path) -> None:
        if not SERVE_PYTHON.exists():
            pytest.fail(f"the serve environment is missing: {SERVE_PYTHON} (make serve-env)", pytrace=False)
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [str(SERVE_PYTHON), "-c", EXPORTER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=REPO,
        )
        first = self.proc.stdout.readline()
        if not first.strip().isdigit():
            self.close()
            pytest.fail(f"the exporter did not start: {log_path.read_text()[-2000:]}", pytrace=False)
        self.port = int(first)

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _score_bin(score: float) -> int:
    return next(i for i, edge in enumerate(BIN_EDGES) if score <= edge)


# Per tick: stable 10 requests ok at 4 ms; canary 4 requests at 300 ms (1 in 4 ticks a 500, 1 in 5 a 400).
STABLE_SCORES = [0.02, 0.05, 0.11, 0.33, 0.33, 0.47, 0.5, 0.61, 0.9, 1.0]  # 0.05 and 1.0 sit on bucket edges
CANARY_SCORES = [0.7, 0.8, 0.95]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    binary = _prometheus_binary()
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter = Exporter(tmp / "exporter.log")
    port = _free_port()
    (tmp / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {SCRAPE:g}s, evaluation_interval: {SCRAPE:g}s}}\n"
        f"scrape_configs:\n  - job_name: exporter\n    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n"
    )
    log = open(tmp / "prometheus.log", "w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        exporter.send(
            register=[["stable", STABLE], ["canary", CANARY], ["late", LATE], ["burst", BURST], ["reset", RESET]],
            zero=[["stable", STABLE], ["canary", CANARY], ["reset", RESET]],
        )
        deadline = time.time() + 20
        while True:  # ready, and the zero series scraped at least twice
            try:
                found = _get(f"{url}/api/v1/query?query=count_over_time(kfp_tabular_requests_total[10s])")
                if any(float(s["value"][1]) >= 2 for s in found["data"]["result"]):
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                pytest.fail(f"Prometheus did not scrape the exporter: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        start = time.time()
        time.sleep(2.0 * SCRAPE)  # a zero sample inside the window before any traffic
        sent = {name: [0, 0, 0] for name in ("stable", "canary", "late", "burst", "reset")}  # ok, 4xx, 5xx
        bins = {"stable": [0] * len(BIN_EDGES), "canary": [0] * len(BIN_EDGES)}
        for tick in range(TICKS):
            requests, scores = [], []
            requests += [["stable", 200, 0.004]] * 10
            scores.append(["stable", STABLE_SCORES])
            canary_status = [200, 200, 500 if tick % 4 == 0 else 200, 400 if tick % 5 == 0 else 200]
            requests += [["canary", status, 0.3] for status in canary_status]
            scores.append(["canary", (CANARY_SCORES + [0.99])[: canary_status.count(200)]])
            requests += [["late", 200, 0.01]] * 5  # born inside the window, steady traffic
            if tick == 0:
                requests += [["burst", 200, 0.01]] * 40  # born inside the window, a single burst
            if tick == 10:
                requests += [["burst", 500, 0.01]]  # one server error: its series is born with it
            requests += [["reset", 200, 0.01]] * 4
            exporter.send(requests=requests, scores=scores, restart=[["reset", RESET]] if tick == 15 else [])
            for name, status, _ in requests:
                if name in sent:
                    sent[name][{200: 0, 400: 1, 500: 2}[status]] += 1
            for name, values in scores:
                for value in values:
                    bins[name][_score_bin(value)] += 1
            time.sleep(TICK)
        time.sleep(2.5 * SCRAPE)  # the last in-window sample holds every request
        window = Window(start, time.time())
        time.sleep(1.5 * SCRAPE)  # and Prometheus has it
        reader = PrometheusReader(url)
        read = {
            name: reader.read("canary" if name == "canary" else "stable", f'model_sha256="{sha}"', window)
            for name, sha in (
                ("stable", STABLE),
                ("canary", CANARY),
                ("late", LATE),
                ("burst", BURST),
                ("reset", RESET),
            )
        }
        yield {"read": read, "sent": sent, "bins": bins, "window": window, "url": url, "reader": reader}
    finally:
        proc.kill()
        proc.wait(10)
        log.close()
        exporter.close()


def _bound(window: Window) -> float:
    return window.seconds / (window.seconds - 2.2 * SCRAPE)


def test_counts_are_exact(scenario) -> None:
    read, sent, window = scenario["read"], scenario["sent"], scenario["window"]
    for name in ("stable", "canary", "late", "burst", "reset"):  # the figures, with pytest -s
        print(f"{name}: sent {sum(sent[name])}, read {read[name].requests:.2f} over {window.seconds:.2f}s")
    for name in ("stable", "canary"):
        total = sum(sent[name])
        assert read[name].requests == total, (name, read[name].requests, total)
        assert read[name].server_errors == sent[name][2] and read[name].client_errors == sent[name][1]
        assert read[name].success_rate == pytest.approx(1 - sent[name][2] / total, rel=1e-12)
    assert read["stable"].server_errors == 0 and read["stable"].success_rate == 1.0
    assert sent["canary"] == [88, 5, 7] and read["canary"].success_rate == pytest.approx(0.93)
    # What increase() would have said: extrapolated towards the window's end, more than was sent.
    reader, rng = scenario["reader"], window.promql_range()
    plain = reader.query(f'sum(increase(kfp_tabular_requests_total{{model_sha256="{STABLE}"}}[{rng}]))', window.end)
    print(f"plain increase(): stable {plain[0]['value']:.2f} of 250")
    assert sum(sent["stable"]) <= plain[0]["value"] <= sum(sent["stable"]) * _bound(window)


def test_a_reset_counter_is_counted_with_increase(scenario) -> None:
    # The server restarted after 15 ticks (60 requests): what it counted after its last scrape is lost to any
    # method (at most one scrape interval: 5 ticks of 4); increase() counts across the reset, extrapolating.
    got, total = scenario["read"]["reset"].requests, sum(scenario["sent"]["reset"])
    assert total - 4 * 5 <= got <= total * _bound(scenario["window"]), got


def test_p99_in_the_bucket_observed(scenario) -> None:
    assert 0.002 < scenario["read"]["stable"].p99_seconds <= 0.005
    assert 0.2 < scenario["read"]["canary"].p99_seconds <= 0.5


def test_score_bins_are_the_sent_histogram(scenario) -> None:
    for name in ("stable", "canary"):
        got = scenario["read"][name].score_counts
        sent = scenario["bins"][name]
        assert len(got) == len(BIN_EDGES) == 21
        assert [i for i, c in enumerate(got) if c > 0] == [i for i, c in enumerate(sent) if c > 0], name
        total_got, total_sent = sum(got), sum(sent)
        assert [c / total_got for c in got] == pytest.approx([c / total_sent for c in sent], rel=1e-9, abs=1e-12)
    # Bucket edges are inclusive upper bounds: 0.05 counts in the first bin, 1.0 in the twentieth, none above.
    stable = scenario["read"]["stable"].score_counts
    assert stable[0] > 0 and stable[19] > 0 and stable[20] == 0


def test_series_born_inside_the_window_count_from_zero(scenario) -> None:
    read, sent = scenario["read"], scenario["sent"]
    # A series born in the window is counted from zero, exactly: steady traffic and a burst alike.
    assert read["late"].requests == sum(sent["late"]) == 125
    assert (read["burst"].requests, read["burst"].server_errors) == (41.0, 1.0)
    assert read["burst"].success_rate == pytest.approx(40 / 41)
    # What plain increase() makes of them: the burst (and the one error) vanish in the series' first sample.
    window, reader = scenario["window"], scenario["reader"]
    rng = window.promql_range()
    plain = reader.query(f'sum(increase(kfp_tabular_requests_total{{model_sha256="{BURST}"}}[{rng}]))', window.end)
    assert plain[0]["value"] == 0.0
    plain_late = reader.query(f'sum(increase(kfp_tabular_requests_total{{model_sha256="{LATE}"}}[{rng}]))', window.end)
    print(f"plain increase(): burst 0 of 41, late {plain_late[0]['value']:.2f} of 125")


def test_a_revision_without_requests(scenario) -> None:
    nobody = scenario["reader"].read("stable", 'model_sha256="' + "e" * 64 + '"', scenario["window"])
    assert (nobody.requests, nobody.server_errors, nobody.p99_seconds) == (0.0, 0.0, None)
    assert nobody.score_counts == (0.0,) * 21 and nobody.success_rate is None


def test_bad_promql_names_url_and_query(scenario) -> None:
    broken = QueryTemplates(**{**TEMPLATES["kfp-tabular"].__dict__, "requests": "sum(rate({selector}[{window}]"})
    reader = PrometheusReader(scenario["url"], templates=broken)
    with pytest.raises(DeployError) as info:
        reader.read("canary", 'model_sha256="x"', scenario["window"])
    message = str(info.value)
    assert scenario["url"] + "/api/v1/query" in message and "sum(rate(model_sha256=" in message
    assert "HTTP 400" in message and "bad_data" in message


def test_every_template_is_valid_promql(scenario) -> None:
    for name, templates in TEMPLATES.items():
        reader = PrometheusReader(scenario["url"], templates)
        got = reader.read("canary", 'namespace_name="ns",revision_name="r-00001"', scenario["window"])
        assert (got.requests, got.p99_seconds, got.predictions) == (0.0, None, 0.0), name
    ours = PrometheusReader(scenario["url"], TEMPLATES["kserve-knative"])
    assert ours.read("stable", f'model_sha256="{STABLE}"', scenario["window"]).predictions == 250


def test_unreachable_prometheus_names_url_and_query() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(DeployError) as info:
        PrometheusReader(url, timeout=2).read("canary", 'model_sha256="x"', Window(0, 60))
    message = str(info.value)
    assert f"{url}/api/v1/query" in message and "kfp_tabular_requests_total" in message and "unreachable" in message


class _Canned(BaseHTTPRequestHandler):
    answer: bytes = b""
    status: int = 200

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def canned():
    server = HTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "answer", "fragment"),
    [
        (200, b'{"status": "error", "errorType": "timeout", "error": "query timed out"}', "status 'error': timeout"),
        (200, b"<html>proxy</html>", "expected a JSON answer"),
        (503, b"upstream down", "HTTP 503"),
        (200, b'{"status": "success", "data": {"resultType": "matrix", "result": []}}', "result type 'matrix'"),
        (
            200,
            b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}}',
            "expected a count >= 0, got nan",
        ),
    ],
)
def test_non_success_answers_name_url_and_query(canned, status, answer, fragment) -> None:
    _Canned.status, _Canned.answer = status, answer
    url = f"http://127.0.0.1:{canned.server_port}"
    with pytest.raises(DeployError) as info:
        PrometheusReader(url).read("canary", 'model_sha256="x"', Window(0, 60))
    message = str(info.value)
    assert fragment in message and f"{url}/api/v1/query" in message and f"query {REQUESTS_QUERY[:80]}" in message


def test_nan_p99_is_no_latency(canned) -> None:
    _Canned.status = 200
    answers = iter(
        [
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"5"]}]}}',
            b'{"status":"success","data":{"resultType":"vector","result":[]}}',
            b'{"status":"success","data":{"resultType":"vector","result":[]}}',
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}',
            b'{"status":"success","data":{"resultType":"vector","result":[]}}',
        ]
    )

    class Sequence(_Canned):
        def do_POST(self) -> None:  # noqa: N802
            type(self).answer = next(answers)
            super().do_POST()

    canned.RequestHandlerClass = Sequence
    got = PrometheusReader(f"http://127.0.0.1:{canned.server_port}").read("canary", 'x="y"', Window(0, 60))
    assert got.requests == 5 and got.p99_seconds is None and got.score_counts == (0.0,) * 21


def test_reader_arguments_checked() -> None:
    with pytest.raises(ConfigError, match="prometheus_url: expected an http"):
        PrometheusReader("localhost:9090")
    reader = PrometheusReader("http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="role: expected one of stable, canary"):
        reader.read("blue", 'x="y"', Window(0, 1))
    with pytest.raises(ConfigError, match="canary selector"):
        reader.read("canary", " ", Window(0, 1))
    with pytest.raises(ConfigError, match="window: expected end > start"):
        Window(5, 5)
    assert Window(0, 90).promql_range() == "90s" and Window(0, 2.5).promql_range() == "2500ms"
