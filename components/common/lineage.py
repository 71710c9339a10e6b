"""The lineage record, written once: what a deployed model is, where it came from, what it was judged on.

The deploy step writes one record per deployed revision (``write``); the monitor reads it (``read``) to find the
deployed model's training statistics, schema, blessing metrics and evaluation prediction distribution, so none of
them is passed by hand; ``kfp-tabular lineage`` prints it. JSON object, key-sorted, written atomically::

    {
      "model_sha256": "<64 hex>",            sha256 of model.joblib (common.artifacts.sha256_file)
      "model_uri": "...",                     the model directory the run produced (model.joblib + metadata.json)
      "storage_uri": "...",                   where the InferenceService loads it from ("" when not deployed)
      "task": "classification"|"regression",
      "label_column": "...",
      "classes": [..] | null,                 the model's classes, in predict_proba's column order
      "positive_class": .. | null,            the class binary metrics measured (the blessing's)
      "training_data": {"uri": "...", "hash": "<sha256>"|null},   the train split the model was fit on
      "source_data": {"uri": "...", "hash": "<sha256>"|null},     the source the split came from (ingest)
      "statistics_uri": "...",                TFDV train statistics (binary DatasetFeatureStatisticsList)
      "schema_uri": "...",                    TFDV schema (pbtxt)
      "blessing": {...},                      a copy of the blessing JSON (common.blessing)
      "metrics": {...},                       the model's eval metrics (the blessing's)
      "baseline_model": {"sha256": "...", "uri": "..."} | null,
      "prediction_distribution": {...} | null, the evaluation's prediction histogram
                                              (evaluation.evaluate.distribution: kind, what, edges, counts, rows)
      "run": {"id": "...", "name": "...", "pipeline": "..."},
      "created_at": "<ISO 8601 UTC>"
    }

``build`` makes the record from a model's ``metadata.json`` and blessing; ``read`` checks every field and raises a
DataError naming the file and the field. ``locate`` turns a directory (local or fsspec URL) into
``<dir>/lineage.json``.
Standard library only (fsspec for URLs, imported inside).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
from typing import Any

from kfp_tabular.components.common import artifacts
from kfp_tabular.components.common.blessing import check_distribution
from kfp_tabular.components.common.errors import DataError

#: The file name of a lineage record stored beside a model (``<model dir>/lineage.json``).
FILE_NAME = "lineage.json"
TASKS = ("classification", "regression")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class LineageRecord:
    """One deployed model's lineage (the JSON fields are the attribute names; see the module docstring).

    Attributes:
        model_sha256: sha256 of the model file.
        model_uri: The model directory the training run wrote.
        storage_uri: Where the InferenceService loads the model from ("" when not deployed).
        task: ``classification`` or ``regression``.
        label_column: The label the model predicts.
        classes: The model's classes in ``predict_proba`` column order (None for a regressor).
        positive_class: The class binary metrics measured (None otherwise).
        training_data: ``{"uri", "hash"}`` of the train split the model was fit on.
        source_data: ``{"uri", "hash"}`` of the source data the split came from (values may be None).
        statistics_uri: TFDV statistics of the train split (binary proto).
        schema_uri: TFDV schema (pbtxt) the model was trained with.
        blessing: A copy of the blessing JSON.
        metrics: The model's metrics on the eval data.
        baseline_model: ``{"sha256", "uri"}`` of the model it was compared with, or None.
        prediction_distribution: The evaluation's prediction histogram (``evaluate.distribution``), or None.
        run: ``{"id", "name", "pipeline"}`` of the run that produced the model.
        created_at: When the record was written (ISO 8601, UTC).
    """

    model_sha256: str
    model_uri: str
    task: str
    label_column: str
    statistics_uri: str
    schema_uri: str
    training_data: dict[str, Any]
    source_data: dict[str, Any]
    blessing: dict[str, Any]
    metrics: dict[str, Any]
    run: dict[str, Any]
    storage_uri: str = ""
    classes: list | None = None
    positive_class: Any = None
    baseline_model: dict[str, Any] | None = None
    prediction_distribution: dict[str, Any] | None = None
    created_at: str = ""

    def __post_init__(self) -> None:
        """Check every field (a DataError names the field; ``read`` adds the file)."""
        problem = _problem(dataclasses.asdict(self))
        if problem:
            raise DataError(f"lineage record: {problem}")
        if not self.created_at:
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            object.__setattr__(self, "created_at", now)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return dataclasses.asdict(self)


def _text(data: dict, name: str, allow_empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or (not value and not allow_empty):
        return f"field {name!r} must be a {'string' if allow_empty else 'non-empty string'}, got {value!r}"
    return ""


def _pair(data: dict, name: str, keys: tuple[str, ...], required: tuple[str, ...], nullable: bool = False) -> str:
    value = data.get(name)
    if value is None and nullable:
        return ""
    if not isinstance(value, dict):
        return f"field {name!r} must be an object with {', '.join(keys)}, got {value!r}"
    for key in keys:
        if key not in value:
            return f"field '{name}.{key}' is missing"
        item = value[key]
        if item is not None and not isinstance(item, str):
            return f"field '{name}.{key}' must be a string or null, got {item!r}"
        if key in required and not item:
            return f"field '{name}.{key}' must be a non-empty string, got {item!r}"
    return ""


def _problem(data: dict) -> str:
    """Return the first problem of a record's fields ("" when there is none)."""
    sha = data.get("model_sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        return f"field 'model_sha256' must be the 64-hex sha256 of the model file, got {sha!r}"
    for name in ("model_uri", "label_column", "statistics_uri", "schema_uri"):
        problem = _text(data, name)
        if problem:
            return problem
    for name in ("storage_uri", "created_at"):
        if data.get(name) is not None:
            problem = _text(data, name, allow_empty=True)
            if problem:
                return problem
    if data.get("task") not in TASKS:
        return f"field 'task' must be one of {', '.join(TASKS)}, got {data.get('task')!r}"
    classes = data.get("classes")
    if data["task"] == "classification" and (not isinstance(classes, list) or len(classes) < 2):
        return f"field 'classes' must list the classifier's classes (at least 2), got {classes!r}"
    for problem in (
        _pair(data, "training_data", ("uri", "hash"), ("uri",)),
        _pair(data, "source_data", ("uri", "hash"), ()),
        _pair(data, "baseline_model", ("sha256", "uri"), ("uri",), nullable=True),
        _pair(data, "run", ("id", "name", "pipeline"), ()),
    ):
        if problem:
            return problem
    for name in ("blessing", "metrics"):
        if not isinstance(data.get(name), dict):
            return f"field {name!r} must be an object, got {data.get(name)!r}"
    distribution = data.get("prediction_distribution")
    if distribution is not None:
        problem = check_distribution(distribution)
        if problem:
            return f"field 'prediction_distribution': {problem}"
    return ""


def build(
    metadata: dict[str, Any],
    blessing: Any,
    *,
    model_uri: str,
    statistics_uri: str,
    schema_uri: str,
    training_data_uri: str,
    run: dict[str, Any],
    storage_uri: str = "",
    baseline_sha256: str | None = None,
) -> LineageRecord:
    """Build the record of a model from its ``metadata.json`` and its blessing (the deploy step's one call).

    Args:
        metadata: The model directory's ``metadata.json`` (``common.model_dir.read_metadata``): sha256, task, label,
            classes, training data hash, source data URI and hash.
        blessing: The model's ``common.blessing.Blessing``: a copy, its metrics, positive class, prediction
            distribution and baseline model directory.
        model_uri: The model directory the run produced.
        statistics_uri: Validate's train statistics.
        schema_uri: Validate's schema.
        training_data_uri: The train split the model was fit on (its hash is ``metadata["training_data_hash"]``).
        run: ``{"id", "name", "pipeline"}`` of the run.
        storage_uri: Where the InferenceService loads the model from.
        baseline_sha256: sha256 of the baseline model file, when known.

    Raises:
        DataError: The blessing is about another model, or a field is malformed.
    """
    sha = metadata.get("model_sha256")
    if blessing.model_sha256 != sha:
        raise DataError(f"lineage record: {blessing.mismatch(str(sha))}")
    baseline = None
    if blessing.baseline_model_dir:
        baseline = {"sha256": baseline_sha256, "uri": blessing.baseline_model_dir}
    return LineageRecord(
        model_sha256=sha,
        model_uri=model_uri,
        storage_uri=storage_uri,
        task=metadata.get("task"),
        label_column=metadata.get("label_column"),
        classes=metadata.get("classes"),
        positive_class=blessing.positive_class,
        training_data={"uri": training_data_uri, "hash": metadata.get("training_data_hash")},
        source_data={"uri": metadata.get("source_data_uri"), "hash": metadata.get("source_data_hash")},
        statistics_uri=statistics_uri,
        schema_uri=schema_uri,
        blessing=blessing.as_dict(),
        metrics=dict(blessing.metrics),
        baseline_model=baseline,
        prediction_distribution=blessing.prediction_distribution,
        run={key: run.get(key) for key in ("id", "name", "pipeline")},
    )


def write(path: str | os.PathLike, record: LineageRecord) -> None:
    """Write the record as JSON atomically (a local path)."""
    artifacts.write_json(path, record.as_dict())


def locate(uri: str) -> str:
    """Return the record's location: ``uri`` itself, or ``<uri>/lineage.json`` when ``uri`` is a directory."""
    if "://" not in uri:
        return os.path.join(uri, FILE_NAME) if os.path.isdir(uri) else uri
    import fsspec

    from kfp_tabular.components.common.model_dir import normalize_uri

    try:
        fs, path = fsspec.core.url_to_fs(normalize_uri(uri))
        return uri.rstrip("/") + "/" + FILE_NAME if fs.isdir(path) else uri
    except (ImportError, ValueError, OSError) as exc:
        raise DataError(f"{uri}: lineage record cannot be opened ({type(exc).__name__}: {exc})") from exc


def read(uri: str | os.PathLike) -> LineageRecord:
    """Read and check a lineage record from a local path or fsspec URL (or a directory holding ``lineage.json``).

    Raises:
        DataError: Naming the file and the field when the file is missing, not JSON, or a field is malformed.
    """
    where = locate(str(uri))
    if "://" in where:
        import fsspec

        from kfp_tabular.components.common.model_dir import normalize_uri

        try:
            with fsspec.open(normalize_uri(where), "rb") as handle:
                raw = handle.read()
        except FileNotFoundError as exc:
            raise DataError(f"{where}: lineage record not found") from exc
        except (OSError, ValueError, ImportError) as exc:
            raise DataError(f"{where}: lineage record cannot be read ({type(exc).__name__}: {exc})") from exc
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{where}: expected a lineage record in JSON, got invalid JSON ({exc})") from exc
    else:
        data = artifacts.read_json(where, what="lineage record")
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a lineage record JSON object, got {type(data).__name__}")
    problem = _problem(data)
    if problem:
        raise DataError(f"{where}: {problem}")
    known = {f.name for f in dataclasses.fields(LineageRecord)}
    return LineageRecord(**{k: v for k, v in data.items() if k in known})
