"""Rendering InferenceServices and translating KFP artifact URIs into storageUris (no cluster)."""

from __future__ import annotations

import pytest
import yaml

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.deployment.kserve import isvc
from kfp_tabular.components.deployment.kserve import manifest as kmanifest
from kfp_tabular.components.deployment.kserve import request as krequest
from tests.plugin import shared_kserve_dir

SHARED_CRD = shared_kserve_dir() / "serving.kserve.io_inferenceservices.yaml"


# ---------------------------------------------------------------------------------------------------------
# render_inference_service
# ---------------------------------------------------------------------------------------------------------


def test_render_defaults_knative_stock_runtime():
    obj = kmanifest.render_inference_service("churn-classifier", "kfp-tabular", "s3://models/churn/v1")
    assert obj["apiVersion"] == "serving.kserve.io/v1beta1"
    assert obj["kind"] == "InferenceService"
    assert obj["metadata"]["name"] == "churn-classifier"
    assert obj["metadata"]["namespace"] == "kfp-tabular"
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert obj["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"] == "true"
    predictor = obj["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert "serviceAccountName" not in predictor
    model = predictor["model"]
    assert model["modelFormat"]["name"] == "sklearn"
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"] == "s3://models/churn/v1"
    assert "runtime" not in model, "empty runtime must be omitted so KServe picks the stock sklearn runtime"
    assert model["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert model["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}


def test_render_all_options_and_yaml_round_trip():
    obj = kmanifest.render_inference_service(
        "churn",
        "ml",
        "pvc://model-store/churn/v2",
        canary_traffic_percent=25,
        runtime="kfp-tabular-sklearn",
        service_account_name="kserve-storage",
        protocol_version="v1",
        resources={"requests": {"cpu": "250m", "memory": 512}, "limits": {"memory": "2Gi"}},
        labels={"team": "ds"},
        annotations={"owner": "me"},
    )
    predictor = obj["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    assert predictor["serviceAccountName"] == "kserve-storage"
    assert predictor["model"]["runtime"] == "kfp-tabular-sklearn"
    assert predictor["model"]["protocolVersion"] == "v1"
    expected = {"requests": {"cpu": "250m", "memory": "512"}, "limits": {"memory": "2Gi"}}
    assert predictor["model"]["resources"] == expected
    assert obj["metadata"]["labels"]["team"] == "ds"
    assert obj["metadata"]["annotations"]["owner"] == "me"
    assert yaml.safe_load(kmanifest.to_yaml(obj)) == obj


def test_render_standard_mode_annotation_and_aliases():
    standard = kmanifest.render_inference_service("churn", "ml", "s3://m/a", deployment_mode="RawDeployment")
    assert standard["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert "serving.kserve.io/enable-tag-routing" not in standard["metadata"]["annotations"]
    knative = kmanifest.render_inference_service("churn", "ml", "s3://m/a", deployment_mode="serverless")
    assert knative["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"


def test_render_file_uri_allowed_for_render_only():
    obj = kmanifest.render_inference_service("churn", "ml", "file:///tmp/model")
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "file:///tmp/model"
    with pytest.raises(ConfigError, match="storage_uri"):
        krequest.check_storage_uri("file:///tmp/model")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Churn"}, "name"),
        ({"name": "1churn"}, "name"),
        ({"name": "churn-"}, "name"),
        ({"name": "c" * 64}, "name"),
        ({"name": "churn.model"}, "name"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"storage_uri": "ftp://host/model"}, "storage_uri"),
        ({"storage_uri": "/tmp/model"}, "storage_uri"),
        ({"storage_uri": "s3:///key-without-bucket"}, "storage_uri"),
        ({"storage_uri": "pvc://claim-only"}, "storage_uri"),
        ({"storage_uri": "file://relative/path"}, "storage_uri"),
        ({"storage_uri": ""}, "storage_uri"),
        ({"canary_traffic_percent": 101}, "canary_traffic_percent"),
        ({"canary_traffic_percent": -1}, "canary_traffic_percent"),
        ({"canary_traffic_percent": "10"}, "canary_traffic_percent"),
        ({"canary_traffic_percent": True}, "canary_traffic_percent"),
        ({"deployment_mode": "ModelMesh"}, "deployment_mode"),
        ({"protocol_version": "v3"}, "protocol_version"),
        ({"runtime": "Bad Runtime"}, "runtime"),
        ({"service_account_name": "Bad SA"}, "service_account_name"),
        ({"resources": {"cpu": "1"}}, "resources"),
        ({"resources": {"limits": {}}}, "resources.limits"),
        ({"resources": {"limits": {"cpu": None}}}, "resources.limits.cpu"),
        ({"labels": {"a": 1}}, "labels"),
        ({"annotations": ["x"]}, "annotations"),
        ({"annotations": {"serving.kserve.io/deploymentMode": "Standard"}}, "annotations"),
        ({"deployment_mode": "Standard", "canary_traffic_percent": 10}, "canary_traffic_percent"),
    ],
)
def test_render_rejects_bad_fields_naming_them(kwargs, field):
    args = {"name": "churn", "namespace": "ml", "storage_uri": "s3://models/a"}
    args.update(kwargs)
    with pytest.raises(ConfigError) as info:
        kmanifest.render_inference_service(**args)
    assert str(info.value).startswith(field), str(info.value)


@pytest.mark.parametrize("percent", [0, 1, 50, 100])
def test_render_percent_bounds_accepted(percent):
    obj = kmanifest.render_inference_service("churn", "ml", "gs://bucket/model", canary_traffic_percent=percent)
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == percent


@pytest.mark.skipif(not SHARED_CRD.is_file(), reason="../shared/kserve not present")
def test_rendered_fields_exist_in_kserve_crd_schema():
    """Every rendered spec path is a property of KServe's real CRD (the cluster tests also dry-run it)."""
    crd = yaml.load(SHARED_CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    obj = kmanifest.render_inference_service(
        "churn", "ml", "s3://m/a", canary_traffic_percent=10, runtime="r", service_account_name="sa"
    )

    def walk(value, node, path):
        if isinstance(value, dict) and "properties" in node:
            for key, sub in value.items():
                assert key in node["properties"], f"{path}.{key} is not in the CRD schema"
                walk(sub, node["properties"][key], f"{path}.{key}")

    walk(obj["spec"], schema["properties"]["spec"], "spec")
    assert isvc.crd_has_canary(crd)


# ---------------------------------------------------------------------------------------------------------
# model_storage_uri
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("minio://mlpipeline/v2/artifacts/run/train/model", "s3://mlpipeline/v2/artifacts/run/train/model"),
        ("s3://bucket/models/a", "s3://bucket/models/a"),
        ("gs://bucket/models/a", "gs://bucket/models/a"),
        ("pvc://model-store/churn/v1", "pvc://model-store/churn/v1"),
        ("https://example.com/model", "https://example.com/model"),
    ],
)
def test_model_storage_uri_translation(uri, expected):
    assert kmanifest.model_storage_uri(uri) == expected


def test_model_storage_uri_local_path(tmp_path):
    with pytest.raises(ConfigError, match="model.uri: .*local path"):
        kmanifest.model_storage_uri(str(tmp_path))
    assert kmanifest.model_storage_uri(str(tmp_path), allow_local=True) == f"file://{tmp_path.resolve()}"
    assert kmanifest.model_storage_uri(f"file://{tmp_path}", allow_local=True) == f"file://{tmp_path.resolve()}"


@pytest.mark.parametrize("uri", ["", "oci://registry/model:1", "minio://"])
def test_model_storage_uri_rejects(uri):
    with pytest.raises(ConfigError, match="model.uri"):
        kmanifest.model_storage_uri(uri)
