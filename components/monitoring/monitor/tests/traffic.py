"""A deployed model as the training pipeline leaves it, and served traffic as the collector writes it.

The model is real: the bundled churn data split, validated (validate's core: train statistics and schema), trained
(train's core, logistic regression) and evaluated (evaluate's core: the blessing with its prediction distribution);
the lineage record points at those files. Served rows are scored by that model and written the way the collector
does (``<sink>/date=YYYY-MM-DD/<batch>.parquet``: the features, ``prediction``, ``score`` = P(classes[1]),
``model_sha256``, ``time``, ...).
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

LABEL = "churned"
#: The window the tests monitor: [NOW - 24 h, NOW); the previous window is the day before.
NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.timezone.utc)


@dataclasses.dataclass
class Deployed:
    root: Path
    lineage: Path
    model_dir: Path
    pipeline: object
    metadata: dict
    blessing: dict


def churn(rows: int, seed: int, variant: str = "default"):
    """Churn rows of the bundled generator; the drifted variant keeps every feature (has_partner from the default)."""
    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    frame = generate(rows, seed=seed, variant=variant)
    if "has_partner" not in frame.columns:
        frame.insert(10, "has_partner", generate(rows, seed=seed + 1)["has_partner"].to_numpy())
    return frame


def deploy(root: Path, label: str = LABEL) -> Deployed:
    """Validate, train (logistic regression; Ridge for a numeric label), evaluate and record a churn model.

    ``label``: ``churned`` (a binary classifier), ``contract_type`` (3 classes) or ``monthly_charges`` (a regressor);
    ``churned`` is left out of the data unless it is the label.
    """
    import json

    import joblib

    from kfp_tabular.components.common import lineage
    from kfp_tabular.components.common.artifacts import sha256_file
    from kfp_tabular.components.data_processing.validate.core import validate
    from kfp_tabular.components.data_processing.validate.request import ValidateRequest
    from kfp_tabular.components.evaluation.evaluate.core import evaluate
    from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest
    from kfp_tabular.components.training.train.core import train
    from kfp_tabular.components.training.train.request import TrainRequest

    drop = [LABEL] if label != LABEL else []
    churn(3000, seed=1).drop(columns=drop).to_parquet(root / "train.parquet", index=False)
    churn(1500, seed=2).drop(columns=drop).to_parquet(root / "eval.parquet", index=False)
    validate(
        str(root / "train.parquet"),
        str(root / "eval.parquet"),
        ValidateRequest(label),
        train_statistics_path=str(root / "train_statistics.pb"),
        schema_path=str(root / "schema.pbtxt"),
    )
    trained = train(
        TrainRequest(label, estimator="logistic_regression"),
        root / "train.parquet",
        root / "schema.pbtxt",
        root / "model",
    )
    model_dir = Path(trained.model_dir)
    evaluate(EvaluateRequest(label), model_dir, root / "eval.parquet", root / "blessing.json", root / "eval.md")
    blessing = json.loads((root / "blessing.json").read_text())
    metadata = json.loads((model_dir / "metadata.json").read_text())
    record = lineage.LineageRecord(
        model_sha256=metadata["model_sha256"],
        model_uri=str(model_dir),
        storage_uri="pvc://models/churn/" + metadata["model_sha256"][:12],
        task=metadata["task"],
        label_column=label,
        classes=metadata["classes"],
        positive_class=blessing["positive_class"],
        training_data={"uri": str(root / "train.parquet"), "hash": sha256_file(root / "train.parquet")},
        source_data={"uri": None, "hash": None},
        statistics_uri=str(root / "train_statistics.pb"),
        schema_uri=str(root / "schema.pbtxt"),
        blessing=blessing,
        metrics=blessing["metrics"],
        baseline_model=None,
        prediction_distribution=blessing["prediction_distribution"],
        run={"id": "run-1", "name": "train-and-deploy", "pipeline": "train_and_deploy"},
    )
    lineage.write(root / "lineage.json", record)
    pipeline = joblib.load(model_dir / "model.joblib")
    return Deployed(root, root / "lineage.json", model_dir, pipeline, metadata, blessing)


def served_rows(deployed: Deployed, frame, start: datetime.datetime, end: datetime.datetime, sha: str | None = ""):
    """Score ``frame`` with the deployed model, add the collector's columns; times spread over [start, end)."""
    import numpy as np
    import pandas as pd

    features = frame.drop(columns=[LABEL, deployed.metadata["label_column"]], errors="ignore")
    proba = deployed.pipeline.predict_proba(features)
    classes = list(deployed.pipeline.classes_)
    out = features.copy()
    out["prediction"] = np.asarray(classes).take(proba.argmax(axis=1))
    out["score"] = proba[:, 1] if len(classes) == 2 else proba.max(axis=1)  # the collector's score
    out["model_name"] = "churn"
    out["model_sha256"] = deployed.metadata["model_sha256"] if sha == "" else sha
    out["event_id"] = [f"ev-{i}" for i in range(len(out))]
    step = (end - start) / max(len(out), 1)
    out["time"] = pd.to_datetime([start + step * i for i in range(len(out))], utc=True)
    out["inference_service"] = "churn"
    out["namespace"] = "default"
    return out


def write_batches(sink: Path, rows, batch_rows: int = 400) -> list[str]:
    """Write rows with the collector's own writer (``collector.sink.BatchWriter``), ``batch_rows`` per batch.

    NaN becomes null, as JSON payloads carry a missing value; each row gets its ``instance`` (position).
    """
    import math

    from kfp_tabular.components.monitoring.collector.sink import BatchWriter

    writer = BatchWriter(str(sink))
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in rows.to_dict("records")
    ]
    for record in records:
        record.setdefault("instance", 0)
        record["time"] = record["time"].to_pydatetime()
    written = []
    for i in range(0, len(records), batch_rows):
        written += writer.write(records[i : i + batch_rows])
    return written
