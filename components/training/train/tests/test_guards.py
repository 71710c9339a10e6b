"""Train on real and built data: capped one-hot, sparse input, the memory check, leakage warnings, labels."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn import datasets

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.training.train import core, guards
from kfp_tabular.components.training.train.request import TrainRequest
from tests.support.pickle_audit import pickled_modules

FAST = {"max_iter": 30}


def load(name: str) -> pd.DataFrame:
    return getattr(datasets, f"load_{name}")(as_frame=True).frame


@pytest.fixture()
def files(tmp_path, schema_writer):
    """Write a frame and its inferred TFDV schema; return (data, schema) paths."""

    def write(frame: pd.DataFrame, name: str = "d") -> tuple[Path, Path]:
        data = tmp_path / f"{name}.parquet"
        frame.to_parquet(data, index=False)
        return data, schema_writer(frame, tmp_path / f"{name}.pbtxt")

    return write


def fit(files, frame, tmp_path, label="target", name="d", **kwargs) -> core.TrainResult:
    data, schema = files(frame, name)
    positive = kwargs.pop("positive_class", None)
    request = TrainRequest(label, kwargs.pop("estimator", "hist_gradient_boosting"), kwargs.pop("hp", FAST), **kwargs)
    return core.train(request, data, schema, tmp_path / f"model-{name}", positive_class=positive)


def by_subject(result: core.TrainResult, action: str) -> dict[str, str]:
    return {d.subject: d.reason for d in result.decisions if d.action == action}


# --- categoricals: capped, sparse where the estimator takes it ---------------------------------------------------


def test_a_high_cardinality_categorical_is_capped_and_sparse_for_logistic_regression(files, tmp_path):
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame(
        {
            "zip": [f"z{v}" for v in rng.zipf(1.3, n) % 3000],  # thousands of categories, a long tail
            "x": rng.normal(size=n),
            "target": rng.integers(0, 2, n),
        }
    )
    result = fit(files, frame, tmp_path, estimator="logistic_regression", hp={})
    capped = by_subject(result, "capped")
    assert (
        list(capped) == ["zip"]
        and "share one 'infrequent' column (max_categories=50, min_frequency=5)" in capped["zip"]
    )
    model = joblib.load(tmp_path / "model-d" / "model.joblib")
    encoded = model[:-1].transform(frame.drop(columns="target"))
    assert scipy.sparse.issparse(encoded) and encoded.shape == (n, 1 + 50)
    assert result.metadata["encoding"] == {"max_categories": 50, "min_frequency": 5, "sparse": True}
    # Unseen categories are ignored, and the pickle stays portable.
    assert model.predict_proba(pd.DataFrame({"zip": ["never-seen"], "x": [0.0]})).shape == (1, 2)
    assert pickled_modules(tmp_path / "model-d" / "model.joblib") <= {
        "sklearn",
        "numpy",
        "pandas",
        "scipy",
        "joblib",
        "_loss",
        "functools",
        "operator",
        "builtins",
        "copyreg",
        "_codecs",
    }


def test_tree_models_get_a_dense_matrix_bounded_by_max_categories(files, tmp_path):
    rng = np.random.default_rng(1)
    n = 3000
    frame = pd.DataFrame({"code": [f"c{i % 400}" for i in range(n)], "target": rng.integers(0, 2, n)})
    fit(files, frame, tmp_path, max_categories=10, min_frequency=1)
    model = joblib.load(tmp_path / "model-d" / "model.joblib")
    encoded = model[:-1].transform(frame.drop(columns="target"))
    assert not scipy.sparse.issparse(encoded) and encoded.shape == (n, 10)


# --- memory ------------------------------------------------------------------------------------------------------


def test_a_fit_over_the_memory_limit_is_refused_naming_the_widest_features(files, tmp_path):
    rng = np.random.default_rng(2)
    n = 20_000
    frame = pd.DataFrame(
        {
            "when": [f"2024-01-01 {i % 24:02d}:{i % 60:02d}:{i % 59:02d}.{i}" for i in range(n)],  # a timestamp as text
            "city": [f"c{i % 30}" for i in range(n)],
            "x": rng.normal(size=n),
            "target": rng.integers(0, 2, n),
        }
    )
    with pytest.raises(DataError) as info:
        fit(files, frame, tmp_path, max_categories=20_000, memory_limit_mb=64)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "d.parquet"))
    assert "training would need about" in message and "20,000 rows x 20,031 encoded columns" in message
    assert "over 80% of the memory limit 64.0 MB (memory_limit_mb)" in message
    assert "the widest features: 'when' (20000 columns), 'city' (30 columns), 'x' (1 columns)" in message
    assert not (tmp_path / "model-d").exists()
    # The default cap keeps the same data well inside the same limit.
    assert fit(files, frame, tmp_path, name="capped", memory_limit_mb=256).metadata["memory_estimate_bytes"] < 64 << 20


def test_the_memory_limit_comes_from_the_parameter_the_cgroup_or_the_machine(tmp_path):
    assert guards.memory_limit(512) == (512 << 20, "memory_limit_mb")
    (tmp_path / "memory.max").write_text("1073741824\n")
    limit, where = guards.memory_limit(0, (str(tmp_path / "memory.max"),))
    assert limit == 1 << 30 and str(tmp_path / "memory.max") in where
    (tmp_path / "memory.max").write_text("max\n")
    cgroups = (str(tmp_path / "memory.max"), str(tmp_path / "absent"))
    (tmp_path / "meminfo").write_text("MemTotal:       24000000 kB\nMemAvailable:    2097152 kB\n")
    limit, where = guards.memory_limit(0, cgroups, str(tmp_path / "meminfo"))
    # Available memory plus what this process already holds (its data is counted in the estimate).
    assert where.startswith("the machine's available memory") and 2 << 30 < limit < (2 << 30) + (8 << 30)
    limit, where = guards.memory_limit(0, cgroups, str(tmp_path / "absent"))
    assert where == "the machine's physical memory" and limit > 0


# --- leakage -----------------------------------------------------------------------------------------------------


def test_breast_cancer_alone_has_no_leak(files, tmp_path):
    result = fit(files, load("breast_cancer"), tmp_path)
    assert by_subject(result, "warning") == {}


def test_a_numeric_and_a_categorical_leak_in_breast_cancer_are_warned_about(files, tmp_path):
    frame = load("breast_cancer")
    rng = np.random.default_rng(3)
    frame["biopsy_score"] = frame["target"] * 10 + rng.normal(0, 1, len(frame))
    finding = np.where(frame["target"] == 1, "benign finding", "malignant, refer")
    frame["notes"] = [f"{text} (doctor {i % 17})" for i, text in enumerate(finding)]
    result = fit(files, frame, tmp_path)
    warned = by_subject(result, "warning")
    assert set(warned) == {"biopsy_score", "notes"}
    assert (
        "alone predicts the label almost perfectly (ROC AUC 1.000 on 569 sampled rows, threshold 0.99)"
        in warned["biopsy_score"]
    )
    assert "held-out ROC AUC 1.000" in warned["notes"]
    assert result.metadata["decisions"] and (tmp_path / "model-d" / "model.joblib").is_file()  # a warning, not an error


def test_leaks_in_regression_and_multiclass_data(files, tmp_path):
    diabetes = load("diabetes")
    diabetes["charge"] = diabetes["target"] * 3 + 7
    warned = by_subject(fit(files, diabetes, tmp_path, name="diabetes", task="regression"), "warning")
    assert list(warned) == ["charge"] and "|correlation| 1.000" in warned["charge"]
    iris = load("iris")
    iris["species_code"] = iris["target"].map({0: "set", 1: "ver", 2: "vir"})
    warned = by_subject(fit(files, iris, tmp_path, name="iris"), "warning")
    assert list(warned) == ["species_code"] and "held-out balanced accuracy 1.000" in warned["species_code"]


# --- labels ------------------------------------------------------------------------------------------------------


def test_a_float_label_of_zeros_and_ones_is_classification(files, tmp_path):
    frame = load("breast_cancer").assign(target=lambda f: f["target"].astype(float))
    result = fit(files, frame, tmp_path)
    assert result.metadata["task"] == "classification" and result.metadata["classes"] == [0, 1]
    assert "whole numbers" in by_subject(result, "classification")["target"]
    assert set(result.metrics) >= {"roc_auc", "accuracy"}


def test_the_positive_class_comes_from_the_dataset_or_is_the_minority(files, tmp_path):
    frame = load("breast_cancer")
    frame = pd.concat([frame[frame.target == 1], frame[frame.target == 0].head(40)]).reset_index(drop=True)
    frame["target"] = np.where(frame["target"] == 1, "Yes", "No")
    chosen = fit(files, frame, tmp_path, name="chosen", positive_class="Yes")
    assert chosen.metadata["positive_class"] == "Yes" and by_subject(chosen, "positive class") == {}
    default = fit(files, frame, tmp_path, name="default")
    assert default.metadata["positive_class"] == "No" and "minority" in by_subject(default, "positive class")["target"]
    assert chosen.metrics["roc_auc"] == pytest.approx(default.metrics["roc_auc"])
    with pytest.raises(
        DataError, match=r"positive class 'maybe' .* is not a class of label column 'target'; its classes: 'No', 'Yes'"
    ):
        fit(files, frame, tmp_path, name="wrong", positive_class="maybe")
    assert not (tmp_path / "model-wrong").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_categories": 1}, "max_categories: expected an integer >= 2, got 1"),
        ({"min_frequency": 0}, r"min_frequency: expected an integer >= 1 \(rows\), got 0"),
        ({"memory_limit_mb": -5}, r"memory_limit_mb: expected an integer >= 0"),
        ({"max_categories": 10.5}, "max_categories: expected an integer >= 2, got 10.5"),
    ],
)
def test_the_new_parameters_are_checked(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainRequest("y", **kwargs)
