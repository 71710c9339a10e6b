"""Deploy a blessed model as a KServe InferenceService: the gate, then render or apply (canary, wait, roll back).

Plain Python, no KFP import: the deploy component and the CLI call the same code. The KServe package
(``components/deployment/kserve``) holds the InferenceService logic; this module decides and orchestrates:

* :func:`gate`: the evaluator's blessing must bless *this* model (its ``model_sha256`` is checked against the
  model file about to be deployed, as TFX's Pusher ties a blessing to its model).
* :func:`deploy`: create the InferenceService, or canary the new model on the existing one; wait for the
  revision this write created; on a failure or timeout roll back so all traffic stays on what served before.
* :func:`deploy_action`: what the component runs: gate, publish, render or apply, and write the manifest and
  status files (nothing is written to the cluster for a model that is not blessed).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kfp_tabular.components.common import artifacts, blessing, model_dir
from kfp_tabular.components.common.errors import ConfigError, DataError, DeployError
from kfp_tabular.components.deployment.deploy.request import DeployRequest
from kfp_tabular.components.deployment.kserve.client import (
    api_session,
    get,
    load_api_client,
    merge_patch,
    require,
    write_planned,
)
from kfp_tabular.components.deployment.kserve.isvc import (
    KNATIVE,
    LAST_ANALYSIS_ANNOTATION,
    MODEL_SHA_ANNOTATION,
    PREVIOUS_URI_ANNOTATION,
    STATE_CANARY,
    annotations_of,
)
from kfp_tabular.components.deployment.kserve.manifest import (
    RENDER_OPTIONS,
    model_storage_uri,
    render,
    strip_server_fields,
    to_yaml,
)
from kfp_tabular.components.deployment.kserve.plans import Plan, deploy_plan
from kfp_tabular.components.deployment.kserve.publish import publish_versioned
from kfp_tabular.components.deployment.kserve.request import ServiceRequest
from kfp_tabular.components.deployment.kserve.rollback import apply_rollback
from kfp_tabular.components.deployment.kserve.status import DeployStatus, get_status, status_from_object
from kfp_tabular.components.deployment.kserve.wait import wait_for


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """Whether a model may be deployed, and why (the evaluator's reasons).

    Attributes:
        blessed: The blessing blesses this model.
        reason: The evaluator's verdict in one line.
        files: Relative path -> sha256 of every file of the model directory (``model_dir.manifest``), hashed
            once here and reused to publish the model.
    """

    blessed: bool
    reason: str
    files: dict = dataclasses.field(default_factory=dict, compare=False)


def gate(blessing_path: str, model_path: str) -> GateDecision:
    """Read the evaluator's blessing and decide whether the model at ``model_path`` may be deployed.

    Args:
        blessing_path: The blessing JSON (``common.blessing``).
        model_path: The model directory about to be deployed: it must keep the model-directory contract
            (``model_dir.manifest``) and its model file must hash to the blessing's ``model_sha256``.

    Raises:
        DataError: The blessing is missing or malformed, it is about another model, or the model directory
            breaks its contract (nothing is deployed).
    """
    verdict = blessing.read(blessing_path)
    files = model_dir.manifest(model_path)
    mismatch = verdict.mismatch(files[model_dir.MODEL_FILE])
    if mismatch:
        raise DataError(f"{blessing_path}: {mismatch}; nothing was deployed")
    return GateDecision(verdict.blessed, verdict.reason, files)


def deploy(
    name: str,
    namespace: str,
    storage_uri: str,
    canary_traffic_percent: int | None = 10,
    deployment_mode: str = "Knative",
    timeout_seconds: float = 600,
    api_client: Any = None,
    **render_options: Any,
) -> DeployStatus:
    """Deploy a model: create the InferenceService, or canary the new model on the existing one.

    * Absent: created with the model taking 100% of the traffic (a canary needs a previous model).
    * Already moving to the same model with the same settings: nothing is written ("unchanged"); the call
      still waits for that state to be ready. If that model is a canary and another percent is asked for,
      only the split changes (Knative ``canaryTrafficPercent``, Standard the canary's ``trafficPercent``);
      None or 100 rolls the canary out fully.
    * Otherwise: the predictor's model is patched. Knative mode with ``canary_traffic_percent`` N < 100 sets
      ``canaryTrafficPercent: N``; Standard mode writes one ``spec.canary[]`` entry when the CRD has that
      field (else ConfigError); None or 100 rolls the model out fully. The previous storageUri and the whole
      previous predictor (JSON) are recorded in the ``kfp-tabular.dev/previous-storage-uri`` and
      ``kfp-tabular.dev/previous-predictor`` annotations.

    Every patch carries the ``metadata.resourceVersion`` it was planned from, so a concurrent writer makes
    the API server answer 409: the object is re-read and the write planned again once, then the call fails.

    The call then waits until ``status.observedGeneration`` reaches the generation the write returned, Ready
    is True and the traffic shows the intended split; a failure ``status`` reported before the write does
    not count. On a reported failure or a timeout it rolls back (the previous predictor restored and all
    traffic on the previously rolled-out revision) and raises DeployError saying what it waited for and what
    status said.

    Args:
        name: InferenceService name (DNS-1035 label).
        namespace: Namespace.
        storage_uri: The model's storageUri (``s3://``, ``gs://``, ``pvc://``, ``https://``, ``hdfs://``).
        canary_traffic_percent: Percent of traffic for the new model, or None/100 for a full rollout.
        deployment_mode: Knative or Standard (aliases Serverless, RawDeployment).
        timeout_seconds: How long to wait for the controller (and again for a rollback).
        api_client: A ``kubernetes.client.ApiClient``; default :func:`load_api_client`.
        **render_options: ``runtime``, ``service_account_name``, ``protocol_version``, ``resources``,
            ``labels``, ``annotations`` (see ``kserve.request.ServiceRequest``). An empty ``runtime`` or
            ``service_account_name`` keeps the existing service's value.

    Returns:
        The :class:`DeployStatus` once the rollout is where it should be.

    Raises:
        ConfigError: Invalid parameters, a mode change, or a Standard canary the cluster cannot do.
        DeployError: The rollout failed or timed out (after rolling back), a concurrent writer won twice, or
            the API refused a call.
    """
    unknown = sorted(set(render_options) - set(RENDER_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)}: unknown deploy option(s); expected some of {', '.join(RENDER_OPTIONS)}"
        )
    request = ServiceRequest(
        name, namespace, storage_uri, canary_traffic_percent, deployment_mode, timeout_seconds, **render_options
    )
    desired = render(dataclasses.replace(request, canary_traffic_percent=None))
    api = api_client or load_api_client()

    def planner(existing: dict | None) -> Plan:
        return deploy_plan(api, existing, request, desired)

    what = f"deploying {storage_uri} to {namespace}/{name}"
    timeout = request.timeout_seconds
    existing, plan, written = write_planned(api, namespace, name, get(api, namespace, name), planner, what)
    if written is None:
        assert existing is not None
        waited = wait_for(api, namespace, name, plan.expect(0), timeout)
        if not waited.ok:
            raise DeployError(
                f"InferenceService {namespace}/{name} already specifies {storage_uri} but is not ready: "
                f"{waited.message}; nothing was changed"
            )
        return status_from_object(waited.obj, "unchanged", plan.note)
    waited = wait_for(api, namespace, name, plan.expect(int(written["metadata"]["generation"])), timeout)
    if waited.ok:
        return status_from_object(waited.obj, plan.action, plan.note)
    if plan.kind == "create":
        raise DeployError(
            f"first deployment of {storage_uri} did not become ready: {waited.message}. There is no previous model "
            f"to roll back to: InferenceService {namespace}/{name} exists but serves nothing; fix the model or "
            "runtime and deploy again"
        )
    stable_uri = plan.stable_uri or annotations_of(written).get(PREVIOUS_URI_ANNOTATION, "") or "the previous model"
    current = get(api, namespace, name) or written
    outcome = apply_rollback(api, current, timeout, unwritten="the rollback was not written")
    if not outcome.ok:
        raise DeployError(
            f"{what} failed: {waited.message}. The rollback to {stable_uri} was attempted but did not complete: "
            f"{outcome.message or outcome.note}"
        )
    raise DeployError(f"{what} failed: {waited.message}. Rolled back: {outcome.note}")


def _render_result(
    request: DeployRequest, uri: str, base: dict, model_sha256: str = "", lineage_uri: str = ""
) -> tuple[dict, dict]:
    """Render the manifest for ``action=render``; return (manifest, status)."""
    percent = request.first_percent()
    manifest = render(
        ServiceRequest(
            request.isvc_name,
            request.namespace,
            uri,
            canary_traffic_percent=percent
            if request.deployment_mode == KNATIVE and percent is not None and percent < 100
            else None,
            deployment_mode=request.deployment_mode,
            runtime=request.runtime,
            service_account_name=request.service_account_name,
            allow_local=True,
            model_sha256=model_sha256,
            **_predictor_options(request, lineage_uri),
        )
    )
    local = uri.startswith("file://")
    notes = [
        "canaryTrafficPercent only splits traffic on an existing InferenceService; a first deployment takes 100%"
        if request.deployment_mode == KNATIVE
        else "Standard mode: deploy (action=apply) writes the spec.canary[] entry; this manifest has none"
    ]
    if local:
        notes.append(
            "storageUri is a local file:// path (local run): not deployable to a cluster until the model is "
            "published (publish_model to s3:// or pvc://) and passed as storage_uri"
        )
    status = {
        **base,
        "deployed": False,
        "reason": "rendered (action=render)",
        "url": "",
        "storage_uri": uri,
        "deployable": not local,
        "deployment_mode": request.deployment_mode,
        "notes": notes,
    }
    return manifest, status


def _predictor_options(request: DeployRequest, lineage_uri: str) -> dict:
    """Return the predictor's run-id and lineage-uri annotations and payload logger, as render/deploy options."""
    return {
        "run_id": request.run_id,
        "lineage_uri": lineage_uri,
        "payload_logger_mode": request.payload_logger_mode,
        "payload_logger_url": request.payload_logger_url,
    }


def no_rollout(strategy: str, verdict: str, reason: str) -> Any:
    """Return the analysis record of a deploy that judged no window (first deployment, manual, render, ...)."""
    from kfp_tabular.components.deployment.rollout.engine import RolloutOutcome

    return RolloutOutcome(strategy=strategy, verdict=verdict, reason=reason, steps=[])


def write_record(outcome: Any, analysis_path: str, report_path: str) -> dict:
    """Write the outcome as the analysis JSON and its Markdown (``rollout.record``); return the JSON."""
    if not analysis_path and not report_path:
        return outcome.to_dict()
    from kfp_tabular.components.deployment.rollout.record import write_analysis

    return write_analysis(outcome, analysis_path, report_path)


def failed_numbers(outcome: Any) -> str:
    """Return the checks that failed in the outcome's last judged step, with their numbers, in one line ("" if none)."""
    for step in reversed(getattr(outcome, "steps", []) or []):
        analysis = getattr(step, "analysis", None)
        failed = [c for c in getattr(analysis, "checks", []) or [] if c.passed is False]
        if failed:
            parts = []
            for check in failed:
                note = f" ({check.note})" if getattr(check, "note", "") else ""
                parts.append(
                    f"{check.name}: canary {_num(check.canary)} vs stable {_num(check.stable)}, threshold "
                    f"{_num(check.threshold)}{note}"
                )
            return f"step {step.index} at {step.percent}%: " + "; ".join(parts)
    return ""


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def rollout(
    request: DeployRequest,
    storage_uri: str,
    model_sha256: str,
    api: Any,
    log: Any = print,
    reader: Any = None,
    engine_options: dict | None = None,
    lineage_uri: str = "",
) -> tuple[DeployStatus, Any]:
    """Deploy ``storage_uri`` as the request's strategy says; return its status and the analysis record.

    * No InferenceService yet: created with the model taking 100%, no analysis (nothing to compare with).
    * ``manual``: the model at ``canary_traffic_percent`` (today's behaviour), a person promotes or rolls back.
    * ``canary`` / ``blue-green``: the model is written at the first step (blue-green: 0% on its own URL), then
      the rollout engine (``rollout.engine.run_rollout``) walks the steps over a
      :class:`~kfp_tabular.components.deployment.rollout.kserve_backend.KServeTrafficBackend`, reading both
      models' metrics from Prometheus, and promotes, or rolls back at once.

    Args:
        request: The checked parameters (action=apply).
        storage_uri: The model's storageUri.
        model_sha256: sha256 of the model file (its metrics' ``model_sha256`` label).
        api: A Kubernetes ApiClient.
        log: Receives one line per step.
        reader: A ``PrometheusReader`` (default: one for ``request.prometheus_url``).
        engine_options: More keyword arguments of ``run_rollout`` (``settle_seconds``, ``sleep``, ``clock``).
        lineage_uri: The model's lineage record (the predictor's ``kfp-tabular.dev/lineage-uri`` annotation).

    Returns:
        ``(DeployStatus after the rollout, RolloutOutcome or a no_rollout dict)``.

    Raises:
        ConfigError: The existing service records no model sha256 for its stable model (nothing written).
        DeployError: A write or wait failed (after the rollback), or Prometheus could not be read (after the
            rollback).
    """
    from kfp_tabular.components.deployment.kserve.traffic import stable_and_canary_sha

    name, namespace, strategy = request.isvc_name, request.namespace, request.rollout_strategy
    options = {
        "deployment_mode": request.deployment_mode,
        "timeout_seconds": request.timeout_seconds,
        "api_client": api,
        "runtime": request.runtime,
        "service_account_name": request.service_account_name,
        "model_sha256": model_sha256,
        **_predictor_options(request, lineage_uri),
    }
    existing = get(api, namespace, name)
    if existing is None:
        status = deploy(name, namespace, storage_uri, canary_traffic_percent=None, **options)
        why = (
            f"InferenceService {namespace}/{name} did not exist: created with the model taking 100% of the traffic, "
            "no analysis (there is no stable model to compare with)"
        )
        return status, no_rollout(strategy, "first-deployment", why)
    if strategy == "manual":
        status = deploy(name, namespace, storage_uri, canary_traffic_percent=request.canary_traffic_percent, **options)
        why = f"{status.message}; a person promotes or rolls back (kfp-tabular rollout promote|rollback)"
        return status, no_rollout(strategy, "manual", why)
    stable_sha, canary_sha = stable_and_canary_sha(existing)
    if stable_sha == model_sha256:
        status = deploy(name, namespace, storage_uri, canary_traffic_percent=None, **options)
        return status, no_rollout(strategy, "unchanged", f"{storage_uri} is the stable model already: {status.message}")
    if not stable_sha:
        raise ConfigError(
            f"rollout_strategy: InferenceService {namespace}/{name}'s stable predictor records no "
            f"{MODEL_SHA_ANNOTATION} annotation (deployed by an older version or kubectl), so its metrics cannot be "
            "told apart from the candidate's; nothing was changed. Deploy this model with rollout_strategy=manual "
            "and promote it: deploys after that record the sha and can be canaried"
        )
    policy = request.policy()
    from kfp_tabular.components.deployment.rollout.engine import run_rollout
    from kfp_tabular.components.deployment.rollout.kserve_backend import KServeTrafficBackend
    from kfp_tabular.components.deployment.rollout.metrics import PrometheusReader

    if reader is None:
        reader = PrometheusReader(request.prometheus_url, request.query_templates())
    status = deploy(name, namespace, storage_uri, canary_traffic_percent=request.first_percent(), **options)
    if status.action not in ("canary", "unchanged") or status.rollout_state != STATE_CANARY:
        why = f"{status.message} (no canary was possible, so no analysis)"
        return status, no_rollout(strategy, status.action, why)
    backend = KServeTrafficBackend(
        api,
        namespace,
        name,
        stable_sha256=stable_sha,
        canary_sha256=model_sha256,
        timeout_seconds=request.timeout_seconds,
        select_by="revision" if request.selects_revisions() else "sha",
        log=log,
    )
    log(
        f"rollout ({strategy}) of {storage_uri} on {backend.description}: {backend.canary_selector} against "
        f"{backend.stable_selector}, Prometheus {request.prometheus_url}"
    )
    outcome = run_rollout(backend, reader, policy, log=log, **(engine_options or {}))
    record_last_analysis(api, namespace, name, outcome)
    return get_status(name, namespace, api_client=api), outcome


def record_last_analysis(api: Any, namespace: str, name: str, outcome: Any) -> None:
    """Write the outcome in brief on the InferenceService (``kfp-tabular.dev/last-analysis``), for status.

    An annotation-only merge patch: it changes no spec (no new generation, no revision) and cannot undo
    another writer's spec change, so it carries no resourceVersion guard.
    """
    import json

    brief = {
        "strategy": outcome.strategy,
        "verdict": outcome.verdict,
        "reason": str(outcome.reason)[:2000],
        "finished_at": outcome.finished_at,
        "steps": [{"percent": s.percent, "verdict": s.analysis.verdict} for s in outcome.steps],
    }
    text = json.dumps(brief, separators=(",", ":"), default=str)
    merge_patch(api, namespace, name, {"metadata": {"annotations": {LAST_ANALYSIS_ANNOTATION: text}}})


def deploy_action(
    request: DeployRequest,
    *,
    blessing_path: str,
    model_uri: str,
    manifest_path: str,
    status_path: str,
    model_path: str = "",
    api_client: Any = None,
    analysis_path: str = "",
    analysis_report_path: str = "",
    reader: Any = None,
    log: Any = print,
    engine_options: dict | None = None,
    lineage_inputs: Any = None,
) -> dict:
    """Run the deploy component's logic: gate, then render or apply; write the manifest, status and analysis.

    Args:
        request: The checked parameters.
        blessing_path: The evaluator's blessing JSON.
        model_uri: The Model artifact's URI (``minio://...``, ``s3://...``, or a local path under kfp.local).
        manifest_path: Where to write the rendered/applied InferenceService YAML.
        status_path: Where to write the status JSON.
        model_path: The model directory on this machine (the artifact's local path); default ``model_uri``.
        api_client: Use this client instead of loading one (tests, CLI).
        analysis_path: Where to write the rollout's analysis JSON ("" : not written).
        analysis_report_path: Where to write its Markdown ("" : not written).
        reader: A ``PrometheusReader`` to use instead of one for ``request.prometheus_url`` (tests).
        log: Receives the rollout's lines (one per step).
        engine_options: More keyword arguments of ``run_rollout`` (tests: ``settle_seconds``).
        lineage_inputs: A ``deploy.lineage_step.LineageInputs``: build the model's lineage record, write it and
            the model card, publish it beside a published model, and annotate the predictor with its URI and
            the run id (None: none of that, the predictor carries only the model sha256).

    Returns:
        ``{"deployed": bool, "reason": str, "url": str, "analysis": {strategy, verdict, reason, steps}, ...}``,
        the dict written to ``status_path``.

    Raises:
        ConfigError, DataError: Bad parameters, blessing, or a blessing about another model (nothing written).
        DeployError: The deployment failed, or its analysis did, and was rolled back (status and analysis
            written, the message has the numbers that failed).
    """
    local_model = model_path or model_uri
    decision = gate(blessing_path, local_model)
    base = {
        "action": request.action,
        "isvc_name": request.isvc_name,
        "namespace": request.namespace,
        "blessed": decision.blessed,
        "gate": decision.reason,
    }
    strategy = request.rollout_strategy
    if not decision.blessed:
        _lineage(request, lineage_inputs, blessing_path, local_model, model_uri, "", note=decision.reason)
        record = write_record(
            no_rollout(strategy, "not-deployed", decision.reason), analysis_path, analysis_report_path
        )
        result = {**base, "deployed": False, "reason": decision.reason, "url": "", "analysis": _brief(record)}
        artifacts.write_text(manifest_path, f"# Nothing rendered or applied: {decision.reason}\n")
        artifacts.write_json(status_path, result)
        return result
    storage_uri = request.storage_uri
    if request.publish_uri:
        storage_uri = publish_versioned(
            local_model,
            request.publish_uri,
            files=decision.files,
            s3_endpoint_url=request.s3_endpoint_url,
            pvc_mount_root=request.pvc_mount_root,
        )
        base["published_to"] = storage_uri
    sha = decision.files[model_dir.MODEL_FILE]
    if request.action == "render":
        rendered_uri = storage_uri or model_storage_uri(model_uri, allow_local=True)
        lineage_uri = _lineage(
            request,
            lineage_inputs,
            blessing_path,
            local_model,
            model_uri,
            rendered_uri,
            note="rendered only (action=render): not serving yet",
        )
        manifest, result = _render_result(request, rendered_uri, base, sha, lineage_uri)
        if lineage_uri:
            result["lineage_uri"] = lineage_uri
        why = f"rendered only (action=render); apply would roll out with strategy {strategy}"
        record = write_record(no_rollout(strategy, "rendered", why), analysis_path, analysis_report_path)
        result["analysis"] = _brief(record)
        artifacts.write_text(manifest_path, to_yaml(manifest))
        artifacts.write_json(status_path, result)
        return result

    uri = storage_uri or model_storage_uri(model_uri)
    lineage_uri = _lineage(request, lineage_inputs, blessing_path, local_model, model_uri, uri)
    if lineage_uri:
        base["lineage_uri"] = lineage_uri
    with api_session(request.kubeconfig_path, api_client) as api:
        try:
            status, record = rollout(
                request, uri, sha, api, log=log, reader=reader, engine_options=engine_options, lineage_uri=lineage_uri
            )
            obj = require(api, request.namespace, request.isvc_name)
        except DeployError as exc:
            record = write_record(no_rollout(strategy, "failed", str(exc)), analysis_path, analysis_report_path)
            failed = {**base, "deployed": False, "reason": str(exc), "url": "", "storage_uri": uri}
            artifacts.write_json(status_path, {**failed, "analysis": _brief(record)})
            raise
    written = write_record(record, analysis_path, analysis_report_path)
    verdict = written.get("verdict", "")
    result = {
        **status.as_dict(),
        **base,
        "rollout": status.action,
        "analysis": _brief(written),
        "deployed": verdict not in ("rolled_back",),
        "reason": f"{status.action}: {status.message}" if verdict != "rolled_back" else str(written.get("reason")),
    }
    artifacts.write_text(manifest_path, to_yaml(strip_server_fields(obj)))
    artifacts.write_json(status_path, result)
    if verdict == "rolled_back":
        numbers = failed_numbers(record)
        raise DeployError(
            f"rollout of {uri} to {request.namespace}/{request.isvc_name} rolled back: {written.get('reason')}"
            + (f" ({numbers})" if numbers and numbers not in str(written.get("reason")) else "")
            + f"; all traffic is on the stable model again ({status.storage_uri})"
        )
    return result


def _lineage(
    request: DeployRequest,
    inputs: Any,
    blessing_path: str,
    model_path: str,
    model_uri: str,
    storage_uri: str,
    note: str = "",
) -> str:
    """Build and write the model's lineage record and card (``deploy.lineage_step``); return the record's URI.

    The URI is where the record stays readable: beside the published model when ``publish_uri`` is set (and a
    model was published: ``storage_uri`` given), else the lineage artifact's URI. "" when ``inputs`` is None.
    """
    if inputs is None:
        return ""
    from kfp_tabular.components.common.model_card import Serving
    from kfp_tabular.components.deployment.deploy import lineage_step

    run = {"id": request.run_id, "name": request.run_name, "pipeline": request.pipeline_name}
    record = lineage_step.build_record(
        inputs,
        blessing_path=blessing_path,
        model_path=model_path,
        model_uri=model_uri,
        run=run,
        storage_uri=storage_uri,
    )
    where = inputs.lineage_uri or inputs.lineage_path
    if request.publish_uri and storage_uri:
        where = lineage_step.publish_record(
            record,
            request.publish_uri,
            s3_endpoint_url=request.s3_endpoint_url,
            pvc_mount_root=request.pvc_mount_root,
        )
    serving = Serving(
        request.isvc_name if storage_uri else "", request.namespace if storage_uri else "", storage_uri, note=note
    )
    lineage_step.write_outputs(record, inputs, serving, model_dir.read_metadata(model_path))
    return where


def _brief(record: dict) -> dict:
    """Return the rollout's verdict for the status JSON (the analysis artifact has the steps)."""
    return {
        "strategy": record.get("strategy", ""),
        "verdict": record.get("verdict", ""),
        "reason": record.get("reason", ""),
        "steps": len(record.get("steps") or []),
    }
