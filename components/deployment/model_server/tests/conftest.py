"""Fixtures for the model server tests: a trained churn model and real KServe servers in the serve env.

The tests run under the pipeline env's pytest; the server runs in ``.venv-serve`` as a subprocess and is
called over real HTTP. Without ``.venv-serve`` the serve tests are skipped, unless ``CI`` is set (then they
fail). A failing test gets the log of the server it used appended to its report.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
#: The serve env's interpreter; KFP_TABULAR_SERVE_PYTHON points the tests at another one.
SERVE_PYTHON = Path(os.environ.get("KFP_TABULAR_SERVE_PYTHON") or REPO / ".venv-serve" / "bin" / "python")
SERVER_MODULE = "kfp_tabular.components.deployment.model_server"
LABEL = "churned"
TRAIN_ROWS = 2000


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_serve_env() -> Path:
    """The serve env's python; skip (or, with CI set, fail) when the serve env is missing."""
    if not SERVE_PYTHON.exists():
        reason = (
            f"serve environment missing: {SERVE_PYTHON} does not exist "
            "(create .venv-serve from locks/serve.txt, or set KFP_TABULAR_SERVE_PYTHON)"
        )
        if in_ci():
            pytest.fail(f"CI is set and the {reason}", pytrace=False)
        pytest.skip(reason)
    return SERVE_PYTHON


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _proc_net_address(hex_address: str) -> str:
    """``0100007F`` -> ``127.0.0.1``; a 32-digit tcp6 address likewise (each 32-bit word is host-endian)."""
    raw = bytes.fromhex(hex_address)
    host_order = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(host_order))


def listening_addresses(port: int) -> set[str]:
    """Addresses with a socket in LISTEN state on TCP ``port``, from ``/proc/net/tcp`` and ``/proc/net/tcp6``.

    ``0100007F:1F90`` is 127.0.0.1:8080, ``00000000:1F90`` is 0.0.0.0:8080 (all interfaces).
    """
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table, encoding="ascii") as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                address, port_hex = fields[1].split(":")
                if fields[3] == "0A" and int(port_hex, 16) == port:
                    found.add(_proc_net_address(address))
    return found


def connects(host: str, port: int) -> bool:
    """True when a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


class HttpResult:
    """Status and decoded JSON body of one HTTP exchange."""

    def __init__(self, status: int, body):
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"HttpResult({self.status}, {json.dumps(self.body)[:2000]})"


def http(url: str, body=None, raw: bytes | None = None, content_type: str = "application/json") -> HttpResult:
    """GET (no body) or POST JSON; HTTP errors are returned, not raised."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return HttpResult(response.status, json.loads(response.read() or b"null"))
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        try:
            return HttpResult(exc.code, json.loads(text))
        except json.JSONDecodeError:
            return HttpResult(exc.code, text)


class ServerProcess:
    """``python -m kfp_tabular.components.deployment.model_server`` running in the serve env."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None, model_name: str = "churn"):
        self.port = free_port()
        self.model_name = model_name
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.command = [str(SERVE_PYTHON), "-m", SERVER_MODULE, *args, "--http_port", str(self.port)]
        self.command += ["--model_name", model_name]
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"model server exited with {self.process.returncode} before it was ready:\n{self.log_text()}",
                    pytrace=False,
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        pytest.fail(f"model server not ready after {timeout:.0f} s:\n{self.log_text()}", pytrace=False)

    def get(self, path: str) -> HttpResult:
        return http(self.url + path)

    def v1(self, body=None, **kwargs) -> HttpResult:
        return http(f"{self.url}/v1/models/{self.model_name}:predict", body, **kwargs)

    def v2(self, body=None, **kwargs) -> HttpResult:
        return http(f"{self.url}/v2/models/{self.model_name}/infer", body, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Append the log of every model server a failed test used to its report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, ServerProcess):
                report.sections.append((f"model server log ({value.log_path})", value.log_text()))


#: The TFDV schema of the churn data (what the validate component infers), as the train core reads it.
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


@pytest.fixture(scope="session")
def churn_model_dir(tmp_path_factory) -> Path:
    """A model directory written by the train core from 2,000 generated churn rows (its default estimator)."""
    from kfp_tabular.components.data_processing.synthetic_data.core import generate
    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    work = tmp_path_factory.mktemp("model")
    generate(TRAIN_ROWS, seed=11).to_parquet(work / "train.parquet", index=False)
    (work / "schema.pbtxt").write_text(CHURN_SCHEMA, encoding="utf-8")
    result = train(TrainRequest(LABEL), work / "train.parquet", work / "schema.pbtxt", work / "churn")
    return Path(result.model_dir)


@pytest.fixture(scope="session")
def churn_model(churn_model_dir):
    """The trained model loaded in this (pipeline) env, with its metadata."""
    import joblib

    meta = json.loads((churn_model_dir / "metadata.json").read_text(encoding="utf-8"))
    return joblib.load(churn_model_dir / "model.joblib"), meta


@pytest.fixture(scope="session")
def test_rows():
    """40 unseen rows, 10 of them with missing values (NaN) in total_charges, age or internet_service."""
    import pandas as pd

    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    frame = generate(600, seed=123)
    features = frame.drop(columns=[LABEL])
    has_missing = features.isna().any(axis=1)
    rows = pd.concat([features[~has_missing].head(30), features[has_missing].head(10)], ignore_index=True)
    assert int(rows.isna().any(axis=1).sum()) == 10
    return rows


@pytest.fixture(scope="session")
def serve_env() -> Path:
    """The serve env's python (requested first by the serve fixtures, so a missing env skips before training)."""
    return require_serve_env()


@pytest.fixture(scope="session")
def server(serve_env, churn_model_dir, tmp_path_factory):
    """The model server CLI serving the churn model with default settings (V1 predictions are labels)."""
    proc = ServerProcess(
        ["--model_dir", str(churn_model_dir)],
        tmp_path_factory.mktemp("server") / "server.log",
        env={"PREDICT_PROBA": "false"},
    )
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def to_records(frame) -> list[dict]:
    """Rows as JSON-ready dicts: NaN -> None, numpy scalars -> Python."""
    plain = frame.astype(object).where(frame.notna(), None)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for _, row in plain.iterrows()]


@pytest.fixture(scope="session")
def records(test_rows):
    return to_records(test_rows)


def run_serve_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in the serve env; return the completed process."""
    require_serve_env()
    return subprocess.run([str(SERVE_PYTHON), "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def serve_python(serve_env):
    """``run(code) -> CompletedProcess``: run Python code in the serve env."""
    return run_serve_python


@pytest.fixture(scope="session")
def start_server(serve_env, tmp_path_factory):
    """Factory: start a model server CLI with the given arguments; all are stopped at the end of the session."""
    started = []

    def start(args: list[str], env: dict | None = None, model_name: str = "churn") -> ServerProcess:
        require_serve_env()
        proc = ServerProcess(args, tmp_path_factory.mktemp("server") / "server.log", env=env, model_name=model_name)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def http_call():
    """``http(url, body=None, raw=None, content_type=...) -> HttpResult``."""
    return http


@pytest.fixture(scope="session")
def serve_cli(serve_env):
    """Run the server CLI in the serve env to completion (for start-up failures): a CompletedProcess."""

    def run(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
        require_serve_env()
        return subprocess.run(
            [str(SERVE_PYTHON), "-m", SERVER_MODULE, *args, "--http_port", str(free_port())],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def pipeline_python():
    return sys.executable


@pytest.fixture(scope="session")
def listening_on():
    """``listening_on(port) -> set[str]``: the addresses a socket listens on for that TCP port (/proc/net)."""
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("/proc/net/tcp is not available (not Linux): cannot see which address a socket is bound to")
    return listening_addresses


@pytest.fixture(scope="session")
def tcp_connects():
    """``tcp_connects(host, port) -> bool``."""
    return connects


@pytest.fixture(scope="session")
def schema_model_dir(churn_model_dir, tmp_path_factory) -> Path:
    """The churn model with the schema train will record from TFDV and the training data in metadata.json.

    ``domain`` (categories seen in training), ``min``/``max`` (numeric range seen in training) and
    ``required`` (the column must be sent) and ``nullable`` (training saw missing values). The model file is the same.
    """
    import shutil

    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    train = generate(TRAIN_ROWS, seed=11)
    target = tmp_path_factory.mktemp("schema") / "churn"
    shutil.copytree(churn_model_dir, target)
    meta = json.loads((target / "metadata.json").read_text(encoding="utf-8"))
    for entry in meta["features"]:  # train records these since it reads the TFDV schema; fill them if it did not
        column = train[entry["name"]]
        entry.setdefault("required", True)
        entry.setdefault("nullable", bool(column.isna().any()))
        if entry["dtype"] == "string":
            entry.setdefault("domain", sorted(str(v) for v in column.dropna().unique()))
        elif entry["dtype"] in ("int", "float"):
            entry.setdefault("min", float(column.min()))
            entry.setdefault("max", float(column.max()))
    (target / "metadata.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def schema_server(serve_env, schema_model_dir, tmp_path_factory):
    """The server with the default schema policy (reject type and non-finite, flag the rest), 1 MiB limit."""
    proc = ServerProcess(
        ["--model_dir", str(schema_model_dir), "--max_body_bytes", str(1024 * 1024)],
        tmp_path_factory.mktemp("server") / "server.log",
        env={"PREDICT_PROBA": "false"},
    )
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def strict_server(serve_env, schema_model_dir, tmp_path_factory):
    """The server rejecting every schema violation (``--schema_policy reject``)."""
    proc = ServerProcess(
        ["--model_dir", str(schema_model_dir), "--schema_policy", "reject"],
        tmp_path_factory.mktemp("server") / "server.log",
        env={"PREDICT_PROBA": "false"},
        model_name="strict",
    )
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def post(url: str, raw: bytes, headers: dict | None = None) -> HttpResult:
    """POST raw bytes with exactly ``headers`` (no Content-Type unless given), as http.client sends them."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", parts.path, body=raw, headers=headers or {})
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
    finally:
        conn.close()
    try:
        return HttpResult(response.status, json.loads(text) if text else None)
    except json.JSONDecodeError:
        return HttpResult(response.status, text)
