"""``make bench``: every bench in turn, then one Markdown table of ratios, printed and written to a file.

1. end_to_end.py: run-local vs the bare script at 50k and 1M rows;
2. tfx_compare.py: ingest+validate vs TFX's four components at 1M rows (ours from the 1M run's summary tasks when
   it has them);
3. statistics_inprocess.py: our statistics step vs in-process TFDV;
4. compile_time.py: ``kfp-tabular compile`` vs a trivial one-step pipeline;
5. scale.py: exponents over 100k, 1M (reused from 1) and any ``--scale-rows`` (e.g. 5M).

A bench that fails is reported as failed in the table, with its error; the others still run. Results (the table,
the load at start and end, each bench's JSON) go to ``--output`` (default local_outputs/bench).

    .venv/bin/python bench/run_all.py                      # make bench
    .venv/bin/python bench/run_all.py --scale-rows 5000000 # make bench SCALE_ROWS=5000000
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import time
from pathlib import Path

import benchlib as bl

HERE = Path(__file__).resolve().parent
BENCHES = ("end_to_end", "tfx_compare", "statistics_inprocess", "compile_time", "scale")


def run_bench(name: str, args: list[str], out: Path) -> dict:
    """Run one bench script (its output streamed); return its JSON result or the error."""
    json_path = out / f"{name}.json"
    json_path.unlink(missing_ok=True)
    print(f"\n===== {name} {' '.join(args)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run([bl.PY, str(HERE / f"{name}.py"), *args, "--json", str(json_path)])
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or not json_path.exists():
        return {"error": f"{name}.py exited with {proc.returncode} (see its output above)", "bench_seconds": seconds}
    return {**json.loads(json_path.read_text(encoding="utf-8")), "bench_seconds": seconds}


def code_version() -> str:
    """Return the commit the bench ran and how many tracked files differed from it (others edit the checkout)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
        dirty = subprocess.run(["git", "status", "--short", "-uno"], capture_output=True, text=True, cwd=HERE)
    except OSError as exc:
        return f"code: unknown ({exc})"
    changed = len(dirty.stdout.splitlines())
    return f"code: {head.stdout.strip() or '?'}" + (f" + uncommitted changes in {changed} file(s)" if changed else "")


def table(results: dict) -> str:
    """One row per comparison: what, ours, baseline, ratio."""
    rows = []
    e2e = results["end_to_end"]
    if "error" in e2e:
        rows.append(["end to end", "failed", "", e2e["error"], ""])
    for r in e2e.get("results", []):
        rows.append(
            [
                f"end to end, {r['rows']:,} rows: run-local vs bare script",
                f"{bl.fmt_s(r['ours']['seconds'])}, {bl.fmt_mb(r['ours']['peak_rss_mb'])}",
                f"{bl.fmt_s(r['bare']['seconds'])}, {bl.fmt_mb(r['bare']['peak_rss_mb'])}",
                f"ours/bare {r['ratio_seconds']:.2f}x time, {r['ratio_peak_rss']:.2f}x RSS",
                "bare phases: " + ", ".join(f"{k} {bl.fmt_s(v)}" for k, v in r["bare"]["phases"].items()),
            ]
        )
        for t in r.get("tasks", []):
            rows.append(
                [
                    f"  task {t['name']} ({r['rows']:,} rows)",
                    f"{bl.fmt_s(t.get('seconds'))}, {bl.fmt_mb(t.get('peak_rss_mb'))}",
                    "",
                    "",
                    t.get("status", ""),
                ]
            )
    tfx = results["tfx_compare"]
    if "error" in tfx:
        rows.append(["ingest+validate vs TFX", "failed", "", tfx["error"], ""])
    elif "ours" in tfx:
        ours = tfx["ours"]
        steps = ", ".join(f"{k} {bl.fmt_s(v['seconds'])}" for k, v in ours["steps"].items())
        if "error" in tfx["tfx"]:
            baseline, ratio = "no figure: " + tfx["tfx"]["error"].splitlines()[0], "n/a"
        else:
            baseline = f"{bl.fmt_s(tfx['tfx']['seconds'])}, {bl.fmt_mb(tfx['tfx']['peak_rss_mb'])}"
            ratio = (
                f"TFX/ours {tfx['ratio_tfx_over_ours']:.1f}x time (goal >= 10x: "
                f"{'met' if tfx['goal_10x_met'] else 'NOT met'}), "
                f"{bl.ratio(tfx['tfx']['peak_rss_mb'], ours['peak_rss_mb'])} RSS"
            )
        rows.append(
            [
                f"ingest+validate, {tfx['rows']:,} rows: ours vs TFX 1.16 (4 components)",
                f"{bl.fmt_s(ours['seconds'])}, {bl.fmt_mb(ours['peak_rss_mb'])}",
                baseline,
                ratio,
                f"ours: {steps} ({ours['source']})",
            ]
        )
    stats = results["statistics_inprocess"]
    if "error" in stats:
        rows.append(["statistics vs in-process TFDV", "failed", "", stats["error"], ""])
    else:
        t = stats["seconds"]
        rows.append(
            [
                f"statistics, {stats['rows']:,} rows: ours vs tfdv.generate_statistics_from_dataframe",
                bl.fmt_s(t["ours"]),
                f"{bl.fmt_s(t['tfdv_file'])} (file), {bl.fmt_s(t['tfdv_memory'])} (in memory)",
                f"ours/TFDV {stats['ratio_ours_over_tfdv_file']:.2f}x (file), "
                f"{stats['ratio_ours_over_tfdv_memory']:.2f}x (memory)",
                f"best of {stats['repeat']}",
            ]
        )
    comp = results["compile_time"]
    if "error" in comp:
        rows.append(["compile", "failed", "", comp["error"], ""])
    else:
        rows.append(
            [
                "compile: kfp-tabular compile vs a trivial one-step pipeline",
                bl.fmt_s(comp["ours"]["seconds"]),
                bl.fmt_s(comp["trivial"]["seconds"]),
                f"ours/trivial {comp['ratio']:.2f}x",
                f"fresh interpreter, best of {comp['repeat']}",
            ]
        )
    scale = results["scale"]
    if "error" in scale:
        rows.append(["scale exponents", "failed", "", scale["error"], ""])
    for f in scale.get("fits", []):
        b = "n/a" if f["b"] is None else f"{f['b']:.2f}"
        d = "n/a" if f["d"] is None else f"{f['d']:.2f}"
        rows.append(
            [
                f"scale {f['name']}: " + " / ".join(f"{r:,}" for r in f["rows"]) + " rows",
                " / ".join(bl.fmt_s(s) for s in f["seconds"]),
                "",
                f"time ~ rows^{b}, peak RSS ~ rows^{d}",
                "",
            ]
        )
    return bl.markdown_table(["comparison", "ours", "baseline", "ratio", "notes"], rows)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the report and the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 1_000_000], help="end-to-end sizes")
    parser.add_argument("--tfx-rows", type=int, default=1_000_000)
    parser.add_argument("--stats-rows", type=int, default=1_000_000)
    parser.add_argument("--scale-rows", type=int, nargs="*", default=[], help="more scale sizes, e.g. 5000000")
    parser.add_argument("--output", default="local_outputs/bench", help="results.md and each bench's JSON go here")
    parser.add_argument("--table-only", action="store_true", help="print the table of the JSON files in --output")
    args = parser.parse_args(argv)
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        results = {}
        for name in BENCHES:
            path = out / f"{name}.json"
            results[name] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"error": "not run"}
        print(table(results))
        return 0
    work = out / "work"
    started = time.perf_counter()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    load_start = bl.load_line("start")
    version = code_version()
    print(f"[bench] {version}", flush=True)
    results = {}
    rows = [str(r) for r in args.rows]
    results["end_to_end"] = run_bench("end_to_end", ["--rows", *rows, "--workdir", str(work / "e2e")], out)
    summary = work / "e2e" / str(args.tfx_rows) / f"summary-{args.tfx_rows}.json"
    tfx_args = ["--rows", str(args.tfx_rows), "--workdir", str(work / "tfx")]
    results["tfx_compare"] = run_bench(
        "tfx_compare", tfx_args + (["--summary-json", str(summary)] if summary.exists() else []), out
    )
    results["statistics_inprocess"] = run_bench("statistics_inprocess", ["--rows", str(args.stats_rows)], out)
    results["compile_time"] = run_bench("compile_time", [], out)
    scale_rows = sorted({100_000, 1_000_000, *args.scale_rows})
    scale_args = ["--rows", *map(str, scale_rows), "--workdir", str(work / "scale")]
    if "error" not in results["end_to_end"]:
        scale_args += ["--reuse", str(out / "end_to_end.json")]
    results["scale"] = run_bench("scale", scale_args, out)
    load_end = bl.load_line("end")
    minutes = (time.perf_counter() - started) / 60
    text = "\n".join(
        [
            f"# kfp-tabular bench results ({date}, {minutes:.0f} min)",
            "",
            f"- {load_start}",
            f"- {load_end}",
            f"- {version} at the start (the tasks run the checkout's code as it is when each starts)",
            "",
            table(results),
            "",
        ]
    )
    (out / "results.md").write_text(text, encoding="utf-8")
    print("\n" + text)
    print(f"written to {out / 'results.md'}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
