"""Tests of the deploy core that need no cluster: rendering, URIs, the gate, publishing, status checks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from kfp_tabular.components.common.errors import ConfigError, DataError, DeployError
from kfp_tabular.components.deployment.deploy import core
from tests.plugin import shared_kserve_dir

SHARED_CRD = shared_kserve_dir() / "serving.kserve.io_inferenceservices.yaml"


# ---------------------------------------------------------------------------------------------------------
# render_inference_service
# ---------------------------------------------------------------------------------------------------------


def test_render_defaults_knative_stock_runtime():
    obj = core.render_inference_service("churn-classifier", "kfp-tabular", "s3://models/churn/v1")
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
    obj = core.render_inference_service(
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
    assert yaml.safe_load(core.to_yaml(obj)) == obj


def test_render_standard_mode_annotation_and_aliases():
    standard = core.render_inference_service("churn", "ml", "s3://m/a", deployment_mode="RawDeployment")
    assert standard["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert "serving.kserve.io/enable-tag-routing" not in standard["metadata"]["annotations"]
    knative = core.render_inference_service("churn", "ml", "s3://m/a", deployment_mode="serverless")
    assert knative["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"


def test_render_file_uri_allowed_for_render_only():
    obj = core.render_inference_service("churn", "ml", "file:///tmp/model")
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "file:///tmp/model"
    with pytest.raises(ConfigError, match="storage_uri"):
        core.check_storage_uri("file:///tmp/model")


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
        core.render_inference_service(**args)
    assert str(info.value).startswith(field), str(info.value)


@pytest.mark.parametrize("percent", [0, 1, 50, 100])
def test_render_percent_bounds_accepted(percent):
    obj = core.render_inference_service("churn", "ml", "gs://bucket/model", canary_traffic_percent=percent)
    assert obj["spec"]["predictor"]["canaryTrafficPercent"] == percent


@pytest.mark.skipif(not SHARED_CRD.is_file(), reason="../shared/kserve not present")
def test_rendered_fields_exist_in_kserve_crd_schema():
    """Every rendered spec path is a property of KServe's real CRD (the cluster tests also dry-run it)."""
    crd = yaml.load(SHARED_CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    obj = core.render_inference_service(
        "churn", "ml", "s3://m/a", canary_traffic_percent=10, runtime="r", service_account_name="sa"
    )

    def walk(value, node, path):
        if isinstance(value, dict) and "properties" in node:
            for key, sub in value.items():
                assert key in node["properties"], f"{path}.{key} is not in the CRD schema"
                walk(sub, node["properties"][key], f"{path}.{key}")

    walk(obj["spec"], schema["properties"]["spec"], "spec")
    assert core.crd_has_canary(crd)


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
    assert core.model_storage_uri(uri) == expected


def test_model_storage_uri_local_path(tmp_path):
    with pytest.raises(ConfigError, match="model.uri: .*local path"):
        core.model_storage_uri(str(tmp_path))
    assert core.model_storage_uri(str(tmp_path), allow_local=True) == f"file://{tmp_path.resolve()}"
    assert core.model_storage_uri(f"file://{tmp_path}", allow_local=True) == f"file://{tmp_path.resolve()}"


@pytest.mark.parametrize("uri", ["", "oci://registry/model:1", "minio://"])
def test_model_storage_uri_rejects(uri):
    with pytest.raises(ConfigError, match="model.uri"):
        core.model_storage_uri(uri)


# ---------------------------------------------------------------------------------------------------------
# gate
# ---------------------------------------------------------------------------------------------------------


def _blessing(tmp_path, content) -> str:
    path = tmp_path / "blessing.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_gate_blessed_and_not_blessed(tmp_path):
    assert core.gate(_blessing(tmp_path, {"blessed": True, "reasons": ["auc 0.83 >= 0.7"]})) == (
        True,
        "blessed: auc 0.83 >= 0.7",
    )
    blessed, reason = core.gate(_blessing(tmp_path, {"blessed": False, "reasons": ["auc 0.5 < 0.7", "worse"]}))
    assert blessed is False
    assert reason == "not blessed: auc 0.5 < 0.7; worse"
    assert core.gate(_blessing(tmp_path, {"blessed": False})) == (False, "not blessed: the evaluator gave no reason")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "invalid JSON"),
        ([1, 2], "expected a blessing JSON object"),
        ({"reasons": []}, "field 'blessed' is missing"),
        ({"blessed": "yes"}, "field 'blessed' must be true or false"),
        ({"blessed": True, "reasons": "ok"}, "field 'reasons'"),
        ({"blessed": True, "reasons": [1]}, "field 'reasons'"),
    ],
)
def test_gate_malformed_names_file_and_field(tmp_path, content, needle):
    path = _blessing(tmp_path, content)
    with pytest.raises(DataError) as info:
        core.gate(path)
    assert path in str(info.value)
    assert needle in str(info.value)


def test_gate_missing_file(tmp_path):
    with pytest.raises(DataError, match="blessing not found"):
        core.gate(str(tmp_path / "nope.json"))


# ---------------------------------------------------------------------------------------------------------
# publish_model
# ---------------------------------------------------------------------------------------------------------


def make_model_dir(path: Path, payload: bytes = b"model-bytes", extra: dict | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "model.joblib").write_bytes(payload)
    metadata = {"features": [], "model_sha256": hashlib.sha256(payload).hexdigest(), **(extra or {})}
    (path / "metadata.json").write_text(json.dumps(metadata))
    return path


def _tree_hashes(root: Path) -> dict:
    files = [p for p in root.rglob("*") if p.is_file()]
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_publish_to_pvc_mount(tmp_path):
    model = make_model_dir(tmp_path / "model")
    mount = tmp_path / "mnt"
    mount.mkdir()
    uri = core.publish_model(str(model), "pvc://model-store/churn/v1", pvc_mount_root=str(mount))
    assert uri == "pvc://model-store/churn/v1"
    assert _tree_hashes(mount / "churn" / "v1") == _tree_hashes(model)
    # No staging leftovers beside the published directory.
    assert sorted(p.name for p in (mount / "churn").iterdir()) == ["v1"]
    # Same files again: a no-op; different files: refused (published models are immutable).
    assert core.publish_model(str(model), "pvc://model-store/churn/v1", pvc_mount_root=str(mount)) == uri
    other = make_model_dir(tmp_path / "other", payload=b"other-model")
    with pytest.raises(ConfigError, match="already holds a different model"):
        core.publish_model(str(other), "pvc://model-store/churn/v1", pvc_mount_root=str(mount))


def test_publish_pvc_errors(tmp_path):
    model = make_model_dir(tmp_path / "model")
    with pytest.raises(ConfigError, match="pvc_mount_root"):
        core.publish_model(str(model), "pvc://model-store/churn/v1")
    with pytest.raises(ConfigError, match="pvc_mount_root"):
        core.publish_model(str(model), "pvc://model-store/churn/v1", pvc_mount_root=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="leaves the claim"):
        core.publish_model(str(model), "pvc://model-store/../../etc", pvc_mount_root=str(tmp_path))
    with pytest.raises(ConfigError, match="target_uri"):
        core.publish_model(str(model), "pvc://model-store", pvc_mount_root=str(tmp_path))
    with pytest.raises(ConfigError, match="target_uri"):
        core.publish_model(str(model), "gs://bucket/model")


def test_publish_rejects_bad_model_dirs(tmp_path):
    with pytest.raises(DataError, match="Model artifact directory"):
        core.publish_model(str(tmp_path / "missing"), "s3://b/k")
    no_meta = tmp_path / "no_meta"
    no_meta.mkdir()
    (no_meta / "model.joblib").write_bytes(b"x")
    with pytest.raises(DataError, match="metadata.json: missing"):
        core.publish_model(str(no_meta), "s3://b/k")
    two = make_model_dir(tmp_path / "two")
    (two / "extra.pkl").write_bytes(b"y")
    with pytest.raises(DataError, match="exactly one model file"):
        core.publish_model(str(two), "s3://b/k")
    tampered = make_model_dir(tmp_path / "tampered")
    (tampered / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(DataError, match="model_sha256"):
        core.publish_model(str(tampered), "s3://b/k")
    bad_meta = make_model_dir(tmp_path / "bad_meta")
    (bad_meta / "metadata.json").write_text("[")
    with pytest.raises(DataError, match="metadata.json"):
        core.publish_model(str(bad_meta), "s3://b/k")


@pytest.fixture(scope="module")
def moto_s3():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _s3(endpoint):
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)


def test_publish_to_s3_with_checksums(tmp_path, moto_s3):
    fs = _s3(moto_s3)
    fs.mkdir("models")
    model = make_model_dir(tmp_path / "model", payload=os.urandom(4096))
    uri = core.publish_model(str(model), "minio://models/churn/v1", s3_endpoint_url=moto_s3)
    assert uri == "s3://models/churn/v1"
    fs.invalidate_cache()
    assert sorted(fs.find("models/churn/v1")) == ["models/churn/v1/metadata.json", "models/churn/v1/model.joblib"]
    for name in ("model.joblib", "metadata.json"):
        assert fs.cat_file(f"models/churn/v1/{name}") == (model / name).read_bytes()
    # Idempotent for the same files; refuses other files at the same place.
    assert core.publish_model(str(model), "s3://models/churn/v1", s3_endpoint_url=moto_s3) == uri
    other = make_model_dir(tmp_path / "other", payload=b"another model")
    with pytest.raises(ConfigError, match="already holds a different model"):
        core.publish_model(str(other), "s3://models/churn/v1", s3_endpoint_url=moto_s3)


def test_publish_to_s3_resumes_a_partial_upload(tmp_path, moto_s3):
    """A pod killed mid-upload left model.joblib only: the next attempt uploads the rest instead of refusing."""
    fs = _s3(moto_s3)
    fs.mkdir("resume")
    model = make_model_dir(tmp_path / "model", payload=os.urandom(4096))
    fs.put_file(str(model / "model.joblib"), "resume/churn/v1/model.joblib")
    uri = core.publish_model(str(model), "s3://resume/churn/v1", s3_endpoint_url=moto_s3)
    assert uri == "s3://resume/churn/v1"
    fs.invalidate_cache()
    assert sorted(fs.find("resume/churn/v1")) == ["resume/churn/v1/metadata.json", "resume/churn/v1/model.joblib"]
    for name in ("model.joblib", "metadata.json"):
        assert fs.cat_file(f"resume/churn/v1/{name}") == (model / name).read_bytes()


@pytest.mark.parametrize(
    ("leftover", "content"),
    [("model.joblib", b"a different, half-written model"), ("notes.txt", b"a file the model does not have")],
)
def test_publish_to_s3_refuses_a_partial_prefix_with_other_content(tmp_path, moto_s3, leftover, content):
    fs = _s3(moto_s3)
    bucket = f"partial-{leftover.split('.')[0]}"
    fs.mkdir(bucket)
    model = make_model_dir(tmp_path / "model")
    fs.pipe_file(f"{bucket}/churn/v1/{leftover}", content)
    with pytest.raises(ConfigError, match="already holds a different model") as info:
        core.publish_model(str(model), f"s3://{bucket}/churn/v1", s3_endpoint_url=moto_s3)
    assert leftover in str(info.value)
    fs.invalidate_cache()
    assert fs.find(f"{bucket}/churn/v1") == [f"{bucket}/churn/v1/{leftover}"], "nothing uploaded next to it"


def test_deploy_action_publishes_to_s3_before_rendering(tmp_path, moto_s3):
    _s3(moto_s3).mkdir("published-models")
    model = make_model_dir(tmp_path / "model", payload=os.urandom(2048))
    blessing = tmp_path / "blessing.json"
    blessing.write_text(json.dumps({"blessed": True, "reasons": ["roc_auc 0.84 >= 0.7"]}))
    digest = hashlib.sha256((model / "model.joblib").read_bytes()).hexdigest()[:16]
    result = core.deploy_action(
        action="render",
        blessing_path=str(blessing),
        model_uri=str(model),
        manifest_path=str(tmp_path / "manifest.yaml"),
        status_path=str(tmp_path / "status.json"),
        isvc_name="churn-classifier",
        namespace="kfp-tabular",
        publish_uri="s3://published-models/churn/",
        s3_endpoint_url=moto_s3,
    )
    assert result["storage_uri"] == result["published_to"] == f"s3://published-models/churn/{digest}"
    assert result["deployable"] is True
    fs = _s3(moto_s3)
    fs.invalidate_cache()
    assert fs.cat_file(f"published-models/churn/{digest}/model.joblib") == (model / "model.joblib").read_bytes()


def test_deploy_action_refuses_storage_uri_with_publish_uri(tmp_path):
    with pytest.raises(ConfigError, match="storage_uri and publish_uri: give one"):
        core.deploy_action(
            action="render",
            blessing_path=str(tmp_path / "blessing.json"),
            model_uri=str(tmp_path),
            manifest_path=str(tmp_path / "m.yaml"),
            status_path=str(tmp_path / "s.json"),
            isvc_name="churn-classifier",
            namespace="kfp-tabular",
            storage_uri="s3://models/a",
            publish_uri="s3://models/b",
        )
    assert not (tmp_path / "m.yaml").exists() and not (tmp_path / "s.json").exists()


def test_publish_to_s3_endpoint_from_environment(tmp_path, moto_s3, monkeypatch):
    fs = _s3(moto_s3)
    fs.mkdir("envbucket")
    model = make_model_dir(tmp_path / "model")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    host_port = moto_s3.split("://", 1)[1]
    monkeypatch.setenv("S3_ENDPOINT", host_port)  # KServe's variable, scheme from S3_USE_HTTPS
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    assert core.publish_model(str(model), "s3://envbucket/m1") == "s3://envbucket/m1"
    fs.invalidate_cache()
    assert fs.cat_file("envbucket/m1/model.joblib") == b"model-bytes"


def test_publish_to_s3_unreachable_or_bucket_root(tmp_path):
    model = make_model_dir(tmp_path / "model")
    with pytest.raises(ConfigError, match="not a bucket root"):
        core.publish_model(str(model), "s3://bucket")
    with pytest.raises(DeployError, match="cannot list the target"):
        core.publish_model(str(model), "s3://bucket/key", s3_endpoint_url="http://127.0.0.1:9")


# ---------------------------------------------------------------------------------------------------------
# Expectation: what counts as done, from status documents shaped like KServe's
# ---------------------------------------------------------------------------------------------------------


def _isvc(
    generation=2,
    observed=2,
    ready="True",
    created="m-predictor-00002",
    ready_rev="m-predictor-00002",
    traffic=None,
    mode="Knative",
    reason="",
    canaries=None,
    conditions_extra=(),
):
    status = {
        "observedGeneration": observed,
        "conditions": [{"type": "Ready", "status": ready, "reason": reason}, *conditions_extra],
        "components": {
            "predictor": {"latestCreatedRevision": created, "latestReadyRevision": ready_rev, "traffic": traffic or []}
        },
    }
    if canaries is not None:
        status["canaryStatuses"] = canaries
    return {
        "metadata": {
            "name": "m",
            "namespace": "n",
            "generation": generation,
            "annotations": {"serving.kserve.io/deploymentMode": mode},
        },
        "status": status,
    }


CANARY_TRAFFIC = [
    {"revisionName": "m-predictor-00002", "percent": 10, "latestRevision": True},
    {"revisionName": "m-predictor-00001", "percent": 90, "latestRevision": False},
]


def test_expectation_knative_canary_split():
    exp = core.Expectation(2, "Knative", latest_percent=10, not_revision="m-predictor-00001")
    assert exp.check(_isvc(traffic=CANARY_TRAFFIC))[0] == "ok"
    assert exp.check(_isvc(observed=1, traffic=CANARY_TRAFFIC))[0] == "wait"
    assert exp.check(_isvc(ready="Unknown", traffic=CANARY_TRAFFIC))[0] == "wait"
    full = [{"revisionName": "m-predictor-00002", "percent": 100, "latestRevision": True}]
    assert exp.check(_isvc(traffic=full))[0] == "wait"
    stale = [{"revisionName": "m-predictor-00001", "percent": 100, "latestRevision": True}]
    assert exp.check(_isvc(ready_rev="m-predictor-00001", created="m-predictor-00001", traffic=stale))[0] == "wait"
    same_revision = [
        {"revisionName": "m-predictor-00002", "percent": 10, "latestRevision": True},
        {"revisionName": "m-predictor-00002", "percent": 90, "latestRevision": False},
    ]
    assert exp.check(_isvc(traffic=same_revision))[0] == "wait"


def test_expectation_knative_failed_revision_fails_fast():
    exp = core.Expectation(2, "Knative", latest_percent=10)
    verdict, why = exp.check(
        _isvc(ready="False", reason="RevisionFailed", ready_rev="m-predictor-00001", traffic=CANARY_TRAFFIC)
    )
    assert verdict == "failed"
    assert "m-predictor-00002" in why and "RevisionFailed" in why
    assert exp.check(_isvc(observed=1, ready="False", ready_rev="m-predictor-00001"))[0] == "wait"


def test_expectation_knative_ignores_a_failure_that_predates_the_write():
    """observedGeneration already at the new generation, components still describe the failed old revision."""
    stale = _isvc(ready="False", reason="RevisionFailed", created="m-predictor-00002", ready_rev="m-predictor-00001")
    exp = core.Expectation(2, "Knative", latest_percent=100, before_revision="m-predictor-00002")
    verdict, why = exp.check(stale)
    assert verdict == "wait" and "before this write" in why
    # The revision created for this write fails: that failure is ours.
    ours = _isvc(ready="False", reason="RevisionFailed", created="m-predictor-00003", ready_rev="m-predictor-00001")
    assert exp.check(ours)[0] == "failed"
    # KServe's lastFailureInfo naming a new revision counts as well.
    stale["status"]["modelStatus"] = {
        "transitionStatus": "BlockedByFailedLoad",
        "lastFailureInfo": {"reason": "ModelLoadFailed", "modelRevisionName": "m-predictor-00003"},
    }
    assert exp.check(stale)[0] == "failed"
    stale["status"]["modelStatus"]["lastFailureInfo"]["modelRevisionName"] = "m-predictor-00002"
    assert exp.check(stale)[0] == "wait"
    # Without a recorded revision (nothing new expected) a failed latest revision fails at once.
    assert core.Expectation(2, "Knative", latest_percent=50).check(stale)[0] == "failed"


def _failed_model_status(message="model s3://m/b failed to load", when="2026-01-01T00:00:00Z"):
    return {
        "transitionStatus": "BlockedByFailedLoad",
        "states": {"activeModelState": "FailedToLoad", "targetModelState": "Loaded"},
        "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message, "time": when},
    }


def test_expectation_standard_canary_failure_fails_fast_unless_it_predates_the_write():
    failed = [{"name": "mabc", "ready": False, "trafficPercent": 10, "modelStatus": _failed_model_status()}]
    obj = _isvc(generation=3, observed=3, mode="Standard", canaries=failed)
    verdict, why = core.Expectation(3, "Standard", canary_name="mabc", canary_percent=10).check(obj)
    assert verdict == "failed"
    assert "BlockedByFailedLoad" in why and "ModelLoadFailed" in why and "model s3://m/b failed to load" in why
    recorded = core._model_failure(failed[0]["modelStatus"])
    stale = core.Expectation(3, "Standard", canary_name="mabc", canary_percent=10, before_canary_failure=recorded)
    assert stale.check(obj)[0] == "wait"
    failed[0]["modelStatus"]["lastFailureInfo"]["time"] = "2026-01-01T00:05:00Z"
    assert stale.check(obj)[0] == "failed", "a new failure of the same canary is ours"
    for transition in ("InvalidSpec", "BlockedByFailedLoad"):
        invalid = {"transitionStatus": transition, "lastFailureInfo": {"reason": "InvalidPredictorSpec"}}
        entry = [{"name": "mabc", "ready": False, "trafficPercent": 10, "modelStatus": invalid}]
        obj = _isvc(generation=3, observed=3, mode="Standard", canaries=entry)
        assert core.Expectation(3, "Standard", canary_name="mabc", canary_percent=10).check(obj)[0] == "failed"
    in_progress = [
        {"name": "mabc", "ready": False, "trafficPercent": 10, "modelStatus": {"transitionStatus": "InProgress"}}
    ]
    obj = _isvc(generation=3, observed=3, mode="Standard", canaries=in_progress)
    assert core.Expectation(3, "Standard", canary_name="mabc", canary_percent=10).check(obj)[0] == "wait"


def test_expectation_standard_predictor_failure_fails_fast_unless_it_predates_the_write():
    obj = _isvc(generation=3, observed=3, mode="Standard", ready="False")
    obj["status"]["modelStatus"] = _failed_model_status()
    assert core.Expectation(3, "Standard", no_canaries=True).check(obj)[0] == "failed"
    recorded = core._model_failure(obj["status"]["modelStatus"])
    assert core.Expectation(3, "Standard", no_canaries=True, before_failure=recorded).check(obj)[0] == "wait"
    # Not yet observed: never a verdict from an old status.
    obj["status"]["observedGeneration"] = 2
    assert core.Expectation(3, "Standard", no_canaries=True).check(obj)[0] == "wait"


def test_expectation_standard_canary():
    exp = core.Expectation(3, "Standard", canary_name="mabc", canary_percent=10)
    ready_canary = [{"name": "mabc", "ready": True, "trafficPercent": 10}]
    ok = _isvc(generation=3, observed=3, mode="Standard", canaries=ready_canary)
    assert exp.check(ok)[0] == "ok"
    not_ready = _isvc(
        generation=3, observed=3, mode="Standard", canaries=[{"name": "mabc", "ready": False, "trafficPercent": 10}]
    )
    assert exp.check(not_ready)[0] == "wait"
    assert exp.check(_isvc(generation=3, observed=3, mode="Standard", canaries=[]))[0] == "wait"
    gone = core.Expectation(3, "Standard", no_canaries=True)
    assert gone.check(ok)[0] == "wait"
    assert gone.check(_isvc(generation=3, observed=3, mode="Standard"))[0] == "ok"
    assert "canary 'mabc' ready at 10%" in exp.describe()


def _knative_canary(previous_predictor=None):
    obj = _isvc(traffic=CANARY_TRAFFIC)
    obj["metadata"]["resourceVersion"] = "7"
    obj["metadata"]["annotations"].update(
        {"kfp-tabular.dev/rollout-state": "canary", "kfp-tabular.dev/previous-storage-uri": "s3://m/a"}
    )
    if previous_predictor is not None:
        obj["metadata"]["annotations"]["kfp-tabular.dev/previous-predictor"] = previous_predictor
    obj["status"]["components"]["predictor"]["latestRolledoutRevision"] = "m-predictor-00001"
    obj["spec"] = {
        "predictor": {
            "canaryTrafficPercent": 10,
            "serviceAccountName": "sa-b",
            "model": {
                "modelFormat": {"name": "sklearn", "version": "1"},
                "runtime": "other-runtime",
                "storageUri": "s3://m/b",
                "resources": {"limits": {"cpu": "3", "memory": "9Gi"}},
            },
        }
    }
    return obj


def test_rollback_plan_restores_the_recorded_predictor_with_nulls_for_added_fields():
    previous = {
        "model": {
            "modelFormat": {"name": "sklearn", "version": "1"},
            "storageUri": "s3://m/a",
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
        }
    }
    plan = core._rollback_plan(_knative_canary(json.dumps(previous)))
    predictor = plan.body["spec"]["predictor"]
    assert predictor == {
        "serviceAccountName": None,
        "canaryTrafficPercent": 0,
        "model": {
            "runtime": None,
            "storageUri": "s3://m/a",
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": None}},
        },
    }
    assert plan.body["metadata"]["annotations"]["kfp-tabular.dev/previous-predictor"] is None
    assert "whole previous predictor restored" in plan.note
    expectation = plan.expect(3)
    assert expectation.before_revision == "m-predictor-00002" and expectation.latest_percent == 0


@pytest.mark.parametrize(
    ("record", "note"),
    [
        (None, ""),
        ("{not json", "is not a predictor: only storageUri reverted"),
        (json.dumps({"model": {"storageUri": "s3://m/other"}}), "describes 's3://m/other', not the previous model"),
    ],
)
def test_rollback_plan_without_a_usable_record_reverts_the_storage_uri_only(record, note):
    plan = core._rollback_plan(_knative_canary(record))
    assert plan.body["spec"]["predictor"] == {"canaryTrafficPercent": 0, "model": {"storageUri": "s3://m/a"}}
    assert f"model reverted to s3://m/a{' (annotation' if note else ','}" in plan.note
    assert note in plan.note


def test_wait_for_times_out_with_last_status(monkeypatch):
    obj = _isvc(observed=1)
    monkeypatch.setattr(core, "_get", lambda api, ns, name: obj)
    with pytest.raises(core.WaitFailed) as info:
        core.wait_for(None, "n", "m", core.Expectation(2, "Knative"), timeout_seconds=0.3)
    assert info.value.timed_out
    assert "timed out after 0.3s" in str(info.value)
    assert "observedGeneration 1 < 2" in str(info.value)


def test_status_from_object_and_rollout_state_inference():
    obj = _isvc(traffic=CANARY_TRAFFIC)
    obj["spec"] = {"predictor": {"canaryTrafficPercent": 10, "model": {"storageUri": "s3://m/b"}}}
    obj["status"]["url"] = "http://m.n.example.com"
    st = core.status_from_object(obj)
    assert st.ready and st.url == "http://m.n.example.com"
    assert st.storage_uri == "s3://m/b" and st.canary_traffic_percent == 10
    assert st.rollout_state == "canary"
    assert st.as_dict()["traffic"] == CANARY_TRAFFIC
    obj["spec"]["predictor"]["canaryTrafficPercent"] = 0
    assert core.rollout_state(obj) == "rolled-back"
    del obj["spec"]["predictor"]["canaryTrafficPercent"]
    assert core.rollout_state(obj) == "stable"
    obj["metadata"]["annotations"]["kfp-tabular.dev/rollout-state"] = "canary"
    assert core.rollout_state(obj) == "canary"
    assert core.mode_of({"metadata": {}}) == "Standard"  # KServe 0.16+ default


def test_deploy_rejects_bad_input_before_any_cluster_call():
    with pytest.raises(ConfigError, match="storage_uri"):
        core.deploy("churn", "ml", "file:///tmp/model", api_client=object())
    with pytest.raises(ConfigError, match="unknown deploy option"):
        core.deploy("churn", "ml", "s3://m/a", api_client=object(), replicas=3)
    with pytest.raises(ConfigError, match="timeout_seconds"):
        core.deploy("churn", "ml", "s3://m/a", api_client=object(), timeout_seconds=0)
    with pytest.raises(ConfigError, match="canary_traffic_percent"):
        core.deploy("churn", "ml", "s3://m/a", canary_traffic_percent=150, api_client=object())


def test_load_api_client_from_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="kubeconfig_path: .* does not exist"):
        core.load_api_client(str(tmp_path / "missing"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(ConfigError, match="kubeconfig_path"):
        core.load_api_client(str(bad))
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.1.2.3:6443"}}],
                "users": [{"name": "u", "user": {"token": "t0k"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    client = core.load_api_client(str(good))
    assert client.configuration.host == "https://10.1.2.3:6443"
    assert client.configuration.api_key["authorization"] == "Bearer t0k"


def test_wait_for_retries_transient_api_errors_but_not_forbidden(monkeypatch):
    ok = _isvc(traffic=[{"revisionName": "m-predictor-00002", "percent": 100, "latestRevision": True}])
    answers = []

    def flaky(api, ns, name):
        answers.append(name)
        if len(answers) <= 2:
            error = DeployError("get InferenceService n/m: HTTP 503 Service Unavailable")
            error.http_status = 503
            raise error
        return ok

    monkeypatch.setattr(core, "_get", flaky)
    assert core.wait_for(None, "n", "m", core.Expectation(2, "Knative"), 10, sleep=lambda s: None) is ok
    assert len(answers) == 3

    def denied(api, ns, name):
        error = DeployError("get InferenceService n/m: HTTP 403 Forbidden")
        error.http_status = 403
        raise error

    monkeypatch.setattr(core, "_get", denied)
    with pytest.raises(DeployError, match="403"):
        core.wait_for(None, "n", "m", core.Expectation(2, "Knative"), 10, sleep=lambda s: None)
