"""The KServe model: one ``model.joblib`` plus ``metadata.json``, checked against its schema, served over V1 and V2.

Responses:

- V1 (``/v1/models/<name>:predict``): ``{"predictions": [label, ...]}``, like KServe's sklearn runtime.
  With ``PREDICT_PROBA=true`` (or ``--predict_proba true``) a classifier answers
  ``{"predictions": [[p_class0, p_class1, ...], ...], "classes": [...], "labels": [...]}``.
- V2 (``/v2/models/<name>/infer``): output ``predict`` (shape ``[n]``) and, for classifiers, ``predict_proba``
  (shape ``[n, n_classes]``, FP64, columns in ``classes`` order). ``outputs`` may ask for a subset.
- Flagged schema violations (see ``schema``) are listed in the response's parameters: V1
  ``"parameters": {"schema_violations": n, "schema_violation_details": [...]}``; V2 the same keys, the details
  as a JSON string (V2 parameters are scalars).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import joblib
import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.utils.numpy_codec import from_np_dtype
from kserve.utils.utils import generate_uuid, strtobool

from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.common.model_dir import FEATURE_DTYPES, find_model_file, read_metadata, verify_model_file
from kfp_tabular.components.deployment.model_server import fastpath, metrics
from kfp_tabular.components.deployment.model_server.errors import RequestError, SchemaRejected
from kfp_tabular.components.deployment.model_server.payload import Table, parse_v1, parse_v2
from kfp_tabular.components.deployment.model_server.schema import FeatureSpec, Schema, parse_policy

__all__ = ["ENV_PREDICT_PROBA", "TabularModel"]

#: Environment variable (KServe's sklearn runtime uses the same name): "true" makes V1 return probabilities.
ENV_PREDICT_PROBA = "PREDICT_PROBA"
#: Estimators whose predict() is classes_[argmax(predict_proba())]: one call gives both. (LogisticRegression's
#: probabilities are a monotone function of its decision function, whose argmax predict() takes; ties go to the
#: first class either way.)
_LABELS_FROM_PROBA = {
    "LogisticRegression",
    "DecisionTreeClassifier",
    "HistGradientBoostingClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "CompiledTrees",
}

logger = logging.getLogger(__name__)


class TabularModel(Model):
    """A scikit-learn model directory served through KServe with named, typed, schema-checked tabular input.

    Args:
        name: The name the model is served under (``/v1/models/<name>``, ``/v2/models/<name>``).
        model_dir: Local directory holding exactly one model file and, optionally, ``metadata.json``.
        predict_proba: For classifiers, make V1 ``predictions`` the probability rows instead of the labels.
            None reads the ``PREDICT_PROBA`` environment variable (default false).
        schema_policy: ``reject``, ``flag`` or ``kind=action,...`` (see ``schema.parse_policy``); None: the
            defaults (reject type errors and non-finite numbers, flag the rest).
        model_threads: Size of the BLAS/OpenMP thread pools while serving (None leaves them as they are).
            One thread serves single rows fastest: each predict otherwise fans out to threads that fight
            the event loop for the cores.
        fast_path: Serve through the numpy path derived from the pipeline when it applies (see ``fastpath``).
    """

    def __init__(
        self,
        name: str,
        model_dir: Union[str, os.PathLike],
        predict_proba: Optional[bool] = None,
        schema_policy: Optional[str] = None,
        model_threads: Optional[int] = 1,
        fast_path: bool = True,
    ):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        if predict_proba is None:
            predict_proba = strtobool(os.environ.get(ENV_PREDICT_PROBA, "false"))
        self.predict_proba = bool(predict_proba)
        self.policy = parse_policy(schema_policy)
        self.model_threads = model_threads
        self.use_fast_path = fast_path
        self.ready = False
        self._model = None
        self.metadata: Optional[Dict[str, Any]] = None
        self.feature_order: Optional[List[str]] = None
        self.feature_dtypes: Dict[str, str] = {}
        self.classes: Optional[List[Any]] = None
        self.schema = Schema([], self.policy)
        self.optional: frozenset = frozenset()
        self.sha256 = ""
        self.fast: Optional[fastpath.FastPath] = None
        self._threads_pid: Optional[int] = None

    # ------------------------------------------------------------------ loading

    def load(self) -> bool:
        """Load the one model file and ``metadata.json`` (if present) from ``model_dir``.

        Raises:
            DataError: No model file or more than one, a file that does not unpickle, invalid metadata, or
                metadata that disagrees with the model (its classes or its sha256). Each message names the file.
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
        self.sha256 = verify_model_file(self.model_dir, meta)

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
        specs: List[FeatureSpec] = []
        if meta is not None:
            self._warn_on_version_skew(meta.get("sklearn_version"))
            order = list(meta["feature_order"])
            specs = [FeatureSpec.from_metadata(f) for f in meta.get("features") or [] if f["name"] in order]
        else:
            names = getattr(model, "feature_names_in_", None)
            order = [str(n) for n in names] if names is not None else None

        self._model = model
        self.metadata = meta
        self.feature_order = order
        self.feature_dtypes = {spec.name: spec.dtype for spec in specs if spec.dtype}
        self.schema = Schema(specs, self.policy)
        self.optional = frozenset(spec.name for spec in specs if not spec.required)
        self.classes = np.asarray(classes).tolist() if classes is not None else None
        if self.predict_proba and (self.classes is None or not hasattr(model, "predict_proba")):
            logger.warning("model %s has no predict_proba: V1 predictions will be predicted values", self.name)
        self.fast = self._derive_fast_path() if self.use_fast_path and specs else None
        self._limit_threads()
        metrics.register_model(self.name, self.sha256)
        logger.info(
            "loaded %s (%s, %s features, sha256 %s, %s path, schema policy %s) from %s",
            self.name,
            task,
            len(order) if order else "unknown",
            self.sha256[:12],
            "fast" if self.fast else "pipeline",
            ",".join(f"{k}={v}" for k, v in self.policy.items()),
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

    def _derive_fast_path(self) -> Optional[fastpath.FastPath]:
        """Return the fast path, if the pipeline has a known shape and it predicts what the pipeline does on probes."""
        try:
            fast = fastpath.derive(self._model, self.feature_dtypes)
        except fastpath.Unsupported as exc:
            logger.info("model %s served through its pipeline: %s", self.name, exc)
            return None
        probes = fastpath.probe_columns(self.schema, self.feature_order, fast)
        rows = len(next(iter(probes.values())))
        expected = self._run_pipeline(probes, rows, want_proba=True)
        got = self._run_fast(fast, probes, rows, want_proba=True)
        if not fastpath.same_predictions(expected, got):
            logger.warning("model %s: the derived fast path disagrees with the pipeline on probe rows", self.name)
            return None
        return fast

    def _limit_threads(self) -> None:
        """Size the BLAS/OpenMP pools for serving (again in each worker process: limits do not survive a spawn)."""
        if self.model_threads is None or self._threads_pid == os.getpid():
            return
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=self.model_threads)
        self._threads_pid = os.getpid()

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

        Raises:
            RequestError: The request is malformed or breaks the schema under a reject policy (HTTP 400);
                the message names each field or column.
            InferenceError: The model failed on well-formed input (HTTP 500).
        """
        if not self.ready:
            raise InferenceError(f"model {self.name} is not loaded")
        self._limit_threads()
        if type(payload).__name__ == "ModelInferRequest":  # gRPC, when the server runs with --enable_grpc
            payload = InferRequest.from_grpc(payload)
        v2 = isinstance(payload, InferRequest)
        table = (
            parse_v2(payload, self.feature_order, self.optional)
            if v2
            else parse_v1(payload, self.feature_order, self.optional)
        )
        flagged: list = []
        if isinstance(table, Table):
            try:
                checked = self.schema.check(table.columns, table.rows, table.where, table.datatypes)
            except SchemaRejected as exc:
                metrics.observe_violations(self.name, ((v["field"], v["kind"]) for v in exc.violations), "reject")
                raise
            flagged = checked.flagged
            if flagged:
                metrics.observe_violations(self.name, ((v.field, v.kind) for v in flagged), "flag")
            columns, rows = checked.columns, checked.rows
        else:
            columns, rows = table, len(table)

        # A classifier's probabilities are always computed: the predicted-score histogram (metrics.SCORES) is what a
        # canary's prediction drift is judged on, whatever V1 answers with (labels unless predict_proba).
        want_proba = self.classes is not None and hasattr(self._model, "predict_proba")
        try:
            if isinstance(columns, np.ndarray):
                labels, proba = self._predict_array(columns, want_proba)
            elif self.fast is not None:
                labels, proba = self._run_fast(self.fast, columns, rows, want_proba)
            else:
                labels, proba = self._run_pipeline(columns, rows, want_proba)
        except Exception as exc:
            raise InferenceError(f"model {self.name} failed to predict: {type(exc).__name__}: {exc}") from exc
        self._observe(labels, proba)
        return self._response(payload, labels, proba, flagged)

    def _estimator(self) -> Any:
        steps = getattr(self._model, "steps", None)
        return steps[-1][1] if steps else self._model

    def _predict_array(self, x: np.ndarray, want_proba: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        if not want_proba:
            return np.asarray(self._model.predict(x)), None
        proba = np.asarray(self._model.predict_proba(x), dtype=np.float64)
        if type(self._estimator()).__name__ in _LABELS_FROM_PROBA and proba.ndim == 2:
            return np.asarray(self._estimator().classes_).take(np.argmax(proba, axis=1)), proba
        return np.asarray(self._model.predict(x)), proba

    def _run_fast(self, fast: fastpath.FastPath, columns, rows: int, want_proba: bool):
        x = fast.matrix(columns, rows)
        estimator = fast.estimator
        if want_proba:
            proba = np.asarray(estimator.predict_proba(x), dtype=np.float64)
            if type(estimator).__name__ in _LABELS_FROM_PROBA and proba.ndim == 2:
                return np.asarray(estimator.classes_).take(np.argmax(proba, axis=1)), proba
            return np.asarray(estimator.predict(x)), proba
        return np.asarray(estimator.predict(x)), None

    def _run_pipeline(self, columns, rows: int, want_proba: bool):
        return self._predict_array(self._frame(columns, rows), want_proba)

    def _frame(self, columns: Dict[str, np.ndarray], rows: int) -> pd.DataFrame:
        """Build the checked columns as the DataFrame the pipeline was trained on (ints as int64, bools as bool)."""
        data = {}
        for name, values in columns.items():
            dtype = self.feature_dtypes.get(name)
            series = pd.Series(values, dtype=values.dtype if values.dtype.kind == "f" else object)
            if dtype == "int" and not series.isna().any():
                series = series.astype(np.int64)
            elif dtype == "bool":
                series = series.astype(bool) if not series.isna().any() else series.map(_nan_or_bool).astype(object)
            elif dtype == "string":
                series = series.where(series.notna(), np.nan)
            elif dtype is None:
                series = series.infer_objects()
            data[name] = series
        return pd.DataFrame(data, columns=list(columns))

    def _observe(self, labels: np.ndarray, proba: Optional[np.ndarray]) -> None:
        if proba is not None and proba.ndim == 2 and proba.shape[1] >= 2:
            scores = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
            metrics.observe_scores(self.name, scores.tolist())
        elif self.classes is None and labels.dtype.kind in "fiu":
            metrics.observe_scores(self.name, labels.astype(np.float64).tolist(), regression=True)

    def _response(self, payload, labels: np.ndarray, proba: Optional[np.ndarray], flagged: list):
        details = [dict(v.to_json(), action="flag") for v in flagged]
        if isinstance(payload, dict):
            if proba is None or not self.predict_proba:
                body: Dict[str, Any] = {"predictions": labels.tolist()}
            else:
                body = {"predictions": proba.tolist(), "classes": list(self.classes), "labels": labels.tolist()}
            if details:
                body["parameters"] = {"schema_violations": len(details), "schema_violation_details": details}
            return body
        parameters = None
        if details:
            parameters = {"schema_violations": len(details), "schema_violation_details": json.dumps(details)}
        return self._v2_response(payload, labels, proba, parameters)

    def _v2_response(self, request: InferRequest, labels, proba, parameters) -> InferResponse:
        labels = _label_array(labels) if self.classes is not None else labels.astype(np.float64)
        arrays = [("predict", labels)] + ([("predict_proba", proba)] if proba is not None else [])
        names = {name for name, _ in arrays}
        for requested in request.request_outputs or []:
            if requested.name not in names:
                raise RequestError(
                    f"requested output '{requested.name}' is not an output of model {self.name} "
                    f"(expected one of {', '.join(sorted(names))})",
                    field=f"output '{requested.name}'",
                    expected=f"one of {', '.join(sorted(names))}",
                )
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
            parameters=parameters,
        )


def _nan_or_bool(value: Any) -> Any:
    return np.nan if value != value else bool(value)


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
