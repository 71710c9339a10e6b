"""RolloutPolicy and Thresholds: every field checked, errors naming the field; from_params from flat names."""

from __future__ import annotations

import dataclasses

import pytest

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import descriptions
from kfp_tabular.components.deployment.rollout.metrics import TEMPLATES, templates_from_json
from kfp_tabular.components.deployment.rollout.policy import (
    FLAT_NAMES,
    RolloutPolicy,
    Thresholds,
    parse_steps,
)


def test_defaults_are_the_specs() -> None:
    policy = RolloutPolicy()
    assert policy.strategy == "canary"
    assert policy.steps == (10, 25, 50, 100)
    assert policy.step_interval_seconds == 60.0
    assert (policy.min_requests, policy.max_inconclusive, policy.failure_limit) == (50, 3, 0)
    t = policy.thresholds
    assert (t.min_success_rate, t.max_p99_seconds, t.max_p99_ratio, t.p99_floor_seconds) == (0.99, 1.0, 2.0, 0.05)
    assert (t.max_prediction_drift, t.drift_metric) == (0.1, "js")


def test_every_field_has_a_description() -> None:
    helps = descriptions(RolloutPolicy, Thresholds)
    for cls in (RolloutPolicy, Thresholds):
        for field in dataclasses.fields(cls):
            assert len(helps.get(field.name, "")) > 20, field.name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10,25,50,100", (10, 25, 50, 100)),
        (" 5 , 100 ", (5, 100)),
        ([100], (100,)),
        ((1, 2, 100), (1, 2, 100)),
    ],
)
def test_steps_accepted(value, expected) -> None:
    assert parse_steps(value) == expected
    assert RolloutPolicy(steps=value).steps == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("10,25,50", "the last must be 100"),
        ("10,10,100", "not increasing"),
        ("50,25,100", "not increasing"),
        ("0,100", "outside 1..100"),
        ("10,101", "outside 1..100"),
        ("10,x,100", "'10,x,100'"),
        ("", "''"),
        ([], "[]"),
        ([10.0, 100], "is not an integer"),
        ([True, 100], "is not an integer"),
        (100, "got 100"),
    ],
)
def test_steps_refused_naming_the_field(value, fragment) -> None:
    with pytest.raises(ConfigError) as info:
        RolloutPolicy(steps=value)
    message = str(info.value)
    assert message.startswith("steps: expected strictly increasing integer percents from 1 to 100 ending with 100")
    assert fragment in message


@pytest.mark.parametrize(
    ("kwargs", "prefix"),
    [
        ({"strategy": "rolling"}, "strategy: expected one of canary, blue-green, manual"),
        ({"step_interval_seconds": 0}, "step_interval_seconds: expected a number of seconds > 0"),
        ({"step_interval_seconds": -5}, "step_interval_seconds: expected a number of seconds > 0"),
        ({"step_interval_seconds": float("nan")}, "step_interval_seconds: expected a number of seconds > 0"),
        ({"step_interval_seconds": "60"}, "step_interval_seconds: expected a number of seconds > 0"),
        ({"step_interval_seconds": 10**6}, "step_interval_seconds: expected a number of seconds > 0 and <= 86400"),
        ({"min_requests": -1}, "min_requests: expected an integer >= 0"),
        ({"min_requests": 5.0}, "min_requests: expected an integer >= 0"),
        ({"max_inconclusive": 0}, "max_inconclusive: expected an integer >= 1"),
        ({"failure_limit": -1}, "failure_limit: expected an integer >= 0"),
        ({"failure_limit": True}, "failure_limit: expected an integer >= 0"),
        ({"thresholds": {"min_success_rate": 0.9}}, "thresholds: expected a Thresholds"),
    ],
)
def test_policy_fields_refused(kwargs, prefix) -> None:
    with pytest.raises(ConfigError) as info:
        RolloutPolicy(**kwargs)
    assert str(info.value).startswith(prefix)


@pytest.mark.parametrize(
    ("kwargs", "prefix"),
    [
        ({"min_success_rate": 1.5}, "min_success_rate: expected a number from 0 to 1"),
        ({"min_success_rate": -0.1}, "min_success_rate: expected a number from 0 to 1"),
        ({"min_success_rate": "0.99"}, "min_success_rate: expected a number from 0 to 1"),
        ({"max_p99_seconds": 0}, "max_p99_seconds: expected a number of seconds > 0"),
        ({"max_p99_seconds": float("inf")}, "max_p99_seconds: expected a number of seconds > 0"),
        ({"max_p99_ratio": 0.5}, "max_p99_ratio: expected a number >= 1"),
        ({"p99_floor_seconds": -1}, "p99_floor_seconds: expected a number of seconds >= 0"),
        ({"max_prediction_drift": 0}, "max_prediction_drift: expected a number in (0, 1] (JS distance)"),
        ({"max_prediction_drift": 1.5}, "max_prediction_drift: expected a number in (0, 1] (JS distance)"),
        ({"max_prediction_drift": -1, "drift_metric": "psi"}, "max_prediction_drift: expected a number > 0 (PSI)"),
        ({"drift_metric": "kl"}, "drift_metric: expected one of js, psi"),
    ],
)
def test_threshold_fields_refused(kwargs, prefix) -> None:
    with pytest.raises(ConfigError) as info:
        Thresholds(**kwargs)
    assert str(info.value).startswith(prefix)


def test_psi_allows_drift_above_one() -> None:
    assert Thresholds(drift_metric="psi", max_prediction_drift=1.5).max_prediction_drift == 1.5


def test_from_params_builds_from_the_flat_names() -> None:
    policy = RolloutPolicy.from_params(
        rollout_strategy="blue-green",
        rollout_steps="20,100",
        step_interval_seconds=30,
        min_requests=100.0,  # a JSON number
        max_inconclusive=2,
        failure_limit=1,
        min_success_rate=0.95,
        max_p99_seconds=0.5,
        max_p99_ratio=3,
        p99_floor_seconds=0.01,
        max_prediction_drift=0.2,
        drift_metric="psi",
        prometheus_url="http://127.0.0.1:9090",  # not a policy field: ignored
    )
    assert policy.strategy == "blue-green" and policy.steps == (20, 100)
    assert policy.step_interval_seconds == 30.0 and isinstance(policy.step_interval_seconds, float)
    assert policy.min_requests == 100 and isinstance(policy.min_requests, int)
    assert (policy.max_inconclusive, policy.failure_limit) == (2, 1)
    t = policy.thresholds
    assert (t.min_success_rate, t.max_p99_seconds, t.max_p99_ratio, t.p99_floor_seconds) == (0.95, 0.5, 3.0, 0.01)
    assert (t.max_prediction_drift, t.drift_metric) == (0.2, "psi")
    assert RolloutPolicy.from_params(rollout_steps=[10, 100]).steps == (10, 100)
    assert RolloutPolicy.from_params() == RolloutPolicy()


def test_from_params_round_trips() -> None:
    policy = RolloutPolicy.from_params(rollout_steps="5,50,100", drift_metric="psi", max_prediction_drift=0.25)
    assert set(policy.to_params()) == set(FLAT_NAMES)
    assert RolloutPolicy.from_params(**policy.to_params()) == policy


@pytest.mark.parametrize(
    ("flat", "prefix"),
    [
        ({"rollout_steps": "10,50"}, "rollout_steps: expected strictly increasing"),
        ({"rollout_strategy": "big-bang"}, "rollout_strategy: expected one of canary, blue-green, manual"),
        ({"min_requests": 2.5}, "min_requests: expected an integer >= 0"),
        ({"drift_metric": "kl"}, "drift_metric: expected one of js, psi"),
        ({"max_p99_ratio": 0.1}, "max_p99_ratio: expected a number >= 1"),
    ],
)
def test_from_params_errors_name_the_flat_parameter(flat, prefix) -> None:
    with pytest.raises(ConfigError) as info:
        RolloutPolicy.from_params(**flat)
    assert str(info.value).startswith(prefix)


def test_policy_is_frozen_and_serializable() -> None:
    policy = RolloutPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.strategy = "manual"  # type: ignore[misc]
    data = policy.to_dict()
    assert data["steps"] == [10, 25, 50, 100] and data["thresholds"]["drift_metric"] == "js"


def test_prometheus_queries_parameter() -> None:
    assert templates_from_json("") is TEMPLATES["kfp-tabular"]
    assert templates_from_json("kserve-knative") is TEMPLATES["kserve-knative"]
    custom = templates_from_json(
        '{"p99": "histogram_quantile(0.99, sum by (le) (rate(x_bucket{{selector}}[{window}])))"}'
    )
    assert custom.p99.startswith("histogram_quantile") and custom.requests == TEMPLATES["kfp-tabular"].requests
    based = templates_from_json('{"base": "kserve-knative", "score_buckets": ""}')
    assert based.requests == TEMPLATES["kserve-knative"].requests and based.score_buckets == ""
    with pytest.raises(ConfigError, match="prometheus_queries: unknown keys latency"):
        templates_from_json('{"latency": "x"}')
    with pytest.raises(
        ConfigError, match=r"prometheus_queries.requests: expected a PromQL string containing \{window\}"
    ):
        templates_from_json('{"requests": "sum(x{{selector}})"}')
    with pytest.raises(ConfigError, match="prometheus_queries: expected one of kfp-tabular"):
        templates_from_json("not json")
    with pytest.raises(ConfigError, match="prometheus_queries.base"):
        templates_from_json('{"base": "nope"}')
