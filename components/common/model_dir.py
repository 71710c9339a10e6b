"""The model directory contract, written once: what train writes and evaluate, deploy and the server read.

A model directory holds exactly one serialized model (``model.joblib``; KServe's stock sklearn runtime loads
the one ``*.joblib``/``*.pkl``/``*.pickle`` file it finds, and refuses several) and ``metadata.json``
describing its input (docs/DESIGN.md). ``metadata.json["model_sha256"]`` is the sha256 of the model file,
computed by :func:`kfp_tabular.components.common.artifacts.sha256_file`, the one hash function of the project.

Plain Python, no scikit-learn or KServe: both environments import it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kfp_tabular.components.common.artifacts import sha256_file
from kfp_tabular.components.common.errors import DataError

#: The model file the train component writes.
MODEL_FILE = "model.joblib"
#: The metadata file written beside it.
METADATA_FILE = "metadata.json"
#: Both files every model directory written here holds.
REQUIRED_FILES = (MODEL_FILE, METADATA_FILE)
#: File name endings KServe's sklearn runtime takes for a model file; exactly one may be present.
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
#: The dtypes metadata.json may give a feature, and the V2 datatype each one is served as.
FEATURE_DTYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES"}
TASKS = ("classification", "regression")

#: KFP's default artifact store names MinIO objects ``minio://bucket/key``; MinIO speaks S3.
MINIO_SCHEME = "minio://"


def normalize_uri(uri: str) -> str:
    """Return ``uri`` with KFP's ``minio://`` read as ``s3://`` (the endpoint comes from the environment)."""
    if uri.startswith(MINIO_SCHEME):
        return "s3://" + uri[len(MINIO_SCHEME) :]
    return uri


def find_model_file(model_dir: str | os.PathLike) -> Path:
    """Return the one model file in ``model_dir`` (the one-model-file rule).

    Raises:
        DataError: The directory does not exist, or holds no model file or more than one; the message names
            the directory and lists what it found.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise DataError(f"{directory}: model directory not found (expected a directory holding {MODEL_FILE})")
    entries = sorted(p.name for p in directory.iterdir())
    found = [directory / name for name in entries if name.endswith(MODEL_SUFFIXES) and (directory / name).is_file()]
    if len(found) == 1:
        return found[0]
    expected = "exactly one " + "/".join(f"*{ext}" for ext in MODEL_SUFFIXES) + " file"
    if not found:
        listing = ", ".join(entries) if entries else "nothing"
        raise DataError(f"{directory}: expected {expected}, found none (the directory holds: {listing})")
    raise DataError(f"{directory}: expected {expected}, found {len(found)}: {', '.join(p.name for p in found)}")


def _read_object(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: model metadata cannot be read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: expected model metadata in JSON, got invalid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _check_metadata(path: Path, meta: dict[str, Any], required: tuple[str, ...]) -> None:
    for key in required:
        if key not in meta:
            raise DataError(f"{path}: missing the field {key!r}")
    order = meta.get("feature_order")
    if not isinstance(order, list) or not order or not all(isinstance(name, str) and name for name in order):
        raise DataError(f"{path}: field 'feature_order': expected a non-empty list of column names, got {order!r}")
    duplicates = sorted({name for name in order if order.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: field 'feature_order': names appear more than once: {', '.join(duplicates)}")
    features = meta.get("features")
    if features is not None:
        if not isinstance(features, list) or not all(isinstance(f, dict) and "name" in f for f in features):
            raise DataError(f"{path}: field 'features': expected a list of objects with 'name' and 'dtype'")
        by_name = {f["name"]: f for f in features}
        missing = [name for name in order if name not in by_name]
        if missing:
            raise DataError(f"{path}: field 'features': no entry for feature_order column(s) {', '.join(missing)}")
        for name in order:
            dtype = by_name[name].get("dtype")
            if dtype not in FEATURE_DTYPES:
                raise DataError(
                    f"{path}: field 'features' column '{name}': expected dtype one of "
                    f"{', '.join(FEATURE_DTYPES)}, got {dtype!r}"
                )
            _check_feature_schema(path, name, by_name[name])
    task = meta.get("task")
    if task is not None and task not in TASKS:
        raise DataError(f"{path}: field 'task': expected one of {', '.join(TASKS)}, got {task!r}")
    classes = meta.get("classes")
    if classes is not None and not isinstance(classes, list):
        raise DataError(f"{path}: field 'classes': expected a list or null, got {type(classes).__name__}")


def _check_feature_schema(path: Path, name: str, entry: dict[str, Any]) -> None:
    """Check the optional schema fields train records from TFDV: domain, min/max, required, nullable."""
    where = f"{path}: field 'features' column '{name}'"
    domain = entry.get("domain")
    if domain is not None and (not isinstance(domain, list) or not all(_is_plain(v) for v in domain)):
        raise DataError(f"{where}: 'domain': expected a list of category values, got {domain!r}")
    bounds = {}
    for key in ("min", "max"):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise DataError(f"{where}: {key!r}: expected a number or null, got {value!r}")
        bounds[key] = value
    if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] > bounds["max"]:
        raise DataError(f"{where}: 'min' {bounds['min']} is greater than 'max' {bounds['max']}")
    for key in ("required", "nullable"):
        if key in entry and not isinstance(entry[key], bool):
            raise DataError(f"{where}: {key!r}: expected true or false, got {entry[key]!r}")


def _is_plain(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def read_metadata(model_dir: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Read and check ``metadata.json`` in ``model_dir``; None when the file is absent and nothing is required.

    Checked: ``feature_order`` (a non-empty list of unique names), ``features`` (optional; when given, an entry
    with a known ``dtype`` for every name in ``feature_order``, and, when recorded, ``domain`` a list of values,
    ``min``/``max`` numbers with min <= max, ``required`` and ``nullable`` bools), ``task`` (optional, classification or
    regression), ``classes`` (optional, a list or null), and every field named in ``required``.

    Raises:
        DataError: The file is missing while fields are required, not JSON, or a field has the wrong shape;
            the message names the file and the field.
    """
    path = Path(model_dir) / METADATA_FILE
    if not path.is_file():
        if required:
            raise DataError(f"{model_dir}: the model directory has no {METADATA_FILE}")
        return None
    meta = _read_object(path)
    _check_metadata(path, meta, required)
    return meta


def verify_model_file(model_dir: str | os.PathLike, metadata: dict[str, Any] | None) -> str:
    """Hash the model file once, check it against ``metadata["model_sha256"]`` when recorded, return the hash.

    Raises:
        DataError: The model file is not the one the metadata was written for.
    """
    model_file = find_model_file(model_dir)
    actual = sha256_file(model_file)
    _check_recorded(model_file, (metadata or {}).get("model_sha256"), actual)
    return actual


def _check_recorded(model_file: Path, expected: Any, actual: str) -> None:
    if expected and expected != actual:
        raise DataError(
            f"{model_file}: sha256 {actual} does not match model_sha256 {expected} recorded in {METADATA_FILE} "
            "(the model file was changed or replaced after training)"
        )


def manifest(model_dir: str | os.PathLike) -> dict[str, str]:
    """Check the whole contract and return relative path -> sha256 of every file, each file hashed once.

    The directory must hold ``model.joblib`` as its only model file and ``metadata.json``, whose
    ``model_sha256`` (when recorded) matches the model file.

    Raises:
        DataError: Naming the directory or file and what was expected.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise DataError(f"{directory}: expected the Model artifact directory ({MODEL_FILE} + {METADATA_FILE})")
    files = {p.relative_to(directory).as_posix(): sha256_file(p) for p in sorted(directory.rglob("*")) if p.is_file()}
    for required in REQUIRED_FILES:
        if required not in files:
            raise DataError(f"{directory / required}: missing; a model directory holds {' and '.join(REQUIRED_FILES)}")
    model_files = [f for f in files if f.endswith(MODEL_SUFFIXES)]
    if model_files != [MODEL_FILE]:
        raise DataError(
            f"{directory}: expected exactly one model file ({MODEL_FILE}), found {model_files}; KServe's sklearn "
            "runtime refuses a directory with several"
        )
    _check_recorded(
        directory / MODEL_FILE, _read_object(directory / METADATA_FILE).get("model_sha256"), files[MODEL_FILE]
    )
    return files


def upload_order(files: dict[str, str] | list[str]) -> list[str]:
    """Model file first, ``metadata.json`` last: a reader that sees metadata.json sees a complete model."""
    rest = [f for f in files if f not in REQUIRED_FILES]
    return [MODEL_FILE, *rest, METADATA_FILE]
