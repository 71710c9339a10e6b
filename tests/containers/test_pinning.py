"""Pinning images by digest in a compiled pipeline (no podman needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kfp_tabular.components.common import images
from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.pipelines.cli import DEFAULT_YAML

from .conftest import REPO

DIGEST = "sha256:" + "ab" * 32
YAML = f"""\
deploymentSpec:
  executors:
    exec-a:
      container:
        image: {images.PIPELINE_IMAGE}
    exec-b:
      container:
        image: '{images.PIPELINE_IMAGE}'
root:
  inputDefinitions:
    parameters:
      note:
        defaultValue: see {images.PIPELINE_IMAGE}
"""


def test_pin_images_rewrites_only_whole_image_values():
    text = images.pin_images(YAML, {images.PIPELINE_IMAGE: DIGEST})
    assert f"image: {images.PIPELINE_IMAGE}@{DIGEST}\n" in text
    assert f"image: '{images.PIPELINE_IMAGE}@{DIGEST}'\n" in text
    assert f"defaultValue: see {images.PIPELINE_IMAGE}\n" in text


def test_pin_images_errors():
    with pytest.raises(ConfigError, match="is not a sha256 digest"):
        images.pin_images(YAML, {images.PIPELINE_IMAGE: "sha256:short"})
    with pytest.raises(ConfigError, match="occurs in the compiled pipeline"):
        images.pin_images(YAML, {"other/image:1": DIGEST})


def test_built_digests_needs_both_images(tmp_path):
    path = tmp_path / "digests.json"
    with pytest.raises(ConfigError, match="make images"):
        images.built_digests(path)
    path.write_text(json.dumps({images.PIPELINE_IMAGE: {"digest": DIGEST}}))
    with pytest.raises(ConfigError, match=f"no digest recorded for {images.SERVE_IMAGE}"):
        images.built_digests(path)
    path.write_text(json.dumps({image: {"digest": DIGEST} for image in (images.PIPELINE_IMAGE, images.SERVE_IMAGE)}))
    assert images.built_digests(path) == {images.PIPELINE_IMAGE: DIGEST, images.SERVE_IMAGE: DIGEST}


def test_compile_refuses_to_pin_the_committed_yaml(tmp_path):
    command = [sys.executable, "-m", "kfp_tabular.pipelines.cli", "compile", "--pin-digests"]
    out = subprocess.run([*command, "--output", str(DEFAULT_YAML)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "readable tags" in out.stderr
    out = subprocess.run(
        [*command, "--output", str(tmp_path / "p.yaml"), "--image-digests", str(tmp_path / "none.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 2 and "make images" in out.stderr
