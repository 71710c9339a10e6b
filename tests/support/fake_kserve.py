"""A stand-in for the KServe controller, for tests against a real kube-apiserver that has no controllers.

It watches InferenceServices (polling, in a thread) in the namespaces it is given and writes ``status``
through the status subresource the way KServe does:

* Knative mode: every change of the predictor's template (everything but ``canaryTrafficPercent``) makes a
  new revision ``<name>-predictor-0000N``, ready after ``ready_delay`` seconds. The traffic targets follow
  KServe's ksvc reconciler (canary split between the latest revision and the last rolled-out one, tags
  ``latest``/``prev`` with tag routing, the rollback special case) and the rolled-out revisions follow
  KServe's ``PropagateStatus``. Ready is Unknown while the latest created revision is coming up, False when
  it failed (``RevisionFailed``), True when it is ready.
* Standard mode: the stable predictor and each ``spec.canary[]`` entry become ready after ``ready_delay``;
  ``status.canaryStatuses`` and the ``CanaryPredictorReady`` condition report the canaries. Like KServe's
  ``PropagateModelStatus``, ``status.modelStatus`` (stable predictor) and ``canaryStatuses[].modelStatus``
  say ``transitionStatus`` (InProgress, UpToDate, BlockedByFailedLoad), ``states.activeModelState``
  (Pending, Loaded, FailedToLoad) and, for a model that failed, ``lastFailureInfo`` (ModelLoadFailed).

``fail_uris``: models that fail to load (Knative: the revision fails). ``stuck_uris``: models that never
become ready and never fail (to test timeouts). ``lag``: seconds during which, after a new generation of a
Knative-mode service, ``status.observedGeneration`` already says the new generation while everything else
in ``status`` still describes the old revisions (a controller that reports the generation before the new
revision exists, which KServe/Knative can do).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from datetime import datetime, timezone
from typing import Any

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
_MODES = {"knative": "Knative", "serverless": "Knative", "standard": "Standard", "rawdeployment": "Standard"}


@dataclasses.dataclass
class _Revision:
    name: str
    uri: str
    template: Any
    created_at: float


@dataclasses.dataclass
class _State:
    generation: int = 0
    revisions: list = dataclasses.field(default_factory=list)
    latest_rolledout: str = ""
    previous_rolledout: str = ""
    since: dict = dataclasses.field(default_factory=dict)
    failed_at: dict = dataclasses.field(default_factory=dict)
    lag_since: dict = dataclasses.field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKServeController:
    """Plays the KServe controller for the InferenceServices of some namespaces; use as a context manager.

    Attributes:
        fail_uris: storageUris whose predictor fails to load.
        stuck_uris: storageUris whose predictor never becomes ready (and never fails).
        lag: Knative mode: for this many seconds after a new generation, status reports the new
            observedGeneration but still describes the old revisions (0: off).
        errors: Exceptions raised in the controller thread (a test should assert it stays empty).
        writes: How many status writes were made.
    """

    def __init__(self, api_client: Any, namespaces: list[str], ready_delay: float = 0.3, interval: float = 0.05):
        """Prepare a controller for ``namespaces`` using ``api_client`` (admin credentials)."""
        self.api_client = api_client
        self.namespaces = list(namespaces)
        self.ready_delay = ready_delay
        self.interval = interval
        self.fail_uris: set[str] = set()
        self.stuck_uris: set[str] = set()
        self.lag = 0.0
        self.errors: list[BaseException] = []
        self.writes = 0
        self._states: dict[tuple[str, str], _State] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> FakeKServeController:
        """Start the thread."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the thread."""
        self.stop()

    def start(self) -> None:
        """Start reconciling in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="fake-kserve-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception as exc:  # noqa: BLE001 - surfaced through self.errors
                from kubernetes.client import ApiException

                if not (isinstance(exc, ApiException) and exc.status == 409):
                    self.errors.append(exc)
            self._stop.wait(self.interval)

    def reconcile_once(self) -> None:
        """List the InferenceServices of every watched namespace and write their status where it changed."""
        from kubernetes import client

        api = client.CustomObjectsApi(self.api_client)
        for namespace in self.namespaces:
            for obj in api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL).get("items", []):
                with self._lock:
                    status = self._status(obj)
                if status != obj.get("status"):
                    body = copy.deepcopy(obj)
                    body["status"] = status
                    try:
                        api.replace_namespaced_custom_object_status(
                            GROUP, VERSION, namespace, PLURAL, obj["metadata"]["name"], body
                        )
                        self.writes += 1
                    except client.ApiException as exc:
                        if exc.status not in (404, 409):  # deleted or changed since the list: next round
                            raise

    # ----------------------------------------------------------------------------------------------------

    def _health(self, uri: str, since: float) -> str:
        if uri in self.stuck_uris:
            return "pending"
        if time.monotonic() - since < self.ready_delay:
            return "pending"
        return "failed" if uri in self.fail_uris else "ready"

    def _status(self, obj: dict) -> dict:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        state = self._states.setdefault(key, _State())
        annotations = meta.get("annotations") or {}
        mode = _MODES.get(str(annotations.get(MODE_ANNOTATION, "Standard")).lower(), "Standard")
        generation = int(meta.get("generation") or 1)
        if mode == "Knative":
            return self._knative(obj, state, generation, annotations)
        return self._standard(obj, state, generation)

    def _knative(self, obj: dict, state: _State, generation: int, annotations: dict) -> dict:
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        predictor = copy.deepcopy((obj.get("spec") or {}).get("predictor") or {})
        canary = predictor.pop("canaryTrafficPercent", None)
        uri = (predictor.get("model") or {}).get("storageUri", "")
        if generation != state.generation and self.lag and obj.get("status"):
            since = state.lag_since.setdefault(generation, time.monotonic())
            if time.monotonic() - since < self.lag:
                stale = copy.deepcopy(obj["status"])
                stale["observedGeneration"] = generation
                return stale
        if generation != state.generation:
            state.generation = generation
            if not state.revisions or state.revisions[-1].template != predictor:
                revision_name = f"{name}-predictor-{len(state.revisions) + 1:05d}"
                state.revisions.append(_Revision(revision_name, uri, predictor, time.monotonic()))
        health = {r.name: self._health(r.uri, r.created_at) for r in state.revisions}
        latest_created = state.revisions[-1].name
        ready_names = [r.name for r in state.revisions if health[r.name] == "ready"]
        latest_ready = ready_names[-1] if ready_names else ""

        # KServe's ksvc reconciler: the traffic targets it writes on the Knative Service.
        last_rolled = state.latest_rolledout
        if state.latest_rolledout == latest_ready and canary is not None and canary < 100:
            last_rolled = state.previous_rolledout
        tags = annotations.get(TAG_ROUTING_ANNOTATION) == "true"
        predictor_host = f"{name}-predictor.{namespace}.example.com"
        targets: list[dict] = []
        if canary is not None and last_rolled:
            targets.append({"latestRevision": True, "percent": canary, "tag": "latest" if tags else None})
            if canary < 100:
                targets.append(
                    {
                        "revisionName": last_rolled,
                        "latestRevision": False,
                        "percent": 100 - canary,
                        "tag": "prev" if tags else None,
                    }
                )
        else:
            targets.append({"latestRevision": True, "percent": 100, "tag": None})
        # Knative's route resolves latestRevision to the latest *ready* revision.
        traffic = []
        if latest_ready:
            for target in targets:
                entry = {
                    "revisionName": latest_ready if target["latestRevision"] else target["revisionName"],
                    "percent": target["percent"],
                    "latestRevision": target["latestRevision"],
                }
                if target["tag"]:
                    entry["tag"] = target["tag"]
                    entry["url"] = f"http://{target['tag']}-{predictor_host}"
                traffic.append(entry)

        # KServe's PropagateStatus: which revisions count as rolled out.
        per_revision: dict[str, int] = {}
        for entry in traffic:
            per_revision[entry["revisionName"]] = per_revision.get(entry["revisionName"], 0) + entry["percent"]
        for entry in traffic:
            if entry["revisionName"] == latest_ready and entry["latestRevision"]:
                if state.latest_rolledout != latest_ready:
                    if entry["percent"] == 100:
                        state.previous_rolledout = state.latest_rolledout
                        state.latest_rolledout = latest_ready
                elif latest_ready == latest_created and entry["percent"] < 100:
                    if per_revision.get(entry["revisionName"]) == 100 and state.previous_rolledout:
                        state.latest_rolledout = state.previous_rolledout

        latest_health = health[latest_created]
        latest_uri = state.revisions[-1].uri
        if latest_health == "ready":
            ready = {"status": "True"}
            transition, active = "UpToDate", "Loaded"
        elif latest_health == "failed":
            ready = {
                "status": "False",
                "reason": "RevisionFailed",
                "message": f'Revision "{latest_created}" failed with message: model {latest_uri} failed to load.',
            }
            transition, active = "BlockedByFailedLoad", "Loaded" if latest_ready else "FailedToLoad"
        else:
            ready = {
                "status": "Unknown",
                "reason": "RevisionMissing",
                "message": f'Configuration "{name}-predictor" is waiting for a Revision to become ready.',
            }
            transition, active = "InProgress", "Loaded" if latest_ready else "Pending"
        model_status: dict[str, Any] = {
            "transitionStatus": transition,
            "states": {"activeModelState": active, "targetModelState": "Loaded"},
        }
        if latest_health == "failed":
            model_status["lastFailureInfo"] = self._failure(state, latest_created, latest_uri)
        url = f"http://{name}.{namespace}.example.com"
        components = {
            "latestCreatedRevision": latest_created,
            "url": f"http://{predictor_host}",
            "address": {"url": f"http://{name}-predictor.{namespace}.svc.cluster.local"},
        }
        if latest_ready:
            components["latestReadyRevision"] = latest_ready
        if state.latest_rolledout:
            components["latestRolledoutRevision"] = state.latest_rolledout
        if state.previous_rolledout:
            components["previousRolledoutRevision"] = state.previous_rolledout
        if traffic:
            components["traffic"] = traffic
        conditions = [
            {"type": "IngressReady", "status": "True" if latest_ready else "Unknown"},
            {"type": "PredictorReady", **ready},
            {"type": "Ready", **ready},
        ]
        return self._finish(
            obj,
            {
                "observedGeneration": generation,
                "deploymentMode": "Knative",
                "url": url,
                "address": {"url": f"http://{name}.{namespace}.svc.cluster.local"},
                "components": {"predictor": components},
                "conditions": conditions,
                "modelStatus": model_status,
            },
        )

    def _since(self, state: _State, key: tuple) -> float:
        return state.since.setdefault(key, time.monotonic())

    def _failure(self, state: _State, location: str, uri: str) -> dict:
        """KServe's lastFailureInfo for a model that failed to load (the time is that of the first failure)."""
        when = state.failed_at.setdefault((location, uri), _now())
        return {
            "location": location,
            "reason": "ModelLoadFailed",
            "message": f"model {uri} failed to load",
            "exitCode": 1,
            "time": when,
        }

    def _model_status(self, state: _State, health: str, location: str, uri: str) -> dict:
        transition, active = {
            "ready": ("UpToDate", "Loaded"),
            "failed": ("BlockedByFailedLoad", "FailedToLoad"),
            "pending": ("InProgress", "Pending"),
        }[health]
        status = {"transitionStatus": transition, "states": {"activeModelState": active, "targetModelState": "Loaded"}}
        if health == "failed":
            status["lastFailureInfo"] = self._failure(state, location, uri)
        return status

    def _standard(self, obj: dict, state: _State, generation: int) -> dict:
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        spec = obj.get("spec") or {}
        predictor = spec.get("predictor") or {}
        uri = (predictor.get("model") or {}).get("storageUri", "")
        stable_name = predictor.get("name", "") or f"{name}-predictor"
        stable = self._health(uri, self._since(state, ("stable", predictor.get("name", ""), uri)))
        canary_statuses = []
        for entry in spec.get("canary") or []:
            cpred = entry.get("predictor") or {}
            curi = (cpred.get("model") or {}).get("storageUri", "")
            health = self._health(curi, self._since(state, ("canary", cpred.get("name", ""), curi)))
            percent = entry.get("trafficPercent", 0)
            canary_statuses.append(
                {
                    "name": cpred.get("name", ""),
                    "ready": health == "ready",
                    "trafficPercent": percent,
                    "modelStatus": self._model_status(state, health, f"{name}-{cpred.get('name', '')}", curi),
                }
            )
        ready = {"ready": "True", "failed": "False", "pending": "Unknown"}[stable]
        ready_cond: dict[str, Any] = {"status": ready}
        if stable == "failed":
            ready_cond.update(reason="PredictorNotReady", message=f"model {uri} failed to load")
        conditions = [{"type": "PredictorReady", **ready_cond}, {"type": "Ready", **ready_cond}]
        if canary_statuses:
            all_ready = all(c["ready"] for c in canary_statuses)
            conditions.append(
                {
                    "type": "CanaryPredictorReady",
                    "status": "True" if all_ready else "False",
                    "reason": "AllCanariesReady" if all_ready else "CanaryNotReady",
                }
            )
        status = {
            "observedGeneration": generation,
            "deploymentMode": "Standard",
            "url": f"http://{name}-{namespace}.example.com",
            "components": {"predictor": {"url": f"http://{name}-predictor-{namespace}.example.com"}},
            "conditions": conditions,
            "modelStatus": self._model_status(state, stable, stable_name, uri),
        }
        if canary_statuses:
            status["canaryStatuses"] = canary_statuses
        return self._finish(obj, status)

    @staticmethod
    def _finish(obj: dict, status: dict) -> dict:
        """Keep lastTransitionTime of conditions whose status did not change (as KServe does)."""
        old = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
        for cond in status["conditions"]:
            previous = old.get(cond["type"])
            if previous and previous.get("status") == cond["status"] and previous.get("lastTransitionTime"):
                cond["lastTransitionTime"] = previous["lastTransitionTime"]
            else:
                cond["lastTransitionTime"] = _now()
        return status
