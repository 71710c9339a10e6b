"""Deploy without a cluster: the payload logger's parameters and patches, the lineage record and its publication."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import pytest
import yaml

from kfp_tabular.components.common import lineage
from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.deployment.deploy import core
from kfp_tabular.components.deployment.deploy.lineage_step import LineageInputs, publish_record
from kfp_tabular.components.deployment.deploy.request import DeployRequest
from kfp_tabular.components.deployment.kserve.manifest import render
from kfp_tabular.components.deployment.kserve.plans import deploy_plan, promote_plan
from kfp_tabular.components.deployment.kserve.request import ServiceRequest
from tests.support.model_files import make_model_dir, write_blessing
from tests.support.s3 import s3 as _s3

URL = "http://kfp-tabular-collector.kfp-tabular.svc.cluster.local/"
META = {
    "task": "classification",
    "label_column": "churned",
    "classes": [0, 1],
    "training_data_hash": "ab" * 32,
    "feature_order": ["tenure"],
    "features": [{"name": "tenure", "dtype": "int"}],
}


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"payload_logger_mode": "all"}, "payload_logger_url", "needs the collector's http:// or https:// URL"),
        ({"payload_logger_mode": "everything", "payload_logger_url": URL}, "payload_logger_mode", "one of all"),
        ({"payload_logger_url": URL}, "payload_logger_url", "payload_logger_mode is '' (off)"),
        ({"payload_logger_mode": "request", "payload_logger_url": "collector:8080"}, "payload_logger_url", "http"),
        ({"run_id": "a\nb"}, "run_id", "one-line"),
    ],
)
def test_bad_logger_and_run_parameters_are_named(params, field, says):
    with pytest.raises(ConfigError, match=f"^{field}: ") as info:
        DeployRequest(**params)
    assert says in str(info.value)


def test_the_logger_is_off_by_default_and_rendered_as_kserve_reads_it():
    assert "logger" not in render(ServiceRequest("churn", "ns", "s3://m/1"))["spec"]["predictor"]
    for mode in ("all", "request", "response"):
        rendered = render(ServiceRequest("churn", "ns", "s3://m/1", payload_logger_mode=mode, payload_logger_url=URL))
        assert rendered["spec"]["predictor"]["logger"] == {"mode": mode, "url": URL}


def _existing(mode: str = "Knative", logger: dict | None = None) -> dict:
    obj = render(
        ServiceRequest(
            "churn",
            "ns",
            "s3://m/1",
            deployment_mode=mode,
            model_sha256="1" * 64,
            run_id="run-1",
            lineage_uri="s3://l/1.json",
            payload_logger_mode=(logger or {}).get("mode", ""),
            payload_logger_url=(logger or {}).get("url", ""),
        )
    )
    obj["metadata"].update(generation=1, resourceVersion="7")
    obj["status"] = {"components": {"predictor": {"latestRolledoutRevision": "churn-predictor-1"}}}
    return obj


def _plan(existing: dict, **changes):
    fields = dict(
        name="churn",
        namespace="ns",
        storage_uri="s3://m/1",
        model_sha256="1" * 64,
        run_id="run-1",
        lineage_uri="s3://l/1.json",
    )
    fields.update(changes)
    request = ServiceRequest(**fields)
    return deploy_plan(None, existing, request, render(dataclasses.replace(request, canary_traffic_percent=None)))


def test_turning_the_logger_on_or_off_for_the_same_model_writes_the_predictor():
    same = _plan(_existing())
    assert same.kind == "unchanged"
    on = _plan(_existing(), payload_logger_mode="all", payload_logger_url=URL)
    assert on.kind == "patch" and on.body["spec"]["predictor"]["logger"] == {"mode": "all", "url": URL}
    off = _plan(_existing(logger={"mode": "all", "url": URL}))
    assert off.kind == "patch" and off.body["spec"]["predictor"]["logger"] is None


def test_a_new_model_carries_its_own_run_and_lineage_annotations():
    plan = _plan(_existing(), storage_uri="s3://m/2", model_sha256="2" * 64, run_id="run-2", lineage_uri="s3://l/2")
    assert plan.body["spec"]["predictor"]["annotations"] == {
        "kfp-tabular.dev/model-sha256": "2" * 64,
        "kfp-tabular.dev/run-id": "run-2",
        "kfp-tabular.dev/lineage-uri": "s3://l/2",
    }
    # The stable predictor a rollback restores keeps the old run's annotations.
    previous = json.loads(plan.body["metadata"]["annotations"]["kfp-tabular.dev/previous-predictor"])
    assert previous["annotations"]["kfp-tabular.dev/run-id"] == "run-1"


def test_standard_mode_canary_and_promotion_carry_the_logger(monkeypatch):
    from kfp_tabular.components.deployment.kserve import plans

    monkeypatch.setattr(plans, "standard_canary_supported", lambda api, namespace: True)
    existing = _existing("Standard")
    plan = _plan(
        existing,
        storage_uri="s3://m/2",
        model_sha256="2" * 64,
        deployment_mode="Standard",
        canary_traffic_percent=20,
        run_id="run-2",
        payload_logger_mode="response",
        payload_logger_url=URL,
    )
    canary = plan.body["spec"]["canary"][0]["predictor"]
    assert canary["logger"] == {"mode": "response", "url": URL}
    assert canary["annotations"]["kfp-tabular.dev/model-sha256"] == "2" * 64
    existing["spec"]["canary"] = plan.body["spec"]["canary"]
    existing["status"] = {"observedGeneration": 1, "canaryStatuses": [{"name": canary["name"], "ready": True}]}
    promoted = promote_plan(existing)
    assert promoted.body["spec"]["predictor"]["logger"] == {"mode": "response", "url": URL}
    assert promoted.body["spec"]["predictor"]["annotations"] == {
        "kfp-tabular.dev/model-sha256": "2" * 64,
        "kfp-tabular.dev/run-id": "run-2",
    }


def _inputs(tmp_path) -> LineageInputs:
    return LineageInputs(
        statistics_uri="s3://runs/1/train_statistics",
        schema_uri="s3://runs/1/schema",
        training_data_uri="s3://runs/1/train_data",
        lineage_path=str(tmp_path / "out" / "lineage"),
        lineage_uri="minio://mlpipeline/v2/artifacts/run-1/deploy/lineage",
        model_card_path=str(tmp_path / "out" / "card.md"),
        model_card_html_path=str(tmp_path / "out" / "card.html"),
    )


def test_render_writes_the_record_and_card_and_annotates_the_artifact_uri(tmp_path):
    model = make_model_dir(tmp_path / "model", os.urandom(64), META)
    blessing = write_blessing(tmp_path / "blessing.json", model)
    request = DeployRequest(run_id="run-1", run_name="train-1", pipeline_name="p")
    result = core.deploy_action(
        request,
        blessing_path=str(blessing),
        model_uri="minio://mlpipeline/v2/artifacts/run-1/train/model",
        model_path=str(model),
        manifest_path=str(tmp_path / "out" / "manifest"),
        status_path=str(tmp_path / "out" / "status"),
        lineage_inputs=_inputs(tmp_path),
    )
    record = lineage.read(tmp_path / "out" / "lineage")
    assert record.run == {"id": "run-1", "name": "train-1", "pipeline": "p"}
    assert record.storage_uri == "s3://mlpipeline/v2/artifacts/run-1/train/model"
    assert record.training_data == {"uri": "s3://runs/1/train_data", "hash": "ab" * 32}
    assert result["lineage_uri"] == "minio://mlpipeline/v2/artifacts/run-1/deploy/lineage"
    manifest = yaml.safe_load((tmp_path / "out" / "manifest").read_text())
    annotations = manifest["spec"]["predictor"]["annotations"]
    assert annotations["kfp-tabular.dev/lineage-uri"] == result["lineage_uri"]
    assert annotations["kfp-tabular.dev/run-id"] == "run-1"
    assert "kfp-tabular/churn-classifier" in (tmp_path / "out" / "card.md").read_text()


def test_a_model_that_is_not_blessed_gets_a_record_and_a_card_that_say_so(tmp_path):
    model = make_model_dir(tmp_path / "model", os.urandom(64), META)
    blessing = write_blessing(tmp_path / "blessing.json", model, blessed=False)
    core.deploy_action(
        DeployRequest(),
        blessing_path=str(blessing),
        model_uri=str(model),
        manifest_path=str(tmp_path / "out" / "manifest"),
        status_path=str(tmp_path / "out" / "status"),
        lineage_inputs=_inputs(tmp_path),
    )
    record = lineage.read(tmp_path / "out" / "lineage")
    assert record.storage_uri == "" and record.blessing["blessed"] is False
    card = (tmp_path / "out" / "card.md").read_text()
    assert "not deployed" in card and "blessing: NOT BLESSED" in card


def test_publishing_puts_the_record_beside_the_model_once_per_run(tmp_path, moto_s3):
    _s3(moto_s3).mkdir("lineage-models")
    model = make_model_dir(tmp_path / "model", os.urandom(64), META)
    blessing = write_blessing(tmp_path / "blessing.json", model)
    digest = hashlib.sha256((model / "model.joblib").read_bytes()).hexdigest()[:16]
    for run in ("run-1", "run-2"):
        request = DeployRequest(publish_uri="s3://lineage-models/churn", s3_endpoint_url=moto_s3, run_id=run)
        result = core.deploy_action(
            request,
            blessing_path=str(blessing),
            model_uri=str(model),
            manifest_path=str(tmp_path / run / "manifest"),
            status_path=str(tmp_path / run / "status"),
            lineage_inputs=_inputs(tmp_path / run),
        )
        assert result["lineage_uri"] == f"s3://lineage-models/churn/lineage/{digest}/{run}.json"
    fs = _s3(moto_s3)
    fs.invalidate_cache()
    # The versioned model directory keeps its files only; the records are outside it, one per run.
    assert sorted(p.rsplit("/", 1)[1] for p in fs.find(f"lineage-models/churn/{digest}")) == [
        "metadata.json",
        "model.joblib",
    ]
    assert len(fs.find(f"lineage-models/churn/lineage/{digest}")) == 2
    data = json.loads(fs.cat_file(f"lineage-models/churn/lineage/{digest}/run-2.json"))
    assert data["storage_uri"] == f"s3://lineage-models/churn/{digest}" and data["run"]["id"] == "run-2"

    # Immutable: the same record again is a no-op, another one under the same name is refused.
    record = lineage.read(tmp_path / "run-2" / "out" / "lineage")
    assert publish_record(record, "s3://lineage-models/churn", s3_endpoint_url=moto_s3).endswith("run-2.json")
    other = lineage.LineageRecord(**{**record.as_dict(), "created_at": "2020-01-01T00:00:00+00:00"})
    with pytest.raises(ConfigError, match="^publish_uri: .* already holds another lineage record"):
        publish_record(other, "s3://lineage-models/churn", s3_endpoint_url=moto_s3)
