"""The kfp-tabular command: early parameter checks, one-line errors, compile-time storage wiring."""

import subprocess
import sys

import pytest
import yaml

from tests.helpers import REPO


def cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "kfp_tabular.pipelines.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "param, message",
    [
        ("estimator=xgboost", "estimator: unknown estimator 'xgboost'; valid: logistic_regression"),
        ('thresholds={"auc": 0.7}', "thresholds: unknown metric 'auc'"),
        ('thresholds={"roc_auc": 1.5}', "bound for 'roc_auc' must lie in [0.0, 1.0]"),
        ("deploy_action=deploy", "deploy_action: expected 'render' or 'apply', got 'deploy'"),
        ("canary_traffic_percent=150", "canary_traffic_percent: expected an integer from 0 to 100"),
        ("eval_fraction=1.5", "eval_fraction: expected a number strictly between 0 and 1"),
        ("bogus=1", "unknown pipeline parameter(s) bogus; parameters: data_uri, label_column"),
    ],
)
def test_run_local_refuses_bad_parameters_before_running_anything(tmp_path, param, message):
    out = cli("run-local", "--rows", "200", "--output-dir", str(tmp_path), "--param", param)
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines() == [
        f"kfp-tabular run-local: error: {out.stderr.split('error: ', 1)[1].strip()}"
    ]
    assert message in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["data_uri=s3://b/churn.csv", "estimator=xgboost"], "estimator: unknown estimator 'xgboost'"),
        (["estimator=logistic_regression"], "data_uri: required, not given"),
    ],
)
def test_submit_checks_parameters_before_connecting(params, message):
    out = cli("submit", "--host", "http://127.0.0.1:9", *(arg for p in params for arg in ("--param", p)))
    assert out.returncode == 2 and message in out.stderr
    assert "Traceback" not in out.stderr


def test_rollout_commands_report_a_bad_kubeconfig_in_one_line(tmp_path):
    out = cli(
        "promote", "--name", "churn-classifier", "--namespace", "kfp-tabular", "--kubeconfig", str(tmp_path / "missing")
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "kfp-tabular promote: error:" in out.stderr and "missing" in out.stderr


def test_compile_wires_cluster_storage_with_kfp_kubernetes(tmp_path):
    target = tmp_path / "storage.yaml"
    out = cli(
        "compile", "--output", str(target), "--storage-secret", "kserve-storage-s3", "--model-store-pvc", "model-store"
    )
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(target.read_text()))
    assert len(docs) == 2, "pipeline spec + Kubernetes platform spec"
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secret_tasks = {name for name, spec in executors.items() if spec.get("secretAsEnv")}
    assert secret_tasks == {"exec-ingest", "exec-validate-data", "exec-evaluate", "exec-deploy-model"}
    env = executors["exec-deploy-model"]["secretAsEnv"][0]
    assert env["secretName"] == "kserve-storage-s3"
    assert {e["envVar"] for e in env["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    mount = executors["exec-deploy-model"]["pvcMount"][0]
    assert mount["mountPath"] == "/mnt/model-store"
    assert "model-store" in yaml.safe_dump(mount)
    deploy = docs[0]["root"]["dag"]["tasks"]["deploy-model"]["inputs"]["parameters"]
    assert deploy["pvc_mount_root"]["runtimeValue"]["constant"] == "/mnt/model-store"


def test_compile_refuses_to_overwrite_the_committed_yaml_with_storage_wiring():
    out = cli("compile", "--storage-secret", "s3-creds")
    assert out.returncode == 2 and "--output: give a path of your own" in out.stderr


SHA_A, SHA_B = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prometheus-url", "ftp://x", "--stable-sha", SHA_A, "--canary-sha", SHA_B], "--prometheus-url: expected"),
        (["--prometheus-url", "http://127.0.0.1:9", "--stable-sha", SHA_A], "--name: give --name"),
        (["--prometheus-url", "http://127.0.0.1:9", "--stable-sha", SHA_A, "--canary-sha", "x"], "--canary-sha: "),
        (
            ["--prometheus-url", "http://127.0.0.1:9", "--stable-sha", SHA_A, "--canary-sha", SHA_B, "--window", "0"],
            "--window: expected seconds > 0",
        ),
        (
            ["--prometheus-url", "http://u:9", "--stable-sha", SHA_A, "--canary-sha", SHA_B, "--min-success-rate", "2"],
            "--min-success-rate: expected a number from 0 to 1",
        ),
        (
            ["--prometheus-url", "http://u:9", "--stable-sha", SHA_A, "--canary-sha", SHA_B, "--drift-metric", "kl"],
            "--drift-metric: expected one of js, psi",
        ),
        (
            ["--prometheus-url", "http://u:9", "--name", "churn", "--stable-sha", SHA_A, "--canary-sha", SHA_B],
            "--name: give either --name or --stable-sha and --canary-sha, not both",
        ),
        (
            ["--prometheus-url", "http://127.0.0.1:9", "--stable-sha", SHA_A, "--canary-sha", SHA_B],
            "Prometheus http://127.0.0.1:9/api/v1/query",
        ),
    ],
)
def test_rollout_analyze_errors_are_one_line_naming_the_flag(args, message):
    out = cli("rollout", "analyze", *args, timeout=60)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kfp-tabular rollout analyze: error: "), out.stderr
    assert message in lines[0], out.stderr


def test_rollout_status_names_the_kubeconfig_flag(tmp_path):
    out = cli("rollout", "status", "--name", "churn", "--namespace", "ns", "--kubeconfig", str(tmp_path / "missing"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("kfp-tabular rollout status: error: --kubeconfig: "), out.stderr


def test_rollout_help_imports_only_light_modules():
    """``kfp-tabular rollout --help`` builds the parser without kfp, kubernetes or the rollout engine."""
    code = (
        "import sys\n"
        "from kfp_tabular.pipelines import cli\n"
        "try:\n"
        "    cli.main(['rollout', 'analyze', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('kfp', 'kubernetes', 'urllib3', 'kfp_tabular.components.deployment.rollout.engine') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert "--prometheus-url" in out.stdout and "--max-prediction-drift" in out.stdout, out
    assert "HEAVY []" in out.stdout, out.stdout[-500:]


@pytest.mark.parametrize("flags, warm", [((), None), (("--no-warm",), False)])
def test_run_local_no_warm_flag_reaches_run_local(monkeypatch, flags, warm):
    """``--no-warm`` asks run_local for a fresh interpreter per task; without it run_local decides (the env)."""
    from kfp_tabular.pipelines import cli as cli_module
    from kfp_tabular.pipelines.training.train_and_deploy import run_local as run_local_module

    seen = {}

    class Summary:
        succeeded = True

    def fake_run_local(**kwargs):
        seen.update(kwargs)
        return Summary()

    monkeypatch.setattr(run_local_module, "run_local", fake_run_local)
    monkeypatch.setattr(run_local_module, "format_summary", lambda summary: "summary")
    assert cli_module.main(["run-local", "--rows", "100", *flags]) == 0
    assert seen["warm"] is warm and seen["rows"] == 100
