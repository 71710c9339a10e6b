"""The prediction distribution: a model's predictions counted over fixed bins, at evaluation and in serving.

Evaluate records it in the blessing (``prediction_distribution``); the lineage record copies it; the monitor
counts the served predictions over the same edges (:func:`count`) and measures the distance between the two. One
form for both sides::

    {"kind": "score"|"value", "what": "<what was counted>", "edges": [upper bounds], "counts": [len(edges) + 1],
     "rows": n, "classes": [..] | null, "class_counts": {class: n} | null}

Bin ``i`` counts the values in ``(edges[i-1], edges[i]]`` (the first from minus infinity, the last above the final
edge), as Prometheus's ``le`` buckets do.

- classifiers (``kind="score"``): the fixed probability bins of the rollout analysis
  (``deployment.rollout.metrics.BIN_EDGES``: 20 of width 0.05) over the score the model server observes: the
  probability of ``classes[1]`` for a binary model, the predicted class's probability otherwise; plus the count of
  each predicted class.
- regressors (``kind="value"``): the deciles of the eval predictions as edges (the server's value buckets are
  decades wide: a regressor predicting within [0, 10] would fill two of them), so each bin holds ~1/10 of the
  evaluation's predictions and a shift of served predictions shows in any range.

numpy only, imported inside the functions.
"""

from __future__ import annotations

from typing import Any

#: Bins of a regressor's predictions (edges at the eval predictions' quantiles).
VALUE_BINS = 10


def score_edges() -> list[float]:
    """Return the rollout analysis' probability bin edges without the final infinity (upper bounds)."""
    import math

    from kfp_tabular.components.deployment.rollout.metrics import BIN_EDGES

    return [float(e) for e in BIN_EDGES if math.isfinite(e)]


def count(values, edges: list[float]) -> list[int]:
    """Count finite ``values`` into the bins ``(edges[i-1], edges[i]]`` (``len(edges) + 1`` counts)."""
    import numpy as np

    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    index = np.searchsorted(np.asarray(edges, dtype="float64"), values, side="left")
    return [int(c) for c in np.bincount(index, minlength=len(edges) + 1)]


def binary_score_name(classes: list) -> str:
    """Say what the score of a classifier is, for reports."""
    if len(classes) == 2:
        return f"probability of class {classes[1]!r} (classes[1])"
    return "probability of the predicted class"


def classifier(proba, classes: list) -> dict[str, Any]:
    """Return the distribution of a classifier's ``predict_proba`` output (columns in ``classes`` order)."""
    import numpy as np

    proba = np.asarray(proba, dtype="float64")
    scores = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    predicted = proba.argmax(axis=1)
    edges = score_edges()
    per_class = np.bincount(predicted, minlength=len(classes))
    return {
        "kind": "score",
        "what": binary_score_name(classes),
        "edges": edges,
        "counts": count(scores, edges),
        "rows": int(len(scores)),
        "classes": [str(c) for c in classes],
        "class_counts": {str(c): int(n) for c, n in zip(classes, per_class)},
    }


def regressor(predicted) -> dict[str, Any]:
    """Return the distribution of a regressor's predictions over edges at their deciles."""
    import numpy as np

    values = np.asarray(predicted, dtype="float64")
    values = values[np.isfinite(values)]
    quantiles = np.quantile(values, np.arange(1, VALUE_BINS) / VALUE_BINS) if len(values) else []
    edges = sorted({float(q) for q in quantiles}) or [0.0]
    return {
        "kind": "value",
        "what": "predicted value",
        "edges": edges,
        "counts": count(values, edges),
        "rows": int(len(values)),
        "classes": None,
        "class_counts": None,
    }
