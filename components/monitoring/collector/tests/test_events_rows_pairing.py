"""The collector's logic without processes: CloudEvents parsing, V1/V2 flattening, pairing, batches (pipeline env)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from kfp_tabular.components.monitoring.collector.events import EventError, parse_event, parse_time
from kfp_tabular.components.monitoring.collector.pairing import Pairer
from kfp_tabular.components.monitoring.collector.rows import parse_request, parse_response
from kfp_tabular.components.monitoring.collector.sink import BatchWriter, batch_files, read_window

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
ORDER = ["age", "plan", "active"]
ROWS = [{"age": 41, "plan": "basic", "active": True}, {"age": 17, "plan": "pro", "active": False}]


def binary(kind, event_id="e1", body=None, **extra):
    headers = {
        "ce-id": event_id,
        "ce-type": kind,
        "ce-source": "http://localhost:9081/",
        "ce-specversion": "1.0",
        "content-type": "application/json",
        **extra,
    }
    return {k: v for k, v in headers.items() if v is not None}, json.dumps(body if body is not None else {}).encode()


def test_binary_mode_event_as_kserve_sends_it():
    headers, body = binary(
        REQUEST,
        body={"instances": ROWS},
        **{
            "ce-time": "2026-11-30T10:00:00.123456789Z",
            "ce-inferenceservicename": "churn",
            "ce-namespace": "ns",
            "ce-component": "predictor",
            "ce-endpoint": "canary",
            "ce-metadata": "{}",
            "content-type": "application/x-www-form-urlencoded",
        },
    )  # curl -d: the agent forwards the request's type
    event = parse_event(headers, body)
    assert (event.id, event.kind, event.inference_service, event.namespace, event.endpoint) == (
        "e1",
        "request",
        "churn",
        "ns",
        "canary",
    )
    assert event.time == dt.datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)
    assert event.payload == {"instances": ROWS} and event.model_sha256 is None


def test_structured_mode_with_data_and_data_base64():
    envelope = {
        "specversion": "1.0",
        "id": "s1",
        "type": RESPONSE,
        "source": "x",
        "modelsha256": "abc",
        "data": {"predictions": [1]},
    }
    event = parse_event({"content-type": "application/cloudevents+json"}, json.dumps(envelope).encode())
    assert (event.kind, event.model_sha256, event.payload) == ("response", "abc", {"predictions": [1]})
    envelope.pop("data")
    envelope["data_base64"] = base64.b64encode(b'{"predictions": [0]}').decode()
    assert parse_event({"content-type": "application/cloudevents+json"}, json.dumps(envelope).encode()).payload == {
        "predictions": [0]
    }


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"ce-id": None}, "missing_id"),
        ({"ce-type": "com.example.other"}, "unknown_type"),
        ({"ce-specversion": "0.3"}, "bad_specversion"),
        ({"ce-source": None}, "missing_source"),
        ({"ce-time": "30/11/2026"}, "bad_time"),
    ],
)
def test_bad_attributes_name_the_header(change, reason):
    headers, body = binary(REQUEST, body={"instances": ROWS})
    headers.update(change)
    headers = {k: v for k, v in headers.items() if v is not None}
    with pytest.raises(EventError) as caught:
        parse_event(headers, body)
    assert caught.value.reason == reason and caught.value.status == 400


def test_not_json_and_nan_bodies():
    headers, _ = binary(REQUEST)
    with pytest.raises(EventError, match="not JSON") as caught:
        parse_event(headers, b"instances=1")
    assert caught.value.reason == "not_json"
    event = parse_event(headers, b'{"instances": [{"age": NaN}]}')  # what Python's json.dumps sends
    assert event.payload["instances"][0]["age"] != event.payload["instances"][0]["age"]


def test_go_timestamps_with_nanoseconds_and_offsets():
    assert parse_time("2021-04-10T00:23:26.0789529Z") == dt.datetime(2021, 4, 10, 0, 23, 26, 78952, dt.timezone.utc)
    assert parse_time("2021-04-10T02:23:26+02:00") == dt.datetime(2021, 4, 10, 0, 23, 26, tzinfo=dt.timezone.utc)


def v2(rows, pd=True):
    types = {"age": "INT64", "plan": "BYTES", "active": "BOOL"}
    body = {
        "inputs": [{"name": n, "shape": [len(rows)], "datatype": types[n], "data": [r[n] for r in rows]} for n in ORDER]
    }
    if pd:
        body["parameters"] = {"content_type": "pd"}
    return body


def test_v1_records_lists_and_v2_tensors_flatten_to_the_same_rows():
    records = parse_request({"instances": ROWS}, "e")
    lists = parse_request({"instances": [[r[n] for n in ORDER] for r in ROWS]}, "e", ORDER)
    inputs = parse_request({"inputs": [[r[n] for n in ORDER] for r in ROWS]}, "e", ORDER)
    tensors = parse_request(v2(ROWS), "e")
    tensors_column = parse_request(
        {
            "inputs": [
                {"name": "age", "shape": [2, 1], "datatype": "INT64", "data": [[41], [17]]},
                {"name": "plan", "shape": [2, 1], "datatype": "BYTES", "data": ["basic", "pro"]},
                {"name": "active", "shape": [2], "datatype": "BOOL", "data": [1, 0]},
            ]
        },
        "e",
    )
    matrix = parse_request(
        {
            "inputs": [
                {"name": "input-0", "shape": [2, 3], "datatype": "BYTES", "data": [41, "basic", True, 17, "pro", False]}
            ]
        },
        "e",
        ORDER,
    )
    assert records == lists == inputs == tensors == tensors_column == matrix == ROWS


def test_unnamed_positions_and_reserved_names():
    assert parse_request({"instances": [[1, 2]]}, "e") == [{"input_0": 1, "input_1": 2}]
    with pytest.raises(EventError, match="'time'"):
        parse_request({"instances": [{"time": 3}]}, "e")


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"rows": []}, "expected V1 'instances'"),
        ([1, 2], "expected a JSON object"),
        ({"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1.0]}]}, "1 values for shape"),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
                    {"name": "b", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]},
                ]
            },
            "expected [2]",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]},
            "binary tensor data",
        ),
    ],
)
def test_malformed_requests_are_bad_payloads(payload, message):
    with pytest.raises(EventError, match=message.replace("[", r"\[")) as caught:
        parse_request(payload, "e")
    assert caught.value.reason == "bad_payload"


def test_responses_v1_labels_probabilities_and_v2_outputs():
    assert parse_response({"predictions": [0, 1]}, "e").predictions == [0, 1]
    proba = parse_response({"predictions": [[0.2, 0.8], [0.9, 0.1]], "classes": ["no", "yes"]}, "e")
    assert (proba.predictions, proba.scores) == (["yes", "no"], [0.8, 0.1])
    ours = parse_response({"predictions": [[0.2, 0.8]], "labels": [1], "classes": [0, 1]}, "e")
    assert (ours.predictions, ours.scores) == ([1], [0.8])
    multi = parse_response({"predictions": [[0.2, 0.5, 0.3]]}, "e")
    assert (multi.predictions, multi.scores) == ([1], [0.5])
    v2_out = parse_response(
        {
            "model_name": "churn",
            "outputs": [
                {"name": "predict", "shape": [2], "datatype": "INT64", "data": [1, 0]},
                {"name": "predict_proba", "shape": [2, 2], "datatype": "FP64", "data": [0.3, 0.7, 0.6, 0.4]},
            ],
        },
        "e",
    )
    assert (v2_out.predictions, v2_out.scores, v2_out.model_name) == ([1, 0], [0.7, 0.4], "churn")
    sklearn_v2 = parse_response(
        {"outputs": [{"name": "output-0", "shape": [2], "datatype": "FP64", "data": [3.5, 1.0]}]}, "e"
    )
    assert (sklearn_v2.predictions, sklearn_v2.scores) == ([3.5, 1.0], [None, None])


def event(kind, event_id, payload, **extra):
    headers, body = binary(kind, event_id, payload, **extra)
    return parse_event(headers, body)


def test_pairing_in_either_order_exactly_once():
    pairer = Pairer(model_sha={"churn": "sha-from-map"})
    assert pairer.add(event(RESPONSE, "a", {"predictions": [1, 0]}), now=0.0) == []
    rows = pairer.add(event(REQUEST, "a", {"instances": ROWS}, **{"ce-inferenceservicename": "churn"}), now=1.0)
    assert [r["prediction"] for r in rows] == [1, 0] and [r["instance"] for r in rows] == [0, 1]
    assert {r["model_name"] for r in rows} == {"churn"} and {r["model_sha256"] for r in rows} == {"sha-from-map"}
    with pytest.raises(EventError) as caught:
        pairer.add(event(REQUEST, "a", {"instances": ROWS}), now=2.0)
    assert (caught.value.status, caught.value.reason) == (409, "duplicate")
    assert pairer.pending == 0


def test_extension_sha_wins_and_mismatched_counts_are_refused():
    pairer = Pairer(model_sha={"churn": "from-map"})
    pairer.add(event(REQUEST, "b", {"instances": ROWS}, **{"ce-modelsha256": "from-event"}), now=0.0)
    rows = pairer.add(event(RESPONSE, "b", {"predictions": [1, 1]}), now=0.0)
    assert {r["model_sha256"] for r in rows} == {"from-event"}
    pairer.add(event(REQUEST, "c", {"instances": ROWS}), now=0.0)
    with pytest.raises(EventError, match="2 instances but the response 1") as caught:
        pairer.add(event(RESPONSE, "c", {"predictions": [1]}), now=0.0)
    assert caught.value.reason == "mismatch"


def test_ttl_expiry_late_halves_and_eviction_are_counted():
    seen = []
    pairer = Pairer(ttl=10.0, max_pending=2, on_unpaired=lambda part, reason, rows: seen.append((part, reason, rows)))
    pairer.add(event(REQUEST, "old", {"instances": ROWS}), now=0.0)
    assert pairer.expire(now=9.9) == 0
    assert pairer.expire(now=10.0) == 1
    with pytest.raises(EventError) as caught:
        pairer.add(event(RESPONSE, "old", {"predictions": [1, 1]}), now=11.0)
    assert (caught.value.status, caught.value.reason) == (410, "late")
    pairer.add(event(REQUEST, "x1", {"instances": ROWS}), now=20.0)
    pairer.add(event(RESPONSE, "x2", {"predictions": [1]}), now=20.0)
    pairer.add(event(REQUEST, "x3", {"instances": ROWS}), now=20.0)  # table full: x1 evicted
    assert pairer.drain() == 2
    assert seen == [
        ("request", "ttl", 2),
        ("request", "evicted", 2),
        ("response", "shutdown", 1),
        ("request", "shutdown", 2),
    ]


def test_request_mode_writes_requests_at_once_and_refuses_responses():
    pairer = Pairer(mode="request")
    rows = pairer.add(event(REQUEST, "r", {"instances": ROWS}), now=0.0)
    assert [r["prediction"] for r in rows] == [None, None] and rows[0]["age"] == 41
    with pytest.raises(EventError) as caught:
        pairer.add(event(RESPONSE, "r2", {"predictions": [1]}), now=0.0)
    assert caught.value.reason == "unexpected_type"


def row(event_id, when, **features):
    return {
        **features,
        "prediction": 1,
        "score": 0.5,
        "model_name": "m",
        "model_sha256": None,
        "event_id": event_id,
        "time": when,
        "inference_service": "m",
        "namespace": None,
        "endpoint": None,
        "instance": 0,
    }


def test_batches_split_by_day_unify_types_and_read_a_window(tmp_path):
    utc = dt.timezone.utc
    writer = BatchWriter(str(tmp_path / "sink"))
    late = dt.datetime(2026, 11, 29, 23, 59, 59, tzinfo=utc)
    early = dt.datetime(2026, 11, 30, 0, 0, 1, tzinfo=utc)
    paths = writer.write([row("a", late, x=1, c=None), row("b", early, x=2, c=None)])
    assert [p.split("/")[-2] for p in paths] == ["date=2026-11-29", "date=2026-11-30"]
    writer.write([row("c", early + dt.timedelta(hours=1), x=2.5, c="text", extra=True)])
    assert not [p for p in (tmp_path / "sink").rglob("*") if p.name.startswith(".")]  # no temporary left
    table = read_window(str(tmp_path / "sink"))
    assert table.column_names[:3] == ["x", "c", "extra"] and table.num_rows == 3
    assert str(table.schema.field("x").type) == "double" and str(table.schema.field("c").type) == "string"
    assert table.column("x").to_pylist() == [1.0, 2.0, 2.5] and table.column("extra").to_pylist() == [None, None, True]
    window = read_window(str(tmp_path / "sink"), start="2026-11-30T00:00:00Z", end=early + dt.timedelta(minutes=1))
    assert window.column("event_id").to_pylist() == ["b"]
    assert batch_files(str(tmp_path / "sink"), start="2026-11-30", end="2026-11-30T00:00:00Z") == []
    empty = read_window(str(tmp_path / "nothing"))
    assert empty.num_rows == 0 and "prediction" in empty.column_names


def test_binary_tensor_extension_is_decoded_and_a_wrong_size_is_not_json():
    import struct

    header = {
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
            {"name": "plan", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 16}},
            {"name": "active", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        ]
    }
    tail = struct.pack("<2q", 41, 17) + struct.pack("<I", 5) + b"basic" + struct.pack("<I", 3) + b"pro"
    headers, _ = binary(REQUEST)
    event = parse_event(headers, json.dumps(header).encode() + tail)
    assert parse_request(event.payload, "e") == ROWS
    with pytest.raises(EventError) as caught:
        parse_event(headers, json.dumps(header).encode() + tail[:-1])
    assert caught.value.reason == "not_json"
