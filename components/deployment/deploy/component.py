"""KFP component: deploy a blessed model as a KServe InferenceService (render the manifest, or apply it)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.common.params import document
from kfp_tabular.components.deployment.deploy.request import DeployRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@document(DeployRequest)
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
    with the evaluator's reasons; a blessing about another model (its ``model_sha256`` differs) fails the task.
    Side effects on a cluster: disable caching on this task (``task.set_caching_options(False)``).

    Args:
        model: The trained model directory (``model.joblib`` + ``metadata.json``).
        blessing: The evaluator's blessing JSON; it must be about this model.
        manifest: The InferenceService YAML that was rendered or applied.
        status: JSON: ``deployed``, ``reason``, and for apply the rollout status (revisions, traffic, url).

    Returns:
        deployed: True when apply left the model deployed (created, canaried, or already there).
        reason: What happened, or why nothing did.
        url: The InferenceService URL after apply, else empty.
    """
    from collections import namedtuple

    from kfp_tabular.components.deployment.deploy.core import deploy_action
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
    )
    result = deploy_action(
        request,
        blessing_path=blessing.path,
        model_uri=model.uri,
        manifest_path=manifest.path,
        status_path=status.path,
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
