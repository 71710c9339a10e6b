"""The collector's settings (what its command line sets): standard library only, so the CLI parses anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Sequence

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Settings"]

#: Largest event body (the model server's default request limit: a 1,000-row JSON batch is about 250 kB).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """What the command line sets (see ``__main__`` for each option's meaning)."""

    sink: str
    roll_rows: int = 10_000
    roll_seconds: float = 60.0
    host: str = "127.0.0.1"
    port: int = 8090
    mode: str = "all"
    pair_ttl: float = 60.0
    max_pending: int = 10_000
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_buffered_rows: int = 1_000_000
    model_sha: Dict[str, str] = field(default_factory=dict)
    feature_order: Dict[str, Sequence[str]] = field(default_factory=dict)
    storage_options: Dict[str, Any] = field(default_factory=dict)
