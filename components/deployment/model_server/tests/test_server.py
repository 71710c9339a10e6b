"""The model server over real HTTP: V1 lists/records, V2 with and without content_type pd, errors, the CLI.

Predictions are compared with the same model.joblib loaded in this (pipeline) env: labels exactly,
probabilities within 1e-9.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time

import numpy as np
import pytest

from kfp_tabular.components.common import blessing as blessings
from kfp_tabular.components.common.artifacts import sha256_file

pytestmark = pytest.mark.serve

TOL = 1e-9


def reference(churn_model, frame):
    model, meta = churn_model
    x = frame[meta["feature_order"]]
    return model.predict(x).tolist(), model.predict_proba(x)


def v2_outputs(result):
    assert result.status == 200, result
    return {out["name"]: out for out in result.body["outputs"]}


def pd_request(frame_records, metadata_inputs):
    return {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {
                "name": spec["name"],
                "shape": [len(frame_records)],
                "datatype": spec["datatype"],
                "data": [r[spec["name"]] for r in frame_records],
            }
            for spec in metadata_inputs
        ],
    }


def test_model_metadata_lists_features_in_order_and_outputs(server, churn_model):
    _, meta = churn_model
    result = server_get(server, f"/v2/models/{server.model_name}")
    assert result.status == 200, result
    assert result.body["name"] == "churn"
    assert [i["name"] for i in result.body["inputs"]] == meta["feature_order"]
    dtypes = {f["name"]: f["dtype"] for f in meta["features"]}
    wanted = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES"}
    assert {i["name"]: i["datatype"] for i in result.body["inputs"]} == {k: wanted[v] for k, v in dtypes.items()}
    assert result.body["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]


def server_get(server, path):
    return server.get(path)


def test_v1_lists_in_feature_order_match_in_process_labels(server, churn_model, test_rows, records):
    _, meta = churn_model
    labels, _ = reference(churn_model, test_rows)
    result = server.v1({"instances": [[r[c] for c in meta["feature_order"]] for r in records]})
    assert result.status == 200, result
    assert result.body == {"predictions": labels}
    assert len(set(labels)) == 2, "the test rows should exercise both classes"


def test_v1_records_with_none_and_shuffled_keys_match(server, churn_model, test_rows, records):
    frame = test_rows.copy()
    frame.loc[0, "region"] = np.nan
    frame.loc[1, "monthly_charges"] = np.nan
    frame.loc[2, "has_partner"] = None
    labels, _ = reference(churn_model, frame)
    shuffled = []
    rng = random.Random(5)
    for i, record in enumerate(records):
        record = dict(record)
        if i == 0:
            record["region"] = None
        if i == 1:
            record["monthly_charges"] = None
        if i == 2:
            record["has_partner"] = None
        keys = list(record)
        rng.shuffle(keys)
        shuffled.append({k: record[k] for k in keys})
    assert list(shuffled[0]) != list(records[0])
    result = server.v1({"instances": shuffled})
    assert result.status == 200, result
    assert result.body["predictions"] == labels
    # nulls where training saw none are served (imputed) and flagged as missing (the default policy)
    flagged = {(v["field"], v["kind"]) for v in result.body["parameters"]["schema_violation_details"]}
    assert flagged == {("region", "missing"), ("monthly_charges", "missing"), ("has_partner", "missing")}


def test_v1_records_ignore_extra_columns_and_accept_inputs_key(server, churn_model, test_rows, records):
    labels, _ = reference(churn_model, test_rows)
    with_label = [{**r, "churned": 1, "customer_id": f"c{i}"} for i, r in enumerate(records)]
    result = server.v1({"inputs": with_label})
    assert result.status == 200, result
    assert result.body == {"predictions": labels}


def test_v2_pd_matches_in_process_probabilities(server, churn_model, test_rows, records):
    labels, proba = reference(churn_model, test_rows)
    inputs = server_get(server, "/v2/models/churn").body["inputs"]
    outputs = v2_outputs(server.v2(pd_request(records, inputs)))
    assert outputs["predict"]["data"] == labels
    assert outputs["predict"]["shape"] == [len(records)]
    assert outputs["predict_proba"]["shape"] == [len(records), 2]
    got = np.array(outputs["predict_proba"]["data"]).reshape(len(records), 2)
    np.testing.assert_allclose(got, proba, rtol=0, atol=TOL)


def test_v2_pd_columns_in_any_order(server, churn_model, test_rows, records):
    labels, _ = reference(churn_model, test_rows)
    inputs = list(reversed(server_get(server, "/v2/models/churn").body["inputs"]))
    outputs = v2_outputs(server.v2(pd_request(records, inputs)))
    assert outputs["predict"]["data"] == labels


def test_v2_single_2d_input_in_feature_order_matches(server, churn_model, test_rows, records):
    _, meta = churn_model
    labels, proba = reference(churn_model, test_rows)
    rows = [[r[c] for c in meta["feature_order"]] for r in records]
    body = {
        "id": "req-1",
        "inputs": [{"name": "x", "shape": [len(rows), len(rows[0])], "datatype": "BYTES", "data": rows}],
    }
    result = server.v2(body)
    outputs = v2_outputs(result)
    assert result.body["id"] == "req-1"
    assert outputs["predict"]["data"] == labels
    got = np.array(outputs["predict_proba"]["data"]).reshape(len(records), 2)
    np.testing.assert_allclose(got, proba, rtol=0, atol=TOL)
    # the same rows flattened row-major
    flat = dict(body, inputs=[dict(body["inputs"][0], data=[v for row in rows for v in row])])
    assert v2_outputs(server.v2(flat))["predict"]["data"] == labels


def test_v2_requested_outputs_subset(server, churn_model, test_rows, records):
    labels, _ = reference(churn_model, test_rows)
    inputs = server_get(server, "/v2/models/churn").body["inputs"]
    body = dict(pd_request(records, inputs), outputs=[{"name": "predict"}])
    result = server.v2(body)
    assert [o["name"] for o in result.body["outputs"]] == ["predict"], result
    assert result.body["outputs"][0]["data"] == labels


def _row(records, **changes):
    return [{**records[0], **changes}]


BAD_V1 = {
    "missing column": (lambda r, order: {"instances": [{k: v for k, v in r[0].items() if k != "age"}]}, "'age'"),
    "wrong row length": (
        lambda r, order: {"instances": [[r[0][c] for c in order][:-1]]},
        "expected 11 values in feature order",
    ),
    "text in numeric column": (lambda r, order: {"instances": _row(r, tenure_months="twelve")}, "'tenure_months'"),
    "bool in numeric column": (lambda r, order: {"instances": _row(r, support_calls=True)}, "'support_calls'"),
    "number in category column": (lambda r, order: {"instances": _row(r, region=3)}, "'region'"),
    "bad bool": (lambda r, order: {"instances": _row(r, has_partner="maybe")}, "'has_partner'"),
    "list value in a record": (lambda r, order: {"instances": _row(r, age=[40, 41])}, "'age'"),
    "mixed rows": (lambda r, order: {"instances": [r[0], [r[0][c] for c in order]]}, "instances[1]"),
    "scalar rows": (lambda r, order: {"instances": [1, 2]}, "instances[0]"),
    "empty instances": (lambda r, order: {"instances": []}, "non-empty list"),
    "instances not a list": (lambda r, order: {"instances": {"a": 1}}, '"instances" to be a list'),
    "no instances field": (lambda r, order: {"rows": r}, "'instances'"),
}


@pytest.mark.parametrize("case", sorted(BAD_V1))
def test_bad_v1_request_is_400_naming_the_field(server, churn_model, records, case):
    build, fragment = BAD_V1[case]
    result = server.v1(build(records, churn_model[1]["feature_order"]))
    assert result.status == 400, result
    assert fragment in result.body["error"], result


def _pd(records, inputs, drop=None, change=None):
    body = pd_request(records[:3], inputs)
    body["inputs"] = [i for i in body["inputs"] if i["name"] != drop]
    if change:
        change(body)
    return body


BAD_V2 = {
    "pd missing input": (lambda r, i, o: _pd(r, i, drop="contract_type"), "'contract_type'"),
    "pd column lengths differ": (
        lambda r, i, o: _pd(r, i, change=lambda b: b["inputs"][1].update(shape=[2], data=b["inputs"][1]["data"][:2])),
        "has 2 rows",
    ),
    "pd shape disagrees with data": (
        lambda r, i, o: _pd(r, i, change=lambda b: b["inputs"][0].update(shape=[4])),
        "data has 3",
    ),
    "pd 2-D column": (
        lambda r, i, o: _pd(r, i, change=lambda b: b["inputs"][0].update(shape=[1, 3])),
        "expected shape [rows] or [rows, 1]",
    ),
    "pd text in numeric column": (
        lambda r, i, o: _pd(r, i, change=lambda b: b["inputs"][1].update(data=["a", "b", "c"])),
        "'monthly_charges'",
    ),
    "2-D wrong width": (
        lambda r, i, o: {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "BYTES", "data": [[1] * 10]}]},
        "[rows, 11]",
    ),
    "2-D data size disagrees with shape": (
        lambda r, i, o: {
            "inputs": [{"name": "x", "shape": [2, 11], "datatype": "BYTES", "data": [r[0][c] for c in o]}]
        },
        "input 'x'",
    ),
    "2-D FP64 with text": (
        lambda r, i, o: {"inputs": [{"name": "x", "shape": [1, 11], "datatype": "FP64", "data": [r[0][c] for c in o]}]},
        "datatype FP64",
    ),
    "several inputs without pd": (lambda r, i, o: dict(_pd(r, i), parameters={}), "content_type"),
    "unknown requested output": (lambda r, i, o: dict(_pd(r, i), outputs=[{"name": "scores"}]), "'scores'"),
}


@pytest.mark.parametrize("case", sorted(BAD_V2))
def test_bad_v2_request_is_400_naming_the_field(server, churn_model, records, case):
    build, fragment = BAD_V2[case]
    inputs = server_get(server, "/v2/models/churn").body["inputs"]
    result = server.v2(build(records, inputs, churn_model[1]["feature_order"]))
    assert result.status == 400, result
    assert fragment in result.body["error"], result


def test_non_json_body_is_400_naming_the_content_type(server, records):
    result = server.v1(raw=json.dumps({"instances": records[:1]}).encode(), content_type="text/plain")
    assert result.status == 400, result
    assert "application/json" in result.body["error"]


def test_default_host_listens_on_loopback_only(server, listening_on, tcp_connects):
    """The `server` fixture passes no --host: like `make serve`, it must listen on 127.0.0.1 only."""
    assert listening_on(server.port) == {"127.0.0.1"}, server.log_text()
    assert server.get("/v2/health/ready").status == 200
    # all of 127.0.0.0/8 is this machine, but a socket bound to 127.0.0.1 does not accept 127.0.0.2
    assert not tcp_connects("127.0.0.2", server.port)
    assert f"on http://127.0.0.1:{server.port} " in server.log_text()


def test_host_all_interfaces_for_the_cluster_runtime(start_server, churn_model_dir, listening_on, tcp_connects):
    proc = start_server(["--model_dir", str(churn_model_dir), "--host", "0.0.0.0"], model_name="churn-all")
    proc.wait_ready()
    assert listening_on(proc.port) == {"0.0.0.0"}, proc.log_text()
    assert tcp_connects("127.0.0.2", proc.port)
    assert http_get_status(f"http://127.0.0.2:{proc.port}/v2/models/churn-all/ready") == 200


def http_get_status(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status


def make_run(root, name, model_from, blessed, mtime):
    """A `make run` run directory: runs/<name>/train/model and, unless blessed is None, evaluate/blessing."""
    model_dir = root / "runs" / name / "train" / "model"
    shutil.copytree(model_from, model_dir)
    os.utime(model_dir / "model.joblib", (mtime, mtime))
    if blessed is not None:
        blessing = root / "runs" / name / "evaluate" / "blessing"
        blessing.parent.mkdir(parents=True)
        sha = sha256_file(model_dir / "model.joblib")
        blessings.write(blessing, blessings.Blessing(blessed=blessed, reasons=["test"], model_sha256=sha))
    return model_dir


def test_latest_under_serves_the_production_model_with_predict_proba_env(
    start_server, churn_model_dir, churn_model, test_rows, records, tmp_path
):
    """production/current.json wins over newer runs, blessed or not; every other model here would not load."""
    root = tmp_path / "local_outputs"
    production = root / "production" / "run-1" / "model"
    shutil.copytree(churn_model_dir, production)
    record = {"run": "run-1", "model_dir": str(production), "promoted_at": "2026-11-26T00:00:00+00:00"}
    (root / "production" / "current.json").write_text(json.dumps(record), encoding="utf-8")
    now = time.time()
    for name, blessed in (("run-2", True), ("run-3", False), ("run-4", None)):
        model_dir = make_run(root, name, churn_model_dir, blessed, now - 10)
        (model_dir / "model.joblib").write_bytes(b"must not be served")
    proc = start_server(["--latest_under", str(root)], env={"PREDICT_PROBA": "true"}, model_name="churn-proba")
    proc.wait_ready()
    labels, proba = reference(churn_model, test_rows)
    result = proc.v1({"instances": records})
    assert result.status == 200, f"{result}\n{proc.log_text()}"
    assert result.body["classes"] == [0, 1]
    assert result.body["labels"] == labels
    np.testing.assert_allclose(np.array(result.body["predictions"]), proba, rtol=0, atol=TOL)
    log = proc.log_text()
    assert f"model: {production}: the local production model named by {root / 'production' / 'current.json'}" in log
    assert f"serving {production} as 'churn-proba'" in log


def test_latest_under_without_production_serves_the_newest_blessed_run(
    start_server, churn_model_dir, churn_model, test_rows, records, tmp_path
):
    """Newer runs that were not blessed or failed (no blessing) are passed over; an older blessed one would not load."""
    root = tmp_path / "local_outputs"
    now = time.time()
    old = make_run(root, "run-1", churn_model_dir, True, now - 300)
    (old / "metadata.json").write_text("{ this model must not be picked", encoding="utf-8")
    new = make_run(root, "run-2", churn_model_dir, True, now - 200)
    for name, blessed in (("run-3", False), ("run-4", None)):
        (make_run(root, name, churn_model_dir, blessed, now - 100) / "model.joblib").write_bytes(b"not this one")
    hidden = root / "runs" / "run-5" / "train" / ".model.abc.tmp"
    hidden.mkdir(parents=True)
    (hidden / "model.joblib").write_bytes(b"half-written")
    proc = start_server(["--latest_under", str(root)], env={"PREDICT_PROBA": "false"}, model_name="churn-run")
    proc.wait_ready()
    result = proc.v1({"instances": records})
    assert result.status == 200, f"{result}\n{proc.log_text()}"
    assert result.body == {"predictions": reference(churn_model, test_rows)[0]}
    log = proc.log_text()
    assert f"model: {new}: the newest of 2 blessed run(s) below {root / 'runs'}, 2 newer run(s) ignored" in log


def test_two_model_files_make_the_server_exit_with_the_error(serve_cli, churn_model_dir, tmp_path):
    model_dir = tmp_path / "two"
    shutil.copytree(churn_model_dir, model_dir)
    shutil.copy(model_dir / "model.joblib", model_dir / "model-old.joblib")
    out = serve_cli(["--model_dir", str(model_dir)])
    assert out.returncode == 2, out.stderr
    assert str(model_dir) in out.stderr
    assert "model-old.joblib" in out.stderr and "model.joblib" in out.stderr
    assert "Uvicorn running" not in out.stderr


def test_latest_under_without_a_blessed_model_exits_telling_to_run_make_run(serve_cli, churn_model_dir, tmp_path):
    root = tmp_path / "local_outputs"
    make_run(root, "run-1", churn_model_dir, False, time.time())
    make_run(root, "run-2", churn_model_dir, None, time.time())
    out = serve_cli(["--latest_under", str(root)])
    assert out.returncode == 2, out.stderr
    assert f"error: no blessed model under {root}: run `make run` first, or pass --model_dir" in out.stderr
    assert "run-1/train/model: not blessed" in out.stderr
    assert "run-2/train/model: no evaluate/blessing" in out.stderr
    assert "Uvicorn running" not in out.stderr


def test_in_process_checks_in_the_serve_env(serve_python, churn_model_dir, tmp_path):
    """Load errors and a model without metadata.json, through TabularModel itself in the serve env."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    plain = tmp_path / "plain"
    plain.mkdir()
    joblib.dump(LogisticRegression().fit(x, y), plain / "model.pkl")
    probe = x[:5].tolist()
    expected = LogisticRegression().fit(x, y).predict(x[:5]).tolist()
    words = tmp_path / "words"
    words.mkdir()
    word_model = LogisticRegression().fit(x, np.where(y == 1, "yes", "no"))
    joblib.dump(word_model, words / "model.joblib")
    expected_words = word_model.predict(x[:5]).tolist()
    regression = tmp_path / "regression"
    regression.mkdir()
    from sklearn.linear_model import LinearRegression

    regressor = LinearRegression().fit(x, x[:, 0] * 2.0)
    joblib.dump(regressor, regression / "model.joblib")
    expected_values = regressor.predict(x[:5]).tolist()

    mismatch = tmp_path / "mismatch"
    shutil.copytree(churn_model_dir, mismatch)
    meta = json.loads((mismatch / "metadata.json").read_text())
    meta["classes"] = ["no", "yes"]
    (mismatch / "metadata.json").write_text(json.dumps(meta))
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.joblib").write_bytes(b"not a pickle")

    code = f"""
import json
from kserve.protocol.infer_type import InferInput, InferRequest
from kfp_tabular.components.deployment.model_server.server import TabularModel
out = {{}}
m = TabularModel("plain", {str(plain)!r})
m.load()
out["v1"] = m.predict({{"instances": {probe!r}}})
req = InferRequest("plain", [InferInput("x", [5, 3], "FP64", data={probe!r})])
res = m.predict(req)
out["v2"] = {{o.name: o.data for o in res.outputs}}
out["inputs"] = m.get_input_types()
for name in ("words", "regression"):
    other = TabularModel(name, {str(tmp_path)!r} + "/" + name, predict_proba=True)
    other.load()
    res = other.predict(InferRequest(name, [InferInput("x", [5, 3], "FP64", data={probe!r})]))
    out[name] = {{
        "v1": other.predict({{"instances": {probe!r}}}),
        "v2": {{o.name: [o.datatype, o.data] for o in res.outputs}},
        "outputs": other.get_output_types(),
    }}
for name in ("mismatch", "garbage"):
    try:
        TabularModel(name, {str(tmp_path)!r} + "/" + name).load()
        out[name] = "loaded"
    except Exception as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""
    done = serve_python(code)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["v1"] == {"predictions": expected}
    assert out["v2"]["predict"] == expected
    assert len(out["v2"]["predict_proba"]) == 10
    assert out["inputs"] == []
    words = out["words"]
    assert words["v1"]["labels"] == expected_words and words["v1"]["classes"] == ["no", "yes"]
    assert words["v2"]["predict"] == ["BYTES", expected_words]
    assert words["outputs"][0] == {"name": "predict", "datatype": "BYTES", "shape": [-1]}
    values = out["regression"]
    assert values["v1"] == {"predictions": pytest.approx(expected_values, abs=1e-9)}
    assert list(values["v2"]) == ["predict"] and values["v2"]["predict"][0] == "FP64"
    assert values["v2"]["predict"][1] == pytest.approx(expected_values, abs=1e-9)
    assert values["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert (
        out["mismatch"].startswith("DataError")
        and "'classes'" in out["mismatch"]
        and "metadata.json" in out["mismatch"]
    )
    assert out["garbage"].startswith("DataError") and "model.joblib" in out["garbage"]
