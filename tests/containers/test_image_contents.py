"""Each image is what its lock says: exact distributions, pip check clean, no compiler, uid 1000, working imports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kfp_tabular.components.common import images

from .conftest import IMAGES, REPO, podman, require

LOCKS = {"pipeline": REPO / "locks" / "pipeline.txt", "serve": REPO / "locks" / "serve.txt"}
#: pip for `pip check` inside an image (the images hold no pip: their environment is the lock and the package).
HOST_PIP = REPO / ".venv-tools" / "lib" / "python3.11" / "site-packages" / "pip"

_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_versions(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a hashed lock file."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ENTRY.match(line)
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def in_image(image: str, script: str, *run_args: str) -> str:
    """Run ``sh -c script`` in ``image`` as its default user; return stdout."""
    return podman("run", "--rm", *run_args, "--entrypoint", "sh", image, "-c", script).stdout


def test_installed_distributions_are_exactly_the_lock_and_the_package(kind):
    listing = in_image(
        IMAGES[kind],
        "python -c 'import importlib.metadata as m, json; "
        'print(json.dumps(sorted([d.metadata["Name"], d.version] for d in m.distributions())))\'',
    )
    installed = {canonical(name): version for name, version in json.loads(listing)}
    expected = {**lock_versions(LOCKS[kind]), "kfp-tabular": images.VERSION}
    assert len(expected) > 50
    missing = {name: v for name, v in expected.items() if name not in installed}
    extra = {name: v for name, v in installed.items() if name not in expected}
    wrong = {name: (installed[name], v) for name, v in expected.items() if name in installed and installed[name] != v}
    assert not missing and not extra and not wrong, f"missing {missing}, extra {extra}, (image, lock) {wrong}"


def test_the_image_carries_its_lock(kind):
    lock = in_image(IMAGES[kind], f"cat /opt/kfp-tabular/{kind}.lock.txt")
    assert lock == LOCKS[kind].read_text(encoding="utf-8")


def test_pip_check_is_clean(kind):
    require(HOST_PIP.is_dir(), f"{HOST_PIP} is missing (make env creates .venv-tools)")
    out = in_image(
        IMAGES[kind], "PYTHONPATH=/opt/host-pip python -m pip check", "-v", f"{HOST_PIP}:/opt/host-pip/pip:ro"
    )
    assert "No broken requirements found." in out, out


def test_no_compiler_and_no_pip_in_the_final_stage(kind):
    out = in_image(
        IMAGES[kind],
        "for tool in gcc g++ cc c++ clang make ld as pip pip3; do command -v $tool || true; done; "
        "ls /usr/lib/gcc 2>/dev/null || true; ls /usr/include/python3.11/Python.h 2>/dev/null || true",
    )
    assert out.strip() == "", f"found in {IMAGES[kind]}:\n{out}"


def test_default_user_is_uid_1000_with_its_home(kind):
    out = in_image(IMAGES[kind], 'id -u; id -g; echo "$HOME"; pwd; touch "$HOME/w" && echo writable')
    assert out.split() == ["1000", "1000", "/home/kfp", "/home/kfp", "writable"]


def test_cli_help_works(kind):
    out = in_image(IMAGES[kind], "kfp-tabular --help && kfp-tabular compile --help")
    assert "usage: kfp-tabular" in out and "--pin-digests" in out


COMPONENTS = [
    "kfp_tabular.components.data_processing.ingest.component",
    "kfp_tabular.components.data_processing.validate.component",
    "kfp_tabular.components.training.train.component",
    "kfp_tabular.components.evaluation.evaluate.component",
    "kfp_tabular.components.deployment.deploy.component",
    "kfp_tabular.components.deployment.promote.component",
    "kfp_tabular.components.deployment.rollback.component",
]
#: What each component's function body imports when it runs (the heavy cores), by image.
CORES = {
    "pipeline": [
        "kfp_tabular.components.data_processing.ingest.core",
        "kfp_tabular.components.data_processing.validate.core",
        "kfp_tabular.components.training.train.core",
        "kfp_tabular.components.evaluation.evaluate.core",
        "kfp_tabular.components.deployment.deploy.core",
        "kfp_tabular.components.deployment.promote.core",
        "kfp_tabular.components.deployment.rollback.core",
        "tensorflow_data_validation",
        "kfp.dsl.executor_main",
    ],
    "serve": ["kfp_tabular.components.deployment.model_server.server", "kserve", "sklearn"],
}


def test_every_component_imports(kind):
    modules = (COMPONENTS if kind == "pipeline" else []) + CORES[kind]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    script += "print('ok', len(sys.argv) - 1)"
    out = podman("run", "--rm", "--entrypoint", "python", IMAGES[kind], "-c", script, *modules).stdout
    assert out.split()[-2:] == ["ok", str(len(modules))], out
