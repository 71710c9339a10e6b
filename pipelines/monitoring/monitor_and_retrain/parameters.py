"""Check a monitoring run's parameters before it starts: the monitor's and the trigger's requests, built up front.

Only light modules are imported (no TensorFlow, scikit-learn or kfp).
"""

from __future__ import annotations

from typing import Any

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import build


def request_classes() -> tuple[type, ...]:
    """Return the request classes of the pipeline's steps: monitor, retrain trigger."""
    from kfp_tabular.components.monitoring.monitor.request import MonitorRequest
    from kfp_tabular.components.monitoring.retrain.request import RetrainRequest

    return MonitorRequest, RetrainRequest


def pipeline_parameters() -> dict[str, Any]:
    """Names and defaults of the pipeline's parameters (None: required)."""
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.pipeline import monitor_and_retrain

    return {
        name: (spec.default if spec.optional else None)
        for name, spec in monitor_and_retrain.component_spec.inputs.items()
    }


def check_parameters(params: dict[str, Any]) -> list:
    """Build every step's request from the pipeline's arguments; raise ConfigError naming the first bad one.

    The training parameters the trigger passes on are checked too (the training pipeline's own check), with a
    stand-in data URI: the real one exists only once the trigger has written it.
    """
    known = pipeline_parameters()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"unknown pipeline parameter(s) {', '.join(unknown)}; parameters: {', '.join(known)}")
    values = {name: default for name, default in known.items() if default is not None}
    values.update(params)
    monitor_cls, retrain_cls = request_classes()
    requests = [build(monitor_cls, values), build(retrain_cls, values)]
    from kfp_tabular.pipelines.training.train_and_deploy.parameters import check_parameters as check_training

    check_training(requests[1].training_arguments({"data_uri": "retrain/data.parquet"}))
    return requests
