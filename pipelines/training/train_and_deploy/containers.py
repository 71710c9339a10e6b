"""Run the local pipeline's tasks in the pipeline image: kfp.local's DockerRunner over podman's Docker API.

``kfp-tabular run-local --runner docker`` (``make run-containers``) runs every task in PIPELINE_IMAGE with the
command the compiled pipeline gives a pod, as the image's user (uid 1000). What kfp 2.13's DockerRunner gets
wrong for us, and what :func:`docker_session` does about it:

- It mounts only the pipeline root: a task cannot read its inputs (the data file, the schema, the baseline
  model). Here the working directory, the output directory and every absolute path among the pipeline's
  arguments are also mounted, read-only and at the same path, and the task starts in the same working directory,
  so every path means in the container what it means on the host.
- It leaves the pipeline root as it is: uid 1000 cannot write the task outputs into a directory root made.
  Here the runs directory is given to uid 1000 (``chown``; the host's root still reads and writes all of it).
- It drops the task's environment (``env`` of the compiled container, e.g. ``OMP_NUM_THREADS``): a pod gets
  it. Here each task's container gets its compiled environment.
- It pulls any image it does not find by exact tag (no registry is reachable here): here a missing image
  fails at once, naming ``make images``.
- It never removes a finished container: here each one is removed once its exit status is read.

The Docker API comes from ``podman system service`` on a socket in a temporary directory (started and stopped
by the session, with the project's containers.conf), unless ``DOCKER_HOST`` already names one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from kfp_tabular.components.common.errors import ConfigError

#: The project's podman settings (runc, no default ulimits), passed with CONTAINERS_CONF.
CONTAINERS_CONF = Path(__file__).resolve().parents[3] / "components" / "common" / "containers" / "containers.conf"
#: The user the images run as (USER in both Containerfiles).
IMAGE_UID = 1000


def podman_env() -> dict[str, str]:
    """Return this process's environment with the project's containers.conf (unless CONTAINERS_CONF is set)."""
    env = dict(os.environ)
    if CONTAINERS_CONF.is_file():
        env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


@contextlib.contextmanager
def podman_service(timeout: float = 30.0) -> Iterator[str]:
    """Serve the Docker API from podman on a fresh unix socket; yield ``unix://...``; stop it on exit."""
    podman = shutil.which("podman")
    if podman is None:
        raise ConfigError("podman is not installed: `make images` installs it (apt-get install podman runc)")
    folder = tempfile.mkdtemp(prefix="kfp-tabular-podman-")
    url = f"unix://{folder}/podman.sock"
    log = open(f"{folder}/podman.log", "w+b")  # a file, not a pipe: a chatty service never blocks on it
    process = subprocess.Popen(
        [podman, "system", "service", "--time=0", url], env=podman_env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + timeout
        import docker

        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"podman system service exited: {log.read().decode(errors='replace')}")
            if os.path.exists(f"{folder}/podman.sock"):
                with contextlib.suppress(Exception):
                    client = docker.DockerClient(base_url=url)
                    try:
                        client.ping()
                        break
                    finally:
                        client.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"podman system service did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def read_mounts(paths: list[str | os.PathLike]) -> list[str]:
    """Return the existing absolute paths among ``paths``, without those inside another one (mounted with it)."""
    found = []
    for value in paths:
        if not isinstance(value, (str, os.PathLike)) or not os.path.isabs(value) or not os.path.exists(value):
            continue
        found.append(os.path.realpath(value))
    found = sorted(set(found), key=lambda p: (len(Path(p).parts), p))
    kept: list[str] = []
    for path in found:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


class _TaskEnvironment:
    """The compiled ``env`` of the task being dispatched (kfp.local runs one task at a time)."""

    current: dict[str, str] = {}


def _capturing_dispatch(original):
    def run_single_task_implementation(*args, **kwargs):
        executor_spec = kwargs.get("executor_spec", args[3] if len(args) > 3 else None)
        env = getattr(getattr(executor_spec, "container", None), "env", [])
        _TaskEnvironment.current = {item.name: item.value for item in env}
        try:
            return original(*args, **kwargs)
        finally:
            _TaskEnvironment.current = {}

    return run_single_task_implementation


def _handler_class(base, mounts: list[str], workdir: str):
    class PodTaskHandler(base):
        """kfp's DockerTaskHandler, with the mounts, working directory and environment a pod would give."""

        def get_volumes_to_mount(self) -> dict[str, Any]:
            volumes = {path: {"bind": path, "mode": "ro"} for path in mounts}
            volumes.update(super().get_volumes_to_mount())  # the pipeline root, read-write
            return volumes

        def run(self):
            import docker
            from kfp.local import status

            client = docker.from_env()
            try:
                return_code = run_container(
                    client,
                    self.image,
                    self.full_command,
                    self.get_volumes_to_mount(),
                    environment=dict(_TaskEnvironment.current),
                    working_dir=workdir,
                )
            finally:
                client.close()
            return status.Status.SUCCESS if return_code == 0 else status.Status.FAILURE

    return PodTaskHandler


def run_container(client, image: str, command: list[str], volumes: dict, environment: dict, working_dir: str) -> int:
    """Run one task's container to completion (logs streamed to stdout), remove it, return its exit status."""
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ConfigError(f"image {image} is not on this machine: build it with `make images`") from None
    container = client.containers.run(
        image=image,
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        environment=environment,
        working_dir=working_dir,
    )
    print(f"Running in image {image!r}, container {container.short_id}\n")
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return container.wait()["StatusCode"]
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def give_to_image_user(runs_root: Path) -> None:
    """Let the image's user (uid 1000) create task outputs under ``runs_root`` (the pipeline root)."""
    runs_root.mkdir(parents=True, exist_ok=True)
    stat = runs_root.stat()
    if stat.st_uid == IMAGE_UID:
        return
    try:
        os.chown(runs_root, IMAGE_UID, IMAGE_UID)
    except PermissionError:
        if not os.access(runs_root, os.W_OK) or stat.st_mode & 0o002 == 0:
            raise ConfigError(
                f"{runs_root}: the tasks run as uid {IMAGE_UID} and must write here; run as root "
                f"(rootful podman) or `chown {IMAGE_UID} {runs_root}`"
            ) from None


@contextlib.contextmanager
def docker_session(output_dir: str | os.PathLike, arguments: dict[str, Any]) -> Iterator[None]:
    """Make kfp.local's DockerRunner run our tasks as a pod would, through podman (see the module docstring).

    Args:
        output_dir: run_local's output directory; its ``runs/`` is the pipeline root.
        arguments: The pipeline's arguments: absolute paths among them are mounted read-only.
    """
    from kfp.local import docker_task_handler, task_dispatcher

    output_dir = Path(output_dir).resolve()
    give_to_image_user(output_dir / "runs")
    workdir = os.getcwd()
    mounts = read_mounts([workdir, output_dir, *[v for v in arguments.values() if isinstance(v, str)]])
    original_handler = docker_task_handler.DockerTaskHandler
    original_dispatch = task_dispatcher.run_single_task_implementation
    previous_host = os.environ.get("DOCKER_HOST")
    with contextlib.ExitStack() as stack:
        if not previous_host:
            os.environ["DOCKER_HOST"] = stack.enter_context(podman_service())
        docker_task_handler.DockerTaskHandler = _handler_class(original_handler, mounts, workdir)
        task_dispatcher.run_single_task_implementation = _capturing_dispatch(original_dispatch)
        try:
            yield
        finally:
            docker_task_handler.DockerTaskHandler = original_handler
            task_dispatcher.run_single_task_implementation = original_dispatch
            if previous_host is None:
                os.environ.pop("DOCKER_HOST", None)
