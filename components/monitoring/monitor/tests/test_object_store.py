"""The monitor on object storage (moto's S3 server): the lineage record, the statistics and schema it names and the
served batches all behind s3:// and KFP's minio:// URIs, as on a cluster."""

from __future__ import annotations

import datetime
import json

import pytest

from kfp_tabular.components.monitoring.monitor import core
from kfp_tabular.components.monitoring.monitor.request import MonitorRequest
from kfp_tabular.components.monitoring.monitor.tests.traffic import NOW, churn, served_rows, write_batches
from tests.support.s3 import moto_s3, s3  # noqa: F401 (moto_s3: the fixture)

DAY = datetime.timedelta(days=1)


@pytest.fixture()
def s3_endpoint(moto_s3, monkeypatch):  # noqa: F811
    """Point every s3fs filesystem fsspec opens at moto (as a cluster's configuration does for MinIO)."""
    import fsspec.config

    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": moto_s3, "skip_instance_cache": True})
    return moto_s3


def test_the_monitor_reads_everything_from_s3_and_minio_uris(deployed, s3_endpoint, tmp_path):
    fs = s3(s3_endpoint)
    fs.mkdir("runs")
    fs.mkdir("served")
    fs.put_file(str(deployed.root / "train_statistics.pb"), "runs/1/train_statistics.pb")
    fs.put_file(str(deployed.root / "schema.pbtxt"), "runs/1/schema.pbtxt")
    record = json.loads(deployed.lineage.read_text())
    record["statistics_uri"] = "minio://runs/1/train_statistics.pb"  # KFP's artifact URI form
    record["schema_uri"] = "s3://runs/1/schema.pbtxt"
    fs.pipe("runs/1/model/lineage.json", json.dumps(record).encode())
    local = tmp_path / "batches"
    write_batches(local, served_rows(deployed, churn(600, seed=141, variant="drifted"), NOW - DAY, NOW))
    fs.put(str(local) + "/", "served/churn/", recursive=True)
    request = MonitorRequest(served_data_uri="s3://served/churn", lineage_uri="s3://runs/1/model")
    result = core.monitor(request, now=NOW, decision_path=tmp_path / "decision.json")
    assert result.rows == 600 and result.retrain and "monthly_charges" in result.skewed_features
    assert json.loads((tmp_path / "decision.json").read_text())["lineage_uri"] == "s3://runs/1/model"
