"""Run the pipeline's steps in one process: each component's own function body, in pipeline order.

``component.python_func`` is the exact code a pod (or kfp.local) runs for the step; calling it here with
artifacts on local paths skips only kfp.local's per-task interpreter start (TensorFlow is imported once), so a
corpus of dozens of inputs runs in about a minute. The outcome says where the chain stopped and why, what was
decided for the user, and what was written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class ChainOutcome:
    """Where a run of the steps ended.

    Attributes:
        failed_step: The step that raised ("" when every step ran).
        error: ``ExceptionType: message`` of that step's error.
        decisions: Every decision recorded in the steps' artifact metadata, as dicts.
        trained: A model directory was written.
        blessed: The blessing's verdict (None when evaluate did not run).
        written: Output paths that exist after the run, relative to the work directory.
    """

    failed_step: str = ""
    error: str = ""
    decisions: list[dict[str, str]] = dataclasses.field(default_factory=list)
    trained: bool = False
    blessed: bool | None = None
    written: list[str] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        """The outcome in one line."""
        if self.failed_step:
            return f"refused at {self.failed_step}: {self.error}"
        verdict = "blessed" if self.blessed else "not blessed"
        decided = "; ".join(f"{d['subject'] or '(dataset)'} {d['action']}" for d in self.decisions) or "none"
        return f"trained, {verdict}; decisions: {decided}"


def _collect(outcome: ChainOutcome, *artifacts: Any) -> None:
    from kfp_tabular.components.common.decisions import METADATA_KEY, from_metadata

    for artifact in artifacts:
        for decision in from_metadata(artifact.metadata.get(METADATA_KEY)):
            if decision.as_dict() not in outcome.decisions:
                outcome.decisions.append(decision.as_dict())


def run_chain(data_uri: str, label_column: str, workdir: Path, **params: Any) -> ChainOutcome:
    """Run ingest -> validate -> train -> evaluate -> deploy (render) on ``data_uri``; never raises a step's error.

    Args:
        data_uri: The data.
        label_column: Its label.
        workdir: Where every step's outputs go (``<workdir>/<step>/<output>``).
        **params: Step parameters by name (``ingest__min_rows=...``: the step's name, two underscores, the name).
    """
    from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

    from kfp_tabular.components.data_processing.ingest.component import ingest
    from kfp_tabular.components.data_processing.validate.component import validate_data
    from kfp_tabular.components.deployment.deploy.component import deploy_model
    from kfp_tabular.components.evaluation.evaluate.component import evaluate
    from kfp_tabular.components.training.train.component import train

    def out(kind, step: str, name: str):
        (workdir / step).mkdir(parents=True, exist_ok=True)
        return kind(uri=str(workdir / step / name))

    def step_params(step: str) -> dict:
        prefix = f"{step}__"
        return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}

    outcome = ChainOutcome()
    train_data, eval_data = out(Dataset, "ingest", "train_data"), out(Dataset, "ingest", "eval_data")
    model, blessing = out(Model, "train", "model"), out(Artifact, "evaluate", "blessing")
    train_statistics = out(Artifact, "validate", "train_statistics")
    steps = [
        (
            "ingest",
            lambda: ingest.python_func(
                data_uri=data_uri,
                label_column=label_column,
                train_data=train_data,
                eval_data=eval_data,
                metrics=out(Metrics, "ingest", "metrics"),
                **step_params("ingest"),
            ),
        ),
        (
            "validate",
            lambda: validate_data.python_func(
                train_data=train_data,
                eval_data=eval_data,
                label_column=label_column,
                train_statistics=train_statistics,
                eval_statistics=out(Artifact, "validate", "eval_statistics"),
                schema=schema,
                anomalies=out(Artifact, "validate", "anomalies"),
                anomalies_report=out(Markdown, "validate", "anomalies_report"),
                statistics_html=out(HTML, "validate", "statistics_html"),
                report=out(HTML, "validate", "report"),
                metrics=out(Metrics, "validate", "metrics"),
                **step_params("validate"),
            ),
        ),
        (
            "train",
            lambda: train.python_func(
                train_data=train_data,
                schema=schema,
                label_column=label_column,
                model=model,
                metrics=out(Metrics, "train", "metrics"),
                task=train_data.metadata.get("task", "auto"),
                **step_params("train"),
            ),
        ),
        (
            "evaluate",
            lambda: evaluate.python_func(
                model=model,
                eval_data=eval_data,
                label_column=label_column,
                metrics=out(Metrics, "evaluate", "metrics"),
                classification_metrics=out(ClassificationMetrics, "evaluate", "classification_metrics"),
                blessing=blessing,
                report=out(Markdown, "evaluate", "report"),
                report_html=out(HTML, "evaluate", "report_html"),
                **step_params("evaluate"),
            ),
        ),
        (
            "deploy",
            lambda: deploy_model.python_func(
                model=model,
                blessing=blessing,
                train_data=train_data,
                train_statistics=train_statistics,
                schema=schema,
                manifest=out(Artifact, "deploy", "manifest"),
                status=out(Artifact, "deploy", "status"),
                analysis=out(Artifact, "deploy", "analysis"),
                analysis_report=out(Markdown, "deploy", "analysis_report"),
                lineage=out(Artifact, "deploy", "lineage"),
                model_card=out(Markdown, "deploy", "model_card"),
                model_card_html=out(HTML, "deploy", "model_card_html"),
            ),
        ),
    ]
    schema = out(Artifact, "validate", "schema")
    for name, run in steps:
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - the outcome records any step's error
            outcome.failed_step, outcome.error = name, f"{type(exc).__name__}: {exc}"
            break
        finally:
            _collect(outcome, train_data, model, blessing)
    outcome.trained = Path(model.path, "model.joblib").exists()
    if Path(blessing.path).exists():
        from kfp_tabular.components.common.blessing import read

        outcome.blessed = read(blessing.path).blessed
    outcome.written = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())
    return outcome
