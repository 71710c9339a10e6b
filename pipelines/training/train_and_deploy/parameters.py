"""Check a run's parameters before it starts, so a typo fails in a second, not after training.

Each step's parameters are checked by its component's request (``request.py`` beside each core): the same
object the component builds first thing when it runs (a pipeline submitted from the KFP UI meets those
checks). Here the local runner and ``submit`` build every step's request from the pipeline's arguments
before anything runs. Only light modules are imported: no TensorFlow, scikit-learn or kserve.
"""

from __future__ import annotations

from typing import Any

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import build

#: Pipeline parameters named differently from the deploy step's request fields.
DEPLOY_RENAME = {"deploy_action": "action", "deploy_timeout_seconds": "timeout_seconds"}


def request_classes() -> tuple[type, ...]:
    """Return the request classes of the pipeline's steps, in step order (ingest, validate, train, evaluate, deploy)."""
    from kfp_tabular.components.data_processing.ingest.request import IngestRequest
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest
    from kfp_tabular.components.deployment.deploy.request import DeployRequest
    from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest
    from kfp_tabular.components.training.train.request import TrainRequest

    return IngestRequest, ValidateRequest, TrainRequest, EvaluateRequest, DeployRequest


def pipeline_parameters() -> dict[str, Any]:
    """Names and defaults of the pipeline's parameters (None: required)."""
    from kfp_tabular.pipelines.training.train_and_deploy.pipeline import train_and_deploy

    return {
        name: (spec.default if spec.optional else None) for name, spec in train_and_deploy.component_spec.inputs.items()
    }


def check_parameters(params: dict[str, Any]) -> list:
    """Build every step's request from the pipeline's arguments; raise ConfigError naming the first bad one.

    Args:
        params: Pipeline arguments as they will be submitted (defaults fill in the rest); ``data_uri`` included.

    Returns:
        The requests, in step order (ingest, validate, train, evaluate, deploy).
    """
    known = pipeline_parameters()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"unknown pipeline parameter(s) {', '.join(unknown)}; parameters: {', '.join(known)}")
    values = {name: default for name, default in known.items() if default is not None}
    values.update(params)
    ingest, validate, train, evaluate, deploy = request_classes()
    requests = [
        build(ingest, values),
        build(validate, values),
        build(train, values),
        build(evaluate, values),
        build(deploy, values, rename=DEPLOY_RENAME),
    ]
    requests[3].check_for_task(_task(requests[0], "thresholds" in params))
    return requests


def _task(ingest_request: Any, thresholds_given: bool) -> str:
    """Return the task thresholds must fit.

    As given; or, for ``auto`` with thresholds given and a local file, the one ingest will decide from the label
    column (read here once; a remote source is not downloaded twice, so its thresholds must fit either task
    until ingest decides).
    """
    if ingest_request.task != "auto" or not thresholds_given:
        return ingest_request.task
    uri = ingest_request.data_uri
    if "://" in uri and not uri.startswith("file://"):
        return "auto"
    from kfp_tabular.components.data_processing.ingest.core import label_task

    return label_task(uri, ingest_request.label_column).task
