"""What every bench script shares: the machine's load, the cached data, a measured subprocess, tables and fits.

Standard library only at import time (``--help`` stays instant); the data generator is imported when data is made.
Every figure a bench prints is a ratio against a baseline measured in the same run: the absolute seconds depend
on the machine and on whatever else runs on it, which is why each script prints ``uptime`` before and after.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
SEED = 42


def cache_dir() -> Path:
    """``$KFP_TABULAR_CACHE`` (the Makefile exports it), else ``~/.cache/kfp-tabular``."""
    return Path(os.environ.get("KFP_TABULAR_CACHE") or Path.home() / ".cache" / "kfp-tabular")


def uptime() -> str:
    """Return the machine's load as ``uptime`` prints it (other engineers share this machine)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def load_line(when: str) -> str:
    """Print and return ``[bench] load <when>: <uptime>``."""
    line = f"[bench] load {when}: {uptime()}"
    print(line, flush=True)
    return line


def bench_data(rows: int, seed: int = SEED) -> Path:
    """Return the bundled default data (``synthetic_data.core``) as CSV, generated once per rows+seed (cached)."""
    path = cache_dir() / "bench-data" / f"churn-default-{rows}-{seed}.csv"
    if not path.exists():
        from kfp_tabular.components.data_processing.synthetic_data import core

        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        core.write(core.generate(rows, seed), path)
        print(f"[bench] generated {path} ({time.perf_counter() - started:.1f}s)", flush=True)
    return path


@dataclasses.dataclass
class Measured:
    """One subprocess: wall seconds, the peak RSS of its largest process (MB), exit code and output tail."""

    command: list[str]
    seconds: float
    peak_rss_mb: float
    returncode: int
    output: str

    def check(self, what: str) -> Measured:
        """Raise with the output's tail when the command failed (a bench never reports a failed run's time)."""
        if self.returncode != 0:
            tail = "\n".join(self.output.strip().splitlines()[-30:])
            raise RuntimeError(f"{what} failed (exit {self.returncode}): {' '.join(self.command)}\n{tail}")
        return self


_MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def measure(command: list[str], env: dict | None = None, cwd: str | Path | None = None, echo: bool = False) -> Measured:
    """Run a command under ``/usr/bin/time -v``: wall time, and the peak RSS of its largest process.

    ``time -v`` reports the largest resident set among the process and the children it waited for (kfp.local's
    tasks are children of the run-local process), not a sum. Without ``/usr/bin/time`` the peak comes from
    ``getrusage(RUSAGE_CHILDREN)``, which is only right for the first child of this interpreter (a running maximum).
    """
    import resource
    import tempfile

    timer = Path("/usr/bin/time")
    full_env = {**os.environ, **(env or {})}
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        wrapped = [str(timer), "-v", "-o", report.name, *command] if timer.exists() else list(command)
        started = time.perf_counter()
        proc = subprocess.run(
            wrapped,
            env=full_env,
            cwd=cwd,
            stdout=None if echo else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seconds = time.perf_counter() - started
        found = _MAX_RSS.search(Path(report.name).read_text()) if timer.exists() else None
    if found:
        peak = int(found.group(1)) / 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return Measured(list(command), seconds, peak, proc.returncode, proc.stdout or "")


def last_json(output: str) -> dict:
    """Parse the last line of a command's output that is a JSON object (how the bench scripts hand results back)."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError("no JSON result line in the output:\n" + "\n".join(output.strip().splitlines()[-20:]))


def ratio(value: float | None, baseline: float | None) -> str:
    """``value / baseline`` as ``1.23x`` ("n/a" when either is missing or the baseline is zero)."""
    if value is None or not baseline:
        return "n/a"
    return f"{value / baseline:.2f}x"


def fmt_s(seconds: float | None) -> str:
    """Format seconds ("n/a" for None)."""
    return "n/a" if seconds is None else f"{seconds:.1f}s" if seconds >= 10 else f"{seconds:.2f}s"


def fmt_mb(mb: float | None) -> str:
    """Format megabytes ("n/a" for None)."""
    return "n/a" if mb is None else f"{mb:,.0f} MB"


def markdown_table(header: list[str], rows: list[list]) -> str:
    """Render a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def loglog_fit(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Least squares of log y = log a + b log x: return ``(a, b)`` (None with fewer than 2 usable points)."""
    points = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y and y > 0]
    if len(points) < 2 or len({p[0] for p in points}) < 2:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return math.exp(my - b * mx), b


def run_local_summary(rows: int, workdir: Path, echo: bool = False, env: dict | None = None) -> tuple[Measured, dict]:
    """Run the pipeline end to end (``kfp-tabular run-local --no-baseline``) on the cached data; return both.

    The data is the cached bundled CSV given as ``--data-uri`` together with the curated schema, which is what
    ``run-local`` does with its own generated copy (so the generation is not timed). ``env``: added to this
    process's environment (e.g. ``KFP_TABULAR_WARM=0``: every task in a fresh interpreter).
    """
    from kfp_tabular.components.data_processing.synthetic_data.core import curated_schema_path

    data = bench_data(rows)
    summary_path = workdir / f"summary-{rows}.json"
    command = [
        PY,
        "-m",
        "kfp_tabular.pipelines.cli",
        "run-local",
        "--rows",
        str(rows),
        "--seed",
        str(SEED),
        "--data-uri",
        str(data),
        "--param",
        f"schema_uri={curated_schema_path()}",
        "--output-dir",
        str(workdir / f"ours-{rows}"),
        "--no-baseline",
        "--summary-json",
        str(summary_path),
    ]
    measured = measure(command, env=env, echo=echo).check(f"run-local at {rows} rows")
    return measured, json.loads(summary_path.read_text(encoding="utf-8"))


def summary_tasks(summary: dict) -> list[dict]:
    """Return the run summary's per-task timings (``tasks``), [] when it has none."""
    tasks = summary.get("tasks") or []
    return [t for t in tasks if isinstance(t, dict) and "name" in t]


def write_result(path: str | None, result: dict) -> None:
    """Print a script's result as one JSON line (run_all reads it) and also write it to ``path`` when given."""
    text = json.dumps(result, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
    print(text, flush=True)


def best_of(repeat: int, fn) -> float:
    """Return the best wall time of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)
