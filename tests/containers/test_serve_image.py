"""The serve image serves a model directory mounted read-only, as uid 1000, and answers V1 and V2 over HTTP
exactly as the host's `make serve` (the serve environment) does for the same model and rows.

The model is the one the pipeline trained inside the pipeline image (the ``container_run`` fixture).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from kfp_tabular.components.deployment.model_server.predict_sample import (
    RequestFailed,
    ServerUnreachable,
    build_requests,
    http_json,
    labels_of,
    sample_records,
)

from .conftest import REPO, need_image, podman, require

MODEL_NAME = "churn-classifier"
SERVE_PYTHON = REPO / ".venv-serve" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, describe, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_json(f"{base}/v2/models/{MODEL_NAME}", timeout=5)
        except (ServerUnreachable, RequestFailed) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no model server at {base} after {timeout:.0f} s ({exc}):\n{describe()}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def model_dir(container_run) -> Path:
    assert container_run["succeeded"], container_run["_stdout"][-4000:]
    path = Path(container_run["run_dir"]) / "train" / "model"
    assert (path / "model.joblib").is_file()
    return path


@pytest.fixture(scope="module")
def served_in_image(model_dir):
    """The serve image on 127.0.0.1:<port>, the model mounted read-only at /mnt/models (the image's CMD)."""
    image = need_image("serve")
    port = free_port()
    name = f"kfp-tabular-serve-test-{port}"
    podman(
        "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "-v", f"{model_dir}:/mnt/models:ro", image,
        "--model_dir", "/mnt/models", "--model_name", MODEL_NAME, "--http_port", "8080", "--host", "0.0.0.0",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, lambda: podman("logs", name, check=False).stdout + podman("logs", name, check=False).stderr)
        yield base, name
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


@pytest.fixture(scope="module")
def served_on_host(model_dir):
    """`make serve` for the same model: the serve environment on the host."""
    require(SERVE_PYTHON.exists(), f"{SERVE_PYTHON} is missing (make serve-env)")
    port = free_port()
    command = [
        str(SERVE_PYTHON), "-m", "kfp_tabular.components.deployment.model_server",
        "--model_dir", str(model_dir), "--model_name", MODEL_NAME, "--http_port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, lambda: f"exit {process.poll()}")
        yield base
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
        if process.poll() is None:
            process.kill()


def answers(base: str, metadata: dict) -> dict:
    records = sample_records([spec["name"] for spec in metadata["inputs"]], n_rows=5, seed=11)
    urls = {"v1": f"{base}/v1/models/{MODEL_NAME}:predict", "v2": f"{base}/v2/models/{MODEL_NAME}/infer"}
    found = {}
    for label, (path, body) in build_requests(records, metadata["inputs"]).items():
        response = http_json(urls[path], body)
        found[label] = labels_of(path, response)
    return found


def test_serve_image_runs_as_uid_1000_with_a_read_only_model(served_in_image):
    _, name = served_in_image
    assert podman("exec", name, "id", "-u").stdout.strip() == "1000"
    denied = podman("exec", name, "touch", "/mnt/models/written", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr


def test_serve_image_gives_the_host_servers_predictions_over_v1_and_v2(served_in_image, served_on_host):
    base, _ = served_in_image
    metadata = http_json(f"{base}/v2/models/{MODEL_NAME}")
    assert metadata == http_json(f"{served_on_host}/v2/models/{MODEL_NAME}")
    in_image, on_host = answers(base, metadata), answers(served_on_host, metadata)
    assert len(in_image) == 3 and len({str(v) for v in in_image.values()}) == 1, in_image
    assert in_image == on_host
