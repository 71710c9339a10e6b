"""The schema at the door, over real HTTP: a corpus of malformed requests derived from the schema (never a 5xx,
always the one error shape naming the field), reject and flag policies, the size limit, metrics, one-line logs.
"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import post

pytestmark = pytest.mark.serve

NUMERIC = ("tenure_months", "monthly_charges", "total_charges", "age", "support_calls")
INTEGER = ("tenure_months", "support_calls")
CATEGORICAL = ("contract_type", "payment_method", "internet_service", "region")
BOOLEAN = ("paperless_billing", "has_partner")
JSON = {"Content-Type": "application/json"}


def complete_record(records):
    return next(r for r in records if all(v is not None for v in r.values()))


def v1_raw(record, column, literal):
    """A V1 records body with ``literal`` (raw JSON text) as the value of ``column``."""
    body = json.dumps({"instances": [dict(record, **{column: "__HOLE__"})]})
    return body.replace('"__HOLE__"', literal).encode()


def v2_columns(record, datatypes, override=None):
    """A V2 content_type pd body, one input per feature; ``override`` maps a column to (datatype, raw data)."""
    inputs = []
    for name, datatype in datatypes.items():
        data = json.dumps([record[name]])
        if override and name in override:
            datatype, data = override[name]
        inputs.append(f'{{"name": "{name}", "shape": [1], "datatype": "{datatype}", "data": {data}}}')
    return ('{"parameters": {"content_type": "pd"}, "inputs": [' + ", ".join(inputs) + "]}").encode()


def corpus(record, datatypes):
    """(name, protocol, body, headers, column the error must name or None) for each malformed request."""
    cases = []
    for column in NUMERIC:
        for label, literal in (
            ("text", '"abc"'),
            ("inf string", '"inf"'),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
            ("1e400", "1e400"),
            ("bool", "true"),
            ("list", "[1, 2]"),
            ("object", '{"a": 1}'),
        ):
            cases.append((f"v1 {column} {label}", "v1", v1_raw(record, column, literal), JSON, column))
    for column in INTEGER:
        cases.append((f"v1 {column} 1.5", "v1", v1_raw(record, column, "1.5"), JSON, column))
        cases.append((f"v1 {column} 2**70", "v1", v1_raw(record, column, str(2**70)), JSON, column))
        cases.append(
            (f"v2 {column} INT64 1.5", "v2", v2_columns(record, datatypes, {column: ("INT64", "[1.5]")}), JSON, column)
        )
        cases.append(
            (
                f"v2 {column} INT64 2**70",
                "v2",
                v2_columns(record, datatypes, {column: ("INT64", f"[{2**70}]")}),
                JSON,
                column,
            )
        )
    for column in CATEGORICAL:
        cases.append((f"v1 {column} number", "v1", v1_raw(record, column, "3"), JSON, column))
        cases.append((f"v1 {column} bool", "v1", v1_raw(record, column, "false"), JSON, column))
        cases.append(
            (f"v2 {column} as FP64", "v2", v2_columns(record, datatypes, {column: ("FP64", "[1.0]")}), JSON, column)
        )
    for column in BOOLEAN:
        cases.append((f"v1 {column} maybe", "v1", v1_raw(record, column, '"maybe"'), JSON, column))
        cases.append((f"v1 {column} 2", "v1", v1_raw(record, column, "2"), JSON, column))
    for column in ("age", "monthly_charges"):
        cases.append(
            (
                f"v2 {column} Infinity",
                "v2",
                v2_columns(record, datatypes, {column: ("FP64", "[Infinity]")}),
                JSON,
                column,
            )
        )
        cases.append(
            (f"v2 {column} 1e400", "v2", v2_columns(record, datatypes, {column: ("FP64", "[1e400]")}), JSON, column)
        )
    good_v2 = v2_columns(record, datatypes)
    cases += [
        ("v2 datatype FOO", "v2", v2_columns(record, datatypes, {"age": ("FOO", "[40]")}), JSON, "age"),
        ("v2 shape of text", "v2", good_v2.replace(b'"shape": [1]', b'"shape": ["a"]', 1), JSON, None),
        ("v2 no inputs field", "v2", b'{"parameters": {"content_type": "pd"}}', JSON, None),
        (
            "v2 data a string",
            "v2",
            b'{"inputs": [{"name": "x", "shape": [1, 11], "datatype": "BYTES", "data": "x"}]}',
            JSON,
            None,
        ),
        ("v2 binary header not a number", "v2", good_v2, {"Inference-Header-Content-Length": "abc"}, None),
        ("v2 binary header past the body", "v2", good_v2, {"Inference-Header-Content-Length": "999999"}, None),
        ("v2 binary header negative", "v2", good_v2, {"Inference-Header-Content-Length": "-5"}, None),
        ("v2 binary garbage JSON part", "v2", b"\x00\x01\x02binary", {"Inference-Header-Content-Length": "4"}, None),
        ("v2 octet-stream without header", "v2", good_v2, {"Content-Type": "application/octet-stream"}, None),
        ("v2 not JSON", "v2", b"{not json", JSON, None),
        ("v2 empty body", "v2", b"", JSON, None),
        ("v2 JSON array", "v2", b"[1, 2]", JSON, None),
        ("v2 deep nesting", "v2", b"[" * 100_000 + b"]" * 100_000, JSON, None),
        ("v1 not JSON", "v1", b"{not json", JSON, None),
        ("v1 empty body", "v1", b"", JSON, None),
        ("v1 JSON array", "v1", b"[1, 2]", JSON, None),
        ("v1 deep nesting", "v1", b"[" * 100_000 + b"]" * 100_000, JSON, None),
        ("v1 NaN for a required feature is fine, a string NaN row list", "v1", b'{"instances": [[1]]}', JSON, None),
    ]
    return cases


def assert_client_error(result, name, column=None):
    assert 400 <= result.status < 500, f"{name}: {result}"
    assert isinstance(result.body, dict), f"{name}: {result}"
    assert set(result.body) >= {"error", "field", "expected", "status"}, f"{name}: {result}"
    assert result.body["status"] == result.status, f"{name}: {result}"
    if column:
        assert f"'{column}'" in result.body["error"] or column in str(result.body["field"]), f"{name}: {result}"


@pytest.fixture(scope="module")
def cases(schema_server, records):
    inputs = schema_server.get("/v2/models/churn").body["inputs"]
    return corpus(complete_record(records), {i["name"]: i["datatype"] for i in inputs})


def test_the_corpus_is_large_enough(cases):
    assert len(cases) >= 40


def test_no_malformed_request_gets_a_5xx_and_each_names_its_field(schema_server, cases):
    for name, protocol, body, headers, column in cases:
        url = (
            f"{schema_server.url}/v1/models/churn:predict"
            if protocol == "v1"
            else f"{schema_server.url}/v2/models/churn/infer"
        )
        assert_client_error(post(url, body, headers), name, column)
    assert schema_server.get("/v2/health/ready").status == 200
    log = schema_server.log_text()
    assert "Traceback" not in log, log[-5000:]
    assert re.search(r"INFO .*POST /v1/models/churn:predict -> 400: ", log), log[-3000:]


def test_body_over_the_limit_is_413_on_both_protocols(schema_server):
    big = b'{"instances": [' + b"[1]," * 600_000 + b"[1]]}"  # 2.4 MB, over the 1 MiB limit
    for path in ("/v1/models/churn:predict", "/v2/models/churn/infer"):
        result = post(schema_server.url + path, big, JSON)
        assert result.status == 413, result
        assert result.body["field"] == "body" and "1048576" in result.body["expected"]


def test_flag_policy_serves_unseen_categories_and_out_of_range_and_counts_them(schema_server, records):
    record = dict(complete_record(records), region="atlantis", age=-3)
    result = schema_server.v1({"instances": [record]})
    assert result.status == 200, result
    assert result.body["parameters"]["schema_violations"] == 2
    kinds = {(v["field"], v["kind"]) for v in result.body["parameters"]["schema_violation_details"]}
    assert kinds == {("region", "unseen_category"), ("age", "out_of_range")}
    inputs = schema_server.get("/v2/models/churn").body["inputs"]
    body = v2_columns(record, {i["name"]: i["datatype"] for i in inputs})
    v2 = post(f"{schema_server.url}/v2/models/churn/infer", body, JSON)
    assert v2.status == 200 and v2.body["parameters"]["schema_violations"] == 2, v2
    assert json.loads(v2.body["parameters"]["schema_violation_details"])[0]["action"] == "flag"
    metrics = http_text(schema_server.url + "/metrics")
    assert series(
        metrics, "kfp_tabular_schema_violations_total", feature="region", kind="unseen_category", action="flag"
    )
    assert series(metrics, "kfp_tabular_schema_violations_total", feature="age", kind="out_of_range", action="flag")
    assert series(metrics, "kfp_tabular_requests_total", model_name="churn", protocol="v1", outcome="ok")
    assert "kfp_tabular_request_seconds_bucket" in metrics and "kfp_tabular_prediction_score_bucket" in metrics


def series(metrics, name, **labels):
    """The values of the series of ``name`` having all ``labels`` (any label order)."""
    found = []
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            found.append(float(line.rsplit(" ", 1)[1]))
    return found


def test_reject_policy_names_each_field_and_what_was_expected(strict_server, records):
    record = dict(complete_record(records), region="atlantis", age=-3)
    result = strict_server.v1({"instances": [record]})
    assert result.status == 400, result
    fields = {v["field"]: v for v in result.body["violations"]}
    assert set(fields) == {"region", "age"}
    assert fields["region"]["kind"] == "unseen_category" and "north" in fields["region"]["expected"]
    assert fields["age"]["kind"] == "out_of_range" and fields["age"]["expected"].startswith("a value in [")
    assert "'region'" in result.body["error"] and "'age'" in result.body["error"]


def test_metrics_carry_the_model_sha256(schema_server, schema_model_dir):
    from kfp_tabular.components.common.artifacts import sha256_file

    sha = sha256_file(schema_model_dir / "model.joblib")
    before = sum(
        series(http_text(schema_server.url + "/metrics"), "kfp_tabular_prediction_score_count", model_sha256=sha)
    )
    answer = schema_server.v1({"instances": [[None] * 11, [None] * 11]})
    assert answer.status == 200 and "classes" not in answer.body, answer  # PREDICT_PROBA=false: labels ...
    assert schema_server.v1({"rows": []}).status == 400
    metrics = http_text(schema_server.url + "/metrics")
    assert series(metrics, "kfp_tabular_requests_total", model_sha256=sha, protocol="v1", outcome="ok")
    # ... yet both rows' scores are observed: a canary's prediction drift needs them whatever V1 answers with.
    assert sum(series(metrics, "kfp_tabular_prediction_score_count", model_sha256=sha)) == before + 2
    assert series(metrics, "kfp_tabular_requests_total", model_sha256=sha, outcome="client_error")


def http_text(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()
