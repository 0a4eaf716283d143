from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentd.core.governance import (
    ActionStats,
    Approval,
    DayLine,
    ProposalLine,
    ReportData,
    TripLine,
    add_approval,
    expansion_candidates,
    governance_families,
    iso_week,
    next_level,
    parse_level,
    parse_moment,
    parse_period,
    render_report,
    status_text,
)
from agentd.core.metrics import MetricCounts, compute_rates
from agentd.core.policy import AutonomyLevel
from agentd.core.readiness import ReadinessFacts, assess
from agentd.errors import Conflict, InvalidArgument
from agentd.services.metrics import exposition

NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "level"),
    [("L3", "L3"), ("l3+", "L3+"), (" L4 ", "L4"), ("L4+", "L4+")],
)
def test_parse_level(text: str, level: str) -> None:
    assert parse_level(text) is AutonomyLevel(level)


@pytest.mark.parametrize("text", ["L5", "L2", "", "L4++", None, 4])
def test_parse_level_refuses_unknown_names(text: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_level(text)
    assert "L3, L3+, L4, L4+" in caught.value.message
    assert caught.value.details["field"] == "level"


def test_next_level_climbs_one_rung_and_stops_at_the_top() -> None:
    ladder = [AutonomyLevel.L3]
    while (up := next_level(ladder[-1])) is not None:
        ladder.append(up)
    assert [str(level) for level in ladder] == ["L3", "L3+", "L4", "L4+"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("30m", NOW - timedelta(minutes=30)),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(days=14)),
        ("1.5h", NOW - timedelta(minutes=90)),
        ("2025-03-01", datetime(2025, 3, 1, tzinfo=UTC)),
        ("2025-03-01T10:00:00", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01T10:00:00+02:00", datetime(2025, 3, 1, 8, tzinfo=UTC)),
    ],
)
def test_parse_moment(text: str, expected: datetime) -> None:
    assert parse_moment(text, NOW, "since") == expected


@pytest.mark.parametrize("text", ["yesterday", "5x", "-1d", "2025-13-01", ""])
def test_parse_moment_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_moment(text, NOW, "until")
    assert caught.value.details["field"] == "until"


def test_parse_period_defaults_and_order() -> None:
    assert parse_period(None, None, NOW, timedelta(hours=24)) == (NOW - timedelta(days=1), NOW)
    assert parse_period(None, "1d", NOW, timedelta(hours=1)) == (
        NOW - timedelta(days=1, hours=1),
        NOW - timedelta(days=1),
    )
    for since, until in (("1h", "2h"), ("now", "now")):
        with pytest.raises(InvalidArgument) as caught:
            parse_period(since, until, NOW, timedelta(hours=1))
        assert caught.value.details["field"] == "since"


def test_approvals_need_distinct_users() -> None:
    first = Approval("alice", NOW)
    assert add_approval([], first, 2) is False
    with pytest.raises(Conflict) as caught:
        add_approval([first], Approval("alice", NOW + timedelta(minutes=1)), 2)
    assert "alice has already approved" in caught.value.message
    assert add_approval([first], Approval("bob", NOW), 2) is True
    assert add_approval([first], Approval("bob", NOW), 3) is False


def test_expansion_candidates_need_a_clean_record_in_the_autonomous_tier() -> None:
    stats = {
        "create_briefing": ActionStats(succeeded=10),
        "log_interaction": ActionStats(succeeded=50),  # already allowlisted
        "schedule_meeting": ActionStats(succeeded=9),  # one short
        "send_chat_message": ActionStats(succeeded=40, failed=1),
        "send_routine_response": ActionStats(succeeded=40, rolled_back=1),
        "send_proposal": ActionStats(succeeded=99),  # approval_required tier: never auto
    }
    tier = {
        "create_briefing",
        "log_interaction",
        "schedule_meeting",
        "send_chat_message",
        "send_routine_response",
    }
    assert expansion_candidates(stats, {"log_interaction"}, tier, 10) == ("create_briefing",)
    assert expansion_candidates(stats, set(), tier, 9) == (
        "create_briefing",
        "log_interaction",
        "schedule_meeting",
    )


@pytest.mark.parametrize(
    ("moment", "week"),
    [
        (datetime(2025, 3, 5, tzinfo=UTC), "2025-W10"),
        (datetime(2024, 12, 30, tzinfo=UTC), "2025-W01"),  # ISO year differs from the calendar's
        (datetime(2021, 1, 3, 23, tzinfo=UTC), "2020-W53"),
    ],
)
def test_iso_week(moment: datetime, week: str) -> None:
    assert iso_week(moment) == week


def test_status_text() -> None:
    assert status_text("L3+", False, []) == "autonomy L3+"
    assert (
        status_text("L3", True, ["repeated_command_failures:x", "high_error_rate"])
        == "autonomy L3; KILL SWITCH ON; breaker tripped: high_error_rate, "
        "repeated_command_failures:x"
    )


def test_governance_gauges_are_valid_prometheus_lines() -> None:
    text = exposition(
        governance_families(
            AutonomyLevel.L4, True, ["high_error_rate"], ["send_chat_message"], {"site": 'eu"1'}
        )
    )
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == [
        'agentd_autonomy_level{site="eu\\"1"} 2.0',
        'agentd_kill_switch{site="eu\\"1"} 1.0',
        'agentd_breakers_tripped{site="eu\\"1"} 1.0',
        'agentd_breaker_tripped{breaker="high_error_rate",site="eu\\"1"} 1.0',
        'agentd_action_type_paused{action_type="send_chat_message",site="eu\\"1"} 1.0',
    ]
    quiet = exposition(governance_families(AutonomyLevel.L3, False, [], [], {}))
    assert "agentd_breaker_tripped" not in quiet and "agentd_kill_switch 0.0" in quiet


def _facts(**change: Any) -> ReadinessFacts:
    values: dict[str, Any] = {
        "days_at_l3": 10,
        "success_rate": None,
        "approval_rate": None,
        "rollback_rate": None,
        "critical_incidents": 0,
        "breaker_rules_enabled": 4,
        "breaker_rules_enforcing": 2,
        "kill_switch_tested_at": None,
        "metrics_written_at": NOW,
        "rollback_succeeded_at": None,
        "audit_verified_at": NOW,
        "audit_chain_intact": True,
    }
    return ReadinessFacts(**{**values, **change})


def _report(**change: Any) -> str:
    counts = MetricCounts(
        intents_total=4,
        executions_succeeded=9,
        executions_failed=1,
        incidents_by_severity={"high": 1},
    )
    data: dict[str, Any] = {
        "week": "2025-W10",
        "start": NOW - timedelta(days=7),
        "end": NOW,
        "generated_at": NOW,
        "level": "L3",
        "configured_level": "L3+",
        "kill_switch": False,
        "paused_action_types": ("send_chat_message",),
        "counts": counts,
        "rates": compute_rates(counts),
        "days": [DayLine("03-05", 9, 1, 0, 0.9, 0.0), DayLine("03-04", 0, 0, 0, None, None)],
        "readiness": assess(_facts(), [], NOW),
        "trips": [
            TripLine(
                NOW,
                "high_error_rate",
                "revert_to_l3",
                "critical",
                False,
                "error | rate",
                None,
                None,
            )
        ],
        "tripped_now": ("high_error_rate",),
        "proposal": None,
        "proposal_note": "Not proposed: not ready.",
        "chart_file": "governance-2025-W10.svg",
    }
    return render_report(ReportData(**{**data, **change}))


def test_report_shows_trend_metrics_breakers_readiness_and_why_nothing_was_proposed() -> None:
    text = _report()
    assert text.startswith("# Governance report 2025-W10\n")
    assert "Autonomy level L3 (configured L3+)" in text
    assert "breakers tripped now: high_error_rate" in text
    assert "![Daily success and rollback rates](governance-2025-W10.svg)" in text
    assert "| 03-05 | 9 | 1 | 0 | 90.00% | 0.00% |" in text
    assert "| 03-04 | 0 | 0 | 0 | n/a | n/a |" in text
    assert "| Success rate | 90.00% |" in text and "| Incidents | 1 (high 1) |" in text
    assert "error \\| rate" in text and "| not yet |" in text  # pipes escaped in cells
    assert "Paused by breakers: send_chat_message." in text
    assert "### Technical: " in text and "### Organisational: " in text
    assert "- `days_at_l3`" in text  # a blocker
    assert text.rstrip().endswith("Not proposed: not ready.")


def test_report_names_the_proposal_and_how_to_decide_it() -> None:
    proposal = ProposalLine("scope_1", "L3", "L3+", ("create_briefing",), NOW, True)
    text = _report(proposal=proposal, chart_file=None)
    assert "![" not in text
    assert "Proposed: `scope_1`: level L3 → L3+; allowlist additions: create_briefing" in text
    assert "agentctl governance approve scope_1" in text
    waiting = _report(proposal=ProposalLine("scope_1", "L3", "L4", (), NOW, False))
    assert "Still waiting: `scope_1`" in waiting and "allowlist additions: none" in waiting


def test_report_values_from_outside_cannot_inject_html_links_or_images() -> None:
    text = _report(
        paused_action_types=("<img src=x onerror=alert(1)>",),
        tripped_now=("[reset](https://evil.example)",),
        trips=[
            TripLine(
                NOW,
                "high_error_rate",
                "revert_to_l3",
                "critical",
                False,
                "rate of ![](https://tracker.example/p.png) <script>x</script>",
                NOW,
                "mallory<b>",
            )
        ],
        proposal=ProposalLine("scope_1", "L3", "L3+", ("send_<i>bulk</i>",), NOW, True),
    )
    assert "<img" not in text and "<script" not in text and "<b>" not in text and "<i>" not in text
    assert "Paused by breakers: &lt;img src=x onerror=alert(1)>." in text
    assert "breakers tripped now: \\[reset\\](https://evil.example)" in text
    assert "!\\[\\](https://tracker.example/p.png) &lt;script>x&lt;/script>" in text
    assert "by mallory&lt;b>" in text
    assert "allowlist additions: send\\_&lt;i>bulk&lt;/i>" in text
    # The report's own Markdown is kept: the chart, code spans, emphasis.
    assert "![Daily success and rollback rates](governance-2025-W10.svg)" in text
    assert "(`days_at_l3`)" in text or "`days_at_l3`" in text
