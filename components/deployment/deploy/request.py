"""The deploy component's parameters: one description and one check each (see ``common.params``)."""

from __future__ import annotations

import dataclasses

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import descriptions, param
from kfp_tabular.components.deployment.kserve.isvc import normalize_deployment_mode
from kfp_tabular.components.deployment.kserve.request import (
    TargetRequest,
    check_name,
    check_namespace,
    check_percent,
    check_runtime,
    check_service_account,
    check_storage_uri,
    check_timeout,
)

ACTIONS = ("render", "apply")
_TARGET = descriptions(TargetRequest)


@dataclasses.dataclass(frozen=True)
class DeployRequest:
    """What the deploy step is asked to do, checked on construction (ConfigError names the field)."""

    isvc_name: str = param(_TARGET["isvc_name"], "churn-classifier")
    namespace: str = param(_TARGET["namespace"], "kfp-tabular")
    action: str = param(
        "``render`` writes the InferenceService manifest only (no cluster); ``apply`` creates it, or canaries the "
        "model on the existing service, waits for KServe and rolls back on failure.",
        "render",
    )
    canary_traffic_percent: int | None = param(
        "Traffic percent for a new model on an existing InferenceService until it is promoted; 100 for a full "
        "rollout. A first deployment always takes 100%.",
        10,
    )
    deployment_mode: str = param(
        "``Knative`` (canaryTrafficPercent) or ``Standard`` (spec.canary[], KServe 0.20+); aliases Serverless and "
        "RawDeployment.",
        "Knative",
    )
    storage_uri: str = param(
        "Where KServe reads the model, if it was published already; empty derives it from the model artifact's URI "
        "(``minio://`` becomes ``s3://``; a local model renders as ``file://`` only).",
        "",
    )
    runtime: str = param(
        "ServingRuntime name (e.g. ``kfp-tabular-sklearn``); empty for KServe's stock sklearn one.", ""
    )
    service_account_name: str = param("ServiceAccount of the predictor, whose secret gives access to the model.", "")
    kubeconfig_path: str = param(_TARGET["kubeconfig_path"], "")
    timeout_seconds: float = param("How long apply waits for the new revision (and again for a rollback).", 600)
    publish_uri: str = param(
        "Publish a blessed model under this ``s3://`` (MinIO too) or ``pvc://claim/path`` prefix, at "
        "``<prefix>/<first 16 hex of its sha256>`` (checksummed, immutable), and serve it from there. Excludes "
        "storage_uri.",
        "",
    )
    s3_endpoint_url: str = param("S3-compatible endpoint (MinIO) for publishing; default from the environment.", "")
    pvc_mount_root: str = param("Where the ``pvc://`` claim of publish_uri is mounted in the deploy task.", "")

    def __post_init__(self) -> None:
        """Check every field; normalize the deployment mode."""
        if self.action not in ACTIONS:
            raise ConfigError(f"action: expected 'render' or 'apply', got {self.action!r}")
        check_name(self.isvc_name, "isvc_name")
        check_namespace(self.namespace)
        object.__setattr__(self, "deployment_mode", normalize_deployment_mode(self.deployment_mode))
        check_percent(self.canary_traffic_percent)
        object.__setattr__(self, "timeout_seconds", check_timeout(self.timeout_seconds))
        check_runtime(self.runtime)
        check_service_account(self.service_account_name)
        for name in ("kubeconfig_path", "publish_uri", "s3_endpoint_url", "pvc_mount_root", "storage_uri"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: expected a string, got {getattr(self, name)!r}")
        if self.storage_uri and self.publish_uri:
            raise ConfigError(
                f"storage_uri and publish_uri: give one (storage_uri={self.storage_uri!r} names an already published "
                f"model, publish_uri={self.publish_uri!r} publishes this one)"
            )
        if self.storage_uri:
            check_storage_uri(self.storage_uri, allow_local=self.action == "render")
