"""Fixtures: a trained churn model, the collector and the model server as real processes in ``.venv-serve``.

Without ``.venv-serve`` the process tests skip (with ``CI`` set they fail). A failing test gets the logs of the
processes it started appended to its report.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from kfp_tabular.components.monitoring.collector.launch import CollectorProcess, free_port, parse_metrics

REPO = Path(__file__).resolve().parents[4]
SERVE_PYTHON = Path(os.environ.get("KFP_TABULAR_SERVE_PYTHON") or REPO / ".venv-serve" / "bin" / "python")
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
LABEL = "churned"
CHURN_SCHEMA = """
feature { name: "tenure_months" type: INT }
feature { name: "monthly_charges" type: FLOAT }
feature { name: "total_charges" type: FLOAT }
feature { name: "age" type: FLOAT }
feature { name: "support_calls" type: INT }
feature { name: "contract_type" type: BYTES }
feature { name: "payment_method" type: BYTES }
feature { name: "internet_service" type: BYTES }
feature { name: "region" type: BYTES }
feature { name: "paperless_billing" type: INT bool_domain {} }
feature { name: "has_partner" type: INT bool_domain {} }
feature { name: "churned" type: INT }
"""


def require_serve_env() -> Path:
    if not SERVE_PYTHON.exists():
        reason = f"serve environment missing: {SERVE_PYTHON} (make serve-env)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI is set and the {reason}", pytrace=False)
        pytest.skip(reason)
    return SERVE_PYTHON


def wait_for(predicate, what: str, timeout: float = 120.0, interval: float = 0.05):
    """Poll until ``predicate()`` is truthy; fail naming ``what`` after ``timeout`` (a bound, not a measurement)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}", pytrace=False)
        time.sleep(interval)


def metric(values: dict, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        got = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        got = {k: v.strip('"') for k, v in got.items()}
        if all(got.get(k) == str(v) for k, v in labels.items()):
            total += value
    return total


def post_event(url: str, kind: str, event_id, body, headers: dict | None = None, raw: bytes | None = None):
    """POST one binary-mode event; return (status, JSON answer)."""
    parts = urllib.parse.urlsplit(url)
    data = raw if raw is not None else json.dumps(body).encode()
    sent = {"ce-specversion": "1.0", "ce-type": kind, "ce-source": "test", "content-type": "application/json"}
    if event_id is not None:
        sent["ce-id"] = event_id
    sent.update(headers or {})
    sent = {k: v for k, v in sent.items() if v is not None}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", "/", body=data, headers=sent)
        response = conn.getresponse()
        text = response.read()
    finally:
        conn.close()
    return response.status, json.loads(text or b"null")


class ModelServer:
    """The model server CLI in the serve env."""

    def __init__(self, model_dir: Path, log_path: Path, args: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            str(SERVE_PYTHON),
            "-m",
            "kfp_tabular.components.deployment.model_server",
            "--model_dir",
            str(model_dir),
            "--model_name",
            "churn",
            "--http_port",
            str(self.port),
            *args,
        ]
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PREDICT_PROBA": "false"}
        )

    def wait_ready(self) -> "ModelServer":
        def ready():
            if self.process.poll() is not None:
                pytest.fail(f"model server exited:\n{self.log()}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as response:
                    return response.status == 200
            except (urllib.error.URLError, OSError):
                return False

        wait_for(ready, "the model server to be ready", interval=0.25)
        return self

    def post(self, path: str, body, ce_id: str | None = None):
        headers = {"Content-Type": "application/json", **({"Ce-Id": ce_id} if ce_id else {})}
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def metrics(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            return parse_metrics(response.read().decode())

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-20000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


@pytest.fixture(scope="session")
def serve_env() -> Path:
    return require_serve_env()


@pytest.fixture(scope="session")
def churn_model_dir(serve_env, tmp_path_factory) -> Path:
    """A model directory written by the train core from 2,000 generated churn rows."""
    from kfp_tabular.components.data_processing.synthetic_data.core import generate
    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    work = tmp_path_factory.mktemp("model")
    generate(2000, seed=11).to_parquet(work / "train.parquet", index=False)
    (work / "schema.pbtxt").write_text(CHURN_SCHEMA, encoding="utf-8")
    result = train(TrainRequest(LABEL), work / "train.parquet", work / "schema.pbtxt", work / "churn")
    return Path(result.model_dir)


@pytest.fixture(scope="session")
def churn_meta(churn_model_dir) -> dict:
    return json.loads((churn_model_dir / "metadata.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def records(churn_meta) -> list[dict]:
    """60 served rows (features only, JSON-ready; some with nulls)."""
    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    frame = generate(60, seed=5).drop(columns=[LABEL])[churn_meta["feature_order"]]
    plain = frame.astype(object).where(frame.notna(), None)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for _, row in plain.iterrows()]


@pytest.fixture
def processes(request, tmp_path):
    """Factory of processes stopped at the end of the test: ``collector(...)``, ``model_server(...)``."""
    started: list = []
    request.node.started_processes = started

    class Factory:
        def collector(self, sink, roll_rows=10_000, roll_seconds=60.0, args=(), env=None) -> CollectorProcess:
            require_serve_env()
            proc = CollectorProcess(
                sink,
                roll_rows,
                roll_seconds,
                args=list(args),
                env=env,
                log_path=tmp_path / f"collector-{uuid.uuid4().hex[:6]}.log",
                python=str(SERVE_PYTHON),
            )
            started.append(proc)
            return proc.start(timeout=120)

        def model_server(self, model_dir, args=()) -> ModelServer:
            require_serve_env()
            proc = ModelServer(model_dir, tmp_path / f"server-{uuid.uuid4().hex[:6]}.log", list(args))
            started.append(proc)
            return proc.wait_ready()

    yield Factory()
    for proc in started:
        try:
            proc.stop() if isinstance(proc, ModelServer) else proc.kill()
        except Exception:
            pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        factory_procs = getattr(item, "started_processes", None)
        for proc in factory_procs or []:
            report.sections.append((f"log of {type(proc).__name__}", proc.log()))


def good_pair_events(url: str, event_id: str, rows: int = 2) -> None:
    """POST a request event of ``rows`` instances and its response; both must be accepted."""
    request = {"instances": [{"x": i, "c": f"v{i}"} for i in range(rows)]}
    assert post_event(url, REQUEST, event_id, request)[0] == 200
    assert post_event(url, RESPONSE, event_id, {"predictions": list(range(rows))})[0] == 200
