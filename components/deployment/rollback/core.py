"""Roll a KServe InferenceService back to the model it served before (plain Python, no KFP)."""

from __future__ import annotations

from typing import Any

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.kserve.client import load_api_client, require
from kfp_tabular.components.deployment.kserve.isvc import STATE_ROLLED_BACK, rollout_state
from kfp_tabular.components.deployment.kserve.request import TargetRequest
from kfp_tabular.components.deployment.kserve.rollback import apply_rollback
from kfp_tabular.components.deployment.kserve.status import (
    DeployStatus,
    act_on_target,
    confirm_unchanged,
    status_from_object,
)


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
    target = TargetRequest(name, namespace, timeout_seconds=timeout_seconds)
    api = api_client or load_api_client()
    obj = require(api, namespace, name)
    if rollout_state(obj) == STATE_ROLLED_BACK:
        return confirm_unchanged(api, obj, target.timeout_seconds, "already rolled back")
    outcome = apply_rollback(api, obj, target.timeout_seconds)
    if outcome.action == "refused":
        raise ConfigError(outcome.note)
    if not outcome.ok:
        raise DeployError(f"rollback of {namespace}/{name} was written but not confirmed: {outcome.message}")
    return status_from_object(outcome.obj or obj, outcome.action, outcome.note)


def rollback_action(request: TargetRequest, status_path: str, api_client: Any = None) -> dict:
    """Run the rollback component's logic and write the resulting status JSON; return it."""
    return act_on_target(rollback, request, status_path, api_client)
