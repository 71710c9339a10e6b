"""The cluster's traffic backend: the rollout engine drives a KServe InferenceService through the kserve package.

Knative mode: each step sets ``spec.predictor.canaryTrafficPercent`` (the latest revision's share, the rest on
the last rolled-out revision); promote removes it; rollback pins all traffic back on the revision that served
before (``canaryTrafficPercent: 0`` with the previous predictor restored, see ``kserve.rollback``).
Blue-green uses KServe tag routing (``serving.kserve.io/enable-tag-routing: "true"``, which render sets in
Knative mode): the candidate revision at 0% is reachable on its ``latest`` tag URL, then takes 100% at once.

Standard mode: each step sets the single ``spec.canary[]`` entry's ``trafficPercent``; promote makes the canary
the predictor; rollback removes the canary entry. What it cannot do: blue-green (a canary entry has no URL of
its own: ``status.canaryStatuses`` carries name, ready, trafficPercent and modelStatus only), so a blue-green
rollout in Standard mode is refused with a ConfigError naming rollout_strategy and deployment_mode; and a
canary at all when the cluster's CRD has no ``spec.canary`` (KServe < 0.20; deploy refuses that already).

Every write is guarded by the ``resourceVersion`` it was planned from and waits for status, as deploy does.
The metrics of each revision are told apart by the sha256 of the model it serves (``model_sha256`` label of
the model server's metrics): the canary's is the model being deployed, the stable one's is what the
InferenceService records on its predictor (``kfp-tabular.dev/model-sha256``, written by deploy).
"""

from __future__ import annotations

from typing import Any

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.kserve.client import require
from kfp_tabular.components.deployment.kserve.isvc import MODEL_SHA_ANNOTATION, mode_of, ns_name
from kfp_tabular.components.deployment.kserve.traffic import (
    check_blue_green,
    preview_url,
    set_canary_percent,
    stable_and_canary_sha,
)

#: PromQL label matchers of one model's series; ``{sha}`` is the model file's sha256.
DEFAULT_SELECTOR = 'model_sha256="{sha}"'
#: PromQL label matchers of one Knative revision's series (queue-proxy's labels; manifests/monitoring's PodMonitor
#: gives our server's series the same), for the ``kserve-knative`` query templates.
REVISION_SELECTOR = 'namespace_name="{namespace}",revision_name="{revision}"'


def sha_selector(sha256: str, template: str = DEFAULT_SELECTOR) -> str:
    """Return the PromQL label matchers selecting the series of the model whose file hashes to ``sha256``."""
    return template.format(sha=sha256)


def revision_selectors(obj: dict) -> tuple[str, str]:
    """Return ``(stable, canary)`` selectors of a Knative canary's two revisions, as its status shows them now.

    Raises:
        ConfigError: Standard mode, or status does not show a canary split over two revisions yet.
    """
    from kfp_tabular.components.deployment.kserve.isvc import KNATIVE, predictor_status

    where = ns_name(obj)
    if mode_of(obj) != KNATIVE:
        raise ConfigError(
            f"prometheus_queries: the kserve-knative templates select Knative revisions; InferenceService {where} "
            "is in Standard mode (no revisions): use the default kfp-tabular templates (by model sha256)"
        )
    traffic = predictor_status(obj).get("traffic") or []
    latest = [t.get("revisionName") for t in traffic if t.get("latestRevision")]
    others = [t.get("revisionName") for t in traffic if not t.get("latestRevision")]
    if len(latest) != 1 or len(others) != 1 or not all(latest + others) or latest == others:
        raise ConfigError(
            f"prometheus_queries: cannot tell InferenceService {where}'s canary and stable revisions apart from its "
            f"traffic {traffic}: expected the latest revision and one other"
        )
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    return (
        REVISION_SELECTOR.format(namespace=namespace, revision=others[0]),
        REVISION_SELECTOR.format(namespace=namespace, revision=latest[0]),
    )


class KServeTrafficBackend:
    """A :class:`~.engine.TrafficBackend` over one InferenceService (Knative or Standard mode).

    Attributes:
        description: ``InferenceService <ns>/<name> (<mode>)``.
        stable_selector: PromQL matchers of the stable model's series.
        canary_selector: PromQL matchers of the candidate's series.
        mode: Knative or Standard.
    """

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        *,
        stable_sha256: str,
        canary_sha256: str,
        timeout_seconds: float = 600,
        selector_template: str = DEFAULT_SELECTOR,
        select_by: str = "sha",
        log: Any = print,
    ) -> None:
        """Drive ``namespace/name`` (which must exist, with the canary written) from the stable model to the candidate.

        ``select_by``: ``sha`` selects each model's series by its sha256 (every mode); ``revision`` (Knative only,
        for the ``kserve-knative`` templates) by namespace and revision, the canary's being the latest ready
        revision and stable's the one the rest of the traffic goes to, read from status now.

        Raises:
            ConfigError: A sha256 is missing, both are the same model (nothing to compare), or revisions are
                asked for in Standard mode or before status shows the split.
            DeployError: The InferenceService does not exist or cannot be read.
        """
        for field, value in (("stable_sha256", stable_sha256), ("canary_sha256", canary_sha256)):
            if not value:
                raise ConfigError(f"{field}: the rollout needs the sha256 of both models to tell their metrics apart")
        if stable_sha256 == canary_sha256:
            raise ConfigError(
                f"canary_sha256: the candidate is the stable model ({canary_sha256[:12]}...): nothing to compare"
            )
        self.api = api_client
        self.namespace = namespace
        self.name = name
        self.timeout_seconds = timeout_seconds
        self.log = log
        self.stable_sha256 = stable_sha256
        self.canary_sha256 = canary_sha256
        obj = require(api_client, namespace, name)
        self.mode = mode_of(obj)
        self.description = f"InferenceService {ns_name(obj)} ({self.mode})"
        if select_by == "revision":
            self.stable_selector, self.canary_selector = revision_selectors(obj)
        elif select_by == "sha":
            self.stable_selector = sha_selector(stable_sha256, selector_template)
            self.canary_selector = sha_selector(canary_sha256, selector_template)
        else:
            raise ConfigError(f"select_by: expected 'sha' or 'revision', got {select_by!r}")
        self.last_status: dict | None = None

    @classmethod
    def from_service(cls, api_client: Any, namespace: str, name: str, **kwargs: Any) -> KServeTrafficBackend:
        """Build the backend for a canary already written: both shas as the InferenceService records them.

        Raises:
            ConfigError: The InferenceService does not record a model sha256 for its stable model or canary.
        """
        obj = require(api_client, namespace, name)
        stable, canary = stable_and_canary_sha(obj)
        missing = [role for role, sha in (("stable", stable), ("canary", canary)) if not sha]
        if missing:
            raise ConfigError(
                f"InferenceService {ns_name(obj)} records no {MODEL_SHA_ANNOTATION} annotation for its "
                f"{' and '.join(missing)} predictor (deployed by an older version or kubectl): give the shas "
                "(--stable-sha/--canary-sha)"
            )
        return cls(api_client, namespace, name, stable_sha256=stable, canary_sha256=canary, **kwargs)

    # -- the TrafficBackend protocol ------------------------------------------------------------------------

    def set_canary_percent(self, percent: int) -> None:
        """Give the canary ``percent`` of the traffic; return once status shows the split.

        Raises:
            DeployError: No canary in progress, the API refused, or status did not show the split in time.
        """
        obj = set_canary_percent(self.api, self.namespace, self.name, int(percent), self.timeout_seconds)
        self.last_status = obj.get("status")

    def promote(self) -> None:
        """All traffic to the canary, which becomes the stable model (kserve's promote plan, via promote's core)."""
        from kfp_tabular.components.deployment.promote.core import promote

        promote(self.name, self.namespace, api_client=self.api, timeout_seconds=self.timeout_seconds)

    def rollback(self, reason: str) -> None:
        """All traffic back on the revision that served before, at once (kserve's rollback, via rollback's core).

        Raises:
            DeployError: The rollback was refused or not confirmed in time (the message says what to do).
        """
        from kfp_tabular.components.deployment.rollback.core import rollback

        self.log(f"rolling back {self.description}: {reason}")
        try:
            rollback(self.name, self.namespace, api_client=self.api, timeout_seconds=self.timeout_seconds)
        except ConfigError as exc:
            raise DeployError(f"rollback of {self.description} refused: {exc}") from exc

    def stage_preview(self) -> str:
        """Blue-green: the candidate at 0% of the traffic on its own URL (Knative tag routing); return that URL.

        Raises:
            ConfigError: Standard mode or no tag routing (blue-green is impossible there).
            DeployError: The split could not be set or status has no tagged URL.
        """
        check_blue_green(require(self.api, self.namespace, self.name))
        obj = set_canary_percent(self.api, self.namespace, self.name, 0, self.timeout_seconds)
        return preview_url(obj)
