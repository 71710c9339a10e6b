"""Decisions a component takes for the user (a column dropped, a value clipped, a task chosen), written once.

A decision is never only a log line: each component returns its decisions, puts them in its output
artifacts' metadata under :data:`METADATA_KEY` (the KFP UI shows them) and in its report, and the local
runner's summary lists every task's decisions. Standard library only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

#: The artifact metadata key that holds a task's decisions (a list of :meth:`Decision.as_dict`).
METADATA_KEY = "decisions"


@dataclasses.dataclass(frozen=True)
class Decision:
    """One decision taken for the user.

    Attributes:
        step: The component that took it (``ingest``, ``validate``, ``train``, ``evaluate``, ...).
        subject: What it is about: a column or parameter name ("" for the whole dataset).
        action: What was done, one word or two: ``dropped``, ``expanded``, ``capped``, ``classification``,
            ``warning``, ...
        reason: Why, with the numbers that decided it.
    """

    step: str
    subject: str
    action: str
    reason: str

    def line(self) -> str:
        """Return the decision in one line, as the run summary shows it."""
        subject = f"{self.subject}: " if self.subject else ""
        return f"[{self.step}] {subject}{self.action}: {self.reason}"

    def as_dict(self) -> dict[str, str]:
        """Return the JSON form stored in artifact metadata."""
        return dataclasses.asdict(self)


def to_metadata(decisions: Iterable[Decision]) -> list[dict[str, str]]:
    """Return decisions as artifact metadata (a JSON list)."""
    return [d.as_dict() for d in decisions]


def from_metadata(items: Any) -> list[Decision]:
    """Read decisions back from artifact metadata; entries that are not decisions are skipped."""
    names = {f.name for f in dataclasses.fields(Decision)}
    out = []
    if not isinstance(items, list):  # e.g. a Metrics artifact's "decisions" count
        return out
    for item in items:
        if isinstance(item, dict) and names <= set(item):
            out.append(Decision(**{k: str(item[k]) for k in names}))
    return out


def render_markdown(decisions: Iterable[Decision]) -> str:
    """Render a Markdown table of decisions ("" when there are none)."""
    rows = list(decisions)
    if not rows:
        return ""
    lines = ["| step | column / field | decision | why |", "| --- | --- | --- | --- |"]
    for d in rows:
        cells = [d.step, d.subject or "(dataset)", d.action, d.reason]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"
