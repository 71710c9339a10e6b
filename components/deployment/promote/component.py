"""KFP component: promote the KServe canary so the latest model takes all the traffic."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def promote_model(
    isvc_name: str,
    namespace: str,
    status: Output[Artifact],
    kubeconfig_path: str = "",
    timeout_seconds: int = 600,
):
    """Promote the canary of an InferenceService and wait until the latest revision has 100% of the traffic.

    Knative mode removes ``canaryTrafficPercent`` (JSON merge patch); Standard mode makes the canary entry the
    predictor. Only a ready canary is promoted (otherwise the task fails and nothing is written). With no
    canary in progress nothing changes. Disable caching on this task (``.set_caching_options(False)``): a
    cached run would report success without touching the cluster.

    Args:
        isvc_name: InferenceService name.
        namespace: Its namespace.
        status: JSON: the rollout status after promotion (url, revisions, traffic, storage URI).
        kubeconfig_path: Kubeconfig; empty: the pod's service account (in-cluster).
        timeout_seconds: How long to wait for KServe to report the promotion.
    """
    from kfp_tabular.components.deployment.deploy.core import lifecycle_action

    result = lifecycle_action(
        action="promote",
        isvc_name=isvc_name,
        namespace=namespace,
        status_path=status.path,
        kubeconfig_path=kubeconfig_path,
        timeout_seconds=timeout_seconds,
    )
    status.metadata.update(
        {
            "action": result["action"],
            "storage_uri": result["storage_uri"],
            "url": result["url"],
            "ready": result["ready"],
        }
    )
