"""The deploy step's progressive rollout on the cluster path, end to end, in Knative and Standard modes.

Real: the kube-apiserver (KServe's CRDs validate and prune every write; the deploy step runs with the
pipeline-runner ServiceAccount's token and manifests/rbac, so the Role is shown to be enough), Prometheus
(Debian's binary, scraping every second), our model server serving REAL models (the rollout demo's stable,
good and shifted candidates: ``pipelines/rollout/scenarios.py``), nginx, and the load (eval rows as V1).

Named stand-ins: ``tests/support/fake_kserve.FakeKServeController`` plays the KServe controller (revisions,
traffic split, canary statuses); :class:`Router` plays Knative's router / the Standard-mode ingress: a thread
reads the split the controller reports on the InferenceService and sets nginx's weights to it, so requests
reach each model server in the share the InferenceService says. The model servers stand in for the pods of
each revision: the storageUri each revision serves is mapped to the server of that model.

The deploy step (``deploy.core.deploy_action``, action=apply, rollout_strategy=canary) first creates the
service with the stable model (100%, no analysis), then rolls the candidate out: a good one walks every step
and is promoted; a shifted one is rolled back at the first step on prediction drift and the task fails with
the numbers, all traffic back on the stable model. Requests answered by the stable model all succeed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.deploy import core
from kfp_tabular.components.deployment.deploy.request import DeployRequest
from kfp_tabular.components.deployment.kserve import client as kclient
from kfp_tabular.components.deployment.kserve import isvc as kisvc
from kfp_tabular.components.deployment.rollout.kserve_backend import KServeTrafficBackend
from tests.support.fake_kserve import FakeKServeController
from tests.support.model_files import write_blessing

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.serve,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH"),
]

NS = "kfp-tabular"
RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac"
URIS = {"stable": "s3://models/churn/stable", "good": "s3://models/churn/good", "shifted": "s3://models/churn/shifted"}
RATE, BATCH = 30.0, 16
SETTLE_SECONDS = 2.5


@pytest.fixture(scope="module")
def cluster(kube_apiserver):
    kube_apiserver.ensure_namespace(NS)
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kube_apiserver.kubeconfig_path()), "apply", "-k", str(RBAC)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return kube_apiserver


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """Three real model servers (stable, good, shifted) and a real Prometheus scraping them."""
    from kfp_tabular.pipelines.rollout import rig as local_rig
    from kfp_tabular.pipelines.rollout import scenarios

    run = tmp_path_factory.mktemp("rollout-cluster")
    models = scenarios.build_models(["stable", "good", "shifted"], log=lambda line: None)
    feature_order = json.loads((models["stable"] / "metadata.json").read_text())["feature_order"]
    with local_rig.model_servers(run / "servers", models) as servers:
        addresses = [s.address for s in servers.values()]
        # Scrapes every 2 s with a 2 s timeout: on this loaded 2-core machine a 1 s timeout was seen to miss
        # a busy server's /metrics, leaving a window without its samples.
        with local_rig.prometheus(run / "prometheus", addresses, scrape_interval="2s") as prom:
            prom.wait_scraped(addresses)
            yield {
                "run": run,
                "models": models,
                "servers": servers,
                "prometheus": prom,
                "rows": scenarios.eval_rows(feature_order),
            }


@pytest.fixture
def runner(cluster):
    """The deploy step's identity: pipeline-runner's token, manifests/rbac's Role."""
    with cluster.api_client(cluster.service_account_token(NS, "pipeline-runner")) as client:
        yield client


@pytest.fixture
def controller(cluster):
    with cluster.api_client() as admin:
        with FakeKServeController(admin, [NS], ready_delay=0.2) as ctl:
            yield ctl
    assert not ctl.errors, ctl.errors


class Router:
    """Knative's router / the Standard ingress, stood in: nginx's canary weight follows the reported split.

    The candidate's share is the traffic the InferenceService's status gives to revisions (Knative) or
    predictors (Standard) serving the candidate's storageUri; nginx's stable upstream is the stable model's
    server, its canary upstream the candidate's. Every change is applied as soon as it is read (polling every
    50 ms); ``shares`` records each applied share in order.
    """

    def __init__(self, admin_api, controller, name: str, backend, candidate_uri: str):
        self.admin_api, self.controller, self.name = admin_api, controller, name
        self.backend, self.candidate_uri = backend, candidate_uri
        self.shares: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="router", daemon=True)

    def candidate_share(self, obj: dict) -> int | None:
        status = obj.get("status") or {}
        if kisvc.mode_of(obj) == kisvc.KNATIVE:
            state = self.controller._states.get((NS, self.name))
            if state is None:
                return None
            uris = {r.name: r.uri for r in state.revisions}
            traffic = kisvc.predictor_status(obj).get("traffic") or []
            if not traffic:
                return None
            return sum(int(t["percent"]) for t in traffic if uris.get(t["revisionName"]) == self.candidate_uri)
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            return None
        canaries = {c["name"]: c for c in status.get("canaryStatuses") or [] if c.get("ready")}
        share, rest = 0, 100
        for entry in kisvc.canaries_of(obj):
            predictor = entry.get("predictor") or {}
            ready = canaries.get(predictor.get("name", ""))
            if ready is None:
                continue
            percent = int(ready.get("trafficPercent") or 0)
            rest -= percent
            if (predictor.get("model") or {}).get("storageUri") == self.candidate_uri:
                share += percent
        if kisvc.predictor_uri(obj) == self.candidate_uri:
            share += rest
        return share

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                obj = kclient.get(self.admin_api, NS, self.name)
                share = self.candidate_share(obj) if obj else None
                if share is not None and share != self.backend.percent:
                    self.backend.set_canary_percent(share)
                    self.shares.append(share)
            except Exception as exc:  # noqa: BLE001 - surfaced through self.errors
                self.errors.append(exc)
                return
            self._stop.wait(0.05)

    def __enter__(self) -> Router:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def deploy_request(name: str, mode: str, prometheus_url: str, uri: str) -> DeployRequest:
    return DeployRequest(
        isvc_name=name,
        namespace=NS,
        action="apply",
        deployment_mode=mode,
        storage_uri=uri,
        timeout_seconds=60,
        rollout_strategy="canary",
        rollout_steps="25,50,100",
        step_interval_seconds=8.0,
        min_requests=20,
        max_inconclusive=2,
        failure_limit=0,
        # Latency bounds are loose: this machine's two cores are shared with other work (a load average of 9 was
        # seen to make one server's p99 2.8x the other's); the local rig's slow scenario tests the latency checks.
        max_p99_seconds=5.0,
        max_p99_ratio=10.0,
        # The good candidate's JS distance to stable is 0.04 over all 2,000 eval rows, the shifted one's 0.39; a
        # window's ~800 canary predictions measured the good one at up to 0.106 (sampling), so 0.2 separates them.
        max_prediction_drift=0.2,
        prometheus_url=prometheus_url,
    )


def traffic_uris(controller, obj: dict) -> dict[str, int]:
    """``{storageUri: percent}`` of the traffic the InferenceService reports."""
    if kisvc.mode_of(obj) == kisvc.KNATIVE:
        uris = {r.name: r.uri for r in controller._states[(NS, obj["metadata"]["name"])].revisions}
        out: dict[str, int] = {}
        for t in kisvc.predictor_status(obj).get("traffic") or []:
            out[uris[t["revisionName"]]] = out.get(uris[t["revisionName"]], 0) + int(t["percent"])
        return {uri: percent for uri, percent in out.items() if percent}
    assert not (obj.get("status") or {}).get("canaryStatuses"), obj["status"]
    return {kisvc.predictor_uri(obj): 100}


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
@pytest.mark.parametrize(
    ("candidate", "verdict"), [("good", "promoted"), ("shifted", "rolled_back")], ids=["good", "shifted"]
)
def test_deploy_rolls_a_candidate_out_on_live_metrics(
    cluster, rig, runner, controller, tmp_path, mode, candidate, verdict
):
    from kfp_tabular.pipelines.rollout import rig as local_rig
    from kfp_tabular.pipelines.rollout.load import LoadGenerator

    name = f"churn-{mode.lower()}-{candidate}"
    servers, prom = rig["servers"], rig["prometheus"]
    stable_dir, candidate_dir = rig["models"]["stable"], rig["models"][candidate]
    lines: list[str] = []

    def action(model_dir: Path, uri: str, tag: str) -> dict:
        return core.deploy_action(
            deploy_request(name, mode, prom.url, uri),
            blessing_path=str(write_blessing(tmp_path / f"{tag}-blessing.json", model_dir)),
            model_uri=uri,
            model_path=str(model_dir),
            manifest_path=str(tmp_path / f"{tag}-manifest.yaml"),
            status_path=str(tmp_path / f"{tag}-status.json"),
            analysis_path=str(tmp_path / f"{tag}-analysis.json"),
            analysis_report_path=str(tmp_path / f"{tag}-analysis.md"),
            api_client=runner,
            log=lines.append,
            engine_options={"settle_seconds": SETTLE_SECONDS},
        )

    # The first deployment: 100% on the stable model, nothing to compare, recorded as such.
    first = action(stable_dir, URIS["stable"], "first")
    assert first["deployed"] is True and first["rollout"] == "created"
    first_analysis = json.loads((tmp_path / "first-analysis.json").read_text())
    assert (first_analysis["verdict"], first_analysis["steps"]) == ("first-deployment", [])
    assert "no stable model to compare with" in first_analysis["reason"]
    stored = kclient.get(runner, NS, name)
    assert stored["spec"]["predictor"]["annotations"][kisvc.MODEL_SHA_ANNOTATION] == servers["stable"].sha256
    assert stored["metadata"]["annotations"][kisvc.PROMETHEUS_SCRAPING_ANNOTATION] == "true"

    with contextlib.ExitStack() as stack:
        admin = stack.enter_context(cluster.api_client())
        nginx = stack.enter_context(local_rig.splitter(tmp_path / "nginx", servers["stable"], servers[candidate]))
        router = stack.enter_context(Router(admin, controller, name, nginx, URIS[candidate]))
        load = LoadGenerator(
            nginx.url, servers["stable"].predict_path(), rig["rows"], rate=RATE, batch=BATCH, threads=32, timeout=20.0
        )
        stack.callback(load.stop)
        load.start()
        time.sleep(3.0)  # stable serves alone for a moment: the baseline window
        started = time.monotonic()
        if verdict == "promoted":
            result = action(candidate_dir, URIS[candidate], "candidate")
        else:
            with pytest.raises(DeployError) as failed:
                action(candidate_dir, URIS[candidate], "candidate")
            result = json.loads((tmp_path / "candidate-status.json").read_text())
        elapsed = time.monotonic() - started
        time.sleep(1.0)  # the router applies the final split; a few more requests on it
        counts = load.stop()
    assert not router.errors, router.errors

    analysis = json.loads((tmp_path / "candidate-analysis.json").read_text())
    markdown = (tmp_path / "candidate-analysis.md").read_text()
    assert analysis["verdict"] == verdict, (analysis["reason"], lines)
    assert analysis["backend"] == f"InferenceService {NS}/{name} ({mode})"
    obj = kclient.get(runner, NS, name)
    stable_sha, candidate_sha = servers["stable"].sha256, servers[candidate].sha256
    if verdict == "promoted":
        # Every step judged on both revisions' live metrics, then promoted: all traffic on the candidate.
        # (A step may take more than one window when one is inconclusive, e.g. a window that started while the
        # router was still moving nginx's weights; none may fail.)
        percents = [s["percent"] for s in analysis["steps"]]
        assert sorted(set(percents)) == [25, 50, 100] and percents == sorted(percents), "\n".join(lines)
        assert all(s["analysis"]["verdict"] != "failed" for s in analysis["steps"]), markdown
        last_of_each = {s["percent"]: s["analysis"]["verdict"] for s in analysis["steps"]}
        assert last_of_each == {25: "passed", 50: "passed", 100: "passed"}, "\n".join(lines)
        first_step = analysis["steps"][0]
        assert first_step["canary"]["selector"] == f'model_sha256="{candidate_sha}"'
        assert first_step["stable"]["selector"] == f'model_sha256="{stable_sha}"'
        assert first_step["canary"]["requests"] >= 20 and first_step["stable"]["requests"] >= 20, _debug(prom.url)
        assert result["deployed"] is True and result["analysis"]["verdict"] == "promoted"
        assert traffic_uris(controller, obj) == {URIS[candidate]: 100}
        assert kisvc.rollout_state(obj) == kisvc.STATE_STABLE
        assert kisvc.model_sha_of(kisvc.predictor_of(obj)) == candidate_sha
        assert router.shares == [25, 50, 100], router.shares
        assert counts.role("canary")["ok"] > 0
    else:
        # Rolled back at the first step on prediction drift; the task fails with the numbers.
        assert len(analysis["steps"]) == 1 and analysis["steps"][0]["percent"] == 25, lines
        failed_checks = [c for c in analysis["steps"][0]["analysis"]["checks"] if c["passed"] is False]
        assert [c["name"] for c in failed_checks] == ["prediction_drift"], markdown
        message = str(failed.value)
        assert "rolled back" in message and "prediction_drift" in message, message
        assert f"{failed_checks[0]['canary']:.4g}" in message, message
        assert result["deployed"] is False and result["analysis"]["verdict"] == "rolled_back"
        assert traffic_uris(controller, obj) == {URIS["stable"]: 100}
        assert kisvc.rollout_state(obj) == kisvc.STATE_ROLLED_BACK
        assert router.shares[0] == 25 and router.shares[-1] == 0, router.shares
        assert elapsed < 40, f"a first-step rollback took {elapsed:.1f}s"
    assert "prediction_drift" in markdown
    # The model the stable revision serves kept answering every request it got.
    stable = counts.role("stable")
    assert stable["ok"] > 0 and stable["ok"] == sum(stable.values()), (counts.line(), counts.errors)
    assert sum(counts.role("none").values()) == 0, (counts.line(), counts.errors)


def test_blue_green_in_standard_mode_is_refused_naming_the_fields(cluster, runner, controller, rig, tmp_path):
    """Standard mode has no per-canary URL: refused up front by the request, and by the backend on a service."""
    with pytest.raises(ConfigError, match=r"^rollout_strategy, deployment_mode: blue-green"):
        DeployRequest(
            isvc_name="churn-bg",
            namespace=NS,
            action="apply",
            deployment_mode="Standard",
            rollout_strategy="blue-green",
            prometheus_url="http://127.0.0.1:9",
        )
    with pytest.raises(ConfigError, match=r"^prometheus_queries: the kserve-knative templates select Knative"):
        DeployRequest(deployment_mode="Standard", prometheus_queries="kserve-knative")
    core.deploy("churn-bg", NS, URIS["stable"], deployment_mode="Standard", api_client=runner, timeout_seconds=30)
    backend = KServeTrafficBackend(
        runner, NS, "churn-bg", stable_sha256="a" * 64, canary_sha256="b" * 64, timeout_seconds=30
    )
    with pytest.raises(ConfigError, match=r"^rollout_strategy, deployment_mode: .*Standard mode"):
        backend.stage_preview()
    with pytest.raises(ConfigError, match=r"^prometheus_queries: .*Standard mode"):
        KServeTrafficBackend(
            runner, NS, "churn-bg", stable_sha256="a" * 64, canary_sha256="b" * 64, select_by="revision"
        )


def test_blue_green_preview_in_knative_mode_is_the_latest_tag_url(cluster, runner, controller, rig):
    """The candidate at 0% with its own URL (tag routing), then 100% at once on promote."""
    stable, good = rig["servers"]["stable"].sha256, rig["servers"]["good"].sha256
    name = "churn-bg-knative"
    core.deploy(name, NS, URIS["stable"], api_client=runner, timeout_seconds=30, model_sha256=stable)
    status = core.deploy(
        name, NS, URIS["good"], canary_traffic_percent=0, api_client=runner, timeout_seconds=30, model_sha256=good
    )
    assert status.action == "canary"
    backend = KServeTrafficBackend.from_service(runner, NS, name, timeout_seconds=30)
    assert (backend.stable_selector, backend.canary_selector) == (f'model_sha256="{stable}"', f'model_sha256="{good}"')
    url = backend.stage_preview()
    assert url == f"http://latest-{name}-predictor.{NS}.example.com"
    # The kserve-knative templates (queue-proxy metrics) select revisions: canary the latest, stable the other.
    by_revision = KServeTrafficBackend(
        runner, NS, name, stable_sha256=stable, canary_sha256=good, timeout_seconds=30, select_by="revision"
    )
    assert (by_revision.stable_selector, by_revision.canary_selector) == (
        f'namespace_name="{NS}",revision_name="{name}-predictor-00001"',
        f'namespace_name="{NS}",revision_name="{name}-predictor-00002"',
    )
    obj = kclient.get(runner, NS, name)
    assert traffic_uris(controller, obj) == {URIS["stable"]: 100}, "the preview takes none of the main traffic"
    backend.promote()
    assert traffic_uris(controller, kclient.get(runner, NS, name)) == {URIS["good"]: 100}


def test_a_service_without_the_model_sha_is_refused_before_anything_moves(cluster, runner, controller, rig, tmp_path):
    """A stable predictor deployed without the annotation cannot be told apart: ConfigError, nothing written."""
    name = "churn-no-sha"
    core.deploy(name, NS, URIS["stable"], api_client=runner, timeout_seconds=30)  # no model_sha256
    before = kclient.get(runner, NS, name)
    model = rig["models"]["good"]
    with pytest.raises(ConfigError, match=r"^rollout_strategy: .*records no kfp-tabular.dev/model-sha256"):
        core.deploy_action(
            deploy_request(name, "Knative", rig["prometheus"].url, URIS["good"]),
            blessing_path=str(write_blessing(tmp_path / "blessing.json", model)),
            model_uri=URIS["good"],
            model_path=str(model),
            manifest_path=str(tmp_path / "m.yaml"),
            status_path=str(tmp_path / "s.json"),
            api_client=runner,
        )
    after = kclient.get(runner, NS, name)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]


def test_cli_status_and_analyze_on_a_canary_in_progress(cluster, rig, runner, controller, tmp_path, capsys):
    """``kfp-tabular rollout status`` shows the split and both shas; ``analyze`` judges it now, changing nothing."""
    from kfp_tabular.pipelines import cli
    from kfp_tabular.pipelines.rollout import rig as local_rig
    from kfp_tabular.pipelines.rollout.load import LoadGenerator

    name = "churn-cli"
    servers, prom = rig["servers"], rig["prometheus"]
    stable, shifted = servers["stable"].sha256, servers["shifted"].sha256
    core.deploy(name, NS, URIS["stable"], api_client=runner, timeout_seconds=30, model_sha256=stable)
    core.deploy(
        name,
        NS,
        URIS["shifted"],
        canary_traffic_percent=50,
        api_client=runner,
        timeout_seconds=30,
        model_sha256=shifted,
    )
    kubeconfig = str(cluster.kubeconfig_path())
    target = ["--name", name, "--namespace", NS, "--kubeconfig", kubeconfig]
    assert cli.main(["rollout", "status", *target]) == 0
    out = capsys.readouterr().out
    assert f"stable: {URIS['stable']}  sha256 {stable}" in out, out
    assert f"canary: {URIS['shifted']}  sha256 {shifted}  at 50%" in out, out
    assert "last analysis: none recorded" in out
    before = kclient.get(runner, NS, name)
    with contextlib.ExitStack() as stack:
        admin = stack.enter_context(cluster.api_client())
        nginx = stack.enter_context(local_rig.splitter(tmp_path / "nginx", servers["stable"], servers["shifted"]))
        router = stack.enter_context(Router(admin, controller, name, nginx, URIS["shifted"]))
        load = LoadGenerator(
            nginx.url, servers["stable"].predict_path(), rig["rows"], rate=RATE, batch=BATCH, threads=32, timeout=20.0
        )
        stack.callback(load.stop)
        deadline = time.monotonic() + 30
        while nginx.percent != 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        load.start()
        time.sleep(8.0 + SETTLE_SECONDS)
        capsys.readouterr()
        code = cli.main(["rollout", "analyze", "--prometheus-url", prom.url, *target, "--window", "8"])
        load.stop()
    assert not router.errors, router.errors
    out = capsys.readouterr().out
    assert code == 1, out + _debug(prom.url)  # failed
    assert f'canary model_sha256="{shifted}"' in out and f'stable model_sha256="{stable}"' in out, out
    assert "FAIL prediction_drift" in out and "pass success_rate" in out, out
    assert out.rstrip().splitlines()[-1].startswith("verdict: failed"), out
    after = kclient.get(runner, NS, name)
    assert after["metadata"]["generation"] == before["metadata"]["generation"], "analyze changed nothing"
    assert after["spec"] == before["spec"]
    # A person rolls it back (the rollback component's core): all traffic on the stable model again.
    assert cli.main(["rollout", "rollback", *target, "--timeout", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "rolled-back"
    assert traffic_uris(controller, kclient.get(runner, NS, name)) == {URIS["stable"]: 100}
    assert cli.main(["rollout", "status", *target]) == 0
    assert "rollout state rolled-back" in capsys.readouterr().out
    # Flags are checked before anything is read; the error names the flag, in one line.
    assert cli.main(["rollout", "analyze", "--prometheus-url", prom.url, *target, "--max-p99-ratio", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kfp-tabular rollout analyze: error: --max-p99-ratio: ") and "\n" not in err, err


def _debug(url: str) -> str:
    import urllib.parse
    import urllib.request

    out = []
    for expr in ("up", "kfp_tabular_requests_total", "scrape_duration_seconds"):
        with urllib.request.urlopen(url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=5) as r:
            out.append(f"{expr}: {json.load(r)['data']['result']}")
    return "\n".join(out)
