"""KFP component: deploy a blessed model as a KServe InferenceService (render the manifest, or apply it)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def deploy_model(
    model: Input[Model],
    blessing: Input[Artifact],
    manifest: Output[Artifact],
    status: Output[Artifact],
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
) -> NamedTuple("Outputs", [("deployed", bool), ("reason", str), ("url", str)]):
    """Gate on the blessing, then render or apply the InferenceService that serves the model.

    A model that is not blessed changes nothing: the manifest holds only a comment and ``deployed`` is False
    with the evaluator's reasons. Side effects on a cluster: disable caching on this task
    (``task.set_caching_options(False)``).

    Args:
        model: The trained model directory (``model.joblib`` + ``metadata.json``).
        blessing: The evaluator's blessing JSON.
        manifest: The InferenceService YAML that was rendered or applied.
        status: JSON: ``deployed``, ``reason``, and for apply the rollout status (revisions, traffic, url).
        isvc_name: InferenceService name (DNS-1035 label).
        namespace: Namespace of the InferenceService.
        action: ``render`` (write the manifest only, no cluster) or ``apply`` (create, or canary the model
            on the existing service, wait for KServe, roll back on failure).
        canary_traffic_percent: Traffic percent for a new model on an existing service; 100 for a full
            rollout. A first deployment always takes 100%.
        deployment_mode: ``Knative`` (canaryTrafficPercent) or ``Standard`` (spec.canary[], KServe 0.20+).
        storage_uri: The model's storageUri if it was published elsewhere; default derived from the model's
            URI (``minio://`` becomes ``s3://``). A local model (kfp.local) renders as ``file://`` only.
        runtime: ServingRuntime name (e.g. ``kfp-tabular-sklearn``); empty for KServe's stock sklearn runtime.
        service_account_name: Service account whose secret lets KServe read the model storage.
        kubeconfig_path: Kubeconfig for apply; empty: the pod's service account (in-cluster).
        timeout_seconds: How long apply waits for KServe (and again for a rollback).
        publish_uri: ``s3://bucket/prefix`` (MinIO too) or ``pvc://claim/path``: copy a blessed model to
            ``<publish_uri>/<sha256 prefix>`` (checksummed, immutable) and serve it from there. S3 credentials
            come from the pod's environment (e.g. the storage Secret as env vars via kfp-kubernetes).
        s3_endpoint_url: S3-compatible endpoint for publishing (MinIO); default from the environment.
        pvc_mount_root: Where the ``pvc://`` claim is mounted in this pod (``kubernetes.mount_pvc``).

    Returns:
        deployed: True when apply left the model deployed (created, canaried, or already there).
        reason: What happened, or why nothing did.
        url: The InferenceService URL after apply, else empty.
    """
    from collections import namedtuple

    from kfp_tabular.components.deployment.deploy.core import deploy_action

    result = deploy_action(
        action=action,
        blessing_path=blessing.path,
        model_uri=model.uri,
        manifest_path=manifest.path,
        status_path=status.path,
        isvc_name=isvc_name,
        namespace=namespace,
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
        model_path=model.path,
    )
    for artifact in (manifest, status):
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
    outputs = namedtuple("Outputs", ["deployed", "reason", "url"])
    return outputs(bool(result["deployed"]), str(result["reason"]), str(result.get("url") or ""))
