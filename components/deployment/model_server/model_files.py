"""Choose the local model to serve: the one ``make serve`` serves from ``make run``'s output directory.

:func:`find_latest_model` picks the local production model, else the newest blessed run, never a failed or
not-blessed one. The model directory (the one-model-file rule, ``metadata.json``) and the blessing are the
contracts of :mod:`kfp_tabular.components.common.model_dir` and :mod:`kfp_tabular.components.common.blessing`.
Plain Python (no KServe, no scikit-learn): ``make serve`` and tests use it from either environment.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from kfp_tabular.components.common import blessing as blessings
from kfp_tabular.components.common.artifacts import sha256_file
from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.common.model_dir import find_model_file

logger = logging.getLogger(__name__)


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
    try:
        verdict = blessings.read(blessing_path)
    except DataError as exc:
        return f"evaluate/blessing cannot be used ({exc})"
    if not verdict.blessed:
        return f"not blessed ({'; '.join(verdict.reasons) or 'the evaluator gave no reason'})"
    mismatch = verdict.mismatch(sha256_file(model_file))
    if mismatch:
        return f"evaluate/blessing is for another model than {model_file.name}: {mismatch}"
    return ""


def select_local_model(root: str | os.PathLike = "local_outputs") -> LocalModelChoice:
    """Choose the model to serve from a local output directory, the way ``make serve`` does.

    1. The local production model: when ``<root>/production/current.json`` exists and its ``model_dir`` is a
       directory holding one model file, that directory (the model a blessed run promoted last).
    2. Otherwise the newest blessed run: of the ``<root>/runs/**/train/model`` directories (hidden ``.*``
       staging folders skipped) whose run's ``evaluate/blessing`` (``<run>/evaluate/blessing`` beside
       ``<run>/train/model``) is a valid blessing that says ``"blessed": true`` for this model file (its
       ``model_sha256``), the one whose model file was modified last. Failed runs (no blessing), runs that
       were not blessed and blessings that are malformed or about another model are never served.

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
