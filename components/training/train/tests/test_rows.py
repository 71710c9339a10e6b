"""Rows the fit sees: a sample sized to the memory limit, max_train_rows, the training metrics' sample."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest

from kfp_tabular.components.common.decisions import from_metadata
from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.training.train import core, guards, rows
from kfp_tabular.components.training.train.request import TrainRequest

FAST = {"max_iter": 20}
N = 60_000


@pytest.fixture(scope="module")
def wide_rows(tmp_path_factory):
    """60,000 rows x 20 numeric features and a 10% positive label (about 40 MB to fit), with its TFDV schema."""
    import tensorflow_data_validation as tfdv

    root = tmp_path_factory.mktemp("rows")
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=N) for i in range(20)})
    frame["target"] = (frame["x0"] + rng.normal(size=N) > 1.9).astype("int64")
    frame.to_parquet(root / "d.parquet", index=False)
    tfdv.write_schema_text(
        tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(frame.head(2000))), str(root / "d.pbtxt")
    )
    return root / "d.parquet", root / "d.pbtxt", frame


def train(data, tmp_path, name="model", **fields):
    path, schema, _ = data
    request = TrainRequest("target", "hist_gradient_boosting", FAST, **fields)
    return core.train(request, path, schema, tmp_path / name)


def sampled(result) -> list:
    return [d for d in result.decisions if d.action == "sampled"]


def test_every_row_is_fitted_when_it_fits(wide_rows, tmp_path):
    result = train(wide_rows, tmp_path, memory_limit_mb=4096)
    assert sampled(result) == []
    assert result.metadata["train_rows"] == result.metadata["source_rows"] == N
    assert result.metrics["rows"] == N and result.metrics["metrics_sample_rows"] == N


def test_a_small_memory_limit_fits_a_stratified_sample_and_says_so(wide_rows, tmp_path):
    _, _, frame = wide_rows
    result = train(wide_rows, tmp_path, memory_limit_mb=32)
    meta = result.metadata
    fitted = meta["train_rows"]
    assert rows.MIN_SAMPLE_ROWS <= fitted < N and meta["source_rows"] == N
    # The sample was sized so that its estimate fits the limit.
    assert (
        meta["memory_estimate_bytes"]
        <= guards.MEMORY_HEADROOM * (32 << 20)
        == guards.MEMORY_HEADROOM * (meta["memory_limit_bytes"])
    )
    [decision] = sampled(result)
    assert decision.step == "train" and decision.subject == ""
    assert decision.reason.startswith(f"fitted on a {fitted:,}-row seeded stratified sample of {N:,} rows")
    assert "over 80% of the 32.0 MB memory limit, memory_limit_mb" in decision.reason
    assert "set max_train_rows to choose" in decision.reason
    # In the model directory's metadata (the run summary reads it from there), and the class shares are kept.
    written = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert decision in from_metadata(written["decisions"])
    share = frame["target"].mean()
    take = rows.sample_indices(N, fitted, 42, frame["target"].to_numpy())
    assert len(take) == fitted and abs(frame["target"].to_numpy()[take].sum() - share * fitted) <= 1
    assert result.metrics["rows"] == fitted
    model = joblib.load(tmp_path / "model" / "model.joblib")
    assert model.predict_proba(frame.drop(columns="target").head(5)).shape == (5, 2)


def test_max_train_rows_caps_the_rows_with_a_decision(wide_rows, tmp_path):
    result = train(wide_rows, tmp_path, max_train_rows=5000, memory_limit_mb=4096)
    [decision] = sampled(result)
    assert decision.subject == "max_train_rows"
    assert decision.reason.startswith(f"fitted on a 5,000-row seeded stratified sample of {N:,} rows (max_train_rows")
    assert result.metadata["train_rows"] == 5000 and result.metrics["rows"] == 5000
    # A cap above the rows there are changes nothing.
    assert sampled(train(wide_rows, tmp_path, name="all", max_train_rows=10 * N, memory_limit_mb=4096)) == []


def test_a_cap_that_still_does_not_fit_is_sampled_further_by_memory(wide_rows, tmp_path):
    result = train(wide_rows, tmp_path, max_train_rows=50_000, memory_limit_mb=32)
    [decision] = sampled(result)
    assert decision.subject == "" and "fitting max_train_rows=50,000 rows was estimated at" in decision.reason
    assert result.metadata["train_rows"] < 50_000


def test_a_limit_no_sample_of_a_thousand_rows_fits_is_refused(wide_rows, tmp_path):
    with pytest.raises(DataError) as info:
        train(wide_rows, tmp_path, memory_limit_mb=3)
    message = str(info.value)
    assert "training would need about" in message and "under the 1,000-row minimum" in message
    assert not (tmp_path / "model").exists()


def test_training_metrics_are_measured_on_a_bounded_seeded_sample(wide_rows, tmp_path, monkeypatch):
    monkeypatch.setattr(core, "METRICS_SAMPLE_ROWS", 1000)
    result = train(wide_rows, tmp_path, memory_limit_mb=4096)
    assert result.metrics["rows"] == N and result.metrics["metrics_sample_rows"] == 1000
    assert result.metadata["metrics_sample_rows"] == 1000
    again = train(wide_rows, tmp_path, name="again", memory_limit_mb=4096)
    assert again.metrics == result.metrics  # seeded
    monkeypatch.setattr(core, "METRICS_SAMPLE_ROWS", 2000)
    other = train(wide_rows, tmp_path, name="other", memory_limit_mb=4096)
    assert other.metrics["metrics_sample_rows"] == 2000 and other.metrics["log_loss"] != result.metrics["log_loss"]


def test_stratified_sample_keeps_every_class_and_its_share():
    labels = np.array(["a"] * 90_000 + ["b"] * 9_990 + ["rare"] * 10)
    take = rows.sample_indices(len(labels), 1000, 7, labels)
    assert len(take) == 1000 and len(set(take.tolist())) == 1000 and (np.diff(take) > 0).all()
    counts = pd.Series(labels[take]).value_counts().to_dict()
    assert counts == {"a": 900, "b": 99, "rare": 1}
    assert (rows.sample_indices(len(labels), 1000, 7, labels) == take).all()
    assert not (rows.sample_indices(len(labels), 1000, 8, labels) == take).all()
    plain = rows.sample_indices(100, 10, 7)
    assert len(set(plain.tolist())) == 10 and plain.max() < 100
    assert (rows.sample_indices(100, 100, 7) == np.arange(100)).all()


def test_max_train_rows_is_checked():
    from kfp_tabular.components.common.errors import ConfigError

    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ConfigError, match="max_train_rows"):
            TrainRequest("target", max_train_rows=bad)
