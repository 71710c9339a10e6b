"""The chart data of the evaluation report, from the one prediction the metrics came from, of bounded size.

Nothing here predicts: :func:`scoring.score` passes the arrays it already has (the ROC curve it computed ROC AUC
from, the probabilities, the predictions), so the charts show exactly what the metrics measured, and a million
eval rows give the same few kilobytes as a thousand:

- ``pr``: precision and recall at each ROC threshold (derived from the ROC curve's counts, no second sort),
  thinned to :data:`MAX_CURVE_POINTS`; ``positive_rate`` is the no-skill precision.
- ``calibration``: :data:`CALIBRATION_BINS` equal-width bins of the predicted probability (the positive class's
  for a binary model, the predicted class's -- the confidence -- otherwise) with each bin's row count, mean
  predicted probability and observed frequency; the counts sum to the eval rows.
- ``points`` (regression): at most :data:`MAX_SCATTER_POINTS` (actual, predicted) pairs, evenly spaced in the
  order of the predicted value (first and last always kept), and how many rows there were.
"""

from __future__ import annotations

#: A precision-recall curve keeps at most this many points (the ROC curve: ``scoring.MAX_ROC_POINTS``).
MAX_CURVE_POINTS = 200
#: Equal-width bins of the predicted probability in the reliability curve.
CALIBRATION_BINS = 10
#: A regression's residual and predicted-vs-actual charts draw at most this many rows.
MAX_SCATTER_POINTS = 1000


def evenly(n: int, limit: int):
    """Return at most ``limit`` indices of ``range(n)``, evenly spaced, always the first and last."""
    import numpy as np

    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def precision_recall(fpr, tpr, thresholds, positives: int, negatives: int, limit: int = MAX_CURVE_POINTS) -> dict:
    """Return the precision-recall curve at the ROC curve's thresholds (where anything is predicted positive).

    Args:
        fpr: False positive rates of scikit-learn's ``roc_curve`` (unthinned).
        tpr: True positive rates (recall) of the same curve.
        thresholds: The score cut-offs of the same curve.
        positives: Rows of the positive class.
        negatives: Rows of the other class.
        limit: At most this many points are kept (evenly by index, the ends always).
    """
    import numpy as np

    tps = np.asarray(tpr, dtype="float64") * positives
    fps = np.asarray(fpr, dtype="float64") * negatives
    predicted = tps + fps
    keep = predicted > 0
    precision = tps[keep] / predicted[keep]
    recall = np.asarray(tpr, dtype="float64")[keep]
    cut = np.asarray(thresholds, dtype="float64")[keep]
    index = evenly(len(recall), limit)
    return {"recall": recall[index].tolist(), "precision": precision[index].tolist(), "thresholds": cut[index].tolist()}


def calibration(probability, outcome, bins: int = CALIBRATION_BINS, kind: str = "positive class") -> dict:
    """Return the reliability curve's bins: equal-width bins of ``probability`` in [0, 1].

    Args:
        probability: Predicted probabilities (one per row).
        outcome: 1 where the event happened (the positive class; the prediction was right), else 0.
        bins: Number of bins.
        kind: What the probability is ("positive class" or "confidence"), shown on the chart.

    Returns:
        ``{"kind", "bins", "counts", "mean_predicted", "observed"}``: a bin without rows has None means.
    """
    import numpy as np

    p = np.clip(np.asarray(probability, dtype="float64"), 0.0, 1.0)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=np.asarray(outcome, dtype="float64"), minlength=bins)
    mean = [float(s / c) if c else None for s, c in zip(sum_p, counts)]
    observed = [float(s / c) if c else None for s, c in zip(sum_y, counts)]
    return {
        "kind": kind,
        "bins": bins,
        "counts": counts.astype(int).tolist(),
        "mean_predicted": mean,
        "observed": observed,
    }


def classification(proba, codes, predicted, positive_index: int | None, roc) -> dict:
    """Return a classifier's chart data: the PR curve and positive rate (binary), the reliability curve.

    Args:
        proba: ``predict_proba`` output (rows x classes).
        codes: Each row's true class index.
        predicted: Each row's predicted class index (the argmax of ``proba``).
        positive_index: The positive class's column for a binary model, else None.
        roc: The unthinned ROC curve ``(fpr, tpr, thresholds)`` of a binary model, or None.
    """
    import numpy as np

    out: dict = {"pr": None, "positive_rate": None}
    if positive_index is not None:
        truth = codes == positive_index
        positives = int(truth.sum())
        out["positive_rate"] = positives / len(truth) if len(truth) else None
        if roc is not None:
            out["pr"] = precision_recall(*roc, positives=positives, negatives=len(truth) - positives)
        out["calibration"] = calibration(proba[:, positive_index], truth)
    else:
        confidence = proba[np.arange(len(predicted)), predicted]
        out["calibration"] = calibration(confidence, codes == predicted, kind="confidence")
    return out


def regression(actual, predicted, limit: int = MAX_SCATTER_POINTS) -> dict:
    """Return at most ``limit`` (actual, predicted) rows evenly spaced in the order of the prediction."""
    import numpy as np

    predicted = np.asarray(predicted, dtype="float64")
    actual = np.asarray(actual, dtype="float64")
    order = np.argsort(predicted, kind="stable")[evenly(len(predicted), limit)]
    return {"rows": int(len(predicted)), "actual": actual[order].tolist(), "predicted": predicted[order].tolist()}
