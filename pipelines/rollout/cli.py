"""``kfp-tabular rollout status|promote|rollback|analyze``: a person watching a rollout on the cluster.

- ``status``: the InferenceService's split, revisions (Knative) or canary (Standard), the model sha256 of the
  stable and canary predictors, and the last rollout analysis the deploy step recorded on it;
- ``promote`` / ``rollback``: the promote and rollback components' cores (all traffic to the canary; all traffic
  back on the revision that served before);
- ``analyze``: one window's analysis now, canary against stable, read from Prometheus, printing each check;
  changes nothing. Exit code 0 passed, 1 failed, 3 inconclusive.

Only the standard library at module level (``kfp-tabular --help`` stays instant); each command imports what it
needs. Errors are one line naming the flag.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

#: Exit codes of ``analyze`` by verdict.
ANALYZE_EXIT = {"passed": 0, "failed": 1, "inconclusive": 3}

#: ``analyze`` flags -> the deploy step's parameter they set (their descriptions are the parameter's).
THRESHOLD_FLAGS = (
    "min_requests",
    "min_success_rate",
    "max_p99_seconds",
    "max_p99_ratio",
    "max_prediction_drift",
    "drift_metric",
)


class FlagError(Exception):
    """A bad command-line value: the message starts with the flag."""


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _as_flag_error(exc: Exception, fields: dict[str, str]) -> FlagError:
    """Rewrite ``field: message`` (a ConfigError) as ``--flag: message`` when the field is a flag's."""
    text = str(exc)
    field, sep, rest = text.partition(":")
    if sep and field in fields:
        return FlagError(f"{fields[field]}:{rest}")
    return FlagError(text)


def add_parser(sub: Any) -> None:
    """Add ``rollout`` and its four commands to the sub-parsers of ``kfp-tabular``."""
    from kfp_tabular.components.common.params import descriptions
    from kfp_tabular.components.deployment.deploy.request import DeployRequest

    described = descriptions(DeployRequest)
    rollout = sub.add_parser("rollout", help="watch, promote, roll back or analyze a rollout on the cluster")
    commands = rollout.add_subparsers(dest="rollout_command", required=True)

    def target(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("--name", required=required, default="", help="InferenceService name")
        p.add_argument("--namespace", required=required, default="kfp-tabular", help="its namespace")
        p.add_argument("--kubeconfig", default="", help="default: in-cluster config, else ~/.kube/config")
        p.add_argument("--context", default="", help="kubeconfig context (default: the current one)")

    p = commands.add_parser("status", help="split, revisions, model shas and the last recorded analysis")
    target(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=_status)

    for name, text in (
        ("promote", "send all traffic to the canary model, which becomes stable"),
        ("rollback", "send all traffic back to the revision that served before"),
    ):
        p = commands.add_parser(name, help=text)
        target(p)
        p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the traffic change")
        p.set_defaults(func=_act)

    p = commands.add_parser(
        "analyze",
        help="judge the canary against stable over the last window, now (changes nothing)",
        description="Read both models' metrics over the last --window seconds from Prometheus and print each "
        "check. Exit code 0 passed, 1 failed, 3 inconclusive.",
    )
    p.add_argument("--prometheus-url", required=True, help=described["prometheus_url"])
    target(p, required=False)
    p.add_argument("--stable-sha", default="", help="sha256 of the stable model file (instead of --name)")
    p.add_argument("--canary-sha", default="", help="sha256 of the candidate model file (instead of --name)")
    p.add_argument("--window", type=float, default=60.0, help="seconds of the window, ending now")
    p.add_argument("--prometheus-queries", default="", help=described["prometheus_queries"])
    for field in THRESHOLD_FLAGS:
        kind = str if field == "drift_metric" else (int if field == "min_requests" else float)
        p.add_argument(_flag(field), type=kind, default=None, help=described[field])
    p.add_argument("--json", action="store_true", help="print the analysis as JSON")
    p.set_defaults(func=_analyze)


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``rollout`` command; FlagError/KfpTabularError propagate to ``kfp-tabular``'s main."""
    return args.func(args)


def _api(args: argparse.Namespace) -> Any:
    from kfp_tabular.components.common.errors import ConfigError
    from kfp_tabular.components.deployment.kserve.client import load_api_client

    try:
        return load_api_client(args.kubeconfig or "", args.context or "")
    except ConfigError as exc:
        raise _as_flag_error(exc, {"kubeconfig_path": "--kubeconfig"}) from exc


def _status(args: argparse.Namespace) -> int:
    from kfp_tabular.components.deployment.kserve.client import require

    api = _api(args)
    try:
        obj = require(api, args.namespace, args.name)
    finally:
        api.close()
    summary = status_summary(obj)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_status(summary))
    return 0


def status_summary(obj: dict) -> dict:
    """Return what ``status`` shows of an InferenceService: split, revisions, shas, the last analysis."""
    from kfp_tabular.components.deployment.kserve.isvc import LAST_ANALYSIS_ANNOTATION, annotations_of
    from kfp_tabular.components.deployment.kserve.status import status_from_object
    from kfp_tabular.components.deployment.kserve.traffic import stable_and_canary_sha

    status = status_from_object(obj)
    stable_sha, canary_sha = stable_and_canary_sha(obj)
    recorded = annotations_of(obj).get(LAST_ANALYSIS_ANNOTATION)
    try:
        last = json.loads(recorded) if recorded else None
    except ValueError:
        last = {"unreadable": recorded}
    out = status.as_dict()
    out.update(
        stable_model_sha256=stable_sha,
        canary_model_sha256=canary_sha if status.rollout_state == "canary" else "",
        last_analysis=last,
    )
    return out


def format_status(s: dict) -> str:
    """Return the status summary as lines for a person."""
    lines = [
        f"InferenceService {s['namespace']}/{s['name']} ({s['deployment_mode']}): ready={s['ready']}, "
        f"rollout state {s['rollout_state']}, generation {s['generation']} (observed {s['observed_generation']})",
        f"  url: {s['url'] or '-'}",
    ]
    percent = s["canary_traffic_percent"]
    canary_uri = s["canary_storage_uri"] or (s["storage_uri"] if s["rollout_state"] == "canary" else "")
    stable_uri = s["previous_storage_uri"] if s["deployment_mode"] == "Knative" and canary_uri else s["storage_uri"]
    lines.append(f"  stable: {stable_uri or '-'}  sha256 {s['stable_model_sha256'] or 'not recorded'}")
    if s["rollout_state"] == "canary":
        lines.append(
            f"  canary: {canary_uri or '-'}  sha256 {s['canary_model_sha256'] or 'not recorded'}  "
            f"at {percent if percent is not None else '?'}%"
        )
    for entry in s["traffic"]:
        tag = f" tag {entry['tag']} {entry.get('url', '')}" if entry.get("tag") else ""
        latest = " (latest)" if entry.get("latestRevision") else ""
        lines.append(f"  traffic: {entry.get('revisionName')} {entry.get('percent')}%{latest}{tag}")
    for entry in s["canaries"]:
        lines.append(
            f"  canary {entry.get('name')}: ready={entry.get('ready')} at {entry.get('trafficPercent')}% of the traffic"
        )
    if s["deployment_mode"] == "Knative":
        lines.append(
            f"  revisions: latest created {s['latest_created_revision'] or '-'}, latest ready "
            f"{s['latest_ready_revision'] or '-'}, rolled out {s['latest_rolledout_revision'] or '-'} (before it "
            f"{s['previous_rolledout_revision'] or '-'})"
        )
    last = s.get("last_analysis")
    if last:
        steps = ", ".join(f"{st.get('percent')}% {st.get('verdict')}" for st in last.get("steps") or []) or "none"
        lines.append(
            f"  last analysis: {last.get('verdict')} ({last.get('strategy')}), steps {steps}: {last.get('reason')}"
        )
    else:
        lines.append("  last analysis: none recorded")
    if s["message"]:
        lines.append(f"  message: {s['message']}")
    return "\n".join(lines)


def _act(args: argparse.Namespace) -> int:
    from kfp_tabular.components.deployment.promote.core import promote
    from kfp_tabular.components.deployment.rollback.core import rollback

    action = promote if args.rollout_command == "promote" else rollback
    api = _api(args)
    try:
        status = action(args.name, args.namespace, api_client=api, timeout_seconds=args.timeout)
    finally:
        api.close()
    print(json.dumps(status.as_dict(), indent=2, default=str))
    return 0


def _selectors(args: argparse.Namespace) -> tuple[str, str, str]:
    """Return ``(what is compared, stable selector, canary selector)`` from --name or the two shas."""
    import re

    from kfp_tabular.components.deployment.rollout.kserve_backend import sha_selector

    shas = (args.stable_sha, args.canary_sha)
    if args.name and any(shas):
        raise FlagError("--name: give either --name or --stable-sha and --canary-sha, not both")
    if not args.name:
        if not all(shas):
            raise FlagError("--name: give --name (a canary in progress) or both --stable-sha and --canary-sha")
        for flag, sha in (("--stable-sha", args.stable_sha), ("--canary-sha", args.canary_sha)):
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise FlagError(f"{flag}: expected the 64 lowercase hex digits of a model file's sha256, got {sha!r}")
        return "the two models", sha_selector(args.stable_sha), sha_selector(args.canary_sha)
    from kfp_tabular.components.deployment.kserve.client import require
    from kfp_tabular.components.deployment.kserve.isvc import STATE_CANARY, rollout_state
    from kfp_tabular.components.deployment.kserve.traffic import stable_and_canary_sha

    api = _api(args)
    try:
        obj = require(api, args.namespace, args.name)
    finally:
        api.close()
    if rollout_state(obj) != STATE_CANARY:
        raise FlagError(
            f"--name: InferenceService {args.namespace}/{args.name} has no canary in progress "
            f"(state {rollout_state(obj)}); give --stable-sha and --canary-sha to compare two models"
        )
    stable, canary = stable_and_canary_sha(obj)
    if not stable or not canary:
        raise FlagError(
            f"--name: InferenceService {args.namespace}/{args.name} does not record the model sha256 of its "
            f"{'stable' if not stable else 'canary'} predictor; give --stable-sha and --canary-sha"
        )
    return f"InferenceService {args.namespace}/{args.name}", sha_selector(stable), sha_selector(canary)


def _analyze(args: argparse.Namespace) -> int:
    from kfp_tabular.components.common.errors import ConfigError
    from kfp_tabular.components.deployment.rollout.analysis import analyze
    from kfp_tabular.components.deployment.rollout.metrics import PrometheusReader, Window, templates_from_json
    from kfp_tabular.components.deployment.rollout.policy import RolloutPolicy

    flags = {field: _flag(field) for field in (*THRESHOLD_FLAGS, "prometheus_url", "prometheus_queries")}
    flags.update(step_interval_seconds="--window")
    if not args.window > 0:
        raise FlagError(f"--window: expected seconds > 0, got {args.window}")
    given = {field: getattr(args, field) for field in THRESHOLD_FLAGS if getattr(args, field) is not None}
    try:
        policy = RolloutPolicy.from_params(step_interval_seconds=args.window, **given)
        reader = PrometheusReader(args.prometheus_url, templates_from_json(args.prometheus_queries))
    except ConfigError as exc:
        raise _as_flag_error(exc, flags) from exc
    what, stable_selector, canary_selector = _selectors(args)
    now = time.time()
    window = Window(now - args.window, now)
    canary = reader.read("canary", canary_selector, window)
    stable = reader.read("stable", stable_selector, window)
    result = analyze(canary, stable, policy)
    if args.json:
        print(
            json.dumps(
                {
                    "window": {"start": window.start, "end": window.end},
                    "canary": canary.to_dict(),
                    "stable": stable.to_dict(),
                    "analysis": result.to_dict(),
                },
                indent=2,
                default=str,
            )
        )
    else:
        print(format_analysis(what, window, canary, stable, result))
    return ANALYZE_EXIT.get(result.verdict, 1)


def format_analysis(what: str, window: Any, canary: Any, stable: Any, result: Any) -> str:
    """Return one window's analysis as lines: what was read, each check, the verdict."""

    def num(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = [
        f"analysis of {what} over the last {window.seconds:g}s (changes nothing):",
        f"  canary {canary.selector}: {num(canary.requests)} requests, {num(canary.server_errors)} 5xx, "
        f"p99 {num(canary.p99_seconds)}s",
        f"  stable {stable.selector}: {num(stable.requests)} requests, {num(stable.server_errors)} 5xx, "
        f"p99 {num(stable.p99_seconds)}s",
    ]
    for check in result.checks:
        mark = {True: "pass", False: "FAIL", None: "n/a"}.get(check.passed, str(check.passed))
        note = f"  ({check.note})" if check.note else ""
        lines.append(
            f"  {mark:<4} {check.name}: canary {num(check.canary)}, stable {num(check.stable)}, threshold "
            f"{num(check.threshold)}{note}"
        )
    lines.append(f"verdict: {result.verdict}: {result.reason}")
    return "\n".join(lines)
