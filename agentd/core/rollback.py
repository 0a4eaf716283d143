"""Rollback: which kind of undo an executed change still allows, and what to write back.

Three rollback types (SPEC §6):

- ``SOFT_UNDO`` — age ≤ 72 h and LOW risk: write back the reverse diff.
- ``HARD_UNDO`` — age ≤ 7 days: restore the before snapshot.
- ``ESCALATED_RESTORE`` — age > 7 days, or the target no longer matches the
  after snapshot (someone else changed it since): open an incident, notify,
  change nothing automatically.

How the token's deadline meets these windows: the deadline decides *whether* a
rollback is still available (past it → ``TOKEN_EXPIRED``; exactly at it is
still in time); the age decides *which* type. The default deadlines follow the
risk level (72 h / 7 d / 30 d), so a LOW change expires where its soft window
ends, a MEDIUM one where its hard window ends, and a HIGH one spends days 7–30
in ``ESCALATED_RESTORE``. An extended deadline keeps the same type windows: a
LOW change extended to 10 days is a ``HARD_UNDO`` from 72 h to 7 d and an
``ESCALATED_RESTORE`` after that, never a late ``SOFT_UNDO``.

Clocks: ``now`` earlier than ``executed_at`` (the host clock stepped backwards,
or the execution was stamped by a clock that ran ahead) is treated as age zero
— the change is as young as a change can be — and the verdict's detail says
so. A negative age never reaches the window comparisons, and ``SOFT_UNDO``
still needs LOW risk, so a clock jump cannot turn a MEDIUM or HIGH change into
a soft undo; the deadline check uses ``now`` as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from agentd.errors import Expired, InvalidArgument

RiskName = Literal["LOW", "MEDIUM", "HIGH"]

SOFT_UNDO_WINDOW = timedelta(hours=72)
HARD_UNDO_WINDOW = timedelta(days=7)
DEFAULT_MAX_EXTENSION = timedelta(days=30)

ROLLBACK_WINDOWS: Mapping[str, timedelta] = {
    "LOW": timedelta(hours=72),
    "MEDIUM": timedelta(days=7),
    "HIGH": timedelta(days=30),
}


class RollbackType(StrEnum):
    """How an executed change is undone."""

    SOFT_UNDO = "SOFT_UNDO"
    HARD_UNDO = "HARD_UNDO"
    ESCALATED_RESTORE = "ESCALATED_RESTORE"


class RollbackReason(StrEnum):
    """Stable reason codes of a :class:`RollbackVerdict`."""

    WITHIN_SOFT_WINDOW = "WITHIN_SOFT_WINDOW"
    WITHIN_HARD_WINDOW = "WITHIN_HARD_WINDOW"
    PAST_HARD_WINDOW = "PAST_HARD_WINDOW"
    TARGET_CHANGED = "TARGET_CHANGED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    ALREADY_USED = "ALREADY_USED"
    ROLLBACK_OF_ROLLBACK = "ROLLBACK_OF_ROLLBACK"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    NO_UNDO = "NO_UNDO"


@dataclass(frozen=True)
class RollbackVerdict:
    """Whether a rollback may run, of which type, and why.

    ``type`` is ``None`` exactly when ``available`` is false.
    """

    available: bool
    type: RollbackType | None
    reason: RollbackReason
    detail: str
    age: timedelta


def _check_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware", details={"field": name})


def _risk(risk: str) -> RiskName:
    key = str(risk).upper()
    if key == "LOW":
        return "LOW"
    if key == "MEDIUM":
        return "MEDIUM"
    if key == "HIGH":
        return "HIGH"
    raise InvalidArgument(
        f"unknown risk level {risk!r}; expected LOW, MEDIUM or HIGH", details={"field": "risk"}
    )


def rollback_deadline(executed_at: datetime, risk: str) -> datetime:
    """Return the default rollback deadline of a change executed at ``executed_at``.

    :raises InvalidArgument: unknown risk level or naive ``executed_at``.
    """
    _check_aware("executed_at", executed_at)
    return executed_at + ROLLBACK_WINDOWS[_risk(risk)]


def choose_rollback(
    executed_at: datetime,
    risk: str,
    now: datetime,
    deadline: datetime,
    *,
    current_matches_after: bool,
    already_rolled_back: bool,
    is_rollback: bool,
    execution_succeeded: bool,
) -> RollbackVerdict:
    """Decide whether (and how) the execution at ``executed_at`` can be rolled back.

    Refusals are checked first, in this order: the execution is itself a
    rollback, it failed, its token was already used, the deadline has passed.
    Then the target's current state (changed by someone else → escalate), then
    the age windows.

    :raises InvalidArgument: unknown risk level or a naive datetime.
    """
    for name, value in (("executed_at", executed_at), ("now", now), ("deadline", deadline)):
        _check_aware(name, value)
    level = _risk(risk)
    raw_age = now - executed_at
    age = max(raw_age, timedelta(0))
    skew = (
        f" (clock is {-raw_age} behind the execution time; age taken as 0)"
        if raw_age < timedelta(0)
        else ""
    )

    def refuse(reason: RollbackReason, detail: str) -> RollbackVerdict:
        return RollbackVerdict(False, None, reason, detail + skew, age)

    def grant(kind: RollbackType, reason: RollbackReason, detail: str) -> RollbackVerdict:
        return RollbackVerdict(True, kind, reason, detail + skew, age)

    if is_rollback:
        return refuse(
            RollbackReason.ROLLBACK_OF_ROLLBACK,
            "this execution is a rollback; roll the original forward with a new intent instead",
        )
    if not execution_succeeded:
        return refuse(
            RollbackReason.EXECUTION_FAILED,
            "the execution did not complete; compare snapshots to see what state the target is in",
        )
    if already_rolled_back:
        return refuse(RollbackReason.ALREADY_USED, "the rollback token was already used")
    if now > deadline:
        return refuse(
            RollbackReason.TOKEN_EXPIRED,
            f"the rollback deadline {deadline.isoformat()} has passed",
        )
    if not current_matches_after:
        return grant(
            RollbackType.ESCALATED_RESTORE,
            RollbackReason.TARGET_CHANGED,
            "the target no longer matches the after snapshot (changed since); "
            "an incident is opened and nothing is changed automatically",
        )
    if age <= SOFT_UNDO_WINDOW and level == "LOW":
        return grant(
            RollbackType.SOFT_UNDO,
            RollbackReason.WITHIN_SOFT_WINDOW,
            f"LOW risk change {age} old (≤ 72 h): the reverse diff is applied",
        )
    if age <= HARD_UNDO_WINDOW:
        return grant(
            RollbackType.HARD_UNDO,
            RollbackReason.WITHIN_HARD_WINDOW,
            f"{level} risk change {age} old (≤ 7 d): the before snapshot is restored",
        )
    return grant(
        RollbackType.ESCALATED_RESTORE,
        RollbackReason.PAST_HARD_WINDOW,
        f"change {age} old (> 7 d): an incident is opened and nothing is changed automatically",
    )


def reverse_diff(
    before: Mapping[str, Any], after: Mapping[str, Any], diff: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the field values a SOFT_UNDO writes back: each diffed field's before value.

    Fields whose after value already equals the before value (the change was a
    no-op there) are left out. Fields are compared as opaque values: a nested
    object is written back whole.

    :raises InvalidArgument: a diffed field is missing from the before
        snapshot (a soft undo cannot be computed; use HARD_UNDO).
    """
    missing = sorted(str(key) for key in diff if key not in before)
    if missing:
        raise InvalidArgument(
            "the before snapshot lacks diffed fields: " + ", ".join(missing),
            details={"fields": missing},
        )
    out: dict[str, Any] = {}
    for key in diff:
        if key in after and after[key] == before[key]:
            continue
        out[key] = before[key]
    return out


class SnapshotStatus(StrEnum):
    """What state a target is in relative to an execution's snapshots."""

    UNCHANGED_FROM_BEFORE = "UNCHANGED_FROM_BEFORE"
    MATCHES_AFTER = "MATCHES_AFTER"
    PARTIALLY_APPLIED = "PARTIALLY_APPLIED"
    DIVERGED = "DIVERGED"


@dataclass(frozen=True)
class SnapshotState:
    """The comparison of a target's current values with its before and expected after.

    ``applied``: changed fields now at their after value. ``not_applied``:
    changed fields still at their before value. ``diverged``: any field whose
    current value is neither its before nor its expected after value
    (including a field that appeared or disappeared).
    """

    status: SnapshotStatus
    applied: tuple[str, ...]
    not_applied: tuple[str, ...]
    diverged: tuple[str, ...]


_ABSENT = object()


def compare_snapshots(
    before: Mapping[str, Any], after_expected: Mapping[str, Any], current: Mapping[str, Any]
) -> SnapshotState:
    """Say what state ``current`` is in, after a failed or interrupted execution.

    A change that changes nothing (``before == after_expected``) and a target
    that still matches reads as ``MATCHES_AFTER``: the execution's result is in
    place and there is nothing to redo or undo.
    """
    keys = sorted(set(before) | set(after_expected) | set(current), key=str)
    applied: list[str] = []
    not_applied: list[str] = []
    diverged: list[str] = []
    for key in keys:
        b = before.get(key, _ABSENT)
        a = after_expected.get(key, _ABSENT)
        c = current.get(key, _ABSENT)
        if b == a:
            if c != b:
                diverged.append(str(key))
        elif c == a:
            applied.append(str(key))
        elif c == b:
            not_applied.append(str(key))
        else:
            diverged.append(str(key))
    if diverged:
        status = SnapshotStatus.DIVERGED
    elif applied and not_applied:
        status = SnapshotStatus.PARTIALLY_APPLIED
    elif not_applied:
        status = SnapshotStatus.UNCHANGED_FROM_BEFORE
    else:
        status = SnapshotStatus.MATCHES_AFTER
    return SnapshotState(status, tuple(applied), tuple(not_applied), tuple(diverged))


def extend_deadline(
    current_deadline: datetime,
    until: datetime,
    now: datetime,
    max_extension: timedelta = DEFAULT_MAX_EXTENSION,
) -> datetime:
    """Validate a deadline extension and return the new deadline.

    The new deadline must be later than the current deadline (which, not yet
    passed, puts it in the future) and at most ``max_extension`` past it. An
    expired deadline is not revived: past it, the change is an incident, not
    an undo.

    :raises Expired: the current deadline has already passed.
    :raises InvalidArgument: ``until`` is not later, or extends too far.
    """
    for name, value in (("current_deadline", current_deadline), ("until", until), ("now", now)):
        _check_aware(name, value)
    if max_extension <= timedelta(0):
        raise InvalidArgument("max_extension must be positive", details={"field": "max_extension"})
    if now > current_deadline:
        raise Expired(
            f"the rollback deadline {current_deadline.isoformat()} has already passed",
            details={"deadline": current_deadline.isoformat()},
        )
    if until <= current_deadline:
        raise InvalidArgument(
            f"the new deadline must be later than the current one ({current_deadline.isoformat()})",
            details={"field": "until"},
        )
    if until - current_deadline > max_extension:
        raise InvalidArgument(
            f"a deadline may be extended by at most {max_extension}",
            details={"field": "until", "max_extension_seconds": max_extension.total_seconds()},
        )
    return until
