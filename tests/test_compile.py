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
