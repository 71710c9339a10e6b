"""The monitoring pipeline: a window of served traffic against the deployed model -> retrain when it drifted.

``monitor -> retrain_trigger``. The monitor reads the window's served rows (the collector's Parquet batches) and
the deployed model's lineage record, and decides; the trigger reads that decision (kfp 2.13's local runner cannot
run ``dsl.If``: like deploy with the blessing, it always runs and does nothing, saying so, when there is no reason
to retrain). When it retrains, it runs the training pipeline with the labelled served rows and the deployed model
as baseline: submitted through the KFP API from inside the run on a cluster, run with kfp.local on one machine.
The training pipeline deploys only a model blessed against the one serving. Neither step is cached: each run
reads a new window and new labels under the same URIs.
"""

from kfp import dsl, kubernetes

from kfp_tabular.components.common.params import document
from kfp_tabular.components.monitoring.monitor.component import monitor
from kfp_tabular.components.monitoring.retrain.component import retrain_trigger
from kfp_tabular.pipelines.monitoring.monitor_and_retrain.parameters import request_classes
from kfp_tabular.pipelines.training.train_and_deploy.pipeline import STORAGE_SECRET_KEYS

PIPELINE_NAME = "kfp-tabular-monitor-and-retrain"

#: (cpu request, cpu limit, memory request, memory limit) per step; the monitor runs TFDV over the window.
RESOURCES = {
    "monitor": ("500m", "2", "1Gi", "4Gi"),
    "retrain": ("250m", "1", "512Mi", "2Gi"),
}


def _resources(task: dsl.PipelineTask, step: str) -> dsl.PipelineTask:
    cpu_request, cpu_limit, memory_request, memory_limit = RESOURCES[step]
    return (
        task.set_cpu_request(cpu_request)
        .set_cpu_limit(cpu_limit)
        .set_memory_request(memory_request)
        .set_memory_limit(memory_limit)
        .set_caching_options(enable_caching=False)
    )


def build_pipeline(storage_secret: str = ""):
    """Return the pipeline, optionally given the storage Secret's S3 keys (served batches, labels, lineage on S3).

    Args:
        storage_secret: Secret with ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (manifests/storage), given as
            environment to both steps (a compile-time setting: ``kfp-tabular compile --pipeline monitoring
            --storage-secret ... --output my.yaml``).
    """

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Monitor a window of served traffic against the deployed model (TFDV skew and drift, "
        "anomalies, prediction drift, CBPE) and, when it drifted, retrain it with the labelled served rows; the "
        "training pipeline deploys the new model only when it is blessed against the one serving.",
    )
    @document(*request_classes())
    def monitor_and_retrain(
        served_data_uri: str,
        lineage_uri: str,
        labels_uri: str = "",
        window_end: str = "",
        window_hours: float = 24.0,
        min_rows: int = 200,
        numeric_threshold: float = 0.1,
        categorical_threshold: float = 0.1,
        alpha: float = 0.01,
        prediction_drift_threshold: float = 0.1,
        performance_tolerance: float = 0.05,
        include_training_data: bool = False,
        min_labelled_rows: int = 100,
        mode: str = "auto",
        kfp_host: str = "",
        kfp_namespace: str = "",
        experiment_name: str = "kfp-tabular-retrain",
        training_package: str = "",
        local_output_dir: str = "",
        training_parameters: dict = {},
    ):
        """Monitor served traffic; retrain when it drifted.

        Every parameter is described once, by the request of the step that takes it (``request.py`` beside the
        monitor's and the trigger's cores).
        """
        monitor_task = monitor(
            served_data_uri=served_data_uri,
            lineage_uri=lineage_uri,
            window_end=window_end,
            window_hours=window_hours,
            min_rows=min_rows,
            numeric_threshold=numeric_threshold,
            categorical_threshold=categorical_threshold,
            alpha=alpha,
            prediction_drift_threshold=prediction_drift_threshold,
            performance_tolerance=performance_tolerance,
        )
        _resources(monitor_task, "monitor")
        trigger_task = retrain_trigger(
            decision=monitor_task.outputs["decision"],
            served_data=monitor_task.outputs["served_data"],
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
        _resources(trigger_task, "retrain")
        if storage_secret:
            for task in (monitor_task, trigger_task):
                kubernetes.use_secret_as_env(task, secret_name=storage_secret, secret_key_to_env=STORAGE_SECRET_KEYS)

    return monitor_and_retrain


#: The pipeline as committed in pipeline.yaml: no cluster storage wiring.
monitor_and_retrain = build_pipeline()
