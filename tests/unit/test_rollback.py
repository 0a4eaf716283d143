from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentd.core.rollback import (
    RollbackReason,
    RollbackType,
    RollbackVerdict,
    SnapshotStatus,
    choose_rollback,
    compare_snapshots,
    extend_deadline,
    reverse_diff,
    rollback_deadline,
)
from agentd.errors import Expired, InvalidArgument

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
S = timedelta(seconds=1)


def verdict(
    age: timedelta, risk: str, deadline: datetime | None = None, **flags: bool
) -> RollbackVerdict:
    options = {
        "current_matches_after": True,
        "already_rolled_back": False,
        "is_rollback": False,
        "execution_succeeded": True,
    }
    options.update(flags)
    return choose_rollback(
        T0,
        risk,
        T0 + age,
        deadline if deadline is not None else rollback_deadline(T0, risk),
        **options,
    )


@pytest.mark.parametrize(
    ("risk", "expected"),
    [
        ("LOW", T0 + 72 * H),
        ("MEDIUM", T0 + 7 * D),
        ("HIGH", T0 + 30 * D),
        ("low", T0 + 72 * H),
    ],
)
def test_deadline_follows_risk(risk: str, expected: datetime) -> None:
    assert rollback_deadline(T0, risk) == expected


def test_deadline_rejects_unknown_risk_and_naive_time() -> None:
    with pytest.raises(InvalidArgument):
        rollback_deadline(T0, "EXTREME")
    with pytest.raises(InvalidArgument):
        rollback_deadline(datetime(2025, 3, 1), "LOW")


@pytest.mark.parametrize(
    ("age", "risk", "deadline_after", "available", "kind", "reason"),
    [
        (0 * H, "LOW", None, True, RollbackType.SOFT_UNDO, RollbackReason.WITHIN_SOFT_WINDOW),
        (72 * H, "LOW", None, True, RollbackType.SOFT_UNDO, RollbackReason.WITHIN_SOFT_WINDOW),
        (72 * H + S, "LOW", None, False, None, RollbackReason.TOKEN_EXPIRED),
        # a LOW change whose deadline was extended leaves the soft window at 72 h
        (
            72 * H + S,
            "LOW",
            10 * D,
            True,
            RollbackType.HARD_UNDO,
            RollbackReason.WITHIN_HARD_WINDOW,
        ),
        (7 * D, "LOW", 10 * D, True, RollbackType.HARD_UNDO, RollbackReason.WITHIN_HARD_WINDOW),
        (
            7 * D + S,
            "LOW",
            10 * D,
            True,
            RollbackType.ESCALATED_RESTORE,
            RollbackReason.PAST_HARD_WINDOW,
        ),
        (1 * H, "MEDIUM", None, True, RollbackType.HARD_UNDO, RollbackReason.WITHIN_HARD_WINDOW),
        (7 * D, "MEDIUM", None, True, RollbackType.HARD_UNDO, RollbackReason.WITHIN_HARD_WINDOW),
        (7 * D + S, "MEDIUM", None, False, None, RollbackReason.TOKEN_EXPIRED),
        (1 * H, "HIGH", None, True, RollbackType.HARD_UNDO, RollbackReason.WITHIN_HARD_WINDOW),
        (7 * D, "HIGH", None, True, RollbackType.HARD_UNDO, RollbackReason.WITHIN_HARD_WINDOW),
        (
            7 * D + S,
            "HIGH",
            None,
            True,
            RollbackType.ESCALATED_RESTORE,
            RollbackReason.PAST_HARD_WINDOW,
        ),
        (
            30 * D,
            "HIGH",
            None,
            True,
            RollbackType.ESCALATED_RESTORE,
            RollbackReason.PAST_HARD_WINDOW,
        ),
        (30 * D + S, "HIGH", None, False, None, RollbackReason.TOKEN_EXPIRED),
    ],
)
def test_type_by_age_and_risk(
    age: timedelta,
    risk: str,
    deadline_after: timedelta | None,
    available: bool,
    kind: RollbackType | None,
    reason: RollbackReason,
) -> None:
    deadline = T0 + deadline_after if deadline_after is not None else None
    result = verdict(age, risk, deadline)
    assert (result.available, result.type, result.reason) == (available, kind, reason)


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"is_rollback": True}, RollbackReason.ROLLBACK_OF_ROLLBACK),
        ({"execution_succeeded": False}, RollbackReason.EXECUTION_FAILED),
        ({"already_rolled_back": True}, RollbackReason.ALREADY_USED),
        # refusals come before the target check
        (
            {"already_rolled_back": True, "current_matches_after": False},
            RollbackReason.ALREADY_USED,
        ),
        ({"is_rollback": True, "already_rolled_back": True}, RollbackReason.ROLLBACK_OF_ROLLBACK),
    ],
)
def test_refused(flags: dict[str, bool], reason: RollbackReason) -> None:
    result = verdict(H, "LOW", None, **flags)
    assert not result.available
    assert result.type is None
    assert result.reason is reason


def test_target_changed_escalates_even_when_young() -> None:
    result = verdict(H, "LOW", current_matches_after=False)
    assert result.available
    assert result.type is RollbackType.ESCALATED_RESTORE
    assert result.reason is RollbackReason.TARGET_CHANGED


def test_expired_beats_target_changed() -> None:
    result = verdict(73 * H, "LOW", current_matches_after=False)
    assert result.reason is RollbackReason.TOKEN_EXPIRED


def test_clock_went_backwards_counts_as_age_zero() -> None:
    result = verdict(-5 * H, "MEDIUM")
    assert result.age == timedelta(0)
    assert result.type is RollbackType.HARD_UNDO
    assert "behind" in result.detail


def test_clock_went_backwards_does_not_make_a_medium_change_soft() -> None:
    # age clamps to 0, but SOFT_UNDO still needs LOW risk
    assert verdict(-100 * D, "MEDIUM").type is RollbackType.HARD_UNDO
    assert verdict(-100 * D, "HIGH").type is RollbackType.HARD_UNDO


def test_naive_now_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        choose_rollback(
            T0,
            "LOW",
            datetime(2025, 3, 1, 13),
            T0 + D,
            current_matches_after=True,
            already_rolled_back=False,
            is_rollback=False,
            execution_succeeded=True,
        )


@pytest.mark.parametrize(
    ("before", "after", "diff", "expected"),
    [
        (
            {"title": "Old", "body": "x"},
            {"title": "New", "body": "x"},
            {"title": "New"},
            {"title": "Old"},
        ),
        (
            {"title": "Old", "tags": ["a"]},
            {"title": "New", "tags": ["a", "b"]},
            {"title": "New", "tags": ["a", "b"]},
            {"title": "Old", "tags": ["a"]},
        ),
        # a diffed field that ended up unchanged is not written back
        (
            {"title": "Same", "desc": "d0"},
            {"title": "Same", "desc": "d1"},
            {"title": "Same", "desc": "d1"},
            {"desc": "d0"},
        ),
        # the before value None is written back as None
        ({"subtitle": None}, {"subtitle": "Hi"}, {"subtitle": "Hi"}, {"subtitle": None}),
        ({"a": 1}, {"a": 2}, {}, {}),
    ],
)
def test_reverse_diff(
    before: dict[str, Any], after: dict[str, Any], diff: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert reverse_diff(before, after, diff) == expected


def test_reverse_diff_needs_every_field_in_before() -> None:
    with pytest.raises(InvalidArgument) as info:
        reverse_diff(
            {"title": "Old"}, {"title": "New", "slug": "new"}, {"title": "New", "slug": "new"}
        )
    assert info.value.details["fields"] == ["slug"]


BEFORE = {"title": "Old", "price": 10, "sku": "A1"}
AFTER = {"title": "New", "price": 12, "sku": "A1"}


@pytest.mark.parametrize(
    ("current", "status", "applied", "not_applied", "diverged"),
    [
        (BEFORE, SnapshotStatus.UNCHANGED_FROM_BEFORE, (), ("price", "title"), ()),
        (AFTER, SnapshotStatus.MATCHES_AFTER, ("price", "title"), (), ()),
        ({**BEFORE, "title": "New"}, SnapshotStatus.PARTIALLY_APPLIED, ("title",), ("price",), ()),
        ({**AFTER, "price": 99}, SnapshotStatus.DIVERGED, ("title",), (), ("price",)),
        # someone changed a field the execution never touched
        ({**AFTER, "sku": "B2"}, SnapshotStatus.DIVERGED, ("price", "title"), (), ("sku",)),
        # a field disappeared
        ({"title": "New", "price": 12}, SnapshotStatus.DIVERGED, ("price", "title"), (), ("sku",)),
        # a field appeared
        ({**AFTER, "extra": 1}, SnapshotStatus.DIVERGED, ("price", "title"), (), ("extra",)),
    ],
)
def test_compare_snapshots(
    current: dict[str, Any],
    status: SnapshotStatus,
    applied: tuple[str, ...],
    not_applied: tuple[str, ...],
    diverged: tuple[str, ...],
) -> None:
    state = compare_snapshots(BEFORE, AFTER, current)
    assert state.status is status
    assert state.applied == applied
    assert state.not_applied == not_applied
    assert state.diverged == diverged


def test_compare_snapshots_of_a_no_op_change() -> None:
    assert compare_snapshots(BEFORE, BEFORE, BEFORE).status is SnapshotStatus.MATCHES_AFTER


def test_extend_deadline_accepts_a_later_bounded_deadline() -> None:
    deadline = T0 + 72 * H
    assert extend_deadline(deadline, deadline + 5 * D, T0 + H, 30 * D) == deadline + 5 * D
    # exactly the maximum extension is allowed
    assert extend_deadline(deadline, deadline + 30 * D, T0 + H, 30 * D) == deadline + 30 * D


@pytest.mark.parametrize(
    ("until_after_deadline", "now_after_t0", "error"),
    [
        (timedelta(0), H, InvalidArgument),  # not later
        (-H, H, InvalidArgument),  # earlier
        (30 * D + S, H, InvalidArgument),  # beyond the bound
        (5 * D, 72 * H + S, Expired),  # the deadline already passed
    ],
)
def test_extend_deadline_refusals(
    until_after_deadline: timedelta, now_after_t0: timedelta, error: type[Exception]
) -> None:
    deadline = T0 + 72 * H
    with pytest.raises(error):
        extend_deadline(deadline, deadline + until_after_deadline, T0 + now_after_t0, 30 * D)


def test_extend_deadline_rejects_non_positive_bound() -> None:
    with pytest.raises(InvalidArgument):
        extend_deadline(T0 + D, T0 + 2 * D, T0, timedelta(0))
