"""Import, compile, submit and --help stay fast: no TensorFlow, TFDV, scikit-learn or KServe on those paths."""

import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, component_modules, heavy_modules_after


def test_every_component_is_discovered():
    names = component_modules()
    for expected in ("ingest", "validate", "train", "evaluate", "deploy", "promote", "rollback"):
        assert any(name.endswith(f".{expected}.component") for name in names), expected


@pytest.mark.parametrize("module", component_modules())
def test_component_import_is_light(module):
    assert heavy_modules_after(f"import {module}") == []


def test_pipeline_import_is_light():
    assert heavy_modules_after("import kfp_tabular.pipelines.training.train_and_deploy.pipeline") == []


def test_cli_help_is_fast_and_light():
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "kfp_tabular.pipelines.cli", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0 and "run-local" in out.stdout
    assert time.monotonic() - started < 10
    assert heavy_modules_after("import sys; sys.argv=['x','--help']\nimport kfp_tabular.pipelines.cli") == []
