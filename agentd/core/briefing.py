"""Briefing documents: what to know about an account before the next contact.

Pure: the caller reads the interactions and patterns, and the summary (the
model's, when one is configured, else :func:`agentd.core.summary.extractive_summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agentd.core.interactions import Interaction
from agentd.core.patterns import Pattern

#: Interactions listed in a briefing, newest first.
MAX_LISTED = 15
#: The longest note the back-office takes.
NOTE_MAX = 2000


def _pattern_line(p: Pattern) -> str:
    qualifier = p.severity or p.direction
    label = p.kind.value.replace("_", " ") + (f" ({qualifier.value})" if qualifier else "")
    return f"- {label}, {p.detected_at:%Y-%m-%d}: {p.summary}"


def _interaction_line(i: Interaction) -> str:
    tone = "" if i.sentiment is None else f", sentiment {i.sentiment:+.1f}"
    what = f": {i.summary}" if i.summary else ""
    return f"- {i.at:%Y-%m-%d %H:%M} {i.kind.value} {i.direction.value}{tone}{what}"


def render_briefing(
    account: str,
    *,
    now: datetime,
    summary: str,
    method: str,
    interactions: Sequence[Interaction],
    patterns: Sequence[Pattern],
) -> str:
    """Return the briefing document (Markdown)."""
    recent = sorted(interactions, key=lambda i: (i.at, i.id), reverse=True)[:MAX_LISTED]
    found = sorted(patterns, key=lambda p: (p.detected_at, p.key), reverse=True)
    lines = [
        f"# Briefing: {account}",
        "",
        f"Prepared {now:%Y-%m-%d %H:%M} UTC ({method} summary) from {len(interactions)}"
        f" interactions and {len(patterns)} patterns.",
        "",
        "## Summary",
        "",
        summary.strip() or "Nothing recorded yet.",
        "",
        "## Patterns",
        "",
        *([_pattern_line(p) for p in found] or ["None detected."]),
        "",
        "## Recent interactions",
        "",
        *([_interaction_line(i) for i in recent] or ["None recorded."]),
    ]
    return "\n".join(lines) + "\n"


def briefing_note(document: str, path: str) -> str:
    """Return the internal note that attaches a briefing to the account (at most NOTE_MAX)."""
    tail = f"\n\nFull briefing: {path}"
    room = NOTE_MAX - len(tail)
    body = document.strip()
    if len(body) > room:
        body = body[: room - 1].rstrip() + "…"
    return body + tail
