from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest

from agentd.core.digest import (
    BlockedItem,
    BreakerEvent,
    DigestData,
    ExecutedItem,
    FailedOperation,
    GoalLine,
    HandoffLine,
    PendingItem,
    digest_path,
    relative_link,
    render_digest,
)
from agentd.core.goals import GoalType, Verdict
from agentd.core.patterns import EngagementDirection, Pattern, PatternKind, RiskSeverity

T = TypeVar("T")
DAY = date(2024, 6, 3)
GENERATED = datetime(2024, 6, 4, 0, 5, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: int = 3) -> datetime:
    return datetime(2024, 6, day, hour, minute, tzinfo=UTC)


def pattern(
    account: str,
    kind: PatternKind,
    qualifier: RiskSeverity | EngagementDirection | None,
    summary: str,
) -> Pattern:
    return Pattern(
        account=account,
        kind=kind,
        severity=qualifier if isinstance(qualifier, RiskSeverity) else None,
        direction=qualifier if isinstance(qualifier, EngagementDirection) else None,
        evidence=("i1", "i2", "i3"),
        detected_at=at(6),
        summary=summary,
        key=f"{account}|{kind.value}|2024-05-30",
        rules=("r",),
    )


FULL = DigestData(
    day=DAY,
    generated_at=GENERATED,
    auto_executed=[
        ExecutedItem(
            "int-2", "globex", "send_chat_message", at(14), "checked in after quiet spell"
        ),
        ExecutedItem(
            "int-1", "acme", "send_follow_up_email", at(9, 30), "follow-up on buying signal"
        ),
    ],
    pending=[
        PendingItem("int-7", "acme", "escalate_to_management", at(10), "approval_required tier"),
        PendingItem("int-5", "globex", "send_proposal", at(8, 15, day=1), "approval_required tier"),
    ],
    blocked=[
        BlockedItem("int-9", "initech", "approve_discount", at(11), "HARD_STOP", "never executes")
    ],
    goals=[
        GoalLine("g-2", "Q2 revenue", GoalType.REVENUE, Verdict.ON_TRACK, 60, 100, at(0, day=30)),
        GoalLine("g-1", "June activity", GoalType.ACTIVITY, Verdict.BEHIND, 12, 80, at(0, day=30)),
    ],
    patterns=[
        pattern(
            "initech",
            PatternKind.ENGAGEMENT_CHANGE,
            EngagementDirection.UP,
            "inbound interactions up",
        ),
        pattern(
            "acme",
            PatternKind.RISK,
            RiskSeverity.CRITICAL,
            "3 inbound support tickets in the last 7 days",
        ),
    ],
    breaker_events=[
        BreakerEvent(at(13), "high_error_rate", "revert_to_l3", "critical", "error rate 7% > 5%")
    ],
    failures=[
        FailedOperation(
            "op-4",
            "acme",
            "update_seo_meta",
            at(15),
            "selector #save not found",
            tuple(f"/var/lib/agentd/screenshots/op-4/{n:03d}.png" for n in range(1, 6)),
        )
    ],
    handoffs=[
        HandoffLine("exe-8", "globex", "send_proposal", at(16), "done", "sent from the CRM"),
    ],
)


def test_headline_counts_come_first() -> None:
    text = render_digest(FULL, digest_dir="/var/lib/agentd/digest")
    title, blank, headline = text.splitlines()[:3]
    assert title == "# agentd digest 2024-06-03"
    assert blank == ""
    assert headline == (
        "On 2024-06-03: 2 actions ran autonomously, 2 waiting for approval"
        " (oldest since 2024-06-01 08:15 UTC), 1 blocked, 1 of 2 goals on track or completed,"
        " 2 new patterns (1 critical risk), 1 breaker event, 1 failed operation."
    )


def test_sections_show_what_a_person_needs() -> None:
    text = render_digest(FULL, digest_dir="/var/lib/agentd/digest")
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Ran autonomously",
        "## Waiting for approval",
        "## Blocked",
        "## Goals",
        "## New patterns",
        "## Breaker events",
        "## Failed operations",
        "## Handed off to a person",
    ]
    lines = text.splitlines()
    # Chronological, with the time and what it was.
    ran = [line for line in lines if "send_follow_up_email" in line or "send_chat_message" in line]
    assert ran[0].startswith("| 2024-06-03 09:30 UTC | send_follow_up_email | acme | int-1 |")
    # Oldest pending first, with how long it has waited at generation time.
    assert "| 2024-06-01 08:15 UTC | 2 d 15 h | send_proposal | globex | int-5 |" in text
    assert "| 2024-06-03 10:00 UTC | 14 h 5 min | escalate_to_management | acme | int-7 |" in text
    assert "| approve_discount | initech | int-9 | HARD_STOP | never executes |" in text
    # Goals off track first.
    goals = [line for line in lines if "June activity" in line or "Q2 revenue" in line]
    assert goals == [
        "| June activity | activity | behind | 12 / 80 (15%) | 2024-06-30 00:00 UTC |",
        "| Q2 revenue | revenue | on track | 60 / 100 (60%) | 2024-06-30 00:00 UTC |",
    ]
    patterns = [
        line for line in lines if line.startswith("| acme |") or line.startswith("| initech |")
    ]
    assert (
        patterns[0]
        == "| acme | risk (critical) | 3 inbound support tickets in the last 7 days | 3 items |"
    )
    assert patterns[1].startswith("| initech | engagement change (up) |")
    assert "| high_error_rate | revert_to_l3 | critical | error rate 7% > 5% |" in text
    # The last screenshots, linked relative to the digest file.
    assert (
        "| selector #save not found | [003.png](<../screenshots/op-4/003.png>)"
        " [004.png](<../screenshots/op-4/004.png>) [005.png](<../screenshots/op-4/005.png>)"
        " (+2 earlier) |"
    ) in text
    assert (
        "| 2024-06-03 16:00 UTC | send_proposal | globex | exe-8 | done | sent from the CRM |"
    ) in text


def test_empty_day_says_none_everywhere() -> None:
    text = render_digest(DigestData(day=DAY, generated_at=GENERATED))
    assert "On 2024-06-03: 0 actions ran autonomously, 0 waiting for approval, 0 blocked," in text
    assert text.count("None.") == 8
    assert "|" not in text
    assert text.endswith("None.\n")


def test_rendering_is_deterministic() -> None:
    rnd = random.Random(5)

    def mixed(items: Sequence[T]) -> list[T]:
        out = list(items)
        rnd.shuffle(out)
        return out

    shuffled = replace(
        FULL,
        auto_executed=mixed(FULL.auto_executed),
        pending=mixed(FULL.pending),
        goals=mixed(FULL.goals),
        patterns=mixed(FULL.patterns),
    )
    assert render_digest(shuffled) == render_digest(FULL)


def test_cells_are_escaped_and_shortened() -> None:
    data = DigestData(
        day=DAY,
        generated_at=GENERATED,
        blocked=[
            BlockedItem("int|1", "acme", "x", at(1), "CODE", "line one\nline | two " + "y" * 300)
        ],
    )
    [row] = [line for line in render_digest(data).splitlines() if line.startswith("| 2024")]
    assert "int\\|1" in row
    assert "line one line \\| two" in row
    assert row.endswith("… |")
    assert row.count(" | ") == 5


def test_relative_screenshot_paths_are_kept_and_missing_ones_said() -> None:
    failure = FailedOperation("op-1", "acme", "wf", at(1), "boom", ("../screenshots/op-1/001.png",))
    bare = FailedOperation("op-2", "acme", "wf", at(2), "boom")
    text = render_digest(DigestData(day=DAY, generated_at=GENERATED, failures=[failure, bare]))
    assert "[001.png](<../screenshots/op-1/001.png>) |" in text
    assert "| boom | none |" in text


@pytest.mark.parametrize(
    ("target", "base", "expected"),
    [
        ("/s/screenshots/op/1.png", "/s/digest", "../screenshots/op/1.png"),
        ("/s/digest/img.png", "/s/digest", "img.png"),
        ("/other/x.png", "/s/digest", "../../other/x.png"),
        ("shots/x.png", "/s/digest", "shots/x.png"),
    ],
)
def test_relative_link(target: str, base: str, expected: str) -> None:
    assert relative_link(target, base) == expected


def test_digest_path() -> None:
    assert digest_path(DAY) == "digest/2024-06-03.md"
    assert digest_path(DAY + timedelta(days=1)) == "digest/2024-06-04.md"
