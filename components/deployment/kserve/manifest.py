"""Rendering the InferenceService that serves a kfp-tabular model, and the YAML users ``kubectl apply``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.model_dir import MINIO_SCHEME, normalize_uri
from kfp_tabular.components.deployment.kserve.isvc import (
    API_VERSION,
    DEPLOYMENT_MODE_ANNOTATION,
    KIND,
    KNATIVE,
    LINEAGE_URI_ANNOTATION,
    MODEL_SHA_ANNOTATION,
    PROMETHEUS_SCRAPING_ANNOTATION,
    RUN_ID_ANNOTATION,
    TAG_ROUTING_ANNOTATION,
)
from kfp_tabular.components.deployment.kserve.request import CLUSTER_SCHEMES, ServiceRequest, check_storage_uri

MODEL_FORMAT = {"name": "sklearn", "version": "1"}


def render(request: ServiceRequest) -> dict:
    """Return the InferenceService (``serving.kserve.io/v1beta1``) for a checked request.

    Raises:
        ConfigError: A canary percent in Standard mode, or annotations that contradict the mode.
    """
    mode = request.deployment_mode
    extra_annotations = dict(request.annotations or {})
    if extra_annotations.get(DEPLOYMENT_MODE_ANNOTATION, mode) != mode:
        raise ConfigError(
            f"annotations: {DEPLOYMENT_MODE_ANNOTATION}={extra_annotations[DEPLOYMENT_MODE_ANNOTATION]!r} conflicts "
            f"with deployment_mode={mode!r}; set deployment_mode instead"
        )
    refused = request.standard_percent_refused()
    if refused:
        raise ConfigError(refused)

    model: dict[str, Any] = {"modelFormat": dict(MODEL_FORMAT), "protocolVersion": request.protocol_version}
    if request.runtime:
        model["runtime"] = request.runtime
    model["storageUri"] = request.storage_uri
    model["resources"] = request.resources
    predictor: dict[str, Any] = {}
    if request.service_account_name:
        predictor["serviceAccountName"] = request.service_account_name
    if request.canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = request.canary_traffic_percent
    # On the predictor, so they travel with it (previous-predictor record, promote, rollback) and land on its pods:
    # which model each revision serves (the model_sha256 label of its metrics), the run that made it, its lineage.
    ours = {
        MODEL_SHA_ANNOTATION: request.model_sha256,
        RUN_ID_ANNOTATION: request.run_id,
        LINEAGE_URI_ANNOTATION: request.lineage_uri,
    }
    if any(ours.values()):
        predictor["annotations"] = {key: value for key, value in ours.items() if value}
    logger = request.logger()
    if logger:
        # KServe's payload logger: its agent posts each request and response as CloudEvents to the url.
        predictor["logger"] = logger
    predictor["model"] = model

    meta_annotations = {DEPLOYMENT_MODE_ANNOTATION: mode, PROMETHEUS_SCRAPING_ANNOTATION: "true"}
    if mode == KNATIVE:
        # Blue-green previews the candidate at 0% on its own URL (the ``latest`` tag).
        meta_annotations[TAG_ROUTING_ANNOTATION] = "true"
    meta_annotations.update(extra_annotations)
    meta_labels = {"app.kubernetes.io/name": request.name, "app.kubernetes.io/managed-by": "kfp-tabular"}
    meta_labels.update(request.labels or {})
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": request.name,
            "namespace": request.namespace,
            "labels": meta_labels,
            "annotations": meta_annotations,
        },
        "spec": {"predictor": predictor},
    }


def render_inference_service(
    name: str,
    namespace: str,
    storage_uri: str,
    canary_traffic_percent: int | None = None,
    deployment_mode: str = "Knative",
    **options: Any,
) -> dict:
    """Return the InferenceService that serves a kfp-tabular model (see :class:`ServiceRequest` for the fields).

    Args:
        name: InferenceService name, a DNS-1035 label.
        namespace: Namespace, a DNS-1123 label.
        storage_uri: Where the model directory is (``file://`` allowed: a manifest rendered by a local run).
        canary_traffic_percent: Knative mode: percent of traffic for the latest revision (0-100), or None for
            no canary. Standard mode keeps canaries in ``spec.canary[]``, which deploy writes; a percent here is
            refused.
        deployment_mode: ``Knative`` or ``Standard`` (aliases ``Serverless``, ``RawDeployment``).
        **options: ``runtime``, ``service_account_name``, ``protocol_version``, ``resources``, ``labels``,
            ``annotations``.

    Raises:
        ConfigError: Naming the field that is invalid.
    """
    unknown = sorted(set(options) - set(RENDER_OPTIONS))
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: unknown option(s); expected some of {', '.join(RENDER_OPTIONS)}")
    request = ServiceRequest(
        name, namespace, storage_uri, canary_traffic_percent, deployment_mode, allow_local=True, **options
    )
    return render(request)


#: The options of :func:`render_inference_service` (and of deploy) beyond name, namespace, model and split.
RENDER_OPTIONS = (
    "runtime",
    "service_account_name",
    "protocol_version",
    "resources",
    "labels",
    "annotations",
    "model_sha256",
    "run_id",
    "lineage_uri",
    "payload_logger_mode",
    "payload_logger_url",
)


def to_yaml(obj: dict) -> str:
    """Dump a Kubernetes object as block-style YAML, keys in their given order."""
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def strip_server_fields(obj: dict) -> dict:
    """Return the object as a user would apply it: no status, no server-managed metadata."""
    meta = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k in ("name", "namespace", "labels", "annotations", "generation")
    }
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": obj.get("apiVersion", API_VERSION),
        "kind": obj.get("kind", KIND),
        "metadata": meta,
        "spec": obj.get("spec") or {},
    }


def model_storage_uri(model_uri: str, allow_local: bool = False) -> str:
    """Translate a KFP artifact URI into the storageUri KServe's storage initializer understands.

    Args:
        model_uri: The Model artifact's ``uri``: ``minio://bucket/key`` (KFP's default object store),
            ``s3://``, ``gs://``, ``pvc://``, ``https://``, ``hdfs://``, or a local path (kfp.local).
        allow_local: Return ``file:///abs/path`` for a local path instead of failing (render-only).

    Returns:
        ``s3://bucket/key`` for ``minio://bucket/key`` (the MinIO endpoint goes in the storage secret);
        cloud and PVC URIs unchanged.

    Raises:
        ConfigError: For a local path without ``allow_local``, or an unsupported scheme.
    """
    if not isinstance(model_uri, str) or not model_uri.strip():
        raise ConfigError(f"model.uri: expected the Model artifact URI, got {model_uri!r}")
    parts = urlsplit(model_uri)
    scheme = parts.scheme.lower()
    if model_uri.startswith(MINIO_SCHEME) or scheme in CLUSTER_SCHEMES:
        return check_storage_uri(normalize_uri(model_uri), field="model.uri")
    if scheme in ("", "file"):
        local = parts.path if scheme == "file" else model_uri
        if not allow_local:
            raise ConfigError(
                f"model.uri: {model_uri!r} is a local path that KServe cannot pull; publish the model "
                "(publish_model to s3:// or pvc://) and pass storage_uri, or use action=render"
            )
        return "file://" + str(Path(local).resolve())
    raise ConfigError(
        f"model.uri: unsupported scheme {scheme!r} in {model_uri!r}; expected minio, {', '.join(CLUSTER_SCHEMES)} "
        "or a local path"
    )
