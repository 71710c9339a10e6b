"""A KServe model for kfp-tabular models: one ``model.joblib`` plus ``metadata.json``, served over V1 and V2.

Runs in the serve environment (kserve 0.21, scikit-learn 1.5, pandas 2). KServe's stock sklearn runtime can
load the same ``model.joblib``; this server adds what that runtime lacks for tabular data:

- V1 records (``{"instances": [{"column": value, ...}]}`` with plain scalars), which KServe's own input
  helper cannot turn into a frame;
- each request's columns are put in the trained ``feature_order`` and converted to the trained dtypes, and
  a missing column or a value of the wrong kind is an HTTP 400 naming the column;
- V2 responses carry both the predicted class and, for classifiers, the class probabilities.

Responses:

- V1 (``/v1/models/<name>:predict``): ``{"predictions": [label, ...]}``, like KServe's sklearn runtime.
  With ``PREDICT_PROBA=true`` (or ``--predict_proba true``) a classifier answers
  ``{"predictions": [[p_class0, p_class1, ...], ...], "classes": [...], "labels": [...]}``: the probability
  rows (as the sklearn runtime does) plus the column order of each row and the predicted labels.
- V2 (``/v2/models/<name>/infer``): output ``predict`` (shape ``[n]``, the predicted label or value) and,
  for classifiers, ``predict_proba`` (shape ``[n, n_classes]``, FP64, columns in ``classes`` order),
  whatever ``PREDICT_PROBA`` says. A request may ask for a subset with ``outputs``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import joblib
import numpy as np
import pandas as pd
from kserve import Model, ModelServer
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.numpy_codec import from_np_dtype
from kserve.utils.utils import generate_uuid, strtobool

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.common.model_dir import FEATURE_DTYPES, find_model_file, read_metadata
from kfp_tabular.components.deployment.model_server.model_files import find_latest_model

__all__ = ["DEFAULT_HOST", "ENV_PREDICT_PROBA", "HostModelServer", "TabularModel", "find_latest_model"]

#: Environment variable (KServe's sklearn runtime uses the same name): "true" makes V1 return probabilities.
ENV_PREDICT_PROBA = "PREDICT_PROBA"
_TRUE_STRINGS = {"true": True, "1": True, "false": False, "0": False}
#: The REST bind address of the command line: localhost for ``make serve``; the cluster runtime passes 0.0.0.0.
DEFAULT_HOST = "127.0.0.1"

logger = logging.getLogger(__name__)


class HostModelServer(ModelServer):
    """KServe's ``ModelServer`` with the REST server bound to ``host`` instead of KServe's fixed 0.0.0.0.

    KServe 0.21's ``RESTServer`` builds its ``uvicorn.Config`` with ``host="0.0.0.0"`` and no way to change it.
    ``ModelServer.start`` creates the REST server (one process, or the parent of ``--workers`` processes),
    then runs ``_serve`` in a new event loop; uvicorn reads ``config.host`` only when it binds, which happens
    inside ``_serve``. So ``_serve`` sets the host on that config first. gRPC (off unless enabled) still binds
    ``[::]``, as KServe's ``GRPCServer`` fixes it too.
    """

    def __init__(self, *, host: str = DEFAULT_HOST, **kwargs: Any):
        """Create the server.

        Args:
            host: Address the REST server binds: ``127.0.0.1`` for this machine only, ``0.0.0.0`` for all
                IPv4 interfaces (what a pod needs), or any address uvicorn accepts.
            **kwargs: Passed on to ``kserve.ModelServer``.
        """
        super().__init__(**kwargs)
        self.host = host

    async def _serve(self) -> None:
        configs = [server.config for server in self._rest_servers()]
        if not configs:
            raise RuntimeError(
                "HostModelServer: kserve.ModelServer.start created no REST server this class knows how to bind "
                "(expected _rest_server or _rest_multiprocess_server._rest_server, as in kserve 0.21)"
            )
        for config in configs:
            config.host = self.host
        await super()._serve()

    def _rest_servers(self) -> list:
        servers = [self._rest_server]
        if self._rest_multiprocess_server is not None:
            servers.append(getattr(self._rest_multiprocess_server, "_rest_server", None))
        return [server for server in servers if server is not None and hasattr(server, "config")]


def _is_missing(value: Any) -> bool:
    """Return True for None and float NaN (what JSON null and pandas' missing values become)."""
    return value is None or (isinstance(value, float) and value != value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bytes, bool, int, float, np.generic))


class TabularModel(Model):
    """A scikit-learn model directory served through KServe with named, typed tabular input.

    Args:
        name: The name the model is served under (``/v1/models/<name>``, ``/v2/models/<name>``).
        model_dir: Local directory holding exactly one model file and, optionally, ``metadata.json``.
        predict_proba: For classifiers, make V1 ``predictions`` the probability rows instead of the labels.
            None reads the ``PREDICT_PROBA`` environment variable (default false).
    """

    def __init__(self, name: str, model_dir: Union[str, os.PathLike], predict_proba: Optional[bool] = None):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        if predict_proba is None:
            predict_proba = strtobool(os.environ.get(ENV_PREDICT_PROBA, "false"))
        self.predict_proba = bool(predict_proba)
        self.ready = False
        self._model = None
        self.metadata: Optional[Dict[str, Any]] = None
        self.feature_order: Optional[List[str]] = None
        self.feature_dtypes: Dict[str, str] = {}
        self.classes: Optional[List[Any]] = None

    # ------------------------------------------------------------------ loading

    def load(self) -> bool:
        """Load the one model file and ``metadata.json`` (if present) from ``model_dir``.

        Returns:
            True once the model is ready.

        Raises:
            DataError: No model file or more than one, a file that does not unpickle, invalid metadata, or
                metadata that disagrees with the model (its classes). Each message names the file.
        """
        model_file = find_model_file(self.model_dir)
        try:
            model = joblib.load(model_file)
        except Exception as exc:  # unpickling runs arbitrary constructors; report any failure with the file
            raise DataError(
                f"{model_file}: could not load the model ({type(exc).__name__}: {exc}); it must be a "
                "joblib/pickle file of a scikit-learn model made with a compatible scikit-learn version"
            ) from exc
        if not hasattr(model, "predict"):
            raise DataError(f"{model_file}: expected a scikit-learn estimator with predict(), got {type(model)}")
        meta = read_metadata(self.model_dir)

        classes = getattr(model, "classes_", None)
        task = (meta or {}).get("task") or ("classification" if classes is not None else "regression")
        if task == "classification" and classes is None:
            raise DataError(f"{model_file}: metadata.json says task 'classification' but the model has no classes_")
        if task == "regression":
            classes = None
        if meta is not None and classes is not None and meta.get("classes") is not None:
            model_classes = [str(c) for c in np.asarray(classes).tolist()]
            if [str(c) for c in meta["classes"]] != model_classes:
                raise DataError(
                    f"{self.model_dir / 'metadata.json'}: field 'classes' is {meta['classes']} but the model in "
                    f"{model_file.name} predicts {model_classes}: the metadata belongs to another model"
                )
        if meta is not None:
            self._warn_on_version_skew(meta.get("sklearn_version"))
            order = list(meta["feature_order"])
            dtypes = {f["name"]: f["dtype"] for f in meta.get("features") or [] if f["name"] in order}
        else:
            names = getattr(model, "feature_names_in_", None)
            order = [str(n) for n in names] if names is not None else None
            dtypes = {}

        self._model = model
        self.metadata = meta
        self.feature_order = order
        self.feature_dtypes = dtypes
        self.classes = np.asarray(classes).tolist() if classes is not None else None
        if self.predict_proba and (self.classes is None or not hasattr(model, "predict_proba")):
            logger.warning("model %s has no predict_proba: V1 predictions will be predicted values", self.name)
        logger.info(
            "loaded %s (%s, %s features) from %s",
            self.name,
            task,
            len(order) if order else "unknown",
            model_file,
        )
        self.ready = True
        return self.ready

    @staticmethod
    def _warn_on_version_skew(trained_with: Optional[str]) -> None:
        import sklearn

        if trained_with and trained_with.split(".")[:2] != sklearn.__version__.split(".")[:2]:
            logger.warning(
                "model was trained with scikit-learn %s but this server runs %s: predictions may differ",
                trained_with,
                sklearn.__version__,
            )

    # ------------------------------------------------------------------ metadata (/v2/models/<name>)

    def get_input_types(self) -> List[Dict]:
        """One V2 input per feature, in ``feature_order`` (what ``content_type: pd`` requests send)."""
        if not self.feature_order:
            return []
        return [
            {"name": name, "datatype": FEATURE_DTYPES.get(self.feature_dtypes.get(name, ""), "BYTES"), "shape": [-1]}
            for name in self.feature_order
        ]

    def get_output_types(self) -> List[Dict]:
        """``predict`` and, for classifiers, ``predict_proba``."""
        if self.classes is None:
            return [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
        outputs = [{"name": "predict", "datatype": from_np_dtype(_label_array(self.classes).dtype), "shape": [-1]}]
        if hasattr(self._model, "predict_proba"):
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(self.classes)]})
        return outputs

    # ------------------------------------------------------------------ inference

    def predict(
        self, payload: Union[Dict, InferRequest], headers: Optional[Dict[str, str]] = None
    ) -> Union[Dict, InferResponse]:
        """Predict for a V1 (dict) or V2 (``InferRequest``) request.

        Args:
            payload: The decoded request body.
            headers: Request headers (unused).

        Returns:
            A V1 ``{"predictions": ...}`` dict or a V2 ``InferResponse`` (see the module docstring).

        Raises:
            InvalidInput: The request is malformed (HTTP 400); the message names the field or column.
            InferenceError: The model failed on well-formed input (HTTP 500).
        """
        if not self.ready:
            raise InferenceError(f"model {self.name} is not loaded")
        if type(payload).__name__ == "ModelInferRequest":  # gRPC, when the server runs with --enable_grpc
            payload = InferRequest.from_grpc(payload)
        if isinstance(payload, InferRequest):
            frame = self._frame_from_v2(payload)
        elif isinstance(payload, dict):
            frame = self._frame_from_v1(payload)
        else:
            raise InvalidInput(
                f"request body: expected a JSON object sent with Content-Type: application/json, "
                f"got {type(payload).__name__}"
            )

        classifier = self.classes is not None and hasattr(self._model, "predict_proba")
        want_proba = classifier and (isinstance(payload, InferRequest) or self.predict_proba)
        try:
            labels = np.asarray(self._model.predict(frame))
            proba = np.asarray(self._model.predict_proba(frame), dtype=np.float64) if want_proba else None
        except Exception as exc:
            raise InferenceError(f"model {self.name} failed to predict: {type(exc).__name__}: {exc}") from exc

        if isinstance(payload, dict):
            if proba is None:
                return {"predictions": labels.tolist()}
            return {"predictions": proba.tolist(), "classes": list(self.classes), "labels": labels.tolist()}
        return self._v2_response(payload, labels, proba)

    def _v2_response(self, request: InferRequest, labels: np.ndarray, proba: Optional[np.ndarray]) -> InferResponse:
        labels = _label_array(labels) if self.classes is not None else labels.astype(np.float64)
        arrays = [("predict", labels)] + ([("predict_proba", proba)] if proba is not None else [])
        binary = request.use_binary_outputs
        outputs = []
        for name, array in arrays:
            output = InferOutput(name=name, shape=list(array.shape), datatype=from_np_dtype(array.dtype))
            output.set_data_from_numpy(array, binary_data=binary)
            outputs.append(output)
        return InferResponse(
            response_id=request.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=binary,
            requested_outputs=request.request_outputs,
        )

    # ------------------------------------------------------------------ V1 input

    def _frame_from_v1(self, body: Dict) -> Union[pd.DataFrame, np.ndarray]:
        if "instances" in body:
            key = "instances"
        elif "inputs" in body:
            key = "inputs"
        else:
            raise InvalidInput(
                f"V1 request: expected a field 'instances' (or 'inputs'), got fields {sorted(body) or 'none'}"
            )
        rows = body[key]
        if not isinstance(rows, list) or not rows:
            raise InvalidInput(f"'{key}': expected a non-empty list of rows, got {_describe(rows)}")
        if all(isinstance(row, dict) for row in rows):
            return self._frame_from_records(rows, key)
        if all(isinstance(row, list) for row in rows):
            return self._frame_from_lists(rows, key)
        first = rows[0] if isinstance(rows[0], (dict, list)) else None
        bad = next(i for i, row in enumerate(rows) if first is None or not isinstance(row, type(first)))
        raise InvalidInput(
            f"'{key}[{bad}]': expected every row to be a list of values in feature order or every row to be "
            f"an object of column: value, got {_describe(rows[bad])}"
        )

    def _frame_from_records(self, records: List[Dict], key: str) -> pd.DataFrame:
        order = self.feature_order or list(records[0])
        for i, record in enumerate(records):
            missing = [name for name in order if name not in record]
            if missing:
                raise InvalidInput(
                    f"'{key}[{i}]': missing feature column(s) {', '.join(repr(m) for m in missing)} "
                    "(send null for a missing value)"
                )
            for name in order:
                if not _is_scalar(record[name]):
                    raise InvalidInput(
                        f"'{key}[{i}]' column '{name}': expected a single value, got {_describe(record[name])} "
                        "(send one object per row)"
                    )
        frame = pd.DataFrame({name: pd.Series([r[name] for r in records], dtype=object) for name in order})
        return self._coerce(frame, key)

    def _frame_from_lists(self, rows: List[List], key: str) -> Union[pd.DataFrame, np.ndarray]:
        width = len(self.feature_order) if self.feature_order else len(rows[0])
        for i, row in enumerate(rows):
            if len(row) != width:
                expected = f"{width} values"
                if self.feature_order:
                    expected += f" in feature order ({', '.join(self.feature_order)})"
                raise InvalidInput(f"'{key}[{i}]': expected {expected}, got {len(row)}")
            for j, value in enumerate(row):
                if not _is_scalar(value):
                    column = f"column '{self.feature_order[j]}'" if self.feature_order else f"position {j}"
                    raise InvalidInput(f"'{key}[{i}]' {column}: expected a single value, got {_describe(value)}")
        if not self.feature_order:
            try:
                return np.asarray(rows)
            except ValueError as exc:
                raise InvalidInput(f"'{key}': rows are not a rectangular table ({exc})") from exc
        frame = pd.DataFrame(
            {name: pd.Series([row[j] for row in rows], dtype=object) for j, name in enumerate(self.feature_order)}
        )
        return self._coerce(frame, key)

    # ------------------------------------------------------------------ V2 input

    def _frame_from_v2(self, request: InferRequest) -> Union[pd.DataFrame, np.ndarray]:
        if not request.inputs:
            raise InvalidInput("V2 request: field 'inputs' is empty: expected at least one input tensor")
        if _content_type(request) == "pd":
            return self._frame_from_v2_columns(request)
        if len(request.inputs) != 1:
            raise InvalidInput(
                f"V2 request: got {len(request.inputs)} inputs; send one 2-D input with the features in order, "
                'or one input per feature with "parameters": {"content_type": "pd"}'
            )
        tensor = request.inputs[0]
        where = f"input '{tensor.name}'"
        shape = list(tensor.shape or [])
        width = len(self.feature_order) if self.feature_order else None
        if len(shape) != 2 or (width is not None and shape[1] != width):
            expected = f"[rows, {width}]" if width is not None else "[rows, columns]"
            raise InvalidInput(
                f"{where}: expected a 2-D shape {expected} with the features in order"
                + (f" ({', '.join(self.feature_order)})" if self.feature_order else "")
                + f", got shape {shape}"
            )
        try:
            if tensor.datatype == "BYTES":
                values = np.array(tensor.data, dtype=object)
                if values.size != shape[0] * shape[1]:
                    raise ValueError(f"it has {values.size} values, shape {shape} needs {shape[0] * shape[1]}")
                values = values.reshape(shape)
            else:
                values = tensor.as_numpy()
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"{where}: data does not match datatype {tensor.datatype} and shape {shape} ({exc})")
        if not self.feature_order:
            return values
        frame = pd.DataFrame(
            {name: pd.Series(values[:, j].tolist(), dtype=object) for j, name in enumerate(self.feature_order)}
        )
        return self._coerce(frame, where)

    def _frame_from_v2_columns(self, request: InferRequest) -> pd.DataFrame:
        rows = None
        for tensor in request.inputs:
            shape = list(tensor.shape or [])
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                raise InvalidInput(
                    f"input '{tensor.name}': with content_type 'pd' each input is one column: expected shape "
                    f"[rows] or [rows, 1], got {shape}"
                )
            size = len(tensor.data) if tensor.data is not None else 0
            if size != shape[0]:
                raise InvalidInput(f"input '{tensor.name}': shape {shape} says {shape[0]} rows, data has {size}")
            if rows is None:
                rows = shape[0]
            elif shape[0] != rows:
                raise InvalidInput(
                    f"input '{tensor.name}': has {shape[0]} rows but input '{request.inputs[0].name}' has {rows}"
                )
        try:
            frame = request.as_dataframe()
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"V2 request with content_type 'pd': inputs do not form a table ({exc})") from exc
        order = self.feature_order or list(frame.columns)
        missing = [name for name in order if name not in frame.columns]
        if missing:
            raise InvalidInput(
                f"V2 request: missing input(s) for feature column(s) {', '.join(repr(m) for m in missing)}"
            )
        frame = pd.DataFrame({name: frame[name].astype(object) for name in order})
        return self._coerce(frame, "V2 request")

    # ------------------------------------------------------------------ dtypes

    def _coerce(self, frame: pd.DataFrame, where: str) -> pd.DataFrame:
        """Convert each column to the dtype the model was trained on; a value of the wrong kind is a 400."""
        out = {}
        for name in frame.columns:
            column = frame[name]
            dtype = self.feature_dtypes.get(name)
            if dtype in ("int", "float"):
                out[name] = _numeric(column, name, dtype, where)
            elif dtype == "bool":
                out[name] = _boolean(column, name, where)
            elif dtype == "string":
                out[name] = _string(column, name, where)
            else:
                out[name] = pd.Series(
                    [np.nan if _is_missing(v) else v for v in column], index=column.index
                ).infer_objects()
        return pd.DataFrame(out, columns=list(frame.columns))


def _label_array(labels: Any) -> np.ndarray:
    """Labels as an array KServe can encode: strings as objects (BYTES), numbers as 64-bit, bools as BOOL."""
    array = np.asarray(labels)
    if array.dtype.kind in "USO":
        return array.astype(object)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    return array


def _content_type(request: InferRequest) -> str:
    parameters = request.parameters
    if not parameters:
        return ""
    value = parameters.get("content_type")
    if value is not None and hasattr(value, "string_param"):  # gRPC InferParameter
        return str(value.string_param)
    return str(value) if value is not None else ""


def _bad_value(where: str, name: str, row: int, value: Any, expected: str) -> InvalidInput:
    return InvalidInput(f"{where} column '{name}' row {row}: expected {expected}, got {value!r}")


def _numeric(column: pd.Series, name: str, dtype: str, where: str) -> pd.Series:
    values = []
    for row, value in enumerate(column):
        if _is_missing(value):
            values.append(np.nan)
        elif isinstance(value, (bool, np.bool_)):
            raise _bad_value(where, name, row, value, f"a number ({dtype})")
        elif isinstance(value, (int, float, np.integer, np.floating)):
            values.append(value)
        elif isinstance(value, (str, bytes)):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            try:
                values.append(float(text))
            except ValueError:
                raise _bad_value(where, name, row, value, f"a number ({dtype})") from None
        else:
            raise _bad_value(where, name, row, value, f"a number ({dtype})")
    series = pd.Series(values, index=column.index, dtype=np.float64)
    if dtype == "int" and not series.isna().any() and bool((series == series.round()).all()):
        return series.astype(np.int64)
    return series


def _boolean(column: pd.Series, name: str, where: str) -> pd.Series:
    values = []
    for row, value in enumerate(column):
        if _is_missing(value):
            values.append(np.nan)
        elif isinstance(value, (bool, np.bool_)):
            values.append(bool(value))
        elif isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            values.append(bool(value))
        elif isinstance(value, (str, bytes)):
            text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else value).strip().lower()
            if text not in _TRUE_STRINGS:
                raise _bad_value(where, name, row, value, "true or false")
            values.append(_TRUE_STRINGS[text])
        else:
            raise _bad_value(where, name, row, value, "true or false")
    series = pd.Series(values, index=column.index, dtype=object)
    return series if series.isna().any() else series.astype(bool)


def _string(column: pd.Series, name: str, where: str) -> pd.Series:
    values = []
    for row, value in enumerate(column):
        if _is_missing(value):
            values.append(np.nan)
        elif isinstance(value, str):
            values.append(value)
        elif isinstance(value, bytes):
            values.append(value.decode("utf-8", "replace"))
        else:
            raise _bad_value(where, name, row, value, "a string (a category)")
    return pd.Series(values, index=column.index, dtype=object)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return f"{type(value).__name__} {value!r}"
