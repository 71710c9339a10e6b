"""ValidateRequest: one check per parameter, a ConfigError naming the field; one description per parameter."""

from __future__ import annotations

import dataclasses

import pytest

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.data_processing.validate.request import ValidateRequest


def test_defaults_and_normalisation():
    request = ValidateRequest("churned", numeric_drift_threshold=1, beam_pipeline_args=["--num_workers", 2])
    assert request.numeric_drift_threshold == 1.0 and isinstance(request.numeric_drift_threshold, float)
    assert request.categorical_drift_threshold == 0.05 and ValidateRequest("y").numeric_drift_threshold == 0.03
    assert request.drift_gate == "baseline" and request.drift_alpha == 0.01
    assert request.statistics_backend == "auto" and request.memory_budget_mb == 0 and request.fail_on_anomalies is True
    assert request.beam_pipeline_args == ["--num_workers", "2"]
    assert ValidateRequest("y").beam_pipeline_args == [] and ValidateRequest("y").beam_pipeline_args is not (
        ValidateRequest("y").beam_pipeline_args
    )


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("numeric_drift_threshold", -0.1, r"numeric_drift_threshold: expected a number in \(0, 1\]"),
        ("numeric_drift_threshold", 0.0, r"numeric_drift_threshold: expected a number in \(0, 1\]"),
        ("categorical_drift_threshold", 1.5, r"categorical_drift_threshold: expected a number in \(0, 1\]"),
        ("categorical_drift_threshold", "high", r"categorical_drift_threshold: expected a number in \(0, 1\]"),
        ("categorical_drift_threshold", True, r"categorical_drift_threshold: expected a number in \(0, 1\]"),
        ("statistics_backend", "pandas", "statistics_backend: expected one of auto, dataframe, beam, got 'pandas'"),
        ("beam_pipeline_args", ["--runner", {"a": 1}], "beam_pipeline_args: expected a list of strings"),
        ("beam_pipeline_args", "--runner=DirectRunner", "beam_pipeline_args: expected a list of strings"),
        ("label_column", "", "label_column: expected the name of the label column"),
        ("drift_gate", "eval", "drift_gate: expected one of baseline, all, none, got 'eval'"),
        ("drift_alpha", 0.0, r"drift_alpha: expected a number in \(0, 0.5\]"),
        ("drift_alpha", 0.9, r"drift_alpha: expected a number in \(0, 0.5\]"),
        ("drift_alpha", "often", r"drift_alpha: expected a number in \(0, 0.5\]"),
        ("fail_on_anomalies", "no", "fail_on_anomalies: expected true or false"),
        ("schema_uri", None, "schema_uri: expected a path or URL"),
    ],
)
def test_bad_parameter_names_the_field(field, value, match):
    kwargs = {"label_column": "churned", field: value}
    with pytest.raises(ConfigError, match=match):
        ValidateRequest(**kwargs)


def test_request_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ValidateRequest("churned").schema_uri = "x"


def test_every_parameter_is_described_once_in_the_component():
    from kfp_tabular.components.common.params import descriptions
    from kfp_tabular.components.data_processing.validate.component import validate_data

    helps = descriptions(ValidateRequest)
    assert set(helps) == {f.name for f in dataclasses.fields(ValidateRequest)}
    doc = validate_data.python_func.__doc__
    for name in helps:
        assert doc.count(f"    {name}: ") == 1, name
    inputs = validate_data.component_spec.inputs
    assert set(helps) <= set(inputs)
    assert "baseline_statistics_uri" in doc and "previous production run" in doc
