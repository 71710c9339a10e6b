"""Promote a KServe canary: the latest model takes 100% of the traffic (plain Python, no KFP)."""

from __future__ import annotations

from typing import Any

from kfp_tabular.components.common.errors import ConfigError, DeployError
from kfp_tabular.components.deployment.kserve.client import load_api_client, require, write_planned
from kfp_tabular.components.deployment.kserve.isvc import predictor_uri
from kfp_tabular.components.deployment.kserve.plans import Plan, promote_plan
from kfp_tabular.components.deployment.kserve.request import TargetRequest
from kfp_tabular.components.deployment.kserve.status import (
    DeployStatus,
    act_on_target,
    confirm_unchanged,
    status_from_object,
)
from kfp_tabular.components.deployment.kserve.wait import wait_for


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
    target = TargetRequest(name, namespace, timeout_seconds=timeout_seconds)
    api = api_client or load_api_client()
    obj = require(api, namespace, name)

    def planner(current: dict | None) -> Plan:
        if current is None:
            raise DeployError(f"InferenceService {namespace}/{name} not found")
        return promote_plan(current)

    planned_from, plan, written = write_planned(api, namespace, name, obj, planner, f"promotion of {namespace}/{name}")
    if plan.kind == "refused":
        raise ConfigError(plan.note)
    if written is None:
        assert planned_from is not None
        return confirm_unchanged(api, planned_from, target.timeout_seconds, plan.note)
    waited = wait_for(api, namespace, name, plan.expect(int(written["metadata"]["generation"])), target.timeout_seconds)
    if not waited.ok:
        raise DeployError(
            f"promotion of {namespace}/{name} was written but not confirmed: {waited.message}. The canary field is "
            "removed; run rollback to return to the previous model"
        )
    return status_from_object(waited.obj, "promoted", f"{predictor_uri(waited.obj)} takes 100% of the traffic")


def promote_action(request: TargetRequest, status_path: str, api_client: Any = None) -> dict:
    """Run the promote component's logic and write the resulting status JSON; return it."""
    return act_on_target(promote, request, status_path, api_client)
