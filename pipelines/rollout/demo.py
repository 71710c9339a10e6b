"""``python -m kfp_tabular.pipelines.rollout.demo [scenario ...]``: the rollout scenarios end to end on 127.0.0.1.

For the scenarios asked (default: all of :data:`scenarios.SCENARIOS`, in order) it builds the models (cached),
starts the stable model server and each candidate's (the serve env), Prometheus scraping them every second and,
per scenario, nginx splitting traffic between stable and the candidate; then, with the load generator replaying
eval rows through nginx (none in ``no-traffic``), it runs the rollout engine (``run_rollout`` with
``NginxTrafficBackend`` + ``PrometheusReader``) and prints each window's numbers and verdict, the decision, and
the outcomes of the requests stable and canary answered. Each analysis is written with
``record.write_analysis`` to ``<run dir>/<scenario>/analysis.json`` and ``analysis.md``; process logs are under
the same run dir (``--run-dir``, default ``local_outputs/rollout-demo/<UTC time>``).

The policy is :func:`scenario_policy`: the engine's defaults with short windows for a demo (steps 20, 50, 100;
8 s windows). Exit status: 0 when every scenario ended as expected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from kfp_tabular.pipelines.rollout import rig, scenarios

__all__ = ["ScenarioResult", "main", "run_scenarios", "scenario_policy"]

#: Load: requests per second through nginx, rows per request (V1 instances); every LARGE_EVERY-th request carries
#: LARGE_BATCH rows (a client scoring a page of records): the slow candidate's time grows with the rows, stable's
#: barely does.
RATE = 20.0
BATCH = 2
LARGE_BATCH = 48
LARGE_EVERY = 5
#: Seconds after a window before it is read: one scrape interval plus margin, so the last scrape has landed.
SETTLE_SECONDS = 1.5


def scenario_policy(**overrides):
    """Return the demo's policy: canary 20 -> 50 -> 100, 8 s windows, 20 requests a window, thresholds below.

    Thresholds: success >= 0.99, p99 <= 0.25 s (and <= 2x stable when stable's p99 is at least 0.25 s: below, on
    a shared 2-core machine, the p99 of a few dozen requests is their slowest one, one scheduling hiccup, and a
    ratio of two such values is noise), JS distance <= 0.1. Two inconclusive windows at a step roll back; no
    failed window is tolerated.
    """
    from kfp_tabular.components.deployment.rollout.policy import RolloutPolicy, Thresholds

    thresholds = Thresholds(
        min_success_rate=0.99,
        max_p99_seconds=0.25,
        max_p99_ratio=2.0,
        p99_floor_seconds=0.25,
        max_prediction_drift=0.1,
        drift_metric="js",
    )
    values = dict(
        strategy="canary",
        steps=(20, 50, 100),
        step_interval_seconds=8.0,
        min_requests=20,
        max_inconclusive=2,
        failure_limit=0,
        thresholds=thresholds,
    )
    values.update(overrides)
    return RolloutPolicy(**values)


@dataclasses.dataclass
class ScenarioResult:
    """What one scenario did: the engine's outcome, the load's counts, where its analysis is."""

    scenario: scenarios.Scenario
    outcome: object  # engine.RolloutOutcome
    counts: object  # load.Counts
    analysis_json: Path
    analysis_md: Path
    seconds: float
    nginx_history: List[str]
    preview_counts: list = dataclasses.field(default_factory=list)  # load.Counts of each preview replay

    @property
    def as_expected(self) -> bool:
        """Whether the verdict (and, for a rollback, the failed check) is the scenario's expectation."""
        if self.outcome.verdict != self.scenario.verdict:
            return False
        if self.scenario.failed_check is None:
            return True
        return failed_check_name(self.outcome) == self.scenario.failed_check

    @property
    def stable_all_ok(self) -> bool:
        """Whether every request stable answered succeeded (and nothing failed without an answer)."""
        stable = self.counts.role("stable")
        unanswered = self.counts.role("none")
        return stable["ok"] == sum(stable.values()) and sum(unanswered.values()) == 0


def failed_check_name(outcome) -> Optional[str]:
    """Return the name of the first failed check of the last window, ``inconclusive`` if it was inconclusive."""
    if not outcome.steps:
        return None
    analysis = outcome.steps[-1].analysis
    if analysis.verdict == "inconclusive":
        return "inconclusive"
    failed = analysis.failed_checks
    return failed[0].name if failed else None


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def run_scenarios(
    names: Sequence[str],
    run_dir: Path,
    *,
    models_base: Optional[Path] = None,
    policy=None,
    rate: float = RATE,
    batch: int = BATCH,
    large_batch: int = LARGE_BATCH,
    large_every: int = LARGE_EVERY,
    log: Callable[[str], object] = print,
) -> List[ScenarioResult]:
    """Run the named scenarios on one rig (one stable server and Prometheus, a server per candidate).

    Args:
        names: Scenario names (:data:`scenarios.SCENARIOS`).
        run_dir: Where logs, nginx prefixes, Prometheus's TSDB and the analyses go.
        models_base: Model cache directory (default ``$KFP_TABULAR_CACHE/rollout-models``).
        policy: The rollout policy (default :func:`scenario_policy`).
        rate: Load in requests per second through nginx.
        batch: Rows per request.
        large_batch: Rows of every ``large_every``-th request (0: none).
        large_every: See ``large_batch``.
        log: Gets every line (the engine's step lines included).
    """
    from kfp_tabular.components.common.errors import ConfigError
    from kfp_tabular.components.deployment.rollout.engine import run_rollout
    from kfp_tabular.components.deployment.rollout.metrics import PrometheusReader
    from kfp_tabular.components.deployment.rollout.record import write_analysis
    from kfp_tabular.pipelines.rollout.load import LoadGenerator, replay

    unknown = [n for n in names if n not in scenarios.SCENARIOS]
    if unknown:
        raise ConfigError(f"scenario: unknown {unknown}; expected some of {', '.join(scenarios.SCENARIOS)}")
    chosen = [scenarios.SCENARIOS[n] for n in names]
    policy = policy or scenario_policy()
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    candidates = sorted({s.candidate for s in chosen})
    models = scenarios.build_models(["stable", *candidates], models_base, log=log)
    feature_order = json.loads((models["stable"] / "metadata.json").read_text())["feature_order"]
    rows = scenarios.eval_rows(feature_order)
    results: List[ScenarioResult] = []
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        wanted = {name: models[name] for name in ["stable", *candidates]}
        servers: Dict[str, rig.ModelServer] = stack.enter_context(rig.model_servers(run_dir / "servers", wanted))
        addresses = [s.address for s in servers.values()]
        prom = stack.enter_context(rig.prometheus(run_dir / "prometheus", addresses))
        prom.wait_scraped(addresses)
        log(
            f"rig up in {time.monotonic() - started:.1f}s: Prometheus {prom.url}; "
            + ", ".join(f"{n} {s.url} (sha256 {s.sha256[:12]})" for n, s in servers.items())
        )
        reader = PrometheusReader(prom.url)
        for scenario in chosen:
            log("")
            log(f"=== scenario {scenario.name}: candidate {scenario.candidate} ({scenario.story}) ===")
            scenario_dir = run_dir / scenario.name
            begin = time.monotonic()
            stable, candidate = servers["stable"], servers[scenario.candidate]
            scenario_policy_ = dataclasses.replace(policy, strategy=scenario.strategy)
            preview_counts: list = []

            def preview_traffic(url: str, _path=stable.predict_path()) -> None:
                # a bounded replay of eval rows to the candidate alone, within the window
                preview_counts.append(
                    replay(
                        url,
                        _path,
                        rows,
                        rate=rate,
                        duration=0.9 * policy.step_interval_seconds,
                        batch=batch,
                        large_batch=large_batch,
                        large_every=large_every,
                    )
                )

            with rig.splitter(scenario_dir / "nginx", stable, candidate) as backend:
                load = LoadGenerator(
                    backend.url,
                    stable.predict_path(),
                    rows,
                    rate=rate if scenario.traffic else 1.0,
                    batch=batch,
                    threads=16,
                    timeout=20.0,
                    large_batch=large_batch,
                    large_every=large_every,
                )
                if scenario.traffic:
                    load.start()
                    time.sleep(2.0)  # stable serves a little before the first step
                try:
                    outcome = run_rollout(
                        backend,
                        reader,
                        scenario_policy_,
                        preview_traffic=preview_traffic if scenario.strategy == "blue-green" else None,
                        settle_seconds=SETTLE_SECONDS,
                        log=log,
                    )
                finally:
                    counts = load.stop() if scenario.traffic else load.counts()
                history = list(backend.history)
            write_analysis(outcome, scenario_dir / "analysis.json", scenario_dir / "analysis.md")
            result = ScenarioResult(
                scenario,
                outcome,
                counts,
                scenario_dir / "analysis.json",
                scenario_dir / "analysis.md",
                time.monotonic() - begin,
                history,
                preview_counts,
            )
            results.append(result)
            log(f"requests through nginx: {counts.line()}")
            for preview in preview_counts:
                log(f"requests to the preview port: {preview.line()}")
            for example in counts.errors[:3]:
                log(f"  e.g. {example}")
            stable_note = "every request stable answered succeeded" if result.stable_all_ok else "STABLE FAILED"
            expected = "as expected" if result.as_expected else "NOT AS EXPECTED"
            log(
                f"scenario {scenario.name}: {outcome.verdict} ({expected}: {scenario.verdict}"
                f"{', ' + scenario.failed_check if scenario.failed_check else ''}); {stable_note}; "
                f"{result.seconds:.1f}s; analysis {result.analysis_md}"
            )
    return results


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; return 0 when every scenario ended as expected with stable always answering."""
    parser = argparse.ArgumentParser(
        prog="python -m kfp_tabular.pipelines.rollout.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("scenario", nargs="*", help=f"some of {', '.join(scenarios.SCENARIOS)} (default: all)")
    parser.add_argument("--run-dir", type=Path, help="default local_outputs/rollout-demo/<UTC time>")
    parser.add_argument("--rate", type=float, default=RATE, help="requests per second through nginx")
    parser.add_argument("--batch", type=int, default=BATCH, help="rows per request")
    args = parser.parse_args(argv)
    names = args.scenario or list(scenarios.SCENARIOS)
    run_dir = args.run_dir or Path("local_outputs") / "rollout-demo" / _stamp()
    print(f"run dir: {run_dir.resolve()}", flush=True)
    results = run_scenarios(names, run_dir, rate=args.rate, batch=args.batch, log=lambda line: print(line, flush=True))
    print("")
    print("summary:")
    for r in results:
        print(
            f"  {r.scenario.name:<10} {r.outcome.verdict:<11} check {failed_check_name(r.outcome) or '-':<16} "
            f"stable {r.counts.role('stable')['ok']}/{r.counts.total('stable')} ok, canary "
            f"{r.counts.role('canary')['ok']}/{r.counts.total('canary')} ok  "
            f"{'as expected' if r.as_expected and r.stable_all_ok else 'NOT AS EXPECTED'}"
        )
    return 0 if all(r.as_expected and r.stable_all_ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
