"""What validation found: anomalies, drift/skew measurements and the result of one ``validate`` run."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One TFDV anomaly reason.

    Attributes:
        split: Which statistics were validated: ``train``, ``eval`` or ``serving``.
        feature: Feature path (``a.b`` for nested features); ``(dataset)`` for dataset-level anomalies.
        kind: TFDV's reason type, e.g. ``SCHEMA_MISSING_COLUMN``.
        short_description: TFDV's short description, e.g. ``Column dropped``.
        description: TFDV's full description.
        severity: ``ERROR``, ``WARNING`` or ``UNKNOWN``.
    """

    split: str
    feature: str
    kind: str
    short_description: str
    description: str
    severity: str


@dataclasses.dataclass(frozen=True)
class DriftMeasurement:
    """One distance TFDV measured between two statistics for one feature.

    Attributes:
        comparison: ``eval vs train``, ``eval vs baseline`` (drift) or ``train vs serving`` (skew).
        kind: ``drift`` or ``skew``.
        feature: Feature path.
        metric: ``jensen_shannon_divergence``, ``l_infinity`` or ``normalized_abs_difference``.
        value: The measured distance.
        threshold: The comparator's threshold.
        drifted: ``value > threshold`` (TFDV's rule).
    """

    comparison: str
    kind: str
    feature: str
    metric: str
    value: float
    threshold: float
    drifted: bool


@dataclasses.dataclass
class ValidationResult:
    """What ``validate`` found.

    Attributes:
        anomalies: Schema anomalies of every validated split (drift/skew distances above threshold are in ``drift``).
        drift: Every drift and skew measurement, above the threshold or not.
        schema_source: ``curated`` (read from ``schema_uri``) or ``inferred`` (from the train statistics).
        schema_uri: Where the curated schema came from; empty when inferred.
        num_examples: Rows per split (``train``, ``eval`` and, when given, ``serving``/``baseline``).
        num_features: Features per split in the statistics.
        schema_features: Number of features in the schema.
        label_column: The label feature.
    """

    anomalies: list[Anomaly]
    drift: list[DriftMeasurement]
    schema_source: str
    schema_uri: str
    num_examples: dict[str, int]
    num_features: dict[str, int]
    schema_features: int
    label_column: str

    @property
    def drifted(self) -> list[DriftMeasurement]:
        """The measurements above their threshold."""
        return [m for m in self.drift if m.drifted]

    @property
    def drifted_features(self) -> list[str]:
        """Sorted names of the features with drift or skew above the threshold."""
        return sorted({m.feature for m in self.drifted})

    @property
    def ok(self) -> bool:
        """True when there are no anomalies and no feature drifted or skewed."""
        return not self.anomalies and not self.drifted

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for a KFP ``Metrics`` artifact."""
        out: dict[str, float] = {
            "anomaly_count": float(len(self.anomalies)),
            "drifted_feature_count": float(len(self.drifted_features)),
            "schema_features": float(self.schema_features),
        }
        for split, count in self.num_examples.items():
            out[f"{split}_examples"] = float(count)
        for m in self.drift:
            out[f"{m.kind}_{m.feature}"] = max(out.get(f"{m.kind}_{m.feature}", 0.0), float(m.value))
        return out

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary."""
        return {
            "ok": self.ok,
            "anomalies": [dataclasses.asdict(a) for a in self.anomalies],
            "drift": [dataclasses.asdict(m) for m in self.drift],
            "drifted_features": self.drifted_features,
            "schema_source": self.schema_source,
            "schema_uri": self.schema_uri,
            "num_examples": dict(self.num_examples),
            "num_features": dict(self.num_features),
            "schema_features": self.schema_features,
            "label_column": self.label_column,
        }
