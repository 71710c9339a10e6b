"""Publishing model directories to S3 (moto's real S3 API on loopback) and to a mounted PVC."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError, DeployError
from kfp_tabular.components.deployment.kserve import publish as kpublish
from tests.plugin import shared_kserve_dir
from tests.support.model_files import make_model_dir
from tests.support.s3 import s3 as _s3

SHARED_CRD = shared_kserve_dir() / "serving.kserve.io_inferenceservices.yaml"


# ---------------------------------------------------------------------------------------------------------
# publish_model
# ---------------------------------------------------------------------------------------------------------


def _tree_hashes(root: Path) -> dict:
    files = [p for p in root.rglob("*") if p.is_file()]
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_publish_to_pvc_mount(tmp_path):
    model = make_model_dir(tmp_path / "model")
    mount = tmp_path / "mnt"
    mount.mkdir()
    uri = kpublish.publish_model(str(model), "pvc://model-store/churn/v1", pvc_mount_root=str(mount))
    assert uri == "pvc://model-store/churn/v1"
    assert _tree_hashes(mount / "churn" / "v1") == _tree_hashes(model)
    # No staging leftovers beside the published directory.
    assert sorted(p.name for p in (mount / "churn").iterdir()) == ["v1"]
    # Same files again: a no-op; different files: refused (published models are immutable).
    assert kpublish.publish_model(str(model), "pvc://model-store/churn/v1", pvc_mount_root=str(mount)) == uri
    other = make_model_dir(tmp_path / "other", payload=b"other-model")
    with pytest.raises(ConfigError, match="already holds a different model"):
        kpublish.publish_model(str(other), "pvc://model-store/churn/v1", pvc_mount_root=str(mount))


def test_publish_pvc_errors(tmp_path):
    model = make_model_dir(tmp_path / "model")
    with pytest.raises(ConfigError, match="pvc_mount_root"):
        kpublish.publish_model(str(model), "pvc://model-store/churn/v1")
    with pytest.raises(ConfigError, match="pvc_mount_root"):
        kpublish.publish_model(str(model), "pvc://model-store/churn/v1", pvc_mount_root=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="leaves the claim"):
        kpublish.publish_model(str(model), "pvc://model-store/../../etc", pvc_mount_root=str(tmp_path))
    with pytest.raises(ConfigError, match="target_uri"):
        kpublish.publish_model(str(model), "pvc://model-store", pvc_mount_root=str(tmp_path))
    with pytest.raises(ConfigError, match="target_uri"):
        kpublish.publish_model(str(model), "gs://bucket/model")


def test_publish_rejects_bad_model_dirs(tmp_path):
    with pytest.raises(DataError, match="Model artifact directory"):
        kpublish.publish_model(str(tmp_path / "missing"), "s3://b/k")
    no_meta = tmp_path / "no_meta"
    no_meta.mkdir()
    (no_meta / "model.joblib").write_bytes(b"x")
    with pytest.raises(DataError, match="metadata.json: missing"):
        kpublish.publish_model(str(no_meta), "s3://b/k")
    two = make_model_dir(tmp_path / "two")
    (two / "extra.pkl").write_bytes(b"y")
    with pytest.raises(DataError, match="exactly one model file"):
        kpublish.publish_model(str(two), "s3://b/k")
    tampered = make_model_dir(tmp_path / "tampered")
    (tampered / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(DataError, match="model_sha256"):
        kpublish.publish_model(str(tampered), "s3://b/k")
    bad_meta = make_model_dir(tmp_path / "bad_meta")
    (bad_meta / "metadata.json").write_text("[")
    with pytest.raises(DataError, match="metadata.json"):
        kpublish.publish_model(str(bad_meta), "s3://b/k")


def test_publish_to_s3_with_checksums(tmp_path, moto_s3):
    fs = _s3(moto_s3)
    fs.mkdir("models")
    model = make_model_dir(tmp_path / "model", payload=os.urandom(4096))
    uri = kpublish.publish_model(str(model), "minio://models/churn/v1", s3_endpoint_url=moto_s3)
    assert uri == "s3://models/churn/v1"
    fs.invalidate_cache()
    assert sorted(fs.find("models/churn/v1")) == ["models/churn/v1/metadata.json", "models/churn/v1/model.joblib"]
    for name in ("model.joblib", "metadata.json"):
        assert fs.cat_file(f"models/churn/v1/{name}") == (model / name).read_bytes()
    # Idempotent for the same files; refuses other files at the same place.
    assert kpublish.publish_model(str(model), "s3://models/churn/v1", s3_endpoint_url=moto_s3) == uri
    other = make_model_dir(tmp_path / "other", payload=b"another model")
    with pytest.raises(ConfigError, match="already holds a different model"):
        kpublish.publish_model(str(other), "s3://models/churn/v1", s3_endpoint_url=moto_s3)


def test_publish_to_s3_resumes_a_partial_upload(tmp_path, moto_s3):
    """A pod killed mid-upload left model.joblib only: the next attempt uploads the rest instead of refusing."""
    fs = _s3(moto_s3)
    fs.mkdir("resume")
    model = make_model_dir(tmp_path / "model", payload=os.urandom(4096))
    fs.put_file(str(model / "model.joblib"), "resume/churn/v1/model.joblib")
    uri = kpublish.publish_model(str(model), "s3://resume/churn/v1", s3_endpoint_url=moto_s3)
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
        kpublish.publish_model(str(model), f"s3://{bucket}/churn/v1", s3_endpoint_url=moto_s3)
    assert leftover in str(info.value)
    fs.invalidate_cache()
    assert fs.find(f"{bucket}/churn/v1") == [f"{bucket}/churn/v1/{leftover}"], "nothing uploaded next to it"


def test_publish_to_s3_endpoint_from_environment(tmp_path, moto_s3, monkeypatch):
    fs = _s3(moto_s3)
    fs.mkdir("envbucket")
    model = make_model_dir(tmp_path / "model")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    host_port = moto_s3.split("://", 1)[1]
    monkeypatch.setenv("S3_ENDPOINT", host_port)  # KServe's variable, scheme from S3_USE_HTTPS
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    assert kpublish.publish_model(str(model), "s3://envbucket/m1") == "s3://envbucket/m1"
    fs.invalidate_cache()
    assert fs.cat_file("envbucket/m1/model.joblib") == b"model-bytes"


def test_publish_to_s3_unreachable_or_bucket_root(tmp_path):
    model = make_model_dir(tmp_path / "model")
    with pytest.raises(ConfigError, match="not a bucket root"):
        kpublish.publish_model(str(model), "s3://bucket")
    with pytest.raises(DeployError, match="cannot list the target"):
        kpublish.publish_model(str(model), "s3://bucket/key", s3_endpoint_url="http://127.0.0.1:9")
