"""run_local's choice of a baseline: from the production model's metadata and the data's header alone."""

import dataclasses
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.data_processing.ingest.core import read_table
from kfp_tabular.pipelines.training.train_and_deploy.run_local import baseline_mismatch

FEATURES = ["tenure", "plan"]


@pytest.fixture()
def production(tmp_path):
    """A production entry whose model predicts 'churned' from tenure and plan."""
    model_dir = tmp_path / "production" / "run-1" / "model"
    model_dir.mkdir(parents=True)
    metadata = {"label_column": "churned", "feature_order": FEATURES}
    (model_dir / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return {"run": "run-1", "model_dir": str(model_dir)}


def write_csv(path, header: str, body: bytes | None = None) -> str:
    """Write a CSV (gzip for .gz) with ``header`` and ``body`` (default: one row of as many fields)."""
    body = (",".join("1" for _ in header.split(",")) + "\n").encode() if body is None else body
    data = header.encode() + b"\n" + body
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return str(path)


@pytest.mark.parametrize(
    "header, label, expected",
    [
        ("tenure,plan,churned", "churned", ""),
        ("plan,extra,tenure,churned", "churned", ""),
        ("tenure,churned", "churned", "lacks its column(s) plan"),
        ("tenure,plan,churned", "upgraded", "it predicts 'churned', this run 'upgraded'"),
    ],
)
def test_the_production_model_is_a_baseline_only_for_data_it_can_score(production, tmp_path, header, label, expected):
    reason = baseline_mismatch(production, write_csv(tmp_path / "data.csv", header), label)
    assert reason == expected if not expected else expected in reason


def test_a_model_with_derived_features_is_compared_by_its_source_columns(production, tmp_path):
    """ingest expanded 'signup' into calendar features: the header has 'signup', not 'signup_year'."""
    metadata_path = Path(production["model_dir"]) / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata.update(feature_order=[*FEATURES, "signup_year"], source_columns=[*FEATURES, "signup", "churned"])
    metadata_path.write_text(json.dumps(metadata))
    assert baseline_mismatch(production, write_csv(tmp_path / "a.csv", "tenure,plan,signup,churned"), "churned") == ""
    reason = baseline_mismatch(production, write_csv(tmp_path / "b.csv", "tenure,plan,churned"), "churned")
    assert "lacks its column(s) signup" in reason


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz"])
def test_only_the_csv_header_is_read(production, tmp_path, name):
    """The body is not CSV at all: reading the whole file (read_table) fails, the header alone answers."""
    body = b"\xff\xfe not, a, row, of, this, table\n" * 50_000 + b"1,2,3,4,5,6,7,8\n"
    source = write_csv(tmp_path / name, "tenure,plan,churned", body)
    with pytest.raises(DataError):
        read_table(source)
    assert baseline_mismatch(production, source, "churned") == ""


def test_only_the_parquet_schema_is_read(production, tmp_path, monkeypatch):
    """Parquet: the columns come from the footer; the row groups are never read."""
    import pyarrow.parquet as pq

    frame = pd.DataFrame({"tenure": range(1000), "plan": ["a"] * 1000, "churned": [0, 1] * 500})
    frame.to_parquet(tmp_path / "data.parquet", index=False)

    def no_rows(*args, **kwargs):
        raise AssertionError("the rows were read")

    monkeypatch.setattr(pq.ParquetFile, "read", no_rows)
    monkeypatch.setattr(pq, "read_table", no_rows)
    assert baseline_mismatch(production, str(tmp_path / "data.parquet"), "churned") == ""
    with pytest.raises(AssertionError, match="the rows were read"):
        read_table(str(tmp_path / "data.parquet"))


def test_the_summary_lists_only_the_drift_rows_that_flag_and_counts_the_rest():
    from kfp_tabular.components.data_processing.validate.reports import render_markdown
    from kfp_tabular.components.data_processing.validate.results import DriftMeasurement, ValidationResult
    from kfp_tabular.pipelines.training.train_and_deploy.run_local import validation_lines

    def measure(feature, comparison, distance, flagged, gating):
        kind = "drift"
        return DriftMeasurement(
            comparison, kind, feature, "js_distance", distance, 0.03, 0.02, 1e-9, 100, 400, flagged, gating
        )

    result = ValidationResult(
        anomalies=[],
        drift=[
            measure("age", "eval_vs_train", 0.01, False, False),
            measure("income", "batch_vs_baseline", 0.4, True, True),
            measure("tenure", "batch_vs_baseline", 0.01, False, True),
            measure("score", "eval_vs_train", 0.2, True, False),
        ],
        schema_source="inferred",
        schema_uri="",
        num_examples={"train": 400, "eval": 100},
        num_features={"train": 4, "eval": 4},
        schema_features=4,
        label_column="churned",
    )
    markdown = render_markdown(result)
    lines = validation_lines(markdown, {"validation": "/runs/x/reports/validation.html"})
    text = "\n".join(lines)
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| feature")]
    assert [row.split("|")[1].strip() for row in rows if not set(row) <= set("|- ")] == ["income", "score"]
    assert text.count("| feature | comparison |") == 1  # the header once, before the first flagged row
    assert "(2 drift/skew measurements within their threshold or noise bound: every row in " in text
    assert "/runs/x/reports/validation.html" in text and "distance: " not in text
    assert "# Data validation" in text  # the verdict and everything outside the drift table stay
    # Nothing flagged: no table at all, only the count.
    quiet = validation_lines(render_markdown(dataclasses.replace(result, drift=result.drift[:1])))
    assert not any(line.startswith("|") for line in quiet)
    assert quiet[-1].startswith("(1 drift/skew measurements within") and quiet[-1].endswith("the validation report)")
