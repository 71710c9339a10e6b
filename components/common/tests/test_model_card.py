"""The model card: every section from the lineage record, the same content in Markdown and HTML, text escaped."""

from __future__ import annotations

import re

from kfp_tabular.components.common import lineage, model_card

SHA = "a" * 64


def record(**changes) -> lineage.LineageRecord:
    fields = dict(
        model_sha256=SHA,
        model_uri="s3://runs/1/model",
        storage_uri="s3://models/churn/" + SHA[:16],
        task="classification",
        label_column="churned",
        classes=[0, 1],
        positive_class=1,
        training_data={"uri": "s3://runs/1/train_data", "hash": "b" * 64},
        source_data={"uri": "s3://raw/churn.csv", "hash": "c" * 64},
        statistics_uri="s3://runs/1/train_statistics",
        schema_uri="s3://runs/1/schema",
        blessing={
            "blessed": True,
            "model_sha256": SHA,
            "reasons": ["roc_auc 0.85 >= 0.70", "not worse than the baseline"],
            "thresholds": {"roc_auc": 0.7, "accuracy": 0.9},
            "baseline_metrics": {"roc_auc": 0.83},
            "tolerance": 0.01,
        },
        metrics={"accuracy": 0.8, "roc_auc": 0.85},
        baseline_model={"sha256": "d" * 64, "uri": "s3://models/churn/old"},
        prediction_distribution={"kind": "score", "what": "P(churned=1)", "edges": [0.5], "counts": [3, 4], "rows": 7},
        run={"id": "r-1", "name": "train-and-deploy-x", "pipeline": "kfp-tabular-train-and-deploy"},
    )
    fields.update(changes)
    return lineage.LineageRecord(**fields)


SERVING = model_card.Serving("churn-classifier", "kfp-tabular", "s3://models/churn/" + SHA[:16])
FEATURES = [{"name": "tenure", "type": "INT", "min_fraction": 1.0, "values": "[0, 72]"}]


def test_markdown_has_every_section_with_the_record_s_values():
    text = model_card.to_markdown(
        record(), SERVING, FEATURES, {"source_rows": 1000, "train_rows": 800, "estimator": "hist"}
    )
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections == [
        "Where it serves",
        "Model",
        "Data",
        "Schema (1 features)",
        "Metrics, thresholds and blessing",
        "Baseline",
        "Prediction distribution at evaluation",
        "Run",
    ]
    for line in (
        "| InferenceService | kfp-tabular/churn-classifier |",
        f"| training data | s3://runs/1/train_data | {'b' * 64} | 1000 (800 fitted) |",
        "| tenure | INT | 1 | [0, 72] |",
        "| roc_auc | 0.85 | 0.7 | 0.83 | pass |",
        "| accuracy | 0.8 | 0.9 | - | FAIL |",
        f"| baseline model | s3://models/churn/old | {'d' * 64} |",
        "| (-inf, 0.5] | 3 |",
        "| (0.5, +inf] | 4 |",
        "| run id | r-1 |",
        "- not worse than the baseline",
    ):
        assert line in text, line


def test_without_schema_baseline_or_deployment_the_card_says_so():
    text = model_card.to_markdown(record(baseline_model=None, storage_uri="", prediction_distribution=None))
    assert "| InferenceService | not deployed |" in text
    assert "no baseline model: judged on the thresholds alone" in text
    assert "## Schema" not in text and "## Prediction distribution" not in text


def test_html_is_self_contained_escaped_and_draws_the_distribution():
    html = model_card.to_html(record(label_column="<script>x</script>"), SERVING, FEATURES)
    assert html.startswith("<!DOCTYPE html>")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert not re.search(r"""(src|href)=["']?https?:""", html), "nothing fetched"
    assert html.count("<svg") == 1 and 'data-series="evaluation"' in html
    assert "kfp-tabular/churn-classifier" in html and "tenure" in html


def test_write_writes_both_files(tmp_path):
    model_card.write(record(), tmp_path / "card.md", tmp_path / "card.html", SERVING)
    assert (tmp_path / "card.md").read_text().startswith("# Model card: churned classification model aaaaaaaa")
    assert "<h2>Run</h2>" in (tmp_path / "card.html").read_text()


def test_schema_features_show_open_bounds_as_open(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(
        """
feature { name: "calls" type: INT int_domain { min: 0 } presence { min_fraction: 1.0 } }
feature { name: "age" type: FLOAT float_domain { min: 18 max: 120 } presence { min_fraction: 0.9 } }
feature { name: "plan" type: BYTES domain: "plan" }
string_domain { name: "plan" value: "basic" value: "pro" }
"""
    )
    assert model_card.schema_features(str(schema)) == [
        {"name": "calls", "type": "INT", "min_fraction": 1.0, "values": ">= 0"},
        {"name": "age", "type": "FLOAT", "min_fraction": 0.9, "values": "[18, 120]"},
        {"name": "plan", "type": "BYTES", "min_fraction": None, "values": "basic, pro"},
    ]
    schema.write_text("feature { nonsense }")
    import pytest

    from kfp_tabular.components.common.errors import DataError

    with pytest.raises(DataError, match="schema.pbtxt: schema cannot be read"):
        model_card.schema_features(str(schema))
