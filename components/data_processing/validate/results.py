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
    """One feature compared between two statistics: the distance, its threshold and its sampling noise.

    Attributes:
        comparison: ``eval_vs_train``, ``eval_vs_baseline`` (drift) or ``serving_vs_train`` (skew); side a is
            the first named, side b the second.
        kind: ``drift`` or ``skew``.
        feature: Feature path.
        metric: ``js_distance`` (Jensen-Shannon distance, numeric features) or ``l_infinity`` (categorical).
        distance: The measured distance, in [0, 1].
        threshold: The effect size above which the feature counts as drifted.
        noise_bound: The distance sampling noise alone exceeds with probability alpha / m (m: features compared),
            at these sample sizes.
        p_value: Probability of a distance at least this large from sampling noise alone.
        n_a: Rows of side a.
        n_b: Rows of side b.
        flagged: ``distance > threshold`` and ``p_value < alpha / m``: drift, not noise.
        gating: Whether a flagged feature of this comparison fails the run (``drift_gate``).
    """

    comparison: str
    kind: str
    feature: str
    metric: str
    distance: float
    threshold: float
    noise_bound: float
    p_value: float
    n_a: int
    n_b: int
    flagged: bool
    gating: bool

    @property
    def fails(self) -> bool:
        """Flagged in a gating comparison: this measurement fails the run."""
        return self.flagged and self.gating


@dataclasses.dataclass
class ValidationResult:
    """What ``validate`` found.

    Attributes:
        anomalies: Schema anomalies of every validated split.
        drift: Every drift and skew measurement, flagged or not.
        schema_source: ``curated`` (read from ``schema_uri``) or ``inferred`` (from the train statistics).
        schema_uri: Where the curated schema came from; empty when inferred.
        num_examples: Rows per split (``train``, ``eval`` and, when given, ``serving``/``baseline``).
        num_features: Features per split in the statistics.
        schema_features: Number of features in the schema.
        label_column: The label feature.
        notes: What was reported but does not fail the run (rare unseen values tolerated by an open domain,
            coarse baseline statistics, features not compared).
        statistics_backend: The backend that computed the statistics (``dataframe`` or ``beam``).
        decisions: Decisions taken for the user (``statistics_backend="auto"``: the backend chosen and why).
    """

    anomalies: list[Anomaly]
    drift: list[DriftMeasurement]
    schema_source: str
    schema_uri: str
    num_examples: dict[str, int]
    num_features: dict[str, int]
    schema_features: int
    label_column: str
    notes: list[str] = dataclasses.field(default_factory=list)
    statistics_backend: str = ""
    decisions: list = dataclasses.field(default_factory=list)

    @property
    def flagged(self) -> list[DriftMeasurement]:
        """The measurements flagged as drift or skew (above the threshold and beyond sampling noise)."""
        return [m for m in self.drift if m.flagged]

    @property
    def drifted(self) -> list[DriftMeasurement]:
        """The flagged measurements of gating comparisons: those that fail the run."""
        return [m for m in self.drift if m.fails]

    @property
    def drifted_features(self) -> list[str]:
        """Sorted names of the features whose drift or skew fails the run."""
        return sorted({m.feature for m in self.drifted})

    @property
    def flagged_features(self) -> list[str]:
        """Sorted names of the features flagged in any comparison, gating or reported only."""
        return sorted({m.feature for m in self.flagged})

    @property
    def ok(self) -> bool:
        """True when there are no anomalies and no flagged drift or skew in a gating comparison."""
        return not self.anomalies and not self.drifted

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for a KFP ``Metrics`` artifact."""
        out: dict[str, float] = {
            "anomaly_count": float(len(self.anomalies)),
            "drifted_feature_count": float(len(self.drifted_features)),
            "flagged_feature_count": float(len(self.flagged_features)),
            "schema_features": float(self.schema_features),
        }
        for split, count in self.num_examples.items():
            out[f"{split}_examples"] = float(count)
        for m in self.drift:
            out[f"{m.comparison}_n_a"], out[f"{m.comparison}_n_b"] = float(m.n_a), float(m.n_b)
            out[f"{m.comparison}_gating"] = float(m.gating)
            prefix = f"{m.comparison}_{m.feature}"
            out[prefix] = float(m.distance)
            out[f"{prefix}_threshold"] = float(m.threshold)
            out[f"{prefix}_noise_bound"] = float(m.noise_bound)
            out[f"{prefix}_p_value"] = float(m.p_value)
            out[f"{prefix}_flagged"] = float(m.flagged)
        return out

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary."""
        return {
            "ok": self.ok,
            "anomalies": [dataclasses.asdict(a) for a in self.anomalies],
            "drift": [dataclasses.asdict(m) for m in self.drift],
            "drifted_features": self.drifted_features,
            "flagged_features": self.flagged_features,
            "notes": list(self.notes),
            "schema_source": self.schema_source,
            "schema_uri": self.schema_uri,
            "num_examples": dict(self.num_examples),
            "num_features": dict(self.num_features),
            "schema_features": self.schema_features,
            "label_column": self.label_column,
            "statistics_backend": self.statistics_backend,
            "decisions": [d.as_dict() for d in self.decisions],
        }
