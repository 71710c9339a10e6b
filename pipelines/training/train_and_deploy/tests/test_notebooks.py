"""The notebooks run for real: the local one through kfp.local, the cluster one against the test API server."""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, cwd: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Execute a notebook in a fresh kernel of this interpreter with extra environment variables."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
        ).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


def text_of(notebook: nbformat.NotebookNode) -> str:
    """All stream and text outputs of a notebook."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_local_notebook_runs_the_pipeline(tmp_path):
    out = tmp_path / "outputs"
    notebook = execute("run_local.ipynb", tmp_path, {"KFP_TABULAR_ROWS": "3000", "KFP_TABULAR_OUTPUT_DIR": str(out)})
    text = text_of(notebook)
    assert "kfp-tabular local run: SUCCEEDED" in text and "blessing: BLESSED" in text
    assert "kind: InferenceService" in text
    current = json.loads((out / "production" / "current.json").read_text())
    assert Path(current["model_dir"], "model.joblib").exists()


@pytest.mark.cluster
@pytest.mark.parametrize("rollback", [False, True], ids=["promote", "rollback"])
def test_cluster_notebook_rolls_out_a_canary(kube_apiserver, tmp_path, rollback):
    from kfp_tabular.components.deployment.kserve import status as kstatus
    from tests.support.fake_kserve import FakeKServeController

    namespace = kube_apiserver.create_namespace("notebook")
    env = {
        "KUBECONFIG": str(kube_apiserver.kubeconfig_path(namespace=namespace)),
        "ISVC_NAME": "churn-classifier",
        "ISVC_NAMESPACE": namespace,
        "STABLE_MODEL_URI": "s3://models/churn-classifier/v1",
        "CANARY_MODEL_URI": "s3://models/churn-classifier/v2",
        "CANARY_PERCENT": "20",
        "ROLLBACK": "1" if rollback else "0",
        "TIMEOUT_SECONDS": "60",
        "KFP_HOST": "",
    }
    with kube_apiserver.api_client() as admin:
        with FakeKServeController(admin, [namespace]) as controller:
            notebook = execute("cluster_run.ipynb", tmp_path, env)
        assert not controller.errors, controller.errors
        status = kstatus.get_status("churn-classifier", namespace, api_client=admin).as_dict()
    text = text_of(notebook)
    assert "compiled" in text and "KFP_HOST is not set" in text
    assert " 20% -> " in text and " 80% -> " in text  # the canary split the notebook printed
    expected = env["STABLE_MODEL_URI"] if rollback else env["CANARY_MODEL_URI"]
    assert status["storage_uri"] == expected and status["ready"] is True
    assert status["canary_traffic_percent"] in (None, 0)
