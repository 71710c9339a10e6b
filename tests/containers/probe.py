"""A lightweight component that reports how its container was run (uid, working directory, environment, the
pod command it got, an input read from a host path), in the pipeline image like every kfp-tabular component."""

from kfp import dsl

from kfp_tabular.components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def probe(input_path: str, report: dsl.Output[dsl.Artifact]):
    """Write a JSON report of the container this task ran in.

    Args:
        input_path: An absolute host path the task must be able to read.
        report: The JSON report.
    """
    import json
    import os

    with open("/proc/1/cmdline", "rb") as handle:
        command = [part.decode() for part in handle.read().split(b"\0")[:-1]]
    with open(input_path, encoding="utf-8") as handle:
        content = handle.read()
    with open(report.path, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "uid": os.getuid(),
                "gid": os.getgid(),
                "cwd": os.getcwd(),
                "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "KFP_TABULAR_PROBE", "HOME", "PATH")},
                "command": command,
                "input": content,
            },
            handle,
        )


@dsl.pipeline(name="kfp-tabular-container-probe")
def probe_pipeline(input_path: str):
    """One probe task with a compiled environment variable, as the real pipeline sets OMP_NUM_THREADS."""
    task = probe(input_path=input_path)
    task.set_env_variable("OMP_NUM_THREADS", "1")
    task.set_env_variable("KFP_TABULAR_PROBE", "compiled-env")
