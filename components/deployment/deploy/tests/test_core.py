"""The deploy core without a cluster: the gate (blessing vs model), publishing before render, bad input."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.deployment.deploy import core
from kfp_tabular.components.deployment.deploy.request import DeployRequest
from tests.plugin import shared_kserve_dir
from tests.support.model_files import make_model_dir
from tests.support.s3 import s3 as _s3

SHARED_CRD = shared_kserve_dir() / "serving.kserve.io_inferenceservices.yaml"


# ---------------------------------------------------------------------------------------------------------
# gate
# ---------------------------------------------------------------------------------------------------------


def _blessing(tmp_path, content, model: Path | None = None) -> str:
    """Write a blessing; a dict gets the sha256 of ``model``'s file (as evaluate writes it) unless it has one."""
    path = tmp_path / "blessing.json"
    if isinstance(content, dict) and model is not None:
        content = {"model_sha256": hashlib.sha256((model / "model.joblib").read_bytes()).hexdigest(), **content}
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.mark.parametrize(
    ("content", "blessed", "reason"),
    [
        ({"blessed": True, "reasons": ["auc 0.83 >= 0.7"]}, True, "blessed: auc 0.83 >= 0.7"),
        ({"blessed": False, "reasons": ["auc 0.5 < 0.7", "worse"]}, False, "not blessed: auc 0.5 < 0.7; worse"),
        ({"blessed": False}, False, "not blessed: the evaluator gave no reason"),
    ],
)
def test_gate_blessed_and_not_blessed(tmp_path, content, blessed, reason):
    model = make_model_dir(tmp_path / "model")
    assert core.gate(_blessing(tmp_path, content, model), str(model)) == core.GateDecision(blessed, reason)


def test_gate_refuses_a_blessing_of_another_model(tmp_path):
    """As TFX's Pusher checks its blessing: the blessing's model_sha256 must be the model about to be deployed."""
    model = make_model_dir(tmp_path / "model")
    other = make_model_dir(tmp_path / "other", payload=b"another model")
    path = _blessing(tmp_path, {"blessed": True, "reasons": []}, other)
    with pytest.raises(
        DataError, match="the blessing is for model sha256 .* but the model to deploy hashes to"
    ) as info:
        core.gate(path, str(model))
    assert path in str(info.value) and "nothing was deployed" in str(info.value)


def test_gate_refuses_a_model_changed_after_training(tmp_path):
    model = make_model_dir(tmp_path / "model")
    path = _blessing(tmp_path, {"blessed": True, "reasons": []}, model)
    (model / "model.joblib").write_bytes(b"swapped after evaluation")
    with pytest.raises(DataError, match="does not match .* recorded in metadata.json"):
        core.gate(path, str(model))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "invalid JSON"),
        ([1, 2], "expected a blessing JSON object"),
        ({"reasons": []}, "field 'blessed' is missing"),
        ({"blessed": "yes"}, "field 'blessed' must be true or false"),
        ({"blessed": True, "reasons": "ok"}, "field 'reasons'"),
        ({"blessed": True, "reasons": [1]}, "field 'reasons'"),
        ({"blessed": True, "reasons": []}, "field 'model_sha256'"),
        ({"blessed": True, "reasons": [], "model_sha256": "abc"}, "field 'model_sha256'"),
    ],
)
def test_gate_malformed_names_file_and_field(tmp_path, content, needle):
    model = make_model_dir(tmp_path / "model")
    path = _blessing(tmp_path, content)
    with pytest.raises(DataError) as info:
        core.gate(path, str(model))
    assert path in str(info.value)
    assert needle in str(info.value)


def test_gate_missing_file(tmp_path):
    with pytest.raises(DataError, match="blessing not found"):
        core.gate(str(tmp_path / "nope.json"), str(make_model_dir(tmp_path / "model")))


def test_deploy_action_publishes_to_s3_before_rendering(tmp_path, moto_s3):
    _s3(moto_s3).mkdir("published-models")
    model = make_model_dir(tmp_path / "model", payload=os.urandom(2048))
    blessing = _blessing(tmp_path, {"blessed": True, "reasons": ["roc_auc 0.84 >= 0.7"]}, model)
    digest = hashlib.sha256((model / "model.joblib").read_bytes()).hexdigest()[:16]
    request = DeployRequest(action="render", publish_uri="s3://published-models/churn/", s3_endpoint_url=moto_s3)
    result = core.deploy_action(
        request,
        blessing_path=blessing,
        model_uri=str(model),
        manifest_path=str(tmp_path / "manifest.yaml"),
        status_path=str(tmp_path / "status.json"),
    )
    assert result["storage_uri"] == result["published_to"] == f"s3://published-models/churn/{digest}"
    assert result["deployable"] is True
    fs = _s3(moto_s3)
    fs.invalidate_cache()
    assert fs.cat_file(f"published-models/churn/{digest}/model.joblib") == (model / "model.joblib").read_bytes()


def test_deploy_action_hashes_a_published_model_once(tmp_path, monkeypatch):
    """The gate's check, the version prefix and the copy's check share one hash of each source file."""
    from kfp_tabular.components.common import artifacts

    model = make_model_dir(tmp_path / "model", payload=os.urandom(2048))
    blessing = _blessing(tmp_path, {"blessed": True, "reasons": []}, model)
    mount = tmp_path / "mnt"
    mount.mkdir()
    hashed: list[str] = []
    real = artifacts.sha256_stream

    def counting(handle, *args, **kwargs):
        hashed.append(getattr(handle, "name", "?"))
        return real(handle, *args, **kwargs)

    monkeypatch.setattr(artifacts, "sha256_stream", counting)
    result = core.deploy_action(
        DeployRequest(action="render", publish_uri="pvc://store/churn", pvc_mount_root=str(mount)),
        blessing_path=blessing,
        model_uri=str(model),
        manifest_path=str(tmp_path / "manifest.yaml"),
        status_path=str(tmp_path / "status.json"),
    )
    assert result["published_to"].startswith("pvc://store/churn/")
    source = str(model / "model.joblib")
    # Once: the gate's hashes (blessing vs model) name the version and check the copy, which is hashed where it lands.
    assert hashed.count(source) == 1, hashed
    assert sum(1 for name in hashed if name.startswith(str(mount))) == 2, hashed


def test_deploy_action_refuses_storage_uri_with_publish_uri(tmp_path):
    with pytest.raises(ConfigError, match="storage_uri and publish_uri: give one"):
        DeployRequest(action="render", storage_uri="s3://models/a", publish_uri="s3://models/b")


def test_deploy_rejects_bad_input_before_any_cluster_call():
    with pytest.raises(ConfigError, match="storage_uri"):
        core.deploy("churn", "ml", "file:///tmp/model", api_client=object())
    with pytest.raises(ConfigError, match="unknown deploy option"):
        core.deploy("churn", "ml", "s3://m/a", api_client=object(), replicas=3)
    with pytest.raises(ConfigError, match="timeout_seconds"):
        core.deploy("churn", "ml", "s3://m/a", api_client=object(), timeout_seconds=0)
    with pytest.raises(ConfigError, match="canary_traffic_percent"):
        core.deploy("churn", "ml", "s3://m/a", canary_traffic_percent=150, api_client=object())
