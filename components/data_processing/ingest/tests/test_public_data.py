"""Ingest on real public data (scikit-learn's bundled datasets) with the problems of issue 8 added to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.ingest.core import IngestResult, ingest, label_task
from kfp_tabular.components.data_processing.ingest.request import IngestRequest
from kfp_tabular.components.evaluation.evaluate.request import EvaluateRequest


def load(name: str) -> pd.DataFrame:
    return getattr(datasets, f"load_{name}")(as_frame=True).frame


def run(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv", **kwargs) -> IngestResult:
    path = tmp_path / name
    frame.to_csv(path, index=False) if name.endswith(".csv") else frame.to_parquet(path, index=False)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return ingest(IngestRequest(str(path), kwargs.pop("label_column", "target"), **kwargs), out / "tr", out / "ev")


def nothing_written(tmp_path: Path) -> bool:
    return not any((tmp_path / "out").glob("*"))


def actions(result: IngestResult) -> dict[str, str]:
    return {d.subject: d.action for d in result.decisions}


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    """Breast cancer with an ID, a visit time stored as text, a note that leaks the label, a 1.0/0.0 label."""
    frame = load("breast_cancer")
    n = len(frame)
    frame.insert(0, "sample_id", np.arange(1, n + 1))
    frame["visited_at"] = pd.date_range("2021-01-01 08:00", periods=n, freq="37min").strftime("%Y-%m-%d %H:%M:%S")
    finding = np.where(frame["target"] == 1, "benign finding, routine follow up", "malignant, refer to oncology")
    radius = frame["mean radius"]
    frame["notes"] = [
        f"{text}; radius {r:.2f} mm, reviewed by doctor {i % 17}" for i, (text, r) in enumerate(zip(finding, radius))
    ]
    frame["target"] = frame["target"].astype(float)
    return frame


def test_breast_cancer_columns_by_role_and_a_float_label(tmp_path, cancer):
    result = run(tmp_path, cancer)
    assert actions(result) == {
        "target": "positive class",  # the task decision and the positive class share the subject; the last wins
        "sample_id": "dropped",
        "visited_at": "expanded",
        "notes": "dropped",
    }
    assert [d.action for d in result.decisions if d.subject == "target"] == ["classification", "positive class"]
    assert result.task == "classification" and result.label_classes == [0, 1]
    # 212 malignant (0) of 569: the minority is the positive class
    assert result.positive_class == 0 and result.positive_rate == pytest.approx(212 / 569)
    train = pd.read_parquet(tmp_path / "out" / "tr")
    assert train["target"].dtype == "int64"
    assert {"visited_at_year", "visited_at_month", "visited_at_day_of_week", "visited_at_hour"} <= set(train.columns)
    assert not {"sample_id", "notes", "visited_at"} & set(train.columns)
    assert len(train.columns) == 30 + 1 + 4


def test_a_90_percent_yes_label_measures_the_minority_unless_told(tmp_path):
    frame = load("breast_cancer")
    benign, malignant = frame[frame.target == 1], frame[frame.target == 0].head(40)
    skewed = pd.concat([benign, malignant]).sort_index()
    skewed["target"] = np.where(skewed["target"] == 1, "Yes", "No")
    result = run(tmp_path, skewed)
    assert result.positive_class == "No" and result.positive_rate == pytest.approx(40 / 397)
    (tmp_path / "again").mkdir()
    chosen = run(tmp_path / "again", skewed, positive_class="Yes")
    assert chosen.positive_class == "Yes" and chosen.positive_rate == pytest.approx(357 / 397)
    (tmp_path / "wrong").mkdir()
    with pytest.raises(
        ConfigError, match=r"positive_class: 'yes' is not a value of label column 'target' \(its values: 'No', 'Yes'\)"
    ):
        run(tmp_path / "wrong", skewed, positive_class="yes")
    assert nothing_written(tmp_path / "wrong")


def test_iris_sorted_by_species_loses_its_row_number(tmp_path):
    """A row number predicts a label sorted by class perfectly: it is dropped as an ID."""
    iris = load("iris").sort_values("target").reset_index(drop=True)
    iris.insert(0, "Unnamed: 0", range(len(iris)))
    result = run(tmp_path, iris)
    assert actions(result)["Unnamed: 0"] == "dropped" and result.positive_class is None
    assert result.label_classes == [0, 1, 2]


def test_diabetes_is_regression_and_a_visit_number_is_an_id(tmp_path):
    frame = load("diabetes")
    frame["visit_no"] = np.arange(len(frame)) * 3 + 1000
    result = run(tmp_path, frame, "d.parquet")
    assert result.task == "regression" and "214 distinct values (more than 20)" in result.decisions[0].reason
    assert actions(result)["visit_no"] == "dropped"
    decided = label_task(str(tmp_path / "d.parquet"), "target")
    assert decided.task == "regression"
    # The check the runner makes before anything runs: roc_auc cannot apply to this label.
    with pytest.raises(ConfigError, match="roc_auc applies to classification only"):
        EvaluateRequest("target", thresholds={"roc_auc": 0.8}).check_for_task(decided.task)


def test_label_task_of_a_float_binary_label(tmp_path, cancer):
    cancer.to_csv(tmp_path / "c.csv", index=False)
    decided = label_task(str(tmp_path / "c.csv"), "target")
    assert decided.task == "classification" and decided.whole_floats
    EvaluateRequest("target", thresholds={"roc_auc": 0.8}).check_for_task(decided.task)
    with pytest.raises(DataError, match="label column 'nope' not found"):
        label_task(str(tmp_path / "c.csv"), "nope")


def test_ten_rows_are_too_few_and_say_the_minimum(tmp_path):
    with pytest.raises(DataError, match=r"too few rows: 10; at least 50 are needed to train and evaluate a model"):
        run(tmp_path, load("iris").head(10))
    assert nothing_written(tmp_path)


def test_wine_with_an_all_null_column_and_a_constant(tmp_path):
    wine = load("wine").assign(cork=np.nan, region="Piemonte")
    result = run(tmp_path, wine)
    assert actions(result)["cork"] == "dropped" and actions(result)["region"] == "dropped"


def test_wine_with_a_missing_marker_mixing_text_into_numbers(tmp_path):
    wine = load("wine")
    wine["magnesium"] = wine["magnesium"].astype(int).astype(str)
    wine.loc[[3, 50, 90], "magnesium"] = "?"
    with pytest.raises(
        DataError, match=r"column 'magnesium' mixes numbers \(175 values\) with text \(3 values: '\?' \(3 rows\)\)"
    ):
        run(tmp_path, wine)
    assert nothing_written(tmp_path)


def test_a_huge_value_in_breast_cancer_names_the_column(tmp_path):
    frame = load("breast_cancer")
    frame.loc[10, "mean area"] = 1e308
    with pytest.raises(
        DataError, match=r"column 'mean area' holds 1 infinite or huge value\(s\) \(1e\+308; first at data rows 11"
    ):
        run(tmp_path, frame, "b.parquet")
    assert nothing_written(tmp_path)


def test_a_truncated_csv_row_names_the_line(tmp_path):
    load("wine").to_csv(tmp_path / "w.csv", index=False)
    lines = (tmp_path / "w.csv").read_text().splitlines(keepends=True)
    lines[5] = ",".join(lines[5].split(",")[:6]) + "\n"  # the record of data row 5, cut after 6 fields
    (tmp_path / "w.csv").write_text("".join(lines))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(
        DataError,
        match=r"w.csv: cannot parse CSV: 1 row\(s\) have fewer fields than the 14 of the header \(line 6 has 6\)",
    ):
        ingest(IngestRequest(str(tmp_path / "w.csv"), "target"), out / "tr", out / "ev")
    assert nothing_written(tmp_path)
