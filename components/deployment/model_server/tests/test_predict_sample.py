"""``make predict``'s client: sample rows, the three request shapes, and its exit codes."""

from __future__ import annotations

import http.server
import json
import math
import subprocess
import sys
import threading

import pytest

from kfp_tabular.components.deployment.model_server import predict_sample as ps

MODULE = "kfp_tabular.components.deployment.model_server.predict_sample"
ORDER = ["region", "tenure_months", "total_charges", "has_partner"]
INPUTS = [
    {"name": "region", "datatype": "BYTES", "shape": [-1]},
    {"name": "tenure_months", "datatype": "INT64", "shape": [-1]},
    {"name": "total_charges", "datatype": "FP64", "shape": [-1]},
    {"name": "has_partner", "datatype": "BOOL", "shape": [-1]},
]


def test_sample_records_follow_the_feature_order_with_plain_json_values():
    records = ps.sample_records(ORDER, n_rows=60, seed=3)
    assert len(records) == 60
    assert all(list(r) == ORDER for r in records)
    json.dumps(records)  # plain Python values only
    totals = [r["total_charges"] for r in records]
    assert None in totals, "missing values must become None (JSON null)"
    assert not any(isinstance(v, float) and math.isnan(v) for v in totals)
    assert {type(r["tenure_months"]) for r in records} == {int}
    assert {type(r["has_partner"]) for r in records} == {bool}
    assert ps.sample_records(ORDER, 60, seed=3) == records
    assert ps.sample_records(ORDER, 60, seed=4) != records


def test_sample_records_errors():
    with pytest.raises(ValueError, match="customer_id"):
        ps.sample_records(["region", "customer_id"])
    with pytest.raises(ValueError, match="n_rows"):
        ps.sample_records(ORDER, n_rows=0)


def test_build_requests_carry_the_same_rows_in_three_shapes():
    records = ps.sample_records(ORDER, 2, seed=1)
    requests = ps.build_requests(records, INPUTS)
    (p1, lists), (p2, recs), (p3, v2) = requests.values()
    assert (p1, p2, p3) == ("v1", "v1", "v2")
    assert lists == {"instances": [[r[c] for c in ORDER] for r in records]}
    assert recs == {"instances": records}
    assert v2["parameters"] == {"content_type": "pd"}
    assert [(i["name"], i["datatype"], i["shape"]) for i in v2["inputs"]] == [
        (spec["name"], spec["datatype"], [2]) for spec in INPUTS
    ]
    assert v2["inputs"][0]["data"] == [r["region"] for r in records]


def test_labels_of_reads_v1_labels_or_predictions_and_v2_predict():
    assert ps.labels_of("v1", {"predictions": [1, 0]}) == [1, 0]
    assert ps.labels_of("v1", {"predictions": [[0.1, 0.9]], "labels": [1]}) == [1]
    v2 = {"outputs": [{"name": "predict_proba", "data": [0.2, 0.8]}, {"name": "predict", "data": [1]}]}
    assert ps.labels_of("v2", v2) == [1]


def run_client(*args, python=sys.executable, timeout=180):
    return subprocess.run([python, "-m", MODULE, *args], capture_output=True, text=True, timeout=timeout)


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_exits_2_with_a_clear_message():
    out = run_client("--url", f"http://127.0.0.1:{free_port()}", "--timeout", "5")
    assert out.returncode == 2, out
    assert "no model server answered at" in out.stderr
    assert "make serve" in out.stderr


class FakeServer:
    """A stand-in server whose answers the test controls (to reach the client's error paths)."""

    def __init__(self, routes):
        routes_ = routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, body = routes_.get(self.path, (404, {"error": "no route"}))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def fake():
    servers = []

    def make(routes):
        servers.append(FakeServer(routes))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


META = (200, {"name": "churn", "inputs": INPUTS, "outputs": []})


def test_disagreeing_answers_exit_1(fake):
    server = fake(
        {
            "/v2/models/churn": META,
            "/v1/models/churn:predict": (200, {"predictions": [1, 0, 1]}),
            "/v2/models/churn/infer": (200, {"outputs": [{"name": "predict", "data": [0, 0, 0]}]}),
        }
    )
    out = run_client("--url", server.url)
    assert out.returncode == 1, out
    assert "different predictions" in out.stderr


def test_error_status_exits_1_with_the_server_message(fake):
    server = fake({"/v2/models/churn": META, "/v1/models/churn:predict": (400, {"error": "column 'age' missing"})})
    out = run_client("--url", server.url)
    assert out.returncode == 1, out
    assert "HTTP 400" in out.stderr and "column 'age' missing" in out.stderr


def test_unknown_model_exits_1(fake):
    server = fake({})
    out = run_client("--url", server.url, "--model_name", "other")
    assert out.returncode == 1, out
    assert "model 'other' is not served" in out.stderr


def test_model_without_metadata_exits_1(fake):
    server = fake({"/v2/models/churn": (200, {"name": "churn", "inputs": [], "outputs": []})})
    out = run_client("--url", server.url)
    assert out.returncode == 1, out
    assert "no metadata.json" in out.stderr


@pytest.mark.serve
def test_against_the_real_server_all_shapes_agree(server):
    python = str(server.command[0])  # the serve env: what `make predict` uses
    out = run_client("--url", server.url, "--model_name", server.model_name, "--rows", "4", python=python)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{server.log_text()}"
    assert out.stdout.count("== ") == 3
    assert "all 3 request shapes agree" in out.stdout
    responses = [
        json.loads(line[len("response: ") :]) for line in out.stdout.splitlines() if line.startswith("response: ")
    ]
    assert len(responses) == 3 and len(responses[0]["predictions"]) == 4
