"""Scale exponents: ``run-local`` at several sizes, fitting seconds ~ a * rows^b and peak RSS ~ c * rows^d.

The fit is a least-squares line in log-log space per task (from the run summary's ``tasks`` when it has them) and
for the whole run (wall seconds and the peak RSS of its largest process, ``/usr/bin/time -v``). b = 1 is linear;
b well under 1 means a fixed cost still dominates at these sizes. Sizes already measured by the end-to-end bench
can be passed in with ``--reuse`` (its JSON, or an earlier scale.py's) instead of being run again.

    .venv/bin/python bench/scale.py --rows 100000 1000000
    .venv/bin/python bench/scale.py --rows 100000 1000000 5000000 --reuse local_outputs/bench/scale.json  # add 5M
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import benchlib as bl


def point_from_run(rows: int, workdir: Path) -> dict:
    """Run run-local at one size; return its point."""
    print(f"[scale] {rows} rows: run-local ...", flush=True)
    measured, summary = bl.run_local_summary(rows, workdir)
    return {
        "rows": rows,
        "seconds": measured.seconds,
        "peak_rss_mb": measured.peak_rss_mb,
        "tasks": bl.summary_tasks(summary),
    }


def points_from_json(path: str) -> list[dict]:
    """Read points already measured: an ``end_to_end.py --json`` file (its runs) or a ``scale.py --json`` file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("bench") == "scale":
        return data["points"]
    return [
        {
            "rows": r["rows"],
            "seconds": r["ours"]["seconds"],
            "peak_rss_mb": r["ours"]["peak_rss_mb"],
            "tasks": r["tasks"],
        }
        for r in data.get("results", [])
    ]


def fit(points: list[dict]) -> list[dict]:
    """Exponents for the whole run and each task found in every point's ``tasks``."""
    series = {"(whole run)": [(p["rows"], p["seconds"], p["peak_rss_mb"]) for p in points]}
    names = [t["name"] for t in points[0]["tasks"]] if points else []
    for name in names:
        values = []
        for p in points:
            task = next((t for t in p["tasks"] if t["name"] == name), None)
            if task is None:
                break
            values.append((p["rows"], task.get("seconds"), task.get("peak_rss_mb")))
        else:
            series[name] = values
    out = []
    for name, values in series.items():
        rows = [v[0] for v in values]
        time_fit = bl.loglog_fit(rows, [v[1] for v in values])
        rss_fit = bl.loglog_fit(rows, [v[2] for v in values])
        out.append(
            {
                "name": name,
                "rows": rows,
                "seconds": [v[1] for v in values],
                "peak_rss_mb": [v[2] for v in values],
                "a": time_fit[0] if time_fit else None,
                "b": time_fit[1] if time_fit else None,
                "c": rss_fit[0] if rss_fit else None,
                "d": rss_fit[1] if rss_fit else None,
            }
        )
    return out


def report(fits: list[dict], has_tasks: bool) -> str:
    """Format the fits as a Markdown table."""
    header = ["task", "rows", "seconds", "peak RSS MB", "b (time)", "d (RSS)"]
    rows = [
        [
            f["name"],
            " / ".join(f"{r:,}" for r in f["rows"]),
            " / ".join(bl.fmt_s(s) for s in f["seconds"]),
            " / ".join("n/a" if m is None else f"{m:,.0f}" for m in f["peak_rss_mb"]),
            "n/a" if f["b"] is None else f"{f['b']:.2f}",
            "n/a" if f["d"] is None else f"{f['d']:.2f}",
        ]
        for f in fits
    ]
    note = "" if has_tasks else "\n(the run summaries have no `tasks` yet: whole-run exponents only)"
    return "scale exponents: seconds ~ a*rows^b, peak RSS ~ c*rows^d\n" + bl.markdown_table(header, rows) + note


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the report and the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000], help="sizes to run")
    parser.add_argument(
        "--reuse",
        nargs="*",
        default=[],
        help="end_to_end.py or scale.py --json files: the sizes of --rows they hold are not run again",
    )
    parser.add_argument("--workdir", default="", help="default: a temporary directory")
    parser.add_argument("--json", default="", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    bl.load_line("start")
    points: dict[int, dict] = {}
    for path in args.reuse:  # only the sizes asked for: a reused file may hold others (e.g. a cold first run)
        points.update({p["rows"]: p for p in points_from_json(path) if p["rows"] in args.rows})
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for rows in args.rows:
            if rows not in points:
                points[rows] = point_from_run(rows, Path(args.workdir or tmp) / str(rows))
    points = [points[rows] for rows in sorted(points)]
    fits = fit(points)
    has_tasks = all(p["tasks"] for p in points)
    print(report(fits, has_tasks), flush=True)
    end = bl.load_line("end")
    bl.write_result(
        args.json, {"bench": "scale", "points": points, "fits": fits, "has_tasks": has_tasks, "load_end": end}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
