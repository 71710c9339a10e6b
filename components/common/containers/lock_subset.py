"""Print the entries of a hashed lock file for the named packages, with their hashes (standard library only).

The image builds install the build backend (setuptools, wheel) from the lock first, then the whole lock with
``--no-build-isolation``: the packages that build from source (kfp, kfp-server-api, kfp-kubernetes,
google-apitools, pyfarmhash) are then built with the locked, hash-checked setuptools instead of whatever
version pip's build isolation would download::

    python lock_subset.py locks/pipeline.txt setuptools wheel > build-requirements.txt
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


def main(argv: list[str] | None = None) -> int:
    """Command line: ``lock_subset.py LOCK NAME [NAME ...]`` prints the entries; exit 2 on a missing name."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: lock_subset.py LOCK NAME [NAME ...]", file=sys.stderr)
        return 2
    path, names = args[0], args[1:]
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        sys.stdout.write(subset(text, names))
    except (OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
