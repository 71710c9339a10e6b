"""The face of a local run: one line per task on the terminal, each task's full output in its own log file.

kfp.local prints everything on the parent's ``sys.stdout``: its own log lines (a ``StreamHandler(sys.stdout)``
made per task) and every line of the task's child process (``print``). :class:`TaskConsole` is that stdout for
the length of a run (``contextlib.redirect_stdout``) and also wraps two kfp.local functions:

- ``task_dispatcher.run_single_task_implementation``: where a task starts and ends (its name, the run
  directory, its compiled ``env`` and its status), so every line written in between goes to
  ``<run_dir>/logs/<task>.log`` and the rest (the pipeline's own lines) to ``<run_dir>/logs/run.log``;
- ``subprocess_task_handler.run_local_subprocess`` (the SubprocessRunner's child): the same command and the same
  streaming, but started with the task's compiled environment (kfp 2.13's SubprocessRunner drops it, a pod gets
  it: ``OMP_NUM_THREADS`` from the CPU limit), and its process id is known, for the memory figure. With a
  ``warm`` pool (warm.py) the child is an interpreter started before the task with that environment and the
  task's imports done, which runs the same command; anything unexpected runs it as above, noted in the logs.

Modes: ``tasks`` (default) prints one line per task, live on a terminal (a spinner, the elapsed seconds and
memory, rewritten in place) and only the finished line otherwise (CI, pipes, notebooks); ``verbose`` streams
everything as kfp.local prints it, plus the finished lines; ``silent`` prints nothing. The log files are
written in every mode, line by line as the output arrives.

Peak memory of a task: a sampler thread (the one that animates the spinner) reads ``VmHWM`` and ``VmRSS`` from
``/proc/<pid>/status`` of the task's child and each of its live descendants every ``interval`` seconds, and once
more when the child closes its output. The figure is the larger of the largest process's ``VmHWM`` and the
largest sum of the tree's ``VmRSS`` in one sample: a peak reached after the last sample (within the last
interval before the child exits) can be missed, and a tree's processes peaking at different times are not
added up. The DockerRunner's tasks run under podman, outside this process tree: their memory is unknown (None).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import os
import re
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, TextIO

MODES = ("tasks", "verbose", "silent")
LOGS_DIR = "logs"
RUN_LOG = "run.log"
NAME_WIDTH = 17

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TASK_ERROR = re.compile(r"kfp_tabular\.components\.common\.errors\.(\w+): (.+)")
#: The last line of a Python traceback as kfp.local prints a child's (indented by 4): ``    TypeError: ...``.
_EXCEPTION = re.compile(r"^ {0,4}((?:\w+\.)*\w*(?:Error|Exception)): (.+)$", re.MULTILINE)
_PIPELINES = Path(__file__).resolve().parents[2]
_OURS = tuple(str(root) + os.sep for root in (_PIPELINES, _PIPELINES.parent / "components"))  # kfp_tabular's code


@dataclasses.dataclass
class TaskRecord:
    """One task of a run as the console saw it."""

    name: str
    index: int
    status: str = "RUNNING"
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    log: str = ""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    started: float = 0.0
    #: Seconds from the run's start (``started``, else the console's) to the task's end.
    ended_s: float = 0.0
    #: Whether the task ran in a warm interpreter (warm.py), started before the task.
    warm: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the summary's contract.

        name, status (SUCCESS/FAILURE), seconds, peak_rss_mb (None: unknown), log, ended_s (seconds from the run's
        start to the task's end) and warm (it ran in a warm interpreter).
        """
        return {
            "name": self.name,
            "status": self.status,
            "seconds": self.seconds,
            "peak_rss_mb": self.peak_rss_mb,
            "log": self.log,
            "ended_s": self.ended_s,
            "warm": self.warm,
        }


def count_tasks(pipeline_spec) -> int:
    """Return the number of container tasks a compiled ``PipelineSpec`` runs (nested DAGs included)."""

    def count(dag) -> int:
        total = 0
        for task in dag.tasks.values():
            component = pipeline_spec.components[task.component_ref.name]
            total += count(component.dag) if component.WhichOneof("implementation") == "dag" else 1
        return total

    return count(pipeline_spec.root.dag)


def _status_kb(pid: int) -> tuple[int, int] | None:
    """``(VmHWM, VmRSS)`` in kB of a live process, None when it is gone (or a zombie: no memory left)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", text, re.MULTILINE))
    if "VmHWM" not in values:
        return None
    return int(values["VmHWM"]), int(values.get("VmRSS", 0))


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its live descendants (from ``/proc/<pid>/task/*/children``)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError, ValueError):
                    todo += [int(c) for c in Path(task.path, "children").read_text().split()]
    return tree


class RssPeak:
    """The peak resident memory of one process tree, from samples (see the module docstring)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.hwm_kb: dict[int, int] = {}
        self.tree_kb = 0

    def sample(self) -> None:
        """Read the tree's memory once."""
        now = 0
        for pid in process_tree(self.pid):
            status = _status_kb(pid)
            if status is not None:
                self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), status[0])
                now += status[1]
        self.tree_kb = max(self.tree_kb, now)

    @property
    def mb(self) -> float | None:
        """The peak so far in MB (MiB), None before any sample saw the process alive."""
        peak = max([self.tree_kb, *self.hwm_kb.values()])
        return round(peak / 1024, 1) if peak else None


class _Symbols:
    def __init__(self, stream: TextIO):
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            "✓✗⠋".encode(encoding)
            unicode = True
        except (LookupError, UnicodeEncodeError):
            unicode = False
        self.ok, self.failed = ("✓", "✗") if unicode else ("ok", "xx")
        self.spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏" if unicode else "|/-\\"


class TaskConsole(io.TextIOBase):
    """kfp.local's stdout during a run: task lines on the terminal, everything in log files (module docstring).

    Use as a context manager around the pipeline call; after it, :attr:`tasks`, :attr:`log_dir`, :attr:`run_dir`
    :attr:`last_error` (the last kfp-tabular error a task printed) and :attr:`last_exception` (the last exception
    line of a traceback the current or last task printed, e.g. ``TypeError: ...``) describe the run.

    Args:
        terminal: Where the task lines go (the real stdout).
        mode: ``tasks``, ``verbose`` or ``silent``.
        total: The number of tasks of the pipeline (the ``(i/n)`` of each line), 0 when unknown.
        interval: Seconds between two samples of memory (and spinner frames).
        live: Animate a line in place; None: when ``terminal`` is a TTY and the mode is ``tasks``.
        on_run_dir: Called with the run directory once it is known, before the logs are created in it.
        warm: Warm interpreters for the SubprocessRunner's tasks (warm.py), None: a fresh one per task.
        started: ``time.monotonic()`` at the run's start (each task's ``ended_s`` counts from it); None: when the
            console is entered.
    """

    def __init__(
        self,
        terminal: TextIO,
        mode: str = "tasks",
        total: int = 0,
        interval: float = 0.1,
        live: bool | None = None,
        on_run_dir: Callable[[Path], None] | None = None,
        warm=None,
        started: float | None = None,
    ):
        from kfp_tabular.components.common.errors import ConfigError

        if mode not in MODES:
            raise ConfigError(f"console: expected one of {', '.join(MODES)}, got {mode!r}")
        self.terminal = terminal
        self.mode = mode
        self.total = total
        self.interval = interval
        isatty = getattr(terminal, "isatty", lambda: False)
        self.live = (mode == "tasks" and bool(isatty())) if live is None else live
        self.on_run_dir = on_run_dir
        self.symbols = _Symbols(terminal)
        self.tasks: list[TaskRecord] = []
        self.run_dir: Path | None = None
        self.log_dir: Path | None = None
        self.last_error = ""
        self.last_exception = ""
        self._current: TaskRecord | None = None
        self._task_log: TextIO | None = None
        self._run_log: TextIO | None = None
        self._pending: list[str] = []  # pipeline-level text before the run directory is known
        self._rss: RssPeak | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame = 0
        self._stack: contextlib.ExitStack | None = None
        self.warm = warm
        self.started = started
        self._entered = time.monotonic() if started is None else started

    # --- the stream kfp.local writes to ---------------------------------------------------------------------
    def writable(self) -> bool:
        """Accept writes (a text stream)."""
        return True

    def write(self, text: str) -> int:
        """Keep the last kfp-tabular error, write to the current log, and to the terminal when verbose."""
        for match in _TASK_ERROR.finditer(text):
            self.last_error = f"{match.group(1)}: {match.group(2).strip()}"
        for match in _EXCEPTION.finditer(text):
            self.last_exception = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2).strip()}"
        plain = _ANSI.sub("", text)
        with self._lock:
            log = self._task_log or self._run_log
            if log is not None:
                log.write(plain)
            else:
                self._pending.append(plain)
            if self.mode == "verbose":
                self.terminal.write(text)
        return len(text)

    def flush(self) -> None:
        """Flush the open logs and the terminal."""
        with self._lock:
            for log in (self._task_log, self._run_log):
                if log is not None:
                    log.flush()
            self.terminal.flush()

    def isatty(self) -> bool:
        """Tell kfp.local and the tasks' printing code this is no terminal."""
        return False

    # --- task lifecycle -------------------------------------------------------------------------------------
    def task_started(self, name: str, run_dir: Path, env: dict[str, str]) -> None:
        """Start a task: open its log (and the run's, the first time), show its line."""
        with self._lock:
            if self.run_dir is None:
                self._open_run(Path(run_dir))
            record = TaskRecord(name=name, index=len(self.tasks) + 1, env=dict(env), started=time.monotonic())
            record.log = str(self.log_dir / f"{name}.log")
            self._task_log = open(record.log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in finished
            applied = " ".join(f"{k}={v}" for k, v in sorted(env.items())) or "(none)"
            self._task_log.write(f"[kfp-tabular] task {name}: compiled environment applied: {applied}\n")
            self._run_log.write(f"[kfp-tabular] task {name}: output in {record.log}\n")
            self.tasks.append(record)
            self._current, self._rss, self.last_exception = record, None, ""
        self._draw()

    def child_started(self, pid: int) -> None:
        """Note that the task's child process runs: sample its memory from now on."""
        with self._lock:
            self._rss = RssPeak(pid)
        self.sample()

    def sample(self) -> None:
        """Sample the current task's memory once (the sampler thread, and the child's last output)."""
        with self._lock:
            rss, record = self._rss, self._current
        if rss is not None and record is not None:
            rss.sample()
            with self._lock:
                if self._current is record:
                    record.peak_rss_mb = rss.mb

    def task_finished(self, succeeded: bool) -> None:
        """End the current task: close its log, print its finished line."""
        with self._lock:
            record = self._current
            if record is None:
                return
            record.seconds = round(time.monotonic() - record.started, 2)
            record.ended_s = round(time.monotonic() - self._entered, 2)
            record.status = "SUCCESS" if succeeded else "FAILURE"
            self._task_log.write(f"[kfp-tabular] task {record.name}: {record.status} in {record.seconds:.1f} s\n")
            self._task_log.close()
            self._task_log, self._current, self._rss = None, None, None
            if self.warm is not None:
                self.warm.task_done()
            if self.mode != "silent":
                prefix = "\r" if self.live else ""
                self.terminal.write(f"{prefix}{self.line(record)}{chr(27) + '[K' if self.live else ''}\n")
                self.terminal.flush()

    def note(self, text: str) -> None:
        """Write a line of kfp-tabular's own to the current task's log and to ``run.log`` (not the terminal)."""
        line = f"[kfp-tabular] {self._current.name + ': ' if self._current else ''}{text}\n"
        with self._lock:
            for log in {id(log): log for log in (self._task_log, self._run_log) if log is not None}.values():
                log.write(line)
            if self._task_log is None and self._run_log is None:
                self._pending.append(line)

    def line(self, record: TaskRecord, frame: str | None = None) -> str:
        """Return a task's terminal line: ``  ✓ ingest            1.7 s   412 MB  (1/5)``."""
        if frame is not None:
            mark = frame
            seconds = time.monotonic() - record.started
        else:
            mark = self.symbols.ok if record.status == "SUCCESS" else self.symbols.failed
            seconds = record.seconds
        memory = f"{record.peak_rss_mb:5.0f} MB" if record.peak_rss_mb else ("    ? MB" if frame else "  n/a   ")
        count = f"({record.index}/{self.total})" if self.total else f"({record.index})"
        text = f"  {mark} {record.name:<{NAME_WIDTH}} {seconds:5.1f} s {memory}  {count}"
        if frame is None and record.status != "SUCCESS":
            text += f"  FAILED: see {record.log}"
        return text

    def _open_run(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        if self.on_run_dir is not None:
            self.on_run_dir(run_dir)
        self.log_dir = run_dir / LOGS_DIR
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._run_log = open(self.log_dir / RUN_LOG, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._run_log.write("".join(drain_deferred_warnings() + self._pending))
        self._pending = []
        if self.mode != "silent":
            tasks = f"{self.total} tasks" if self.total else "tasks"
            self.terminal.write(f"kfp-tabular local run: {tasks}, each task's output in {self.log_dir}/\n")
            self.terminal.flush()

    # --- the sampler / spinner thread -----------------------------------------------------------------------
    def _draw(self) -> None:
        if not self.live or self.mode == "silent":
            return
        with self._lock:
            record = self._current
            if record is None:
                return
            self._frame += 1
            frame = self.symbols.spinner[self._frame % len(self.symbols.spinner)]
            self.terminal.write(f"\r{self.line(record, frame)}\x1b[K")
            self.terminal.flush()

    def _run_sampler(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
            self._draw()

    # --- kfp.local hooks ------------------------------------------------------------------------------------
    def _dispatch(self, original):
        from kfp.local import executor_input_utils, status

        signature = inspect.signature(original)
        console = self

        def run_single_task_implementation(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            name = executor_input_utils.get_local_task_resource_name(arguments["component_name"])
            run_dir = Path(arguments["pipeline_root"]) / arguments["pipeline_resource_name"]
            container = getattr(arguments["executor_spec"], "container", None)
            env = {item.name: item.value for item in getattr(container, "env", [])}
            console.task_started(name, run_dir, env)
            succeeded = False
            try:
                outputs, task_status = original(*args, **kwargs)
                succeeded = task_status == status.Status.SUCCESS
                return outputs, task_status
            finally:
                console.task_finished(succeeded)

        return run_single_task_implementation

    def _run_local_subprocess(self, full_command: list[str]) -> int:
        """Run kfp 2.13's ``run_local_subprocess``, with the task's compiled environment and its pid known."""
        env = dict(os.environ)
        env.update(self._current.env if self._current else {})
        process = self.warm.take(full_command, env) if self.warm is not None else None
        if process is not None and self._current is not None:
            self._current.warm = True
        if process is None:
            process = subprocess.Popen(
                full_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
            )
        with process:
            self.child_started(process.pid)
            if process.stdout:
                for line in iter(process.stdout.readline, ""):
                    print(line, end="")  # kfp.local's indented print, as the original
                self.sample()  # the child closed its output: it is about to exit
                print("\n")
            return process.wait()

    def __enter__(self) -> TaskConsole:
        from kfp.local import subprocess_task_handler, task_dispatcher

        self._stack = contextlib.ExitStack()
        self._entered = time.monotonic() if self.started is None else self.started
        stack = self._stack
        original_dispatch = task_dispatcher.run_single_task_implementation
        original_subprocess = subprocess_task_handler.run_local_subprocess
        task_dispatcher.run_single_task_implementation = self._dispatch(original_dispatch)
        subprocess_task_handler.run_local_subprocess = self._run_local_subprocess

        def restore() -> None:
            task_dispatcher.run_single_task_implementation = original_dispatch
            subprocess_task_handler.run_local_subprocess = original_subprocess

        stack.callback(restore)
        if self.warm is not None:
            self.warm.note = self.note
            stack.callback(self.warm.close)
            self.warm.start()
        if self.mode != "verbose":
            stack.enter_context(third_party_warnings_to(self.write))
        stack.enter_context(contextlib.redirect_stdout(self))
        self._thread = threading.Thread(target=self._run_sampler, name="kfp-tabular-console", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._stack.close()
        finally:
            with self._lock:
                if self._current is not None:  # interrupted inside a task
                    self.task_finished(False)
                if self._run_log is not None:
                    self._run_log.close()
                    self._run_log = None
                elif self._pending and exc_type is not None and self.mode != "verbose":
                    # No task ever started: there is no log file to keep kfp.local's words, show them.
                    self.terminal.write("".join(self._pending))
                    self._pending = []


# --- warnings of other packages in this process ------------------------------------------------------------
_DEFERRED: list[str] = []


def drain_deferred_warnings() -> list[str]:
    """Return (and forget) the third-party warnings recorded before any run log existed."""
    taken = list(_DEFERRED)
    _DEFERRED.clear()
    return taken


@contextlib.contextmanager
def third_party_warnings_to(sink: Callable[[str], Any] | None = None):
    """Send warnings raised outside kfp-tabular's code to ``sink`` instead of stderr.

    E.g. google.api_core's Python-version FutureWarning. The default sink keeps them for the next run's
    ``run.log``; kfp-tabular's own warnings stay on stderr.
    """
    original = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if str(Path(filename).resolve()).startswith(_OURS):
            return original(message, category, filename, lineno, file, line)
        text = warnings.formatwarning(message, category, filename, lineno, line)
        (sink or _DEFERRED.append)(text)

    warnings.showwarning = showwarning
    try:
        yield
    finally:
        warnings.showwarning = original
