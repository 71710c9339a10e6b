"""Tests of ``validate`` against the real TFDV (no mocks), on small seeded churn data (see conftest.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError, ValidationFailed
from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import core, reports, statistics, tfdv_io
from kfp_tabular.components.data_processing.validate.request import ValidateRequest

CURATED = str(Path(synthetic.__file__).parent / "churn_schema.pbtxt")
LABEL = synthetic.LABEL
OUTPUTS = (
    "train_statistics_path",
    "eval_statistics_path",
    "schema_path",
    "anomalies_path",
    "anomalies_report_path",
    "statistics_html_path",
    "report_path",
)
SHIFTED = {"tenure_months", "monthly_charges", "total_charges", "contract_type", "payment_method"}
UNCHANGED = {"region", "age", "paperless_billing", "support_calls", "internet_service", LABEL}


def outputs(tmp_path) -> dict[str, str]:
    return {name: str(tmp_path / "out" / name.replace("_path", "")) for name in OUTPUTS}


def run(train: str, evaluation: str, label: str = LABEL, **kwargs):
    """``core.validate`` with the output paths and the request's fields given as keywords."""
    paths = {name: kwargs.pop(name) for name in OUTPUTS if name in kwargs}
    return core.validate(train, evaluation, ValidateRequest(label, **kwargs), **paths)


def test_curated_schema_default_data_is_clean(data, tmp_path):
    paths = outputs(tmp_path)
    result = run(data["train"], data["eval"], LABEL, schema_uri=CURATED, **paths)
    assert result.ok, reports.failure_message(result)
    assert result.anomalies == [] and result.drifted_features == []
    assert result.schema_source == "curated" and result.schema_uri == CURATED
    assert result.num_examples == {"train": 5000, "eval": 5000}
    assert {m.feature for m in result.drift} == set(synthetic.generate(10, 0).columns)
    assert all(m.comparison == "eval_vs_train" and m.kind == "drift" and not m.gating for m in result.drift)
    assert all(m.n_a == 5000 and m.n_b == 5000 and 0 < m.noise_bound < 1 for m in result.drift)
    # The curated schema is passed on byte for byte, comments included.
    assert Path(paths["schema_path"]).read_bytes() == Path(CURATED).read_bytes()
    assert tfdv_io.load_statistics(paths["train_statistics_path"]).datasets[0].name == "train"
    assert tfdv_io.load_statistics(paths["eval_statistics_path"]).datasets[0].num_examples == 5000
    assert "**PASSED**" in Path(paths["anomalies_report_path"]).read_text()
    assert "No anomalies." in Path(paths["report_path"]).read_text()


@pytest.mark.parametrize("rows", [800, 2000])
def test_curated_schema_keeps_small_default_samples_clean(tmp_path, rows):
    # Two samples of one distribution, eval-vs-train gating: sampling noise at these sizes flags nothing.
    # support_calls is a categorical INT in the curated schema (L-infinity, its own threshold 0.1).
    train = synthetic.write(synthetic.generate(rows, 11), tmp_path / "train.parquet")
    evaluation = synthetic.write(synthetic.generate(rows // 4, 12), tmp_path / "eval.parquet")
    result = run(train, evaluation, LABEL, schema_uri=CURATED, drift_gate="all")
    assert result.ok, reports.failure_message(result)
    assert result.flagged == []
    calls = next(m for m in result.drift if m.feature == "support_calls")
    assert calls.metric == "l_infinity" and calls.threshold == 0.1 and 0 < calls.distance  # measured, not 0


@pytest.mark.parametrize("seed", [9, 10, 11])
def test_inferred_schema_compares_small_counts_value_by_value(tmp_path, seed):
    # Without a curated schema, support_calls (0..~10) and the 0/1 flags are inferred categorical, so a fresh
    # sample of the same distribution does not "drift" on JSD histogram noise (TFDV #216).
    train = synthetic.write(synthetic.generate(2400, seed), tmp_path / "train.parquet")
    evaluation = synthetic.write(synthetic.generate(600, seed + 100), tmp_path / "eval.parquet")
    paths = outputs(tmp_path)
    result = run(train, evaluation, LABEL, drift_gate="all", **paths)
    assert result.ok, reports.failure_message(result)
    metrics = {m.feature: m.metric for m in result.drift}
    assert metrics["support_calls"] == metrics["paperless_billing"] == "l_infinity"
    assert metrics["tenure_months"] == metrics["monthly_charges"] == "js_distance"
    schema = tfdv_io.load_schema(paths["schema_path"])
    categorical = {f.name for f in schema.feature if f.int_domain.is_categorical}
    assert {"support_calls", "paperless_billing", "has_partner"} <= categorical and "tenure_months" not in categorical


def test_inferred_schema_is_written(data, tmp_path):
    paths = outputs(tmp_path)
    result = run(data["train"], data["eval"], LABEL, **paths)
    assert result.ok and result.schema_source == "inferred" and result.schema_uri == ""
    written = tfdv_io.load_schema(paths["schema_path"])
    assert len(written.feature) == result.schema_features == 12
    # No comparators (drift thresholds come from the request); string domains are open (min_domain_mass).
    assert not any(f.HasField("drift_comparator") for f in written.feature)
    open_domains = {f.name for f in written.feature if f.distribution_constraints.min_domain_mass == 0.99}
    assert open_domains == {"contract_type", "payment_method", "internet_service", "region"}


def test_drifted_data_anomalies(data, tmp_path):
    result = run(
        data["train"], data["drifted"], LABEL, schema_uri=CURATED, fail_on_anomalies=False, **outputs(tmp_path)
    )
    assert not result.ok
    found = {(a.split, a.feature, a.kind) for a in result.anomalies}
    assert found == {
        ("eval", "has_partner", "SCHEMA_MISSING_COLUMN"),
        ("eval", "payment_method", "ENUM_TYPE_UNEXPECTED_STRING_VALUES"),
    }
    crypto = next(a for a in result.anomalies if a.feature == "payment_method")
    assert "crypto" in crypto.description and crypto.severity == "ERROR"


def test_eval_vs_train_drift_is_reported_not_gating_by_default(data):
    result = run(data["train"], data["drifted"], LABEL, schema_uri=CURATED, fail_on_anomalies=False)
    measured = {m.feature: m for m in result.drift}
    # Every shifted feature is flagged (and the label, whose rate follows them) ...
    assert set(result.flagged_features) == SHIFTED | {LABEL}
    assert measured["monthly_charges"].metric == "js_distance"
    assert measured["contract_type"].metric == "l_infinity"
    assert measured["age"].threshold == 0.03 and measured["region"].threshold == 0.05
    # the curated schema's own comparator wins: support_calls has L-infinity 0.1 there
    assert measured["support_calls"].metric == "l_infinity" and measured["support_calls"].threshold == 0.1
    # ... but a random split's eval-vs-train only reports: the anomalies fail the run, not drift.
    assert result.drifted_features == [] and not any(m.gating for m in result.drift)
    assert len(result.anomalies) == 2
    assert "eval_vs_train: has_partner: not in the eval statistics, not compared" in result.notes


def test_drift_gate_all_fails_on_eval_vs_train_naming_the_features(data):
    same = run(data["train"], data["eval"], LABEL, schema_uri=CURATED, drift_gate="all")
    assert same.ok and same.flagged == []
    drifted = run(data["train"], data["drifted"], LABEL, schema_uri=CURATED, drift_gate="all", fail_on_anomalies=False)
    assert drifted.drifted_features == sorted(SHIFTED | {LABEL})
    for m in drifted.drifted:
        assert m.distance > m.threshold and m.distance > m.noise_bound and m.p_value < 0.01 / len(drifted.drift)
    none = run(data["train"], data["drifted"], LABEL, schema_uri=CURATED, drift_gate="none", fail_on_anomalies=False)
    assert none.drifted_features == [] and set(none.flagged_features) == SHIFTED | {LABEL}


def _previous_run_statistics(tmp_path, frame, name="baseline"):
    """Train statistics of a run on ``frame`` (curated schema): what a production model was trained on."""
    path = tmp_path / f"{name}.pb"
    statistics.compute_statistics(
        synthetic.write(frame, tmp_path / f"{name}.parquet"), output_path=str(path), schema_uri=CURATED
    )
    return str(path)


def test_drift_against_baseline_statistics_gates(data, tmp_path):
    baseline = _previous_run_statistics(tmp_path, synthetic.generate(4000, 31))
    # A new batch of the same distribution: compared as a whole (train and eval) against the baseline, clean.
    clean = run(data["train"], data["eval"], LABEL, schema_uri=CURATED, baseline_statistics_uri=baseline)
    assert clean.ok, reports.failure_message(clean)
    against = [m for m in clean.drift if m.comparison == "batch_vs_baseline"]
    assert {m.n_a for m in against} == {10000} and {m.n_b for m in against} == {4000}
    assert all(m.gating for m in against) and not any(m.gating for m in clean.drift if m.comparison == "eval_vs_train")
    assert clean.num_examples["baseline"] == 4000
    # A drifted batch (train and eval both drifted) fails the run naming the drifted features.
    train = synthetic.write(synthetic.generate(4000, 32, "drifted"), tmp_path / "drifted_train.parquet")
    with pytest.raises(ValidationFailed) as info:
        run(train, data["drifted"], LABEL, schema_uri=CURATED, baseline_statistics_uri=baseline)
    result = info.value.result
    assert set(result.drifted_features) == SHIFTED | {LABEL}
    assert {m.comparison for m in result.drifted} == {"batch_vs_baseline"}
    for feature in SHIFTED:
        line = rf"  - {feature}: (js_distance|l_infinity) .* batch_vs_baseline, n 9000 vs 4000"
        assert re.search(line, str(info.value))


def test_coarse_baseline_statistics_are_compared_with_a_note(data, tmp_path):
    """Baseline statistics with TFDV's default 10 quantile buckets: compared on 10 bins, and the report says so."""
    import tensorflow_data_validation as tfdv

    frame = synthetic.generate(4000, 33)
    options = tfdv.StatsOptions(schema=tfdv_io.load_schema(CURATED))
    coarse = tfdv.generate_statistics_from_dataframe(frame, options, n_jobs=1)
    path = tmp_path / "coarse.pb"
    tfdv_io.write_binary(str(path), coarse)
    result = run(data["train"], data["eval"], LABEL, schema_uri=CURATED, baseline_statistics_uri=str(path))
    assert result.ok, reports.failure_message(result)
    assert any("only 10 quantile buckets" in note and "batch_vs_baseline" in note for note in result.notes)


def test_baseline_summarized_without_the_schema_is_refused(data, tmp_path):
    baseline = tmp_path / "no-schema.pb"
    statistics.compute_statistics(data["eval"], output_path=str(baseline))  # support_calls summarized as a number
    with pytest.raises(
        DataError,
        match=r"no-schema.pb \(baseline_statistics_uri\): statistics not comparable .*"
        r"support_calls \(num_stats there, string_stats here\)",
    ):
        run(data["train"], data["eval"], LABEL, schema_uri=CURATED, baseline_statistics_uri=str(baseline))


def test_serving_statistics_clean(data):
    result = run(data["train"], data["eval"], LABEL, schema_uri=CURATED, serving_statistics_uri=data["serving_stats"])
    assert result.ok, reports.failure_message(result)
    skew = [m for m in result.drift if m.kind == "skew"]
    assert {m.comparison for m in skew} == {"serving_vs_train"} and all(m.gating for m in skew)
    # The label is not in SERVING: it is neither required there nor compared for skew.
    assert LABEL not in {m.feature for m in skew}
    assert {m.feature for m in skew} == set(synthetic.generate(10, 0).columns) - {LABEL}
    assert result.num_examples["serving"] == 2000


def test_serving_skew_and_serving_anomalies(data):
    result = run(
        data["train"],
        data["eval"],
        LABEL,
        schema_uri=CURATED,
        serving_statistics_uri=data["serving_drifted_stats"],
        fail_on_anomalies=False,
    )
    skewed = {m.feature for m in result.drifted if m.kind == "skew"}
    assert {"monthly_charges", "contract_type"} <= skewed
    assert not UNCHANGED & skewed
    assert not [m for m in result.drifted if m.kind == "drift"]  # eval is clean
    found = {(a.split, a.feature, a.kind) for a in result.anomalies}
    assert ("serving", "has_partner", "SCHEMA_MISSING_COLUMN") in found
    assert ("serving", "payment_method", "ENUM_TYPE_UNEXPECTED_STRING_VALUES") in found
    assert "serving_vs_train: has_partner: not in the serving statistics, not compared" in result.notes
    assert not [a for a in result.anomalies if a.feature == LABEL]


def test_fail_raises_after_writing_every_output(data, tmp_path):
    paths = outputs(tmp_path)
    with pytest.raises(ValidationFailed) as info:
        run(data["train"], data["drifted"], LABEL, schema_uri=CURATED, **paths)
    message = str(info.value)
    assert "eval / has_partner: SCHEMA_MISSING_COLUMN" in message
    assert "eval / payment_method: ENUM_TYPE_UNEXPECTED_STRING_VALUES" in message
    assert "drift/skew:" not in message  # eval-vs-train on a random split does not gate by default
    assert paths["report_path"] in message
    assert not info.value.result.ok
    for name, path in paths.items():
        assert Path(path).stat().st_size > 0, name

    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    merged = text_format.Parse(Path(paths["anomalies_path"]).read_text(), anomalies_pb2.Anomalies())
    assert set(merged.anomaly_info) == {"eval/has_partner", "eval/payment_method"}
    assert len(merged.baseline.feature) == 12

    markdown = Path(paths["anomalies_report_path"]).read_text()
    assert "| split | feature | anomaly | description |" in markdown
    assert "| eval | has_partner | SCHEMA_MISSING_COLUMN (Column dropped) |" in markdown
    header = "| feature | comparison | metric | distance | threshold | noise bound | p-value | n_a | n_b | flagged |"
    assert header in markdown
    assert re.search(
        r"\| monthly_charges \| eval_vs_train \| js_distance \| 0\.\d+ \| 0\.03 \| 0\.\d+ \| [\d.e<-]+ \| 5000 \| 5000 "
        r"\| yes \| no \(reported\) \|",
        markdown,
    )
    table = [row for row in markdown.splitlines() if "| eval_vs_train |" in row]
    flags = [row.split(" | ")[-2] for row in table]
    assert flags == sorted(flags, reverse=True)  # flagged ("yes") rows first
    assert "**FAILED**" in markdown
    assert "facets" in Path(paths["statistics_html_path"]).read_text()


def test_warn_only_returns_result(data, tmp_path, caplog):
    result = run(data["train"], data["drifted"], LABEL, schema_uri=CURATED, fail_on_anomalies=False)
    assert not result.ok and len(result.anomalies) == 2
    assert "data validation failed" in caplog.text and "fail_on_anomalies=False" in caplog.text
    summary = result.as_dict()
    assert summary["ok"] is False and summary["drifted_features"] == result.drifted_features
    assert summary["anomalies"][0]["split"] == "eval"
    metrics = result.metrics()
    assert metrics["anomaly_count"] == 2 and metrics["eval_examples"] == 5000
    assert metrics["eval_vs_train_monthly_charges"] > 0.1
    assert metrics["eval_vs_train_monthly_charges_flagged"] == 1.0 and metrics["eval_vs_train_n_a"] == 5000
    assert 0 < metrics["eval_vs_train_age_noise_bound"] < 1 and 0 <= metrics["eval_vs_train_age_p_value"] <= 1
    assert summary["drift"][0]["noise_bound"] > 0 and "flagged_features" in summary


def test_report_is_self_contained_and_escaped(tmp_path):
    frame = pd.DataFrame(
        {
            "label": [0, 1] * 100,
            'tag<script>alert("x")</script>': ['<img src="x.png" onerror=alert(1)>', "b&c"] * 100,
            "value": [1.5, 2.5] * 100,
        }
    )
    drifted = frame.copy()
    drifted['tag<script>alert("x")</script>'] = ["<b>new</b>"] * 200
    train = synthetic.write(frame, tmp_path / "train.parquet")
    evaluation = synthetic.write(drifted, tmp_path / "eval.parquet")
    paths = outputs(tmp_path)
    result = run(train, evaluation, "label", fail_on_anomalies=False, **paths)
    assert result.anomalies and result.flagged_features
    page = Path(paths["report_path"]).read_text()
    assert "<script" not in page.lower()
    # nothing is fetched: the only URL is the inline SVG charts' namespace name (an identifier, never loaded)
    assert page.count('class="chart ') == 3  # label, tag and value
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<link" not in page.lower() and "<img" not in page.lower() and 'src="' not in page
    assert "tag&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=&quot;x.png&quot; onerror=alert(1)&gt;" in page
    assert "b&amp;c" in page and "&lt;b&gt;new&lt;/b&gt;" in page
    assert "<style>" in page and "<h2>Features: train (200 examples)</h2>" in page
    markdown = Path(paths["anomalies_report_path"]).read_text()
    assert all(row.count(" | ") == 3 for row in markdown.splitlines() if row.startswith("| ") and "ENUM" in row)


def test_report_feature_tables(data, tmp_path):
    paths = outputs(tmp_path)
    run(data["train"], data["drifted"], LABEL, schema_uri=CURATED, fail_on_anomalies=False, **paths)
    page = Path(paths["report_path"]).read_text()
    assert "<h2>Features: eval (5000 examples)</h2>" in page
    for column in ("missing %", "mean", "std", "min", "max", "unique", "top values (count)"):
        assert f"<th>{column}</th>" in page
    # total_charges has ~2% missing values in the generator.
    row = re.search(
        r"<tr><td>total_charges</td><td>FLOAT</td><td class=\"num\">(\d+)</td>"
        r"<td class=\"num\">([\d.]+)</td>",
        page,
    )
    count, missing = int(row.group(1)), float(row.group(2))
    assert count < 5000 and 1.0 < missing < 3.5
    assert "<td>crypto" in page or "crypto (" in page
    assert '<tr class="drifted"><td>monthly_charges</td>' in page


# -------------------------------------------------------------------------------------------------- bad inputs


def test_bad_schema_uri_names_it(data, tmp_path):
    missing = str(tmp_path / "no_such_schema.pbtxt")
    with pytest.raises(ConfigError, match=re.escape(missing)):
        run(data["train"], data["eval"], LABEL, schema_uri=missing)


def test_curated_schema_without_label(data, tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "age" type: FLOAT }\n')
    with pytest.raises(ConfigError, match=r"schema.pbtxt' defines no feature 'churned' \(label_column\)"):
        run(data["train"], data["eval"], LABEL, schema_uri=str(schema))


def test_label_missing_from_train_data(data):
    with pytest.raises(DataError, match=re.escape(data["serving"]) + ".*label column 'churned' not found"):
        run(data["serving"], data["eval"], LABEL)


def test_missing_eval_data_writes_nothing(data, tmp_path):
    paths = outputs(tmp_path)
    with pytest.raises(DataError, match="missing.parquet: Parquet data file not found"):
        run(data["train"], str(tmp_path / "missing.parquet"), LABEL, **paths)
    assert not (tmp_path / "out").exists()


def test_bad_baseline_and_serving_uris(data, tmp_path):
    with pytest.raises(ConfigError, match="baseline_statistics_uri.*nope.pb.*not found"):
        run(data["train"], data["eval"], LABEL, baseline_statistics_uri=str(tmp_path / "nope.pb"))
    with pytest.raises(DataError, match="serving_statistics_uri.*DatasetFeatureStatisticsList"):
        run(data["train"], data["eval"], LABEL, serving_statistics_uri=CURATED)


def test_beam_backend_end_to_end(data, tmp_path):
    paths = outputs(tmp_path)
    result = run(
        data["train"],
        data["drifted"],
        LABEL,
        schema_uri=CURATED,
        statistics_backend="beam",
        fail_on_anomalies=False,
        **paths,
    )
    frame = run(data["train"], data["drifted"], LABEL, schema_uri=CURATED, fail_on_anomalies=False)
    assert result.anomalies == frame.anomalies
    assert result.drifted_features == frame.drifted_features
    assert [m.distance for m in result.drift] == pytest.approx([m.distance for m in frame.drift])


def test_label_never_skew_compared_even_without_environments(data, tmp_path):
    text = Path(CURATED).read_text()
    text = text.replace('  not_in_environment: "SERVING"\n', "").replace('default_environment: "TRAINING"\n', "")
    text = text.replace('default_environment: "SERVING"\n', "")
    schema = tmp_path / "no_envs.pbtxt"
    schema.write_text(text)
    assert not tfdv_io.load_schema(str(schema)).default_environment
    result = run(
        data["train"],
        data["eval"],
        LABEL,
        schema_uri=str(schema),
        serving_statistics_uri=data["serving_stats"],
        fail_on_anomalies=False,
    )
    assert LABEL not in {m.feature for m in result.drift if m.kind == "skew"}
    # Without environments the schema requires the label everywhere: serving data without it is an anomaly.
    assert {(a.split, a.feature, a.kind) for a in result.anomalies} == {("serving", LABEL, "SCHEMA_MISSING_COLUMN")}


@pytest.mark.parametrize("schema_uri", ["", CURATED], ids=["inferred", "curated"])
def test_statistics_of_each_split_are_computed_once(data, monkeypatch, schema_uri):
    computed = []
    generate = statistics.generate_statistics

    def counting(data_path, *args, **kwargs):
        computed.append(data_path)
        return generate(data_path, *args, **kwargs)

    monkeypatch.setattr(statistics, "generate_statistics", counting)
    result = run(data["train"], data["eval"], schema_uri=schema_uri)
    assert computed == [data["train"], data["eval"]]
    assert result.ok, reports.failure_message(result)


# ------------------------------------------------------------------------------------------------ import weight


@pytest.mark.parametrize(
    "module", ["component", "request", "core", "statistics", "schema", "anomalies", "results", "reports", "tfdv_io"]
)
def test_import_does_not_load_heavy_packages(module):
    code = (
        f"import kfp_tabular.components.data_processing.validate.{module}, sys; "
        "heavy = ('tensorflow', 'tensorflow_data_validation', 'apache_beam', 'pandas'); "
        "heavy = [m for m in heavy if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
