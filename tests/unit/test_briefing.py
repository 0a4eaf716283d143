"""Briefing documents and the note that attaches them: deterministic, bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentd.core.briefing import NOTE_MAX, briefing_note, render_briefing
from agentd.core.interactions import Direction, Interaction, InteractionKind
from agentd.core.patterns import Pattern, PatternKind, RiskSeverity

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


def test_the_briefing_lists_patterns_and_interactions_newest_first() -> None:
    items = [
        Interaction(f"i{n}", "acme", InteractionKind.EMAIL, Direction.IN, NOW - timedelta(days=n),
                    0.5 if n == 1 else None, f"email {n}")
        for n in range(1, 20)
    ]  # fmt: skip
    risk = Pattern(
        "acme", PatternKind.RISK, RiskSeverity.CRITICAL, None, ("i1",), NOW, "3 tickets", "k", ()
    )
    text = render_briefing(
        "acme", now=NOW, summary="Busy week.", method="extractive", interactions=items,
        patterns=[risk],
    )  # fmt: skip
    assert text.startswith("# Briefing: acme\n\nPrepared 2024-06-03 12:00 UTC (extractive")
    assert "- risk (critical), 2024-06-03: 3 tickets" in text
    listed = [line for line in text.splitlines() if line.startswith("- 2024")]
    assert len(listed) == 15 and "email 1" in listed[0] and "sentiment +0.5" in listed[0]
    assert text == render_briefing(
        "acme", now=NOW, summary="Busy week.", method="extractive", interactions=items,
        patterns=[risk],
    )  # fmt: skip
    empty = render_briefing(
        "acme", now=NOW, summary="", method="extractive", interactions=[], patterns=[]
    )
    assert "Nothing recorded yet." in empty and "None detected." in empty


def test_the_note_fits_the_back_office_and_names_the_file() -> None:
    note = briefing_note("x" * 5000, "/var/lib/agentd/briefings/acme/exe_1.md")
    assert len(note) == NOTE_MAX and note.endswith(
        "Full briefing: /var/lib/agentd/briefings/acme/exe_1.md"
    )
    assert briefing_note("short", "/p") == "short\n\nFull briefing: /p"
