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


def test_compile_imports_neither_kfp_client_nor_kubernetes(tmp_path):
    """`kfp-tabular compile` builds IR YAML: kfp's API client and the Kubernetes client it imports are never used."""
    output = tmp_path / "pipeline.yaml"
    probe = (
        "import sys\nfrom kfp_tabular.pipelines import cli\n"
        f"assert cli.main(['compile', '--output', {str(output)!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith(('kubernetes.', 'kfp.client'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    # The light import loses nothing: the YAML is byte for byte what a compile after a full `import kfp` writes.
    full = tmp_path / "full.yaml"
    code = "import kfp\nfrom kfp_tabular.pipelines import cli\n"
    code += f"assert cli.main(['compile', '--output', {str(full)!r}]) == 0"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert output.read_text() == full.read_text()


def test_kfp_client_still_imports_after_the_light_kfp_import():
    code = (
        "from kfp_tabular.pipelines.cli import import_kfp_sdk_only\nimport_kfp_sdk_only()\n"
        "import os\nassert '_KFP_RUNTIME' not in os.environ\n"
        "from kfp import dsl\nassert hasattr(dsl, 'pipeline')\nfrom kfp.client import Client\nprint(Client.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Client"
