"""Print the entries of a hashed lock file for the named packages (or all but them), with their hashes.

Standard library only. The pipeline image's ``wheels`` stage installs the build backend (setuptools, wheel) from
the lock, then builds wheels of the packages that have none on PyPI (kfp, kfp-server-api, kfp-kubernetes,
google-apitools, pyfarmhash, dill) from their hash-checked sdists with ``--no-build-isolation`` (the locked
setuptools, not whatever pip's build isolation would download); the environment stage installs the rest of the
lock, hash-checked, plus those wheels::

    python lock_subset.py locks/pipeline.txt setuptools wheel > backend.txt
    python lock_subset.py locks/pipeline.txt --except kfp pyfarmhash > rest.txt
"""

from __future__ import annotations

import re
import sys

_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==")


def canonical(name: str) -> str:
    """Normalize a distribution name the way PEP 503 does (case, runs of ``-_.``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(text: str) -> dict[str, str]:
    """Split a ``uv pip compile --generate-hashes`` / pip-compile lock into ``{canonical name: entry text}``.

    An entry is the ``name==version`` line and its ``--hash`` continuation lines; comments are dropped.
    """
    found: dict[str, str] = {}
    name, lines = None, []
    for line in text.splitlines() + [""]:
        match = _ENTRY.match(line)
        if name is not None and line.strip().startswith("--hash="):
            lines.append(line.rstrip())
            continue
        if name is not None:
            found[name] = "\n".join(lines)
            name, lines = None, []
        if match:
            name, lines = canonical(match.group(1)), [line.rstrip()]
    return found


def subset(text: str, names: list[str]) -> str:
    """Return the lock entries for ``names`` (each must be present and hashed) as a requirements file.

    Raises:
        ValueError: A name is not in the lock, or its entry has no hash.
    """
    table = entries(text)
    out = []
    for name in names:
        entry = table.get(canonical(name))
        if entry is None:
            raise ValueError(f"{name}: not in the lock file")
        if "--hash=" not in entry:
            raise ValueError(f"{name}: the lock entry has no --hash (expected a lock made with --generate-hashes)")
        out.append(entry)
    return "\n".join(out) + "\n"


def without(text: str, names: list[str]) -> str:
    """Return every hashed lock entry except those for ``names`` (each must be present) as a requirements file.

    Raises:
        ValueError: A name is not in the lock, or a kept entry has no hash.
    """
    table = entries(text)
    dropped = {canonical(name) for name in names}
    for name in names:
        if canonical(name) not in table:
            raise ValueError(f"{name}: not in the lock file")
    return subset(text, [name for name in table if name not in dropped])


def main(argv: list[str] | None = None) -> int:
    """Command line: ``lock_subset.py LOCK [--except] NAME [NAME ...]`` prints the entries; exit 2 on a missing name.

    With ``--except``, every entry but the named ones is printed.
    """
    args = sys.argv[1:] if argv is None else argv
    exclude = len(args) > 1 and args[1] == "--except"
    if exclude:
        args = [args[0], *args[2:]]
    if len(args) < 2:
        print("usage: lock_subset.py LOCK [--except] NAME [NAME ...]", file=sys.stderr)
        return 2
    path, names = args[0], args[1:]
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        sys.stdout.write(without(text, names) if exclude else subset(text, names))
    except (OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
