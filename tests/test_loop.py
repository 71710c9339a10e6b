"""The production loop end to end on one machine, small (``make loop-demo``'s flow, ~2-3 minutes).

Real processes: the collector and our model server (serve env) with ``--logger_url``; the monitoring pipeline run
with kfp.local; its retrain trigger running the training pipeline with kfp.local (run_local) against the local
production record. Traffic like the training data -> no retrain; drifted traffic -> retrain naming the drifted
features; retrained on shuffled labels -> not blessed, production unchanged; on its true labels -> blessed against
the model serving and promoted (staged) with the InferenceService rendered, then staged as a 10% canary behind
Debian's nginx (issue 12's local rig: a second model server, the same collector) where a bounded burst is answered
by both; the new model's lineage names the old one as its baseline. (The collector under bad events and
concurrent load: components/monitoring/collector/tests.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from kfp_tabular.components.common import lineage
from kfp_tabular.components.monitoring.collector.launch import serve_python

pytestmark = [pytest.mark.serve, pytest.mark.slow]


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _nginx() -> bool:
    from kfp_tabular.components.deployment.rollout.local import NGINX_BINARY

    return os.access(NGINX_BINARY, os.X_OK)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    if serve_python() == sys.executable:  # neither .venv-serve nor $KFP_TABULAR_SERVE_PYTHON
        reason = "serve environment missing: .venv-serve (make serve-env)"
        if _ci():
            pytest.fail(f"CI is set and the {reason}", pytrace=False)
        pytest.skip(reason)
    from kfp_tabular.pipelines.monitoring import loop_demo

    output_dir = tmp_path_factory.mktemp("loop")
    loop_demo.ensure_production(output_dir, rows=2000)
    first = json.loads((output_dir / "production" / "current.json").read_text())
    results = loop_demo.demo(output_dir, traffic_rows=500, seed=11, canary=_nginx())
    return output_dir, first, results


def test_traffic_like_the_training_data_does_not_retrain(loop):
    _, _, results = loop
    normal = results["normal"]
    assert normal["succeeded"], normal["error"]
    assert normal["decision"]["retrain"] is False and normal["decision"]["rows"] == 500
    assert normal["decision"]["drifted_features"] == [] and normal["decision"]["skewed_features"] == []
    assert normal["outcome"]["action"] == "none" and "no retrain" in normal["outcome"]["reason"]


def test_drifted_traffic_retrains_naming_the_drifted_features(loop):
    _, first, results = loop
    for phase in ("bad", "good"):
        decision = results[phase]["decision"]
        assert results[phase]["succeeded"], results[phase]["error"]
        assert decision["retrain"] is True and decision["rows"] == 500
        assert {"monthly_charges", "tenure_months"} <= set(decision["skewed_features"]), decision["reasons"]
        assert {"monthly_charges", "tenure_months"} <= set(decision["drifted_features"]), decision["reasons"]
        assert decision["model_sha256"] == first["model_sha256"], "the window of the model serving"
        outcome = results[phase]["outcome"]
        assert outcome["action"] == "trained_locally" and outcome["mode"] == "local"
        assert outcome["rows"]["labelled"] == 500 and outcome["arguments"]["drift_gate"] == "none"
        assert outcome["arguments"]["baseline_model_uri"] == lineage.read(results[phase]["lineage_uri"]).model_uri


def test_a_model_retrained_on_shuffled_labels_is_not_deployed(loop):
    output_dir, first, results = loop
    outcome = results["bad"]["outcome"]
    assert outcome["blessed"] is False and outcome["promoted_to"] == ""
    assert any("roc_auc" in reason for reason in outcome["blessing_reasons"]), outcome["blessing_reasons"]
    status = json.loads((Path(outcome["run"]["dir"]) / "deploy-model" / "status").read_text())
    assert status["deployed"] is False
    history = (output_dir / "production" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["model_sha256"] for line in history][0] == first["model_sha256"]
    assert len(history) == 2, "the bad model never reached the production record (the first and the good one did)"


def test_a_model_retrained_on_true_labels_beats_the_serving_one_and_is_staged_with_its_lineage(loop, capsys):
    output_dir, first, results = loop
    outcome = results["good"]["outcome"]
    assert outcome["blessed"] is True and outcome["promoted_to"], outcome["blessing_reasons"]
    assert any("baseline" in reason for reason in outcome["blessing_reasons"]), outcome["blessing_reasons"]
    run_dir = Path(outcome["run"]["dir"])
    blessing = json.loads((run_dir / "evaluate" / "blessing").read_text())
    assert blessing["metrics"]["roc_auc"] > blessing["baseline_metrics"]["roc_auc"]
    manifest = (run_dir / "deploy-model" / "manifest").read_text()
    assert "InferenceService" in manifest
    current = json.loads((output_dir / "production" / "current.json").read_text())
    assert current["run"] == run_dir.name and current["model_sha256"] != first["model_sha256"]

    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.run_local import production_lineage

    record = lineage.read(production_lineage(output_dir)[0])
    assert record.model_sha256 == current["model_sha256"]
    assert record.baseline_model is not None
    assert record.baseline_model["uri"] == lineage.read(results["good"]["lineage_uri"]).model_uri
    assert record.training_data["uri"] and record.metrics["roc_auc"] == blessing["metrics"]["roc_auc"]


def test_the_blessed_model_is_staged_as_a_10_percent_canary_beside_the_serving_one(loop):
    """Step 8: nginx at 10% between the old production model (stable) and the blessed one (canary)."""
    output_dir, first, results = loop
    if "canary" not in results:
        reason = "nginx missing (make rollout-deps): the canary was not staged"
        if _ci():
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)
    staged = results["canary"]
    current = json.loads((output_dir / "production" / "current.json").read_text())
    assert staged["stable_sha256"] == first["model_sha256"], "the stable is the model that was serving"
    assert staged["canary_sha256"] == current["model_sha256"] != first["model_sha256"], "the canary is the new one"
    assert staged["percent"] == 10
    assert set(staged["outcomes"]) == {"stable", "canary"}, staged  # no answer without X-Served-By
    for role, outcomes in staged["outcomes"].items():
        assert set(outcomes) == {"ok"}, (role, outcomes, staged["errors"])
    answers = staged["answers"]
    total = answers["stable"] + answers["canary"]
    assert total >= 150 and total == staged["sent"], staged
    assert 0.03 <= answers["canary"] / total <= 0.2, answers  # 10% of ~240: binomial sd ~2 points
    rows = staged["collector_rows_by_sha256"]
    assert set(rows) == {first["model_sha256"], current["model_sha256"]}, rows
    batch = staged["expected_rows"] // total
    assert rows[first["model_sha256"]] == batch * answers["stable"], (rows, answers)
    assert rows[current["model_sha256"]] == batch * answers["canary"], (rows, answers)


def test_a_production_record_without_a_lineage_file_gets_one_built_from_its_run(loop, tmp_path):
    """Production records promoted before run_local wrote lineage.json: the monitor's record is built from the run."""
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain import run_local as monitoring

    output_dir, _, _ = loop
    written = lineage.read(monitoring.production_lineage(output_dir)[0])
    entry = json.loads((output_dir / "production" / "current.json").read_text())
    built = lineage.read(monitoring._build_lineage(output_dir, entry, output_dir / "runs" / entry["run"]))
    for field in ("model_sha256", "task", "label_column", "classes", "metrics", "prediction_distribution"):
        assert getattr(built, field) == getattr(written, field), field
    assert built.training_data["hash"] == written.training_data["hash"]
    assert built.baseline_model["uri"] == written.baseline_model["uri"]
