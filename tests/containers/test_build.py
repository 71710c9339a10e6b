"""`make images` for real: a cached build takes under a minute, and the digests it records pin a compile."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from kfp_tabular.components.common import images

from .conftest import CONTAINERS, IMAGES, REPO, podman


@pytest.fixture(scope="module")
def cached_build(built_images):
    """build.sh run again on top of `make images` (nothing to rebuild but, at most, the package layer)."""
    started = time.monotonic()
    out = subprocess.run(["bash", str(CONTAINERS / "build.sh")], capture_output=True, text=True, cwd=REPO, timeout=900)
    return out, time.monotonic() - started


def test_cached_build_takes_under_a_minute(cached_build):
    out, seconds = cached_build
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert seconds < 60, f"a cached build of both images took {seconds:.0f} s"
    log = out.stdout + out.stderr
    # the locked environments come from the layer cache: their install steps (one per image) never run again
    steps = re.findall(r"STEP \d+/\d+: RUN python3 -m venv /tmp/pip\s+&& python3 -m venv --without-pip.*\n(.*)", log)
    assert len(steps) == 2 and all("Using cache" in line for line in steps), steps


def test_build_records_each_images_digest(cached_build):
    table = json.loads(images.digests_path().read_text(encoding="utf-8"))
    for image in IMAGES.values():
        digest = podman("image", "inspect", "--format", "{{.Digest}}", image).stdout.strip()
        assert table[image]["digest"] == digest
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)


def test_compile_pins_the_built_digests(cached_build, tmp_path):
    table = json.loads(images.digests_path().read_text(encoding="utf-8"))
    pinned, plain = tmp_path / "pinned.yaml", tmp_path / "plain.yaml"
    cli = [sys.executable, "-m", "kfp_tabular.pipelines.cli", "compile"]
    for command in ([*cli, "--output", str(pinned), "--pin-digests"], [*cli, "--output", str(plain)]):
        out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
        assert out.returncode == 0, out.stderr
    named = re.findall(r"(?m)^\s*image:\s+(\S+)$", pinned.read_text(encoding="utf-8"))
    assert named and set(named) == {f"{images.PIPELINE_IMAGE}@{table[images.PIPELINE_IMAGE]['digest']}"}
    assert set(re.findall(r"(?m)^\s*image:\s+(\S+)$", plain.read_text(encoding="utf-8"))) == {images.PIPELINE_IMAGE}
