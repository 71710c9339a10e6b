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

from typing import Any

from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.common.memory import DEFAULT_MEMORY_LIMIT, memory_limit  # noqa: F401 (train's API)

#: Fail before fitting when the estimate exceeds this share of the memory limit.
MEMORY_HEADROOM = 0.8
#: A single feature scoring at least this alone is reported as a possible leak.
LEAKAGE_THRESHOLD = 0.99
#: The leakage check looks at a seeded sample of at most this many rows.
LEAKAGE_SAMPLE = 5000


def size(n: float) -> str:
    """Bytes in words: ``9.1 GB``."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def encoded_widths(x, features, max_categories: int) -> dict[str, int]:
    """Columns each feature becomes after encoding (an upper bound: rare categories may be grouped further).

    ``x`` is a pandas DataFrame or a pyarrow Table holding the feature columns.
    """
    widths = {}
    for spec in features:
        if spec.kind == "categorical":
            widths[spec.name] = max(1, min(_distinct(x, spec.name), max_categories))
        else:
            widths[spec.name] = 1
    return widths


def _distinct(x, name: str) -> int:
    """Distinct values of a column (missing counts as one) in a pandas DataFrame or a pyarrow Table."""
    if hasattr(x, "num_rows"):  # a pyarrow Table: counted in Arrow, no Python objects
        import pyarrow.compute as pc

        return int(pc.count_distinct(x.column(name), mode="all").as_py())
    return int(x[name].nunique(dropna=False))


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
        f"{rows:,} rows x {width:,} encoded columns{' (sparse)' if sparse else ''}: {size(matrix)} held twice, "
        f"{size(own)} for {estimator}, {size(data_bytes)} of data"
    )
    return total, how


def check_memory(
    source: str, widths: dict[str, int], estimate: int, how: str, limit: int, where: str, note: str = ""
) -> None:
    """Raise DataError naming the widest columns (and ``note``) when the estimate exceeds the limit's headroom."""
    if estimate <= MEMORY_HEADROOM * limit:
        return
    widest = sorted(widths.items(), key=lambda item: -item[1])[:5]
    listed = ", ".join(f"{name!r} ({width} columns)" for name, width in widest)
    raise DataError(
        f"{source}: training would need about {size(estimate)} ({how}), over {MEMORY_HEADROOM:.0%} of the memory "
        f"limit {size(limit)} ({where}){'; ' + note if note else ''}; the widest features: {listed}. Drop columns "
        "in ingest (drop_columns), lower max_categories, or raise memory_limit_mb / the container's memory limit"
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


def _numeric_scores(xs, ys, features, kind: str, positive: Any) -> dict[str, tuple[float | None, str]]:
    """Score every numeric feature without missing values at once: ROC AUC (binary) or ``|r|`` (regression).

    The AUC is the Mann-Whitney statistic on average ranks (what ``roc_auc_score`` computes, ties counting a half),
    all columns in one ``rankdata``; the correlation is Pearson's on standardized columns. Columns with missing
    values (and multiclass labels) are left to the per-feature loop.
    """
    import numpy as np
    from scipy.stats import rankdata

    names = [spec.name for spec in features if spec.kind == "numeric"]
    if kind == "multiclass" or not names or len(ys) < 20:
        return {}
    matrix = xs[names].to_numpy(dtype="float64")
    complete = ~np.isnan(matrix).any(axis=0)
    names = [name for name, keep in zip(names, complete) if keep]
    matrix = matrix[:, complete]
    constant = np.ptp(matrix, axis=0) == 0 if len(names) else np.zeros(0, bool)
    if kind == "binary":
        truth = (ys == positive).to_numpy()
        positives, negatives = int(truth.sum()), int((~truth).sum())
        if not positives or not negatives:
            return {name: (None, "ROC AUC") for name in names}
        ranks = rankdata(matrix, axis=0)
        auc = (ranks[truth].sum(axis=0) - positives * (positives + 1) / 2) / (positives * negatives)
        values = np.maximum(auc, 1.0 - auc)
        measure = "ROC AUC"
    else:
        target = ys.to_numpy(dtype="float64")
        if np.std(target) == 0:
            return {name: (None, "|correlation|") for name in names}
        centred = matrix - matrix.mean(axis=0)
        spread = np.sqrt((centred**2).sum(axis=0))
        spread[spread == 0] = 1.0
        t = target - target.mean()
        values = np.abs(centred.T @ t / (spread * np.sqrt((t**2).sum())))
        measure = "|correlation|"
    return {name: (None if flat else float(value), measure) for name, value, flat in zip(names, values, constant)}


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
    scored = _numeric_scores(xs, ys, features, kind, positive)
    for spec in features:
        column = xs[spec.name]
        if spec.name in scored:
            score, measure = scored[spec.name]
        elif spec.kind == "numeric" and kind != "multiclass":
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
