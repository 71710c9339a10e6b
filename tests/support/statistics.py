"""TFDV statistics as tests compare them."""

from __future__ import annotations


def feature_stats(stats) -> dict:
    """Feature -> (type, kind of statistics, rows with a value, rows without): what two backends must agree on."""
    found = {}
    for f in stats.datasets[0].features:
        which = f.WhichOneof("stats")
        common = getattr(f, which).common_stats
        found[".".join(f.path.step)] = (f.type, which, common.num_non_missing, common.num_missing)
    return found
