"""Which statistics backend a run uses: ``statistics_backend="auto"`` decides by size, from the Parquet footers.

The ``dataframe`` backend holds a split in memory several times over (the Arrow table, the pandas frame, TFDV's
own Arrow record batches of it) and is the fastest when that fits; the ``beam`` backend streams the file in
batches through an in-process Beam pipeline (FnApiRunner), so its memory stays bounded whatever the rows.

The estimate needs no pass over the data: the footer gives the rows and, per column, the Arrow type and the
uncompressed size of its pages. Each column is counted at the larger of 8 bytes a row (the int64/float64 TFDV
reads) and its uncompressed size, and the sum is multiplied by :data:`IN_MEMORY_FACTOR`, the peak resident
memory the dataframe path was measured to take per byte so counted (``bench/statistics_backends.py
--memory``), plus :data:`TFDV_BASE_BYTES` for TFDV itself. The budget is ``memory_budget_mb`` when given, else
:data:`BUDGET_SHARE` of the task's memory: the container's cgroup limit (a KFP pod's ``memory`` limit) when
there is one, else the machine's available memory. The choice is a
:class:`~kfp_tabular.components.common.decisions.Decision` with both numbers.
"""

from __future__ import annotations

import dataclasses

from kfp_tabular.components.common.decisions import Decision
from kfp_tabular.components.data_processing.validate import statistics

AUTO = "auto"
#: Peak resident bytes of the dataframe path per byte of the footer estimate (measured: see module docstring).
IN_MEMORY_FACTOR = 8.0
#: Resident memory of TFDV, TensorFlow and Beam once imported, before any data (measured: 667 MB).
TFDV_BASE_BYTES = 700 << 20
#: Share of the task's memory the dataframe path may take when no budget is given.
BUDGET_SHARE = 0.5
_MEMINFO = "/proc/meminfo"


@dataclasses.dataclass(frozen=True)
class Choice:
    """The backend chosen for a run and why.

    Attributes:
        backend: ``dataframe`` or ``beam``.
        decision: The decision for the run summary (None when the backend was not ``auto``).
    """

    backend: str
    decision: Decision | None = None


def _size(n: float) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MB"


def in_memory_bytes(data_path: str) -> int:
    """Estimate the peak memory of the dataframe backend on one Parquet file, from its footer alone.

    Raises:
        DataError: The file is missing or not Parquet.
    """
    with statistics._parquet_file(data_path, "dataframe") as parquet:
        meta = parquet.metadata
        rows = meta.num_rows
        uncompressed = [0] * meta.num_columns
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(meta.num_columns):
                uncompressed[c] += group.column(c).total_uncompressed_size
    data = sum(max(8 * rows, size) for size in uncompressed)
    return int(IN_MEMORY_FACTOR * data) + TFDV_BASE_BYTES


def memory_budget(
    budget_mb: int = 0, cgroup_files: tuple[str, ...] | None = None, meminfo: str = ""
) -> tuple[int, str]:
    """Return ``(bytes, where they come from)``: the dataframe path's memory budget.

    ``budget_mb`` when given; else :data:`BUDGET_SHARE` of the container's cgroup limit (read as training's
    memory guard reads it, ``common.memory.memory_limit``), else of the available memory, else of the physical memory.
    ``cgroup_files`` and ``meminfo`` replace the system files (tests).
    """
    from kfp_tabular.components.common.memory import available_memory, memory_limit

    if budget_mb:
        return int(budget_mb) << 20, "memory_budget_mb"
    limit, source = memory_limit(0, cgroup_files) if cgroup_files is not None else memory_limit()
    if not source.startswith("the container"):
        available = available_memory(meminfo or _MEMINFO)
        if available:
            limit, source = available, "the machine's available memory"
    return int(BUDGET_SHARE * limit), f"{BUDGET_SHARE:.0%} of {source} ({_size(limit)})"


def choose(backend: str, data_paths: list[str], budget_mb: int = 0, beam_pipeline_args=()) -> Choice:
    """Resolve ``auto`` to ``dataframe`` or ``beam`` for these files (the largest decides); others pass through.

    Beam arguments naming a remote runner (Dataflow, Flink, Spark) choose ``beam``: its workers read the data.

    Raises:
        DataError: A file is missing or not Parquet.
    """
    if backend != AUTO:
        return Choice(backend)
    runner = statistics.remote_runner(beam_pipeline_args)
    if runner:
        reason = f"statistics: beam: beam_pipeline_args name the runner {runner}"
        return Choice("beam", Decision("validate", "statistics_backend", "beam", reason))
    estimate = max(in_memory_bytes(path) for path in data_paths)
    budget, source = memory_budget(budget_mb)
    if estimate <= budget:
        chosen = "dataframe"
        reason = f"dataframe (in memory): ~{_size(estimate)} estimated <= budget {_size(budget)} ({source})"
    else:
        chosen = "beam"
        reason = (
            f"beam (streaming, in-process FnApiRunner): ~{_size(estimate)} in memory estimated > budget "
            f"{_size(budget)} ({source})"
        )
    return Choice(chosen, Decision("validate", "statistics_backend", chosen, f"statistics: {reason}"))
