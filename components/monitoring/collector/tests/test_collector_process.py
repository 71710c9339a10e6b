"""The collector as a real process, fed by our real model server (``--logger_url``) or by hand-made events.

No test measures time: each waits (bounded) for a metric or a file, then checks counts and ids exactly.
"""

from __future__ import annotations

import threading
import uuid

import pyarrow.parquet as pq
import pytest

from kfp_tabular.components.monitoring.collector import batch_files, read_window

from .conftest import REQUEST, RESPONSE, good_pair_events, metric, post_event, wait_for

pytestmark = pytest.mark.serve

FEATURE_COLUMNS_V2 = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES"}


def v1_records(rows):
    return {"instances": rows}


def v1_lists(rows, order):
    return {"instances": [[row[name] for name in order] for row in rows]}


def v2_pd(rows, meta):
    dtypes = {f["name"]: f["dtype"] for f in meta["features"]}
    return {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": FEATURE_COLUMNS_V2[dtypes[name]],
                "data": [row[name] for row in rows],
            }
            for name in meta["feature_order"]
        ],
    }


def rows_written(collector) -> float:
    return metric(collector.metrics(), "kfp_tabular_collector_rows_total")


def test_model_server_traffic_arrives_exactly_once_and_every_format_flattens_alike(
    processes, churn_model_dir, churn_meta, records, tmp_path
):
    sink = tmp_path / "served"
    collector = processes.collector(
        sink, roll_rows=97, roll_seconds=3600, args=["--model-metadata", f"churn={churn_model_dir}"]
    )
    server = processes.model_server(churn_model_dir, ["--logger_url", collector.url])
    order = churn_meta["feature_order"]
    complete = [r for r in records if all(v is not None for v in r.values())][:3]
    sent: dict[str, int] = {}  # event id -> rows
    errors: list = []

    def client(worker: int) -> None:
        for i in range(60):
            rows = records[(worker * 7 + i) % 50 : (worker * 7 + i) % 50 + 1 + i % 3]
            fmt = i % 3
            body = v1_records(rows) if fmt == 0 else v1_lists(rows, order) if fmt == 1 else v2_pd(rows, churn_meta)
            path = "/v1/models/churn:predict" if fmt < 2 else "/v2/models/churn/infer"
            ce_id = f"load-{worker}-{i}-{uuid.uuid4().hex[:6]}"
            status, answer = server.post(path, body, ce_id)
            if status != 200:
                errors.append((status, answer))
            sent[ce_id] = len(rows)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # The same three rows in the three formats, under known ids.
    same = {
        "same-records": ("/v1/models/churn:predict", v1_records(complete)),
        "same-lists": ("/v1/models/churn:predict", v1_lists(complete, order)),
        "same-v2pd": ("/v2/models/churn/infer", v2_pd(complete, churn_meta)),
    }
    for ce_id, (path, body) in same.items():
        assert server.post(path, body, ce_id)[0] == 200
        sent[ce_id] = len(complete)
    expected_rows = sum(sent.values())
    wait_for(
        lambda: metric(collector.metrics(), "kfp_tabular_collector_events_total", outcome="accepted") >= 2 * len(sent),
        "every event accepted",
    )
    wait_for(  # counted by the sender after the collector answered
        lambda: metric(server.metrics(), "kfp_tabular_payload_log_events_total", outcome="sent") == 2 * len(sent),
        "the model server to count every event sent",
    )
    assert metric(server.metrics(), "kfp_tabular_payload_log_events_total", outcome="sent") == 2 * len(sent)
    assert collector.stop() == 0  # SIGTERM writes the last partial batch
    table = read_window(str(sink))
    assert table.num_rows == expected_rows
    keys = list(zip(table.column("event_id").to_pylist(), table.column("instance").to_pylist()))
    assert len(set(keys)) == len(keys), "a row was written twice"
    assert {k for k, _ in keys} == set(sent)
    counts = {}
    for event_id, _ in keys:
        counts[event_id] = counts.get(event_id, 0) + 1
    assert counts == sent
    frame = table.to_pandas()
    assert set(frame["model_sha256"]) == {churn_meta["model_sha256"]}
    assert set(frame["model_name"]) == {"churn"} and set(frame["inference_service"]) == {"churn"}
    assert list(frame.columns[: len(order)]) == order
    by_format = {
        k: frame[frame.event_id == k].sort_values("instance")[order + ["prediction"]].reset_index(drop=True)
        for k in same
    }
    assert by_format["same-records"].equals(by_format["same-lists"])
    assert by_format["same-records"].equals(by_format["same-v2pd"])
    assert by_format["same-records"][order].to_dict("records") == complete
    v2_scores = frame[frame.event_id == "same-v2pd"]["score"]
    assert v2_scores.notna().all() and ((v2_scores >= 0) & (v2_scores <= 1)).all()
    batches = batch_files(str(sink))
    assert len(batches) == -(-expected_rows // 97)  # batches of exactly 97 rows, the rest flushed at SIGTERM
    sizes = sorted(pq.read_metadata(b).num_rows for b in batches)
    assert sizes[1:] == [97] * (len(batches) - 1) and sizes[0] == expected_rows - 97 * (len(batches) - 1)


good_pair = good_pair_events


def test_bad_events_get_4xx_are_counted_and_the_collector_keeps_serving(processes, tmp_path):
    sink = tmp_path / "served"
    collector = processes.collector(
        sink, roll_rows=1000, roll_seconds=3600, args=["--pair-ttl", "0.3", "--max-body-bytes", "4096"]
    )
    url = collector.url
    request = {"instances": [{"x": 1}]}
    cases = [
        ("missing_id", 400, lambda: post_event(url, REQUEST, None, request)),
        ("unknown_type", 400, lambda: post_event(url, "org.example.other", "e1", request)),
        ("not_json", 400, lambda: post_event(url, REQUEST, "e2", None, raw=b"instances=1&x=2")),
        ("bad_payload", 400, lambda: post_event(url, REQUEST, "e3", {"rows": [1]})),
        ("too_large", 413, lambda: post_event(url, REQUEST, "e4", {"instances": [{"x": "a" * 5000}]})),
        ("bad_specversion", 400, lambda: post_event(url, REQUEST, "e5", request, {"ce-specversion": "0.3"})),
        ("bad_time", 400, lambda: post_event(url, REQUEST, "e6", request, {"ce-time": "yesterday"})),
    ]
    for reason, status, send in cases:
        got, answer = send()
        assert (got, answer["reason"]) == (status, reason), answer
        assert answer["error"]
    # A response whose request never comes: dropped after the TTL; its request, arriving later, is refused (410).
    assert post_event(url, RESPONSE, "lonely", {"predictions": [1]})[0] == 200
    wait_for(
        lambda: metric(collector.metrics(), "kfp_tabular_collector_unpaired_total", part="response") == 1,
        "the lonely response to expire",
    )
    status, answer = post_event(url, REQUEST, "lonely", request)
    assert (status, answer["reason"]) == (410, "late")
    # ... and a request without its response likewise.
    assert post_event(url, REQUEST, "orphan", request)[0] == 200
    wait_for(
        lambda: metric(collector.metrics(), "kfp_tabular_collector_unpaired_total", part="request") == 1,
        "the orphan request to expire",
    )
    assert post_event(url, RESPONSE, "orphan", {"predictions": [1]})[1]["reason"] == "late"
    # A repeated event is refused, never written twice.
    good_pair(url, "good-1")
    status, answer = post_event(url, RESPONSE, "good-1", {"predictions": [0, 1]})
    assert (status, answer["reason"]) == (409, "duplicate")
    good_pair(url, "good-2")
    values = collector.metrics()
    for reason, status, _ in cases:
        assert metric(values, "kfp_tabular_collector_rejected_total", reason=reason, status=status) == 1, reason
    assert metric(values, "kfp_tabular_collector_rejected_total", reason="late", status=410) == 2
    assert metric(values, "kfp_tabular_collector_rejected_total", reason="duplicate", status=409) == 1
    assert collector.process.poll() is None
    assert collector.stop() == 0
    table = read_window(str(sink))
    assert sorted(set(table.column("event_id").to_pylist())) == ["good-1", "good-2"]
    assert table.num_rows == 4


def test_concurrent_senders_lose_no_row(processes, tmp_path):
    sink = tmp_path / "served"
    collector = processes.collector(sink, roll_rows=700, roll_seconds=3600)
    threads, pairs, failures = 8, 250, []  # 8 threads x 500 events

    def sender(worker: int) -> None:
        for i in range(pairs):
            event_id = f"t{worker}-{i}"
            # responses first in odd threads: either half may arrive first
            order = (REQUEST, RESPONSE) if worker % 2 == 0 else (RESPONSE, REQUEST)
            for kind in order:
                body = (
                    {"instances": [{"w": worker, "i": i}, {"w": worker, "i": i}]}
                    if kind == REQUEST
                    else {"predictions": [[0.25, 0.75], [0.6, 0.4]]}
                )
                status, answer = post_event(collector.url, kind, event_id, body)
                if status != 200:
                    failures.append(answer)

    workers = [threading.Thread(target=sender, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert collector.stop() == 0
    table = read_window(str(sink))
    assert table.num_rows == threads * pairs * 2
    keys = set(zip(table.column("event_id").to_pylist(), table.column("instance").to_pylist()))
    assert keys == {(f"t{w}-{i}", k) for w in range(threads) for i in range(pairs) for k in (0, 1)}
    frame = table.to_pandas()
    # binary probabilities: score is the positive class's (column 1), prediction the argmax
    first, second = frame[frame.instance == 0], frame[frame.instance == 1]
    assert (first["score"] == 0.75).all() and (second["score"] == 0.4).all()
    assert (first["prediction"] == 1).all() and (second["prediction"] == 0).all()


def test_batches_roll_by_rows_and_by_time(processes, tmp_path):
    by_rows = processes.collector(tmp_path / "rows", roll_rows=10, roll_seconds=3600)
    for i in range(25):
        good_pair(by_rows.url, f"r{i}", rows=2)  # 50 rows: five batches of 10 before any shutdown
    wait_for(lambda: metric(by_rows.metrics(), "kfp_tabular_collector_batches_total") == 5, "five batches")
    files = batch_files(str(tmp_path / "rows"))
    assert len(files) == 5
    assert [read_window(str(tmp_path / "rows")).num_rows] == [50]
    by_time = processes.collector(tmp_path / "time", roll_rows=1_000_000, roll_seconds=0.5)
    good_pair(by_time.url, "t0", rows=3)
    wait_for(lambda: batch_files(str(tmp_path / "time")), "a batch rolled by time")
    assert read_window(str(tmp_path / "time")).num_rows == 3
    assert by_time.process.poll() is None  # written without a shutdown


def test_sigterm_writes_the_pending_batch(processes, tmp_path):
    sink = tmp_path / "served"
    collector = processes.collector(sink, roll_rows=1_000_000, roll_seconds=3600)
    for i in range(7):
        good_pair(collector.url, f"p{i}", rows=3)
    assert post_event(collector.url, REQUEST, "half", {"instances": [{"x": 1}]})[0] == 200
    assert batch_files(str(sink)) == []
    assert collector.stop() == 0
    table = read_window(str(sink))
    assert table.num_rows == 21
    assert "half" not in set(table.column("event_id").to_pylist())
    assert "unpaired request dropped (shutdown)" in collector.log()


def test_a_reader_never_sees_a_partial_file(processes, tmp_path):
    sink = tmp_path / "served"
    collector = processes.collector(sink, roll_rows=4, roll_seconds=3600)
    stop, seen, problems = threading.Event(), [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                for path in batch_files(str(sink)):
                    assert not path.rsplit("/", 1)[-1].startswith(".")
                seen.append(read_window(str(sink)).num_rows)
            except Exception as exc:  # a partial or vanished file would land here
                problems.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(150):
            good_pair(collector.url, f"a{i}", rows=2)
    finally:
        stop.set()
        thread.join()
    assert collector.stop() == 0
    assert problems == []
    assert len(seen) > 1 and seen == sorted(seen) and all(n % 4 == 0 for n in seen)
    assert read_window(str(sink)).num_rows == 300


def test_predictions_do_not_depend_on_the_collector(processes, churn_model_dir, records):
    """Collector down (refused) or hung (accepts, never answers): every prediction succeeds, events counted."""
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down_port = closed.getsockname()[1]
    closed.close()
    down = processes.model_server(churn_model_dir, ["--logger_url", f"http://127.0.0.1:{down_port}"])
    hung_socket = socket.socket()
    hung_socket.bind(("127.0.0.1", 0))
    hung_socket.listen(1000)  # accepts connections, never reads or answers
    hung_url = f"http://127.0.0.1:{hung_socket.getsockname()[1]}"
    hung = processes.model_server(
        churn_model_dir,
        ["--logger_url", hung_url, "--logger_queue_size", "4", "--logger_workers", "1", "--logger_timeout", "30"],
    )
    try:
        for server in (down, hung):
            for i in range(40):
                status, answer = server.post("/v1/models/churn:predict", {"instances": records[i : i + 2]})
                assert status == 200, answer
        wait_for(
            lambda: metric(down.metrics(), "kfp_tabular_payload_log_events_total", outcome="failed") == 80,
            "the down collector's 80 events counted as failed",
        )
        # the one being sent (waiting for the hung collector) and a full queue of 4 are not dropped: the rest is
        wait_for(
            lambda: metric(hung.metrics(), "kfp_tabular_payload_log_events_total", outcome="dropped") == 75,
            "75 events dropped by the server logging to a hung collector",
        )
    finally:
        hung_socket.close()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_v2_binary_tensors_flatten_like_json(processes, churn_model_dir, churn_meta, records, tmp_path, binary):
    """tritonclient (nobody here wrote it) with binary inputs and outputs: the same rows as V1 records."""
    import numpy as np
    import tritonclient.http as triton

    sink = tmp_path / "served"
    collector = processes.collector(sink, roll_rows=1000, roll_seconds=3600)
    server = processes.model_server(churn_model_dir, ["--logger_url", collector.url])
    rows = [r for r in records if all(v is not None for v in r.values())][:5]
    dtypes = {f["name"]: f["dtype"] for f in churn_meta["features"]}
    numpy_types = {"int": np.int64, "float": np.float64, "bool": np.bool_}
    inputs = []
    for name in churn_meta["feature_order"]:
        values = [row[name] for row in rows]
        if dtypes[name] == "string":
            array = np.array([v.encode() for v in values], dtype=np.object_)
        else:
            array = np.array(values, dtype=numpy_types[dtypes[name]])
        tensor = triton.InferInput(name, [len(rows)], FEATURE_COLUMNS_V2[dtypes[name]])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "predict_proba")]
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        client.infer("churn", inputs, outputs=outputs, parameters={"content_type": "pd"}, headers={"Ce-Id": "triton"})
    finally:
        client.close()
    assert server.post("/v1/models/churn:predict", v1_records(rows), "records")[0] == 200
    accepted = "kfp_tabular_collector_events_total"
    wait_for(lambda: metric(collector.metrics(), accepted, outcome="accepted") == 4, "both requests' two events")
    assert collector.stop() == 0
    frame = read_window(str(sink)).to_pandas()
    columns = churn_meta["feature_order"] + ["prediction"]
    triton_rows = frame[frame.event_id == "triton"].sort_values("instance")[columns].reset_index(drop=True)
    record_rows = frame[frame.event_id == "records"].sort_values("instance")[columns].reset_index(drop=True)
    assert triton_rows.equals(record_rows)
    assert triton_rows[churn_meta["feature_order"]].to_dict("records") == rows
    assert frame[frame.event_id == "triton"]["score"].between(0, 1).all()
