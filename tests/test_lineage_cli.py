"""``kfp-tabular lineage``: a real run-local's production model, and InferenceServices on the real kube-apiserver.

Local: run_local (small rows) promotes a blessed model and writes its lineage record and model card beside it;
``lineage --local`` prints the chain from it, and the record's files exist (statistics, schema, training data).
Cluster: the deploy step (action=apply, manual strategy) creates the InferenceService through the real
kube-apiserver, whose KServe CRD validates and prunes what is written, with the named stand-in of the KServe
controller (tests/support/fake_kserve); ``lineage --name`` reads the predictors' annotations and the records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kfp_tabular.components.common import lineage
from kfp_tabular.pipelines.cli import main

ROWS = 1500


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> Path:
    from kfp_tabular.pipelines.training.train_and_deploy.run_local import run_local

    workdir = tmp_path_factory.mktemp("lineage-local")
    summary = run_local(output_dir=workdir, rows=ROWS, seed=11, console="silent")
    assert summary.succeeded and summary.promoted_to, summary.error
    return workdir


def test_local_lineage_prints_the_chain_of_the_production_model(production, capsys):
    assert main(["lineage", "--local", "--output-dir", str(production)]) == 0
    out = capsys.readouterr().out
    current = json.loads((production / "production" / "current.json").read_text())
    target = Path(current["model_dir"]).parent
    record = lineage.read(target / "lineage.json")
    assert record.model_sha256 == current["model_sha256"]
    # Every file the record names is there, so the monitor can read them.
    for uri in (record.model_uri, record.statistics_uri, record.schema_uri, record.training_data["uri"]):
        assert Path(uri).exists(), uri
    assert record.statistics_uri.startswith(str(target)) and record.schema_uri.startswith(str(target))
    assert record.run["pipeline"] == "kfp-tabular-train-and-deploy"
    assert record.run["id"] and "{{" not in record.run["id"]
    assert record.blessing["blessed"] is True and record.metrics
    order = [
        f"revision        {current['run']}",
        f"-> model        sha256 {record.model_sha256}",
        f"-> training data sha256 {record.training_data['hash']}",
        f"-> statistics   {record.statistics_uri}",
        f"schema       {record.schema_uri}",
        "-> metrics      ",
        "blessing     BLESSED",
        "-> baseline     none",
        f"-> run          {record.run['id']}",
        f"model card      {target / 'model_card.md'}",
    ]
    positions = [out.find(text) for text in order]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), (positions, out)
    card = (target / "model_card.md").read_text()
    assert "## Schema (" in card and "## Prediction distribution at evaluation" in card
    assert (target / "model_card.html").read_text().startswith("<!DOCTYPE html>")

    assert main(["lineage", "--local", "--output-dir", str(production), "--json"]) == 0
    served = json.loads(capsys.readouterr().out)
    assert [entry["record"]["model_sha256"] for entry in served] == [record.model_sha256]


def test_local_lineage_errors_name_the_flag_or_field(production, tmp_path, capsys):
    assert main(["lineage", "--local", "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("kfp-tabular lineage: error: --output-dir: ")
    assert main(["lineage", "--local", "--name", "churn"]) == 2
    assert "error: --local: " in capsys.readouterr().err

    # A record about another model than current.json names is refused, naming the field.
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(production / "production", copy / "production")
    current = json.loads((copy / "production" / "current.json").read_text())
    current["model_dir"] = str(copy / "production" / Path(current["model_dir"]).parent.name / "model")
    current["model_sha256"] = "0" * 64
    (copy / "production" / "current.json").write_text(json.dumps(current))
    assert main(["lineage", "--local", "--output-dir", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "field 'model_sha256'" in err and "another model" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------------------
# cluster
# ---------------------------------------------------------------------------------------------------------------


def _model(tmp_path: Path, name: str, payload: bytes) -> tuple[Path, Path]:
    from tests.support.model_files import make_model_dir, write_blessing

    meta = {
        "task": "classification",
        "label_column": "churned",
        "classes": [0, 1],
        "training_data_hash": "ab" * 32,
        "feature_order": ["tenure"],
        "features": [{"name": "tenure", "dtype": "int"}],
    }
    model = make_model_dir(tmp_path / name / "model", payload, meta)
    return model, write_blessing(tmp_path / name / "blessing.json", model, True)


def _deploy(tmp_path, kube_apiserver, namespace, name, storage_uri, run_id, **params):
    from kfp_tabular.components.deployment.deploy import core
    from kfp_tabular.components.deployment.deploy.lineage_step import LineageInputs
    from kfp_tabular.components.deployment.deploy.request import DeployRequest

    model, blessing = _model(tmp_path, name, name.encode())
    out = tmp_path / name / "out"
    request = DeployRequest(
        namespace=namespace,
        action="apply",
        rollout_strategy="manual",
        storage_uri=storage_uri,
        kubeconfig_path=str(kube_apiserver.kubeconfig_path()),
        timeout_seconds=30,
        run_id=run_id,
        run_name=f"{run_id}-name",
        pipeline_name="kfp-tabular-train-and-deploy",
        **params,
    )
    result = core.deploy_action(
        request,
        blessing_path=str(blessing),
        model_uri=str(model),
        manifest_path=str(out / "manifest"),
        status_path=str(out / "status"),
        lineage_inputs=LineageInputs(
            statistics_uri="s3://bucket/run/train_statistics",
            schema_uri="s3://bucket/run/schema",
            training_data_uri="s3://bucket/run/train_data",
            lineage_path=str(out / "lineage"),
            lineage_uri=str(out / "lineage"),  # a local path stands in for the artifact's minio:// URI
        ),
    )
    return result, lineage.read(out / "lineage")


@pytest.mark.cluster
def test_cluster_lineage_of_a_stable_and_a_canary_model(tmp_path, kube_apiserver, capsys):
    from kfp_tabular.components.deployment.kserve import client as kclient
    from tests.support.fake_kserve import FakeKServeController

    namespace = kube_apiserver.create_namespace("lineage")
    kubeconfig = str(kube_apiserver.kubeconfig_path())
    collector = "http://kfp-tabular-collector.kfp-tabular.svc.cluster.local/"
    with kube_apiserver.api_client() as api, FakeKServeController(api, [namespace]) as controller:
        first, stable = _deploy(
            tmp_path,
            kube_apiserver,
            namespace,
            "v1",
            "s3://models/churn/v1",
            "run-1",
            payload_logger_mode="all",
            payload_logger_url=collector,
        )
        assert first["deployed"] is True
        obj = kclient.get(api, namespace, "churn-classifier")
        predictor = obj["spec"]["predictor"]
        # Stored by the kube-apiserver through KServe's CRD (unknown fields would be pruned).
        assert predictor["logger"] == {"mode": "all", "url": collector}
        assert predictor["annotations"] == {
            "kfp-tabular.dev/model-sha256": stable.model_sha256,
            "kfp-tabular.dev/run-id": "run-1",
            "kfp-tabular.dev/lineage-uri": str(tmp_path / "v1" / "out" / "lineage"),
        }
        assert (
            main(["lineage", "--name", "churn-classifier", "--namespace", namespace, "--kubeconfig", kubeconfig]) == 0
        )
        out = capsys.readouterr().out
        assert "stable model, 100% of the traffic" in out and f"sha256 {stable.model_sha256}" in out
        assert "-> run          run-1 (run-1-name, pipeline kfp-tabular-train-and-deploy)" in out
        assert "training data sha256 " + "ab" * 32 + "  s3://bucket/run/train_data" in out

        second, canary = _deploy(tmp_path, kube_apiserver, namespace, "v2", "s3://models/churn/v2", "run-2")
        assert second["deployed"] is True
        assert (
            main(
                [
                    "lineage",
                    "--name",
                    "churn-classifier",
                    "--namespace",
                    namespace,
                    "--kubeconfig",
                    kubeconfig,
                    "--json",
                ]
            )
            == 0
        )
        served = json.loads(capsys.readouterr().out)
        assert [(s["role"], s["record"]["run"]["id"], s["traffic"]) for s in served] == [
            ("stable", "run-1", 90),
            ("canary", "run-2", 10),
        ]
        assert served[1]["record"]["model_sha256"] == canary.model_sha256
        assert served[1]["annotations"]["kfp-tabular.dev/model-sha256"] == canary.model_sha256
        # The canary was written without the logger: the predictor has none now (the stable one, recorded, has it).
        assert "logger" not in kclient.get(api, namespace, "churn-classifier")["spec"]["predictor"]

        # A predictor without the lineage annotation (deployed by kubectl, or before lineage): one line naming it.
        kclient.merge_patch(
            api,
            namespace,
            "churn-classifier",
            {"spec": {"predictor": {"annotations": {"kfp-tabular.dev/lineage-uri": None}}}},
        )
        assert (
            main(["lineage", "--name", "churn-classifier", "--namespace", namespace, "--kubeconfig", kubeconfig]) == 2
        )
        err = capsys.readouterr().err
        assert "canary predictor has no kfp-tabular.dev/lineage-uri annotation" in err
        assert len(err.strip().splitlines()) == 1
    assert not controller.errors

    assert main(["lineage", "--name", "Bad_Name", "--kubeconfig", kubeconfig]) == 2
    assert "error: --name: " in capsys.readouterr().err
    assert main(["lineage", "--name", "absent", "--namespace", namespace, "--kubeconfig", kubeconfig]) == 2
    assert "absent" in capsys.readouterr().err
