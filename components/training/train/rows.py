"""Which rows the fit sees: the train split read by column, and a seeded sample when all of them cannot be used.

The split is read with pyarrow, only the schema's features and the label (``memory_map``; strings stay compact
Arrow buffers), and only the rows the fit uses become a pandas frame, once. All rows are fitted unless

- ``max_train_rows`` caps them, or
- the fit of all of them would not fit in memory (:mod:`.guards`: over 80% of ``memory_limit_mb``, the
  container's cgroup limit, or the machine's available memory): the largest row count whose estimate fits is
  used, and training is refused only when that is under :data:`MIN_SAMPLE_ROWS` (a sample cannot fix a row
  wider than memory).

A sample is seeded (``seed``) and, for classification, stratified: each class keeps its share of rows (at least
one row), so a rare class is never sampled away. Either way a ``sampled`` Decision states how many rows of how
many were fitted and why, and the model's ``metadata.json`` records ``train_rows`` and ``source_rows``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.common.errors import DataError
from kfp_tabular.components.training.train import guards

#: A fit on fewer rows than this (because a sample of more would not fit in memory) is refused.
MIN_SAMPLE_ROWS = 1000
#: Rows converted to pandas to measure the bytes a row of the coerced features takes.
PROBE_ROWS = 2000


def file_columns(path: str | os.PathLike, what: str) -> list[str]:
    """Return the column names of a Parquet file from its footer, raising a DataError that names the file."""
    import pyarrow.parquet as pq

    if not os.path.isfile(path):
        raise DataError(f"{path}: {what} Parquet file not found")
    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: expected a {what} in Parquet format, could not read it ({exc})") from exc


def read_columns(path: str | os.PathLike, columns: list[str], what: str):
    """Read only ``columns`` of a Parquet file as a pyarrow Table (memory-mapped, no pandas copy)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns, memory_map=True)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: expected a {what} in Parquet format, could not read it ({exc})") from exc
    return table.combine_chunks() if table.num_rows and max(c.num_chunks for c in table.columns) > 1 else table


def sample_indices(n_rows: int, size: int, seed: int, labels=None) -> Any:
    """Return the sorted indices of a seeded sample of ``size`` of ``n_rows`` rows.

    With ``labels`` (an array, classification) the sample is stratified: each class gets its share of ``size``
    (largest remainders; at least one row, at most all of its rows).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    if size >= n_rows:
        return np.arange(n_rows)
    if labels is None:
        return np.sort(rng.choice(n_rows, size=size, replace=False))
    _, codes, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    exact = counts * (size / n_rows)
    share = np.minimum(counts, np.maximum(1, np.floor(exact).astype(np.int64)))
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    for k in order:  # hand out the rows rounding left over, largest remainders first
        if share.sum() >= size:
            break
        if share[k] < counts[k]:
            share[k] += 1
    members = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    taken = [rng.choice(members[s : s + c], size=int(k), replace=False) for s, c, k in zip(starts, counts, share)]
    return np.sort(np.concatenate(taken))


@dataclasses.dataclass
class RowPlan:
    """How many rows the fit uses and why.

    Attributes:
        rows: Rows fitted.
        source_rows: Rows in the train split.
        estimate: Estimated peak bytes of fitting ``rows`` rows; ``how`` says how it adds up.
        full_estimate: Estimated peak bytes of fitting all ``source_rows`` rows.
        decision: The ``sampled`` decision, or None when every row is fitted.
    """

    rows: int
    source_rows: int
    estimate: int
    how: str
    full_estimate: int
    decision: Decision | None = None


def plan_rows(
    source: str,
    source_rows: int,
    max_train_rows: int,
    stratified: bool,
    estimate,
    widths: dict[str, int],
    limit: int,
    where: str,
) -> RowPlan:
    """Choose how many rows to fit: all, ``max_train_rows``, or the most whose estimated fit stays in memory.

    Args:
        source: The train file, for messages.
        source_rows: Rows in it.
        max_train_rows: The cap asked for (0: chosen by memory).
        stratified: Whether a sample is stratified by the label (classification), for the decision's words.
        estimate: ``rows -> (bytes, how)``, the fit's estimated peak (:func:`guards.estimate_memory`), growing
            with the rows.
        widths: Encoded columns per feature, to name the widest ones in a refusal.
        limit: The memory limit in bytes.
        where: Where the limit comes from (for the decision and the refusal).

    Raises:
        DataError: Not even :data:`MIN_SAMPLE_ROWS` rows (or all rows, when there are fewer) fit in memory.
    """
    budget = guards.MEMORY_HEADROOM * limit
    full = estimate(source_rows)[0]
    cap = min(max_train_rows, source_rows) if max_train_rows else source_rows
    rows = cap
    if estimate(cap)[0] > budget:
        low, high = 0, cap  # estimate(low) fits (or low is 0), estimate(high) does not
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if estimate(middle)[0] <= budget else (low, middle)
        rows = low
        if rows < min(MIN_SAMPLE_ROWS, source_rows):
            guards.check_memory(
                source,
                widths,
                *estimate(cap),
                limit,
                where,
                note=f"a sample that fits would have {rows:,} rows, under the {MIN_SAMPLE_ROWS:,}-row minimum",
            )
    used, how = estimate(rows)
    kind = "stratified sample" if stratified else "random sample"
    decision = None
    if rows < cap:
        asked = "all rows" if cap == source_rows else f"max_train_rows={cap:,} rows"
        decision = Decision(
            "train",
            "",
            "sampled",
            f"fitted on a {rows:,}-row seeded {kind} of {source_rows:,} rows (fitting {asked} was estimated at "
            f"{guards.size(estimate(cap)[0])}, over {guards.MEMORY_HEADROOM:.0%} of the {guards.size(limit)} memory "
            f"limit, {where}); set max_train_rows to choose the rows, or raise memory_limit_mb / the container's "
            "memory limit",
        )
    elif rows < source_rows:
        decision = Decision(
            "train",
            "max_train_rows",
            "sampled",
            f"fitted on a {rows:,}-row seeded {kind} of {source_rows:,} rows (max_train_rows={max_train_rows:,}; "
            f"all rows were estimated at {guards.size(full)} against a {guards.size(limit)} memory limit, {where})",
        )
    return RowPlan(rows, source_rows, used, how, full, decision)
