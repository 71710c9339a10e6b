"""The blessing contract, written once: evaluate writes it, deploy and the local model chooser read it.

A blessing is the evaluator's verdict on one model, identified by the sha256 of its model file (as TFX's
ModelBlessing is tied to one model artifact and its Pusher checks the pair). JSON:
``{"blessed": bool, "reasons": [str], "model_sha256": str, "metrics": {...}, "baseline_metrics": {...} or
null, "thresholds": {...}, "tolerance": float, "model_dir": str, "baseline_model_dir": str, "positive_class": the
class binary metrics measured, or null, "prediction_distribution": the evaluation's predictions counted over fixed
bins, or null}``. ``prediction_distribution`` is ``{"kind": "score"|"value", "what": str, "edges": [upper bounds],
"counts": [len(edges) + 1], "rows": int, "classes": [str] | null, "class_counts": {class: int} | null}``
(``evaluation.evaluate.distribution``); the monitor compares served predictions with it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from kfp_tabular.components.common import artifacts
from kfp_tabular.components.common.errors import DataError


@dataclasses.dataclass(frozen=True)
class Blessing:
    """The evaluator's verdict on one model.

    Attributes:
        blessed: Whether the model may be deployed.
        reasons: Why (each threshold or baseline comparison, in words).
        model_sha256: sha256 of the model file the verdict is about.
        metrics: The candidate's metrics on the eval data.
        baseline_metrics: The baseline model's metrics on the same data, or None without a baseline.
        thresholds: The metric bounds applied.
        tolerance: How much worse than the baseline the candidate was allowed to be.
        model_dir: Where the evaluated model was read from.
        baseline_model_dir: Where the baseline model was read from ("" for none).
        positive_class: The class binary precision, recall, F1 and ROC AUC measured (None otherwise).
        prediction_distribution: The evaluation's predictions counted over fixed bins (None: not recorded, e.g. a
            blessing written before it was).
    """

    blessed: bool
    reasons: list[str]
    model_sha256: str
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    baseline_metrics: dict[str, Any] | None = None
    thresholds: dict[str, Any] = dataclasses.field(default_factory=dict)
    tolerance: float = 0.0
    model_dir: str = ""
    baseline_model_dir: str = ""
    positive_class: Any = None
    prediction_distribution: dict[str, Any] | None = None

    @property
    def reason(self) -> str:
        """The verdict in one line."""
        if self.blessed:
            return "blessed" + (": " + "; ".join(self.reasons) if self.reasons else "")
        return "not blessed: " + ("; ".join(self.reasons) if self.reasons else "the evaluator gave no reason")

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return dataclasses.asdict(self)

    def mismatch(self, model_sha256: str) -> str:
        """Say why this blessing is not about the model whose file hashes to ``model_sha256`` ("" when it is)."""
        if self.model_sha256 == model_sha256:
            return ""
        return (
            f"the blessing is for model sha256 {self.model_sha256}, but the model to deploy hashes to {model_sha256}; "
            "the blessing and the model come from different runs"
        )


def write(path: str | os.PathLike, blessing: Blessing) -> None:
    """Write the blessing JSON atomically."""
    artifacts.write_json(path, blessing.as_dict())


def read(path: str | os.PathLike) -> Blessing:
    """Read and check a blessing file.

    Raises:
        DataError: Naming the file and the field when the file is missing, not JSON, or a field is malformed.
    """
    data = artifacts.read_json(path, what="blessing")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a blessing JSON object, got {type(data).__name__}")
    if "blessed" not in data:
        raise DataError(f"{path}: field 'blessed' is missing (expected true or false)")
    if not isinstance(data["blessed"], bool):
        raise DataError(f"{path}: field 'blessed' must be true or false, got {data['blessed']!r}")
    reasons = data.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise DataError(f"{path}: field 'reasons' must be a list of strings, got {reasons!r}")
    sha = data.get("model_sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise DataError(f"{path}: field 'model_sha256' must be the 64-hex sha256 of the evaluated model, got {sha!r}")
    for name in ("metrics", "thresholds"):
        if not isinstance(data.get(name, {}), dict):
            raise DataError(f"{path}: field {name!r} must be an object, got {data[name]!r}")
    distribution = data.get("prediction_distribution")
    if distribution is not None:
        problem = check_distribution(distribution)
        if problem:
            raise DataError(f"{path}: field 'prediction_distribution': {problem}")
    known = {f.name for f in dataclasses.fields(Blessing)}
    values = {k: v for k, v in data.items() if k in known}
    values["reasons"] = list(reasons)
    return Blessing(**values)


def check_distribution(value: Any) -> str:
    """Say what is wrong with a prediction distribution (the form above); "" when it is fine."""
    if not isinstance(value, dict):
        return f"expected an object, got {value!r}"
    edges, counts = value.get("edges"), value.get("counts")
    if value.get("kind") not in ("score", "value"):
        return f"'kind' must be 'score' or 'value', got {value.get('kind')!r}"
    if not isinstance(edges, list) or not edges or not all(_is_number(e) for e in edges):
        return f"'edges' must be a non-empty list of numbers, got {edges!r}"
    if any(b <= a for a, b in zip(edges, edges[1:])):
        return f"'edges' must increase, got {edges!r}"
    if not isinstance(counts, list) or len(counts) != len(edges) + 1 or not all(_is_number(c) for c in counts):
        return f"'counts' must be {len(edges) + 1} numbers (one per bin: len(edges) + 1), got {counts!r}"
    if any(c < 0 for c in counts) or sum(counts) <= 0:
        return f"'counts' must be >= 0 with a positive total, got {counts!r}"
    return ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
