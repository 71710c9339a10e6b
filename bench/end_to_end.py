"""End to end: ``kfp-tabular run-local`` against a bare single-process script doing the same work.

For each size, on the bundled default data (cached under ``$KFP_TABULAR_CACHE/bench-data``):

- ours: ``python -m kfp_tabular.pipelines.cli run-local --data-uri <csv> --param schema_uri=<curated> --no-baseline``
  (what ``make run`` does: kfp.local, one subprocess per task, artifacts on disk, reports, blessing, deploy render);
- bare: ``bench/bare_pipeline.py`` (read + split, TFDV statistics + validation, fit, evaluate, joblib; no kfp).

Both are timed as subprocesses (wall seconds and the peak RSS of their largest process, ``/usr/bin/time -v``) and
the ratio ours/bare is printed, with the bare script's own phases and, when the run summary has ``tasks``, ours per
task (``warm``: the task ran in an interpreter started, with its imports, while the task before it ran; see
``pipelines/training/train_and_deploy/warm.py``). With ``--also-cold`` ours runs a second time with
``KFP_TABULAR_WARM=0`` (a fresh interpreter per task, as before the warm runner), right after the first: the
warm runner's gain under the same load. The ROC AUC of both is printed too: the same work must give the same
model quality. Both run once, untimed, on 2,000 rows first (the first run on a machine pays for reading TensorFlow
and scikit-learn from disk).

    .venv/bin/python bench/end_to_end.py --rows 50000 1000000
    .venv/bin/python bench/end_to_end.py --rows 1000000 --also-cold
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import benchlib as bl


def warm_up(workdir: Path, rows: int = 2_000) -> None:
    """Run both once, untimed, on a small table.

    The first run on a machine pays for reading TensorFlow, TFDV and scikit-learn from disk (hundreds of MB), which
    is neither side's cost.
    """
    print(f"[end_to_end] warm-up at {rows} rows (not timed) ...", flush=True)
    bl.run_local_summary(rows, workdir)
    bl.measure(
        [
            bl.PY,
            str(Path(__file__).with_name("bare_pipeline.py")),
            str(bl.bench_data(rows)),
            "--output-dir",
            str(workdir),
        ]
    ).check("bare_pipeline.py warm-up")


def compare(rows: int, workdir: Path, also_cold: bool = False) -> dict:
    """Run ours and the bare script at one size (and ours with fresh interpreters when asked); return them."""
    data = bl.bench_data(rows)
    print(f"[end_to_end] {rows} rows: run-local ...", flush=True)
    ours, summary = bl.run_local_summary(rows, workdir)
    cold = None
    if also_cold:
        print(f"[end_to_end] {rows} rows: run-local, KFP_TABULAR_WARM=0 ...", flush=True)
        cold_run, cold_summary = bl.run_local_summary(rows, workdir / "cold", env={"KFP_TABULAR_WARM": "0"})
        cold = {"seconds": cold_run.seconds, "peak_rss_mb": cold_run.peak_rss_mb}
        cold["tasks"] = bl.summary_tasks(cold_summary)
    print(f"[end_to_end] {rows} rows: bare script ...", flush=True)
    bare = bl.measure(
        [bl.PY, str(Path(__file__).with_name("bare_pipeline.py")), str(data), "--output-dir", str(workdir / "bare")]
    ).check(f"bare_pipeline.py at {rows} rows")
    bare_result = bl.last_json(bare.output)
    return {
        "rows": rows,
        "ours": {"seconds": ours.seconds, "peak_rss_mb": ours.peak_rss_mb},
        "bare": {"seconds": bare.seconds, "peak_rss_mb": bare.peak_rss_mb, "phases": bare_result["phases"]},
        "ratio_seconds": ours.seconds / bare.seconds,
        "ratio_peak_rss": ours.peak_rss_mb / bare.peak_rss_mb,
        "tasks": bl.summary_tasks(summary),
        "summary_has_tasks": "tasks" in summary,
        "roc_auc": {"ours": summary.get("metrics", {}).get("roc_auc"), "bare": bare_result["metrics"]["roc_auc"]},
        "blessed": summary.get("blessing", {}).get("blessed"),
        "ours_cold": cold,
    }


def report(result: dict) -> str:
    """Human lines for one size."""
    rows, ours, bare = result["rows"], result["ours"], result["bare"]
    lines = [
        f"end to end, {rows:,} rows: ours {bl.fmt_s(ours['seconds'])} (peak {bl.fmt_mb(ours['peak_rss_mb'])}), "
        f"bare {bl.fmt_s(bare['seconds'])} (peak {bl.fmt_mb(bare['peak_rss_mb'])}): "
        f"ours/bare {bl.ratio(ours['seconds'], bare['seconds'])} time, "
        f"{bl.ratio(ours['peak_rss_mb'], bare['peak_rss_mb'])} peak RSS",
        f"  ROC AUC ours {result['roc_auc']['ours']}, bare {result['roc_auc']['bare']}",
        "  bare phases: " + ", ".join(f"{name} {bl.fmt_s(s)}" for name, s in bare["phases"].items()),
    ]
    if result["tasks"]:
        lines.append(
            "  ours per task: "
            + ", ".join(
                f"{t['name']} {bl.fmt_s(t.get('seconds'))} "
                f"({bl.fmt_mb(t.get('peak_rss_mb'))}{', warm' if t.get('warm') else ''})"
                for t in result["tasks"]
            )
        )
        lines.append(f"  ours outside the tasks (kfp.local, interpreter): {bl.fmt_s(outside_tasks(result))}")
        if any(t.get("warm") for t in result["tasks"]):
            lines.append("  (warm: the task's interpreter and imports started during the task before it)")
    else:
        lines.append("  ours per task: the run summary has no `tasks` yet (per-task timings not available)")
    cold = result.get("ours_cold")
    if cold:
        lines.append(
            f"  ours with KFP_TABULAR_WARM=0 (a fresh interpreter per task): {bl.fmt_s(cold['seconds'])}, "
            f"ours-cold/bare {bl.ratio(cold['seconds'], bare['seconds'])}, "
            f"warm/cold {bl.ratio(ours['seconds'], cold['seconds'])}; per task: "
            + ", ".join(f"{t['name']} {bl.fmt_s(t.get('seconds'))}" for t in cold["tasks"])
        )
    return "\n".join(lines)


def outside_tasks(result: dict) -> float | None:
    """Wall seconds of ours not spent inside a task (kfp.local's orchestration, the CLI's own start)."""
    seconds = [t.get("seconds") for t in result["tasks"]]
    if not seconds or any(s is None for s in seconds):
        return None
    return result["ours"]["seconds"] - sum(seconds)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the report and the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 1_000_000], help="sizes (default 50k 1M)")
    parser.add_argument("--workdir", default="", help="where runs go (default: a temporary directory)")
    parser.add_argument("--json", default="", help="also write the result as JSON here")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run of both")
    parser.add_argument("--also-cold", action="store_true", help="also run ours with KFP_TABULAR_WARM=0")
    args = parser.parse_args(argv)
    bl.load_line("start")
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        workdir = Path(args.workdir or tmp)
        if not args.no_warmup:
            warm_up(workdir / "warm-up")
        results = []
        for rows in args.rows:
            result = compare(rows, workdir / str(rows), args.also_cold)
            print(report(result), flush=True)
            results.append(result)
    end = bl.load_line("end")
    bl.write_result(args.json, {"bench": "end_to_end", "results": results, "load_end": end})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
