"""The deploy component's parameters: one description and one check each (see ``common.params``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from kfp_tabular.components.common.errors import ConfigError
from kfp_tabular.components.common.params import descriptions, param
from kfp_tabular.components.deployment.kserve.isvc import KNATIVE, normalize_deployment_mode
from kfp_tabular.components.deployment.kserve.request import (
    TargetRequest,
    check_annotation_value,
    check_logger,
    check_name,
    check_namespace,
    check_percent,
    check_runtime,
    check_service_account,
    check_storage_uri,
    check_timeout,
)

ACTIONS = ("render", "apply")
STRATEGIES = ("canary", "blue-green", "manual")
_TARGET = descriptions(TargetRequest)

#: The rollout fields and the names RolloutPolicy.from_params takes them by (the pipeline's flat names).
ROLLOUT_FIELDS = (
    "rollout_strategy",
    "rollout_steps",
    "step_interval_seconds",
    "min_requests",
    "max_inconclusive",
    "failure_limit",
    "min_success_rate",
    "max_p99_seconds",
    "max_p99_ratio",
    "max_prediction_drift",
    "drift_metric",
)


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
        "rollout_strategy=manual: traffic percent for a new model on an existing InferenceService until a person "
        "promotes it; 100 for a full rollout. A first deployment always takes 100%.",
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
    rollout_strategy: str = param(
        "How a new model on an existing InferenceService takes the traffic (apply only): ``canary`` walks "
        "rollout_steps, each gated on live metrics of canary against stable read from prometheus_url, and "
        "promotes or rolls back by itself; ``blue-green`` checks the new revision at 0% on its own URL (Knative "
        "tag routing), judged on the traffic that reaches that URL (the deploy step sends none: a mirror or "
        "testers must, else the windows are inconclusive and it rolls back), then gives it 100% at once; "
        "``manual`` leaves it at canary_traffic_percent for a person to promote or roll back. A first deployment "
        "always takes 100% with no analysis.",
        "canary",
    )
    rollout_steps: str = param(
        "Canary traffic percents, comma-separated, strictly increasing, the last 100 (e.g. ``10,25,50,100``).",
        "10,25,50,100",
    )
    step_interval_seconds: float = param(
        "Seconds each step (and the blue-green check) runs: the analysis window, canary and stable alike.", 60.0
    )
    min_requests: int = param(
        "Canary requests a window needs; fewer is inconclusive (waits another window, never promotes).", 50
    )
    max_inconclusive: int = param("Inconclusive windows in a row at one step before the rollout rolls back.", 3)
    failure_limit: int = param("Failed analyses tolerated over the rollout; one more rolls back at once.", 0)
    min_success_rate: float = param("Lowest canary share of requests not answered 5xx in a window (0-1).", 0.99)
    max_p99_seconds: float = param("Highest canary p99 latency in a window, in seconds.", 1.0)
    max_p99_ratio: float = param(
        "Highest canary p99 / stable p99 (judged when stable's p99 is above the noise floor).", 2.0
    )
    max_prediction_drift: float = param(
        "Largest distance between canary's and stable's predicted-score histograms in a window (drift_metric).",
        0.1,
    )
    drift_metric: str = param(
        "``js`` (Jensen-Shannon distance, base 2, 0-1) or ``psi`` (population stability index).", "js"
    )
    prometheus_url: str = param(
        "Prometheus that scrapes the predictor pods (e.g. ``http://prometheus.monitoring:9090``); needed by "
        "action=apply with rollout_strategy canary or blue-green.",
        "",
    )
    prometheus_queries: str = param(
        "JSON object overriding the PromQL templates (requests, server_errors, client_errors, p99, score_buckets), "
        "or the name of a documented set; empty: the model server's metrics.",
        "",
    )
    payload_logger_mode: str = param(
        "KServe's payload logger on the predictor (``spec.predictor.logger``): ``all`` (requests and responses), "
        "``request``, ``response``, or empty for off. Its agent posts each one as a CloudEvent to "
        "payload_logger_url (the collector, components/monitoring/collector), whose batches the monitor reads.",
        "",
    )
    payload_logger_url: str = param(
        "Where the payload logger posts: the collector Service's ``http://`` URL (manifests/collector, "
        "docs/payload-logging.md); required when payload_logger_mode is set.",
        "",
    )
    run_id: str = param(
        "The KFP run that produced the model (the pipeline passes ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``): recorded in "
        "the lineage record and the predictor's ``kfp-tabular.dev/run-id`` annotation.",
        "",
    )
    run_name: str = param(
        "The KFP run's name (the pipeline passes ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``), for the lineage record.", ""
    )
    pipeline_name: str = param("The pipeline that produced the model, for the lineage record.", "")

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
        policy = self.policy()
        if policy.strategy == "canary" and policy.steps[0] >= 100:
            raise ConfigError(
                f"rollout_steps: a canary starts below 100% (got {self.rollout_steps!r}); for all traffic at once "
                "with a check first use rollout_strategy=blue-green, without one rollout_strategy=manual with "
                "canary_traffic_percent=100"
            )
        for name in ("prometheus_url", "prometheus_queries"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name}: expected a string, got {getattr(self, name)!r}")
        if self.prometheus_url and not self.prometheus_url.startswith(("http://", "https://")):
            raise ConfigError(f"prometheus_url: expected an http:// or https:// URL, got {self.prometheus_url!r}")
        self.query_templates()
        check_logger(self.payload_logger_mode, self.payload_logger_url)
        for name in ("run_id", "run_name", "pipeline_name"):
            check_annotation_value(getattr(self, name), name)
        if self.selects_revisions() and self.deployment_mode != KNATIVE:
            raise ConfigError(
                "prometheus_queries: the kserve-knative templates select Knative revisions; Standard mode has none "
                "(use the default templates, which select each model by its sha256)"
            )
        if self.action == "apply" and self.rollout_strategy != "manual" and not self.prometheus_url:
            raise ConfigError(
                f"prometheus_url: rollout_strategy={self.rollout_strategy!r} gates each step on live metrics, so "
                "action=apply needs the Prometheus that scrapes the predictor; give prometheus_url, or "
                "rollout_strategy=manual to leave the canary at canary_traffic_percent for a person to promote"
            )
        if self.rollout_strategy == "blue-green" and self.deployment_mode != KNATIVE:
            raise ConfigError(
                "rollout_strategy, deployment_mode: blue-green checks the new revision at 0% on its own URL, which "
                "needs KServe tag routing (Knative mode); Standard mode's spec.canary[] entries have no URL of "
                "their own. Use rollout_strategy=canary in Standard mode"
            )

    def first_percent(self) -> int | None:
        """Return the new model's first share of the traffic: canary's first step, blue-green 0, manual's percent."""
        if self.rollout_strategy == "canary":
            return self.policy().steps[0]
        if self.rollout_strategy == "blue-green":
            return 0
        return self.canary_traffic_percent

    def policy(self) -> Any:
        """Return the rollout policy these parameters describe (``rollout.policy.RolloutPolicy``).

        Raises:
            ConfigError: Naming the first bad rollout field.
        """
        from kfp_tabular.components.deployment.rollout.policy import RolloutPolicy

        return RolloutPolicy.from_params(**{name: getattr(self, name) for name in ROLLOUT_FIELDS})

    def selects_revisions(self) -> bool:
        """Whether prometheus_queries asks for the ``kserve-knative`` templates, which select Knative revisions."""
        import json

        text = self.prometheus_queries.strip()
        if text == "kserve-knative":
            return True
        if text.startswith("{"):
            given = json.loads(text)  # checked by query_templates
            return isinstance(given, dict) and given.get("base") == "kserve-knative"
        return False

    def query_templates(self) -> Any:
        """Return the PromQL templates (``rollout.metrics.QueryTemplates``) prometheus_queries names or overrides.

        Raises:
            ConfigError: prometheus_queries is not JSON, not an object, or names unknown templates.
        """
        from kfp_tabular.components.deployment.rollout.metrics import templates_from_json

        return templates_from_json(self.prometheus_queries)
