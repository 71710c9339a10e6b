"""Checks made before fitting: will the fit fit in memory, and does a single feature give the label away.

Memory: the encoded matrix is ``rows x encoded columns`` (a numeric feature is one column, a categorical one
``min(categories, max_categories)``), 8 bytes a value dense, 12 per stored value sparse; the transformers and
the stacking hold it about twice; the estimator adds its own (HistGradientBoosting: 1 byte a value for the
binned data plus 3 float64 arrays per row and class; random forest: a float32 copy plus ~2 nodes per row and
tree; logistic regression: one more copy). Together with the table already in memory it must stay under
:data:`MEMORY_HEADROOM` of the limit: ``memory_limit_mb``, else the container's cgroup limit, else the
machine's physical memory, else :data:`DEFAULT_MEMORY_LIMIT`. Over it, training is refused naming the widest
columns, instead of being killed by the kernel.

Leakage: on a seeded sample of at most :data:`LEAKAGE_SAMPLE` rows, each feature alone is scored against the
label: a numeric feature by its ROC AUC (binary; ``max(auc, 1 - auc)``) or ``|Pearson r|`` (regression); a
categorical feature (and, for multiclass labels, a numeric one cut into 20 quantile bins) by what its
categories predict on the half of the sample they were not learned from (target encoding: ROC AUC, balanced
accuracy for multiclass, ``|r|`` for regression). A score of at least :data:`LEAKAGE_THRESHOLD` is a
**warning** decision naming the feature and the score: training goes on, the user decides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.common.errors import DataError

#: Fail before fitting when the estimate exceeds this share of the memory limit.
MEMORY_HEADROOM = 0.8
#: The limit when neither memory_limit_mb, a cgroup limit nor the physical memory can be read.
DEFAULT_MEMORY_LIMIT = 4 << 30
#: A single feature scoring at least this alone is reported as a possible leak.
LEAKAGE_THRESHOLD = 0.99
#: The leakage check looks at a seeded sample of at most this many rows.
LEAKAGE_SAMPLE = 5000
_CGROUP_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit(requested_mb: int = 0, cgroup_files: tuple[str, ...] = _CGROUP_FILES) -> tuple[int, str]:
    """Return ``(bytes, where it comes from)``: the parameter, the cgroup, the physical memory, or the default."""
    if requested_mb:
        return int(requested_mb) << 20, "memory_limit_mb"
    for name in cgroup_files:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" (v2) or a huge number (v1): no limit
            return int(text), f"the container's limit ({name})"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "the machine's physical memory"
    except (ValueError, OSError, AttributeError):
        return DEFAULT_MEMORY_LIMIT, "the default"


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def encoded_widths(x, features, max_categories: int) -> dict[str, int]:
    """Columns each feature becomes after encoding (an upper bound: rare categories may be grouped further)."""
    widths = {}
    for spec in features:
        if spec.kind == "categorical":
            widths[spec.name] = max(1, min(int(x[spec.name].nunique(dropna=False)), max_categories))
        else:
            widths[spec.name] = 1
    return widths


def estimate_memory(
    rows: int, widths: dict[str, int], sparse: bool, estimator: str, params: dict, classes: int, data_bytes: int
) -> tuple[int, str]:
    """Estimate the peak bytes of fitting; return them and how they add up (for the message)."""
    width = sum(widths.values())
    stored = rows * len(widths) if sparse else rows * width
    matrix = stored * (12 if sparse else 8)
    outputs = max(1, classes if classes > 2 else 1)
    if estimator == "hist_gradient_boosting":
        own = rows * width + rows * 8 * 3 * outputs
    elif estimator == "random_forest":
        trees = int(params.get("n_estimators", 100) or 100)
        own = rows * width * 4 + trees * 2 * rows * (64 + 8 * outputs)
    else:
        own = matrix
    total = data_bytes + 2 * matrix + own
    how = (
        f"{rows:,} rows x {width:,} encoded columns{' (sparse)' if sparse else ''}: {_size(matrix)} held twice, "
        f"{_size(own)} for {estimator}, {_size(data_bytes)} of data"
    )
    return total, how


def check_memory(source: str, widths: dict[str, int], estimate: int, how: str, limit: int, where: str) -> None:
    """Raise DataError naming the widest columns when the estimate exceeds MEMORY_HEADROOM of the limit."""
    if estimate <= MEMORY_HEADROOM * limit:
        return
    widest = sorted(widths.items(), key=lambda item: -item[1])[:5]
    listed = ", ".join(f"{name!r} ({width} columns)" for name, width in widest)
    raise DataError(
        f"{source}: training would need about {_size(estimate)} ({how}), over {MEMORY_HEADROOM:.0%} of the memory "
        f"limit {_size(limit)} ({where}); the widest features: {listed}. Drop columns in ingest (drop_columns), "
        "lower max_categories, train on fewer rows, or raise memory_limit_mb / the container's memory limit"
    )


def _auc(truth, score) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(truth.tolist())) < 2 or len(set(score.tolist())) < 2:
        return None
    auc = float(roc_auc_score(truth, score))
    return max(auc, 1.0 - auc)


def _corr(a, b) -> float | None:
    import numpy as np

    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return abs(float(np.corrcoef(a, b)[0, 1]))


def _held_out(codes, y, task: str, positive: Any):
    """Predict y from a category on the half of the rows the category's statistics were not learned from."""
    import numpy as np
    import pandas as pd

    halves = np.arange(len(y)) % 2
    predicted = pd.Series(index=y.index, dtype=object if task == "multiclass" else "float64")
    target = (y == positive).astype("float64") if task == "binary" else y
    for half in (0, 1):
        learn, apply = halves != half, halves == half
        if task == "multiclass":
            table = pd.crosstab(codes[learn], y[learn])
            mapping = table.idxmax(axis=1)
            fallback = y[learn].mode().iloc[0]
        else:
            mapping = target[learn].groupby(codes[learn]).mean()
            fallback = float(target[learn].mean())
        predicted[apply] = codes[apply].map(mapping).fillna(fallback).to_numpy()
    if task == "binary":
        return _auc(target, predicted.astype("float64"))
    if task == "multiclass":
        import warnings

        from sklearn.metrics import balanced_accuracy_score

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a category may predict a class the other half lacks
            return float(balanced_accuracy_score(y.astype(str), predicted.astype(str)))
    return _corr(predicted.to_numpy(dtype="float64"), y.to_numpy(dtype="float64"))


def leakage(x, y, features, task: str, positive: Any, seed: int) -> list[Decision]:
    """Warn (decisions) about each feature that alone predicts the label almost perfectly."""
    import numpy as np
    import pandas as pd

    n = len(y)
    take = np.random.default_rng(seed).permutation(n)[: min(n, LEAKAGE_SAMPLE)]
    xs, ys = x.iloc[take].reset_index(drop=True), y.iloc[take].reset_index(drop=True)
    classes = ys.nunique()
    kind = "regression" if task == "regression" else ("binary" if classes == 2 else "multiclass")
    if kind == "binary" and positive is None:
        positive = sorted(ys.unique().tolist())[-1]
    warnings = []
    for spec in features:
        column = xs[spec.name]
        if spec.kind == "numeric" and kind != "multiclass":
            kept = column.notna().to_numpy()
            values = column.to_numpy(dtype="float64")[kept]
            if kept.sum() < 20:
                continue
            if kind == "binary":
                score, measure = _auc((ys[kept] == positive).to_numpy(), values), "ROC AUC"
            else:
                score, measure = _corr(values, ys[kept].to_numpy(dtype="float64")), "|correlation|"
        else:
            if spec.kind == "numeric":
                codes = pd.qcut(column, 20, duplicates="drop").astype(str)
            else:
                codes = column.astype(object).where(column.notna(), "__missing__").astype(str)
            score = _held_out(codes, ys, kind, positive)
            measure = {"binary": "held-out ROC AUC", "multiclass": "held-out balanced accuracy"}.get(
                kind, "held-out |correlation|"
            )
        if score is not None and score >= LEAKAGE_THRESHOLD:
            warnings.append(
                Decision(
                    "train",
                    spec.name,
                    "warning",
                    f"this feature alone predicts the label almost perfectly ({measure} {score:.3f} on {len(ys):,} "
                    f"sampled rows, threshold {LEAKAGE_THRESHOLD}): a leak of the outcome? Kept; if it is only known "
                    "after the outcome, drop it in ingest (drop_columns)",
                )
            )
    return warnings
