"""KFP component: roll a KServe InferenceService back to the previous model."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.common.params import document
from kfp_tabular.components.deployment.kserve.request import TargetRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@document(TargetRequest)
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
        status: JSON: the rollout status after the rollback (url, revisions, traffic, storage URI).
    """
    from kfp_tabular.components.deployment.kserve.request import TargetRequest
    from kfp_tabular.components.deployment.rollback.core import rollback_action

    request = TargetRequest(isvc_name, namespace, kubeconfig_path, timeout_seconds)
    result = rollback_action(request, status.path)
    status.metadata.update(
        {
            "action": result["action"],
            "storage_uri": result["storage_uri"],
            "url": result["url"],
            "ready": result["ready"],
        }
    )
