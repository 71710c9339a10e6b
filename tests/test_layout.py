"""The repository keeps the kubeflow/pipelines-components shape."""

import ast

import pytest
import yaml

from tests.helpers import COMPONENTS, REPO

ALLOWED_TOP_LEVEL = {
    "components",
    "pipelines",
    "manifests",
    "tests",
    "setup.py",
    "Makefile",
    "README.md",
    ".ci",
    "locks",
    "docs",
    "bench",
    ".gitignore",
    ".containerignore",
    ".ruff.toml",
    ".git",
}
COMPONENT_DIRS = sorted(p.parent for p in COMPONENTS.rglob("component.py"))


def test_top_level_is_exactly_the_documented_layout():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    top = {line.split("/")[0] for line in tracked.splitlines() if line}
    assert top, "no tracked files"
    assert top <= ALLOWED_TOP_LEVEL, sorted(top - ALLOWED_TOP_LEVEL)
    assert {"components", "pipelines", "manifests", "tests", "setup.py", "Makefile", "README.md"} <= top


@pytest.mark.parametrize("folder", COMPONENT_DIRS, ids=lambda p: str(p.relative_to(COMPONENTS)))
def test_component_folder_shape(folder):
    for name in ("__init__.py", "component.py", "metadata.yaml", "README.md"):
        assert (folder / name).is_file(), f"{folder.relative_to(REPO)} has no {name}"
    meta = yaml.safe_load((folder / "metadata.yaml").read_text(encoding="utf-8"))
    for key in ("name", "description", "stability", "dependencies", "lastVerified"):
        assert key in meta, f"{folder.relative_to(REPO)}/metadata.yaml lacks {key}"
    tree = ast.parse((folder / "component.py").read_text(encoding="utf-8"))
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    decorated = [f for f in functions if f.decorator_list]
    assert len(decorated) == 1, "component.py holds exactly one decorated component function"
    doc = ast.get_docstring(decorated[0]) or ""
    assert "Args:" in doc, f"{decorated[0].name} needs a Google docstring with Args"


@pytest.mark.parametrize("folder", COMPONENT_DIRS, ids=lambda p: str(p.relative_to(COMPONENTS)))
def test_component_compiles_on_its_own(folder, tmp_path):
    import importlib

    from kfp import compiler
    from kfp.dsl.base_component import BaseComponent

    rel = folder.relative_to(COMPONENTS)
    module = importlib.import_module("kfp_tabular.components." + ".".join(rel.parts) + ".component")
    comps = [v for v in vars(module).values() if isinstance(v, BaseComponent)]
    assert len(comps) == 1
    out = tmp_path / "c.yaml"
    compiler.Compiler().compile(comps[0], str(out))
    spec = yaml.safe_load(out.read_text(encoding="utf-8"))
    image = next(iter(spec["deploymentSpec"]["executors"].values()))["container"]["image"]
    from kfp_tabular.components.common.images import PIPELINE_IMAGE

    assert image == PIPELINE_IMAGE
