"""The pipeline's parameters are its steps' request fields: same defaults, same one description."""

from __future__ import annotations

import dataclasses
import inspect

from kfp_tabular.pipelines.training.train_and_deploy.parameters import DEPLOY_RENAME, request_classes
from kfp_tabular.pipelines.training.train_and_deploy.pipeline import train_and_deploy

#: Pipeline defaults that deliberately differ from a step's: the bundled data's label; one seed for all steps.
OWN = {"label_column", "seed", "data_uri"}


def _fields() -> dict[str, list]:
    fields: dict[str, list] = {}
    for cls in request_classes():
        for field in dataclasses.fields(cls):
            fields.setdefault(field.name, []).append(field)
    return fields


def _default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty


def test_every_pipeline_parameter_is_a_step_parameter_with_its_default():
    fields = _fields()
    problems = []
    for name, parameter in inspect.signature(train_and_deploy.pipeline_func).parameters.items():
        field_name = DEPLOY_RENAME.get(name, name)
        if field_name not in fields:
            problems.append(f"{name}: no step takes it")
            continue
        if name in OWN:
            continue
        defaults = {repr(_default(f)) for f in fields[field_name]}
        if repr(parameter.default) not in defaults:
            problems.append(f"{name}: pipeline default {parameter.default!r}, the step's {sorted(defaults)}")
    assert not problems, "\n".join(problems)


def test_the_compiled_pipeline_describes_each_parameter_as_its_step_does():
    fields = _fields()
    inputs = train_and_deploy.component_spec.inputs
    for name, spec in inputs.items():
        if name in OWN:
            continue
        help_text = fields[DEPLOY_RENAME.get(name, name)][0].metadata["help"]
        assert " ".join((spec.description or "").split()) == " ".join(help_text.split()), name


def test_rollout_defaults_render_without_prometheus_and_apply_names_prometheus_url():
    """Default canary steps 10,25,50,100: render needs no Prometheus; apply without one fails before anything runs."""
    import pytest

    from kfp_tabular.components.common.errors import ConfigError
    from kfp_tabular.pipelines.training.train_and_deploy.parameters import check_parameters

    deploy = check_parameters({"data_uri": "s3://bucket/data.csv"})[-1]
    assert (deploy.action, deploy.rollout_strategy, deploy.policy().steps) == ("render", "canary", (10, 25, 50, 100))
    with pytest.raises(ConfigError, match=r"^prometheus_url: .*rollout_strategy=manual"):
        check_parameters({"data_uri": "s3://bucket/data.csv", "deploy_action": "apply"})
    manual = check_parameters({"data_uri": "s3://b/d.csv", "deploy_action": "apply", "rollout_strategy": "manual"})
    assert manual[-1].rollout_strategy == "manual"
    with pytest.raises(ConfigError, match=r"^rollout_steps: "):
        check_parameters({"data_uri": "s3://bucket/data.csv", "rollout_steps": "10,50"})
