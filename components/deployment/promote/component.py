"""KFP component: promote the KServe canary so the latest model takes all the traffic."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.common.params import document
from kfp_tabular.components.deployment.kserve.request import TargetRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@document(TargetRequest)
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
        status: JSON: the rollout status after promotion (url, revisions, traffic, storage URI).
    """
    from kfp_tabular.components.deployment.kserve.request import TargetRequest
    from kfp_tabular.components.deployment.promote.core import promote_action

    request = TargetRequest(isvc_name, namespace, kubeconfig_path, timeout_seconds)
    result = promote_action(request, status.path)
    status.metadata.update(
        {
            "action": result["action"],
            "storage_uri": result["storage_uri"],
            "url": result["url"],
            "ready": result["ready"],
        }
    )
