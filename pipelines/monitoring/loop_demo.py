"""``make loop-demo``: the production loop on one machine, with real processes.

1. A local production model (run_local's production record; one is trained when there is none).
2. Our model server serving it, emitting KServe logger CloudEvents (``--logger_url``) to the collector, which
   writes the served rows as Parquet batches.
3. Traffic like the training data -> the monitoring pipeline (kfp.local) decides no retrain.
4. Drifted traffic -> the monitor decides to retrain, naming the drifted features. Its labels arrive afterwards
   (a labels file joined on the CloudEvent id the client sent as ``Ce-Id`` and the row's index in the request).
   The drifted traffic is concept drift as well as covariate drift: its churn follows a changed relationship
   (long-tenure and ``crypto`` customers leave, month-to-month ones stay), so the model serving is now wrong.
5. The same window retrained on a deliberately bad set (its labels shuffled): the candidate is not blessed
   against the model serving and local production is unchanged.
6. The window retrained on its true labels: the candidate is blessed against the model serving and promoted
   (staged) in the local production record; the deploy step rendered its InferenceService.
7. The new production model's lineage (``kfp-tabular lineage --local`` when available, else the record).
8. The blessed model staged as a canary on issue 12's local rig (``pipelines/rollout``): a second model server
   serves it (``--logger_url`` to the same collector), Debian's nginx splits between the serving model (stable)
   and it (canary) at 10% (``rollout_strategy=manual``'s first step: a person or the canary rollout promotes), a
   bounded burst of requests goes through nginx (``rollout.load``), and the ``X-Served-By`` counts and the
   collector's rows per ``model_sha256`` show both answered. No Prometheus here (``make rollout-demo`` judges).

``python -m kfp_tabular.pipelines.monitoring.loop_demo --output-dir DIR [--rows N]``: DIR holds run_local's
production record (``make loop-demo`` gives a fresh one each time, so the first model is trained on the bundled data
and every run tells the same story; a DIR whose production model was retrained on drifted traffic would see "normal"
traffic as drifted). The served batches, labels and logs go to ``DIR/traffic/<time>/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BATCH = 25  # instances per request
LABEL = "churned"
CANARY_PERCENT = 10
CANARY_BURST = {"rate": 40.0, "duration": 6.0, "batch": 4, "threads": 8}  # ~240 requests of 4 rows through nginx


def log(message: str = "") -> None:
    """Print a line of the demo (flushed: the tasks' processes print too)."""
    print(message, flush=True)


def traffic(rows: int, seed: int, drifted: bool):
    """Return served rows with their (later arriving) labels: the bundled churn data, or its drifted variant.

    The drifted variant keeps every feature the model needs (``has_partner`` drawn as in the default data) and its
    labels follow a changed relationship (concept drift), so a model trained on it beats the one serving.
    """
    import numpy as np

    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    frame = generate(rows, seed=seed, variant="drifted" if drifted else "default")
    if not drifted:
        return frame
    rng = np.random.default_rng(seed + 7)
    frame.insert(10, "has_partner", rng.random(rows) < 0.48)
    logit = (
        -1.0
        + 0.12 * (frame["tenure_months"] - 14)
        + 2.5 * (frame["payment_method"] == "crypto")
        - 1.5 * (frame["contract_type"] == "month-to-month")
        + 0.8 * (frame["support_calls"] > 2)
    )
    frame[LABEL] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit.to_numpy()))).astype("int64")
    return frame


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    return value


def send(server_url: str, model_name: str, frame, phase: str) -> list[dict[str, Any]]:
    """POST the rows (V1 records, BATCH a request, ``Ce-Id: <phase>-<n>``); return the labels as they arrive later."""
    features = [c for c in frame.columns if c != LABEL]
    labels = []
    for start in range(0, len(frame), BATCH):
        chunk = frame.iloc[start : start + BATCH]
        event_id = f"{phase}-{start // BATCH:05d}"
        body = {"instances": [{c: _json_value(row[c]) for c in features} for _, row in chunk.iterrows()]}
        request = urllib.request.Request(
            f"{server_url}/v1/models/{model_name}:predict",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Ce-Id": event_id},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            if response.status != 200:
                raise RuntimeError(f"{server_url}: HTTP {response.status} for {event_id}")
        labels += [{"event_id": event_id, "instance": i, LABEL: int(y)} for i, y in enumerate(chunk[LABEL])]
    return labels


def wait_rows(sink: Path, expected: int, timeout: float = 60.0) -> int:
    """Wait until the collector's batches hold ``expected`` rows (it rolls every second); return the count."""
    import pyarrow.parquet as pq

    deadline, count = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        count = sum(pq.ParquetFile(p).metadata.num_rows for p in sink.rglob("*.parquet"))
        if count >= expected:
            return count
        time.sleep(0.5)
    raise RuntimeError(f"{sink}: {count} served rows after {timeout:.0f} s, expected {expected}")


#: The serving model's flags beside ``--logger_url``: V1 answers carry probabilities (the collector's ``score``).
SERVER_FLAGS = ("--predict_proba", "true")
MODEL_NAME = "churn-classifier"


def ensure_production(output_dir: Path, rows: int) -> dict[str, Any]:
    """Return the local production entry; train one with run_local (bundled data, ``rows`` rows) when missing."""
    from kfp_tabular.pipelines.training.train_and_deploy.run_local import ProductionRegistry, run_local

    registry = ProductionRegistry(output_dir)
    if registry.current() is None:
        log(f"no local production model under {output_dir}: training one (run_local, {rows} rows of the bundled data)")
        summary = run_local(output_dir=output_dir, rows=rows)
        if not summary.succeeded or not summary.promoted_to:
            raise RuntimeError(f"the first training run was not promoted: {summary.error or summary.blessing}")
    return registry.current()


def _write_labels(path: Path, labels: list[dict[str, Any]], shuffle_seed: int | None = None) -> str:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(labels)
    if shuffle_seed is not None:
        frame[LABEL] = np.random.default_rng(shuffle_seed).permutation(frame[LABEL].to_numpy())
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return str(path)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat()


def print_lineage(output_dir: Path) -> None:
    """Print the production model's lineage: ``kfp-tabular lineage --local`` when the CLI has it, else the record."""
    from kfp_tabular.pipelines.cli import build_parser
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.run_local import production_lineage

    commands = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001 - which sub-commands exist
    if "lineage" in commands:
        command = [
            sys.executable,
            "-m",
            "kfp_tabular.pipelines.cli",
            "lineage",
            "--local",
            "--output-dir",
            str(output_dir),
        ]
        log("$ kfp-tabular lineage --local --output-dir " + str(output_dir))
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode == 0:
            log(done.stdout.rstrip())
            return
        log(f"(kfp-tabular lineage --local failed: {done.stderr.strip()[-500:]}; the record instead)")
    path, found = production_lineage(output_dir)
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    log(f"lineage record ({found}): {path}")
    for key in ("model_sha256", "model_uri", "training_data", "source_data", "statistics_uri", "schema_uri"):
        log(f"  {key}: {record.get(key)}")
    log(f"  metrics: {json.dumps(record.get('metrics'), sort_keys=True)}")
    log(
        f"  blessing: blessed={record.get('blessing', {}).get('blessed')} "
        f"reasons={record.get('blessing', {}).get('reasons')}"
    )
    log(f"  baseline_model: {record.get('baseline_model')}")
    log(f"  run: {record.get('run')}")


def stage_canary(
    work: Path, collector_url: str, sink: Path, stable, canary_model_dir: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Stage ``canary_model_dir`` as a 10% canary beside the ``stable`` server; return what the burst showed.

    ``stable`` is the demo's running ``rollout.rig.ModelServer``. A second model server (``rollout.rig.model_server``,
    same name and flags, ``--logger_url`` to the same collector) serves the canary; ``rollout.rig.splitter``
    (nginx) splits between them at ``CANARY_PERCENT``; ``rollout.load.replay`` sends ``CANARY_BURST`` of
    ``rows`` (V1 records) through nginx. Returns the ``X-Served-By`` counts, both servers' sha256 and the
    collector's rows of the burst per ``model_sha256``.
    """
    from kfp_tabular.components.monitoring.collector import read_window
    from kfp_tabular.pipelines.rollout import rig
    from kfp_tabular.pipelines.rollout.load import replay

    began = time.monotonic()
    flags = [*SERVER_FLAGS, "--logger_url", collector_url]
    with rig.model_server(work / "canary", canary_model_dir, model_name=stable.model_name, extra_args=flags) as canary:
        with rig.splitter(work / "nginx", stable, canary) as backend:
            backend.set_canary_percent(CANARY_PERCENT)
            log(f"nginx {backend.url}: {backend.history[-1]}")
            start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
            counts = replay(backend.url, canary.predict_path(), rows, **CANARY_BURST)
        ok_rows = sum(counts.role(role)["ok"] for role in ("stable", "canary")) * CANARY_BURST["batch"]
        deadline, by_sha = time.monotonic() + 30, {}
        while time.monotonic() < deadline:  # both servers still up: their logger queues drain, the collector rolls
            shas = read_window(str(sink), start=start, columns=["model_sha256"]).column("model_sha256").to_pylist()
            by_sha = {sha: shas.count(sha) for sha in sorted(set(shas), key=str)}
            if sum(by_sha.values()) >= ok_rows:
                break
            time.sleep(0.5)
    answers = {role: counts.total(role) for role in counts.by_role}
    return {
        "percent": CANARY_PERCENT,
        "splitter": backend.description,
        "answers": answers,
        "outcomes": counts.by_role,
        "sent": counts.sent,
        "skipped": counts.skipped,
        "errors": counts.errors,
        "stable_sha256": stable.sha256,
        "canary_sha256": canary.sha256,
        "collector_rows_by_sha256": by_sha,
        "expected_rows": ok_rows,
        "seconds": round(time.monotonic() - began, 1),
    }


def canary_ok(staged: dict[str, Any] | None) -> bool:
    """Return True when stable and canary (two models) both answered, all ok, and the collector saw both models."""
    if not staged:
        return False
    answers = staged["answers"]
    all_ok = all(set(outcomes) == {"ok"} for outcomes in staged["outcomes"].values())
    shas = {staged["stable_sha256"], staged["canary_sha256"]}
    both = len(shas) == 2 and shas <= set(staged["collector_rows_by_sha256"])
    return set(answers) == {"stable", "canary"} and all_ok and both


def format_canary(staged: dict[str, Any]) -> str:
    """Return the lines of step 8: the split's answers and the collector's rows per model."""
    answers = staged["answers"]
    total = sum(answers.values()) or 1
    names = {staged["stable_sha256"]: "stable", staged["canary_sha256"]: "canary"}
    lines = [
        f"{staged['splitter']}, canary {staged['percent']}% (staged, burst and rows read in {staged['seconds']} s)",
        f"burst: {staged['sent']} requests sent ({CANARY_BURST['batch']} rows each, skipped {staged['skipped']}); "
        "X-Served-By: "
        + ", ".join(
            f"{role} {n} ({100 * n / total:.1f}%, ok {staged['outcomes'].get(role, {}).get('ok', 0)})"
            for role, n in sorted(answers.items())
        ),
        f"collector rows of the burst by model_sha256 (expected {staged['expected_rows']}): "
        + ", ".join(
            f"{sha[:16]}... ({names.get(sha, 'unknown')}) {n}" for sha, n in staged["collector_rows_by_sha256"].items()
        ),
    ]
    lines += [f"error: {e}" for e in staged["errors"][:5]]
    return "\n".join(lines)


def demo(
    output_dir: Path, rows: int = 4000, traffic_rows: int = 600, seed: int = 7, canary: bool = True
) -> dict[str, Any]:
    """Run the loop; return what each monitoring run decided and did (for tests).

    ``canary=False`` skips step 8 (it needs Debian's nginx); ``results["canary"]`` is then absent.
    """
    from kfp_tabular.components.monitoring.collector.launch import CollectorProcess
    from kfp_tabular.pipelines.monitoring.monitor_and_retrain.run_local import format_summary, run_monitoring_local
    from kfp_tabular.pipelines.rollout import rig

    stack = contextlib.ExitStack()
    output_dir = Path(output_dir).resolve()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = output_dir / "traffic" / stamp
    work.mkdir(parents=True, exist_ok=True)
    sink = work / "served"
    log(f"== 1. local production model ({output_dir / 'production' / 'current.json'})")
    production = ensure_production(output_dir, rows)
    log(
        f"serving run {production['run']}, model sha256 {production['model_sha256'][:16]}..., metrics "
        + ", ".join(f"{k}={v:.3f}" for k, v in sorted(production["metrics"].items()) if isinstance(v, float))
    )

    log("== 2. collector + model server (real processes; the server emits KServe logger CloudEvents)")
    collector = CollectorProcess(sink=str(sink), roll_rows=200, roll_seconds=1, log_path=work / "collector.log").start()
    results: dict[str, Any] = {"work": str(work)}
    try:
        flags = [*SERVER_FLAGS, "--logger_url", collector.url]
        serving = rig.model_server(
            work / "model-server", production["model_dir"], model_name=MODEL_NAME, extra_args=flags
        )
        server = stack.enter_context(serving)
        log(f"collector {collector.url} -> {sink}; model server {server.url} --logger_url {collector.url}")

        log(f"== 3. {traffic_rows} rows of traffic like the training data")
        t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        labels_a = send(server.url, server.model_name, traffic(traffic_rows, seed, drifted=False), "normal")
        wait_rows(sink, traffic_rows)
        t1 = datetime.datetime.now(datetime.timezone.utc)
        normal = run_monitoring_local(
            output_dir,
            served_data_uri=str(sink),
            window_end=_iso(t1),
            window_hours=(t1 - t0).total_seconds() / 3600,
        )
        log(format_summary(normal))
        results["normal"] = normal.as_dict()

        log(f"== 4. {traffic_rows} rows of drifted traffic")
        labels_b = send(server.url, server.model_name, traffic(traffic_rows, seed + 1, drifted=True), "drifted")
        wait_rows(sink, 2 * traffic_rows)
        while datetime.datetime.now(datetime.timezone.utc) - t1 < t1 - t0:  # the previous window holds all of 3.
            time.sleep(0.2)
        t2 = datetime.datetime.now(datetime.timezone.utc)
        window = {"window_end": _iso(t2), "window_hours": (t2 - t1).total_seconds() / 3600}
        labels = labels_a + labels_b
        log(f"labels arrive: {len(labels)} rows (event_id, instance, {LABEL}) in {work / 'labels.csv'}")

        log("== 5. the drifted window retrained on a deliberately bad set (labels shuffled)")
        bad = run_monitoring_local(
            output_dir,
            served_data_uri=str(sink),
            labels_uri=_write_labels(work / "labels-shuffled.csv", labels, shuffle_seed=seed),
            **window,
        )
        log(format_summary(bad))
        results["bad"] = bad.as_dict()

        log("== 6. the drifted window retrained on its true labels")
        good = run_monitoring_local(
            output_dir, served_data_uri=str(sink), labels_uri=_write_labels(work / "labels.csv", labels), **window
        )
        log(format_summary(good))
        results["good"] = good.as_dict()
        manifest = Path(good.outcome.get("run", {}).get("dir", "")) / "deploy-model" / "manifest"
        if manifest.is_file():
            log(f"deploy rendered the InferenceService: {manifest}")

        log("== 7. lineage of the model now in local production")
        print_lineage(output_dir)

        if not canary:
            log("== 8. canary staging skipped (canary=False)")
        elif good.outcome.get("promoted_to"):
            from kfp_tabular.pipelines.training.train_and_deploy.run_local import ProductionRegistry

            new = ProductionRegistry(output_dir).current()
            log(
                f"== 8. staged as a canary ({CANARY_PERCENT}%): model server for {new['model_sha256'][:16]}... "
                "(--logger_url to the same collector) + nginx splitting with the serving one"
            )
            burst_rows = traffic(200, seed + 2, drifted=True).drop(columns=[LABEL])
            records = [{c: _json_value(v) for c, v in row.items()} for row in burst_rows.to_dict("records")]
            results["canary"] = stage_canary(work, collector.url, sink, server, new["model_dir"], records)
            log(format_canary(results["canary"]))
        else:
            log("== 8. no canary staged: the true-labels retrain was not promoted")
    finally:
        stack.close()  # the model server first (what it sent is already in the collector's rows), then the collector
        collector.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="local_outputs")
    parser.add_argument("--rows", type=int, default=4000, help="rows of the first production model's data")
    parser.add_argument("--traffic-rows", type=int, default=600, help="served rows in each phase")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    results = demo(Path(args.output_dir), args.rows, args.traffic_rows, args.seed)
    ok = (
        results.get("normal", {}).get("decision", {}).get("retrain") is False
        and results.get("bad", {}).get("outcome", {}).get("blessed") is False
        and bool(results.get("good", {}).get("outcome", {}).get("promoted_to"))
        and canary_ok(results.get("canary"))
    )
    log(
        f"\nloop demo: {'OK' if ok else 'NOT AS EXPECTED'} "
        f"(every artifact under {results['work']} and the runs it names)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
