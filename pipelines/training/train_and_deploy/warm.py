"""Warm interpreters for kfp.local's SubprocessRunner: a task's imports are paid while the task before it runs.

kfp 2.13's SubprocessRunner starts every task as ``sh -ec '<script>' <component source> --executor_input ...
--function_to_execute <name>``: the shell writes the source to ``$(mktemp -d)/ephemeral_component.py`` and runs
``python -m kfp.dsl.executor_main --component_module_path <that file> <args>`` with ``_KFP_RUNTIME=true``. Each task
pays a fresh interpreter and its imports (TFDV's ~10 s in validate: TensorFlow and Beam; pandas, pyarrow and
scikit-learn's ~1.3 s in ingest, train and evaluate) and, at exit, TensorFlow's teardown (~1.5 s).

:class:`WarmPool` knows the pipeline's tasks in kfp.local's order (:func:`plan`: the same topological sort, each
task's compiled ``env`` and component source) and keeps up to ``ahead`` interpreters started before their task:
each one (``python -m <this module> <modules>``) is started with the environment the task would get (so
``OMP_NUM_THREADS`` is set before numpy and scikit-learn load), configures logging exactly as kfp's executor does,
imports the task's heavy modules (:data:`HEAVY`) and the kfp-tabular modules its component function imports, then
waits on its stdin for the task's real command. When the console is asked to run a task, :meth:`WarmPool.take`
checks the command is the lightweight-component shape above (the very script kfp would run, with this
interpreter), and that a warm interpreter was started for that function with exactly the environment the task
gets; it then sends the command (argv and cwd) and the interpreter does what the shell would: writes the source to
a fresh temporary directory's ``ephemeral_component.py`` and runs ``kfp.dsl.executor_main`` in process with the same
arguments. Its stdout and stderr are the pipe the console already reads (from its start: what the imports printed
is in the task's log, as in a fresh process). When the executor returns it flushes and leaves with
``os._exit(status)``: no interpreter teardown (the outputs are written and flushed by then; kfp's executor writes
``executor_output.json`` last). An exception prints its traceback and gives status 1, ``SystemExit`` its code:
what the interpreter would do.

Single use: one interpreter runs one task, nothing is forked after TensorFlow is imported. Anything unexpected (a
command of another shape, no interpreter warmed for that function and environment, one that died) runs the task
the normal way, and the console notes why in ``run.log`` and the task's log. Off with ``KFP_TABULAR_WARM=0`` or
``run_local(warm=False)``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Callable

ENV_SWITCH = "KFP_TABULAR_WARM"
#: The heavy third-party modules each component function's task imports (kfp-tabular's own modules come from
#: the component's source, see :func:`preload_modules`). Only what the task imports anyway: a module loaded here
#: that the task would not load would count in its memory.
_SKLEARN_MODEL = (
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.metrics",
    "joblib",
)
HEAVY: dict[str, tuple[str, ...]] = {
    "ingest": ("pandas", "pyarrow.parquet", "sklearn.model_selection"),
    "validate_data": ("tensorflow_data_validation", "pandas", "pyarrow.parquet"),
    "train": ("pandas", "pyarrow.parquet", *_SKLEARN_MODEL),
    "evaluate": ("pandas", "pyarrow.parquet", *_SKLEARN_MODEL),
}
EXECUTOR_MODULE = "kfp.dsl.executor_main"
#: Component functions whose task keeps both cores busy (train's OpenMP gradient-boosting fit, OMP_NUM_THREADS=2):
#: no interpreter starts while it runs (another process's imports beside an OpenMP fit slowed it by 10-15 s in two
#: of five bench runs); the next one starts when it ends.
SOLO = frozenset({"train"})


def enabled(warm: bool | None = None) -> bool:
    """Return whether to use warm interpreters: ``warm`` when given, else not ``KFP_TABULAR_WARM=0``."""
    if warm is not None:
        return warm
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class PlannedTask:
    """A container task of the pipeline, in the order kfp.local runs it."""

    name: str
    function: str
    env: tuple[tuple[str, str], ...]
    source: str


def expected_script() -> str:
    """Return the shell script kfp 2.13 gives a lightweight component, as the SubprocessRunner runs it.

    kfp's own ``_get_command_and_args_for_lightweight_component``, with ``python3`` replaced by this interpreter
    (``subprocess_task_handler.replace_python_executable``).
    """
    from kfp.dsl import component_factory

    def probe() -> None:  # pragma: no cover - never called, only its source is read
        pass

    command, _ = component_factory._get_command_and_args_for_lightweight_component(probe)
    return command[2].replace("python3", sys.executable)


def parse_command(full_command: list[str], script: str) -> tuple[str, list[str], str]:
    """Return ``(source, args, function)`` of a lightweight component's command; ValueError naming what differs."""
    if len(full_command) < 4 or full_command[:2] != ["sh", "-ec"]:
        raise ValueError(f"command starts {full_command[:2]!r}, expected ['sh', '-ec'] (a lightweight component)")
    if full_command[2] != script:
        raise ValueError("the shell script is not kfp 2.13's lightweight-component script for this interpreter")
    args = list(full_command[4:])
    if "--executor_input" not in args or "--function_to_execute" not in args:
        raise ValueError("no --executor_input/--function_to_execute in the command's arguments")
    index = args.index("--function_to_execute")
    if index + 1 >= len(args):
        raise ValueError("--function_to_execute without a value")
    return full_command[3], args, args[index + 1]


def plan(pipeline_spec) -> list[PlannedTask]:
    """Return the pipeline's container tasks in kfp.local's order (its topological sort, nested DAGs inlined)."""
    from google.protobuf import json_format
    from kfp.local import graph_utils

    executors = json_format.MessageToDict(pipeline_spec.deployment_spec).get("executors", {})
    planned: list[PlannedTask] = []

    def walk(dag) -> None:
        order = graph_utils.topological_sort_tasks(dag.tasks)
        while order:  # kfp.local pops from the right
            name = order.pop()
            component = pipeline_spec.components[dag.tasks[name].component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                walk(component.dag)
                continue
            container = executors.get(component.executor_label, {}).get("container")
            if container is None:
                continue
            args, command = list(container.get("args", [])), list(container.get("command", []))
            function = args[args.index("--function_to_execute") + 1] if "--function_to_execute" in args else ""
            env = tuple(sorted((item["name"], item["value"]) for item in container.get("env", [])))
            planned.append(PlannedTask(name, function, env, command[3] if len(command) > 3 else ""))

    walk(pipeline_spec.root.dag)
    return planned


def preload_modules(function: str, source: str) -> list[str]:
    """Return what to import before the task: :data:`HEAVY`'s modules, then the kfp-tabular imports of its function.

    An entry is a module (``pandas``) or ``module:name,name`` for ``from module import name, name`` (a name that
    is a submodule, ``from ...validate import core``, is imported as one).
    """
    modules = list(HEAVY.get(function, ()))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return modules
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                    modules.append(f"{inner.module}:{','.join(alias.name for alias in inner.names)}")
                elif isinstance(inner, ast.Import):
                    modules += [alias.name for alias in inner.names]
    return [m for m in dict.fromkeys(modules) if m.startswith("kfp_tabular.") or m in HEAVY.get(function, ())]


@dataclasses.dataclass
class WarmProcess:
    """An interpreter started for one planned task."""

    task: PlannedTask
    process: subprocess.Popen
    env: dict[str, str]
    modules: list[str]
    started: float


class WarmPool:
    """Interpreters started ahead of their task (module docstring).

    Args:
        planned: The tasks in run order (:func:`plan`).
        base_env: The environment every task starts from (``os.environ`` at the run's start); a task gets it
            updated with its compiled ``env``, as the console's normal path does.
        note: Called with one line for the logs (why a task ran cold, which interpreter ran it).
        initial: How many interpreters to start with the run (the first task's and the next: validate's TFDV
            import, the longest, overlaps ingest).
        ahead: How many to keep waiting once tasks run (one: on two cores, the running task and one import).
        solo: Functions during whose task no interpreter starts (:data:`SOLO`); :meth:`task_done` starts it.
    """

    def __init__(
        self,
        planned: list[PlannedTask],
        base_env: dict[str, str] | None = None,
        note: Callable[[str], None] = lambda text: None,
        initial: int = 2,
        ahead: int = 1,
        solo: frozenset[str] = SOLO,
    ):
        self.planned = list(planned)
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.note = note
        self.initial, self.ahead, self.solo = initial, ahead, solo
        self._held = False
        self.waiting: list[WarmProcess] = []
        self._next = 0
        self._taken = 0
        self._script: str | None = None

    def task_env(self, task: PlannedTask) -> dict[str, str]:
        """Return the environment the console's normal path gives this task."""
        return {**self.base_env, **dict(task.env)}

    def start(self) -> None:
        """Start interpreters until ``initial`` (before the first task) or ``ahead`` are waiting; idempotent."""
        wanted = self.initial if self._next == 0 or self._taken == 0 else self.ahead
        while len(self.waiting) < wanted and self._next < len(self.planned):
            task = self.planned[self._next]
            self._next += 1
            env = self.task_env(task)
            modules = preload_modules(task.function, task.source)
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, *modules],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                env={**env, "_KFP_RUNTIME": "true"},  # what kfp's script sets for its interpreter
            )
            self.waiting.append(WarmProcess(task, process, env, modules, time.monotonic()))

    def take(self, full_command: list[str], env: dict[str, str]) -> subprocess.Popen | None:
        """Hand the task's command to its warm interpreter and return it; None (and a note why): run it cold."""
        try:
            if self._script is None:
                self._script = expected_script()
            _source, _args, function = parse_command(full_command, self._script)
        except Exception as exc:  # any surprise in kfp's internals or the command: the normal path
            self.note(f"warm runner: not used for this task, it runs in a fresh interpreter: {exc}")
            return None
        match = next((w for w in self.waiting if w.task.function == function), None)
        if match is None:
            self.note(f"warm runner: no interpreter was started for {function!r}: it runs in a fresh interpreter")
            return None
        self.waiting.remove(match)
        self._taken += 1
        try:
            if match.env != env:
                differ = sorted(k for k in set(env) | set(match.env) if env.get(k) != match.env.get(k))
                raise ValueError(f"its environment differs from the one warmed ({', '.join(differ)})")
            if match.process.poll() is not None:
                raise ValueError(f"the warm interpreter exited early (status {match.process.returncode})")
            request = {"argv": full_command, "cwd": os.getcwd()}
            match.process.stdin.write(json.dumps(request) + "\n")
            match.process.stdin.close()
        except (ValueError, OSError) as exc:
            self._discard(match)
            self.note(f"warm runner: not used for {function!r}, it runs in a fresh interpreter: {exc}")
            return None
        finally:
            if match.task.function in self.solo:
                self._held = True  # task_done() starts the next one
            else:
                self.start()
        waited = time.monotonic() - match.started
        self.note(
            f"warm runner: {function!r} runs in interpreter {match.process.pid}, started {waited:.1f} s before, "
            f"with {', '.join(m.split(':')[0] for m in match.modules) or 'no module'} imported ahead "
            f"({ENV_SWITCH}=0: a fresh interpreter)"
        )
        return match.process

    def task_done(self) -> None:
        """Note that the running task ended: start what a solo task held back."""
        if self._held:
            self._held = False
            self.start()

    def _discard(self, warm: WarmProcess) -> None:
        if warm.process.poll() is None:
            warm.process.kill()
        warm.process.wait()
        for stream in (warm.process.stdin, warm.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()

    def close(self) -> None:
        """Stop the interpreters no task took (a run that failed or ended before them)."""
        while self.waiting:
            self._discard(self.waiting.pop())


# --- the warm interpreter ----------------------------------------------------------------------------------------
def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run(request: dict) -> int:
    """Do what kfp's script does for ``request["argv"]``, in this interpreter; return the exit status."""
    import tempfile
    import traceback

    from kfp.dsl import executor_main

    argv = request["argv"]
    os.chdir(request["cwd"])
    program_path = tempfile.mkdtemp(prefix="tmp.")  # the script's $(mktemp -d)
    module_path = os.path.join(program_path, "ephemeral_component.py")
    with open(module_path, "w", encoding="utf-8", newline="") as module:
        module.write(argv[3])  # printf "%s" "$0"
    sys.argv = [executor_main.__file__, "--component_module_path", module_path, *argv[4:]]
    try:
        executor_main.executor_main()
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc)
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        traceback.print_exc()
        status = 1
    return status


def main(modules: list[str]) -> None:
    """Be the warm interpreter: configure logging as kfp's executor, import ``modules``, run one task, leave."""
    import importlib
    import logging

    from kfp.dsl import executor_main

    executor_main._setup_logging()  # first, as in a fresh executor: a module's import-time warning goes through it
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for entry in modules:
        module, _, names = entry.partition(":")
        try:
            imported = importlib.import_module(module)
            for name in filter(None, names.split(",")):
                if not hasattr(imported, name):
                    importlib.import_module(f"{module}.{name}")
        except Exception:  # noqa: BLE001, S112 - the task's own import raises it where it belongs
            continue
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    line = sys.stdin.readline()
    if not line:  # the pool closed: no task for this interpreter
        os._exit(0)
    request = json.loads(line)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    status = 1
    try:
        status = _run(request)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - a closed stream: nothing to flush
                pass
        os._exit(status)


if __name__ == "__main__":
    main(sys.argv[1:])
