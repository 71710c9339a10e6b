"""Anomalies, drift and skew (TFX's ExampleValidator and DistributionValidator): TFDV's validation of each split.

Train and eval statistics are validated in the schema's ``TRAINING`` environment, serving statistics in
``SERVING``. Drift: eval against the baseline statistics (or train); skew: train against serving. Distances
above their threshold are reported as drift/skew measurements, not as anomalies.
"""

from __future__ import annotations

import dataclasses

from kfp_tabular.components.data_processing.validate import schema as schemas
from kfp_tabular.components.data_processing.validate import tfdv_io
from kfp_tabular.components.data_processing.validate.results import Anomaly, DriftMeasurement

#: TFDV reasons that say "the distance is above the threshold": reported as drift/skew, not as anomalies.
_COMPARATOR_HIGH = frozenset(
    {
        "COMPARATOR_L_INFTY_HIGH",
        "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
        "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH",
    }
)
_METRIC_NAMES = {
    "L_INFTY": "l_infinity",
    "JENSEN_SHANNON_DIVERGENCE": "jensen_shannon_divergence",
    "NORMALIZED_ABSOLUTE_DIFFERENCE": "normalized_abs_difference",
}


@dataclasses.dataclass
class Findings:
    """TFDV's verdict on every split.

    Attributes:
        per_split: Split (``train``, ``eval``, ``serving``) -> TFDV ``Anomalies`` proto.
        validation_schema: The schema with the comparators the statistics were validated against.
        anomalies: Every anomaly of every split.
        drift: Every drift and skew measurement, sorted by kind and feature.
    """

    per_split: dict
    validation_schema: object
    anomalies: list[Anomaly]
    drift: list[DriftMeasurement]


def validate_splits(
    train,
    evaluation,
    schema,
    *,
    label_column: str,
    numeric_threshold: float,
    categorical_threshold: float,
    baseline=None,
    serving=None,
) -> Findings:
    """Validate train, eval and (when given) serving statistics; measure drift and skew.

    Args:
        train: Train statistics.
        evaluation: Eval statistics.
        schema: The schema (not changed: comparators go on a copy).
        label_column: The label: compared for drift (label shift), never for skew.
        numeric_threshold: Jensen-Shannon divergence threshold of features without a comparator of their own.
        categorical_threshold: L-infinity threshold of features without a comparator of their own.
        baseline: Statistics to measure eval drift against; None: train.
        serving: Serving statistics: measured for skew against train, validated in SERVING.
    """
    tfdv = tfdv_io.tfdv()
    validation_schema = schemas.with_comparators(
        schema, numeric_threshold, categorical_threshold, skew=serving is not None, label_column=label_column
    )
    training_env = schemas.environment(validation_schema, schemas.TRAINING)
    per_split = {
        "train": tfdv.validate_statistics(
            train, validation_schema, environment=training_env, serving_statistics=serving
        ),
        "eval": tfdv.validate_statistics(
            evaluation,
            validation_schema,
            environment=training_env,
            previous_statistics=baseline if baseline is not None else train,
        ),
    }
    if serving is not None:
        per_split["serving"] = tfdv.validate_statistics(
            serving, validation_schema, environment=schemas.environment(validation_schema, schemas.SERVING)
        )
    drift_comparison = "eval vs baseline" if baseline is not None else "eval vs train"
    drift = [m for proto in per_split.values() for m in _collect_drift(proto, drift_comparison, "train vs serving")]
    return Findings(
        per_split=per_split,
        validation_schema=validation_schema,
        anomalies=[a for split, proto in per_split.items() for a in _collect_anomalies(split, proto)],
        drift=sorted(drift, key=lambda m: (m.kind, m.feature)),
    )


def _collect_anomalies(split: str, anomalies) -> list[Anomaly]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    type_name = anomalies_pb2.AnomalyInfo.Type.Name
    severity_name = anomalies_pb2.AnomalyInfo.Severity.Name
    found = []
    infos = [(key, info) for key, info in sorted(anomalies.anomaly_info.items())]
    if anomalies.HasField("dataset_anomaly_info"):
        infos.append(("(dataset)", anomalies.dataset_anomaly_info))
    for key, info in infos:
        feature = ".".join(info.path.step) if info.path.step else key
        reasons = list(info.reason) or [None]
        for reason in reasons:
            if reason is None:
                kind, short, desc = "UNKNOWN_TYPE", info.short_description, info.description
            else:
                kind, short, desc = type_name(reason.type), reason.short_description, reason.description
            if kind in _COMPARATOR_HIGH:
                continue
            found.append(Anomaly(split, feature, kind, short, desc.strip(), severity_name(info.severity)))
    return found


def _collect_drift(anomalies, drift_comparison: str, skew_comparison: str) -> list[DriftMeasurement]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    metric_name = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name
    found = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for kind, comparison, measurements in (
            ("drift", drift_comparison, info.drift_measurements),
            ("skew", skew_comparison, info.skew_measurements),
        ):
            for m in measurements:
                name = metric_name(m.type)
                found.append(
                    DriftMeasurement(
                        comparison=comparison,
                        kind=kind,
                        feature=feature,
                        metric=_METRIC_NAMES.get(name, name.lower()),
                        value=float(m.value),
                        threshold=float(m.threshold),
                        drifted=float(m.value) > float(m.threshold),
                    )
                )
    return found


def merge_anomalies(findings: Findings):
    """One TFDV ``Anomalies`` proto for all splits: ``anomaly_info`` keys become ``<split>/<feature>``.

    ``drift_skew_info`` is concatenated: drift measurements come from the eval comparison, skew measurements from
    the train-vs-serving comparison. ``baseline`` is the schema the statistics were validated against (with the
    comparators), so the file alone says what was checked.
    """
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    merged = anomalies_pb2.Anomalies()
    merged.baseline.CopyFrom(findings.validation_schema)
    merged.anomaly_name_format = anomalies_pb2.Anomalies.SERIALIZED_PATH
    for split, anomalies in findings.per_split.items():
        for key, info in sorted(anomalies.anomaly_info.items()):
            merged.anomaly_info[f"{split}/{key}"].CopyFrom(info)
        if anomalies.HasField("dataset_anomaly_info"):
            # A single field in the proto: a dataset-level anomaly is kept as an anomaly_info entry of its split.
            merged.anomaly_info[f"{split}/(dataset)"].CopyFrom(anomalies.dataset_anomaly_info)
        merged.drift_skew_info.extend(anomalies.drift_skew_info)
        merged.data_missing = merged.data_missing or anomalies.data_missing
    return merged
