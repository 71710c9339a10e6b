"""The memory a task may use: the one reading of a container's limit that train and validate size their work by.

A KFP task's pod has a memory limit (its cgroup); the OS kills a task that outgrows it. Train fits a sample sized to
it and validate chooses in-memory or streaming statistics by it, so both read it here.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The limit when neither a requested limit, a cgroup limit nor the physical memory can be read.
DEFAULT_MEMORY_LIMIT = 4 << 30
CGROUP_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit(
    requested_mb: int = 0,
    cgroup_files: tuple[str, ...] = CGROUP_FILES,
    meminfo: str = "/proc/meminfo",
    field: str = "memory_limit_mb",
) -> tuple[int, str]:
    """Return ``(bytes, where it comes from)``: the requested size, the cgroup limit, available memory or a default.

    Args:
        requested_mb: A limit the user asked for (megabytes; 0: read it from the system).
        cgroup_files: cgroup v2 and v1 limit files (tests replace them).
        meminfo: ``/proc/meminfo`` (tests replace it).
        field: The parameter ``requested_mb`` came from, named as the source.
    """
    if requested_mb:
        return int(requested_mb) << 20, field
    for name in cgroup_files:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" (v2) or a huge number (v1): no limit
            return int(text), f"the container's limit ({name})"
    available = _available_memory(meminfo)
    if available:
        return available, "the machine's available memory (MemAvailable plus this process)"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "the machine's physical memory"
    except (ValueError, OSError, AttributeError):
        return DEFAULT_MEMORY_LIMIT, "the default"


def available_memory(meminfo: str = "/proc/meminfo") -> int:
    """Return the machine's available memory (``MemAvailable``) in bytes; 0 when ``/proc`` cannot be read."""
    try:
        fields = dict(line.split(":", 1) for line in Path(meminfo).read_text().splitlines() if ":" in line)
        return int(fields["MemAvailable"].split()[0]) << 10
    except (OSError, KeyError, ValueError, IndexError):
        return 0


def _available_memory(meminfo: str) -> int:
    """Bytes this process could grow to without a cgroup limit: ``MemAvailable`` plus its own resident set.

    The process's resident set is added back because the estimate counts the data it already holds. 0 when
    ``/proc`` cannot be read.
    """
    available = available_memory(meminfo)
    if not available:
        return 0
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        resident = 0
    return available + resident
