"""Check a run's parameters before it starts, so a typo fails in a second, not after training.

The components check their own parameters too (a pipeline submitted from the KFP UI only meets those);
this is the early check ``run-local`` and ``submit`` make. It imports no heavy package.
"""

from __future__ import annotations

from typing import Any

from kfp_tabular.components.common.errors import ConfigError


def pipeline_parameters() -> dict[str, Any]:
    """Names and defaults of the pipeline's parameters (None: required)."""
    from kfp_tabular.pipelines.training.train_and_deploy.pipeline import train_and_deploy

    return {
        name: (spec.default if spec.optional else None) for name, spec in train_and_deploy.component_spec.inputs.items()
    }


def check_parameters(params: dict[str, Any]) -> None:
    """Raise ConfigError naming the first parameter that cannot work, and what was expected.

    Args:
        params: Pipeline arguments as they will be submitted (a subset of the pipeline's parameters).
    """
    from kfp_tabular.components.data_processing.validate.statistics import BACKENDS
    from kfp_tabular.components.deployment.kserve.isvc import normalize_deployment_mode
    from kfp_tabular.components.evaluation.evaluate.core import check_thresholds
    from kfp_tabular.components.training.train.core import ESTIMATORS, TASKS

    known = pipeline_parameters()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"unknown pipeline parameter(s) {', '.join(unknown)}; parameters: {', '.join(known)}")

    def choice(name: str, allowed) -> None:
        if name in params and params[name] not in allowed:
            raise ConfigError(f"{name}: expected one of {', '.join(map(str, allowed))}, got {params[name]!r}")

    choice("estimator", ESTIMATORS)
    choice("task", TASKS)
    choice("statistics_backend", BACKENDS)
    choice("deploy_action", ("render", "apply"))
    if "deployment_mode" in params:
        normalize_deployment_mode(params["deployment_mode"])
    if "eval_fraction" in params and not (
        isinstance(params["eval_fraction"], (int, float)) and 0 < params["eval_fraction"] < 1
    ):
        raise ConfigError(f"eval_fraction: expected a number between 0 and 1, got {params['eval_fraction']!r}")
    percent = params.get("canary_traffic_percent")
    if percent is not None and (isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100):
        raise ConfigError(f"canary_traffic_percent: expected an integer from 0 to 100, got {percent!r}")
    if "hyperparameters" in params and not isinstance(params["hyperparameters"], dict):
        raise ConfigError(f"hyperparameters: expected a mapping, got {params['hyperparameters']!r}")
    if "thresholds" in params:
        task = params.get("task", "auto")
        tasks = ("classification", "regression") if task == "auto" else (task,)
        errors = []
        for candidate in tasks:
            try:
                check_thresholds(params["thresholds"], candidate)
                return
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
