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
    DecisionItem,
    DigestData,
    ExecutedItem,
    FailedExecution,
    FailedOperation,
    FailedTask,
    GoalLine,
    HandoffLine,
    PendingItem,
    RollbackItem,
    digest_path,
    relative_link,
    render_digest,
)
from agentd.core.goals import GoalType, Verdict
from agentd.core.patterns import EngagementDirection, Pattern, PatternKind, RiskSeverity
from agentd.errors import InvalidArgument

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
    failed_executions=[
        FailedExecution(
            "exe-3", "int-3", "acme", "update_seo_meta", at(15), True, "STEP_FAILED", "no save"
        ),
        FailedExecution(
            "exe-8", "int-8", "globex", "log_interaction", at(12), False, "TRUSTED_MODE_PAUSED"
        ),
    ],
    rollbacks=[
        RollbackItem(
            "exe-0", "acme", "update_seo_meta", at(16), "rolled back", "SOFT_UNDO", "dana", "typo"
        )
    ],
    decisions=[
        DecisionItem("int-8", "globex", "log_interaction", at(11), "approved", "dana", "fine"),
        DecisionItem("int-6", "acme", "send_proposal", at(11, 30), "rejected", "lee", "too soon"),
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
            "step 5 of 10: save the product",
            "/var/lib/agentd/screenshots/op-4/005.png",
            "exe-3",
        )
    ],
    failed_tasks=[FailedTask("pattern_detection", at(2), "database is locked")],
    handoffs=[
        HandoffLine("exe-8", "globex", "send_proposal", at(16), "done", "sent from the CRM"),
        HandoffLine("exe-9", "acme", "negotiate_terms", at(17), "open"),
    ],
)


def test_headline_counts_come_first() -> None:
    text = render_digest(FULL, digest_dir="/var/lib/agentd/digest")
    title, blank, headline = text.splitlines()[:3]
    assert title == "# agentd digest 2024-06-03"
    assert blank == ""
    assert headline == (
        "On 2024-06-03: 2 autonomous actions succeeded, 1 failed (and 1 approved by a person),"
        " 1 rollback, 2 decisions by a person (1 approved, 1 rejected), 2 waiting for approval"
        " (oldest since 2024-06-01 08:15 UTC), 1 blocked, 1 of 2 goals on track or completed,"
        " 2 new patterns (1 critical risk), 1 breaker event, 1 failed operation,"
        " 1 failed task run, 2 hand-offs to a person (1 still open)."
    )


def test_sections_show_what_a_person_needs() -> None:
    text = render_digest(FULL, digest_dir="/var/lib/agentd/digest")
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Autonomous actions that succeeded",
        "## Executions that failed",
        "## Rollbacks",
        "## Decisions by a person",
        "## Waiting for approval",
        "## Blocked",
        "## Goals",
        "## New patterns",
        "## Breaker events",
        "## Failed operations",
        "## Failed task runs",
        "## Handed off to a person",
    ]
    lines = text.splitlines()
    # Newest first, with the time and what it was.
    ran = [line for line in lines if "send_follow_up_email" in line or "send_chat_message" in line]
    assert ran[0].startswith("| 2024-06-03 14:00 UTC | send_chat_message | globex | int-2 |")
    assert ran[1].startswith("| 2024-06-03 09:30 UTC | send_follow_up_email | acme | int-1 |")
    # A failure is not among the actions that ran; it says who approved it.
    assert "exe-3" not in "\n".join(ran)
    assert (
        "| 2024-06-03 15:00 UTC | update_seo_meta | acme | exe-3 | policy (autonomous)"
        " | STEP_FAILED | no save |" in text
    )
    assert "| exe-8 | a person | TRUSTED_MODE_PAUSED |" in text
    assert (
        "| 2024-06-03 16:00 UTC | exe-0 | update_seo_meta | acme | SOFT_UNDO | rolled back"
        " | dana | typo |" in text
    )
    decided = [line for line in lines if "| dana |" in line or "| lee |" in line][1:]
    assert decided == [
        "| 2024-06-03 11:30 UTC | rejected | lee | send_proposal | acme | int-6 | too soon |",
        "| 2024-06-03 11:00 UTC | approved | dana | log_interaction | globex | int-8 | fine |",
    ]
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
    # The operation's account, workflow and failing step, linked relative to the digest file.
    assert (
        "| 2024-06-03 15:00 UTC | op-4 | acme | update_seo_meta | exe-3"
        " | step 5 of 10: save the product | selector #save not found"
        " | [005.png](<../screenshots/op-4/005.png>) |"
    ) in text
    handed = [line for line in lines if "| exe-8 | done |" in line or "| exe-9 | open |" in line]
    assert handed == [
        "| 2024-06-03 17:00 UTC | negotiate_terms | acme | exe-9 | open |  |",
        "| 2024-06-03 16:00 UTC | send_proposal | globex | exe-8 | done | sent from the CRM |",
    ]
    assert "| 2024-06-03 02:00 UTC | pattern_detection | database is locked |" in text


def test_a_list_cut_short_says_so_and_counts_the_true_total() -> None:
    shown = [
        ExecutedItem(f"int-{n:03d}", "acme", "send_chat_message", at(10, n % 60), "x")
        for n in range(3)
    ]
    data = DigestData(
        day=DAY,
        generated_at=GENERATED,
        auto_executed=shown,
        failed_executions=[
            FailedExecution("exe-1", "int-9", "acme", "a", at(9), True, "STEP_FAILED")
        ],
        decisions=[DecisionItem("int-5", "acme", "a", at(9), "approved", "dana")],
        totals={
            "auto_executed": 601,
            "failed_executions": 40,
            "failed_executions:autonomous": 30,
            "decisions": 7,
            "decisions:approved": 2,
        },
    )
    text = render_digest(data)
    assert text.splitlines()[2].startswith(
        "On 2024-06-03: 601 autonomous actions succeeded, 30 failed (and 10 approved by a"
        " person), 0 rollbacks, 7 decisions by a person (2 approved, 5 rejected),"
    )
    section = text.split("## Autonomous actions that succeeded\n\n")[1].split("## ")[0]
    assert section.startswith("Showing 3 of 601 (newest first).\n")
    assert "Showing 1 of 40 (newest first)." in text
    assert "Showing 1 of 7 (newest first)." in text
    assert text.count("Showing ") == 3  # lists shown whole say nothing


@pytest.mark.parametrize(
    "totals",
    [{"auto_executed": 0}, {"nope": 3}, {"generated_at": 3}, {"blocked:approved": 1}],
)
def test_totals_that_cannot_be_true_are_refused(totals: dict[str, int]) -> None:
    shown = [ExecutedItem("int-1", "acme", "a", at(1))]
    with pytest.raises(InvalidArgument):
        DigestData(day=DAY, generated_at=GENERATED, auto_executed=shown, totals=totals)


def test_empty_day_says_none_everywhere() -> None:
    text = render_digest(DigestData(day=DAY, generated_at=GENERATED))
    assert (
        "On 2024-06-03: 0 autonomous actions succeeded, 0 failed, 0 rollbacks,"
        " 0 decisions by a person, 0 waiting for approval, 0 blocked," in text
    )
    assert text.count("None.") == 12
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
        failed_executions=mixed(FULL.failed_executions),
        decisions=mixed(FULL.decisions),
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
    failure = FailedOperation(
        "op-1", "acme", "wf", at(1), "boom", "step 1 of 2: open", "../screenshots/op-1/001.png"
    )
    bare = FailedOperation("op-2", "acme", "wf", at(2), "boom")
    text = render_digest(DigestData(day=DAY, generated_at=GENERATED, failures=[failure, bare]))
    assert "| step 1 of 2: open | boom | [001.png](<../screenshots/op-1/001.png>) |" in text
    assert "| op-2 | acme | wf | - | - | boom | none |" in text


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


def test_values_from_outside_cannot_inject_html_links_or_images() -> None:
    # Rationales, account and goal names and pattern summaries come from
    # clients and imports; rendered, none of them may become HTML, a link or
    # an image (fetched when the digest is opened).
    script = "<script>alert(1)</script>"
    link = "[approve now](https://evil.example)"
    image = "![](https://tracker.example/p.png)"
    data = DigestData(
        day=DAY,
        generated_at=GENERATED,
        auto_executed=[ExecutedItem("int-1", "acme<b>", "send_follow_up_email", at(9), script)],
        pending=[PendingItem("int-2", link, "send_proposal", at(8), image)],
        goals=[
            GoalLine(
                "g-1",
                "<img src=x onerror=alert(1)>",
                GoalType.ACTIVITY,
                Verdict.BEHIND,
                1,
                2,
                at(0, day=30),
            )
        ],
        patterns=[pattern("acme", PatternKind.BUYING_SIGNAL, None, "see ![x](http://t/x.png)")],
    )
    text = render_digest(data)
    assert "<script" not in text and "<b>" not in text and "<img" not in text
    assert "&lt;script>alert(1)&lt;/script>" in text
    assert "\\[approve now\\](https://evil.example)" in text
    assert "!\\[\\](https://tracker.example/p.png)" in text
    assert "see !\\[x\\](http://t/x.png)" in text
    # Every "[" left is an escaped one (the links made here are screenshot links only).
    assert text.count("[") == text.count("\\[")


def test_handoffs_cut_short_count_the_true_total_and_escape_the_note() -> None:
    data = DigestData(
        day=DAY,
        generated_at=GENERATED,
        handoffs=[HandoffLine("exe-1", "acme", "send_proposal", at(9), "failed", "no | stock")],
        totals={"handoffs": 40, "handoffs:open": 12},
    )
    text = render_digest(data)
    assert text.splitlines()[2].endswith(", 40 hand-offs to a person (12 still open).")
    section = text.split("## Handed off to a person\n\n")[1]
    assert section.startswith("Showing 1 of 40 (newest first).\n")
    assert "| send_proposal | acme | exe-1 | failed | no \\| stock |" in section
    with pytest.raises(InvalidArgument):
        DigestData(day=DAY, generated_at=GENERATED, totals={"handoffs:done": 1})
