"""The monitor component under kfp.local (SubprocessRunner): drifted traffic -> retrain; bad input -> a failed task."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from kfp_tabular.components.monitoring.monitor.component import monitor
from kfp_tabular.components.monitoring.monitor.tests.traffic import NOW, churn, served_rows, write_batches

DAY = datetime.timedelta(days=1)
# Our base image is the pipeline env itself; SubprocessRunner runs the body in this interpreter, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")


def _path(artifact) -> Path:
    return Path(artifact.path)


def test_the_component_decides_to_retrain_on_drifted_traffic_and_writes_every_output(deployed, local_runner, tmp_path):
    import pandas as pd

    sink = tmp_path / "sink"
    write_batches(sink, served_rows(deployed, churn(900, seed=101, variant="drifted"), NOW - DAY, NOW))
    write_batches(sink, served_rows(deployed, churn(900, seed=102), NOW - 2 * DAY, NOW - DAY))
    task = monitor(served_data_uri=str(sink), lineage_uri=str(deployed.lineage), window_end=NOW.isoformat())
    assert task.outputs["retrain"] is True and task.outputs["rows"] == 900
    assert "monthly_charges" in task.outputs["reason"]
    decision = json.loads(_path(task.outputs["decision"]).read_text())
    assert decision["retrain"] and "monthly_charges" in decision["drifted_features"]
    assert task.outputs["decision"].metadata["retrain"] is True
    assert "**RETRAIN**" in _path(task.outputs["report"]).read_text()
    html = _path(task.outputs["report_html"]).read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    served = pd.read_parquet(_path(task.outputs["served_data"]))
    assert len(served) == 900 and task.outputs["served_data"].metadata["rows"] == 900
    assert task.outputs["metrics"].metadata["retrain"] == 1.0


def test_a_lineage_record_that_does_not_parse_fails_the_task(deployed, local_runner, tmp_path):
    sink = tmp_path / "sink"
    write_batches(sink, served_rows(deployed, churn(300, seed=103), NOW - DAY, NOW))
    broken = tmp_path / "lineage.json"
    broken.write_text('{"model_sha256": "abc"')
    with pytest.raises(RuntimeError, match="FAILURE"):
        monitor(served_data_uri=str(sink), lineage_uri=str(broken), window_end=NOW.isoformat())
    assert not list(local_runner.rglob("decision")), "no decision is written for a failed task"
