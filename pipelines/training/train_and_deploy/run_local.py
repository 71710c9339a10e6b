"""Run the pipeline on this machine with kfp.local, and keep track of the local 'production' model.

Layout under the output directory (``./local_outputs`` by default, ignored by git):

- ``data/``: the bundled default dataset, generated once from the seeded generator.
- ``runs/<pipeline>-<timestamp>/<task>/<output>``: kfp.local's pipeline root; every artifact of every run.
- ``runs/<pipeline>-<timestamp>/logs/<task>.log``: everything kfp.local and the task printed for it, and
  ``logs/run.log`` the pipeline's own lines (``console.py``: the terminal shows one line per task).
- ``production/current.json``: the local stand-in for "the model in production". A run whose model is
  blessed is promoted here (its model directory and training statistics are copied under
  ``production/<run>/``, and ``history.jsonl`` gets a line). The next run takes this model as the
  evaluation baseline and these statistics as the drift baseline, as a cluster run would take the model
  its InferenceService serves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from kfp_tabular.pipelines.training.train_and_deploy.pipeline import PIPELINE_NAME


def curated_schema_path() -> str:
    """Return the curated, version-controlled TFDV schema of the bundled churn data."""
    from kfp_tabular.components.data_processing.synthetic_data.core import curated_schema_path as path

    return path()


def default_data(output_dir: Path, rows: int, seed: int, variant: str = "default") -> Path:
    """Generate the bundled default dataset once (it is deterministic) and return its path."""
    from kfp_tabular.components.data_processing.synthetic_data import core

    path = Path(output_dir) / "data" / f"churn-{variant}-{rows}-{seed}.csv"
    if not path.exists():
        core.write(core.generate(rows, seed, variant), path)
    return path


@dataclasses.dataclass
class RunSummary:
    """What a local run produced."""

    run_dir: str
    succeeded: bool
    failed_task: str = ""
    error: str = ""
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    rows: dict[str, Any] = dataclasses.field(default_factory=dict)
    anomalies_report: str = ""
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    blessing: dict[str, Any] = dataclasses.field(default_factory=dict)
    deploy: dict[str, Any] = dataclasses.field(default_factory=dict)
    baseline: dict[str, Any] = dataclasses.field(default_factory=dict)
    baseline_skipped: str = ""
    promoted_to: str = ""
    decisions: list[dict[str, str]] = dataclasses.field(default_factory=list)
    #: The HTML reports as files a browser opens (``<run_dir>/reports/<name>.html``, copies of the artifacts, which
    #: kfp.local writes without an extension): ``validation`` and ``evaluation`` when their task ran.
    reports: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The run's log directory (``<run_dir>/logs``: one file a task, ``run.log``).
    log_dir: str = ""
    #: One dict a task that ran, in order: name, status (SUCCESS/FAILURE), seconds (wall time), peak_rss_mb
    #: (sampled, None when unknown: the docker runner), log (its log file). See console.py.
    tasks: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


class ProductionRegistry:
    """The local record of the production model: ``<output_dir>/production``."""

    def __init__(self, output_dir: Path):
        self.root = Path(output_dir) / "production"
        self.current_path = self.root / "current.json"

    def current(self) -> dict[str, Any] | None:
        """Return the current production entry, or None before the first blessed run."""
        if not self.current_path.exists():
            return None
        entry = json.loads(self.current_path.read_text(encoding="utf-8"))
        if not Path(entry.get("model_dir", "")).is_dir():
            return None
        return entry

    def promote(self, run_dir: Path, model_dir: Path, statistics: Path | None, blessing: dict[str, Any]) -> Path:
        """Copy a blessed run's model (and training statistics) here and make it current."""
        from kfp_tabular.components.common.artifacts import atomic_path, write_json

        target = self.root / run_dir.name
        with atomic_path(target) as staged:
            shutil.copytree(model_dir, staged / "model")
            if statistics is not None and statistics.exists():
                shutil.copy2(statistics, staged / "train_statistics.pb")
        entry = {
            "run": run_dir.name,
            "model_dir": str(target / "model"),
            "train_statistics": str(target / "train_statistics.pb") if statistics else "",
            "promoted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "metrics": blessing.get("metrics", {}),
            "model_sha256": blessing.get("model_sha256", ""),
        }
        write_json(self.current_path, entry)
        with open(self.root / "history.jsonl", "a", encoding="utf-8") as history:
            history.write(json.dumps(entry, sort_keys=True) + "\n")
        return target


def baseline_mismatch(entry: dict[str, Any], data_uri: str, label_column: str) -> str:
    """Why the production model cannot be this data's baseline ("" when it can).

    A baseline must score the same eval data: same label, and every source column its features came from
    present (its ``source_columns``: ingest derives features, e.g. calendar columns from a date, from those; a
    model without that record is compared by its features). The data's columns come from its header alone (a
    CSV's first line, a Parquet schema): ingest reads the data.
    """
    from kfp_tabular.components.common.model_dir import METADATA_FILE
    from kfp_tabular.components.data_processing.ingest.core import read_columns

    metadata = _read_json(Path(entry["model_dir"]) / METADATA_FILE)
    if metadata.get("label_column") != label_column:
        return f"it predicts {metadata.get('label_column')!r}, this run {label_column!r}"
    columns = set(read_columns(data_uri))
    needed = metadata.get("source_columns") or metadata.get("feature_order", [])
    missing = [name for name in needed if name not in columns]
    if missing:
        return f"{data_uri} lacks its column(s) {', '.join(missing)}"
    return ""


def baseline_label(entry: dict[str, Any]) -> str:
    """Return the label the production model of a registry entry predicts ("" when unknown)."""
    from kfp_tabular.components.common.model_dir import METADATA_FILE

    return str(_read_json(Path(entry["model_dir"]) / METADATA_FILE).get("label_column") or "")


def _latest_run_dir(runs_root: Path, started: set[str]) -> Path | None:
    candidates = [p for p in runs_root.glob(f"{PIPELINE_NAME}-*") if p.is_dir() and p.name not in started]
    return max(candidates, key=lambda p: p.name) if candidates else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _executor_output(task_dir: Path) -> dict[str, Any]:
    return _read_json(task_dir / "executor_output.json")


def _collect(summary: RunSummary, run_dir: Path) -> None:
    """Fill the summary from the files of a run directory (complete or failed)."""
    from kfp_tabular.components.common.decisions import METADATA_KEY, from_metadata
    from kfp_tabular.pipelines.training.train_and_deploy.console import LOGS_DIR

    for task_dir in sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name not in (LOGS_DIR, REPORTS_DIR)):
        for artifact in sorted(task_dir.iterdir()):
            if artifact.name != "executor_output.json":
                summary.artifacts[f"{task_dir.name}/{artifact.name}"] = str(artifact)
        for output in _executor_output(task_dir).get("artifacts", {}).values():
            for artifact in output.get("artifacts", []):
                for decision in from_metadata(artifact.get("metadata", {}).get(METADATA_KEY)):
                    if decision.as_dict() not in summary.decisions:
                        summary.decisions.append(decision.as_dict())
    ingest_out = _executor_output(run_dir / "ingest")
    for artifact in ingest_out.get("artifacts", {}).get("metrics", {}).get("artifacts", []):
        summary.rows.update(artifact.get("metadata", {}))
    report = run_dir / "validate-data" / "anomalies_report"
    if report.exists():
        summary.anomalies_report = report.read_text(encoding="utf-8")
    for artifact in _executor_output(run_dir / "evaluate").get("artifacts", {}).get("metrics", {}).get("artifacts", []):
        summary.metrics.update(artifact.get("metadata", {}))
    blessing = run_dir / "evaluate" / "blessing"
    if blessing.exists():
        summary.blessing = _read_json(blessing)
    status = run_dir / "deploy-model" / "status"
    if status.exists():
        summary.deploy = _read_json(status)
    _copy_reports(summary, run_dir)


#: The run directory's folder of browsable report copies, and each report's artifact (``<task>/<output>``).
REPORTS_DIR = "reports"
HTML_REPORTS = {"validation": "validate-data/report", "evaluation": "evaluate/report_html"}


def _copy_reports(summary: RunSummary, run_dir: Path) -> None:
    """Copy each HTML report artifact to ``<run_dir>/reports/<name>.html`` (a browser needs the extension)."""
    import shutil

    for name, artifact in HTML_REPORTS.items():
        source = Path(summary.artifacts.get(artifact, ""))
        if artifact in summary.artifacts and source.is_file():
            target = run_dir / REPORTS_DIR / f"{name}.html"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target)
            summary.reports[name] = str(target)


def run_local(
    output_dir: str | os.PathLike = "local_outputs",
    data_uri: str | None = None,
    rows: int = 50_000,
    seed: int = 42,
    use_production_baseline: bool = True,
    runner: str = "subprocess",
    console: str = "tasks",
    warm: bool | None = None,
    **parameters: Any,
) -> RunSummary:
    """Run the pipeline with kfp.local's SubprocessRunner in this interpreter's environment.

    Args:
        output_dir: Where data, runs and the production record go.
        data_uri: Data to run on; None generates the bundled default data (``rows`` rows, ``seed``) and
            validates it against the curated schema.
        rows: Rows of the default data.
        seed: Seed of the default data, the split and the estimator.
        use_production_baseline: Use the local production model and its statistics as baselines.
        runner: ``subprocess`` (this environment) or ``docker`` (every task in the pipeline image through
            podman's Docker API, see ``containers.py``).
        console: What this prints on stdout while the pipeline runs (each task's full output goes to
            ``<run_dir>/logs/<task>.log`` in every case, see ``console.py``): ``tasks`` one line per task (live on
            a terminal), ``verbose`` everything kfp.local and the tasks print, ``silent`` nothing.
        warm: Start each task's interpreter, with its imports, while the task before it runs (``warm.py``; the
            subprocess runner only); None: unless ``KFP_TABULAR_WARM=0``. Off: a fresh interpreter per task.
        **parameters: Any other pipeline parameter (see pipeline.train_and_deploy).

    Returns:
        The summary; ``succeeded`` is False when a task failed (the error names it).
    """
    started = time.monotonic()  # each task's ended_s counts from here
    from kfp import local

    from kfp_tabular.pipelines.training.train_and_deploy.console import TaskConsole, count_tasks
    from kfp_tabular.pipelines.training.train_and_deploy.parameters import check_parameters
    from kfp_tabular.pipelines.training.train_and_deploy.pipeline import train_and_deploy

    output_dir = Path(output_dir).resolve()
    if data_uri is None:
        data_uri = str(default_data(output_dir, rows, seed))
        parameters.setdefault("schema_uri", curated_schema_path())
    parameters.setdefault("seed", seed)
    check_parameters({**parameters, "data_uri": data_uri})
    # The tasks' interpreters start now (warm.py), their imports overlap the rest of the preparation.
    pool, why_cold = _warm_pool(runner, warm, train_and_deploy.pipeline_spec)
    try:
        runs_root = output_dir / "runs"
        runs_root.mkdir(parents=True, exist_ok=True)
        registry = ProductionRegistry(output_dir)
        baseline = registry.current() if use_production_baseline else None
        skipped = ""
        label = parameters.get("label_column", "churned")  # the pipeline's default label (the bundled data's)
        if baseline and baseline.get("train_statistics") and baseline_label(baseline) == label:
            # The same label: a batch of the same data, to be compared with what production was trained on, whether or
            # not the production model can score it (a column it needs may be the very drift to report).
            parameters.setdefault("baseline_statistics_uri", baseline["train_statistics"])
        if baseline and "baseline_model_uri" not in parameters:
            reason = baseline_mismatch(baseline, data_uri, label)
            if reason:
                skipped = f"local production model ({baseline['model_dir']}) not used as baseline model: {reason}"
                baseline = None
        if baseline:
            parameters.setdefault("baseline_model_uri", baseline["model_dir"])

        # kfp.local warns that our components name a container image; the image is built from the same locks and
        # the same package as this environment (components/common/containers), so the code that runs is the same.
        warnings.filterwarnings(
            "ignore", message="You may be attemping to run a task that uses custom", category=RuntimeWarning
        )
        task_runner, session, on_run_dir = local.SubprocessRunner(use_venv=False), contextlib.nullcontext(), None
        if runner == "docker":
            from kfp_tabular.pipelines.training.train_and_deploy.containers import docker_session

            task_runner, session = (
                local.DockerRunner(),
                docker_session(output_dir, {**parameters, "data_uri": data_uri}),
            )
            on_run_dir = _run_dir_for_image_user
        local.init(runner=task_runner, pipeline_root=str(runs_root), raise_on_error=True)
        before = {p.name for p in runs_root.iterdir()}
        error = ""
        tasks = TaskConsole(
            sys.stdout,
            console,
            total=count_tasks(train_and_deploy.pipeline_spec),
            on_run_dir=on_run_dir,
            warm=pool,
            started=started,
        )
    except BaseException:
        if pool is not None:  # the console closes it from here on
            pool.close()
        raise
    if why_cold:
        tasks.note(f"warm runner: off, each task runs in a fresh interpreter: {why_cold}")
    try:
        with tasks, session:
            train_and_deploy(data_uri=data_uri, **parameters)
    except RuntimeError as exc:
        error = str(exc)
    run_dir = tasks.run_dir if tasks.run_dir is not None else _latest_run_dir(runs_root, before)
    if run_dir is None:
        raise RuntimeError(f"kfp.local left no run directory under {runs_root}: {error}")
    summary = RunSummary(
        run_dir=str(run_dir),
        succeeded=not error,
        error=error,
        baseline=baseline or {},
        baseline_skipped=skipped,
        log_dir=str(tasks.log_dir or ""),
        tasks=[task.as_dict() for task in tasks.tasks],
    )
    if error:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", error)
        failed = [task.name for task in tasks.tasks if task.status != "SUCCESS"]
        named = re.search(r"Inner task failed: '?([\w.-]+?)'?(?: inside|\.?$)", plain)
        summary.failed_task = failed[-1] if failed else named.group(1) if named else ""
        summary.error = tasks.last_error or tasks.last_exception or plain
    _collect(summary, run_dir)
    if summary.succeeded and summary.blessing.get("blessed"):
        model_dir = run_dir / "train" / "model"
        statistics = run_dir / "validate-data" / "train_statistics"
        summary.promoted_to = str(registry.promote(run_dir, model_dir, statistics, summary.blessing))
        write_production_lineage(Path(summary.promoted_to), run_dir)
    return summary


def write_production_lineage(target: Path, run_dir: Path) -> Path:
    """Write the promoted model's lineage record and model card beside its copy (``production/<run>/``).

    ``lineage.json``, ``model_card.md`` and ``model_card.html``: what ``kfp-tabular lineage --local`` and the
    monitor read.

    The record points at the production copies (model, training statistics, and the schema copied here), so it
    stays true when the run directory is cleaned; the run is the deploy step's (KFP's job id and name) when that
    step wrote a record, else the run directory's name.
    """
    from kfp_tabular.components.common import blessing, lineage, model_card, model_dir
    from kfp_tabular.components.common.errors import DataError

    schema = target / "schema.pbtxt"
    shutil.copy2(run_dir / "validate-data" / "schema", schema)
    run = {"id": run_dir.name, "name": run_dir.name, "pipeline": PIPELINE_NAME}
    deployed = run_dir / "deploy-model" / "lineage"
    if deployed.is_file():
        run = lineage.read(deployed).run
    verdict = blessing.read(run_dir / "evaluate" / "blessing")
    baseline_sha = None
    if verdict.baseline_model_dir and Path(verdict.baseline_model_dir).is_dir():
        baseline_sha = (model_dir.read_metadata(verdict.baseline_model_dir) or {}).get("model_sha256")
    metadata = model_dir.read_metadata(target / "model") or {}
    record = lineage.build(
        metadata,
        verdict,
        model_uri=str(target / "model"),
        statistics_uri=str(target / "train_statistics.pb"),
        schema_uri=str(schema),
        training_data_uri=str(run_dir / "ingest" / "train_data"),
        run=run,
        baseline_sha256=baseline_sha,
    )
    lineage.write(target / lineage.FILE_NAME, record)
    try:
        features = model_card.schema_features(str(schema))
    except DataError:
        features = None
    serving = model_card.Serving(note="the local production model of run-local (the next run's baseline)")
    model_card.write(record, target / "model_card.md", target / "model_card.html", serving, features, metadata)
    return target / lineage.FILE_NAME


def _warm_pool(runner: str, warm: bool | None, pipeline_spec):
    """Return ``(pool, "")`` of warm interpreters for the run's tasks, or ``(None, why not)``."""
    from kfp_tabular.pipelines.training.train_and_deploy import warm as warm_runner

    if runner != "subprocess":
        return None, f"the {runner} runner runs each task in its container"
    if not warm_runner.enabled(warm):
        switch = warm_runner.ENV_SWITCH
        return None, "run_local(warm=False)" if warm is False else f"{switch}={os.environ.get(switch)}"
    try:
        pool = warm_runner.WarmPool(warm_runner.plan(pipeline_spec))
    except Exception as exc:  # noqa: BLE001 - kfp's internals not as expected: the normal path
        return None, f"the pipeline's tasks could not be planned ({type(exc).__name__}: {exc})"
    pool.start()
    return pool, ""


def _run_dir_for_image_user(run_dir: Path) -> None:
    """Create the run directory (the logs go there first) so that the docker runner's tasks (uid 1000) write in it."""
    from kfp_tabular.components.common.errors import ConfigError
    from kfp_tabular.pipelines.training.train_and_deploy.containers import give_to_image_user

    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        give_to_image_user(run_dir)
    except ConfigError:  # not root: the parent directory is writable by all, so is this one
        run_dir.chmod(0o777)


def validation_lines(markdown: str, reports: dict[str, str] | None = None) -> list[str]:
    """Shorten the validation report for the terminal: drift rows that flag nothing are counted, not listed.

    The Markdown report (the task's artifact) keeps every row; the HTML report draws every feature.
    """
    lines: list[str] = []
    header: list[str] = []  # a drift table's header and separator, printed with its first flagged row
    flagged_col, quiet, legend = None, 0, False
    for line in markdown.strip().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:2] == ["feature", "comparison"] and "flagged" in cells:
            flagged_col, header = cells.index("flagged"), [line]
            continue
        elif flagged_col is not None and cells and set("".join(cells)) <= {"-", ":"}:
            header.append(line)
            continue
        elif flagged_col is not None and len(cells) > flagged_col:
            if cells[flagged_col] != "yes":
                quiet += 1
                continue
            lines += header
            header = []
        elif line.startswith("distance: "):
            legend = True  # the table's legend: kept in the report
            continue
        else:
            flagged_col, header = None, []
            if legend and not line.strip():
                legend = False
                continue
        lines.append(line)
    if quiet:
        where = (reports or {}).get("validation", "the validation report")
        lines.append(f"({quiet} drift/skew measurements within their threshold or noise bound: every row in {where})")
    return lines


def format_summary(summary: RunSummary) -> str:
    """Format a human summary of a local run: artifacts, rows, anomalies, metrics, blessing, deploy."""
    lines = ["", "=" * 100, f"kfp-tabular local run: {'SUCCEEDED' if summary.succeeded else 'FAILED'}"]
    lines.append(f"run directory: {summary.run_dir}")
    if summary.log_dir:
        lines.append(f"logs: {summary.log_dir}/ (<task>.log: everything a task printed; run.log: the pipeline's)")
    if summary.rows:
        keys = ("rows", "train_rows", "eval_rows", "columns", "positive_rate")
        lines.append("rows: " + ", ".join(f"{k}={summary.rows[k]}" for k in keys if k in summary.rows))
    if summary.decisions:
        from kfp_tabular.components.common.decisions import from_metadata

        lines += ["", "decisions taken for you (override them with the pipeline's parameters):"]
        lines += [f"  - {decision.line()}" for decision in from_metadata(summary.decisions)]
    if summary.anomalies_report:
        lines += ["", "validation (TFDV):", *validation_lines(summary.anomalies_report, summary.reports)]
    if summary.metrics:
        lines.append("")
        lines.append(
            "evaluation metrics: "
            + ", ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(summary.metrics.items())
            )
        )
    if summary.baseline:
        lines.append(
            f"baseline (local production): run {summary.baseline.get('run')}, {summary.baseline.get('model_dir')}"
        )
    if summary.baseline_skipped:
        lines.append(summary.baseline_skipped)
    if summary.blessing:
        verdict = "BLESSED" if summary.blessing.get("blessed") else "NOT BLESSED"
        lines.append(f"blessing: {verdict}")
        for reason in summary.blessing.get("reasons", []):
            lines.append(f"  - {reason}")
    if summary.deploy:
        lines.append(f"deploy: deployed={summary.deploy.get('deployed')} reason={summary.deploy.get('reason')}")
    wanted = (
        "train/model",
        "evaluate/blessing",
        "evaluate/report",
        "evaluate/report_html",
        "deploy-model/manifest",
        "deploy-model/analysis_report",
        "deploy-model/lineage",
        "deploy-model/model_card_html",
        "validate-data/report",
        "validate-data/schema",
        "ingest/train_data",
        "ingest/eval_data",
    )
    lines += ["", "artifacts:"] + [
        f"  {name:<28} {summary.artifacts[name]}" for name in wanted if name in summary.artifacts
    ]
    if summary.reports:
        lines += ["", "reports (self-contained HTML, open offline in a browser; the KFP UI shows the artifacts):"]
        lines += [
            f"  {name:<12} {path}  (artifact {HTML_REPORTS[name]})"
            for name, path in summary.reports.items()
            if name in HTML_REPORTS
        ]
    if summary.promoted_to:
        lines.append(f"promoted to local production: {summary.promoted_to} (baseline of the next run)")
    if not summary.succeeded:
        failed_log = next((t["log"] for t in summary.tasks if t["name"] == summary.failed_task), "")
        lines.append("")
        lines.append(f"failed task: {summary.failed_task or '?'}" + (f", its log: {failed_log}" if failed_log else ""))
        lines.append(f"error: {summary.error}")
    lines.append("=" * 100)
    return "\n".join(lines)
