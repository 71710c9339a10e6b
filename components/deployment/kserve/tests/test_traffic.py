"""kserve.traffic: one rollout step's plan, the blue-green preview URL, which model each predictor serves."""

from __future__ import annotations

import json

import pytest

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.kserve import isvc, traffic
from kfp_tabular.components.deployment.kserve.manifest import render_inference_service

A, B = "a" * 64, "b" * 64


def knative_canary(percent: int = 10) -> dict:
    obj = render_inference_service("m", "ns", "s3://m/b", canary_traffic_percent=percent, model_sha256=B)
    stable = render_inference_service("m", "ns", "s3://m/a", model_sha256=A)["spec"]["predictor"]
    obj["metadata"]["annotations"][isvc.ROLLOUT_STATE_ANNOTATION] = isvc.STATE_CANARY
    obj["metadata"]["annotations"][isvc.PREVIOUS_PREDICTOR_ANNOTATION] = json.dumps(stable)
    obj["metadata"]["generation"] = 2
    obj["metadata"]["resourceVersion"] = "7"
    return obj


def standard_canary(percent: int = 10) -> dict:
    obj = render_inference_service("m", "ns", "s3://m/a", deployment_mode="Standard", model_sha256=A)
    canary = {"name": "mb", "model": {"name": "kserve-container", "storageUri": "s3://m/b"}}
    canary["annotations"] = {isvc.MODEL_SHA_ANNOTATION: B}
    obj["spec"]["canary"] = [{"trafficPercent": percent, "predictor": canary}]
    obj["metadata"]["annotations"][isvc.ROLLOUT_STATE_ANNOTATION] = isvc.STATE_CANARY
    return obj


def test_render_records_the_model_sha_on_the_predictor_and_asks_kserve_to_scrape():
    obj = render_inference_service("m", "ns", "s3://m/a", model_sha256=A)
    assert obj["spec"]["predictor"]["annotations"] == {isvc.MODEL_SHA_ANNOTATION: A}
    assert obj["metadata"]["annotations"][isvc.PROMETHEUS_SCRAPING_ANNOTATION] == "true"
    assert "annotations" not in render_inference_service("m", "ns", "s3://m/a")["spec"]["predictor"]
    with pytest.raises(ConfigError, match="^model_sha256: "):
        render_inference_service("m", "ns", "s3://m/a", model_sha256="ABC")


def test_knative_step_patches_only_the_canary_percent():
    plan = traffic.step_plan(knative_canary(10), 25)
    assert plan.kind == "patch"
    assert plan.body == {"spec": {"predictor": {"canaryTrafficPercent": 25}}}
    expectation = plan.expect(3)
    assert (expectation.generation, expectation.latest_percent) == (3, 25)
    assert traffic.step_plan(knative_canary(25), 25).kind == "unchanged"


def test_standard_step_rewrites_the_one_canary_entry():
    plan = traffic.step_plan(standard_canary(10), 50)
    (entry,) = plan.body["spec"]["canary"]
    assert entry["trafficPercent"] == 50 and entry["predictor"]["name"] == "mb"
    assert plan.expect(4).canary_name == "mb" and plan.expect(4).canary_percent == 50


def test_a_step_without_a_canary_is_refused():
    stable = render_inference_service("m", "ns", "s3://m/a")
    plan = traffic.step_plan(stable, 50)
    assert plan.kind == "refused" and "no canary in progress" in plan.note


def test_stable_and_canary_sha_in_each_mode():
    assert traffic.stable_and_canary_sha(knative_canary()) == (A, B)
    assert traffic.stable_and_canary_sha(standard_canary()) == (A, B)
    stable = render_inference_service("m", "ns", "s3://m/a", model_sha256=A)
    assert traffic.stable_and_canary_sha(stable) == (A, A)
    no_record = knative_canary()
    del no_record["metadata"]["annotations"][isvc.PREVIOUS_PREDICTOR_ANNOTATION]
    assert traffic.stable_and_canary_sha(no_record) == ("", B)


def test_blue_green_needs_knative_tag_routing_and_a_tagged_url():
    with pytest.raises(ConfigError, match=r"^rollout_strategy, deployment_mode: .*Standard mode"):
        traffic.preview_url(standard_canary(0))
    untagged = knative_canary(0)
    del untagged["metadata"]["annotations"][isvc.TAG_ROUTING_ANNOTATION]
    with pytest.raises(ConfigError, match=r"^rollout_strategy: .*enable-tag-routing"):
        traffic.preview_url(untagged)
    obj = knative_canary(0)
    with pytest.raises(DeployError, match="no tagged URL"):
        traffic.preview_url(obj)
    obj["status"] = {
        "components": {
            "predictor": {
                "traffic": [
                    {"revisionName": "m-2", "percent": 0, "latestRevision": True, "tag": "latest", "url": "http://l"},
                    {"revisionName": "m-1", "percent": 100, "latestRevision": False, "tag": "prev", "url": "http://p"},
                ]
            }
        }
    }
    assert traffic.preview_url(obj) == "http://l"
