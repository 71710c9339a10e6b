"""Run the monitoring pipeline on this machine with kfp.local, against the local production model.

The deployed model here is run_local's production record (``<output_dir>/production/current.json``, see
``pipelines/training/train_and_deploy/run_local.py``). Its lineage record is found by :func:`production_lineage`;
the trigger runs in ``local`` mode with ``local_output_dir=<output_dir>``, so a retrain is a run_local training run
whose baseline is that production model, and whose model replaces it only when blessed against it.

Runs go to ``<output_dir>/monitoring/runs/<pipeline>-<timestamp>/<task>/<output>``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

from kfp_tabular.pipelines.monitoring.monitor_and_retrain.pipeline import PIPELINE_NAME

#: Where a lineage record is built for a production model promoted without one (older run_local records).
BUILT_LINEAGE_DIR = ("monitoring", "lineage")


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def production_lineage(output_dir: str | os.PathLike) -> tuple[str, str]:
    """Return ``(lineage record path, how it was found)`` of the local production model.

    In order: the production entry's own ``lineage``/``lineage_uri``; ``production/<run>/lineage.json``; the
    promoting run's deploy-step ``lineage`` artifact; else a record built from that run's artifacts (model,
    blessing, statistics, schema, train split) with ``common.lineage.build`` under ``monitoring/lineage/<run>.json``.

    Raises:
        ConfigError: No production model yet (naming the record), or its run's artifacts are gone.
    """
    from kfp_tabular.components.common.errors import ConfigError

    output_dir = Path(output_dir).resolve()
    current = output_dir / "production" / "current.json"
    entry = _read(current)
    if not entry or not Path(entry.get("model_dir", "")).is_dir():
        raise ConfigError(f"{current}: no local production model yet; make one with `kfp-tabular run-local`")
    for key in ("lineage_uri", "lineage"):
        if entry.get(key) and Path(entry[key]).exists():
            return str(entry[key]), f"the production record's {key}"
    run = entry["run"]
    beside = output_dir / "production" / run / "lineage.json"
    if beside.is_file():
        return str(beside), f"{beside.relative_to(output_dir)}"
    run_dir = output_dir / "runs" / run
    artifact = run_dir / "deploy-model" / "lineage"
    if artifact.is_file():
        return str(artifact), "the promoting run's deploy-model/lineage artifact"
    return str(_build_lineage(output_dir, entry, run_dir)), "built from the promoting run's artifacts"


def _build_lineage(output_dir: Path, entry: dict[str, Any], run_dir: Path) -> Path:
    from kfp_tabular.components.common import lineage
    from kfp_tabular.components.common.blessing import read as read_blessing
    from kfp_tabular.components.common.errors import ConfigError
    from kfp_tabular.components.common.model_dir import read_metadata
    from kfp_tabular.pipelines.training.train_and_deploy.pipeline import PIPELINE_NAME as TRAINING

    needed = {
        "blessing": run_dir / "evaluate" / "blessing",
        "statistics": run_dir / "validate-data" / "train_statistics",
        "schema": run_dir / "validate-data" / "schema",
        "train split": run_dir / "ingest" / "train_data",
    }
    gone = [f"{name} ({path})" for name, path in needed.items() if not path.is_file()]
    if gone:
        raise ConfigError(f"{run_dir}: the production model's run lacks {', '.join(gone)}: no lineage can be built")
    statistics = entry.get("train_statistics") or str(needed["statistics"])
    record = lineage.build(
        read_metadata(entry["model_dir"]),
        read_blessing(str(needed["blessing"])),
        model_uri=entry["model_dir"],
        statistics_uri=statistics,
        schema_uri=str(needed["schema"]),
        training_data_uri=str(needed["train split"]),
        run={"id": run_dir.name, "name": run_dir.name, "pipeline": TRAINING},
        storage_uri=entry["model_dir"],
    )
    target = output_dir.joinpath(*BUILT_LINEAGE_DIR) / f"{run_dir.name}.json"
    lineage.write(target, record)
    return target


@dataclasses.dataclass
class MonitoringSummary:
    """What a local monitoring run produced."""

    run_dir: str
    succeeded: bool
    error: str = ""
    lineage_uri: str = ""
    lineage_found: str = ""
    decision: dict[str, Any] = dataclasses.field(default_factory=dict)
    outcome: dict[str, Any] = dataclasses.field(default_factory=dict)
    reports: dict[str, str] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def run_monitoring_local(
    output_dir: str | os.PathLike,
    served_data_uri: str,
    lineage_uri: str = "",
    quiet: bool = True,
    **parameters: Any,
) -> MonitoringSummary:
    """Run the monitoring pipeline with kfp.local (SubprocessRunner, this environment).

    Args:
        output_dir: run_local's output directory: its production record is the deployed model and the retrain's
            ``local_output_dir``; monitoring runs go under ``monitoring/runs``.
        served_data_uri: The collector's sink.
        lineage_uri: The deployed model's lineage record (default: :func:`production_lineage`).
        quiet: Send kfp.local's task output to ``<output_dir>/monitoring/last-run.log`` instead of the terminal.
        **parameters: Any other pipeline parameter (``labels_uri``, ``window_end``, ``window_hours``, ...).
    """
    from kfp_tabular.pipelines.cli import import_kfp_sdk_only

    import_kfp_sdk_only()
    from kfp import local

    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.parameters import check_parameters
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.pipeline import monitor_and_retrain

    output_dir = Path(output_dir).resolve()
    found = "given"
    if not lineage_uri:
        lineage_uri, found = production_lineage(output_dir)
    parameters.setdefault("mode", "local")
    parameters.setdefault("local_output_dir", str(output_dir))
    arguments = {"served_data_uri": str(served_data_uri), "lineage_uri": str(lineage_uri), **parameters}
    check_parameters(arguments)
    runs_root = output_dir / "monitoring" / "runs"
    runs_root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in runs_root.iterdir()}
    warnings.filterwarnings(
        "ignore", message="You may be attemping to run a task that uses custom", category=RuntimeWarning
    )
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(runs_root), raise_on_error=True)
    error = ""
    log_path = output_dir / "monitoring" / "last-run.log"
    with open(log_path, "w", encoding="utf-8") as log:
        # kfp.local prints each task's output
        with _redirected(log) if quiet else contextlib.nullcontext():
            try:
                monitor_and_retrain(**arguments)
            except RuntimeError as exc:
                error = str(exc)
    made = [p for p in runs_root.glob(f"{PIPELINE_NAME}-*") if p.name not in before]
    if not made:
        raise RuntimeError(f"kfp.local left no run directory under {runs_root}: {error}")
    run_dir = max(made, key=lambda p: p.name)
    summary = MonitoringSummary(
        run_dir=str(run_dir), succeeded=not error, error=error, lineage_uri=str(lineage_uri), lineage_found=found
    )
    summary.decision = _read(run_dir / "monitor" / "decision")
    summary.outcome = _read(run_dir / "retrain-trigger" / "outcome")
    for name, artifact in (("monitor", "monitor/report_html"),):
        source = run_dir / artifact
        if source.is_file():
            target = run_dir / "reports" / f"{name}.html"
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(source.read_bytes())
            summary.reports[name] = str(target)
    if error:
        summary.error = f"{error} (task output: {log_path})"
    return summary


@contextlib.contextmanager
def _redirected(log):
    import sys

    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield
    sys.stdout.flush()


def format_summary(summary: MonitoringSummary) -> str:
    """Format the run in a few lines: the decision and its reasons, what the trigger did, the reports."""
    decision, outcome = summary.decision, summary.outcome
    lines = [f"monitoring run: {'SUCCEEDED' if summary.succeeded else 'FAILED'}  {summary.run_dir}"]
    lines.append(f"deployed model's lineage: {summary.lineage_uri} ({summary.lineage_found})")
    if decision:
        lines.append(
            f"monitor: {'RETRAIN' if decision.get('retrain') else 'no retrain'} on {decision.get('rows')} served rows"
            + (
                f"; drifted features: {', '.join(decision['drifted_features'])}"
                if decision.get("drifted_features")
                else ""
            )
            + (
                f"; skewed features: {', '.join(decision['skewed_features'])}"
                if decision.get("skewed_features")
                else ""
            )
        )
        lines += [f"  - {reason}" for reason in decision.get("reasons", [])]
    if outcome:
        said = "" if decision else f" ({outcome.get('reason')})"  # the decision's reasons are listed above
        lines.append(f"retrain trigger: {outcome.get('action')}{said}")
        if outcome.get("rows"):
            lines.append(f"  rows: {json.dumps(outcome['rows'])}")
        if outcome.get("run"):
            lines.append(f"  training run: {outcome['run'].get('dir') or outcome['run'].get('id')}")
        if outcome.get("blessed") is not None:
            lines.append(f"  blessed against the serving model: {'YES' if outcome['blessed'] else 'NO'}")
            lines += [f"    - {reason}" for reason in outcome.get("blessing_reasons", [])]
            lines.append(
                f"  promoted (staged) to local production: {outcome['promoted_to']}"
                if outcome.get("promoted_to")
                else "  NOT deployed: local production unchanged"
            )
    for name, path in summary.reports.items():
        lines.append(f"report ({name}): {path}")
    if summary.error:
        lines.append(f"error: {summary.error}")
    return "\n".join(lines)
