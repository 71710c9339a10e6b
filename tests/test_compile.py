"""The committed pipeline YAML is what the code compiles to, and the IR carries the operational settings."""

import yaml

from kfp_tabular.pipelines.cli import DEFAULT_YAML, compile_pipeline
from tests.helpers import heavy_modules_after


def _load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_committed_pipeline_yaml_is_up_to_date(tmp_path):
    fresh = compile_pipeline(tmp_path / "pipeline.yaml")
    assert DEFAULT_YAML.exists(), "pipeline.yaml is not committed: run `make compile`"
    assert _load(fresh) == _load(DEFAULT_YAML), "pipeline.yaml is stale: run `make compile` and commit it"


def test_compile_never_imports_tensorflow_or_other_heavy_packages(tmp_path):
    code = f"from kfp_tabular.pipelines.cli import compile_pipeline\ncompile_pipeline({str(tmp_path / 'p.yaml')!r})\n"
    assert heavy_modules_after(code) == []


def test_ir_has_resources_retries_and_no_cache_on_deploy():
    spec = _load(DEFAULT_YAML)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest", "validate-data", "train", "evaluate", "deploy-model"}
    for name, task in tasks.items():
        executor = spec["deploymentSpec"]["executors"][task["componentRef"]["name"].replace("comp-", "exec-")]
        resources = executor["container"]["resources"]
        assert resources.get("cpuRequest") and resources.get("cpuLimit"), name
        assert resources.get("memoryRequest") and resources.get("memoryLimit"), name
        assert executor["container"]["image"].startswith(("ghcr.io/kfp-tabular/kfp-tabular-pipeline:",)), name
    assert tasks["deploy-model"]["cachingOptions"].get("enableCache") in (None, False)
    for cached in ("ingest", "validate-data", "train", "evaluate"):
        assert tasks[cached]["cachingOptions"].get("enableCache") is True, cached
    assert tasks["ingest"]["retryPolicy"]["maxRetryCount"] == 3
    assert "retryPolicy" not in tasks["deploy-model"] and "retryPolicy" not in tasks["validate-data"]
    # The gate is the deploy step reading the blessing, not a condition the local runner cannot run.
    assert "triggerPolicy" not in tasks["deploy-model"]
    assert tasks["deploy-model"]["inputs"]["artifacts"]["blessing"]["taskOutputArtifact"]["producerTask"] == "evaluate"


def test_committed_monitoring_pipeline_yaml_is_up_to_date(tmp_path):
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.compile import DEFAULT_YAML as MONITORING_YAML
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.compile import compile_pipeline as compile_monitoring

    fresh = compile_monitoring(tmp_path / "monitoring.yaml")
    assert MONITORING_YAML.exists(), "the monitoring pipeline.yaml is not committed: run `make compile`"
    assert _load(fresh) == _load(MONITORING_YAML), "the monitoring pipeline.yaml is stale: run `make compile`"


def test_monitoring_pipeline_compiles_for_a_cluster(tmp_path):
    """Our image on both steps, resources, never cached, no condition, the trigger fed by the monitor; S3 keys wired."""
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.compile import DEFAULT_YAML as MONITORING_YAML
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.compile import compile_pipeline as compile_monitoring

    spec = _load(MONITORING_YAML)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"monitor", "retrain-trigger"}
    for name, task in tasks.items():
        executor = spec["deploymentSpec"]["executors"][task["componentRef"]["name"].replace("comp-", "exec-")]
        assert executor["container"]["image"].startswith("ghcr.io/kfp-tabular/kfp-tabular-pipeline:"), name
        assert executor["container"]["resources"].get("cpuLimit") and executor["container"]["resources"].get(
            "memoryLimit"
        ), name
        assert task["cachingOptions"].get("enableCache") in (None, False), name
        assert "triggerPolicy" not in task, name
    artifacts = tasks["retrain-trigger"]["inputs"]["artifacts"]
    assert artifacts["decision"]["taskOutputArtifact"] == {"outputArtifactKey": "decision", "producerTask": "monitor"}
    assert artifacts["served_data"]["taskOutputArtifact"]["producerTask"] == "monitor"
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {"served_data_uri", "lineage_uri", "labels_uri", "kfp_host", "training_parameters"} <= set(inputs)
    assert "optional" not in inputs["served_data_uri"] and inputs["mode"]["defaultValue"] == "auto"

    wired = yaml.safe_load_all((compile_monitoring(tmp_path / "c.yaml", storage_secret="storage")).read_text())
    platform = [doc for doc in wired if "platforms" in doc][0]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in ("exec-monitor", "exec-retrain-trigger"):
        env = platform[executor]["secretAsEnv"][0]
        assert env["secretName"] == "storage" and {e["envVar"] for e in env["keyToEnv"]} == {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        }
