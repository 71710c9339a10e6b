"""Validated requests for the KServe package: every value checked once, each error naming its field.

:class:`ServiceRequest` is what rendering and deploying an InferenceService need; :class:`TargetRequest` names
an existing InferenceService for promote, rollback and status. Both are frozen: once built they are valid.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any
from urllib.parse import urlsplit

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import param
from kfp_tabular.components.deployment.kserve.isvc import LOGGER_MODES, STANDARD, normalize_deployment_mode

#: storageUri schemes KServe's storage initializer pulls from; ``file`` only for a rendered manifest.
CLUSTER_SCHEMES = ("s3", "gs", "pvc", "https", "hdfs")
RENDER_SCHEMES = (*CLUSTER_SCHEMES, "file")
PROTOCOL_VERSIONS = ("v1", "v2", "grpc-v1", "grpc-v2")
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_name(value: Any, field: str = "name") -> str:
    """Check a DNS-1035 label (an InferenceService name)."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS1035.match(value):
        raise ConfigError(
            f"{field}: expected a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, "
            f"ending with a letter or digit, at most 63 characters), got {value!r}"
        )
    return value


def check_namespace(value: Any) -> str:
    """Check a DNS-1123 label (a namespace)."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ConfigError(f"namespace: expected a DNS-1123 label (e.g. kfp-tabular), got {value!r}")
    return value


def check_percent(value: Any, field: str = "canary_traffic_percent") -> int | None:
    """Check an integer percent from 0 to 100, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field}: expected an integer from 0 to 100 or None, got {value!r}")
    if not 0 <= value <= 100:
        raise ConfigError(f"{field}: expected an integer from 0 to 100, got {value}")
    return value


def check_timeout(value: Any) -> float:
    """Check a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"timeout_seconds: expected a positive number of seconds, got {value!r}")
    return float(value)


def check_storage_uri(storage_uri: Any, allow_local: bool = False, field: str = "storage_uri") -> str:
    """Validate a KServe storageUri and return it.

    Args:
        storage_uri: ``s3://bucket/key``, ``gs://bucket/key``, ``pvc://claim/path``, ``https://...`` or
            ``hdfs://...``; ``file:///abs/path`` only when ``allow_local``.
        allow_local: Accept ``file://`` (a rendered manifest for a local run, never applied to a cluster).
        field: Name of the parameter, for the error message.

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


def check_str_map(value: Any, field: str) -> dict[str, str]:
    """Check a mapping of strings to strings (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{field}: expected a mapping of strings to strings, got {value!r}")
    return dict(value)


def check_resources(value: Any) -> dict[str, dict[str, str]]:
    """Container ``requests``/``limits`` (None: :data:`DEFAULT_RESOURCES`), quantities as strings."""
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


def check_runtime(value: Any) -> str:
    """Check a ServingRuntime name (DNS-1123 subdomain) or ''."""
    if not isinstance(value, str) or (value and (len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value))):
        raise ConfigError(f"runtime: expected a ServingRuntime name (DNS-1123 subdomain) or '', got {value!r}")
    return value


def check_service_account(value: Any) -> str:
    """Check a service account name or ''."""
    if not isinstance(value, str) or (value and not _DNS1123_SUBDOMAIN.match(value)):
        raise ConfigError(f"service_account_name: expected a service account name or '', got {value!r}")
    return value


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_logger(mode: Any, url: Any, prefix: str = "payload_logger") -> dict:
    """Check KServe's payload logger settings; return ``spec.predictor.logger`` ({} when off).

    Args:
        mode: ``""`` (off), ``all``, ``request`` or ``response`` (the CRD's ``logger.mode`` enum).
        url: Where the logger agent posts the CloudEvents (the collector's ``http(s)://`` URL); required with a mode.
        prefix: The parameters' names' prefix, for the messages (``<prefix>_mode``, ``<prefix>_url``).

    Raises:
        ConfigError: Naming ``<prefix>_mode`` or ``<prefix>_url``.
    """
    if not isinstance(mode, str) or (mode and mode not in LOGGER_MODES):
        raise ConfigError(f"{prefix}_mode: expected '' (off) or one of {', '.join(LOGGER_MODES)}, got {mode!r}")
    if not isinstance(url, str):
        raise ConfigError(f"{prefix}_url: expected the collector's http:// or https:// URL or '', got {url!r}")
    if not mode:
        if url:
            raise ConfigError(
                f"{prefix}_url: given ({url!r}) but {prefix}_mode is '' (off); set {prefix}_mode to "
                f"{', '.join(LOGGER_MODES)} to log payloads, or leave {prefix}_url empty"
            )
        return {}
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{prefix}_url: {prefix}_mode={mode!r} needs the collector's http:// or https:// URL (e.g. "
            f"http://kfp-tabular-collector.kfp-tabular.svc.cluster.local/), got {url!r}"
        )
    return {"mode": mode, "url": url}


def check_annotation_value(value: Any, field: str) -> str:
    """Check a string annotation value (at most 4096 characters, one line) or ''."""
    if not isinstance(value, str) or len(value) > 4096 or "\n" in value:
        raise ConfigError(f"{field}: expected a one-line string of at most 4096 characters or '', got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ServiceRequest:
    """An InferenceService to render or deploy, every field checked (ConfigError names the first bad one).

    ``deployment_mode`` is normalized to ``Knative``/``Standard`` and ``resources`` defaulted on construction.
    """

    name: str
    namespace: str
    storage_uri: str
    canary_traffic_percent: int | None = None
    deployment_mode: str = "Knative"
    timeout_seconds: float = 600
    runtime: str = ""
    service_account_name: str = ""
    protocol_version: str = "v2"
    resources: dict | None = None
    labels: dict | None = None
    annotations: dict | None = None
    allow_local: bool = False
    model_sha256: str = ""
    run_id: str = ""
    lineage_uri: str = ""
    payload_logger_mode: str = ""
    payload_logger_url: str = ""

    def __post_init__(self) -> None:
        """Check every field; normalize the mode and the maps."""
        check_name(self.name)
        check_namespace(self.namespace)
        check_storage_uri(self.storage_uri, allow_local=self.allow_local)
        check_percent(self.canary_traffic_percent)
        set_ = object.__setattr__
        set_(self, "deployment_mode", normalize_deployment_mode(self.deployment_mode))
        set_(self, "timeout_seconds", check_timeout(self.timeout_seconds))
        if self.protocol_version not in PROTOCOL_VERSIONS:
            raise ConfigError(
                f"protocol_version: expected one of {', '.join(PROTOCOL_VERSIONS)}, got {self.protocol_version!r}"
            )
        check_runtime(self.runtime)
        check_service_account(self.service_account_name)
        set_(self, "resources", check_resources(self.resources))
        set_(self, "labels", check_str_map(self.labels, "labels"))
        set_(self, "annotations", check_str_map(self.annotations, "annotations"))
        if not isinstance(self.model_sha256, str) or (self.model_sha256 and not _SHA256.match(self.model_sha256)):
            raise ConfigError(f"model_sha256: expected 64 lowercase hex digits or '', got {self.model_sha256!r}")
        check_annotation_value(self.run_id, "run_id")
        check_annotation_value(self.lineage_uri, "lineage_uri")
        self.logger()

    def logger(self) -> dict:
        """Return ``spec.predictor.logger`` for the payload logger settings ({} when off)."""
        return check_logger(self.payload_logger_mode, self.payload_logger_url)

    @property
    def canary(self) -> bool:
        """Whether the request asks for a canary (a percent below 100)."""
        return self.canary_traffic_percent is not None and self.canary_traffic_percent < 100

    def standard_percent_refused(self) -> str:
        """Why a rendered Standard-mode manifest cannot carry this percent ("" when it can)."""
        if self.canary_traffic_percent is not None and self.deployment_mode == STANDARD:
            return (
                "canary_traffic_percent: Standard mode has no canaryTrafficPercent (KServe ignores it there); "
                "deploy() writes a spec.canary[] entry when the cluster's KServe supports it"
            )
        return ""


@dataclasses.dataclass(frozen=True)
class TargetRequest:
    """An existing InferenceService that promote, rollback or status act on.

    The promote and rollback components' parameters.
    """

    isvc_name: str = param("InferenceService name (DNS-1035 label).")
    namespace: str = param("Namespace of the InferenceService.")
    kubeconfig_path: str = param("Kubeconfig for the cluster; empty: the pod's service account (in-cluster).", "")
    timeout_seconds: float = param("How long to wait for KServe to report the change.", 600)

    def __post_init__(self) -> None:
        """Check every field."""
        check_name(self.isvc_name, "isvc_name")
        check_namespace(self.namespace)
        if not isinstance(self.kubeconfig_path, str):
            raise ConfigError(f"kubeconfig_path: expected a file path or '', got {self.kubeconfig_path!r}")
        object.__setattr__(self, "timeout_seconds", check_timeout(self.timeout_seconds))
