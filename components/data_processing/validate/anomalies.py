"""Anomalies (TFX's ExampleValidator): TFDV's validation of each split against the schema.

Train and eval statistics are validated in the schema's ``TRAINING`` environment, serving statistics in
``SERVING``. Drift and skew (TFX's DistributionValidator) are measured by ``drift``, not here.
"""

from __future__ import annotations

import dataclasses

from kfp_tabular.components.data_processing.validate import schema as schemas
from kfp_tabular.components.data_processing.validate import tfdv_io
from kfp_tabular.components.data_processing.validate.results import Anomaly


@dataclasses.dataclass
class Findings:
    """TFDV's verdict on every split.

    Attributes:
        per_split: Split (``train``, ``eval``, ``serving``) -> TFDV ``Anomalies`` proto.
        validation_schema: The schema the statistics were validated against.
        anomalies: Every anomaly of every split.
    """

    per_split: dict
    validation_schema: object
    anomalies: list[Anomaly]


def validate_splits(train, evaluation, schema, *, serving=None) -> Findings:
    """Validate train and eval statistics in TRAINING and (when given) serving statistics in SERVING.

    Drift and skew are not TFDV's here (``drift.compare`` measures them, sample-size aware): no previous or serving
    statistics are passed to TFDV, so a curated schema's comparators only set thresholds. Open (inferred) domains
    are sized for each split's rows (``schema.for_split``).
    """
    tfdv = tfdv_io.tfdv()
    training_env = schemas.environment(schema, schemas.TRAINING)
    per_split = {
        "train": tfdv.validate_statistics(train, schemas.for_split(schema, train), environment=training_env),
        "eval": tfdv.validate_statistics(evaluation, schemas.for_split(schema, evaluation), environment=training_env),
    }
    if serving is not None:
        per_split["serving"] = tfdv.validate_statistics(
            serving, schemas.for_split(schema, serving), environment=schemas.environment(schema, schemas.SERVING)
        )
    return Findings(
        per_split=per_split,
        validation_schema=schema,
        anomalies=[a for split, proto in per_split.items() for a in _collect_anomalies(split, proto)],
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
            found.append(Anomaly(split, feature, kind, short, desc.strip(), severity_name(info.severity)))
    return found


def merge_anomalies(findings: Findings):
    """One TFDV ``Anomalies`` proto for all splits: ``anomaly_info`` keys become ``<split>/<feature>``.

    ``baseline`` is the schema the statistics were validated against, so the file alone says what was checked.
    Drift and skew are not in it: they are measurements of ``drift.compare`` (reports, metrics, result).
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
        merged.data_missing = merged.data_missing or anomalies.data_missing
    return merged
