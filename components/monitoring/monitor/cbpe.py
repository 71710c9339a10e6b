"""Label-free performance estimation from predicted probabilities (confidence-based, NannyML's CBPE).

When a classifier's scores are calibrated, a row with score ``p`` for class 1 is class 1 with probability ``p``.
Then, without any label:

- **accuracy**: the model predicts class 1 when ``p > 0.5`` (its argmax), which is right with probability
  ``max(p, 1 - p)``; the expected accuracy is the mean of that over the window, and its sampling standard error
  ``sqrt(sum(c (1 - c))) / n`` (each row right or wrong independently).
- **ROC AUC** (binary): sort the rows by score, highest first; at each cut-off the expected true positives are the
  sum of ``p`` above it and the expected false positives the sum of ``1 - p``; divided by the expected positives
  (``sum p``) and negatives (``sum (1 - p)``) they give the expected ROC curve, whose area is the estimate
  (NannyML's CBPE ROC AUC).
- multi-class: the expected accuracy is the mean probability of the predicted class (the score the server
  observes); ROC AUC is not estimated.

It tracks the true metric under covariate shift (the inputs move, ``P(y | x)`` does not) as far as the model's
calibration holds where the inputs went; it cannot see concept drift (``P(y | x)`` changes), which only labels show.
docs/monitoring.md has the measured error on drifted data. numpy only, imported inside.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Estimated performance of one window.

    Attributes:
        rows: Scores used.
        accuracy: Expected accuracy.
        accuracy_stderr: Its sampling standard error.
        roc_auc: Expected ROC AUC (binary only; None otherwise or when every score is 0 or 1 on one side).
        expected_positive_rate: Mean score of class 1 (binary) -- the expected share of class 1.
    """

    rows: int
    accuracy: float
    accuracy_stderr: float
    roc_auc: float | None
    expected_positive_rate: float | None

    def as_dict(self) -> dict:
        """Return the JSON form."""
        return dataclasses.asdict(self)


def expected_roc_auc(p) -> float | None:
    """Return the expected ROC AUC of calibrated class-1 probabilities ``p`` (None: no positive or negative)."""
    import numpy as np

    p = np.asarray(p, dtype="float64")
    positives, negatives = p.sum(), (1.0 - p).sum()
    if positives <= 0 or negatives <= 0:
        return None
    order = np.argsort(-p, kind="stable")
    ranked = p[order]
    # Cut-offs between distinct scores only: tied scores move together (as sklearn's roc_curve).
    last_of_value = np.r_[np.diff(ranked) != 0, True]
    tp = np.cumsum(ranked)[last_of_value]
    fp = np.cumsum(1.0 - ranked)[last_of_value]
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def estimate_binary(p) -> Estimate:
    """Estimate accuracy and ROC AUC from class-1 probabilities ``p`` of a binary classifier."""
    import numpy as np

    p = np.clip(np.asarray(p, dtype="float64"), 0.0, 1.0)
    correct = np.maximum(p, 1.0 - p)
    n = len(p)
    return Estimate(
        rows=n,
        accuracy=float(correct.mean()),
        accuracy_stderr=float(np.sqrt(np.sum(correct * (1.0 - correct))) / n),
        roc_auc=expected_roc_auc(p),
        expected_positive_rate=float(p.mean()),
    )


def estimate_multiclass(confidence) -> Estimate:
    """Estimate accuracy from the predicted class's probability of each row."""
    import numpy as np

    c = np.clip(np.asarray(confidence, dtype="float64"), 0.0, 1.0)
    n = len(c)
    return Estimate(
        rows=n,
        accuracy=float(c.mean()),
        accuracy_stderr=float(np.sqrt(np.sum(c * (1.0 - c))) / n),
        roc_auc=None,
        expected_positive_rate=None,
    )
