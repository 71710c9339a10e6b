"""The payload-log collector: KServe logger CloudEvents in, Parquet batches of served rows out.

Run it (serve image / ``.venv-serve``)::

    python -m kfp_tabular.components.monitoring.collector --sink URI --roll-rows N --roll-seconds S --port P

Read a window back (any env with pyarrow and fsspec; nothing heavy is imported until called)::

    from kfp_tabular.components.monitoring.collector import read_window, batch_files
    table = read_window("s3://bucket/served", start="2026-11-30T00:00:00Z", end="2026-12-01T00:00:00Z")

Start and stop it from Python (tests, demos): ``launch.CollectorProcess``. Modules: ``events`` (CloudEvents),
``rows`` (V1/V2 flattening), ``pairing`` (request + response by id), ``sink`` (Parquet batches, reading),
``metrics``, ``server``. See docs/payload-logging.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["batch_files", "read_window"]


def read_window(sink: str, start: Any = None, end: Any = None, **kwargs: Any):
    """Read served rows with ``start <= time < end``: see ``sink.read_window``."""
    from kfp_tabular.components.monitoring.collector.sink import read_window as _read_window

    return _read_window(sink, start, end, **kwargs)


def batch_files(sink: str, start: Any = None, end: Any = None, **kwargs: Any):
    """Return the batch files of days overlapping ``[start, end)``: see ``sink.batch_files``."""
    from kfp_tabular.components.monitoring.collector.sink import batch_files as _batch_files

    return _batch_files(sink, start, end, **kwargs)
