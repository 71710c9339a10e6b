"""Prometheus metrics of the collector, served at ``/metrics`` (its own registry).

- ``kfp_tabular_collector_events_total{type, outcome}``: events by type (``request``, ``response``,
  ``unknown``) and outcome (``accepted`` or the refusal's reason);
- ``kfp_tabular_collector_rejected_total{reason, status}``: refused events: ``missing_id``, ``bad_specversion``,
  ``unknown_type``, ``missing_source``, ``bad_time``, ``not_json``, ``bad_payload``, ``mismatch``,
  ``unexpected_type``, ``duplicate`` (409), ``late`` (410), ``too_large`` (413), ``batched_mode`` (415),
  ``overloaded`` (503);
- ``kfp_tabular_collector_unpaired_total{part, reason}``: halves dropped without their other half
  (``ttl``, ``evicted``, ``shutdown``), and ``..._unpaired_rows_total`` the instances they held;
- ``kfp_tabular_collector_rows_total``, ``..._batches_total``, ``..._batch_write_errors_total``,
  ``..._batch_write_seconds``: what reached the sink;
- gauges ``kfp_tabular_collector_pending_events``, ``..._buffered_rows`` (not yet written).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """The collector's series in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("kfp_tabular_collector_events", "Events received", ["type", "outcome"], registry=r)
        self.rejected = Counter(
            "kfp_tabular_collector_rejected", "Events refused, by reason", ["reason", "status"], registry=r
        )
        self.unpaired = Counter(
            "kfp_tabular_collector_unpaired", "Halves dropped without their other half", ["part", "reason"], registry=r
        )
        self.unpaired_rows = Counter(
            "kfp_tabular_collector_unpaired_rows", "Instances in unpaired halves", ["part", "reason"], registry=r
        )
        self.rows = Counter("kfp_tabular_collector_rows", "Rows written to the sink", registry=r)
        self.batches = Counter("kfp_tabular_collector_batches", "Batch files written to the sink", registry=r)
        self.write_errors = Counter(
            "kfp_tabular_collector_batch_write_errors", "Failed batch writes (retried)", registry=r
        )
        self.write_seconds = Histogram(
            "kfp_tabular_collector_batch_write_seconds",
            "Time to write one batch",
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=r,
        )
        self.pending = Gauge("kfp_tabular_collector_pending_events", "Events waiting for their pair", registry=r)
        self.buffered = Gauge("kfp_tabular_collector_buffered_rows", "Rows not yet written", registry=r)
