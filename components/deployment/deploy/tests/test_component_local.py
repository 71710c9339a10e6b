"""Run deploy_model for real under kfp.local's SubprocessRunner (render, and apply against the API server).

The model and blessing enter through dsl.importer in a small pipeline, as they would from upstream tasks.
"""

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Model

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.deployment.deploy import core
from kfp_tabular.components.deployment.deploy.component import deploy_model
from kfp_tabular.components.deployment.deploy.request import DeployRequest
from kfp_tabular.components.deployment.kserve import client as kclient
from tests.support.fake_kserve import FakeKServeController
from tests.support.model_files import make_model_dir, write_blessing

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


@dsl.pipeline
def deploy_pipeline(
    model_uri: str,
    blessing_uri: str,
    train_data_uri: str,
    statistics_uri: str,
    schema_uri: str,
    action: str = "render",
    storage_uri: str = "",
    namespace: str = "kfp-tabular",
    kubeconfig_path: str = "",
    canary_traffic_percent: int = 10,
    publish_uri: str = "",
    pvc_mount_root: str = "",
    rollout_strategy: str = "manual",
    payload_logger_mode: str = "",
    payload_logger_url: str = "",
) -> NamedTuple(
    "Outputs",
    [
        ("manifest", Artifact),
        ("status", Artifact),
        ("analysis", Artifact),
        ("analysis_report", Markdown),
        ("lineage", Artifact),
        ("model_card", Markdown),
        ("model_card_html", HTML),
        ("deployed", bool),
        ("reason", str),
    ],
):
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=True)
    blessing = dsl.importer(artifact_uri=blessing_uri, artifact_class=Artifact, reimport=True)
    train_data = dsl.importer(artifact_uri=train_data_uri, artifact_class=Dataset, reimport=True)
    statistics = dsl.importer(artifact_uri=statistics_uri, artifact_class=Artifact, reimport=True)
    schema = dsl.importer(artifact_uri=schema_uri, artifact_class=Artifact, reimport=True)
    task = deploy_model(
        model=model.output,
        blessing=blessing.output,
        train_data=train_data.output,
        train_statistics=statistics.output,
        schema=schema.output,
        action=action,
        storage_uri=storage_uri,
        namespace=namespace,
        kubeconfig_path=kubeconfig_path,
        canary_traffic_percent=canary_traffic_percent,
        timeout_seconds=60,
        publish_uri=publish_uri,
        pvc_mount_root=pvc_mount_root,
        rollout_strategy=rollout_strategy,
        payload_logger_mode=payload_logger_mode,
        payload_logger_url=payload_logger_url,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        pipeline_name="deploy-test",
    )
    task.set_caching_options(False)
    outputs = NamedTuple(
        "Outputs",
        [
            ("manifest", Artifact),
            ("status", Artifact),
            ("analysis", Artifact),
            ("analysis_report", Markdown),
            ("lineage", Artifact),
            ("model_card", Markdown),
            ("model_card_html", HTML),
            ("deployed", bool),
            ("reason", str),
        ],
    )
    return outputs(
        task.outputs["manifest"],
        task.outputs["status"],
        task.outputs["analysis"],
        task.outputs["analysis_report"],
        task.outputs["lineage"],
        task.outputs["model_card"],
        task.outputs["model_card_html"],
        task.outputs["deployed"],
        task.outputs["reason"],
    )


#: What train records in metadata.json that the lineage record needs (the stand-in model has no estimator).
MODEL_METADATA = {
    "task": "classification",
    "label_column": "churned",
    "classes": [0, 1],
    "training_data_hash": "ab" * 32,
    "source_data_uri": "/data/churn.csv",
    "source_data_hash": "cd" * 32,
    "train_rows": 400,
    "feature_order": ["tenure", "plan"],
    "features": [{"name": "tenure", "dtype": "int"}, {"name": "plan", "dtype": "string"}],
}
SCHEMA = """
feature { name: "tenure" type: INT presence { min_fraction: 1.0 } }
feature { name: "plan" type: BYTES domain: "plan" presence { min_fraction: 1.0 } }
string_domain { name: "plan" value: "basic" value: "pro" }
"""


@pytest.fixture()
def model_dir(tmp_path) -> Path:
    return make_model_dir(tmp_path / "upstream" / "model", b"a stand-in for model.joblib", MODEL_METADATA)


def upstream(tmp_path: Path) -> dict:
    """The validate and ingest outputs deploy reads for the lineage record (train split, statistics, schema)."""
    root = tmp_path / "upstream"
    root.mkdir(exist_ok=True)
    (root / "train_data").write_text("tenure,plan,churned\n1,basic,0\n")
    (root / "train_statistics").write_bytes(b"statistics stand-in (deploy records its URI only)")
    (root / "schema").write_text(SCHEMA)
    return {
        "train_data_uri": str(root / "train_data"),
        "statistics_uri": str(root / "train_statistics"),
        "schema_uri": str(root / "schema"),
    }


def blessing_file(tmp_path: Path, blessed: bool) -> Path:
    return write_blessing(tmp_path / "upstream" / f"blessing-{blessed}.json", tmp_path / "upstream" / "model", blessed)


def test_render_blessed_model(local_runner, tmp_path, model_dir):
    run = deploy_pipeline(
        **upstream(tmp_path), model_uri=str(model_dir), blessing_uri=str(blessing_file(tmp_path, True))
    )
    assert run.outputs["deployed"] is False
    assert run.outputs["reason"] == "rendered (action=render)"
    manifest = yaml.safe_load(Path(run.outputs["manifest"].path).read_text())
    assert manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == "churn-classifier"
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == f"file://{model_dir.resolve()}"
    assert manifest["spec"]["predictor"]["canaryTrafficPercent"] == 10
    status = json.loads(Path(run.outputs["status"].path).read_text())
    assert status["deployed"] is False and status["blessed"] is True
    assert status["deployable"] is False
    assert any("not deployable to a cluster" in note for note in status["notes"])
    assert run.outputs["manifest"].metadata["action"] == "render"
    assert "logger" not in manifest["spec"]["predictor"], "payload logging is off by default"

    # The lineage record: the upstream artifacts' URIs, the run KFP's placeholders resolved to (kfp.local too).
    from kfp_tabular.components.common import lineage

    record = lineage.read(run.outputs["lineage"].path)
    up = upstream(tmp_path)
    assert record.model_sha256 == hashlib.sha256(b"a stand-in for model.joblib").hexdigest()
    assert (record.statistics_uri, record.schema_uri) == (up["statistics_uri"], up["schema_uri"])
    assert record.training_data == {"uri": up["train_data_uri"], "hash": "ab" * 32}
    assert record.storage_uri == f"file://{model_dir.resolve()}"
    assert record.run["pipeline"] == "deploy-test"
    assert record.run["id"] and "{{" not in record.run["id"], record.run
    assert record.run["name"] and "{{" not in record.run["name"], record.run
    annotations = manifest["spec"]["predictor"]["annotations"]
    assert annotations["kfp-tabular.dev/model-sha256"] == record.model_sha256
    assert annotations["kfp-tabular.dev/run-id"] == record.run["id"]
    assert annotations["kfp-tabular.dev/lineage-uri"] == run.outputs["lineage"].uri
    card = Path(run.outputs["model_card"].path).read_text()
    for text in (
        "## Where it serves",
        "## Data",
        "## Schema (2 features)",
        "| plan | BYTES | 1 | basic, pro |",
        "| roc_auc | 0.84 |",
        "blessing: BLESSED",
        record.run["id"],
        up["train_data_uri"],
    ):
        assert text in card, text
    html = Path(run.outputs["model_card_html"].path).read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "tenure" in html


def test_render_with_published_storage_uri_is_deployable(local_runner, tmp_path, model_dir):
    run = deploy_pipeline(
        **upstream(tmp_path),
        model_uri=str(model_dir),
        blessing_uri=str(blessing_file(tmp_path, True)),
        storage_uri="s3://models/churn/v7",
        canary_traffic_percent=100,
    )
    manifest = yaml.safe_load(Path(run.outputs["manifest"].path).read_text())
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == "s3://models/churn/v7"
    assert "canaryTrafficPercent" not in manifest["spec"]["predictor"]
    status = json.loads(Path(run.outputs["status"].path).read_text())
    assert status["deployable"] is True and status["storage_uri"] == "s3://models/churn/v7"


def test_render_publishes_a_blessed_model_to_a_pvc_and_serves_it_from_there(local_runner, tmp_path, model_dir):
    mount = tmp_path / "mnt" / "model-store"
    mount.mkdir(parents=True)
    digest = hashlib.sha256((model_dir / "model.joblib").read_bytes()).hexdigest()[:16]
    for _ in range(2):  # publishing the same model again is a no-op, not an error
        run = deploy_pipeline(
            **upstream(tmp_path),
            model_uri=str(model_dir),
            blessing_uri=str(blessing_file(tmp_path, True)),
            publish_uri="pvc://model-store/churn",
            pvc_mount_root=str(mount),
        )
        manifest = yaml.safe_load(Path(run.outputs["manifest"].path).read_text())
        assert manifest["spec"]["predictor"]["model"]["storageUri"] == f"pvc://model-store/churn/{digest}"
    published = mount / "churn" / digest
    assert sorted(p.name for p in published.iterdir()) == ["metadata.json", "model.joblib"], "one model directory"
    # The lineage record beside the published model, one file per run (two runs deployed it here).
    records = sorted((mount / "churn" / "lineage" / digest).iterdir())
    assert len(records) == 2, records
    annotation = manifest["spec"]["predictor"]["annotations"]["kfp-tabular.dev/lineage-uri"]
    assert annotation == f"pvc://model-store/churn/lineage/{digest}/{records[-1].name}" or annotation.endswith(
        records[0].name
    )
    from kfp_tabular.components.common import lineage

    assert lineage.read(mount / annotation[len("pvc://model-store/") :]).storage_uri == (
        f"pvc://model-store/churn/{digest}"
    )
    assert (published / "model.joblib").read_bytes() == (model_dir / "model.joblib").read_bytes()
    status = json.loads(Path(run.outputs["status"].path).read_text())
    assert status["published_to"] == f"pvc://model-store/churn/{digest}" and status["deployable"] is True


def test_not_blessed_publishes_nothing(local_runner, tmp_path, model_dir):
    mount = tmp_path / "mnt" / "model-store"
    mount.mkdir(parents=True)
    run = deploy_pipeline(
        **upstream(tmp_path),
        model_uri=str(model_dir),
        blessing_uri=str(blessing_file(tmp_path, False)),
        publish_uri="pvc://model-store/churn",
        pvc_mount_root=str(mount),
    )
    assert run.outputs["deployed"] is False
    assert list(mount.iterdir()) == []


def test_render_not_blessed_renders_nothing(local_runner, tmp_path, model_dir):
    run = deploy_pipeline(
        **upstream(tmp_path), model_uri=str(model_dir), blessing_uri=str(blessing_file(tmp_path, False))
    )
    assert run.outputs["deployed"] is False
    assert run.outputs["reason"] == "not blessed: roc_auc 0.52 < 0.70; worse than baseline by 0.2"
    text = Path(run.outputs["manifest"].path).read_text()
    assert yaml.safe_load(text) is None, "nothing deployable in the manifest"
    assert "not blessed" in text
    status = json.loads(Path(run.outputs["status"].path).read_text())
    assert status == {
        "action": "render",
        "blessed": False,
        "deployed": False,
        "gate": run.outputs["reason"],
        "isvc_name": "churn-classifier",
        "namespace": "kfp-tabular",
        "reason": run.outputs["reason"],
        "url": "",
        "analysis": {"strategy": "manual", "verdict": "not-deployed", "reason": run.outputs["reason"], "steps": 0},
    }
    analysis = json.loads(Path(run.outputs["analysis"].path).read_text())
    assert analysis["verdict"] == "not-deployed" and analysis["steps"] == []
    assert "not-deployed" in Path(run.outputs["analysis_report"].path).read_text()


def test_render_with_the_payload_logger(local_runner, tmp_path, model_dir):
    url = "http://kfp-tabular-collector.kfp-tabular.svc.cluster.local/"
    run = deploy_pipeline(
        **upstream(tmp_path),
        model_uri=str(model_dir),
        blessing_uri=str(blessing_file(tmp_path, True)),
        payload_logger_mode="all",
        payload_logger_url=url,
    )
    manifest = yaml.safe_load(Path(run.outputs["manifest"].path).read_text())
    assert manifest["spec"]["predictor"]["logger"] == {"mode": "all", "url": url}


def test_bad_parameters_fail_the_task(local_runner, tmp_path, model_dir):
    with pytest.raises(RuntimeError):
        deploy_pipeline(
            **upstream(tmp_path),
            model_uri=str(model_dir),
            blessing_uri=str(blessing_file(tmp_path, True)),
            action="deploy",
        )


def test_kfp_minio_model_uri_renders_as_s3(tmp_path, model_dir):
    """On a cluster the Model artifact's uri is KFP's minio://...; its files are at model.path in the pod."""
    uri = "minio://mlpipeline/v2/artifacts/churn/run-1/train/model"
    result = core.deploy_action(
        DeployRequest(),
        blessing_path=str(blessing_file(tmp_path, True)),
        model_uri=uri,
        model_path=str(model_dir),
        manifest_path=str(tmp_path / "out" / "manifest"),
        status_path=str(tmp_path / "out" / "status"),
    )
    assert result["deployed"] is False and result["reason"] == "rendered (action=render)" and result["url"] == ""
    rendered = yaml.safe_load((tmp_path / "out" / "manifest").read_text())
    assert (
        rendered["spec"]["predictor"]["model"]["storageUri"] == "s3://mlpipeline/v2/artifacts/churn/run-1/train/model"
    )
    assert result["storage_uri"] == "s3://mlpipeline/v2/artifacts/churn/run-1/train/model"


def test_raw_function_checks_parameters_before_reading_anything(tmp_path):
    with pytest.raises(ConfigError, match="isvc_name"):
        deploy_model.python_func(
            model=Model(uri="s3://m/a"),
            blessing=Artifact(uri=str(tmp_path / "absent")),
            manifest=Artifact(uri=str(tmp_path / "m")),
            status=Artifact(uri=str(tmp_path / "s")),
            analysis=Artifact(uri=str(tmp_path / "a")),
            analysis_report=Markdown(uri=str(tmp_path / "r")),
            train_data=Dataset(uri=str(tmp_path / "missing-train")),
            train_statistics=Artifact(uri=str(tmp_path / "missing-statistics")),
            schema=Artifact(uri=str(tmp_path / "missing-schema")),
            lineage=Artifact(uri=str(tmp_path / "l")),
            model_card=Markdown(uri=str(tmp_path / "c")),
            model_card_html=HTML(uri=str(tmp_path / "h")),
            isvc_name="Not_A_Name",
        )


def test_raw_function_apply_with_canary_needs_prometheus_url_before_reading_anything(tmp_path):
    with pytest.raises(ConfigError, match="^prometheus_url: .*rollout_strategy=manual"):
        deploy_model.python_func(
            model=Model(uri=str(tmp_path / "missing-model")),
            blessing=Artifact(uri=str(tmp_path / "missing-blessing")),
            manifest=Artifact(uri=str(tmp_path / "m")),
            status=Artifact(uri=str(tmp_path / "s")),
            analysis=Artifact(uri=str(tmp_path / "a")),
            analysis_report=Markdown(uri=str(tmp_path / "r")),
            train_data=Dataset(uri=str(tmp_path / "missing-train")),
            train_statistics=Artifact(uri=str(tmp_path / "missing-statistics")),
            schema=Artifact(uri=str(tmp_path / "missing-schema")),
            lineage=Artifact(uri=str(tmp_path / "l")),
            model_card=Markdown(uri=str(tmp_path / "c")),
            model_card_html=HTML(uri=str(tmp_path / "h")),
            action="apply",
        )


def test_raw_function_apply_refuses_a_local_model(tmp_path, model_dir):
    with pytest.raises(ConfigError, match="local path that KServe cannot pull"):
        deploy_model.python_func(
            model=Model(uri=str(model_dir)),
            blessing=Artifact(uri=str(blessing_file(tmp_path, True))),
            manifest=Artifact(uri=str(tmp_path / "m")),
            status=Artifact(uri=str(tmp_path / "s")),
            analysis=Artifact(uri=str(tmp_path / "a")),
            analysis_report=Markdown(uri=str(tmp_path / "r")),
            train_data=Dataset(uri=str(tmp_path / "missing-train")),
            train_statistics=Artifact(uri=str(tmp_path / "missing-statistics")),
            schema=Artifact(uri=str(tmp_path / "missing-schema")),
            lineage=Artifact(uri=str(tmp_path / "l")),
            model_card=Markdown(uri=str(tmp_path / "c")),
            model_card_html=HTML(uri=str(tmp_path / "h")),
            action="apply",
            rollout_strategy="manual",
        )


@pytest.mark.cluster
def test_apply_deploys_then_canaries_through_a_kubeconfig(local_runner, tmp_path, model_dir, kube_apiserver):
    from kubernetes import client

    namespace = kube_apiserver.create_namespace("component")
    kubeconfig = str(kube_apiserver.kubeconfig_path())
    blessed = str(blessing_file(tmp_path, True))
    with kube_apiserver.api_client() as api, FakeKServeController(api, [namespace]) as controller:
        not_blessed = deploy_pipeline(
            **upstream(tmp_path),
            model_uri=str(model_dir),
            blessing_uri=str(blessing_file(tmp_path, False)),
            action="apply",
            storage_uri="s3://models/churn/v1",
            namespace=namespace,
            kubeconfig_path=kubeconfig,
        )
        assert not_blessed.outputs["deployed"] is False
        assert kclient.get(api, namespace, "churn-classifier") is None, "a model that is not blessed changes nothing"

        first = deploy_pipeline(
            **upstream(tmp_path),
            model_uri=str(model_dir),
            blessing_uri=blessed,
            action="apply",
            storage_uri="s3://models/churn/v1",
            namespace=namespace,
            kubeconfig_path=kubeconfig,
        )
        assert first.outputs["deployed"] is True
        assert first.outputs["reason"].startswith("created: ")
        status = json.loads(Path(first.outputs["status"].path).read_text())
        assert status["url"] == f"http://churn-classifier.{namespace}.example.com"
        assert status["action"] == "apply" and status["rollout"] == "created" and status["ready"] is True
        manifest = yaml.safe_load(Path(first.outputs["manifest"].path).read_text())
        assert manifest["spec"]["predictor"]["model"]["storageUri"] == "s3://models/churn/v1"
        assert "status" not in manifest and "managedFields" not in manifest["metadata"]

        second = deploy_pipeline(
            **upstream(tmp_path),
            model_uri=str(model_dir),
            blessing_uri=blessed,
            action="apply",
            storage_uri="s3://models/churn/v2",
            namespace=namespace,
            kubeconfig_path=kubeconfig,
            canary_traffic_percent=30,
        )
        assert second.outputs["deployed"] is True and second.outputs["reason"].startswith("canary: ")
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", "churn-classifier"
        )
        assert obj["spec"]["predictor"]["canaryTrafficPercent"] == 30
        status = json.loads(Path(second.outputs["status"].path).read_text())
        assert sorted(t["percent"] for t in status["traffic"]) == [30, 70]

        controller.fail_uris.add("s3://models/churn/v3")
        with pytest.raises(RuntimeError):
            deploy_pipeline(
                **upstream(tmp_path),
                model_uri=str(model_dir),
                blessing_uri=blessed,
                action="apply",
                storage_uri="s3://models/churn/v3",
                namespace=namespace,
                kubeconfig_path=kubeconfig,
            )
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", "churn-classifier"
        )
        assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://models/churn/v1", "rolled back"
    assert not controller.errors
