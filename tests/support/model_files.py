"""Model directories and blessings as train and evaluate write them, for tests that need no real model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kfp_tabular.components.common import blessing as blessing_contract
from kfp_tabular.components.common.model_dir import METADATA_FILE, MODEL_FILE


def make_model_dir(path: Path, payload: bytes = b"model-bytes", extra: dict | None = None) -> Path:
    """A model directory holding ``payload`` as model.joblib and metadata.json recording its sha256."""
    path.mkdir(parents=True)
    (path / MODEL_FILE).write_bytes(payload)
    metadata = {"features": [], "model_sha256": hashlib.sha256(payload).hexdigest(), **(extra or {})}
    (path / METADATA_FILE).write_text(json.dumps(metadata))
    return path


def write_blessing(path: Path, model_dir: Path, blessed: bool = True, reasons: list[str] | None = None) -> Path:
    """The blessing evaluate would write for ``model_dir`` (its model file's sha256)."""
    if reasons is None:
        reasons = ["roc_auc 0.84 >= 0.70"] if blessed else ["roc_auc 0.52 < 0.70", "worse than baseline by 0.2"]
    sha = hashlib.sha256((model_dir / MODEL_FILE).read_bytes()).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    blessing_contract.write(
        path, blessing_contract.Blessing(blessed, reasons, sha, metrics={"roc_auc": 0.84}, model_dir=str(model_dir))
    )
    return path
