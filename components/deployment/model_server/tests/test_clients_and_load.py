"""Clients nobody here wrote (tritonclient, KServe's InferenceRESTClient) in JSON and binary modes, a bounded
concurrent load, property-based payloads (hypothesis), and the fast path proven equal on an eval set.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import LABEL, post

pytestmark = pytest.mark.serve

NUMPY_TYPES = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}


def reference(churn_model, frame):
    model, meta = churn_model
    x = frame[meta["feature_order"]]
    return model.predict(x).tolist(), model.predict_proba(x)


def complete(test_rows):
    return test_rows[~test_rows.isna().any(axis=1)].head(20).reset_index(drop=True)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_in_json_and_binary_modes(schema_server, churn_model, test_rows, binary):
    import tritonclient.http as triton

    rows = complete(test_rows)
    labels, proba = reference(churn_model, rows)
    inputs = []
    for spec in schema_server.get("/v2/models/churn").body["inputs"]:
        values = rows[spec["name"]].to_numpy()
        array = values.astype(NUMPY_TYPES[spec["datatype"]])
        if spec["datatype"] == "BYTES":
            array = np.array([str(v).encode() for v in values], dtype=np.object_)
        tensor = triton.InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("predict", "predict_proba")]
    client = triton.InferenceServerClient(url=schema_server.url.removeprefix("http://"))
    try:
        result = client.infer("churn", inputs, outputs=outputs, parameters={"content_type": "pd"})
    finally:
        client.close()
    assert result.as_numpy("predict").tolist() == labels
    np.testing.assert_allclose(result.as_numpy("predict_proba"), proba, rtol=0, atol=1e-9)


def test_tritonclient_error_is_a_400_naming_the_column(schema_server, test_rows):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    rows = complete(test_rows).head(1)
    inputs = []
    for spec in schema_server.get("/v2/models/churn").body["inputs"]:
        datatype = "INT64" if spec["name"] == "region" else spec["datatype"]
        tensor = triton.InferInput(spec["name"], [1], datatype)
        values = rows[spec["name"]].to_numpy()
        array = np.array([7], dtype=np.int64) if spec["name"] == "region" else values.astype(NUMPY_TYPES[datatype])
        if datatype == "BYTES":
            array = np.array([str(v).encode() for v in values], dtype=np.object_)
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    client = triton.InferenceServerClient(url=schema_server.url.removeprefix("http://"))
    try:
        with pytest.raises(InferenceServerException) as caught:
            client.infer("churn", inputs, parameters={"content_type": "pd"})
    finally:
        client.close()
    assert "400" in str(caught.value.status()) and "'region'" in caught.value.message()


def test_kserve_inference_rest_client_v1_and_v2_json_and_binary(schema_server, serve_python, churn_model, test_rows):
    rows = complete(test_rows)
    labels, _ = reference(churn_model, rows)
    records = json.loads(rows.to_json(orient="records"))
    inputs = schema_server.get("/v2/models/churn").body["inputs"]
    code = f"""
import asyncio, json
import numpy as np
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest
records, specs, url = {records!r}, {inputs!r}, {schema_server.url!r}
types = {{"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}}
async def main():
    out = {{}}
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=60))
    out["v1"] = (await v1.infer(url, {{"instances": records}}, model_name="churn"))["predictions"]
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    for binary in (False, True):
        tensors = []
        for spec in specs:
            tensor = InferInput(spec["name"], [len(records)], spec["datatype"])
            values = [r[spec["name"]] for r in records]
            tensor.set_data_from_numpy(np.array(values, dtype=types[spec["datatype"]]), binary_data=binary)
            tensors.append(tensor)
        request = InferRequest("churn", tensors, parameters={{"content_type": "pd"}})
        response = await v2.infer(url, request, model_name="churn")
        predict = [o for o in response.outputs if o.name == "predict"][0]
        out["binary" if binary else "json"] = predict.as_numpy().tolist()
    print(json.dumps(out))
asyncio.run(main())
"""
    done = serve_python(code)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"v1": labels, "json": labels, "binary": labels}


def test_v2_without_content_type_is_read_as_json(schema_server, records):
    inputs = schema_server.get("/v2/models/churn").body["inputs"]
    body = {"parameters": {"content_type": "pd"}, "inputs": []}
    for spec in inputs:
        body["inputs"].append(
            {"name": spec["name"], "shape": [1], "datatype": spec["datatype"], "data": [records[0][spec["name"]]]}
        )
    result = post(f"{schema_server.url}/v2/models/churn/infer", json.dumps(body).encode(), headers={})
    assert result.status == 200, result


def test_bounded_concurrent_load_ends_with_zero_errors_and_the_server_up(schema_server, records):
    """8 clients x 60 requests, valid and malformed mixed: every answer is 200 or a 4xx, none fails."""
    import http.client

    good = json.dumps({"instances": [records[0]]}).encode()
    bad = json.dumps({"instances": [dict(records[0], age="old")]}).encode()
    problems: list = []

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", schema_server.port, timeout=30)
        try:
            for i in range(60):
                body = bad if (i + index) % 5 == 0 else good
                conn.request(
                    "POST", "/v1/models/churn:predict", body=body, headers={"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                response.read()
                expected = 400 if body is bad else 200
                if response.status != expected:
                    problems.append((index, i, response.status))
        except OSError as exc:
            problems.append((index, "connection", repr(exc)))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert problems == []
    assert schema_server.get("/v2/health/ready").status == 200


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "age",
    "support_calls",
    "contract_type",
    "payment_method",
    "internet_service",
    "region",
    "paperless_billing",
    "has_partner",
]
V1_BODIES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"instances": st.lists(st.fixed_dictionaries({f: JSON_VALUES for f in FEATURES}), min_size=1, max_size=2)}
    ),
    st.fixed_dictionaries(
        {"instances": st.lists(st.lists(JSON_VALUES, min_size=11, max_size=11), min_size=1, max_size=2)}
    ),
)
V2_BODIES = st.fixed_dictionaries(
    {
        "inputs": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from([*FEATURES, "x"]),
                    "shape": st.lists(st.integers(min_value=-1, max_value=3), max_size=2),
                    "datatype": st.sampled_from(["INT64", "FP64", "BOOL", "BYTES", "FP32", "UINT8", "FOO"]),
                    "data": st.lists(JSON_VALUES, max_size=3),
                }
            ),
            max_size=12,
        ),
        "parameters": st.sampled_from([{}, {"content_type": "pd"}]),
    }
)


def _encode(body) -> bytes:
    return json.dumps(body, allow_nan=True).encode()  # NaN and Infinity literals included on purpose


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=V1_BODIES)
def test_any_v1_payload_gets_200_or_the_documented_400(schema_server, body):
    result = post(f"{schema_server.url}/v1/models/churn:predict", _encode(body), {"Content-Type": "application/json"})
    assert result.status in (200, 400), result
    if result.status == 400:
        assert set(result.body) >= {"error", "field", "expected", "status"}, result


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=V2_BODIES)
def test_any_v2_payload_gets_200_or_the_documented_400(schema_server, body):
    result = post(f"{schema_server.url}/v2/models/churn/infer", _encode(body), {"Content-Type": "application/json"})
    assert result.status in (200, 400), result
    if result.status == 400:
        assert set(result.body) >= {"error", "field", "expected", "status"}, result


def test_parsing_raises_only_request_errors_in_process(serve_python):
    """Hypothesis bodies through payload and schema in the serve env: nothing but RequestError comes out."""
    from hypothesis import find  # noqa: F401  (hypothesis drives the generation below)

    bodies: list = []

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(v1=V1_BODIES, v2=V2_BODIES)
    def collect(v1, v2):
        bodies.append(["v1", v1])
        bodies.append(["v2", v2])

    collect()
    code = f"""
import json
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kfp_tabular.components.deployment.model_server.errors import RequestError
from kfp_tabular.components.deployment.model_server.payload import Table, parse_v1, parse_v2
from kfp_tabular.components.deployment.model_server.schema import FeatureSpec, Schema
order = {FEATURES!r}
dtypes = ["int", "float", "float", "float", "int", "string", "string", "string", "string", "bool", "bool"]
specs = [FeatureSpec(n, d, domain=frozenset(["a"]) if d == "string" else None, min=0.0, max=10.0, nullable=False)
         for n, d in zip(order, dtypes)]
schema = Schema(specs)
other = []
for protocol, body in json.loads(open(0).read()):
    try:
        if protocol == "v1":
            table = parse_v1(body, order)
        else:
            try:
                request = InferRequest.from_inference_request(InferenceRequest.model_validate(body), "m")
            except Exception:
                continue  # FastAPI refuses these before the model (a 400 from the error handler)
            table = parse_v2(request, order)
        if isinstance(table, Table):
            schema.check(table.columns, table.rows, table.where, table.datatypes)
    except RequestError:
        pass
    except Exception as exc:
        other.append([protocol, repr(body)[:200], type(exc).__name__ + ": " + str(exc)[:200]])
print(json.dumps(other))
"""
    import subprocess

    from .conftest import REPO, SERVE_PYTHON

    done = subprocess.run(
        [str(SERVE_PYTHON), "-c", code],
        input=json.dumps(bodies, allow_nan=True),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(bodies) >= 400
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_fast_path_equals_model_joblib_on_an_eval_set(serve_python, churn_model_dir, churn_model, tmp_path):
    """1,000 unseen rows (with missing values), one at a time and as one batch: labels equal, probabilities
    within 1e-12 of model.joblib's own predictions in this env."""
    from kfp_tabular.components.data_processing.synthetic_data.core import generate

    frame = generate(1000, seed=2024).drop(columns=[LABEL])
    assert frame.isna().any(axis=1).sum() > 50
    labels, proba = reference(churn_model, frame)
    rows = tmp_path / "eval.json"
    rows.write_text(frame.to_json(orient="records"), encoding="utf-8")
    code = f"""
import json
import numpy as np
from kfp_tabular.components.deployment.model_server.model import TabularModel
model = TabularModel("churn", {str(churn_model_dir)!r}, predict_proba=True)
model.load()
assert model.fast is not None, "the fast path was not derived"
assert type(model.fast.estimator).__name__ == "CompiledTrees"
records = json.loads(open({str(rows)!r}).read())
singles = [model.predict({{"instances": [r]}}) for r in records]
batch = model.predict({{"instances": records}})
print(json.dumps({{"labels": [s["labels"][0] for s in singles], "proba": [s["predictions"][0] for s in singles],
                  "batch_labels": batch["labels"], "batch_proba": batch["predictions"]}}))
"""
    done = serve_python(code)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["labels"] == labels and out["batch_labels"] == labels
    np.testing.assert_allclose(np.array(out["proba"]), proba, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.array(out["batch_proba"]), proba, rtol=0, atol=1e-12)
