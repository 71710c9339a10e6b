"""Fixtures for the container tests: real podman, the real images, real containers.

`make test` builds the images first (`make images`), so these tests find them. Without podman or an image they
skip and say why, unless ``CI`` is set: then they fail (CI must run them for real).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kfp_tabular.components.common import images
from kfp_tabular.pipelines.training.train_and_deploy.containers import podman_env

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "components" / "common" / "containers"
IMAGES = {"pipeline": images.PIPELINE_IMAGE, "serve": images.SERVE_IMAGE}
#: Rows of the default data for the pipeline runs here (small: the container tests stay within minutes).
ROWS = 3000


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless CI is set, then fail."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"CI is set and {reason}", pytrace=False)
    pytest.skip(reason)


def podman(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run podman with the project's containers.conf; text output captured."""
    out = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and out.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture(scope="session")
def podman_ok() -> None:
    require(shutil.which("podman") is not None, "podman is not installed (`make images` installs it)")
    require(podman("info", check=False).returncode == 0, "`podman info` fails with the project's containers.conf")


def need_image(kind: str) -> str:
    """The ``kind`` image's name, once podman has it (as `make images` left it)."""
    image = IMAGES[kind]
    exists = podman("image", "exists", image, check=False).returncode == 0
    require(exists, f"the {kind} image {image} is not built (run `make images`)")
    return image


@pytest.fixture(scope="session")
def built_images(podman_ok) -> dict[str, str]:
    """Both images, as `make images` left them."""
    return {kind: need_image(kind) for kind in IMAGES}


@pytest.fixture(params=["pipeline", "serve"])
def kind(request, podman_ok) -> str:
    """Each image kind in turn (the test skips, or fails in CI, when that image is not built)."""
    need_image(request.param)
    return request.param


def cli_run(output_dir: Path, runner: str, *extra: str) -> dict:
    """`kfp-tabular run-local` in a subprocess on the default data; return the summary JSON (and its output)."""
    summary = output_dir / f"summary-{runner}.json"
    command = [
        sys.executable, "-m", "kfp_tabular.pipelines.cli", "run-local", "--runner", runner,
        "--output-dir", str(output_dir), "--rows", str(ROWS), "--no-baseline", "--summary-json", str(summary), *extra,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert summary.exists(), (
        f"{' '.join(command)} wrote no summary ({out.returncode}):\n{out.stdout[-6000:]}\n{out.stderr[-4000:]}"
    )
    result = json.loads(summary.read_text(encoding="utf-8"))
    result["_stdout"], result["_returncode"] = out.stdout, out.returncode
    return result


def open_dir(path: Path) -> Path:
    """A directory uid 1000 can read when it is mounted in a container (pytest's tmp dirs are 0700).

    Only the mounted directory's own mode matters: the container's runtime makes the directories above a bind
    mount's target itself.
    """
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def container_run(built_images, tmp_path_factory) -> dict:
    """`kfp-tabular run-local --runner docker` on the default data (ROWS rows): the summary."""
    return cli_run(open_dir(tmp_path_factory.mktemp("in-containers")), "docker")


@pytest.fixture(scope="session")
def host_run(tmp_path_factory) -> dict:
    """The same run with the SubprocessRunner (what `make run` does): the summary."""
    return cli_run(tmp_path_factory.mktemp("on-host"), "subprocess")
