"""The warm runner (warm.py): a task in an interpreter started before it runs as in a fresh one, or falls back.

Not timed: the speed-up is measured by bench/end_to_end.py and bench/tfx_compare.py.
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest
from kfp import dsl, local

from kfp_tabular.pipelines.training.train_and_deploy import warm
from kfp_tabular.pipelines.training.train_and_deploy.console import TaskConsole, count_tasks
from kfp_tabular.pipelines.training.train_and_deploy.pipeline import train_and_deploy
from kfp_tabular.pipelines.training.train_and_deploy.run_local import run_local

from .test_run_console import Terminal


# --- a tiny real pipeline through kfp.local -------------------------------------------------------------------
@dsl.component(base_image="python:3.11", install_kfp_package=False)
def env_probe(out: dsl.Output[dsl.Artifact]) -> str:
    import json
    import os
    import sys

    # Whether numpy was imported before this function ran (it is in the warm interpreter: the env must be set then).
    seen = {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "PROBE_VALUE": os.environ.get("PROBE_VALUE"),
        "_KFP_RUNTIME": os.environ.get("_KFP_RUNTIME"),
        "cwd": os.getcwd(),
        "argv_tail": sys.argv[1:2],
    }
    print(f"probe saw {json.dumps(seen, sort_keys=True)}")
    with open(out.path, "w") as handle:
        json.dump(seen, handle, sort_keys=True)
    out.metadata["omp"] = seen["OMP_NUM_THREADS"]
    return seen["OMP_NUM_THREADS"] or ""


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def failing(seen: str):
    from kfp_tabular.components.common.errors import DataError

    print("failing: about to raise")
    raise DataError(f"probe.csv: column 'x' not found (upstream saw {seen})")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def exits(seen: str):
    import sys

    print(f"exits: leaving with status 3 (upstream saw {seen})")
    sys.exit(3)


@dsl.pipeline(name="warm-probe-ok")
def ok_pipeline():
    env_probe().set_env_variable("OMP_NUM_THREADS", "3").set_env_variable("PROBE_VALUE", "compiled")


@dsl.pipeline(name="warm-probe-fails")
def failing_pipeline():
    probe = env_probe().set_env_variable("OMP_NUM_THREADS", "3").set_env_variable("PROBE_VALUE", "compiled")
    failing(seen=probe.outputs["Output"])


@dsl.pipeline(name="warm-probe-exits")
def exiting_pipeline():
    probe = env_probe().set_env_variable("OMP_NUM_THREADS", "3").set_env_variable("PROBE_VALUE", "compiled")
    exits(seen=probe.outputs["Output"])


def run_probe(pipeline, tmp_path: Path, use_warm: bool) -> tuple[TaskConsole, str]:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "runs"), raise_on_error=True)
    pool = warm.WarmPool(warm.plan(pipeline.pipeline_spec)) if use_warm else None
    console = TaskConsole(Terminal(), "silent", total=count_tasks(pipeline.pipeline_spec), warm=pool)
    error = ""
    with console:
        try:
            pipeline()
        except RuntimeError as exc:
            error = str(exc)
    if pool is not None:
        assert pool.waiting == []  # closed with the console
    return console, error


@pytest.fixture()
def parent_env(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # this process's: the task must get its compiled 3
    monkeypatch.delenv("PROBE_VALUE", raising=False)
    monkeypatch.delenv(warm.ENV_SWITCH, raising=False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_warm_task_sees_what_a_fresh_one_sees_and_writes_the_same_outputs(tmp_path, parent_env):
    runs = {}
    for use_warm in (True, False):
        console, error = run_probe(ok_pipeline, tmp_path / str(use_warm), use_warm)
        assert not error
        (task,) = console.tasks
        assert task.status == "SUCCESS" and task.warm is use_warm
        log = Path(task.log).read_text()
        assert ("warm runner: 'env_probe' runs in interpreter" in log) is use_warm, log
        run_dir = console.run_dir
        outputs = json.loads((run_dir / "env-probe" / "executor_output.json").read_text())
        runs[use_warm] = (outputs, (run_dir / "env-probe" / "out").read_text(), log)
    (warm_outputs, warm_out, warm_log), (cold_outputs, cold_out, _) = runs[True], runs[False]
    seen = json.loads(warm_out)
    assert seen == {
        "OMP_NUM_THREADS": "3",
        "PROBE_VALUE": "compiled",
        "_KFP_RUNTIME": "true",
        "cwd": os.getcwd(),
        "argv_tail": ["--component_module_path"],
    }
    assert warm_out == cold_out
    mask = re.compile(r"/warm-probe-ok-[\d-]+/")
    assert mask.sub("/RUN/", json.dumps(warm_outputs).replace(str(tmp_path / "True"), "T")) == mask.sub(
        "/RUN/", json.dumps(cold_outputs).replace(str(tmp_path / "False"), "T")
    )
    assert warm_outputs["parameterValues"]["Output"] == "3"
    assert "[KFP Executor" in warm_log and "Got executor_input" in warm_log  # kfp's logging, as in a fresh process


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("use_warm", [True, False])
def test_a_failing_task_still_fails_with_its_traceback_in_its_log(tmp_path, parent_env, use_warm):
    console, error = run_probe(failing_pipeline, tmp_path, use_warm)
    assert "Inner task failed" in error
    probe, failed = console.tasks
    assert probe.status == "SUCCESS" and failed.status == "FAILURE"
    assert failed.warm is use_warm and probe.warm is use_warm
    log = Path(failed.log).read_text()
    assert "failing: about to raise" in log and "Traceback (most recent call last)" in log, log
    assert "kfp_tabular.components.common.errors.DataError: probe.csv: column 'x' not found (upstream saw 3)" in log
    assert console.last_error == "DataError: probe.csv: column 'x' not found (upstream saw 3)"
    assert "finished with status FAILURE" in log


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_task_calling_sys_exit_fails_in_a_warm_interpreter_too(tmp_path, parent_env):
    console, error = run_probe(exiting_pipeline, tmp_path, True)
    assert "Inner task failed" in error
    exited = console.tasks[1]
    assert exited.status == "FAILURE" and exited.warm
    assert "exits: leaving with status 3 (upstream saw 3)" in Path(exited.log).read_text()


# --- recognising the command, falling back ------------------------------------------------------------------
def real_command(planned: warm.PlannedTask) -> list[str]:
    """The command kfp.local's SubprocessRunner gives a task (placeholders resolved, python3 replaced)."""
    args = ["--executor_input", "{}", "--function_to_execute", planned.function]
    return ["sh", "-ec", warm.expected_script(), planned.source, *args]


def test_the_plan_is_kfp_locals_order_with_each_tasks_compiled_env():
    planned = warm.plan(train_and_deploy.pipeline_spec)
    assert [t.name for t in planned] == ["ingest", "validate-data", "train", "evaluate", "deploy-model"]
    assert [t.function for t in planned] == ["ingest", "validate_data", "train", "evaluate", "deploy_model"]
    assert all(dict(t.env).get("OMP_NUM_THREADS") for t in planned)
    assert len(planned) == count_tasks(train_and_deploy.pipeline_spec)
    modules = warm.preload_modules("validate_data", planned[1].source)
    assert modules[0] == "tensorflow_data_validation"
    assert any(m.startswith("kfp_tabular.components.data_processing.validate") for m in modules)
    assert "pandas" in warm.preload_modules("train", planned[2].source)


def test_the_command_shape_is_checked():
    planned = warm.plan(train_and_deploy.pipeline_spec)[0]
    script = warm.expected_script()
    command = real_command(planned)
    assert warm.parse_command(command, script) == (planned.source, command[4:], "ingest")
    assert script.count(sys.executable) == 1 and "python3" not in script
    with pytest.raises(ValueError, match="expected \\['sh', '-ec'\\]"):
        warm.parse_command(["python3", "-m", "kfp.dsl.executor_main", "--executor_input", "{}"], script)
    with pytest.raises(ValueError, match="not kfp 2.13's lightweight-component script"):
        warm.parse_command(["sh", "-ec", script.replace("mktemp -d", "mktemp"), *command[3:]], script)
    with pytest.raises(ValueError, match="--function_to_execute"):
        warm.parse_command(command[:4] + ["--executor_input", "{}"], script)


def test_a_command_it_does_not_recognise_or_a_changed_env_runs_cold_and_says_why():
    notes: list[str] = []
    planned = warm.plan(train_and_deploy.pipeline_spec)[-1:]  # deploy_model: nothing heavy to import
    pool = warm.WarmPool(planned, base_env=dict(os.environ), note=notes.append)
    try:
        pool.start()
        (waiting,) = pool.waiting
        env = pool.task_env(planned[0])
        assert pool.take(["sh", "-c", "true"], env) is None and "fresh interpreter" in notes[-1]
        assert pool.waiting == [waiting]  # an unrecognised command does not use it up
        other = warm.PlannedTask("x", "not_planned", (), planned[0].source)
        assert pool.take(real_command(other), env) is None
        assert "no interpreter was started for 'not_planned'" in notes[-1]
        assert pool.take(real_command(planned[0]), {**env, "OMP_NUM_THREADS": "99"}) is None
        assert "environment differs from the one warmed (OMP_NUM_THREADS)" in notes[-1]
        assert waiting.process.poll() is not None  # discarded: killed, not left behind
    finally:
        pool.close()


def test_no_interpreter_starts_while_a_solo_task_runs():
    planned = warm.plan(train_and_deploy.pipeline_spec)[-1:] * 3  # deploy_model, light to start
    pool = warm.WarmPool(planned, base_env=dict(os.environ), initial=1, solo=frozenset({"deploy_model"}))
    try:
        pool.start()
        process = pool.take(real_command(planned[0]), pool.task_env(planned[0]))
        assert process is not None and pool.waiting == []  # held back while the solo task runs
        process.kill()
        process.wait()
        process.stdout.close()
        pool.task_done()
        assert len(pool.waiting) == 1  # started once it ended
        pool.task_done()
        assert len(pool.waiting) == 1
    finally:
        pool.close()


def test_the_switch(monkeypatch):
    monkeypatch.setenv(warm.ENV_SWITCH, "0")
    assert not warm.enabled() and warm.enabled(True)
    monkeypatch.setenv(warm.ENV_SWITCH, "1")
    assert warm.enabled() and not warm.enabled(False)
    monkeypatch.delenv(warm.ENV_SWITCH)
    assert warm.enabled()


# --- the real pipeline: both paths, the same artifacts --------------------------------------------------------
#: What differs between two runs of the same pipeline whatever runs the tasks: the run directory's name, the time
#: a model was written, and the machine's available memory at that moment (validate's backend decision and
#: train's memory record name it).
_VOLATILE = [
    (re.compile(r"kfp-tabular-train-and-deploy-[\d-]+"), "RUN"),
    (re.compile(r'"created_at": "[^"]+"'), '"created_at": "T"'),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?"), "T"),  # the lineage record's, the card's
    (re.compile(r"\d+(\.\d+)? GB"), "N GB"),
    (re.compile(r'"(memory_limit_bytes|available_bytes)": \d+'), r'"\1": N'),
]


def artifact_files(run_dir: Path, root: Path) -> dict[str, bytes]:
    files = {}
    # The run's id (KFP's PIPELINE_JOB_ID placeholder, random per run) is in deploy's lineage record, annotations, card.
    run_id = json.loads((run_dir / "deploy-model" / "lineage").read_text())["run"]["id"]
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if path.is_file() and relative.parts[0] != "logs":
            data = path.read_bytes().replace(str(root).encode(), b"ROOT")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                files[str(relative)] = data  # statistics, models: byte for byte
                continue
            text = text.replace(run_id, "RUNID")
            for pattern, replacement in _VOLATILE:
                text = pattern.sub(replacement, text)
            files[str(relative)] = text.encode()
    return files


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_real_pipeline_gives_the_same_artifacts_warm_and_cold(tmp_path, monkeypatch):
    monkeypatch.delenv(warm.ENV_SWITCH, raising=False)
    summaries, files = {}, {}
    for name, use_warm in (("warm", None), ("cold", False)):
        root = tmp_path / name
        summary = run_local(output_dir=root, rows=2000, use_production_baseline=False, console="silent", warm=use_warm)
        assert summary.succeeded, summary.error
        summaries[name], files[name] = summary, artifact_files(Path(summary.run_dir), root)
    assert [t["warm"] for t in summaries["warm"].tasks] == [True] * 5
    assert [t["warm"] for t in summaries["cold"].tasks] == [False] * 5
    run_log = (Path(summaries["warm"].log_dir) / "run.log").read_text()
    assert run_log.count("warm runner: '") == 5, run_log
    cold_log = (Path(summaries["cold"].log_dir) / "run.log").read_text()
    assert "warm runner: off, each task runs in a fresh interpreter: run_local(warm=False)" in cold_log
    assert sorted(files["warm"]) == sorted(files["cold"])
    assert "train/model/model.joblib" in files["warm"] and "validate-data/train_statistics" in files["warm"]
    different = [name for name in files["warm"] if files["warm"][name] != files["cold"][name]]
    assert different == [], different
    assert summaries["warm"].metrics == summaries["cold"].metrics
