"""TFDV validation in groups of features (wide schemas) finds exactly what one call finds."""

from __future__ import annotations

from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import anomalies, statistics, tfdv_io
from kfp_tabular.components.data_processing.validate import schema as schemas

CURATED = synthetic.curated_schema_path()


def _stats(tmp_path, name, frame, schema=None):
    return statistics.generate_statistics(synthetic.write(frame, tmp_path / f"{name}.parquet"), schema=schema)


def _cases(tmp_path):
    curated = tfdv_io.load_schema(CURATED)
    drifted = synthetic.generate(400, 3, "drifted")  # a new payment method, has_partner gone
    drifted["extra"] = 1.5  # a column the schema lacks
    yield "drifted vs curated", _stats(tmp_path, "drifted", drifted, curated), curated, "TRAINING"
    yield "too few rows", _stats(tmp_path, "few", synthetic.generate(60, 4), curated), curated, "TRAINING"
    serving = synthetic.generate(300, 5, "drifted").drop(columns=[synthetic.LABEL])
    yield "serving", _stats(tmp_path, "serving", serving, curated), curated, "SERVING"
    train = _stats(tmp_path, "train", synthetic.generate(500, 6))
    inferred = schemas.infer_schema(train, synthetic.LABEL)
    odd = synthetic.generate(500, 7).drop(columns=["age"])
    odd["region"] = odd["region"].where(odd.index % 3 != 0, "atlantis")
    yield "inferred", _stats(tmp_path, "odd", odd, inferred), inferred, "TRAINING"


def test_groups_find_what_one_call_finds(tmp_path, monkeypatch):
    tfdv = tfdv_io.tfdv()
    compared = 0
    for name, stats, schema, env in _cases(tmp_path):
        whole = tfdv.validate_statistics(stats, schema, environment=env)
        monkeypatch.setattr(anomalies, "FEATURES_PER_GROUP", 3)
        grouped = anomalies.validate_statistics(stats, schema, env)
        monkeypatch.undo()
        assert whole.anomaly_info or whole.HasField("dataset_anomaly_info"), name  # each case finds something
        assert dict(grouped.anomaly_info) == dict(whole.anomaly_info), name
        assert grouped.dataset_anomaly_info == whole.dataset_anomaly_info, name
        assert grouped.data_missing == whole.data_missing and grouped.baseline == whole.baseline, name
        compared += 1
    assert compared == 4


def test_dataset_level_anomaly_reported_once(tmp_path, monkeypatch):
    curated = tfdv_io.load_schema(CURATED)
    stats = _stats(tmp_path, "few", synthetic.generate(60, 4), curated)
    monkeypatch.setattr(anomalies, "FEATURES_PER_GROUP", 2)
    found = anomalies.validate_statistics(stats, curated, "TRAINING")
    assert found.HasField("dataset_anomaly_info")
    collected = [a for a in anomalies._collect_anomalies("train", found) if a.feature == "(dataset)"]
    assert len(collected) == 1


def test_schemas_with_linked_features_are_validated_in_one_call(tmp_path, monkeypatch):
    curated = tfdv_io.load_schema(CURATED)
    curated.sparse_feature.add(name="pair")
    calls = []
    tfdv = tfdv_io.tfdv()
    monkeypatch.setattr(tfdv, "validate_statistics", lambda *a, **k: calls.append(a) or "one call")
    monkeypatch.setattr(anomalies, "FEATURES_PER_GROUP", 2)
    stats = _stats(tmp_path, "train", synthetic.generate(100, 1))
    assert anomalies.validate_statistics(stats, curated, "TRAINING") == "one call" and len(calls) == 1
