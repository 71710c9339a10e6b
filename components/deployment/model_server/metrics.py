"""Prometheus metrics of the model server, served at ``/metrics`` with KServe's own (one registry).

Every series carries ``model_name`` and ``model_sha256`` (the sha256 of the model file being served, the one
hash of ``common.artifacts``), so a canary and its stable revision can be told apart:

- ``kfp_tabular_requests_total{protocol, outcome}``: inference requests by outcome: ``ok`` (2xx),
  ``client_error`` (4xx, including 413), ``server_error`` (5xx);
- ``kfp_tabular_request_seconds{protocol}``: latency histogram of inference requests (all outcomes), measured
  around the whole HTTP exchange;
- ``kfp_tabular_prediction_score``: histogram of the predicted scores: the positive-class probability of a
  binary classifier, the predicted class's probability of a multi-class one, the predicted value of a
  regressor (wide buckets);
- ``kfp_tabular_schema_violations_total{feature, kind, action}``: schema violations per feature, kind
  (``type``, ``non_finite``, ``missing``, ``unseen_category``, ``out_of_range``) and action (``reject``,
  ``flag``).
"""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

from prometheus_client import Counter, Histogram

__all__ = ["MODEL_SHA256", "observe_request", "observe_scores", "observe_violations", "register_model"]

#: model name -> sha256 of its model file, for the requests counted before a model sees them.
MODEL_SHA256: Dict[str, str] = {}

_LABELS = ["model_name", "model_sha256"]
REQUESTS = Counter(
    "kfp_tabular_requests", "Inference requests by protocol and outcome", [*_LABELS, "protocol", "outcome"]
)
LATENCY = Histogram(
    "kfp_tabular_request_seconds",
    "Inference request latency (whole HTTP exchange)",
    [*_LABELS, "protocol"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
)
_PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
SCORES = Histogram(
    "kfp_tabular_prediction_score",
    "Predicted scores: positive-class probability (binary), predicted class probability (multi-class)",
    _LABELS,
    buckets=_PROBABILITY_BUCKETS,
)
VALUES = Histogram(
    "kfp_tabular_prediction_value",
    "Predicted values of a regressor",
    _LABELS,
    buckets=(-1e6, -1e4, -1e2, -10, -1, 0, 1, 10, 1e2, 1e4, 1e6),
)
VIOLATIONS = Counter(
    "kfp_tabular_schema_violations", "Schema violations per feature", [*_LABELS, "feature", "kind", "action"]
)


def register_model(name: str, sha256: str) -> None:
    """Record the sha256 of the model served as ``name``."""
    MODEL_SHA256[name] = sha256


def _base(name: str) -> Dict[str, str]:
    return {"model_name": name, "model_sha256": MODEL_SHA256.get(name, "unknown")}


def outcome(status: int) -> str:
    """Name the outcome of an HTTP status."""
    if status < 400:
        return "ok"
    return "client_error" if status < 500 else "server_error"


def observe_request(name: str, protocol: str, status: int, seconds: float) -> None:
    """Count one inference request by outcome and observe its latency."""
    base = _base(name)
    REQUESTS.labels(**base, protocol=protocol, outcome=outcome(status)).inc()
    LATENCY.labels(**base, protocol=protocol).observe(seconds)


def observe_scores(name: str, scores: Iterable[float], regression: bool = False) -> None:
    """Observe predicted scores (or a regressor's values)."""
    histogram = (VALUES if regression else SCORES).labels(**_base(name))
    for score in scores:
        histogram.observe(score)


def observe_violations(name: str, violations: Iterable[Tuple[str, str]], action: str) -> None:
    """Count ``(feature, kind)`` pairs."""
    base = _base(name)
    for feature, kind in violations:
        VIOLATIONS.labels(**base, feature=feature, kind=kind, action=action).inc()
