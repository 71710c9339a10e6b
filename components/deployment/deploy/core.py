"""Render, deploy, promote and roll back a KServe InferenceService that serves a kfp-tabular model.

Plain functions, no KFP import: the deploy/promote/rollback components and the CLI call the same code.
The Kubernetes client is imported inside the functions that talk to a cluster, so rendering works without
it. Every write goes through a JSON merge patch on ``serving.kserve.io/v1beta1`` ``inferenceservices`` and
is followed by a wait on what the KServe controller reports in ``status``:

* ``Knative`` mode (KServe's revision-based mode): a new model becomes a new revision; a canary is
  ``spec.predictor.canaryTrafficPercent``; promotion removes that field; rollback reverts the model and pins
  ``canaryTrafficPercent: 0`` so all traffic stays on the previously rolled-out revision.
* ``Standard`` mode (formerly ``RawDeployment``): a canary is an entry of ``spec.canary[]`` (KServe 0.20+),
  used only when the InferenceService CRD in the cluster has that field. Older KServe versions silently
  ignore ``canaryTrafficPercent`` in this mode (KServe #5335, #4074), so a canary request is refused there.

The rollout state lives in annotations on the InferenceService (``kfp-tabular.dev/...``): the previous
storageUri and the whole previous predictor (JSON), whether a canary is in progress, and what a rollback
reverted, so promote/rollback can run in another process (another pipeline run, the CLI) than the deploy
that started the canary. Every patch carries the ``metadata.resourceVersion`` it was planned from, so two
writers cannot silently undo each other (the API server answers 409; the write is planned again once).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from kfp_tabular.components.common import artifacts
from kfp_tabular.components.common.errors import ConfigError, DataError, DeployError

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"

KNATIVE = "Knative"
STANDARD = "Standard"
#: Accepted spellings of the deployment mode; KServe >= 0.16 renamed Serverless/RawDeployment.
DEPLOYMENT_MODES = {"knative": KNATIVE, "serverless": KNATIVE, "standard": STANDARD, "rawdeployment": STANDARD}

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
PREVIOUS_URI_ANNOTATION = "kfp-tabular.dev/previous-storage-uri"
PREVIOUS_PREDICTOR_NAME_ANNOTATION = "kfp-tabular.dev/previous-predictor-name"
PREVIOUS_PREDICTOR_ANNOTATION = "kfp-tabular.dev/previous-predictor"
ROLLOUT_STATE_ANNOTATION = "kfp-tabular.dev/rollout-state"
ROLLED_BACK_FROM_ANNOTATION = "kfp-tabular.dev/rolled-back-from"

STATE_STABLE = "stable"
STATE_CANARY = "canary"
STATE_ROLLED_BACK = "rolled-back"
ROLLOUT_STATES = (STATE_STABLE, STATE_CANARY, STATE_ROLLED_BACK)

#: storageUri schemes KServe's storage initializer pulls from; ``file`` only for a rendered manifest.
CLUSTER_SCHEMES = ("s3", "gs", "pvc", "https", "hdfs")
RENDER_SCHEMES = (*CLUSTER_SCHEMES, "file")
PROTOCOL_VERSIONS = ("v1", "v2", "grpc-v1", "grpc-v2")
MODEL_FORMAT = {"name": "sklearn", "version": "1"}
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
MODEL_FILES = ("model.joblib", "metadata.json")
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_RENDER_KWARGS = ("runtime", "service_account_name", "protocol_version", "resources", "labels", "annotations")
_MAX_POLL_INTERVAL_S = 2.0
#: KServe ``modelStatus.transitionStatus`` values that say the model will not load without a spec change.
FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")
#: HTTP 409 retries when only ``status`` changed between our read and our patch (the controller wrote it).
_MAX_STATUS_CONFLICTS = 5


# --------------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------------


def _check_dns1035(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS1035.match(value):
        raise ConfigError(
            f"{field}: expected a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, "
            f"ending with a letter or digit, at most 63 characters), got {value!r}"
        )
    return value


def _check_namespace(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ConfigError(f"namespace: expected a DNS-1123 label (e.g. kfp-tabular), got {value!r}")
    return value


def _check_percent(value: Any, field: str = "canary_traffic_percent") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field}: expected an integer from 0 to 100 or None, got {value!r}")
    if not 0 <= value <= 100:
        raise ConfigError(f"{field}: expected an integer from 0 to 100, got {value}")
    return value


def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"timeout_seconds: expected a positive number of seconds, got {value!r}")
    return float(value)


def normalize_deployment_mode(deployment_mode: str) -> str:
    """Return KServe's canonical name of a deployment mode.

    Args:
        deployment_mode: ``Knative`` (alias ``Serverless``) or ``Standard`` (alias ``RawDeployment``), any case.

    Returns:
        ``"Knative"`` or ``"Standard"``, the values KServe 0.16+ writes in ``serving.kserve.io/deploymentMode``
        (it still accepts the old names and normalizes them).

    Raises:
        ConfigError: If the mode is not one of those.
    """
    mode = DEPLOYMENT_MODES.get(str(deployment_mode).strip().lower()) if isinstance(deployment_mode, str) else None
    if mode is None:
        raise ConfigError(
            f"deployment_mode: expected Knative (alias Serverless) or Standard (alias RawDeployment), "
            f"got {deployment_mode!r}"
        )
    return mode


def check_storage_uri(storage_uri: Any, allow_local: bool = False, field: str = "storage_uri") -> str:
    """Validate a KServe storageUri and return it.

    Args:
        storage_uri: ``s3://bucket/key``, ``gs://bucket/key``, ``pvc://claim/path``, ``https://...`` or
            ``hdfs://...``; ``file:///abs/path`` only when ``allow_local``.
        allow_local: Accept ``file://`` (a rendered manifest for a local run, never applied to a cluster).
        field: Name of the parameter, for the error message.

    Returns:
        The URI, unchanged.

    Raises:
        ConfigError: Naming ``field`` when the scheme is unsupported or a part is missing.
    """
    if not isinstance(storage_uri, str) or not storage_uri.strip():
        raise ConfigError(f"{field}: expected a storage URI such as s3://bucket/path, got {storage_uri!r}")
    parts = urlsplit(storage_uri)
    scheme = parts.scheme.lower()
    allowed = RENDER_SCHEMES if allow_local else CLUSTER_SCHEMES
    if scheme not in allowed:
        hint = ""
        if scheme == "file" or not scheme:
            hint = " (a local path cannot be pulled by KServe: publish the model with publish_model first)"
        elif scheme == "minio":
            hint = " (use s3:// with the MinIO endpoint in the storage secret; see model_storage_uri)"
        raise ConfigError(f"{field}: expected a URI with scheme {', '.join(allowed)}, got {storage_uri!r}{hint}")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"{field}: expected file:///absolute/path, got {storage_uri!r}")
    elif not parts.netloc:
        what = {"pvc": "a claim name", "s3": "a bucket", "gs": "a bucket"}.get(scheme, "a host")
        raise ConfigError(f"{field}: {storage_uri!r} has no {what} after {scheme}://")
    if scheme == "pvc" and not parts.path.strip("/"):
        raise ConfigError(f"{field}: expected pvc://<claim>/<path>, got {storage_uri!r} (no path in the claim)")
    return storage_uri


def _check_str_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{field}: expected a mapping of strings to strings, got {value!r}")
    return dict(value)


def _check_resources(value: Any) -> dict[str, dict[str, str]]:
    if value is None:
        return json.loads(json.dumps(DEFAULT_RESOURCES))
    if not isinstance(value, dict) or not value or set(value) - {"requests", "limits"}:
        raise ConfigError(
            f"resources: expected a mapping with 'requests' and/or 'limits' (e.g. {DEFAULT_RESOURCES}), got {value!r}"
        )
    out: dict[str, dict[str, str]] = {}
    for key, quantities in value.items():
        if not isinstance(quantities, dict) or not quantities:
            raise ConfigError(f"resources.{key}: expected a mapping such as {{'cpu': '1', 'memory': '1Gi'}}")
        for resource, quantity in quantities.items():
            if (
                not isinstance(resource, str)
                or not isinstance(quantity, (str, int, float))
                or isinstance(quantity, bool)
            ):
                raise ConfigError(f"resources.{key}.{resource}: expected a quantity such as '500m' or '1Gi'")
        out[key] = {k: str(v) for k, v in quantities.items()}
    return out


# --------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------


def render_inference_service(
    name: str,
    namespace: str,
    storage_uri: str,
    canary_traffic_percent: int | None = None,
    deployment_mode: str = "Knative",
    runtime: str = "",
    service_account_name: str = "",
    protocol_version: str = "v2",
    resources: dict | None = None,
    labels: dict | None = None,
    annotations: dict | None = None,
) -> dict:
    """Return the InferenceService (``serving.kserve.io/v1beta1``) that serves a kfp-tabular model.

    Args:
        name: InferenceService name, a DNS-1035 label.
        namespace: Namespace, a DNS-1123 label.
        storage_uri: Where the model directory is (see :func:`check_storage_uri`; ``file://`` allowed here
            for a manifest rendered by a local run).
        canary_traffic_percent: Knative mode: percent of traffic for the latest revision (0-100), or None for
            no canary. Standard mode keeps canaries in ``spec.canary[]``, which :func:`deploy` writes; a
            percent here is refused.
        deployment_mode: ``Knative`` or ``Standard`` (aliases ``Serverless``, ``RawDeployment``).
        runtime: ServingRuntime/ClusterServingRuntime name; empty lets KServe pick the stock sklearn runtime.
        service_account_name: Service account whose secret gives the storage initializer access to the model.
        protocol_version: ``v1``, ``v2``, ``grpc-v1`` or ``grpc-v2``.
        resources: Container ``requests``/``limits``; defaults to 100m/256Mi requested, 1 CPU/1Gi limit.
        labels: Extra metadata labels.
        annotations: Extra metadata annotations (the deployment mode annotation cannot be overridden).

    Returns:
        The InferenceService as a dict, ready for ``yaml.safe_dump`` or the Kubernetes API.

    Raises:
        ConfigError: Naming the field that is invalid.
    """
    _check_dns1035(name, "name")
    _check_namespace(namespace)
    check_storage_uri(storage_uri, allow_local=True)
    percent = _check_percent(canary_traffic_percent)
    mode = normalize_deployment_mode(deployment_mode)
    if protocol_version not in PROTOCOL_VERSIONS:
        raise ConfigError(f"protocol_version: expected one of {', '.join(PROTOCOL_VERSIONS)}, got {protocol_version!r}")
    if not isinstance(runtime, str) or (runtime and (len(runtime) > 253 or not _DNS1123_SUBDOMAIN.match(runtime))):
        raise ConfigError(f"runtime: expected a ServingRuntime name (DNS-1123 subdomain) or '', got {runtime!r}")
    if not isinstance(service_account_name, str) or (
        service_account_name and not _DNS1123_SUBDOMAIN.match(service_account_name)
    ):
        raise ConfigError(f"service_account_name: expected a service account name or '', got {service_account_name!r}")
    extra_labels = _check_str_map(labels, "labels")
    extra_annotations = _check_str_map(annotations, "annotations")
    if extra_annotations.get(DEPLOYMENT_MODE_ANNOTATION, mode) != mode:
        raise ConfigError(
            f"annotations: {DEPLOYMENT_MODE_ANNOTATION}={extra_annotations[DEPLOYMENT_MODE_ANNOTATION]!r} conflicts "
            f"with deployment_mode={mode!r}; set deployment_mode instead"
        )
    if percent is not None and mode == STANDARD:
        raise ConfigError(
            "canary_traffic_percent: Standard mode has no canaryTrafficPercent (KServe ignores it there); "
            "deploy() writes a spec.canary[] entry when the cluster's KServe supports it"
        )

    model: dict[str, Any] = {"modelFormat": dict(MODEL_FORMAT), "protocolVersion": protocol_version}
    if runtime:
        model["runtime"] = runtime
    model["storageUri"] = storage_uri
    model["resources"] = _check_resources(resources)
    predictor: dict[str, Any] = {}
    if service_account_name:
        predictor["serviceAccountName"] = service_account_name
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    predictor["model"] = model

    meta_annotations = {DEPLOYMENT_MODE_ANNOTATION: mode}
    if mode == KNATIVE:
        meta_annotations[TAG_ROUTING_ANNOTATION] = "true"
    meta_annotations.update(extra_annotations)
    meta_labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "kfp-tabular"}
    meta_labels.update(extra_labels)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": meta_labels, "annotations": meta_annotations},
        "spec": {"predictor": predictor},
    }


def to_yaml(obj: dict) -> str:
    """Dump a Kubernetes object as block-style YAML, keys in their given order."""
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


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
    if scheme == "minio":
        return check_storage_uri("s3://" + model_uri[len("minio://") :], field="model.uri")
    if scheme in CLUSTER_SCHEMES:
        return check_storage_uri(model_uri, field="model.uri")
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


# --------------------------------------------------------------------------------------------------------
# The blessing gate
# --------------------------------------------------------------------------------------------------------


def gate(blessing_path: str) -> tuple[bool, str]:
    """Read the evaluator's blessing and say whether the model may be deployed.

    Args:
        blessing_path: The blessing JSON file (``{"blessed": bool, "reasons": [str], ...}``, see DESIGN.md).

    Returns:
        ``(blessed, reason)``: the reason repeats the evaluator's reasons (or says that none were given).

    Raises:
        DataError: Naming the file and the field when the file is missing, not JSON, or malformed.
    """
    data = artifacts.read_json(blessing_path, what="blessing")
    if not isinstance(data, dict):
        raise DataError(f"{blessing_path}: expected a blessing JSON object, got {type(data).__name__}")
    if "blessed" not in data:
        raise DataError(f"{blessing_path}: field 'blessed' is missing (expected true or false)")
    blessed = data["blessed"]
    if not isinstance(blessed, bool):
        raise DataError(f"{blessing_path}: field 'blessed' must be true or false, got {blessed!r}")
    reasons = data.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise DataError(f"{blessing_path}: field 'reasons' must be a list of strings, got {reasons!r}")
    if blessed:
        return True, "blessed" + (": " + "; ".join(reasons) if reasons else "")
    return False, "not blessed: " + ("; ".join(reasons) if reasons else "the evaluator gave no reason")


# --------------------------------------------------------------------------------------------------------
# Publishing the model directory
# --------------------------------------------------------------------------------------------------------


def _model_manifest(model_dir: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of a model directory, after checking its contract."""
    if not model_dir.is_dir():
        raise DataError(f"{model_dir}: expected the Model artifact directory (model.joblib + metadata.json)")
    files: dict[str, str] = {}
    for path in sorted(model_dir.rglob("*")):
        if path.is_file():
            files[path.relative_to(model_dir).as_posix()] = artifacts.sha256_file(path)
    for required in MODEL_FILES:
        if required not in files:
            raise DataError(f"{model_dir / required}: missing; a model directory holds {' and '.join(MODEL_FILES)}")
    model_files = [f for f in files if f.endswith(MODEL_SUFFIXES)]
    if model_files != ["model.joblib"]:
        raise DataError(
            f"{model_dir}: expected exactly one model file (model.joblib), found {model_files}; KServe's sklearn "
            "runtime refuses a directory with several"
        )
    try:
        metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{model_dir / 'metadata.json'}: expected a JSON object ({exc})") from exc
    if not isinstance(metadata, dict):
        raise DataError(f"{model_dir / 'metadata.json'}: expected a JSON object")
    recorded = metadata.get("model_sha256")
    if recorded is not None and recorded != files["model.joblib"]:
        raise DataError(
            f"{model_dir / 'metadata.json'}: field 'model_sha256' is {recorded} but model.joblib hashes to "
            f"{files['model.joblib']}; the model file is not the one that was trained"
        )
    return files


def _upload_order(files: dict[str, str]) -> list[str]:
    """Model file first, metadata.json last: a reader that sees metadata.json sees a complete model."""
    rest = [f for f in files if f not in MODEL_FILES]
    return ["model.joblib", *rest, "metadata.json"]


def _s3_endpoint(s3_endpoint_url: str) -> str:
    if s3_endpoint_url:
        return s3_endpoint_url
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    endpoint = os.environ.get("S3_ENDPOINT", "")  # the variable KServe's storage initializer reads
    if endpoint and "://" not in endpoint:
        endpoint = ("https://" if os.environ.get("S3_USE_HTTPS", "1") != "0" else "http://") + endpoint
    return endpoint


def _remote_sha256(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _publish_s3(model_dir: Path, files: dict[str, str], bucket: str, prefix: str, endpoint: str) -> str:
    import s3fs

    uri = f"s3://{bucket}/{prefix}"
    client_kwargs = {"endpoint_url": endpoint} if endpoint else {}
    fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, skip_instance_cache=True)
    root = f"{bucket}/{prefix}"
    try:
        existing = sorted(fs.find(root))
    except FileNotFoundError:
        existing = []
    except Exception as exc:  # botocore raises many types: name the target and the endpoint
        raise DeployError(f"{uri}: cannot list the target (endpoint {endpoint or 'AWS default'}): {exc}") from exc
    remote = {p[len(root) + 1 :]: _remote_sha256(fs, p) for p in existing}
    if remote == files:
        return uri
    foreign = sorted(rel for rel, digest in remote.items() if files.get(rel) != digest)
    if foreign:
        raise ConfigError(
            f"target_uri: {uri} already holds a different model ({', '.join(foreign)} not in this model or with "
            "other content); published models are immutable so that a storageUri names exactly one model: publish "
            "to a new path"
        )
    # Empty, or what an interrupted publish of this very model left (some of its files, same sha256): upload
    # the rest. Since metadata.json goes last, a reader never sees metadata.json without the model file.
    uploaded: list[str] = []
    try:
        for rel in _upload_order(files):
            if rel in remote:
                continue
            fs.put_file(str(model_dir / rel), f"{root}/{rel}")
            uploaded.append(f"{root}/{rel}")
        fs.invalidate_cache()
        for rel in _upload_order(files):
            got = _remote_sha256(fs, f"{root}/{rel}")
            if got != files[rel]:
                raise DataError(f"{uri}/{rel}: sha256 after upload is {got}, expected {files[rel]}")
    except BaseException:
        for path in uploaded:
            try:
                fs.rm_file(path)
            except Exception:  # noqa: BLE001 - best effort cleanup; the original error is what matters
                pass
        raise
    return uri


def _publish_pvc(model_dir: Path, files: dict[str, str], claim: str, sub_path: str, mount_root: str) -> str:
    uri = f"pvc://{claim}/{sub_path}"
    if not mount_root:
        raise ConfigError(
            f"pvc_mount_root: needed to publish to {uri}: the local directory where claim {claim!r} is mounted "
            "(kfp-kubernetes mount_pvc mount_path)"
        )
    root = Path(mount_root)
    if not root.is_dir():
        raise ConfigError(f"pvc_mount_root: {mount_root} is not a directory (is claim {claim!r} mounted there?)")
    dest = (root / sub_path).resolve()
    if root.resolve() not in dest.parents:
        raise ConfigError(f"target_uri: path {sub_path!r} of {uri} leaves the claim's mount {mount_root}")
    if dest.exists():
        existing = {p.relative_to(dest).as_posix(): artifacts.sha256_file(p) for p in dest.rglob("*") if p.is_file()}
        if existing == files:
            return uri
        raise ConfigError(
            f"target_uri: {uri} ({dest}) already holds a different model; published models are immutable: "
            "publish to a new path"
        )
    with artifacts.atomic_path(dest) as staged:
        staged.mkdir()
        for rel in _upload_order(files):
            target = staged / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_dir / rel, target)
            got = artifacts.sha256_file(target)
            if got != files[rel]:
                raise DataError(f"{target}: sha256 after copy is {got}, expected {files[rel]}")
    return uri


def publish_model(model_dir: str, target_uri: str, *, s3_endpoint_url: str = "", pvc_mount_root: str = "") -> str:
    """Copy a model directory to storage KServe can pull from, verify it, and return its storageUri.

    Published models are immutable: publishing the same files to the same place again is a no-op, different
    files are refused. On S3 the model file goes first and ``metadata.json`` last, each read back and
    checked against the source sha256 (objects uploaded by this call are removed again if a check fails).
    An S3 prefix holding some of this model's files with matching sha256 (a publish that was killed midway)
    is completed rather than refused. On a PVC the directory is staged beside the target and renamed into
    place only once every copy checked out.

    Args:
        model_dir: The Model artifact directory (``model.joblib`` + ``metadata.json``).
        target_uri: ``s3://bucket/prefix`` (``minio://`` accepted) or ``pvc://claim/path``.
        s3_endpoint_url: S3-compatible endpoint (MinIO); defaults to ``$AWS_ENDPOINT_URL_S3``,
            ``$AWS_ENDPOINT_URL`` or KServe's ``$S3_ENDPOINT``/``$S3_USE_HTTPS``, else AWS.
        pvc_mount_root: Where the claim is mounted in this pod (needed for ``pvc://``).

    Returns:
        The storageUri for the InferenceService (``s3://...`` or ``pvc://...``).

    Raises:
        DataError: The model directory breaks the contract, or a checksum differs after the copy.
        ConfigError: The target is unsupported, not empty with other files, or the mount is missing.
        DeployError: The object store cannot be reached.
    """
    src = Path(model_dir)
    files = _model_manifest(src)
    if not isinstance(target_uri, str) or not target_uri:
        raise ConfigError(f"target_uri: expected s3://bucket/prefix or pvc://claim/path, got {target_uri!r}")
    parts = urlsplit(target_uri)
    scheme = parts.scheme.lower()
    location = parts.path.strip("/")
    if scheme in ("s3", "minio"):
        if not parts.netloc or not location:
            raise ConfigError(f"target_uri: expected s3://bucket/prefix (not a bucket root), got {target_uri!r}")
        return _publish_s3(src, files, parts.netloc, location, _s3_endpoint(s3_endpoint_url))
    if scheme == "pvc":
        if not parts.netloc or not location:
            raise ConfigError(f"target_uri: expected pvc://claim/path, got {target_uri!r}")
        return _publish_pvc(src, files, parts.netloc, location, pvc_mount_root)
    raise ConfigError(f"target_uri: expected s3://, minio:// or pvc://, got {target_uri!r}")


# --------------------------------------------------------------------------------------------------------
# Kubernetes access
# --------------------------------------------------------------------------------------------------------


def load_api_client(kubeconfig_path: str = "", context: str = "") -> Any:
    """Return a ``kubernetes.client.ApiClient`` for the cluster this code should talk to.

    Args:
        kubeconfig_path: A kubeconfig file. Empty: the in-cluster service account when running in a pod
            (``KUBERNETES_SERVICE_HOST`` set), else ``$KUBECONFIG`` / ``~/.kube/config``.
        context: Kubeconfig context; empty for the current one.

    Returns:
        An ``ApiClient`` (the caller may close it).

    Raises:
        ConfigError: If the kubeconfig is missing or unusable.
    """
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if not kubeconfig_path and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            if kubeconfig_path and not Path(kubeconfig_path).is_file():
                raise ConfigError(f"kubeconfig_path: {kubeconfig_path} does not exist")
            config.load_kube_config(
                config_file=kubeconfig_path or None, context=context or None, client_configuration=configuration
            )
    except config.ConfigException as exc:
        where = kubeconfig_path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ConfigError(f"kubeconfig_path: cannot load a cluster configuration from {where}: {exc}") from exc
    return client.ApiClient(configuration)


def _api_error(exc: Any, what: str) -> DeployError:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or ""
    message = ""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = str(body)[:500]
    error = DeployError(f"{what}: HTTP {status} {reason}: {message or exc}".rstrip(": "))
    error.http_status = status
    return error


def _path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def _get(api_client: Any, namespace: str, name: str) -> dict | None:
    from kubernetes import client

    try:
        return client.CustomObjectsApi(api_client).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise _api_error(exc, f"get InferenceService {namespace}/{name}") from exc


def _require(api_client: Any, namespace: str, name: str) -> dict:
    obj = _get(api_client, namespace, name)
    if obj is None:
        raise DeployError(f"InferenceService {namespace}/{name} not found")
    return obj


def _create(api_client: Any, namespace: str, body: dict, dry_run: bool = False) -> dict:
    from kubernetes import client

    kwargs = {"dry_run": "All"} if dry_run else {}
    try:
        return client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, **kwargs
        )
    except client.ApiException as exc:
        name = body.get("metadata", {}).get("name") or body.get("metadata", {}).get("generateName", "")
        raise _api_error(exc, f"create InferenceService {namespace}/{name}") from exc


def _merge_patch(api_client: Any, namespace: str, name: str, body: dict, dry_run: bool = False) -> dict:
    """JSON merge patch (RFC 7386): ``None`` values remove fields, which KServe's SDK cannot do."""
    from kubernetes import client

    query = [("dryRun", "All")] if dry_run else []
    try:
        return api_client.call_api(
            _path(namespace, name),
            "PATCH",
            {},
            query,
            {"Accept": "application/json", "Content-Type": "application/merge-patch+json"},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except client.ApiException as exc:
        raise _api_error(exc, f"patch InferenceService {namespace}/{name}") from exc


def crd_has_canary(crd: dict) -> bool:
    """Whether an InferenceService CRD's ``v1beta1`` schema has ``spec.canary[]`` (KServe 0.20+)."""
    for version in crd.get("spec", {}).get("versions", []) or []:
        if version.get("name") != VERSION:
            continue
        spec = version.get("schema", {}).get("openAPIV3Schema", {}).get("properties", {}).get("spec", {})
        canary = spec.get("properties", {}).get("canary", {})
        items = canary.get("items", {}).get("properties", {})
        return canary.get("type") == "array" and "predictor" in items and "trafficPercent" in items
    return False


def standard_canary_supported(api_client: Any, namespace: str) -> bool:
    """Whether the cluster's InferenceService CRD has ``spec.canary[]`` for Standard-mode canaries.

    Reads the CRD through the apiextensions API. An identity without read access to CRDs (the pipeline's
    namespaced Role has none) gets 403; then a server-side dry-run create of a throwaway InferenceService
    with a canary entry tells the same thing without storing anything: the API server prunes fields its
    CRD schema does not know, so the canary survives the dry run only if the CRD has it.

    Raises:
        ConfigError: If neither check can be made.
    """
    from kubernetes import client

    try:
        crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(CRD_NAME, _preload_content=False)
        return crd_has_canary(json.loads(crd.data))
    except client.ApiException as exc:
        if exc.status not in (401, 403, 404):
            raise _api_error(exc, f"read CustomResourceDefinition {CRD_NAME}") from exc
        crd_error = f"HTTP {exc.status} {exc.reason}"
    probe = render_inference_service("probe", namespace, "s3://kfp-tabular-probe/model", deployment_mode=STANDARD)
    probe["metadata"].pop("name")
    probe["metadata"]["generateName"] = "kfp-tabular-canary-probe-"
    probe_model = probe["spec"]["predictor"]["model"]
    probe_model = {"name": "kserve-container", **probe_model}
    probe["spec"]["canary"] = [{"trafficPercent": 0, "predictor": {"name": "probe", "model": probe_model}}]
    try:
        created = _create(api_client, namespace, probe, dry_run=True)
    except DeployError as exc:
        raise ConfigError(
            f"deployment_mode: cannot tell whether this cluster's KServe supports Standard-mode canaries: reading "
            f"CRD {CRD_NAME} gave {crd_error} and a dry-run create gave: {exc}"
        ) from exc
    return bool(created.get("spec", {}).get("canary"))


# --------------------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DeployStatus:
    """What an InferenceService looks like after a deploy/promote/rollback, from its spec and status.

    Attributes:
        name: InferenceService name.
        namespace: Its namespace.
        action: What this call did: created, canary, rolled-out, unchanged, promoted, rolled-back, status.
        ready: Ready condition is True for the current generation.
        url: ``status.url`` (empty until KServe sets it).
        storage_uri: The model the predictor spec points at (Knative) / the stable predictor (Standard).
        previous_storage_uri: The model a rollback would return to (empty if none).
        canary_storage_uri: Standard mode: the model of the canary entry, if any.
        canary_traffic_percent: Knative ``canaryTrafficPercent`` or the Standard canary's ``trafficPercent``.
        deployment_mode: Knative or Standard.
        rollout_state: stable, canary or rolled-back.
        generation: ``metadata.generation``.
        observed_generation: ``status.observedGeneration``.
        latest_created_revision: Knative: ``status.components.predictor.latestCreatedRevision``.
        latest_ready_revision: Knative: the latest revision that became ready.
        latest_rolledout_revision: Knative: the latest revision that took 100% of the traffic.
        previous_rolledout_revision: Knative: the one before it.
        traffic: Knative: ``status.components.predictor.traffic`` entries.
        canaries: Standard: ``status.canaryStatuses`` entries.
        message: The Ready condition's reason/message when not ready, or a note from this call.
    """

    name: str
    namespace: str
    action: str = "status"
    ready: bool = False
    url: str = ""
    storage_uri: str = ""
    previous_storage_uri: str = ""
    canary_storage_uri: str = ""
    canary_traffic_percent: int | None = None
    deployment_mode: str = KNATIVE
    rollout_state: str = STATE_STABLE
    generation: int = 0
    observed_generation: int = 0
    latest_created_revision: str = ""
    latest_ready_revision: str = ""
    latest_rolledout_revision: str = ""
    previous_rolledout_revision: str = ""
    traffic: list = dataclasses.field(default_factory=list)
    canaries: list = dataclasses.field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict:
        """Return the status as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


def _condition(obj: dict, ctype: str) -> dict:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return {}


def _annotations(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _predictor(obj: dict) -> dict:
    return (obj.get("spec") or {}).get("predictor") or {}


def _predictor_uri(obj: dict) -> str:
    return (_predictor(obj).get("model") or {}).get("storageUri", "")


def _canaries(obj: dict) -> list:
    return (obj.get("spec") or {}).get("canary") or []


def mode_of(obj: dict) -> str:
    """Return the deployment mode an InferenceService asks for (its annotation; KServe 0.16+ defaults to Standard)."""
    status_mode = (obj.get("status") or {}).get("deploymentMode")
    value = _annotations(obj).get(DEPLOYMENT_MODE_ANNOTATION) or status_mode or STANDARD
    return DEPLOYMENT_MODES.get(value.lower(), value)


def rollout_state(obj: dict) -> str:
    """stable, canary or rolled-back: from our annotation, else inferred from the spec (e.g. kubectl apply)."""
    state = _annotations(obj).get(ROLLOUT_STATE_ANNOTATION)
    if state in ROLLOUT_STATES:
        return state
    if mode_of(obj) == STANDARD:
        return STATE_CANARY if _canaries(obj) else STATE_STABLE
    percent = _predictor(obj).get("canaryTrafficPercent")
    if percent is None or percent >= 100:
        return STATE_STABLE
    return STATE_ROLLED_BACK if percent == 0 else STATE_CANARY


def status_from_object(obj: dict, action: str = "status", message: str = "") -> DeployStatus:
    """Build a :class:`DeployStatus` from an InferenceService object."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    predictor_status = (status.get("components") or {}).get("predictor") or {}
    mode = mode_of(obj)
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    ready_cond = _condition(obj, "Ready")
    ready = ready_cond.get("status") == "True" and observed >= generation
    canary_uri, percent = "", None
    if mode == STANDARD:
        canaries = _canaries(obj)
        if canaries:
            canary_uri = ((canaries[0].get("predictor") or {}).get("model") or {}).get("storageUri", "")
            percent = canaries[0].get("trafficPercent")
    else:
        percent = _predictor(obj).get("canaryTrafficPercent")
    if not message and not ready:
        message = "; ".join(x for x in (ready_cond.get("reason", ""), ready_cond.get("message", "")) if x) or (
            "waiting for the controller" if observed < generation else "not ready"
        )
    return DeployStatus(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        action=action,
        ready=ready,
        url=status.get("url", "") or "",
        storage_uri=_predictor_uri(obj),
        previous_storage_uri=_annotations(obj).get(PREVIOUS_URI_ANNOTATION, ""),
        canary_storage_uri=canary_uri,
        canary_traffic_percent=percent,
        deployment_mode=mode,
        rollout_state=rollout_state(obj),
        generation=generation,
        observed_generation=observed,
        latest_created_revision=predictor_status.get("latestCreatedRevision", "") or "",
        latest_ready_revision=predictor_status.get("latestReadyRevision", "") or "",
        latest_rolledout_revision=predictor_status.get("latestRolledoutRevision", "") or "",
        previous_rolledout_revision=predictor_status.get("previousRolledoutRevision", "") or "",
        traffic=list(predictor_status.get("traffic") or []),
        canaries=list(status.get("canaryStatuses") or []),
        message=message,
    )


def get_status(name: str, namespace: str, api_client: Any = None) -> DeployStatus:
    """Return the current :class:`DeployStatus` of an InferenceService.

    Raises:
        DeployError: If it does not exist or cannot be read.
    """
    _check_dns1035(name, "name")
    _check_namespace(namespace)
    api = api_client or load_api_client()
    return status_from_object(_require(api, namespace, name))


# --------------------------------------------------------------------------------------------------------
# Waiting for the controller
# --------------------------------------------------------------------------------------------------------


def _model_failure(model_status: Any) -> dict | None:
    """Return the failure a KServe ``modelStatus`` reports, or None.

    KServe's ``PropagateModelStatus`` sets ``transitionStatus`` to ``BlockedByFailedLoad`` (the model or its
    storage initializer failed) or ``InvalidSpec``, ``states.activeModelState`` to ``FailedToLoad`` and
    ``lastFailureInfo`` (reason, message, location, exitCode, time, modelRevisionName). The same structure is
    in ``status.modelStatus`` (the predictor) and in each ``status.canaryStatuses[].modelStatus``.
    """
    if not isinstance(model_status, dict):
        return None
    transition = model_status.get("transitionStatus") or ""
    active = (model_status.get("states") or {}).get("activeModelState") or ""
    if transition not in FAILED_TRANSITIONS and active != "FailedToLoad":
        return None
    return {
        "transitionStatus": transition,
        "activeModelState": active,
        "lastFailureInfo": dict(model_status.get("lastFailureInfo") or {}),
    }


def _describe_failure(failure: dict) -> str:
    info = failure.get("lastFailureInfo") or {}
    parts = [f"transitionStatus={failure.get('transitionStatus') or 'none'}"]
    if failure.get("activeModelState"):
        parts.append(f"activeModelState={failure['activeModelState']}")
    what = ": ".join(x for x in (info.get("reason", ""), info.get("message", "")) if x)
    if what:
        parts.append(what)
    if info.get("location"):
        parts.append(f"at {info['location']}")
    return ", ".join(parts)


def _canary_status(obj: dict, canary_name: str) -> dict:
    for entry in (obj.get("status") or {}).get("canaryStatuses") or []:
        if entry.get("name") == canary_name:
            return entry
    return {}


def _baseline(obj: dict, new_revision: bool, canary_name: str = "") -> dict:
    """Record what ``status`` says before a write, so that a failure it already reported is not taken for ours.

    Args:
        obj: The InferenceService as read before the write.
        new_revision: Knative: the write changes the predictor template, so KServe makes a new revision;
            record the latest created one (a failure of that one predates the write).
        canary_name: Standard: the ``spec.canary[]`` entry the write creates or changes.

    Returns:
        Keyword arguments for :class:`Expectation`.
    """
    status = obj.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    out: dict[str, Any] = {"before_failure": _model_failure(status.get("modelStatus"))}
    if new_revision:
        out["before_revision"] = predictor.get("latestCreatedRevision") or ""
    if canary_name:
        out["before_canary_failure"] = _model_failure(_canary_status(obj, canary_name).get("modelStatus"))
    return out


@dataclasses.dataclass
class Expectation:
    """What ``status`` must show before a write counts as done.

    ``status.observedGeneration`` reaching the written generation does not mean the rest of ``status``
    describes it: KServe/Knative can report the new generation while ``components.predictor`` (and
    ``modelStatus``) still describe the previous revisions, one of which may have failed. So a failure only
    fails the wait when it is newer than what was recorded before the write (``before_*``).

    Attributes:
        generation: ``status.observedGeneration`` must reach it (the controller saw the write).
        mode: Knative or Standard.
        latest_percent: Knative: traffic percent on the latest ready revision; the other revisions must hold
            the rest. 100 for a plain rollout, N for a canary, 0 for a pinned rollback.
        not_revision: Knative: the latest ready revision must differ from this one (a new model makes a new
            revision; without this a stale status of the old revision could look done).
        canary_name: Standard: the ``spec.canary[]`` entry that must be ready.
        canary_percent: Standard: its expected ``trafficPercent``.
        no_canaries: Standard: ``status.canaryStatuses`` must be empty (after promote/rollback).
        before_revision: Knative: ``latestCreatedRevision`` read before a write that makes a new revision. A
            failed latest revision of that name predates the write and is waited past; None (no new
            revision expected, or nothing recorded): a failed latest revision fails the wait at once.
        before_failure: ``status.modelStatus`` failure (see ``_model_failure``) read before the write; an
            identical failure afterwards is the old one.
        before_canary_failure: Standard: the same for the ``canaryStatuses`` entry named ``canary_name``.
    """

    generation: int
    mode: str
    latest_percent: int = 100
    not_revision: str = ""
    canary_name: str = ""
    canary_percent: int = 0
    no_canaries: bool = False
    before_revision: str | None = None
    before_failure: dict | None = None
    before_canary_failure: dict | None = None

    def describe(self) -> str:
        """Say in words what is awaited."""
        parts = [f"status.observedGeneration >= {self.generation}", "Ready=True"]
        if self.mode == KNATIVE:
            if self.not_revision:
                parts.append(f"a new revision (not {self.not_revision}) ready")
            else:
                parts.append("the latest created revision ready")
            if self.latest_percent == 100:
                parts.append("100% of the traffic on the latest revision")
            else:
                parts.append(
                    f"{self.latest_percent}% of the traffic on the latest revision and "
                    f"{100 - self.latest_percent}% on the previously rolled-out revision"
                )
        elif self.canary_name:
            parts.append(f"canary {self.canary_name!r} ready at {self.canary_percent}% of the traffic")
        elif self.no_canaries:
            parts.append("no canary")
        return ", ".join(parts)

    def check(self, obj: dict) -> tuple[str, str]:
        """Return ``("ok"|"wait"|"failed", explanation)`` for the object as it is now."""
        status = obj.get("status") or {}
        observed = int(status.get("observedGeneration") or 0)
        if observed < self.generation:
            return "wait", f"observedGeneration {observed} < {self.generation}"
        ready = _condition(obj, "Ready")
        predictor = (status.get("components") or {}).get("predictor") or {}
        latest_created = predictor.get("latestCreatedRevision", "")
        latest_ready = predictor.get("latestReadyRevision", "")
        new_revision_failed = latest_created and latest_created != latest_ready
        if self.mode == KNATIVE and ready.get("status") == "False" and new_revision_failed:
            # Knative marks the service not ready only when the latest revision failed (RevisionFailed).
            if self._knative_failure_is_ours(latest_created, status):
                return "failed", (
                    f"Ready=False ({ready.get('reason', '')}: {ready.get('message', '')}); revision "
                    f"{latest_created} did not become ready (latest ready: {latest_ready or 'none'})"
                )
            return "wait", (
                f"status still describes revision {latest_created}, which failed before this write (the "
                "controller has not made the new revision yet)"
            )
        if self.mode == STANDARD:
            failed = self._standard_failure(status)
            if failed:
                return "failed", failed
        if ready.get("status") != "True":
            state = f"{ready.get('status', 'missing')} {ready.get('reason', '')} {ready.get('message', '')}"
            return "wait", f"Ready={state.strip()}"
        if self.mode == KNATIVE:
            return self._check_knative(predictor, latest_created, latest_ready)
        return self._check_standard(obj, status)

    def _knative_failure_is_ours(self, latest_created: str, status: dict) -> bool:
        if self.before_revision is None or latest_created != self.before_revision:
            return True
        # KServe's lastFailureInfo may name the revision it is about (modelRevisionName): a new one is ours.
        failure = _model_failure(status.get("modelStatus")) or {}
        named = (failure.get("lastFailureInfo") or {}).get("modelRevisionName") or ""
        recorded = ((self.before_failure or {}).get("lastFailureInfo") or {}).get("modelRevisionName") or ""
        return bool(named) and named not in (self.before_revision, recorded)

    def _standard_failure(self, status: dict) -> str:
        """Say why a Standard-mode write failed according to ``modelStatus``, or "" if it did not.

        A failure identical to the one recorded before the write is the old one and does not count.
        """
        if self.canary_name:
            entry = next((c for c in status.get("canaryStatuses") or [] if c.get("name") == self.canary_name), {})
            failure = _model_failure(entry.get("modelStatus"))
            if failure and failure != self.before_canary_failure and not entry.get("ready"):
                return f"canary {self.canary_name!r} failed: {_describe_failure(failure)}"
            return ""
        failure = _model_failure(status.get("modelStatus"))
        if failure and failure != self.before_failure:
            return f"predictor failed: {_describe_failure(failure)}"
        return ""

    def _check_knative(self, predictor: dict, latest_created: str, latest_ready: str) -> tuple[str, str]:
        if not latest_ready:
            return "wait", "no ready revision yet"
        if latest_created and latest_created != latest_ready:
            return "wait", f"latest created revision {latest_created} not ready yet (latest ready {latest_ready})"
        if self.not_revision and latest_ready == self.not_revision:
            return "wait", f"latest ready revision is still the old one ({latest_ready})"
        traffic = predictor.get("traffic") or []
        latest = sum(int(t.get("percent") or 0) for t in traffic if t.get("latestRevision"))
        latest_names = {t.get("revisionName") for t in traffic if t.get("latestRevision")}
        others = [t for t in traffic if not t.get("latestRevision")]
        rest = sum(int(t.get("percent") or 0) for t in others)
        shown = ", ".join(f"{t.get('revisionName')}={t.get('percent')}%" for t in traffic) or "none"
        if latest_names and latest_names != {latest_ready}:
            return "wait", f"traffic latest revision {sorted(latest_names)} != latest ready {latest_ready}"
        if latest != self.latest_percent or latest + rest != 100:
            return "wait", f"traffic {shown}"
        if rest and any(t.get("revisionName") == latest_ready for t in others):
            return "wait", f"traffic split over one revision ({shown})"
        return "ok", f"traffic {shown}"

    def _check_standard(self, obj: dict, status: dict) -> tuple[str, str]:
        canaries = status.get("canaryStatuses") or []
        if self.no_canaries:
            if canaries:
                return "wait", f"canaries still reported: {canaries}"
            return "ok", "ready, no canary"
        if self.canary_name:
            entry = next((c for c in canaries if c.get("name") == self.canary_name), None)
            if entry is None:
                return "wait", f"no status for canary {self.canary_name!r} yet"
            if not entry.get("ready"):
                return "wait", f"canary {self.canary_name!r} not ready"
            if int(entry.get("trafficPercent") or 0) != self.canary_percent:
                return "wait", f"canary {self.canary_name!r} at {entry.get('trafficPercent')}%"
            cond = _condition(obj, "CanaryPredictorReady")
            if cond and cond.get("status") != "True":
                return "wait", f"CanaryPredictorReady={cond.get('status')} {cond.get('reason', '')}"
            return "ok", f"canary {self.canary_name!r} ready at {self.canary_percent}%"
        return "ok", "ready"


class WaitFailed(DeployError):
    """The controller reported a failure, or the wait timed out; carries the last object seen."""

    def __init__(self, message: str, obj: dict | None, timed_out: bool) -> None:
        """Keep the last object and whether the wait ran out of time."""
        super().__init__(message)
        self.obj = obj
        self.timed_out = timed_out


def wait_for(
    api_client: Any,
    namespace: str,
    name: str,
    expectation: Expectation,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Poll the InferenceService until ``expectation`` holds; return the object.

    Raises:
        WaitFailed: With what was awaited and what status said, on a reported failure or a timeout.
    """
    import urllib3

    deadline = time.monotonic() + timeout_seconds
    interval = 0.1
    last = "nothing read yet"
    obj = None
    while True:
        try:
            current = _get(api_client, namespace, name)
        except (DeployError, urllib3.exceptions.HTTPError, OSError) as exc:
            if getattr(exc, "http_status", None) in (401, 403):
                raise  # a permission problem does not go away by waiting
            current, verdict, last = None, "wait", f"API error while reading ({exc}); retrying"
        else:
            if current is None:
                raise WaitFailed(f"InferenceService {namespace}/{name} disappeared while waiting", obj, False)
            obj = current
            verdict, last = expectation.check(obj)
        if verdict == "ok":
            return obj
        if verdict == "failed":
            raise WaitFailed(
                f"InferenceService {namespace}/{name} failed while waiting for {expectation.describe()}: {last}",
                obj,
                False,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitFailed(
                f"timed out after {timeout_seconds:g}s waiting for {expectation.describe()} on InferenceService "
                f"{namespace}/{name}; last status: {last}",
                obj,
                True,
            )
        sleep(min(interval, remaining))
        interval = min(interval * 1.5, _MAX_POLL_INTERVAL_S)


# --------------------------------------------------------------------------------------------------------
# Deploy planning
# --------------------------------------------------------------------------------------------------------


def _canary_name(storage_uri: str) -> str:
    """Return a stable Standard-mode canary name for a model: ``m`` + 10 hex digits of its URI's sha256."""
    return "m" + hashlib.sha256(storage_uri.encode()).hexdigest()[:10]


def _merge_diff(current: Any, target: Any) -> Any:
    """Return the JSON merge patch (RFC 7386) that turns ``current`` into exactly ``target``.

    Keys of ``current`` that ``target`` lacks become ``null`` at every depth, so nested maps (``resources``)
    end up replaced rather than merged: no old ``requests`` survive next to new ``limits``.
    """
    if not isinstance(current, dict) or not isinstance(target, dict):
        return copy.deepcopy(target)
    patch: dict[str, Any] = {}
    for key, value in target.items():
        if key not in current:
            patch[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(current[key], dict):
            sub = _merge_diff(current[key], value)
            if sub:
                patch[key] = sub
        elif current[key] != value:
            patch[key] = copy.deepcopy(value)
    for key in current:
        if key not in target:
            patch[key] = None
    return patch


def _model_patch(existing_model: dict, desired_model: dict) -> dict:
    """Merge-patch body turning ``existing_model`` into ``desired_model``.

    Fields we no longer set (runtime, resources) become null, and ``resources`` is replaced as a whole; other
    fields someone added to the model (env, args, ...) are left alone.
    """
    patch: dict[str, Any] = copy.deepcopy(desired_model)
    for key in ("runtime", "resources"):
        if key in existing_model and key not in desired_model:
            patch[key] = None
    if isinstance(desired_model.get("resources"), dict) and isinstance(existing_model.get("resources"), dict):
        patch["resources"] = _merge_diff(existing_model["resources"], desired_model["resources"])
    return patch


def _spec_matches(existing: dict, desired_predictor: dict, mode: str) -> bool:
    """Whether the model the service is moving to is already the desired one (same URI and settings)."""
    if mode == STANDARD and _canaries(existing):
        current = _canaries(existing)[0].get("predictor") or {}
    else:
        current = _predictor(existing)
    model = current.get("model") or {}
    want = desired_predictor["model"]
    keys = ("storageUri", "runtime", "protocolVersion", "modelFormat", "resources")
    same_model = all(model.get(k) == want.get(k) for k in keys)
    same_sa = (current.get("serviceAccountName") or _predictor(existing).get("serviceAccountName") or "") == (
        desired_predictor.get("serviceAccountName") or ""
    )
    return same_model and same_sa


def _current_expectation(obj: dict) -> Expectation:
    """Return the expectation matching an object's current spec (used when nothing is written)."""
    mode = mode_of(obj)
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    if mode == STANDARD:
        canaries = _canaries(obj)
        if canaries:
            return Expectation(
                generation,
                mode,
                canary_name=canaries[0]["predictor"].get("name", ""),
                canary_percent=int(canaries[0].get("trafficPercent") or 0),
            )
        return Expectation(generation, mode, no_canaries=True)
    percent = _predictor(obj).get("canaryTrafficPercent")
    status = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
    if percent is None or not status.get("latestRolledoutRevision"):
        return Expectation(generation, mode, latest_percent=100)
    return Expectation(generation, mode, latest_percent=int(percent))


def _ns_name(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


# --------------------------------------------------------------------------------------------------------
# Plans: what a call writes, planned from one read of the object
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Plan:
    """One write planned from one read: ``kind`` create, patch or unchanged (nothing to write)."""

    kind: str
    body: dict | None
    expect: Callable[[int], Expectation]
    action: str
    note: str
    stable_uri: str = ""


def _writer_view(obj: dict | None) -> str:
    """Return what other writers change (spec, labels, annotations), not the controller's ``status``."""
    if obj is None:
        return ""
    meta = obj.get("metadata") or {}
    return json.dumps([obj.get("spec"), meta.get("labels"), meta.get("annotations")], sort_keys=True)


def _guarded(body: dict, obj: dict) -> dict:
    """Add the ``metadata.resourceVersion`` the plan was made from to a merge patch.

    The API server then refuses the patch with 409 Conflict if anyone wrote the object since (optimistic
    concurrency).
    """
    guarded = dict(body)
    guarded["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": obj["metadata"]["resourceVersion"]}
    return guarded


def _write(
    api: Any,
    namespace: str,
    name: str,
    obj: dict | None,
    planner: Callable[[dict | None], _Plan],
    what: str,
    unwritten: str = "nothing was written by this call",
) -> tuple[dict | None, _Plan, dict | None]:
    """Plan from ``obj``, write (create, or merge patch carrying ``obj``'s resourceVersion), and re-plan on 409.

    A 409 means the object changed between the read and the write. If another writer changed its spec,
    labels or annotations, the object is re-read and the write planned again, once; a second such conflict
    fails. A change of ``status`` only (the controller) is not a competing writer: re-planned up to
    ``_MAX_STATUS_CONFLICTS`` times.

    Returns:
        ``(object planned from, plan, object the write returned or None when the plan is "unchanged")``.

    Raises:
        DeployError: On a second conflict with another writer, or any other API error.
    """
    writers = status_only = 0
    while True:
        plan = planner(obj)
        if plan.kind == "unchanged":
            return obj, plan, None
        try:
            if plan.kind == "create":
                return obj, plan, _create(api, namespace, plan.body or {})
            assert obj is not None and plan.body is not None
            return obj, plan, _merge_patch(api, namespace, name, _guarded(plan.body, obj))
        except DeployError as exc:
            if getattr(exc, "http_status", None) != 409:
                raise
            fresh = _get(api, namespace, name)
            if obj is not None and fresh is not None and _writer_view(fresh) == _writer_view(obj):
                if status_only < _MAX_STATUS_CONFLICTS:
                    status_only += 1
                    obj = fresh
                    continue
            elif writers < 1:
                writers += 1
                obj = fresh
                continue
            version = (obj or {}).get("metadata", {}).get("resourceVersion", "none (create)")
            raise DeployError(
                f"{what}: InferenceService {namespace}/{name} was changed by another writer between this call's "
                f"read and its write, again after re-reading and planning once more (HTTP 409 Conflict: the write "
                f"carried metadata.resourceVersion {version}, which is no longer current); {unwritten}. Another "
                "deploy/promote/rollback or a kubectl apply is changing it: let that finish, then run this again"
            ) from exc


def _stable_predictor_json(existing: dict, mode: str) -> str | None:
    """Return the predictor a rollback returns to once the next model is written, as the annotation's JSON.

    Knative during a canary: the one recorded when the canary started (the spec holds the canary's model).
    Otherwise the current predictor (Standard keeps canaries in ``spec.canary``), without
    ``canaryTrafficPercent``.
    """
    if mode == KNATIVE and rollout_state(existing) == STATE_CANARY:
        return _annotations(existing).get(PREVIOUS_PREDICTOR_ANNOTATION) or None
    predictor = copy.deepcopy(_predictor(existing))
    predictor.pop("canaryTrafficPercent", None)
    return json.dumps(predictor, sort_keys=True, separators=(",", ":"))


def _recorded_predictor(obj: dict, previous_uri: str) -> tuple[dict | None, str]:
    """Return the predictor recorded in ``kfp-tabular.dev/previous-predictor`` if it is ``previous_uri``'s.

    Returns:
        ``(predictor or None, note)``: None when there is no usable record (an InferenceService deployed by an
        older version, or by ``kubectl apply`` of an overlay): then only the storageUri is reverted.
    """
    raw = _annotations(obj).get(PREVIOUS_PREDICTOR_ANNOTATION)
    if not raw:
        return None, ""
    try:
        recorded = json.loads(raw)
    except ValueError:
        recorded = None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("model"), dict):
        return None, f" (annotation {PREVIOUS_PREDICTOR_ANNOTATION} is not a predictor: only storageUri reverted)"
    if recorded["model"].get("storageUri") != previous_uri:
        return None, (
            f" (annotation {PREVIOUS_PREDICTOR_ANNOTATION} describes {recorded['model'].get('storageUri')!r}, "
            "not the previous model: only storageUri reverted)"
        )
    return recorded, ""


def _rollback_plan(obj: dict) -> _Plan:
    """Plan a rollback of ``obj``'s current rollout (the merge patch, what to wait for, what it does)."""
    ns_name = _ns_name(obj)
    mode = mode_of(obj)
    state = rollout_state(obj)
    if state == STATE_ROLLED_BACK:
        return _Plan("unchanged", None, lambda gen: _current_expectation(obj), "unchanged", "already rolled back")
    annotations = _annotations(obj)
    previous = annotations.get(PREVIOUS_URI_ANNOTATION, "")
    status = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
    if mode == STANDARD and state == STATE_CANARY:
        canary = _canaries(obj)
        bad = ((canary[0].get("predictor") or {}).get("model") or {}).get("storageUri", "") if canary else ""
        patch = {
            "metadata": {
                "annotations": {ROLLOUT_STATE_ANNOTATION: STATE_ROLLED_BACK, ROLLED_BACK_FROM_ANNOTATION: bad or None}
            },
            "spec": {"canary": None},
        }
        baseline = _baseline(obj, new_revision=False)
        return _Plan(
            "patch",
            patch,
            lambda gen: Expectation(gen, mode, no_canaries=True, **baseline),
            "rolled-back",
            f"canary {bad} removed",
        )
    if not previous:
        raise ConfigError(
            f"InferenceService {ns_name} has no {PREVIOUS_URI_ANNOTATION} annotation: there is no previous model "
            "to roll back to"
        )
    current = _predictor_uri(obj)
    meta = {
        "annotations": {
            ROLLOUT_STATE_ANNOTATION: STATE_ROLLED_BACK,
            ROLLED_BACK_FROM_ANNOTATION: current,
            PREVIOUS_URI_ANNOTATION: None,
            PREVIOUS_PREDICTOR_NAME_ANNOTATION: None,
            PREVIOUS_PREDICTOR_ANNOTATION: None,
        }
    }
    recorded, note = _recorded_predictor(obj, previous)
    current_predictor = {k: v for k, v in _predictor(obj).items() if k != "canaryTrafficPercent"}
    if recorded is not None:
        # Everything of the previous predictor (runtime, resources, service account, ...), fields it did not
        # have removed.
        predictor = _merge_diff(current_predictor, recorded)
        restored = f"model reverted to {previous}, whole previous predictor restored"
    else:
        predictor = {"model": {"storageUri": previous}}
        if mode == STANDARD:
            predictor["name"] = annotations.get(PREVIOUS_PREDICTOR_NAME_ANNOTATION) or None
        restored = f"model reverted to {previous}{note}"
    if mode == STANDARD:
        patch = {"metadata": meta, "spec": {"predictor": predictor, "canary": None}}
        baseline = _baseline(obj, new_revision=False)
        return _Plan(
            "patch", patch, lambda gen: Expectation(gen, mode, no_canaries=True, **baseline), "rolled-back", restored
        )
    old_revision = status.get("latestReadyRevision", "")
    rolled_out = status.get("latestRolledoutRevision", "")
    baseline = _baseline(obj, new_revision=True)
    if state == STATE_CANARY and rolled_out and old_revision and old_revision != rolled_out:
        # A ready canary revision takes part of the traffic: pin 100% on the previously rolled-out revision
        # and revert the predictor, so the revision KServe creates next serves the previous model as well.
        predictor["canaryTrafficPercent"] = 0
        return _Plan(
            "patch",
            {"metadata": meta, "spec": {"predictor": predictor}},
            lambda gen: Expectation(gen, mode, latest_percent=0, not_revision=old_revision, **baseline),
            "rolled-back",
            f"{restored}, 100% of the traffic pinned on revision {rolled_out}",
        )
    # Either the new revision never became ready (Knative still routes to the last ready one, the previous
    # model), or the model was promoted (a pin would keep the promoted revision serving: KServe pins the last
    # rolled-out revision). Revert without a pin: the new revision takes all the traffic.
    predictor["canaryTrafficPercent"] = None
    return _Plan(
        "patch",
        {"metadata": meta, "spec": {"predictor": predictor}},
        lambda gen: Expectation(gen, mode, latest_percent=100, not_revision=old_revision, **baseline),
        "rolled-back",
        f"{restored}, canaryTrafficPercent removed; the new revision takes 100% of the traffic",
    )


def _apply_rollback(
    api_client: Any, obj: dict, timeout_seconds: float, unwritten: str = "nothing was written by this call"
) -> tuple[dict, str]:
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]

    def planner(current: dict | None) -> _Plan:
        if current is None:
            raise DeployError(f"InferenceService {namespace}/{name} not found")
        return _rollback_plan(current)

    planned_from, plan, written = _write(
        api_client, namespace, name, obj, planner, f"rollback of {namespace}/{name}", unwritten
    )
    if written is None:
        assert planned_from is not None
        done = wait_for(api_client, namespace, name, _current_expectation(planned_from), timeout_seconds)
        return done, plan.note
    done = wait_for(api_client, namespace, name, plan.expect(int(written["metadata"]["generation"])), timeout_seconds)
    return done, plan.note


def _require_ready_canary(obj: dict) -> None:
    """Refuse to promote a canary that is not ready: nothing is written."""
    status = obj.get("status") or {}
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    head = f"InferenceService {_ns_name(obj)} is not a ready canary, so it is not promoted (nothing changed): "
    tail = "; wait until the canary is ready (get_status), or roll it back"
    if observed < generation:
        raise ConfigError(f"{head}the controller has not seen generation {generation} yet (observed {observed}){tail}")
    if mode_of(obj) == STANDARD:
        cname = ((_canaries(obj)[0].get("predictor") or {}).get("name")) or ""
        entry = _canary_status(obj, cname)
        if not entry:
            raise ConfigError(f"{head}canary {cname!r} has no status yet{tail}")
        if not entry.get("ready"):
            failure = _model_failure(entry.get("modelStatus"))
            why = _describe_failure(failure) if failure else "not ready"
            raise ConfigError(f"{head}canary {cname!r}: {why}{tail}")
        return
    ready = _condition(obj, "Ready")
    predictor = (status.get("components") or {}).get("predictor") or {}
    created = predictor.get("latestCreatedRevision") or ""
    latest_ready = predictor.get("latestReadyRevision") or ""
    if ready.get("status") != "True" or not created or created != latest_ready:
        cond = " ".join(x for x in (ready.get("status", "missing"), ready.get("reason", "")) if x)
        message = f" ({ready['message']})" if ready.get("message") else ""
        raise ConfigError(
            f"{head}Ready={cond}{message}, latest created revision {created or 'none'}, latest ready revision "
            f"{latest_ready or 'none'}{tail}"
        )


def _promote_plan(obj: dict, check_health: bool = True, action: str = "promoted") -> _Plan:
    """Plan the promotion of ``obj``'s canary (or "unchanged" when there is none)."""
    ns_name = _ns_name(obj)
    mode = mode_of(obj)
    if rollout_state(obj) == STATE_ROLLED_BACK:
        raise ConfigError(
            f"InferenceService {ns_name} was rolled back from "
            f"{_annotations(obj).get(ROLLED_BACK_FROM_ANNOTATION, 'its canary')}: there is no canary to promote; "
            "deploy a new model instead"
        )
    unchanged = _Plan("unchanged", None, lambda gen: _current_expectation(obj), "unchanged", "no canary to promote")
    annotations: dict[str, Any] = {ROLLOUT_STATE_ANNOTATION: STATE_STABLE}
    if mode == STANDARD:
        canaries = _canaries(obj)
        if not canaries:
            return unchanged
        if len(canaries) != 1:
            raise ConfigError(f"InferenceService {ns_name} has {len(canaries)} canaries; promote expects one")
        if check_health:
            _require_ready_canary(obj)
        canary_predictor = canaries[0].get("predictor") or {}
        stable = _predictor(obj)
        annotations[PREVIOUS_PREDICTOR_NAME_ANNOTATION] = stable.get("name") or None
        predictor_patch = {
            "name": canary_predictor.get("name"),
            "model": _model_patch(stable.get("model") or {}, canary_predictor.get("model") or {}),
            "serviceAccountName": canary_predictor.get("serviceAccountName") or None,
        }
        body = {"metadata": {"annotations": annotations}, "spec": {"predictor": predictor_patch, "canary": None}}
        baseline = _baseline(obj, new_revision=False)
        uri = (canary_predictor.get("model") or {}).get("storageUri", "")
        expect = lambda gen: Expectation(gen, mode, no_canaries=True, **baseline)  # noqa: E731
    else:
        if _predictor(obj).get("canaryTrafficPercent") is None:
            return unchanged
        if check_health:
            _require_ready_canary(obj)
        body = {"metadata": {"annotations": annotations}, "spec": {"predictor": {"canaryTrafficPercent": None}}}
        uri = _predictor_uri(obj)
        expect = lambda gen: Expectation(gen, mode, latest_percent=100)  # noqa: E731
    return _Plan("patch", body, expect, action, f"{uri} takes 100% of the traffic")


def _retarget_plan(existing: dict, mode: str, want: int | None, storage_uri: str) -> _Plan:
    """Plan a deploy of the model already there: move its canary's traffic to ``want`` percent (None: 100%)."""
    unchanged = _Plan(
        "unchanged",
        None,
        lambda gen: _current_expectation(existing),
        "unchanged",
        f"{storage_uri} is already deployed; nothing written",
    )
    if rollout_state(existing) != STATE_CANARY:
        return unchanged
    previous = _annotations(existing).get(PREVIOUS_URI_ANNOTATION, "") or "the previous model"
    if want is None:
        try:
            plan = _promote_plan(existing, check_health=False, action="rolled-out")
        except ConfigError:
            return unchanged
        if plan.kind == "patch":
            plan.note = f"{storage_uri} (the canary) now takes 100% of the traffic (previous: {previous})"
        return plan
    if mode == KNATIVE:
        current = _predictor(existing).get("canaryTrafficPercent")
        if current is None or current == want:
            return unchanged
        body = {"spec": {"predictor": {"canaryTrafficPercent": want}}}
        # No new revision: a failed latest revision is current, so no baseline.
        expect = lambda gen: Expectation(gen, mode, latest_percent=want)  # noqa: E731
    else:
        canaries = _canaries(existing)
        if len(canaries) != 1:
            return unchanged
        current = canaries[0].get("trafficPercent")
        if current == want:
            return unchanged
        entry = copy.deepcopy(canaries[0])
        entry["trafficPercent"] = want
        cname = (entry.get("predictor") or {}).get("name", "")
        body = {"spec": {"canary": [entry]}}
        baseline = _baseline(existing, new_revision=False, canary_name=cname)
        expect = lambda gen: Expectation(gen, mode, canary_name=cname, canary_percent=want, **baseline)  # noqa: E731
    note = f"{storage_uri} at {want}% of the traffic (was {current}%), {previous} at {100 - want}%"
    return _Plan("patch", body, expect, "canary", note)


def _plan_deploy(
    api: Any,
    existing: dict | None,
    desired: dict,
    storage_uri: str,
    percent: int | None,
    mode: str,
    render_kwargs: dict,
) -> _Plan:
    """Plan a deploy of ``desired`` (as rendered) against ``existing`` (None: not there yet)."""
    desired = copy.deepcopy(desired)
    namespace, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
    desired_predictor = desired["spec"]["predictor"]
    if existing is None:
        desired["metadata"]["annotations"][ROLLOUT_STATE_ANNOTATION] = STATE_STABLE
        return _Plan(
            "create",
            desired,
            lambda gen: Expectation(gen, mode, latest_percent=100, no_canaries=True),
            "created",
            f"created with {storage_uri} taking 100% of the traffic",
        )
    existing_mode = mode_of(existing)
    if existing_mode != mode:
        raise ConfigError(
            f"deployment_mode: InferenceService {namespace}/{name} runs in {existing_mode} mode, asked for {mode}; "
            "KServe cannot switch an InferenceService's mode in place"
        )
    # An empty runtime / service account means "not specified": keep what the service already has.
    if not render_kwargs.get("runtime") and (_predictor(existing).get("model") or {}).get("runtime"):
        desired_predictor["model"]["runtime"] = _predictor(existing)["model"]["runtime"]
    if not render_kwargs.get("service_account_name") and _predictor(existing).get("serviceAccountName"):
        desired_predictor["serviceAccountName"] = _predictor(existing)["serviceAccountName"]
    canary = percent is not None and percent < 100
    if _spec_matches(existing, desired_predictor, mode):
        return _retarget_plan(existing, mode, percent if canary else None, storage_uri)

    state = rollout_state(existing)
    annotations = _annotations(existing)
    status = ((existing.get("status") or {}).get("components") or {}).get("predictor") or {}
    note = ""
    meta_patch: dict[str, Any] = {
        "labels": desired["metadata"]["labels"],
        "annotations": {ROLLED_BACK_FROM_ANNOTATION: None},
    }
    if mode == KNATIVE:
        stable_uri = annotations.get(PREVIOUS_URI_ANNOTATION, "") if state == STATE_CANARY else _predictor_uri(existing)
        stable_uri = stable_uri or _predictor_uri(existing)
        if canary and not status.get("latestRolledoutRevision"):
            canary, note = False, "no revision was ever rolled out, so the model takes 100% (no canary)"
        predictor_patch: dict[str, Any] = {
            "model": _model_patch(_predictor(existing).get("model") or {}, desired_predictor["model"]),
            "canaryTrafficPercent": percent if canary else None,
            "serviceAccountName": desired_predictor.get("serviceAccountName") or None,
        }
        spec_patch: dict[str, Any] = {"predictor": predictor_patch}
        old_revision = status.get("latestReadyRevision", "")
        latest_percent = percent if canary and percent is not None else 100
        baseline = _baseline(existing, new_revision=True)

        def expect(gen: int) -> Expectation:
            return Expectation(gen, mode, latest_percent=latest_percent, not_revision=old_revision, **baseline)

    else:
        stable_uri = _predictor_uri(existing)
        if canary and not standard_canary_supported(api, namespace):
            raise ConfigError(
                "canary_traffic_percent: Standard mode has no canary in this cluster's KServe (its InferenceService "
                "CRD has no spec.canary, added in KServe 0.20; older versions silently ignore canaryTrafficPercent "
                "in this mode, see KServe #5335/#4074). Use deployment_mode=Knative, upgrade KServe, or pass "
                "canary_traffic_percent=None for a full rollout"
            )
        if canary:
            cname = _canary_name(storage_uri)
            # The canary's model is a full Container in the CRD: its container name is required.
            canary_model = {"name": "kserve-container", **desired_predictor["model"]}
            canary_predictor = {"name": cname, "model": canary_model}
            if desired_predictor.get("serviceAccountName"):
                canary_predictor["serviceAccountName"] = desired_predictor["serviceAccountName"]
            spec_patch = {"canary": [{"trafficPercent": percent, "predictor": canary_predictor}]}
            canary_percent = int(percent or 0)
            baseline = _baseline(existing, new_revision=False, canary_name=cname)

            def expect(gen: int) -> Expectation:
                return Expectation(gen, mode, canary_name=cname, canary_percent=canary_percent, **baseline)

        else:
            spec_patch = {
                "predictor": {
                    "model": _model_patch(_predictor(existing).get("model") or {}, desired_predictor["model"]),
                    "serviceAccountName": desired_predictor.get("serviceAccountName") or None,
                },
                "canary": None,
            }
            baseline = _baseline(existing, new_revision=False)

            def expect(gen: int) -> Expectation:
                return Expectation(gen, mode, no_canaries=True, **baseline)

        meta_patch["annotations"][PREVIOUS_PREDICTOR_NAME_ANNOTATION] = _predictor(existing).get("name") or None
    meta_patch["annotations"][PREVIOUS_URI_ANNOTATION] = stable_uri or None
    meta_patch["annotations"][PREVIOUS_PREDICTOR_ANNOTATION] = _stable_predictor_json(existing, mode)
    meta_patch["annotations"][ROLLOUT_STATE_ANNOTATION] = STATE_CANARY if canary else STATE_STABLE
    if not note:
        note = (
            f"{storage_uri} at {percent}% of the traffic, {stable_uri} at {100 - int(percent or 0)}%"
            if canary
            else f"{storage_uri} rolled out to 100% of the traffic (previous: {stable_uri})"
        )
    return _Plan(
        "patch",
        {"metadata": meta_patch, "spec": spec_patch},
        expect,
        "canary" if canary else "rolled-out",
        note,
        stable_uri,
    )


# --------------------------------------------------------------------------------------------------------
# Deploy, promote, rollback
# --------------------------------------------------------------------------------------------------------


def deploy(
    name: str,
    namespace: str,
    storage_uri: str,
    canary_traffic_percent: int | None = 10,
    deployment_mode: str = "Knative",
    timeout_seconds: float = 600,
    api_client: Any = None,
    **render_kwargs: Any,
) -> DeployStatus:
    """Deploy a model: create the InferenceService, or canary the new model on the existing one.

    * Absent: created with the model taking 100% of the traffic (a canary needs a previous model).
    * Already moving to the same model with the same settings: nothing is written ("unchanged"); the call
      still waits for that state to be ready. If that model is a canary and another percent is asked for,
      only the split changes (Knative ``canaryTrafficPercent``, Standard the canary's ``trafficPercent``);
      None or 100 rolls the canary out fully.
    * Otherwise: the predictor's model is patched. Knative mode with ``canary_traffic_percent`` N < 100 sets
      ``canaryTrafficPercent: N``; Standard mode writes one ``spec.canary[]`` entry when the CRD has that
      field (else ConfigError); None or 100 rolls the model out fully. The previous storageUri and the whole
      previous predictor (JSON) are recorded in the ``kfp-tabular.dev/previous-storage-uri`` and
      ``kfp-tabular.dev/previous-predictor`` annotations.

    Every patch carries the ``metadata.resourceVersion`` it was planned from, so a concurrent writer makes
    the API server answer 409: the object is re-read and the write planned again once, then the call fails.

    The call then waits until ``status.observedGeneration`` reaches the generation the write returned, Ready
    is True and the traffic shows the intended split; a failure ``status`` reported before the write does
    not count. On a reported failure or a timeout it rolls back (the previous predictor restored and all
    traffic on the previously rolled-out revision) and raises DeployError saying what it waited for and what
    status said.

    Args:
        name: InferenceService name (DNS-1035 label).
        namespace: Namespace.
        storage_uri: The model's storageUri (``s3://``, ``gs://``, ``pvc://``, ``https://``, ``hdfs://``).
        canary_traffic_percent: Percent of traffic for the new model, or None/100 for a full rollout.
        deployment_mode: Knative or Standard (aliases Serverless, RawDeployment).
        timeout_seconds: How long to wait for the controller (and again for a rollback).
        api_client: A ``kubernetes.client.ApiClient``; default :func:`load_api_client`.
        **render_kwargs: ``runtime``, ``service_account_name``, ``protocol_version``, ``resources``,
            ``labels``, ``annotations`` as for :func:`render_inference_service`. An empty ``runtime`` or
            ``service_account_name`` keeps the existing service's value.

    Returns:
        The :class:`DeployStatus` once the rollout is where it should be.

    Raises:
        ConfigError: Invalid parameters, a mode change, or a Standard canary the cluster cannot do.
        DeployError: The rollout failed or timed out (after rolling back), a concurrent writer won twice, or
            the API refused a call.
    """
    unknown = sorted(set(render_kwargs) - set(_RENDER_KWARGS))
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)}: unknown deploy option(s); expected some of {', '.join(_RENDER_KWARGS)}"
        )
    mode = normalize_deployment_mode(deployment_mode)
    check_storage_uri(storage_uri)
    percent = _check_percent(canary_traffic_percent)
    timeout = _check_timeout(timeout_seconds)
    desired = render_inference_service(name, namespace, storage_uri, None, mode, **render_kwargs)
    api = api_client or load_api_client()

    def planner(existing: dict | None) -> _Plan:
        return _plan_deploy(api, existing, desired, storage_uri, percent, mode, render_kwargs)

    what = f"deploying {storage_uri} to {namespace}/{name}"
    existing, plan, written = _write(api, namespace, name, _get(api, namespace, name), planner, what)
    if written is None:
        assert existing is not None
        try:
            obj = wait_for(api, namespace, name, plan.expect(0), timeout)
        except WaitFailed as exc:
            raise DeployError(
                f"InferenceService {namespace}/{name} already specifies {storage_uri} but is not ready: {exc}; "
                "nothing was changed"
            ) from exc
        return status_from_object(obj, "unchanged", plan.note)
    expectation = plan.expect(int(written["metadata"]["generation"]))
    if plan.kind == "create":
        try:
            obj = wait_for(api, namespace, name, expectation, timeout)
        except WaitFailed as exc:
            raise DeployError(
                f"first deployment of {storage_uri} did not become ready: {exc}. There is no previous model to roll "
                f"back to: InferenceService {namespace}/{name} exists but serves nothing; fix the model or runtime "
                "and deploy again"
            ) from exc
        return status_from_object(obj, plan.action, plan.note)
    try:
        obj = wait_for(api, namespace, name, expectation, timeout)
    except WaitFailed as exc:
        failure = str(exc)
        stable_uri = plan.stable_uri or _annotations(written).get(PREVIOUS_URI_ANNOTATION, "") or "the previous model"
        try:
            current = _get(api, namespace, name) or written
            _, rolled = _apply_rollback(api, current, timeout, unwritten="the rollback was not written")
        except (DeployError, ConfigError) as rollback_exc:
            raise DeployError(
                f"{what} failed: {failure}. The rollback to {stable_uri} was attempted but did not complete: "
                f"{rollback_exc}"
            ) from exc
        raise DeployError(f"{what} failed: {failure}. Rolled back: {rolled}") from exc
    return status_from_object(obj, plan.action, plan.note)


def promote(name: str, namespace: str, api_client: Any = None, timeout_seconds: float = 600) -> DeployStatus:
    """Promote the canary: the latest model takes 100% of the traffic.

    Only a ready canary is promoted: Knative ``Ready`` True with the latest created revision ready,
    Standard the canary's ``canaryStatuses`` entry ready. Knative mode removes ``canaryTrafficPercent`` with
    a JSON merge patch (``null``); Standard mode makes the canary entry the predictor and empties
    ``spec.canary``. Promoting with no canary in progress changes nothing ("unchanged").

    Raises:
        ConfigError: After a rollback (deploy a new model instead), when the canary is not ready (nothing
            written), or an unexpected canary layout.
        DeployError: If the API refuses the patch or the promotion does not show in status in time.
    """
    _check_dns1035(name, "name")
    _check_namespace(namespace)
    timeout = _check_timeout(timeout_seconds)
    api = api_client or load_api_client()
    obj = _require(api, namespace, name)

    def planner(current: dict | None) -> _Plan:
        if current is None:
            raise DeployError(f"InferenceService {namespace}/{name} not found")
        return _promote_plan(current)

    planned_from, plan, written = _write(api, namespace, name, obj, planner, f"promotion of {namespace}/{name}")
    if written is None:
        assert planned_from is not None
        return _unchanged(api, planned_from, timeout, plan.note)
    expectation = plan.expect(int(written["metadata"]["generation"]))
    try:
        done = wait_for(api, namespace, name, expectation, timeout)
    except WaitFailed as exc:
        raise DeployError(
            f"promotion of {namespace}/{name} was written but not confirmed: {exc}. The canary field is removed; "
            "run rollback to return to the previous model"
        ) from exc
    return status_from_object(done, "promoted", f"{_predictor_uri(done)} takes 100% of the traffic")


def rollback(name: str, namespace: str, api_client: Any = None, timeout_seconds: float = 600) -> DeployStatus:
    """Roll back to the previous model.

    The whole previous predictor recorded at deploy time (``kfp-tabular.dev/previous-predictor``: model with
    runtime, resources, protocol, format, and the service account) is restored; without that record (an
    older deployment, ``kubectl apply``) only the storageUri is reverted. Knative mode during a canary:
    ``canaryTrafficPercent: 0`` also pins all traffic on the previously rolled-out revision. After a
    promotion KServe would pin the promoted revision, so the predictor is reverted without a pin and the new
    revision (serving the previous model) takes the traffic. Standard mode removes the canary entry, or
    restores the predictor after a promotion. Rolling back twice changes nothing the second time
    ("unchanged").

    Raises:
        ConfigError: If there is no previous model recorded.
        DeployError: If the API refuses the patch or the rollback does not show in status in time.
    """
    _check_dns1035(name, "name")
    _check_namespace(namespace)
    timeout = _check_timeout(timeout_seconds)
    api = api_client or load_api_client()
    obj = _require(api, namespace, name)
    if rollout_state(obj) == STATE_ROLLED_BACK:
        return _unchanged(api, obj, timeout, "already rolled back")
    try:
        done, what = _apply_rollback(api, obj, timeout)
    except WaitFailed as exc:
        raise DeployError(f"rollback of {namespace}/{name} was written but not confirmed: {exc}") from exc
    return status_from_object(done, "unchanged" if what == "already rolled back" else "rolled-back", what)


def _unchanged(api: Any, obj: dict, timeout: float, note: str) -> DeployStatus:
    meta = obj["metadata"]
    try:
        done = wait_for(api, meta["namespace"], meta["name"], _current_expectation(obj), timeout)
    except WaitFailed as exc:
        where = f"{meta['namespace']}/{meta['name']}"
        raise DeployError(f"{note}, but InferenceService {where} is not ready: {exc}") from exc
    return status_from_object(done, "unchanged", note)


# --------------------------------------------------------------------------------------------------------
# What the components run
# --------------------------------------------------------------------------------------------------------


def _strip_server_fields(obj: dict) -> dict:
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


def deploy_action(
    *,
    action: str,
    blessing_path: str,
    model_uri: str,
    manifest_path: str,
    status_path: str,
    isvc_name: str,
    namespace: str,
    canary_traffic_percent: int | None = 10,
    deployment_mode: str = "Knative",
    storage_uri: str = "",
    runtime: str = "",
    service_account_name: str = "",
    kubeconfig_path: str = "",
    timeout_seconds: float = 600,
    api_client: Any = None,
    publish_uri: str = "",
    s3_endpoint_url: str = "",
    pvc_mount_root: str = "",
    model_path: str = "",
) -> dict:
    """Run the deploy component's logic: gate, then render or apply; write the manifest and status files.

    Args:
        action: ``render`` (write the InferenceService YAML, touch no cluster) or ``apply`` (deploy for real).
        blessing_path: The evaluator's blessing JSON.
        model_uri: The Model artifact's URI (``minio://...``, ``s3://...``, or a local path under kfp.local).
        manifest_path: Where to write the rendered/applied InferenceService YAML.
        status_path: Where to write the status JSON.
        isvc_name: InferenceService name.
        namespace: Namespace.
        canary_traffic_percent: Canary percent for a new model on an existing service (None/100: full).
        deployment_mode: Knative or Standard.
        storage_uri: Overrides the storageUri derived from ``model_uri`` (e.g. after publish_model).
        runtime: ServingRuntime name, empty for KServe's choice.
        service_account_name: Service account with the storage secret.
        kubeconfig_path: Kubeconfig for apply; empty: in-cluster or default kubeconfig.
        timeout_seconds: Wait limit for apply.
        api_client: Use this client instead of loading one (tests, CLI).
        publish_uri: ``s3://bucket/prefix`` or ``pvc://claim/path``: a blessed model is first published to
            ``<publish_uri>/<first 16 hex of its sha256>`` (publish_model) and served from there. Excludes
            ``storage_uri``.
        s3_endpoint_url: S3-compatible endpoint for publishing (MinIO); default from the environment.
        pvc_mount_root: Where the ``pvc://`` claim is mounted in this pod.
        model_path: The model directory on this machine (the artifact's local path), needed to publish.

    Returns:
        ``{"deployed": bool, "reason": str, "url": str, ...}``, the same dict written to ``status_path``.

    Raises:
        ConfigError, DataError: Bad parameters or blessing (nothing written).
        DeployError: The deployment failed and was rolled back (status file written with the reason).
    """
    if action not in ("render", "apply"):
        raise ConfigError(f"action: expected 'render' or 'apply', got {action!r}")
    _check_dns1035(isvc_name, "isvc_name")
    _check_namespace(namespace)
    mode = normalize_deployment_mode(deployment_mode)
    percent = _check_percent(canary_traffic_percent)
    _check_timeout(timeout_seconds)
    if storage_uri and publish_uri:
        raise ConfigError(
            f"storage_uri and publish_uri: give one (storage_uri={storage_uri!r} names an already published model, "
            f"publish_uri={publish_uri!r} publishes this one)"
        )
    if storage_uri:
        check_storage_uri(storage_uri, allow_local=action == "render")
    blessed, gate_reason = gate(blessing_path)
    base = {"action": action, "isvc_name": isvc_name, "namespace": namespace, "blessed": blessed, "gate": gate_reason}
    if not blessed:
        result = {**base, "deployed": False, "reason": gate_reason, "url": ""}
        artifacts.write_text(manifest_path, f"# Nothing rendered or applied: {gate_reason}\n")
        artifacts.write_json(status_path, result)
        return result
    if publish_uri:
        model_dir = model_path or model_uri
        digest = artifacts.sha256_file(Path(model_dir) / MODEL_FILES[0])[:16]
        storage_uri = publish_model(
            model_dir,
            f"{publish_uri.rstrip('/')}/{digest}",
            s3_endpoint_url=s3_endpoint_url,
            pvc_mount_root=pvc_mount_root,
        )
        base["published_to"] = storage_uri
    if action == "render":
        uri = storage_uri or model_storage_uri(model_uri, allow_local=True)
        manifest = render_inference_service(
            isvc_name,
            namespace,
            uri,
            canary_traffic_percent=percent if mode == KNATIVE and percent is not None and percent < 100 else None,
            deployment_mode=mode,
            runtime=runtime,
            service_account_name=service_account_name,
        )
        local = uri.startswith("file://")
        notes = [
            "canaryTrafficPercent only splits traffic on an existing InferenceService; a first deployment takes 100%"
            if mode == KNATIVE
            else "Standard mode: deploy (action=apply) writes the spec.canary[] entry; this manifest has none"
        ]
        if local:
            notes.append(
                "storageUri is a local file:// path (local run): not deployable to a cluster until the model is "
                "published (publish_model to s3:// or pvc://) and passed as storage_uri"
            )
        result = {
            **base,
            "deployed": False,
            "reason": "rendered (action=render)",
            "url": "",
            "storage_uri": uri,
            "deployable": not local,
            "deployment_mode": mode,
            "notes": notes,
        }
        artifacts.write_text(manifest_path, to_yaml(manifest))
        artifacts.write_json(status_path, result)
        return result

    uri = storage_uri or model_storage_uri(model_uri)
    api = api_client or load_api_client(kubeconfig_path)
    try:
        status = deploy(
            isvc_name,
            namespace,
            uri,
            canary_traffic_percent=percent,
            deployment_mode=mode,
            timeout_seconds=timeout_seconds,
            api_client=api,
            runtime=runtime,
            service_account_name=service_account_name,
        )
        obj = _require(api, namespace, isvc_name)
    except DeployError as exc:
        failed = {**base, "deployed": False, "reason": str(exc), "url": "", "storage_uri": uri}
        artifacts.write_json(status_path, failed)
        raise
    finally:
        if api_client is None:
            api.close()
    result = {
        **status.as_dict(),
        **base,
        "rollout": status.action,
        "deployed": True,
        "reason": f"{status.action}: {status.message}",
    }
    artifacts.write_text(manifest_path, to_yaml(_strip_server_fields(obj)))
    artifacts.write_json(status_path, result)
    return result


def lifecycle_action(
    *,
    action: str,
    isvc_name: str,
    namespace: str,
    status_path: str,
    kubeconfig_path: str = "",
    timeout_seconds: float = 600,
    api_client: Any = None,
) -> dict:
    """Run promote or rollback and write the resulting status JSON (what the promote/rollback components do).

    Args:
        action: ``promote`` or ``rollback``.
        isvc_name: InferenceService name.
        namespace: Namespace.
        status_path: Where to write the status JSON.
        kubeconfig_path: Kubeconfig; empty: in-cluster or default kubeconfig.
        timeout_seconds: Wait limit.
        api_client: Use this client instead of loading one.

    Returns:
        The :class:`DeployStatus` as a dict, as written.
    """
    functions = {"promote": promote, "rollback": rollback}
    if action not in functions:
        raise ConfigError(f"action: expected 'promote' or 'rollback', got {action!r}")
    _check_dns1035(isvc_name, "isvc_name")
    _check_namespace(namespace)
    _check_timeout(timeout_seconds)
    api = api_client or load_api_client(kubeconfig_path)
    try:
        status = functions[action](isvc_name, namespace, api_client=api, timeout_seconds=timeout_seconds)
    finally:
        if api_client is None:
            api.close()
    result = status.as_dict()
    artifacts.write_json(status_path, result)
    return result
