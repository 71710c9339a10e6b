"""The pipeline runs inside the pipeline image (kfp.local DockerRunner over podman's Docker API) and gives the
summary the host run gives; each task runs as uid 1000 with the command the compiled pipeline gives a pod."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from kfp_tabular.components.common import images

from .conftest import need_image, open_dir, podman

TASKS = ("ingest", "validate-data", "train", "evaluate", "deploy-model")


def machine_free(value):
    """The value with memory sizes masked: validate's backend decision names the budget it read from this machine's
    available memory, which moves between two runs (e.g. "budget 10.2 GB" and "budget 10.3 GB")."""
    return json.loads(re.sub(r"~?\d+(\.\d+)? [KMGT]B", "<size>", json.dumps(value)))


def test_pipeline_in_containers_gives_the_host_runs_summary(container_run, host_run):
    assert container_run["succeeded"], container_run["_stdout"][-6000:]
    assert host_run["succeeded"], host_run["_stdout"][-6000:]
    assert container_run["_returncode"] == 0
    for key in ("rows", "anomalies_report", "decisions", "baseline", "baseline_skipped"):
        assert machine_free(container_run[key]) == machine_free(host_run[key]), key
    assert container_run["metrics"] == pytest.approx(host_run["metrics"], rel=1e-9)
    for key in ("blessed", "reasons", "thresholds"):
        assert container_run["blessing"][key] == host_run["blessing"][key], key
    for key in ("deployed", "reason"):
        assert container_run["deploy"][key] == host_run["deploy"][key], key
    assert sorted(container_run["artifacts"]) == sorted(host_run["artifacts"])
    assert "kfp-tabular local run: SUCCEEDED" in container_run["_stdout"]
    assert container_run["promoted_to"], "a blessed model is promoted to the local production record"


def test_every_task_ran_in_the_image_as_uid_1000(container_run):
    run_dir = Path(container_run["run_dir"])
    log_dir = Path(container_run["log_dir"])
    assert log_dir == run_dir / "logs"  # written by the run-local console on the host, not by a task
    # logs/ and reports/ (the HTML reports copied with an extension) are written on the host, not by a task.
    host_dirs = {log_dir, run_dir / "reports"}
    assert sorted(p.name for p in run_dir.iterdir() if p not in host_dirs) == sorted(TASKS)
    owners = {
        path.relative_to(run_dir).as_posix(): path.stat().st_uid
        for path in run_dir.rglob("*")
        if path not in host_dirs and not host_dirs & set(path.parents)
    }
    assert owners and set(owners.values()) == {1000}, {k: v for k, v in owners.items() if v != 1000}
    # Each task's log (not the terminal, which shows one line a task) names the image its container ran.
    for task in TASKS:
        log = (log_dir / f"{task}.log").read_text(encoding="utf-8")
        assert log.count(f"Running in image {images.PIPELINE_IMAGE!r}, container ") == 1, task


def test_no_task_container_is_left_behind(container_run):
    left = podman("ps", "-a", "--filter", f"ancestor={images.PIPELINE_IMAGE}", "--format", "{{.ID}}").stdout
    assert left.strip() == ""


@pytest.fixture(scope="module")
def probe_report(podman_ok, tmp_path_factory):
    """The probe pipeline run through docker_session, as run_local(runner="docker") runs the real one."""
    need_image("pipeline")
    from kfp import local

    from kfp_tabular.pipelines.training.train_and_deploy.containers import docker_session

    from .probe import probe_pipeline

    output_dir = open_dir(tmp_path_factory.mktemp("probe"))
    data = output_dir / "data" / "input.txt"
    data.parent.mkdir()
    data.write_text("read from the host", encoding="utf-8")
    local.init(runner=local.DockerRunner(), pipeline_root=str(output_dir / "runs"), raise_on_error=True)
    with docker_session(output_dir, {"input_path": str(data)}):
        probe_pipeline(input_path=str(data))
    (report,) = (output_dir / "runs").glob("kfp-tabular-container-probe-*/probe/report")
    return json.loads(report.read_text(encoding="utf-8"))


def test_probe_runs_as_uid_1000_with_its_compiled_environment_and_host_paths(probe_report):
    assert (probe_report["uid"], probe_report["gid"]) == (1000, 1000)
    assert probe_report["env"]["OMP_NUM_THREADS"] == "1"
    assert probe_report["env"]["KFP_TABULAR_PROBE"] == "compiled-env"
    assert probe_report["env"]["HOME"] == "/home/kfp"
    assert probe_report["env"]["PATH"].startswith("/opt/venv/bin:")
    assert probe_report["input"] == "read from the host"
    assert probe_report["cwd"] == os.getcwd()


def test_probe_got_the_command_the_compiled_pipeline_gives_a_pod(probe_report, tmp_path):
    from kfp import compiler

    from .probe import probe_pipeline

    package = tmp_path / "probe.yaml"
    compiler.Compiler().compile(probe_pipeline, str(package))
    spec = yaml.safe_load(package.read_text(encoding="utf-8"))
    (container,) = [e["container"] for e in spec["deploymentSpec"]["executors"].values()]
    assert container["image"] == images.PIPELINE_IMAGE
    command = probe_report["command"]
    assert command[: len(container["command"])] == container["command"]
    args = command[len(container["command"]) :]
    assert [a for a in args if a.startswith("--")] == [a for a in container["args"] if a.startswith("--")]
    assert len(args) == len(container["args"])
