"""KFP component: deploy a blessed model as a KServe InferenceService (render the manifest, or apply it)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.common.params import document
from kfp_tabular.components.deployment.deploy.request import DeployRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@document(DeployRequest)
def deploy_model(
    model: Input[Model],
    blessing: Input[Artifact],
    train_data: Input[Dataset],
    train_statistics: Input[Artifact],
    schema: Input[Artifact],
    manifest: Output[Artifact],
    status: Output[Artifact],
    analysis: Output[Artifact],
    analysis_report: Output[Markdown],
    lineage: Output[Artifact],
    model_card: Output[Markdown],
    model_card_html: Output[HTML],
    isvc_name: str = "churn-classifier",
    namespace: str = "kfp-tabular",
    action: str = "render",
    canary_traffic_percent: int = 10,
    deployment_mode: str = "Knative",
    storage_uri: str = "",
    runtime: str = "",
    service_account_name: str = "",
    kubeconfig_path: str = "",
    timeout_seconds: int = 600,
    publish_uri: str = "",
    s3_endpoint_url: str = "",
    pvc_mount_root: str = "",
    rollout_strategy: str = "canary",
    rollout_steps: str = "10,25,50,100",
    step_interval_seconds: float = 60.0,
    min_requests: int = 50,
    max_inconclusive: int = 3,
    failure_limit: int = 0,
    min_success_rate: float = 0.99,
    max_p99_seconds: float = 1.0,
    max_p99_ratio: float = 2.0,
    max_prediction_drift: float = 0.1,
    drift_metric: str = "js",
    prometheus_url: str = "",
    prometheus_queries: str = "",
    payload_logger_mode: str = "",
    payload_logger_url: str = "",
    run_id: str = "",
    run_name: str = "",
    pipeline_name: str = "",
) -> NamedTuple("Outputs", [("deployed", bool), ("reason", str), ("url", str)]):
    """Gate on the blessing, then render or apply the InferenceService that serves the model.

    A model that is not blessed changes nothing: the manifest holds only a comment and ``deployed`` is False
    with the evaluator's reasons; a blessing about another model (its ``model_sha256`` differs) fails the task.
    On an existing InferenceService, apply rolls the model out as ``rollout_strategy`` says: ``canary`` walks
    ``rollout_steps``, each step judged over ``step_interval_seconds`` on live Prometheus metrics of canary
    against stable (success rate, p99 latency, prediction drift), and promotes after the last, or rolls back at
    once and fails the task with the numbers that failed; ``blue-green`` judges the model at 0% on its own URL,
    then gives it 100%; ``manual`` leaves it at ``canary_traffic_percent``. A first deployment takes 100% with
    no analysis. Side effects on a cluster: disable caching on this task (``task.set_caching_options(False)``).

    Args:
        model: The trained model directory (``model.joblib`` + ``metadata.json``).
        blessing: The evaluator's blessing JSON; it must be about this model.
        train_data: The train split the model was fit on (its URI goes in the lineage record).
        train_statistics: Validate's TFDV statistics of the train split (its URI goes in the lineage record: the
            monitor compares served traffic with them).
        schema: Validate's TFDV schema (its URI goes in the lineage record; its features in the model card).
        manifest: The InferenceService YAML that was rendered or applied.
        status: JSON: ``deployed``, ``reason``, and for apply the rollout status (revisions, traffic, url).
        analysis: JSON: the rollout's strategy, verdict and reason, and each step's window, canary and stable
            measurements, thresholds and checks (no steps when no analysis ran, e.g. a first deployment).
        analysis_report: The same as Markdown, rendered by the KFP UI.
        lineage: The model's lineage record JSON (``common.lineage``): model sha256, training data URI and hash,
            statistics, schema, blessing, metrics, baseline, evaluation prediction distribution, run. The
            predictor's ``kfp-tabular.dev/lineage-uri`` annotation names it (or its copy beside a published model).
        model_card: The model card (Markdown): where it serves, data, schema, metrics against thresholds,
            blessing, baseline, prediction distribution, run.
        model_card_html: The same card as one self-contained HTML page.

    Returns:
        deployed: True when apply left the model deployed (created, canaried, or already there).
        reason: What happened, or why nothing did.
        url: The InferenceService URL after apply, else empty.
    """
    from collections import namedtuple

    from kfp_tabular.components.deployment.deploy.core import deploy_action
    from kfp_tabular.components.deployment.deploy.lineage_step import LineageInputs
    from kfp_tabular.components.deployment.deploy.request import DeployRequest

    request = DeployRequest(
        isvc_name=isvc_name,
        namespace=namespace,
        action=action,
        canary_traffic_percent=canary_traffic_percent,
        deployment_mode=deployment_mode,
        storage_uri=storage_uri,
        runtime=runtime,
        service_account_name=service_account_name,
        kubeconfig_path=kubeconfig_path,
        timeout_seconds=timeout_seconds,
        publish_uri=publish_uri,
        s3_endpoint_url=s3_endpoint_url,
        pvc_mount_root=pvc_mount_root,
        rollout_strategy=rollout_strategy,
        rollout_steps=rollout_steps,
        step_interval_seconds=step_interval_seconds,
        min_requests=min_requests,
        max_inconclusive=max_inconclusive,
        failure_limit=failure_limit,
        min_success_rate=min_success_rate,
        max_p99_seconds=max_p99_seconds,
        max_p99_ratio=max_p99_ratio,
        max_prediction_drift=max_prediction_drift,
        drift_metric=drift_metric,
        prometheus_url=prometheus_url,
        prometheus_queries=prometheus_queries,
        payload_logger_mode=payload_logger_mode,
        payload_logger_url=payload_logger_url,
        run_id=run_id,
        run_name=run_name,
        pipeline_name=pipeline_name,
    )
    result = deploy_action(
        request,
        blessing_path=blessing.path,
        model_uri=model.uri,
        manifest_path=manifest.path,
        status_path=status.path,
        model_path=model.path,
        analysis_path=analysis.path,
        analysis_report_path=analysis_report.path,
        lineage_inputs=LineageInputs(
            statistics_uri=train_statistics.uri,
            schema_uri=schema.uri,
            training_data_uri=train_data.uri,
            lineage_path=lineage.path,
            lineage_uri=lineage.uri,
            schema_path=schema.path,
            model_card_path=model_card.path,
            model_card_html_path=model_card_html.path,
        ),
    )
    for artifact in (manifest, status, analysis, analysis_report, lineage, model_card, model_card_html):
        artifact.metadata.update(
            {
                "action": action,
                "deployed": result["deployed"],
                "isvc_name": isvc_name,
                "namespace": namespace,
                "storage_uri": result.get("storage_uri", ""),
            }
        )
    manifest.metadata["format"] = "yaml"
    lineage.metadata.update({"run_id": run_id, "lineage_uri": result.get("lineage_uri", lineage.uri)})
    from kfp_tabular.components.common.decisions import METADATA_KEY, Decision, to_metadata

    verdict = result.get("analysis") or {}
    decisions = []
    if verdict.get("verdict") not in ("", "rendered", "not-deployed"):
        # What the rollout decided for the user (promoted, rolled back, 100% with no analysis, ...).
        decisions.append(Decision("deploy", "rollout_strategy", verdict["verdict"], str(verdict.get("reason", ""))))
    for artifact in (analysis, analysis_report):
        artifact.metadata.update(
            {
                "strategy": verdict.get("strategy", ""),
                "verdict": verdict.get("verdict", ""),
                "steps": verdict.get("steps", 0),
                METADATA_KEY: to_metadata(decisions),
            }
        )
    outputs = namedtuple("Outputs", ["deployed", "reason", "url"])
    return outputs(bool(result["deployed"]), str(result["reason"]), str(result.get("url") or ""))
