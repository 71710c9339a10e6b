"""Find and check the files of a kfp-tabular model directory, and choose the local model to serve.

A model directory holds exactly one serialized model (``*.joblib``, ``*.pkl`` or ``*.pickle``; the train
component writes ``model.joblib``) and, optionally, ``metadata.json`` describing its input. These helpers are
plain Python (no KServe, no scikit-learn) so that ``make serve`` and tests can use them from either
environment. :func:`find_latest_model` picks what ``make serve`` serves from ``make run``'s output directory:
the local production model, else the newest blessed run, never a failed or not-blessed one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from kfp_tabular.components.common.artifacts import sha256_file
from kfp_tabular.components.common.errors import DataError

#: File name endings KServe's sklearn runtime accepts as a model file; exactly one must be present.
MODEL_EXTENSIONS = (".joblib", ".pkl", ".pickle")
#: The metadata file written beside the model by the train component (docs/DESIGN.md).
METADATA_FILE = "metadata.json"
#: The dtypes metadata.json may give a feature, and the V2 datatype each one is served as.
FEATURE_DTYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES"}
TASKS = ("classification", "regression")

logger = logging.getLogger(__name__)


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


#: Where ``make run`` records the local production model, relative to its output directory.
PRODUCTION_RECORD = Path("production") / "current.json"
#: Where kfp.local puts each run's task outputs (``runs/<run>/<task>/<output>``), relative to the output directory.
RUNS_DIR = "runs"
#: The train task's model output and the evaluate task's blessing, relative to a run directory.
RUN_MODEL = Path("train") / "model"
RUN_BLESSING = Path("evaluate") / "blessing"


@dataclasses.dataclass(frozen=True)
class LocalModelChoice:
    """The model directory chosen below a local output directory, and why it was chosen.

    Attributes:
        model_dir: The directory to serve.
        reason: One sentence saying where it comes from (production record or blessed run) and why it won.
    """

    model_dir: Path
    reason: str


def _read_json_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """Return (the JSON object in ``path``, "") or (None, why it could not be read)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"is not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"is not a JSON object (got {type(value).__name__})"
    return value, ""


def _production_model(base: Path) -> tuple[LocalModelChoice | None, str]:
    """Return (the production model, "") or (None, why ``production/current.json`` is not used)."""
    record = base / PRODUCTION_RECORD
    if not record.is_file():
        return None, f"{record} does not exist"
    entry, problem = _read_json_object(record)
    if entry is None:
        return None, f"{record} {problem}"
    model_dir = entry.get("model_dir")
    if not isinstance(model_dir, str) or not model_dir:
        return None, f"{record} has no 'model_dir'"
    try:
        find_model_file(model_dir)
    except DataError as exc:
        return None, f"{record} names a model_dir that cannot be served: {exc}"
    run = entry.get("run") or "unknown run"
    promoted = f", promoted {entry['promoted_at']}" if entry.get("promoted_at") else ""
    reason = f"the local production model named by {record} (run {run}{promoted})"
    return LocalModelChoice(Path(model_dir), reason), ""


def _trained_models(runs: Path) -> list[tuple[Path, Path | None, str]]:
    """Return (model directory, its model file or None, why not) of every ``<run>/train/model`` below ``runs``.

    Hidden ``.*`` folders (the atomic writers' staging folders) are skipped.
    """
    found: list[tuple[Path, Path | None, str]] = []
    for dirpath, dirnames, _ in os.walk(runs):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        directory = Path(dirpath)
        if directory.name == RUN_MODEL.name and directory.parent.name == RUN_MODEL.parent.name:
            dirnames[:] = []
            try:
                found.append((directory, find_model_file(directory), ""))
            except DataError as exc:
                found.append((directory, None, str(exc)))
    return found


def _blessing_verdict(model_dir: Path, model_file: Path) -> str:
    """Return "" when the run of ``model_dir`` blessed this model, else why it does not count as blessed."""
    blessing_path = model_dir.parent.parent / RUN_BLESSING
    if not blessing_path.is_file():
        return "no evaluate/blessing (the run failed or stopped before evaluate)"
    blessing, problem = _read_json_object(blessing_path)
    if blessing is None:
        return f"evaluate/blessing {problem}"
    if blessing.get("blessed") is not True:
        return f"not blessed ({'; '.join(map(str, blessing.get('reasons') or [])) or 'blessed is not true'})"
    expected = blessing.get("model_sha256")
    if expected and sha256_file(model_file) != expected:
        return f"evaluate/blessing is for another model (sha256 {expected} differs from {model_file.name})"
    return ""


def select_local_model(root: str | os.PathLike = "local_outputs") -> LocalModelChoice:
    """Choose the model to serve from a local output directory, the way ``make serve`` does.

    1. The local production model: when ``<root>/production/current.json`` exists and its ``model_dir`` is a
       directory holding one model file, that directory (the model a blessed run promoted last).
    2. Otherwise the newest blessed run: of the ``<root>/runs/**/train/model`` directories (hidden ``.*``
       staging folders skipped) whose run's ``evaluate/blessing`` (``<run>/evaluate/blessing`` beside
       ``<run>/train/model``) says ``"blessed": true`` and, when it records ``model_sha256``, matches the model
       file, the one whose model file was modified last. Failed runs (no blessing) and runs that were not
       blessed are never served.

    Args:
        root: Folder a local pipeline run writes its outputs to (``./local_outputs`` for ``make run``).

    Returns:
        The chosen model directory and the reason it was chosen.

    Raises:
        DataError: ``root`` does not exist, or holds neither a usable production record nor a blessed run; the
            message says why each candidate was passed over, to run ``make run`` first, or to pass
            ``--model_dir``.
    """
    base = Path(root)
    advice = "run `make run` first, or pass --model_dir"
    if not base.is_dir():
        raise DataError(f"no blessed model under {base} (the directory does not exist): {advice}")
    production, not_production = _production_model(base)
    if production is not None:
        return production

    passed_over: list[tuple[int, str]] = []
    blessed: list[tuple[int, str, Path]] = []
    for model_dir, model_file, problem in _trained_models(base / RUNS_DIR):
        if model_file is None:
            passed_over.append((0, problem))
            continue
        mtime = model_file.stat().st_mtime_ns
        verdict = _blessing_verdict(model_dir, model_file)
        if verdict:
            passed_over.append((mtime, f"{model_dir}: {verdict}"))
        else:
            blessed.append((mtime, str(model_dir), model_dir))
    if blessed:
        newest_mtime, _, newest = max(blessed)
        newer = sum(1 for mtime, _ in passed_over if mtime > newest_mtime)
        ignored = f", {newer} newer run(s) ignored as failed or not blessed" if newer else ""
        reason = (
            f"the newest of {len(blessed)} blessed run(s) below {base / RUNS_DIR}{ignored} "
            f"(no production model: {not_production})"
        )
        return LocalModelChoice(newest, reason)
    problems = [text for _, text in passed_over] or [f"{base / RUNS_DIR} holds no <run>/train/model with a model file"]
    details = [not_production, *problems]
    raise DataError(f"no blessed model under {base}: {advice} ({'; '.join(details)})")


def find_latest_model(root: str | os.PathLike = "local_outputs") -> Path:
    """Return the directory of the model ``make serve`` serves from a local output directory.

    The local production model (``<root>/production/current.json``) when there is one, else the newest blessed
    run's ``train/model``; see :func:`select_local_model`, which also says why. The choice is logged at INFO.

    Args:
        root: Folder a local pipeline run writes its outputs to (``./local_outputs`` for ``make run``).

    Returns:
        The model directory to serve.

    Raises:
        DataError: No production model and no blessed run below ``root``; the message says to run ``make run``
            first or to pass ``--model_dir``.
    """
    choice = select_local_model(root)
    logger.info("serving %s: %s", choice.model_dir, choice.reason)
    return choice.model_dir
