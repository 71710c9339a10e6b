"""Ingest + validate: ours against TFX's CsvExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator.

On the same cached CSV of the bundled data (1M rows by default):

- TFX 1.16: ``bench/tfx_pipeline.py`` in its own venv (``bench/tfx_env.sh`` builds it under
  ``$KFP_TABULAR_CACHE/tfx-1.16``; never in the project's locks), LocalDagRunner, Beam in process;
- ours: the ingest and validate tasks. Their seconds and peak RSS come from a run summary's ``tasks``
  (``--summary-json``, e.g. the end-to-end bench's run at the same size) when it has them (when the tasks ran in
  warm interpreters, whose imports overlap the task before, ours is the wall time from the run's start to
  validate's end, ``ended_s``, not the sum of the two tasks); otherwise each
  component's core runs in its own subprocess, as the pipeline runs each task (ingest writes the two Parquet
  splits, validate computes both splits' statistics, validates them against the curated schema, measures drift
  and writes every report).

It prints both, the ratio TFX/ours (the goal: ours at least 10x faster at 1M rows) and each one's peak RSS. When
TFX is not installed or fails, it says so with the error and prints no TFX figure.

    .venv/bin/python bench/tfx_compare.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import benchlib as bl

LABEL = "churned"


def tfx_python() -> Path:
    """Return the TFX venv's interpreter."""
    return bl.cache_dir() / "tfx-1.16" / "bin" / "python"


def tfx_ready() -> str:
    """Return "" when the TFX venv is complete, else why not (with the build log's tail)."""
    venv = bl.cache_dir() / "tfx-1.16"
    if (venv / ".installed").exists() and tfx_python().exists():
        return ""
    log = Path(str(venv) + ".log")
    tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-15:]) if log.exists() else "(no build log)"
    return f"TFX venv {venv} is not built (run bash bench/tfx_env.sh); build log {log} ends with:\n{tail}"


def run_step(step: str, data: str, out: Path) -> None:
    """One component's core, as its task runs it (called in a subprocess of its own)."""
    if step == "ingest":
        from kfp_tabular.components.data_processing.ingest.core import ingest
        from kfp_tabular.components.data_processing.ingest.request import IngestRequest

        ingest(IngestRequest(data_uri=data, label_column=LABEL), out / "train.parquet", out / "eval.parquet")
    else:
        from kfp_tabular.components.data_processing.synthetic_data.core import curated_schema_path
        from kfp_tabular.components.data_processing.validate.core import validate
        from kfp_tabular.components.data_processing.validate.request import ValidateRequest

        validate(
            str(out / "train.parquet"),
            str(out / "eval.parquet"),
            ValidateRequest(label_column=LABEL, schema_uri=curated_schema_path()),
            train_statistics_path=str(out / "train_statistics"),
            eval_statistics_path=str(out / "eval_statistics"),
            schema_path=str(out / "schema"),
            anomalies_path=str(out / "anomalies"),
            anomalies_report_path=str(out / "anomalies_report"),
            statistics_html_path=str(out / "statistics_html"),
            report_path=str(out / "report"),
        )


def ours_from_cores(data: Path, workdir: Path) -> dict:
    """Run ingest's and validate's cores, each in a subprocess; their seconds and peak RSS."""
    out = workdir / "ours"
    out.mkdir(parents=True, exist_ok=True)
    steps = {}
    for step in ("ingest", "validate"):
        command = [bl.PY, __file__, "--run-step", step, "--data", str(data), "--out", str(out)]
        measured = bl.measure(command).check(f"our {step} core")
        steps[step] = {"seconds": measured.seconds, "peak_rss_mb": measured.peak_rss_mb}
    return {"source": "cores in subprocesses", "steps": steps}


def ours_from_summary(summary: dict) -> dict | None:
    """Return the ingest and validate tasks of a run summary that has ``tasks`` (None when it has not)."""
    tasks = {t["name"]: t for t in bl.summary_tasks(summary)}
    ingest = next((t for name, t in tasks.items() if name.startswith("ingest")), None)
    validate = next((t for name, t in tasks.items() if name.startswith("validate")), None)
    if not ingest or not validate or ingest.get("seconds") is None or validate.get("seconds") is None:
        return None
    steps = {
        "ingest": {"seconds": ingest["seconds"], "peak_rss_mb": ingest.get("peak_rss_mb")},
        "validate": {"seconds": validate["seconds"], "peak_rss_mb": validate.get("peak_rss_mb")},
    }
    ours = {"source": "run summary tasks", "steps": steps}
    if ingest.get("warm") or validate.get("warm"):
        # Warm interpreters (warm.py) import a task's modules before the task starts, overlapping the task before:
        # the sum of the two tasks' seconds would leave that out. Ours is then the wall time from the run's start
        # (the console's, in run-local) to validate's end, every import and kfp.local's start-up included.
        if validate.get("ended_s") is None:
            return None
        ours["wall_seconds"] = validate["ended_s"]
        ours["source"] = "run summary: run start to validate's end (warm interpreters)"
    return ours


def run_tfx(data: Path, workdir: Path) -> dict:
    """TFX's four components on the data, in the TFX venv; wall seconds, peak RSS, or the error."""
    why = tfx_ready()
    if why:
        return {"error": why}
    command = [str(tfx_python()), str(Path(__file__).with_name("tfx_pipeline.py")), str(data)]
    command += ["--workdir", str(workdir / "tfx")]
    # PYTHONPATH of the project's environment must not leak into TFX's.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    measured = bl.measure(command, env=env)
    if measured.returncode != 0:
        tail = "\n".join(measured.output.strip().splitlines()[-25:])
        return {"error": f"TFX pipeline failed (exit {measured.returncode}):\n{tail}"}
    return {"seconds": measured.seconds, "peak_rss_mb": measured.peak_rss_mb, **bl.last_json(measured.output)}


def compare(rows: int, workdir: Path, summary: dict | None) -> dict:
    """Measure ours and TFX at one size."""
    data = bl.bench_data(rows)
    ours = ours_from_summary(summary) if summary else None
    if ours is None:
        print(f"[tfx_compare] {rows} rows: our ingest and validate cores ...", flush=True)
        ours = ours_from_cores(data, workdir)
    steps = ours["steps"].values()
    ours["seconds"] = ours.get("wall_seconds") or sum(s["seconds"] for s in steps)
    peaks = [s["peak_rss_mb"] for s in steps if s.get("peak_rss_mb") is not None]
    ours["peak_rss_mb"] = max(peaks) if peaks else None
    print(f"[tfx_compare] {rows} rows: TFX (CsvExampleGen, StatisticsGen, SchemaGen, ExampleValidator) ...", flush=True)
    tfx = run_tfx(data, workdir)
    result = {"rows": rows, "ours": ours, "tfx": tfx}
    if "seconds" in tfx:
        result["ratio_tfx_over_ours"] = tfx["seconds"] / ours["seconds"]
        result["goal_10x_met"] = result["ratio_tfx_over_ours"] >= 10
    return result


def report(result: dict) -> str:
    """Format the result as lines."""
    ours, tfx = result["ours"], result["tfx"]
    lines = [
        f"ingest+validate, {result['rows']:,} rows: ours {bl.fmt_s(ours['seconds'])} "
        f"(peak {bl.fmt_mb(ours['peak_rss_mb'])}; {ours['source']}: "
        + ", ".join(
            f"{k} {bl.fmt_s(v['seconds'])} / {bl.fmt_mb(v.get('peak_rss_mb'))}" for k, v in ours["steps"].items()
        )
        + ")"
    ]
    if "error" in tfx:
        lines.append(f"  TFX: NO FIGURE. {tfx['error']}")
    else:
        lines.append(
            f"  TFX {bl.fmt_s(tfx['seconds'])} (peak {bl.fmt_mb(tfx['peak_rss_mb'])}; per component "
            + ", ".join(f"{k} {v:.1f}s" for k, v in tfx.get("components", {}).items() if isinstance(v, float))
            + f"): TFX/ours {bl.ratio(tfx['seconds'], ours['seconds'])} time "
            f"(goal >= 10x: {'met' if result['goal_10x_met'] else 'NOT met'}), "
            f"TFX/ours {bl.ratio(tfx['peak_rss_mb'], ours['peak_rss_mb'])} peak RSS"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the report and the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--summary-json", default="", help="a run-local summary at the same size (uses its tasks)")
    parser.add_argument("--workdir", default="", help="default: a temporary directory")
    parser.add_argument("--json", default="", help="also write the result as JSON here")
    parser.add_argument("--run-step", choices=("ingest", "validate"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_step:
        run_step(args.run_step, args.data, Path(args.out))
        return 0
    summary = json.loads(Path(args.summary_json).read_text()) if args.summary_json else None
    bl.load_line("start")
    with tempfile.TemporaryDirectory(prefix="bench-tfx-") as tmp:
        result = compare(args.rows, Path(args.workdir or tmp), summary)
    print(report(result), flush=True)
    end = bl.load_line("end")
    bl.write_result(args.json, {"bench": "tfx_compare", **result, "load_end": end})
    return 0


if __name__ == "__main__":
    sys.exit(main())
