"""Find and check the files of a kfp-tabular model directory, without importing KServe or scikit-learn.

A model directory holds exactly one serialized model (``*.joblib``, ``*.pkl`` or ``*.pickle``; the train
component writes ``model.joblib``) and, optionally, ``metadata.json`` describing its input. These helpers are
plain Python so that ``make serve`` and tests can use them from either environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kfp_tabular.components.common.errors import DataError

#: File name endings KServe's sklearn runtime accepts as a model file; exactly one must be present.
MODEL_EXTENSIONS = (".joblib", ".pkl", ".pickle")
#: The metadata file written beside the model by the train component (docs/DESIGN.md).
METADATA_FILE = "metadata.json"
#: The dtypes metadata.json may give a feature, and the V2 datatype each one is served as.
FEATURE_DTYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES"}
TASKS = ("classification", "regression")


def find_model_file(model_dir: str | os.PathLike) -> Path:
    """Return the one model file in ``model_dir``.

    Args:
        model_dir: Directory that should hold exactly one ``*.joblib``/``*.pkl``/``*.pickle`` file.

    Returns:
        The path of that file.

    Raises:
        DataError: The directory does not exist, or holds no model file or more than one; the message
            names the directory and lists what it found.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise DataError(f"{directory}: model directory not found (expected a directory holding model.joblib)")
    entries = sorted(p.name for p in directory.iterdir())
    found = [directory / name for name in entries if name.endswith(MODEL_EXTENSIONS) and (directory / name).is_file()]
    if len(found) == 1:
        return found[0]
    expected = "exactly one " + "/".join(f"*{ext}" for ext in MODEL_EXTENSIONS) + " file"
    if not found:
        listing = ", ".join(entries) if entries else "nothing"
        raise DataError(f"{directory}: expected {expected}, found none (the directory holds: {listing})")
    raise DataError(f"{directory}: expected {expected}, found {len(found)}: {', '.join(p.name for p in found)}")


def read_metadata(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Read and check ``metadata.json`` in ``model_dir``; return None when the file is absent.

    Checked fields: ``feature_order`` (required, a non-empty list of unique names), ``features`` (optional;
    when given, one entry with a known ``dtype`` for every name in ``feature_order``), ``task`` (optional,
    ``classification`` or ``regression``) and ``classes`` (optional, a list or null).

    Args:
        model_dir: The model directory.

    Returns:
        The parsed metadata, or None when the directory has no metadata.json.

    Raises:
        DataError: The file is not valid JSON or a field has the wrong shape; the message names the file and
            the field.
    """
    path = Path(model_dir) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: expected model metadata in JSON, got invalid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(meta).__name__}")

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

    task = meta.get("task")
    if task is not None and task not in TASKS:
        raise DataError(f"{path}: field 'task': expected one of {', '.join(TASKS)}, got {task!r}")
    classes = meta.get("classes")
    if classes is not None and not isinstance(classes, list):
        raise DataError(f"{path}: field 'classes': expected a list or null, got {type(classes).__name__}")
    return meta


def find_latest_model(root: str | os.PathLike = "local_outputs") -> Path:
    """Return the model directory under ``root`` whose ``model.joblib`` was modified last.

    ``root`` is searched recursively; directories whose name starts with a dot are skipped (the atomic
    writers stage unfinished artifacts in hidden ``.<name>.*.tmp`` folders).

    Args:
        root: Folder a local pipeline run writes its outputs to (``./local_outputs`` for ``make run``).

    Returns:
        The directory that holds the newest ``model.joblib``.

    Raises:
        DataError: ``root`` does not exist or holds no ``model.joblib``; the message says to run
            ``make run`` first.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{base}: no such directory, so there is no trained model to serve: run `make run` first")
    candidates = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if "model.joblib" in filenames:
            candidates.append(Path(dirpath) / "model.joblib")
    if not candidates:
        raise DataError(f"{base}: no model.joblib found in it or below it: run `make run` first to train a model")
    newest = max(candidates, key=lambda p: (p.stat().st_mtime_ns, str(p)))
    return newest.parent
