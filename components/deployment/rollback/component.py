"""KFP component: roll a KServe InferenceService back to the previous model."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def rollback_model(
    isvc_name: str,
    namespace: str,
    status: Output[Artifact],
    kubeconfig_path: str = "",
    timeout_seconds: int = 600,
):
    """Return an InferenceService to the model it served before the last deploy, and wait for it.

    The whole previous predictor recorded by deploy (model, runtime, resources, service account) is
    restored. During a canary ``canaryTrafficPercent: 0`` also pins all traffic on the previously rolled-out
    revision; after a promotion the previous model is rolled out again. Rolling back twice changes nothing
    the second time. Disable caching on this task (``.set_caching_options(False)``): a cached run would
    report success without touching the cluster.

    Args:
        isvc_name: InferenceService name.
        namespace: Its namespace.
        status: JSON: the rollout status after the rollback (url, revisions, traffic, storage URI).
        kubeconfig_path: Kubeconfig; empty: the pod's service account (in-cluster).
        timeout_seconds: How long to wait for KServe to report the rollback.
    """
    from kfp_tabular.components.deployment.deploy.core import lifecycle_action

    result = lifecycle_action(
        action="rollback",
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
