"""The kfp-tabular pipeline: validated data in, a blessed model out, rolled out as a KServe canary.

``ingest -> validate_data -> train -> evaluate -> deploy_model``. The gate is TFX-style rather than a
``dsl.If`` (kfp 2.13's local runner cannot run conditions): evaluate always writes a blessing and the deploy
step reads it and changes nothing unless the model is blessed. Pure steps are cached; deploy never is.
"""

from kfp import dsl, kubernetes

from kfp_tabular.components.common.params import document
from kfp_tabular.components.data_processing.ingest.component import ingest
from kfp_tabular.components.data_processing.validate.component import validate_data
from kfp_tabular.components.deployment.deploy.component import deploy_model
from kfp_tabular.components.evaluation.evaluate.component import evaluate
from kfp_tabular.components.training.train.component import train
from kfp_tabular.pipelines.training.train_and_deploy.parameters import DEPLOY_RENAME, request_classes

PIPELINE_NAME = "kfp-tabular-train-and-deploy"

#: (cpu request, cpu limit, memory request, memory limit) per step; TFDV and training want the most.
RESOURCES = {
    "ingest": ("500m", "1", "1Gi", "2Gi"),
    "validate": ("1", "2", "2Gi", "4Gi"),
    "train": ("1", "2", "2Gi", "4Gi"),
    "evaluate": ("500m", "1", "1Gi", "2Gi"),
    "deploy": ("100m", "500m", "256Mi", "512Mi"),
}


def _resources(task: dsl.PipelineTask, step: str) -> dsl.PipelineTask:
    cpu_request, cpu_limit, memory_request, memory_limit = RESOURCES[step]
    # OpenMP (HistGradientBoosting, numpy's BLAS) sizes its pool from the node's cores, not the pod's limit:
    # oversubscribed threads made training ~15x slower on a loaded 2-core machine.
    threads = str(max(1, int(float(cpu_limit.rstrip("m")) / (1000 if cpu_limit.endswith("m") else 1))))
    return (
        task.set_cpu_request(cpu_request)
        .set_cpu_limit(cpu_limit)
        .set_memory_request(memory_request)
        .set_memory_limit(memory_limit)
        .set_env_variable("OMP_NUM_THREADS", threads)
    )


#: Keys of the storage Secret (manifests/storage) exposed to the tasks that read or write object storage.
STORAGE_SECRET_KEYS = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}


def build_pipeline(storage_secret: str = "", model_store_pvc: str = "", model_store_mount: str = "/mnt/model-store"):
    """Return the pipeline, optionally wired to cluster storage with kfp-kubernetes.

    These are compile-time settings (they become the IR's Kubernetes platform spec): compile with them with
    ``kfp-tabular compile --storage-secret ... --model-store-pvc ... --output my-pipeline.yaml``.

    Args:
        storage_secret: Secret with ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (manifests/storage), given as
            environment to every task that reads or writes S3/MinIO (ingest, validate, evaluate, deploy).
        model_store_pvc: PersistentVolumeClaim mounted into the deploy task, so ``publish_uri=pvc://<claim>/...``
            can copy models onto it.
        model_store_mount: Where that claim is mounted in the deploy task.

    Returns:
        The ``@dsl.pipeline`` function.
    """

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest tabular data, validate it with TFDV, train a scikit-learn model, gate it on metrics "
        "against thresholds and the production model, and roll it out on KServe in canary steps gated on live "
        "metrics.",
    )
    @document(*request_classes(), rename=DEPLOY_RENAME)
    def train_and_deploy(
        data_uri: str,
        label_column: str = "churned",
        eval_fraction: float = 0.2,
        seed: int = 42,
        task: str = "auto",
        drop_columns: list = [],
        id_columns: list = [],
        text_columns: list = [],
        datetime_columns: list = [],
        categorical_columns: list = [],
        positive_class: str = "",
        min_rows: int = 50,
        schema_uri: str = "",
        baseline_statistics_uri: str = "",
        numeric_drift_threshold: float = 0.03,
        categorical_drift_threshold: float = 0.05,
        drift_alpha: float = 0.01,
        drift_gate: str = "baseline",
        fail_on_anomalies: bool = True,
        statistics_backend: str = "auto",
        memory_budget_mb: int = 0,
        beam_pipeline_args: list = [],
        estimator: str = "hist_gradient_boosting",
        hyperparameters: dict = {},
        max_categories: int = 50,
        min_frequency: int = 5,
        memory_limit_mb: int = 0,
        max_train_rows: int = 0,
        thresholds: dict = {"roc_auc": 0.7, "r2": 0.0},
        baseline_model_uri: str = "",
        tolerance: float = 0.01,
        isvc_name: str = "churn-classifier",
        namespace: str = "kfp-tabular",
        deploy_action: str = "render",
        canary_traffic_percent: int = 10,
        deployment_mode: str = "Knative",
        storage_uri: str = "",
        publish_uri: str = "",
        s3_endpoint_url: str = "",
        service_account_name: str = "",
        kubeconfig_path: str = "",
        deploy_timeout_seconds: int = 600,
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
    ):
        """Train, gate and deploy a tabular model.

        Every other parameter is described once, by the request of the step that takes it (``request.py``
        beside each component's core); ``document`` adds those descriptions here for the KFP UI.

        Args:
            seed: Seed of the split and of the estimator.
        """
        ingest_task = ingest(
            data_uri=data_uri,
            label_column=label_column,
            eval_fraction=eval_fraction,
            seed=seed,
            task=task,
            drop_columns=drop_columns,
            id_columns=id_columns,
            text_columns=text_columns,
            datetime_columns=datetime_columns,
            categorical_columns=categorical_columns,
            positive_class=positive_class,
            min_rows=min_rows,
        )
        _resources(ingest_task, "ingest").set_retry(num_retries=3, backoff_duration="30s", backoff_factor=2.0)

        validate_task = validate_data(
            train_data=ingest_task.outputs["train_data"],
            eval_data=ingest_task.outputs["eval_data"],
            label_column=label_column,
            schema_uri=schema_uri,
            baseline_statistics_uri=baseline_statistics_uri,
            numeric_drift_threshold=numeric_drift_threshold,
            categorical_drift_threshold=categorical_drift_threshold,
            drift_alpha=drift_alpha,
            drift_gate=drift_gate,
            fail_on_anomalies=fail_on_anomalies,
            statistics_backend=statistics_backend,
            memory_budget_mb=memory_budget_mb,
            beam_pipeline_args=beam_pipeline_args,
        )
        # No retry: anomalies fail the same way every time; the only I/O (the statistics baseline) is small.
        _resources(validate_task, "validate")

        train_task = train(
            train_data=ingest_task.outputs["train_data"],
            schema=validate_task.outputs["schema"],
            label_column=label_column,
            estimator=estimator,
            hyperparameters=hyperparameters,
            task=ingest_task.outputs["task"],
            seed=seed,
            max_categories=max_categories,
            min_frequency=min_frequency,
            memory_limit_mb=memory_limit_mb,
            max_train_rows=max_train_rows,
        )
        _resources(train_task, "train")

        evaluate_task = evaluate(
            model=train_task.outputs["model"],
            eval_data=ingest_task.outputs["eval_data"],
            label_column=label_column,
            thresholds=thresholds,
            baseline_model_uri=baseline_model_uri,
            tolerance=tolerance,
        )
        _resources(evaluate_task, "evaluate")

        deploy_task = deploy_model(
            model=train_task.outputs["model"],
            blessing=evaluate_task.outputs["blessing"],
            train_data=ingest_task.outputs["train_data"],
            train_statistics=validate_task.outputs["train_statistics"],
            schema=validate_task.outputs["schema"],
            isvc_name=isvc_name,
            namespace=namespace,
            action=deploy_action,
            canary_traffic_percent=canary_traffic_percent,
            deployment_mode=deployment_mode,
            storage_uri=storage_uri,
            publish_uri=publish_uri,
            s3_endpoint_url=s3_endpoint_url,
            pvc_mount_root=model_store_mount if model_store_pvc else "",
            service_account_name=service_account_name,
            kubeconfig_path=kubeconfig_path,
            timeout_seconds=deploy_timeout_seconds,
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
            # The lineage record's run: KFP resolves these when the run starts (kfp.local too).
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            pipeline_name=PIPELINE_NAME,
        )
        # A deploy has side effects: never served from cache, never retried blindly (it rolls back on failure).
        _resources(deploy_task, "deploy").set_caching_options(enable_caching=False)

        if storage_secret:
            for task in (ingest_task, validate_task, evaluate_task, deploy_task):
                kubernetes.use_secret_as_env(task, secret_name=storage_secret, secret_key_to_env=STORAGE_SECRET_KEYS)
        if model_store_pvc:
            kubernetes.mount_pvc(deploy_task, pvc_name=model_store_pvc, mount_path=model_store_mount)

    return train_and_deploy


#: The pipeline as committed in pipeline.yaml: no cluster storage wiring (artifacts' own URIs are served).
train_and_deploy = build_pipeline()
