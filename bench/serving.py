"""The model server against a no-op KServe model on the same ModelServer, in one run: throughput and latency.

One server process (the serve env) registers both the tabular model (``model_server.model.TabularModel``, the
schema check and the fast path included) and a no-op ``kserve.Model`` that answers a fixed prediction, on one
``HostModelServer`` bound to 127.0.0.1. The client (this process, the pipeline env) sends the same single-row
requests to both over keep-alive HTTP: V1 records and V2 ``content_type: pd``, sequentially and from 8
concurrent clients, then one 1,000-row batch. It prints requests/s, p50 and p99 for each, and the ratios
tabular / no-op (throughput) measured in this run. Absolute figures depend on the machine and its load (the
script prints ``uptime``); compare the ratios. Bounded: a fixed number of requests, a timeout on each.

    .venv/bin/python bench/serving.py                         # trains a small churn model first
    .venv/bin/python bench/serving.py --model_dir local_outputs/runs/<run>/train/model
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVE_PYTHON = Path(os.environ.get("KFP_TABULAR_SERVE_PYTHON") or REPO / ".venv-serve" / "bin" / "python")
CLIENTS = 8


# ------------------------------------------------------------------------------------ server (serve env)


def serve(model_dir: str, port: int, model_threads: int) -> None:
    """Serve the tabular model as ``churn`` and a no-op model as ``noop`` on one ModelServer."""
    from kserve import Model
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    from kfp_tabular.components.deployment.model_server.server import HostModelServer, TabularModel

    class NoopModel(Model):
        """Answers a fixed prediction without looking at the request."""

        def __init__(self, name: str):
            super().__init__(name)
            self.ready = True

        def predict(self, payload, headers=None):
            if isinstance(payload, InferRequest):
                output = InferOutput(name="predict", shape=[1], datatype="INT64", data=[0])
                return InferResponse(response_id=payload.id or "noop", model_name=self.name, infer_outputs=[output])
            return {"predictions": [0]}

    model = TabularModel("churn", model_dir, predict_proba=False, model_threads=model_threads or None)
    model.load()
    server = HostModelServer(host="127.0.0.1", http_port=port, enable_grpc=False, workers=1)
    server.start([model, NoopModel("noop")])


# ------------------------------------------------------------------------------------ client (this env)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_model(work: Path) -> Path:
    """Train the default churn model on 2,000 generated rows (as the model server's tests do)."""
    from kfp_tabular.components.data_processing.synthetic_data.core import generate
    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    sys.path.insert(0, str(REPO / "components" / "deployment" / "model_server" / "tests"))
    from conftest import CHURN_SCHEMA, LABEL

    generate(2000, seed=11).to_parquet(work / "train.parquet", index=False)
    (work / "schema.pbtxt").write_text(CHURN_SCHEMA, encoding="utf-8")
    return Path(train(TrainRequest(LABEL), work / "train.parquet", work / "schema.pbtxt", work / "model").model_dir)


def sample_rows(order: list, n: int) -> list:
    """``n`` generated rows as JSON-ready records (null for a missing value)."""
    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    frame = generate(max(n, 10), seed=123)[order].head(n)
    plain = frame.astype(object).where(frame.notna(), None)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for _, row in plain.iterrows()]


def v1_body(rows: list) -> bytes:
    """Encode a V1 records request."""
    return json.dumps({"instances": rows}).encode()


def v2_body(rows: list, inputs: list) -> bytes:
    """Encode a V2 request with one input per column (content_type pd)."""
    tensors = [
        {"name": i["name"], "shape": [len(rows)], "datatype": i["datatype"], "data": [r[i["name"]] for r in rows]}
        for i in inputs
    ]
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": tensors}).encode()


def path_for(protocol: str, model: str) -> str:
    """Return the inference route of a model."""
    return f"/v1/models/{model}:predict" if protocol == "v1" else f"/v2/models/{model}/infer"


def run_load(port: int, path: str, bodies: list, clients: int, per_client: int) -> dict:
    """``clients`` threads, each with its own keep-alive connection, sending ``per_client`` requests."""
    latencies: list = []
    errors: list = []
    lock = threading.Lock()

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, failed = [], []
        for i in range(per_client):
            body = bodies[(index * per_client + i) % len(bodies)]
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                failed.append(response.status)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": len(errors),
        "n": len(latencies),
    }


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until the tabular model is ready, or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/models/churn/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit("server not ready in time")


def main() -> int:
    """Run the comparison and print the table of figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", help="a model directory (default: train a small churn model)")
    parser.add_argument("--sequential", type=int, default=300, help="sequential requests per model and protocol")
    parser.add_argument("--per_client", type=int, default=250, help="requests per concurrent client")
    parser.add_argument("--model_threads", type=int, default=1, help="the server's --model_threads (0: default)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.model_dir, args.port, args.model_threads)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else train_model(Path(tmp))
        meta = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
        order = meta["feature_order"]
        port = free_port()
        log = open(Path(tmp) / "server.log", "wb")
        command = [str(SERVE_PYTHON), __file__, "--serve", "--model_dir", str(model_dir), "--port", str(port)]
        command += ["--model_threads", str(args.model_threads)]
        proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, proc)
            return report(port, order, args)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def report(port: int, order: list, args) -> int:
    """Measure every phase for both models, print the figures and ratios; 1 when a request failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/v2/models/churn")
    inputs = json.loads(conn.getresponse().read())["inputs"]
    rows = sample_rows(order, 1000)
    singles = {"v1": [v1_body([r]) for r in rows[:200]], "v2": [v2_body([r], inputs) for r in rows[:200]]}
    batch = {"v1": [v1_body(rows)], "v2": [v2_body(rows, inputs)]}
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} CPUs; before: {uptime}")
    for protocol in ("v1", "v2"):  # warm-up
        for model in ("churn", "noop"):
            run_load(port, path_for(protocol, model), singles[protocol], 2, 50)
    phases = [
        ("sequential", 1, args.sequential, singles),
        (f"{CLIENTS} clients", CLIENTS, args.per_client, singles),
        ("1,000-row batch", 1, 5, batch),
    ]
    print(f"{'protocol':8} {'phase':16} {'model':6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}   ratio req/s")
    failed = 0
    for protocol in ("v1", "v2"):
        for phase, clients, per_client, bodies in phases:
            figures = {}
            for model in ("churn", "noop"):
                figures[model] = run_load(port, path_for(protocol, model), bodies[protocol], clients, per_client)
                failed += figures[model]["errors"]
            for model in ("churn", "noop"):
                f = figures[model]
                ratio = f"{figures['churn']['rps'] / figures['noop']['rps']:.2f}x" if model == "churn" else ""
                errors = f"  ({f['errors']} errors)" if f["errors"] else ""
                print(
                    f"{protocol:8} {phase:16} {model:6} {f['rps']:8.1f} {f['p50']:8.2f} {f['p99']:8.2f}   "
                    f"{ratio}{errors}"
                )
    print(f"after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
