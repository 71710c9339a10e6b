"""The run's face (console.py): one line per task, each task's output in its log file, memory, the task env."""

import io
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from kfp import dsl, local

from kfp_tabular.pipelines.training.train_and_deploy import console as console_module
from kfp_tabular.pipelines.training.train_and_deploy.console import RssPeak, TaskConsole, count_tasks, process_tree

from .helpers import REPO

PIPELINE_YAML = REPO / "pipelines" / "training" / "train_and_deploy" / "pipeline.yaml"
C, G, R, X = "\x1b[96m", "\x1b[92m", "\x1b[91m", "\x1b[0m"

# What kfp.local 2.13 and a task print, as recorded from `make run` (trimmed): coloured log lines, the child's
# executor input, google.api_core's FutureWarning, Beam's crcmod warning, TF's CUDA chatter, the task outputs.
RECORDED_START = (
    f"12:40:51.795 - INFO - Running pipeline: \x1b[95m'kfp-tabular-train-and-deploy'{X}\n" + "-" * 80 + "\n"
)
RECORDED_VALIDATE = (
    f"12:40:55.584 - INFO - Executing task {C}'validate-data'{X}\n12:40:55.584 - INFO - Streamed logs:\n\n"
    "    [KFP Executor 2026-11-30 12:40:55,800 INFO]: Got executor_input:\n    {\n"
    '        "inputs": {\n            "parameterValues": {\n                "drift_alpha": 0.01\n'
    "            }\n        }\n    }\n"
    "    /work/main/.venv/lib/python3.11/site-packages/google/api_core/_python_version_support.py:273: FutureWarning: "
    "You are using a Python version (3.11.7) which Google will stop supporting\n"
    "      warnings.warn(message, FutureWarning)\n"
    "    [KFP Executor 2026-11-30 12:41:02,929 WARNING]: crcmod package not found. This package is required if "
    "python-snappy or google-crc32c are not installed.\n"
    "    2026-11-30 12:41:05.950409: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:479] Unable to "
    "register cuFFT factory\n"
)
RECORDED_VALIDATE_FAILED = (
    "    Traceback (most recent call last):\n"
    '      File "<frozen runpy>", line 198, in _run_module_as_main\n'
    "    kfp_tabular.components.common.errors.ValidationFailed: data validation failed: 4 anomalies (has_partner)\n"
    f"\n\n12:41:32.635 - ERROR - Task {C}'validate-data'{X} finished with status {R}FAILURE{X}\n" + "-" * 80 + "\n"
)
RECORDED_INGEST = (
    f"12:40:51.800 - INFO - Executing task {C}'ingest'{X}\n12:40:51.801 - INFO - Streamed logs:\n\n"
    "    [KFP Executor 2026-11-30 12:40:51,947 INFO]: Got executor_input:\n    {\n"
    '        "inputs": {\n            "parameterValues": {\n                "label_column": "churned"\n'
    "            }\n        }\n    }\n"
    f"\n\n12:40:55.579 - INFO - Task {C}'ingest'{X} finished with status {G}SUCCESS{X}\n"
    f"12:40:55.580 - INFO - Task {C}'ingest'{X} outputs:\n    rows: 50000\n" + "-" * 80 + "\n"
)
LINE = re.compile(r"^  (✓|✗) (\S+) +(\d+\.\d) s +(\d+|n/a) (MB)? *\((\d)/(\d)\)")


class Terminal(io.StringIO):
    """A terminal stand-in: a TTY or not."""

    def __init__(self, tty: bool = False, encoding: str = "utf-8"):
        super().__init__()
        self.tty, self._encoding = tty, encoding

    @property
    def encoding(self):
        return self._encoding

    def isatty(self) -> bool:
        return self.tty


def feed_failed_run(console: TaskConsole, run_dir: Path) -> None:
    """Drive the console as kfp.local does: two tasks, the second one fails; a third is never reached."""
    console.write(RECORDED_START)
    console.task_started("ingest", run_dir, {"OMP_NUM_THREADS": "1"})
    console.write(RECORDED_INGEST)
    console.task_finished(True)
    console.task_started("validate-data", run_dir, {"OMP_NUM_THREADS": "2"})
    console.write(RECORDED_VALIDATE)
    console.write(RECORDED_VALIDATE_FAILED)
    console.task_finished(False)


def test_non_tty_prints_one_line_per_task_and_the_logs_hold_everything(tmp_path):
    terminal, run_dir = Terminal(), tmp_path / "run-1"
    console = TaskConsole(terminal, total=5)
    feed_failed_run(console, run_dir)
    lines = terminal.getvalue().splitlines()
    assert "\r" not in terminal.getvalue() and "\x1b" not in terminal.getvalue()
    assert lines[0] == f"kfp-tabular local run: 5 tasks, each task's output in {run_dir / 'logs'}/"
    assert len(lines) == 3, lines  # the header, then one line per task that ran; train etc. never ran
    first, second = (LINE.match(line) for line in lines[1:])
    assert first and first.group(1, 2, 6, 7) == ("✓", "ingest", "1", "5"), lines[1]
    assert second and second.group(1, 2, 6, 7) == ("✗", "validate-data", "2", "5"), lines[2]
    assert lines[2].endswith(f"FAILED: see {run_dir / 'logs' / 'validate-data.log'}")
    assert [t.as_dict()["status"] for t in console.tasks] == ["SUCCESS", "FAILURE"]
    assert set(console.tasks[0].as_dict()) == {"name", "status", "seconds", "peak_rss_mb", "log", "ended_s", "warm"}
    assert console.tasks[0].ended_s <= console.tasks[1].ended_s and not console.tasks[0].warm  # no pool: cold
    assert console.tasks[0].peak_rss_mb is None  # no child process was seen: unknown, not 0
    assert console.last_error == "ValidationFailed: data validation failed: 4 anomalies (has_partner)"

    logs = run_dir / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["ingest.log", "run.log", "validate-data.log"]
    validate = (logs / "validate-data.log").read_text()
    for text in ('"drift_alpha": 0.01', "FutureWarning", "crcmod package not found", "cuFFT", "Traceback"):
        assert text in validate, text
    assert "Executing task 'validate-data'" in validate and "\x1b[" not in validate  # colours stripped
    assert validate.startswith("[kfp-tabular] task validate-data: compiled environment applied: OMP_NUM_THREADS=2")
    assert '"label_column": "churned"' in (logs / "ingest.log").read_text()
    assert "drift_alpha" not in (logs / "ingest.log").read_text()
    run_log = (logs / "run.log").read_text()
    assert run_log.startswith("12:40:51.795 - INFO - Running pipeline: 'kfp-tabular-train-and-deploy'")
    assert "executor_input" not in run_log


def test_a_failure_that_is_no_kfp_tabular_error_keeps_its_exception_line(tmp_path):
    console = TaskConsole(Terminal(), total=2)
    console.task_started("ingest", tmp_path / "run", {})
    console.write('    Traceback (most recent call last):\n      File "x.py", line 1, in <module>\n')
    console.write("        raise KeyError('no')\n    rows: 50000\n")
    console.task_finished(True)
    assert console.last_exception == ""  # nothing that looks like an exception line
    console.task_started("validate-data", tmp_path / "run", {})
    error = "TypeError: ValidateRequest.__init__() got an unexpected keyword argument 'memory_budget_mb'"
    console.write(f"    {error}\n")
    console.task_finished(False)
    assert console.last_error == "" and console.last_exception == error


def test_verbose_streams_everything_and_silent_nothing(tmp_path):
    verbose_terminal, silent_terminal = Terminal(), Terminal()
    feed_failed_run(TaskConsole(verbose_terminal, "verbose", total=5), tmp_path / "a")
    feed_failed_run(TaskConsole(silent_terminal, "silent", total=5), tmp_path / "b")
    text = verbose_terminal.getvalue()
    assert RECORDED_VALIDATE in text and RECORDED_INGEST in text  # as kfp.local printed it, colours included
    assert re.search(r"^  ✗ validate-data ", text, re.MULTILINE)
    assert silent_terminal.getvalue() == ""
    assert "crcmod" in (tmp_path / "b" / "logs" / "validate-data.log").read_text()


def test_a_terminal_gets_a_line_rewritten_in_place(tmp_path):
    terminal = Terminal(tty=True)
    console = TaskConsole(terminal, total=3)
    assert console.live
    console.task_started("train", tmp_path / "run", {})
    console._draw()
    console.task_finished(True)
    text = terminal.getvalue().split("\n", 1)[1]  # after the header
    frames = text.split("\r")[1:]
    assert len(frames) >= 3 and all(f.startswith("  ") and f.endswith("\x1b[K") for f in frames[:-1])
    assert re.match(r"  [⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] train +\d+\.\d s +\? MB  \(1/3\)", frames[0]), frames[0]
    assert LINE.match(frames[-1]) and frames[-1].endswith("\x1b[K\n")
    assert not TaskConsole(Terminal(tty=True), "verbose").live  # streamed output is never overwritten


def test_a_terminal_without_unicode_gets_ascii_marks(tmp_path):
    terminal = Terminal(encoding="ascii")
    console = TaskConsole(terminal, total=1)
    console.task_started("ingest", tmp_path / "run", {})
    console.task_finished(True)
    assert terminal.getvalue().splitlines()[1].startswith("  ok ingest ")


def test_the_mode_is_checked_naming_the_field():
    from kfp_tabular.components.common.errors import ConfigError

    with pytest.raises(ConfigError, match="console: expected one of tasks, verbose, silent, got 'loud'"):
        TaskConsole(Terminal(), "loud")


def test_the_task_count_comes_from_the_compiled_pipeline():
    from kfp_tabular.pipelines.training.train_and_deploy.pipeline import train_and_deploy

    spec = yaml.safe_load(PIPELINE_YAML.read_text(encoding="utf-8"))
    assert count_tasks(train_and_deploy.pipeline_spec) == len(spec["root"]["dag"]["tasks"]) == 5


def test_peak_rss_of_a_process_tree_counts_a_grandchild(tmp_path):
    """A shell whose child holds ~150 MB: the tree's peak sees it, the shell alone would not."""
    code = "x = bytearray(150 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\nprint('ready', flush=True)\n"
    code += "import sys; sys.stdin.read()"
    process = subprocess.Popen(
        ["sh", "-c", f'{sys.executable} -c "$0"; echo done', code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        tree = process_tree(process.pid)
        assert len(tree) == 2 and tree[0] == process.pid
        peak = RssPeak(process.pid)
        peak.sample()
        assert peak.mb is not None and peak.mb >= 150, peak.mb
    finally:
        process.communicate("", timeout=30)
    gone = RssPeak(process.pid)
    gone.sample()
    assert gone.mb is None  # a process that is gone gives no figure, not 0


def test_other_packages_warnings_are_kept_from_the_terminal():
    kept: list[str] = []
    shown: list[str] = []
    ours = str(REPO / "pipelines" / "cli.py")
    theirs = str(REPO / ".venv" / "lib" / "python3.11" / "site-packages" / "google" / "api_core" / "x.py")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))  # stderr's stand-in
        with console_module.third_party_warnings_to(kept.append):
            warnings.warn_explicit("Google will stop supporting", FutureWarning, theirs, 273)
            warnings.warn_explicit("a warning of ours", UserWarning, ours, 1)
    assert len(kept) == 1 and "Google will stop supporting" in kept[0]
    assert shown == ["a warning of ours"]


# --- a tiny real pipeline through kfp.local: the compiled env reaches the child; a failure; verbose ----------
@dsl.component(base_image="python:3.11", install_kfp_package=False)
def env_probe() -> str:
    import os
    import time

    time.sleep(0.6)  # alive for several of the console's 0.1 s memory samples (a 0.07 s task can end between two)
    print(f"child sees OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} probe={os.environ.get('PROBE_VALUE')}")
    return os.environ.get("OMP_NUM_THREADS", "")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def failing(seen: str):
    from kfp_tabular.components.common.errors import DataError

    raise DataError(f"probe.csv: column 'x' not found (upstream saw {seen})")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def never(seen: str) -> str:
    return seen


@dsl.pipeline(name="console-probe")
def probe_pipeline():
    probe = env_probe().set_env_variable("OMP_NUM_THREADS", "3").set_env_variable("PROBE_VALUE", "compiled")
    broken = failing(seen=probe.output)
    never(seen=probe.output).after(broken)


@dsl.pipeline(name="console-probe-ok")
def env_only_pipeline():
    env_probe().set_env_variable("OMP_NUM_THREADS", "3").set_env_variable("PROBE_VALUE", "compiled")


def run_probe(pipeline, tmp_path: Path, mode: str) -> tuple[TaskConsole, str, str]:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "runs"), raise_on_error=True)
    terminal = Terminal()
    console = TaskConsole(terminal, mode, total=count_tasks(pipeline.pipeline_spec))
    error = ""
    with console:
        try:
            pipeline()
        except RuntimeError as exc:
            error = str(exc)
    return console, terminal.getvalue(), error


@pytest.fixture()
def parent_env(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # what this process has: the child must get the task's 3
    monkeypatch.delenv("PROBE_VALUE", raising=False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_compiled_env_reaches_the_child_and_a_failure_names_its_log(tmp_path, parent_env):
    console, out, error = run_probe(probe_pipeline, tmp_path, "tasks")
    assert "Inner task failed" in error
    lines = out.splitlines()
    assert len(lines) == 3, out  # the header, env-probe, failing; `never` was not reached
    assert LINE.match(lines[1]).group(1, 2, 6, 7) == ("✓", "env-probe", "1", "3"), lines[1]
    assert LINE.match(lines[2]).group(1, 2, 6, 7) == ("✗", "failing", "2", "3"), lines[2]
    probe, failed = console.tasks
    log = Path(probe.log).read_text()
    assert "child sees OMP_NUM_THREADS=3 probe=compiled" in log, log
    assert probe.seconds > 0 and probe.peak_rss_mb and probe.peak_rss_mb > 5
    assert failed.status == "FAILURE" and lines[2].endswith(f"FAILED: see {failed.log}")
    assert (
        "kfp_tabular.components.common.errors.DataError: probe.csv: column 'x' not found"
        in Path(failed.log).read_text()
    )
    assert console.last_error == "DataError: probe.csv: column 'x' not found (upstream saw 3)"
    assert "Executing task" not in out and "executor_input" not in out
    from kfp.local import subprocess_task_handler, task_dispatcher

    assert task_dispatcher.run_single_task_implementation.__module__ == "kfp.local.task_dispatcher"  # restored
    assert subprocess_task_handler.run_local_subprocess.__module__ == "kfp.local.subprocess_task_handler"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_without_the_console_kfp_local_drops_the_compiled_env(tmp_path, parent_env, capsys):
    """The control: kfp 2.13's SubprocessRunner alone gives the child this process's environment."""
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "runs"), raise_on_error=True)
    env_only_pipeline()
    assert "child sees OMP_NUM_THREADS=7 probe=None" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_verbose_streams_the_task_output_and_still_writes_the_logs(tmp_path, parent_env):
    console, out, error = run_probe(env_only_pipeline, tmp_path, "verbose")
    assert not error
    assert "child sees OMP_NUM_THREADS=3 probe=compiled" in out and "Got executor_input" in out
    assert "child sees OMP_NUM_THREADS=3" in Path(console.tasks[0].log).read_text()
    assert re.search(r"^  ✓ env-probe ", out, re.MULTILINE)


# --- the real thing ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_local_from_the_cli_prints_a_screen_and_keeps_the_rest_in_the_logs(tmp_path):
    summary_json = tmp_path / "summary.json"
    command = [sys.executable, "-m", "kfp_tabular.pipelines.cli", "run-local", "--rows", "3000"]
    command += ["--output-dir", str(tmp_path / "out"), "--summary-json", str(summary_json)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    terminal = out.stdout + out.stderr
    before_summary = out.stdout.split("=" * 100)[0].strip().splitlines()
    assert len(before_summary) == 6 < 60, before_summary  # the header and one line per task
    for text in ("executor_input", "FutureWarning", "crcmod", "cuda", "Executing task", "Streamed logs"):
        assert text not in terminal, text
    assert out.stderr == ""
    summary = json.loads(summary_json.read_text())
    names = ["ingest", "validate-data", "train", "evaluate", "deploy-model"]
    assert [t["name"] for t in summary["tasks"]] == names
    for task, line in zip(summary["tasks"], before_summary[1:]):
        assert set(task) == {"name", "status", "seconds", "peak_rss_mb", "log", "ended_s", "warm"}
        assert task["status"] == "SUCCESS" and task["seconds"] > 0 and task["peak_rss_mb"] > 0, task
        assert task["warm"] is (os.environ.get("KFP_TABULAR_WARM", "1") != "0")  # warm.py: on unless switched off
        match = LINE.match(line)
        assert (
            match
            and match.group(2) == task["name"]
            and float(match.group(3)) == pytest.approx(task["seconds"], abs=0.06)
        )
        log = Path(task["log"]).read_text()
        assert "Got executor_input" in log and f"Executing task '{task['name']}'" in log
    logs = Path(summary["log_dir"])
    assert f"logs: {logs}/" in out.stdout
    assert "crcmod package not found" in (logs / "validate-data.log").read_text()
    compiled = yaml.safe_load(PIPELINE_YAML.read_text(encoding="utf-8"))["deploymentSpec"]["executors"]
    threads = {e["container"]["env"][0]["value"] for e in compiled.values()}
    train_env = next(line for line in (logs / "train.log").read_text().splitlines() if "compiled environment" in line)
    assert train_env.split("OMP_NUM_THREADS=")[1] in threads
    assert "Running pipeline" in (logs / "run.log").read_text()
