"""The whole pipeline under kfp.local, for real: default data, a second run with a baseline, noise, drift."""

import json
from pathlib import Path

import pytest
import yaml

from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.pipelines.training.train_and_deploy.run_local import format_summary, run_local

pytestmark = pytest.mark.slow
ROWS = 3000


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("local_run")


@pytest.fixture(scope="module")
def first_run(workdir):
    return run_local(output_dir=workdir, rows=ROWS, seed=7)


def test_default_data_runs_end_to_end_to_a_rendered_inference_service(first_run):
    summary = first_run
    assert summary.succeeded, summary.error
    assert summary.rows["rows"] == ROWS and summary.rows["train_rows"] + summary.rows["eval_rows"] == ROWS
    for name in (
        "ingest/train_data",
        "ingest/eval_data",
        "validate-data/schema",
        "validate-data/report",
        "validate-data/train_statistics",
        "train/model",
        "evaluate/blessing",
        "deploy-model/manifest",
    ):
        assert Path(summary.artifacts[name]).exists(), name
    model_dir = Path(summary.artifacts["train/model"])
    assert sorted(p.name for p in model_dir.iterdir()) == ["metadata.json", "model.joblib"]
    assert summary.metrics["roc_auc"] > 0.75
    assert summary.blessing["blessed"] is True, summary.blessing
    assert summary.baseline == {}  # the first run has no production model to compare with
    manifest = yaml.safe_load(Path(summary.artifacts["deploy-model/manifest"]).read_text())
    assert manifest["kind"] == "InferenceService"
    predictor = manifest["spec"]["predictor"]
    assert predictor["model"]["modelFormat"]["name"] == "sklearn"
    assert predictor["model"]["protocolVersion"] == "v2"
    assert (
        predictor["model"]["storageUri"].endswith(model_dir.name) or str(model_dir) in predictor["model"]["storageUri"]
    )
    assert summary.promoted_to and Path(summary.promoted_to, "model", "model.joblib").exists()
    text = format_summary(summary)
    assert "SUCCEEDED" in text and "BLESSED" in text and str(model_dir) in text
    for name in ("deploy-model/analysis_report", "deploy-model/lineage", "deploy-model/model_card_html"):
        assert f"  {name:<28} {summary.artifacts[name]}" in text and Path(summary.artifacts[name]).exists(), name
    assert [t["name"] for t in summary.tasks] == ["ingest", "validate-data", "train", "evaluate", "deploy-model"]
    for task in summary.tasks:
        assert task["status"] == "SUCCESS" and task["seconds"] > 0 and task["peak_rss_mb"] > 0, task
        assert Path(task["log"]).parent == Path(summary.log_dir) == Path(summary.run_dir) / "logs"
    assert f"logs: {summary.log_dir}/" in text
    assert not any(name.startswith("logs/") for name in summary.artifacts)  # the logs are no task's outputs


def test_second_run_takes_the_blessed_model_as_baseline(first_run, workdir):
    assert first_run.succeeded
    second = run_local(output_dir=workdir, rows=ROWS, seed=7)
    assert second.succeeded, second.error
    assert second.baseline["run"] == Path(first_run.run_dir).name
    assert second.blessing["baseline_metrics"] is not None
    assert second.blessing["baseline_model_dir"] == second.baseline["model_dir"]
    history = (Path(workdir) / "production" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2 and json.loads(history[-1])["run"] == Path(second.run_dir).name


def test_a_batch_without_a_production_column_fails_against_the_production_statistics(first_run, workdir, tmp_path):
    """Same label, a column gone: the production model cannot score it, and the batch drifted from production."""
    assert first_run.succeeded
    other = synthetic.generate(ROWS, 9).drop(columns=["age"])
    data = synthetic.write(other, tmp_path / "no-age.csv")
    summary = run_local(output_dir=workdir, data_uri=str(data))
    assert not summary.succeeded and summary.failed_task == "validate-data"
    assert "| age | batch_vs_baseline | missing | 1.000 |" in summary.anomalies_report
    assert "not used as baseline" in summary.baseline_skipped and "lacks its column(s) age" in summary.baseline_skipped
    assert summary.baseline_skipped in format_summary(summary)
    # Without the production baseline (a new kind of data under the same label name) the run goes through.
    fresh = run_local(output_dir=workdir, data_uri=str(data), use_production_baseline=False)
    assert fresh.succeeded, fresh.error
    assert fresh.baseline == {} and fresh.blessing["baseline_model_dir"] == "" and fresh.blessing["blessed"] is True


def test_noise_labels_are_not_blessed_and_deploy_changes_nothing(tmp_path):
    data = synthetic.write(synthetic.generate(ROWS, 3, "noise"), tmp_path / "noise.csv")
    summary = run_local(output_dir=tmp_path / "out", data_uri=str(data))
    assert summary.succeeded, summary.error
    assert summary.blessing["blessed"] is False and summary.blessing["reasons"]
    assert summary.deploy["deployed"] is False
    assert "not blessed" in summary.deploy["reason"].lower()
    assert not summary.promoted_to
    assert not (tmp_path / "out" / "production" / "current.json").exists()


def test_drifted_data_fails_at_validation_naming_the_anomalies(tmp_path):
    data = synthetic.write(synthetic.generate(ROWS, 5, "drifted"), tmp_path / "drifted.csv")
    from kfp_tabular.pipelines.training.train_and_deploy.run_local import curated_schema_path

    summary = run_local(output_dir=tmp_path / "out", data_uri=str(data), schema_uri=curated_schema_path())
    assert not summary.succeeded
    assert summary.failed_task == "validate-data"
    assert "has_partner" in summary.anomalies_report and "payment_method" in summary.anomalies_report
    assert "train/model" not in summary.artifacts  # nothing downstream ran
    # the first line of the task's error; the anomalies table above it names each one
    assert summary.error.startswith("ValidationFailed: data validation failed: 4 anomalies"), summary.error
    text = format_summary(summary)
    assert "FAILED" in text and "error: ValidationFailed:" in text
    assert [(t["name"], t["status"]) for t in summary.tasks] == [("ingest", "SUCCESS"), ("validate-data", "FAILURE")]
    failed_log = Path(summary.tasks[-1]["log"])
    assert f"failed task: validate-data, its log: {failed_log}" in text
    assert text.splitlines()[-2].startswith("error: ValidationFailed: data validation failed")  # it ends with it
    assert "kfp_tabular.components.common.errors.ValidationFailed" in failed_log.read_text()  # the traceback


def test_bad_input_ends_with_the_error_naming_the_file_and_column(tmp_path):
    data = synthetic.write(synthetic.generate(200, 1), tmp_path / "small.csv")
    summary = run_local(output_dir=tmp_path / "out", data_uri=str(data), label_column="nope")
    assert not summary.succeeded and summary.failed_task == "ingest"
    assert summary.error.startswith(f"DataError: {data}: label column 'nope' not found"), summary.error
    assert not list((tmp_path / "out" / "runs").glob("*/ingest/train_data"))  # nothing half-written
