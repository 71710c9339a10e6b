"""KFP component: the retrain trigger -- when the monitor's decision says retrain, run the training pipeline."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from kfp_tabular.components.common import params
from kfp_tabular.components.common.images import PIPELINE_IMAGE
from kfp_tabular.components.monitoring.retrain.request import RetrainRequest


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
@params.document(RetrainRequest)
def retrain_trigger(
    decision: Input[Artifact],
    served_data: Input[Dataset],
    lineage_uri: str,
    retrain_data: Output[Dataset],
    outcome: Output[Artifact],
    labels_uri: str = "",
    include_training_data: bool = False,
    min_labelled_rows: int = 100,
    mode: str = "auto",
    kfp_host: str = "",
    kfp_namespace: str = "",
    experiment_name: str = "kfp-tabular-retrain",
    training_package: str = "",
    local_output_dir: str = "",
    training_parameters: dict = {},
) -> NamedTuple("Outputs", [("action", str), ("detail", str)]):
    """Retrain when the monitor says so: the labelled served rows (and the training split) go to the training pipeline.

    kfp 2.13's local runner cannot run ``dsl.If``: this step always runs and, when the decision says no retrain,
    does nothing and says so. Otherwise the window's served rows are joined with their labels (``labels_uri``, on
    the CloudEvent id and the row's index in its request), the deployed model's training split is added, and the
    training pipeline runs on that data with the deployed model as its baseline: submitted to the KFP API on a
    cluster, run with kfp.local here. The training pipeline blesses (and deploys) the new model only when it is not
    worse than the model serving.

    Args:
        decision: The monitor's decision JSON (``retrain``, ``reasons``, ...).
        served_data: The monitor's window of served rows (Parquet).
        retrain_data: Output directory holding ``data.parquet``: the data the training run was given (its
            metadata: rows).
        outcome: Output JSON: ``action`` (``none``, ``trained_locally``, ``submitted``), ``reason``, ``mode``,
            ``rows``, ``arguments``, ``run``, ``blessed``, ``blessing_reasons``, ``promoted_to``, ``decisions``.

    Returns:
        action: ``none``, ``trained_locally`` or ``submitted``.
        detail: The reason, and the run (its id; locally whether its model was blessed and promoted).
    """
    import logging
    from collections import namedtuple

    from kfp_tabular.components.common.decisions import METADATA_KEY, to_metadata
    from kfp_tabular.components.monitoring.retrain import core
    from kfp_tabular.components.monitoring.retrain.request import RetrainRequest

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request = RetrainRequest(
        lineage_uri=lineage_uri,
        labels_uri=labels_uri,
        include_training_data=include_training_data,
        min_labelled_rows=min_labelled_rows,
        mode=mode,
        kfp_host=kfp_host,
        kfp_namespace=kfp_namespace,
        experiment_name=experiment_name,
        training_package=training_package,
        local_output_dir=local_output_dir,
        training_parameters=training_parameters,
    )
    result = core.retrain(
        request,
        decision_path=decision.path,
        served_data_path=served_data.path,
        retrain_data_path=retrain_data.path,
        retrain_data_uri=retrain_data.uri,
        outcome_path=outcome.path,
    )
    taken = to_metadata(result.decisions)
    outcome.metadata.update(
        {"action": result.action, "run": result.run, "blessed": result.blessed, METADATA_KEY: taken}
    )
    retrain_data.metadata.update({"rows": result.rows, METADATA_KEY: taken})
    detail = result.reason
    if result.run:
        detail += f"; run {result.run.get('id')}"
    if result.blessed is not None:
        detail += "; blessed and promoted" if result.promoted_to else "; NOT blessed, production unchanged"
    outputs = namedtuple("Outputs", ["action", "detail"])
    return outputs(result.action, detail)
