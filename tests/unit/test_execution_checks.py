from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from agentd.core.execution import (
    ExecutionCheckInputs,
    ExecutionLimitCounter,
    ExecutionOutcome,
    ExecutionReason,
    check_execution,
    limit_day_bounds,
)
from agentd.core.windows import validate_window
from agentd.errors import InvalidArgument

# Monday 2025-03-03 10:00 UTC
NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
OFFICE = validate_window("UTC", range(5), "09:00", "17:00")

GOOD = ExecutionCheckInputs(
    now=NOW,
    intent_status="APPROVED",
    kill_switch_on=False,
    trusted_mode="ACTIVE",
    count_today=0,
    consent_present=True,
    before_snapshot_captured=True,
    window=OFFICE,
)

ORDER = (
    "intent_approved",
    "kill_switch",
    "trusted_mode",
    "daily_limit",
    "execution_window",
    "consent",
    "before_snapshot",
)


def test_all_checks_pass_in_order() -> None:
    result = check_execution(GOOD)
    assert result.proceed
    assert result.outcome is ExecutionOutcome.PROCEED
    assert result.reason is ExecutionReason.READY
    assert result.retry_at is None
    assert tuple(t.check for t in result.trace) == ORDER
    assert all(t.passed for t in result.trace)


@pytest.mark.parametrize(
    ("change", "outcome", "reason", "last_check"),
    [
        (
            {"intent_status": "PENDING"},
            ExecutionOutcome.REFUSE,
            ExecutionReason.NOT_APPROVED,
            "intent_approved",
        ),
        (
            {"intent_status": "REJECTED"},
            ExecutionOutcome.REFUSE,
            ExecutionReason.NOT_APPROVED,
            "intent_approved",
        ),
        (
            {"kill_switch_on": True},
            ExecutionOutcome.REFUSE,
            ExecutionReason.KILL_SWITCH_ON,
            "kill_switch",
        ),
        (
            {"trusted_mode": "PAUSED"},
            ExecutionOutcome.REFUSE,
            ExecutionReason.TRUSTED_MODE_NOT_ACTIVE,
            "trusted_mode",
        ),
        (
            {"trusted_mode": "NONE"},
            ExecutionOutcome.REFUSE,
            ExecutionReason.TRUSTED_MODE_NOT_ACTIVE,
            "trusted_mode",
        ),
        (
            {"count_today": 50},
            ExecutionOutcome.WAIT,
            ExecutionReason.DAILY_LIMIT_REACHED,
            "daily_limit",
        ),
        (
            {"now": datetime(2025, 3, 3, 18, 0, tzinfo=UTC)},
            ExecutionOutcome.WAIT,
            ExecutionReason.OUTSIDE_WINDOW,
            "execution_window",
        ),
        (
            {"consent_present": False},
            ExecutionOutcome.WAIT_CONSENT,
            ExecutionReason.CONSENT_MISSING,
            "consent",
        ),
        (
            {"before_snapshot_captured": False},
            ExecutionOutcome.REFUSE,
            ExecutionReason.NO_BEFORE_SNAPSHOT,
            "before_snapshot",
        ),
        # the first failing check decides: kill switch before the window
        (
            {"kill_switch_on": True, "now": datetime(2025, 3, 3, 18, 0, tzinfo=UTC)},
            ExecutionOutcome.REFUSE,
            ExecutionReason.KILL_SWITCH_ON,
            "kill_switch",
        ),
        # the limit before the window, the window before consent
        (
            {"count_today": 60, "consent_present": False},
            ExecutionOutcome.WAIT,
            ExecutionReason.DAILY_LIMIT_REACHED,
            "daily_limit",
        ),
        (
            {"now": datetime(2025, 3, 3, 18, 0, tzinfo=UTC), "consent_present": False},
            ExecutionOutcome.WAIT,
            ExecutionReason.OUTSIDE_WINDOW,
            "execution_window",
        ),
    ],
)
def test_first_deciding_check_stops(
    change: dict[str, Any], outcome: ExecutionOutcome, reason: ExecutionReason, last_check: str
) -> None:
    result = check_execution(replace(GOOD, **change))
    assert result.outcome is outcome
    assert result.reason is reason
    checks = tuple(t.check for t in result.trace)
    assert checks == ORDER[: ORDER.index(last_check) + 1]
    assert not result.trace[-1].passed
    assert all(t.passed for t in result.trace[:-1])


def test_outside_window_waits_for_next_opening() -> None:
    friday_evening = datetime(2025, 3, 7, 18, 0, tzinfo=UTC)
    result = check_execution(replace(GOOD, now=friday_evening))
    assert result.outcome is ExecutionOutcome.WAIT
    assert result.retry_at == datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    assert "next opening" in result.trace[-1].said


@pytest.mark.parametrize(
    ("count", "limit", "outcome"),
    [
        (0, 50, ExecutionOutcome.PROCEED),
        (49, 50, ExecutionOutcome.PROCEED),  # the 50th execution may run
        (50, 50, ExecutionOutcome.WAIT),  # the 51st may not
        (51, 50, ExecutionOutcome.WAIT),
        (0, 0, ExecutionOutcome.WAIT),
        (2, 3, ExecutionOutcome.PROCEED),
        (3, 3, ExecutionOutcome.WAIT),
    ],
)
def test_daily_limit_edge(count: int, limit: int, outcome: ExecutionOutcome) -> None:
    result = check_execution(replace(GOOD, count_today=count, daily_limit=limit))
    assert result.outcome is outcome


def test_full_limit_waits_for_the_next_days_window() -> None:
    # Friday: the next day is Saturday, but the window opens again on Monday 09:00
    friday = datetime(2025, 3, 7, 10, 0, tzinfo=UTC)
    result = check_execution(replace(GOOD, now=friday, count_today=50))
    assert result.retry_at == datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    saw = result.trace[-1].saw
    assert saw["count_today"] == 50 and saw["daily_limit"] == 50


def test_full_limit_without_window_waits_for_the_next_day_in_the_limit_zone() -> None:
    inputs = replace(GOOD, window=None, count_today=50, limit_timezone="America/New_York")
    result = check_execution(inputs)
    # Monday 10:00 UTC is 05:00 in New York; its next midnight is 05:00 UTC on Tuesday
    assert result.retry_at == datetime(2025, 3, 4, 5, 0, tzinfo=UTC)


def test_limit_day_follows_the_window_zone() -> None:
    tokyo = validate_window("Asia/Tokyo", range(7), "00:00", "00:00")
    start, end = limit_day_bounds(datetime(2025, 3, 3, 16, 0, tzinfo=UTC), tokyo)
    # 16:00 UTC Monday is Tuesday 01:00 in Tokyo
    assert start == datetime(2025, 3, 3, 15, 0, tzinfo=UTC)
    assert end == datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
    assert limit_day_bounds(datetime(2025, 3, 3, 16, 0, tzinfo=UTC))[0] == datetime(
        2025, 3, 3, tzinfo=UTC
    )


def test_optional_checks_can_be_waived() -> None:
    inputs = replace(
        GOOD,
        trusted_mode="NONE",
        trusted_mode_required=False,
        consent_present=False,
        consent_required=False,
        window=None,
    )
    result = check_execution(inputs)
    assert result.proceed
    assert result.trace[2].said == "trusted mode not required"


def test_trace_is_json_ready() -> None:
    import json

    text = json.dumps([t.to_dict() for t in check_execution(GOOD).trace])
    assert '"check": "daily_limit"' in text


@pytest.mark.parametrize(
    "change",
    [{"now": datetime(2025, 3, 3, 10, 0)}, {"count_today": -1}, {"daily_limit": -5}],
)
def test_bad_inputs(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        check_execution(replace(GOOD, **change))


def test_limit_counter_admits_up_to_the_limit_mid_batch() -> None:
    counter = ExecutionLimitCounter(limit=50, used=47)
    run, wait, after = counter.split(["a", "b", "c", "d", "e"])
    assert run == ["a", "b", "c"]
    assert wait == ["d", "e"]
    assert after.reached and after.remaining == 0 and after.used == 50
    assert counter.used == 47  # the counter is a value


@pytest.mark.parametrize(
    ("limit", "used", "wanted", "admitted", "remaining"),
    [(50, 0, 1, 1, 49), (50, 49, 1, 1, 0), (50, 50, 1, 0, 0), (50, 55, 3, 0, 0), (3, 0, 0, 0, 3)],
)
def test_limit_counter_admit(
    limit: int, used: int, wanted: int, admitted: int, remaining: int
) -> None:
    got, counter = ExecutionLimitCounter(limit, used).admit(wanted)
    assert (got, counter.remaining) == (admitted, remaining)


def test_limit_counter_rejects_negatives() -> None:
    with pytest.raises(InvalidArgument):
        ExecutionLimitCounter(limit=-1)
    with pytest.raises(InvalidArgument):
        ExecutionLimitCounter().admit(-1)


def test_a_snapshot_not_taken_yet_lets_the_checks_pass_and_says_so() -> None:
    result = check_execution(replace(GOOD, before_snapshot_captured=None))
    assert result.outcome is ExecutionOutcome.PROCEED
    last = result.trace[-1]
    assert (last.check, last.passed, last.said) == (
        "before_snapshot",
        True,
        "the before snapshot is taken next",
    )
    assert "captured" not in last.said
