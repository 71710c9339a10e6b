"""Atomic, checksummed writes for artifact files and directories.

A task that fails must not leave a half-written artifact that looks complete, so every writer puts its
bytes in a temporary sibling and renames it into place only when the write succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def sha256_stream(handle: Any, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of what a binary file object yields (local or fsspec)."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(chunk_size), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes: the project's one hash of model and data files."""
    with open(path, "rb") as handle:
        return sha256_stream(handle, chunk_size)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Works for a file or a directory written at the yielded path. On error the temporary is removed and
    ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if not staged.exists():
            raise FileNotFoundError(f"nothing was written to {staged} for {target}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as staged:
        staged.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read JSON, raising an error that names the file and what it was expected to hold."""
    from kfp_tabular.components.common.errors import DataError

    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: {what} not found") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: expected a {what} in JSON, got invalid JSON ({exc})") from exc


def read_parquet(path: str | os.PathLike, what: str = "dataset"):
    """Read a Parquet file into a pandas DataFrame, raising a DataError that names the file and what it holds."""
    import pandas as pd

    from kfp_tabular.components.common.errors import DataError

    if not Path(path).is_file():
        raise DataError(f"{path}: {what} Parquet file not found")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: expected a {what} in Parquet format, could not read it ({exc})") from exc
