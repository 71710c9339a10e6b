"""``kfp-tabular schedule`` against tests/support/fake_kfp_api.py, a STAND-IN of the KFP API server (v2beta1 REST).

The real KFP API server cannot run here; the stand-in records what kfp.Client 2.13 sends, so these tests check the
exact request body of the recurring run: its cron, catch-up, pipeline spec and parameters.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.pipelines import cli
from kfp_tabular.pipelines.schedule_cli import PACKAGES, kfp_cron
from tests.support.fake_kfp_api import FakeKfpApi

MONITORING = ["--param", "served_data_uri=s3://logs/served", "--param", "lineage_uri=s3://models/lineage.json"]


@pytest.fixture()
def api(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client writes its context file under ~/.config/kfp
    with FakeKfpApi() as server:
        yield server


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("0 */6 * * *", "0 0 */6 * * *"),  # the usual 5 fields: second 0 added
        ("0 0 */6 * * *", "0 0 */6 * * *"),  # KFP's 6 fields as they are
        ("30 15 9 ? * MON-FRI", "30 15 9 ? * MON-FRI"),
        ("  0   3 * *   sun ", "0 0 3 * * sun"),
        ("@hourly", "@hourly"),
        ("0 0 1,15 JAN-JUN *", "0 0 0 1,15 JAN-JUN *"),
    ],
)
def test_cron_five_fields_get_seconds_six_fields_pass(given, sent):
    assert kfp_cron(given) == sent


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 */6 * *", "expected 5 fields .* or KFP's 6 .*, got 4"),
        ("0 0 */6 * * * *", "got 7"),
        ("61 * * * *", "minute '61' is not in 0-59"),
        ("0 0 25 * * *", "hour '25' is not in 0-23"),
        ("0 0 0 * 13 *", "month '13' is not in 1-12"),
        ("? * * * *", "'\\?' is for day-of-month or day-of-week, not minute"),
        ("0 0 10-2 * * *", "hour range '10-2' runs backwards"),
        ("0 */0 * * *", "hour step /0"),
        ("0 0 * * * FUNDAY", "day-of-week 'FUNDAY'"),
        ("@every 5m", "descriptors are"),
    ],
)
def test_bad_cron_is_refused_naming_the_field(cron, message):
    with pytest.raises(ConfigError, match=message):
        kfp_cron(cron)


def test_schedule_creates_a_recurring_run_of_the_monitoring_pipeline_without_catch_up(api, capsys):
    code = cli.main(["schedule", "--host", api.host, "--cron", "0 */6 * * *", *MONITORING, "--param", "window_hours=6"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "cron '0 0 */6 * * *'" in out and "catch-up off" in out
    (body,) = api.bodies("POST", "/recurringruns")
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 */6 * * *"}}
    assert body["no_catchup"] is True and body["mode"] == "ENABLE" and body["max_concurrency"] == 1
    assert body["display_name"] == "kfp-tabular-monitoring"
    assert body["runtime_config"]["parameters"] == {
        "served_data_uri": "s3://logs/served",
        "lineage_uri": "s3://models/lineage.json",
        "window_hours": 6,
    }
    committed = yaml.safe_load(PACKAGES["monitoring"].read_text())
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "kfp-tabular-monitor-and-retrain"
    assert body["pipeline_spec"]["root"] == committed["root"]
    (experiment,) = api.bodies("POST", "/experiments")
    assert experiment["display_name"] == "kfp-tabular" and body["experiment_id"] == next(iter(api.experiments))


def test_catchup_on_six_field_cron_and_the_training_pipeline(api, capsys):
    args = ["schedule", "--host", api.host, "--cron", "0 30 2 * * *", "--pipeline", "training", "--catchup"]
    code = cli.main([*args, "--param", "data_uri=s3://data/churn.csv", "--name", "nightly", "--max-concurrency", "2"])
    assert code == 0, capsys.readouterr().err
    (body,) = api.bodies("POST", "/recurringruns")
    assert body["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * *"
    assert body["no_catchup"] is False and body["display_name"] == "nightly" and body["max_concurrency"] == 2
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "kfp-tabular-train-and-deploy"
    assert body["runtime_config"]["parameters"] == {"data_uri": "s3://data/churn.csv"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 */6 * *", *MONITORING], "--cron '0 \\*/6 \\* \\*': expected 5 fields"),
        (["--cron", "@daily", "--param", "served_data_uri=s3://x"], "lineage_uri: required, not given"),
        (["--cron", "@daily", *MONITORING, "--param", "window_hours=0"], "window_hours: expected a number of hours"),
        (["--cron", "@daily", *MONITORING, "--param", "windows=3"], "unknown pipeline parameter\\(s\\) windows"),
        (["--cron", "@daily", *MONITORING, "--param", "mode=remote"], "mode: expected one of auto, local, cluster"),
        (["--cron", "@daily", "--pipeline", "training"], "data_uri: required, not given"),
    ],
)
def test_bad_arguments_fail_in_one_line_before_any_request(api, capsys, args, message):
    import re

    assert cli.main(["schedule", "--host", api.host, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kfp-tabular schedule: error: ") and re.search(message, err), err
    assert api.requests == []


def test_schedule_is_a_kfp_tabular_sub_command():
    done = subprocess.run(
        [sys.executable, "-m", "kfp_tabular.pipelines.cli", "schedule", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--catchup" in done.stdout and "KFP's 6" in done.stdout
