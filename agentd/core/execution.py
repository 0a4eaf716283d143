"""The ordered pre-execution checks: may this approved intent run now?

Checks run in this order and stop at the first one that decides (SPEC §6):

1. the intent is approved                    else REFUSE  ``NOT_APPROVED``
2. the kill switch is off                    else REFUSE  ``KILL_SWITCH_ON``
3. trusted mode is ACTIVE, where required    else REFUSE  ``TRUSTED_MODE_NOT_ACTIVE``
4. the daily execution limit is not reached  else WAIT    ``DAILY_LIMIT_REACHED``
5. the execution window is open              else WAIT    ``OUTSIDE_WINDOW``
6. consent is present, where required        else WAIT_CONSENT ``CONSENT_MISSING``
7. the before snapshot is captured           else REFUSE  ``NO_BEFORE_SNAPSHOT``

A WAIT is not a failure: the execution stays approved and ``retry_at`` says
when to look again. A full daily limit waits for the next day (and, with a
window, for the window's first opening on or after that day); a closed window
waits for its next opening. A REFUSE leaves the intent as it is; whether to
retry (after the kill switch is cleared, say) is the caller's choice.

The "day" of the daily limit is the tenant's local day: the execution window's
time zone when a window is configured (operators count their day, not UTC's),
otherwise ``limit_timezone``, otherwise UTC. :func:`limit_day_bounds` gives
the same bounds the store should count ``count_today`` over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from agentd.core.windows import ExecutionWindow, day_bounds, is_open, next_open
from agentd.errors import InvalidArgument

DEFAULT_DAILY_LIMIT = 50

T = TypeVar("T")


class ExecutionOutcome(StrEnum):
    """What the checks say about running an execution now."""

    PROCEED = "PROCEED"
    WAIT = "WAIT"
    WAIT_CONSENT = "WAIT_CONSENT"
    REFUSE = "REFUSE"


class ExecutionReason(StrEnum):
    """Stable reason codes of an :class:`ExecutionCheckResult`."""

    READY = "READY"
    NOT_APPROVED = "NOT_APPROVED"
    KILL_SWITCH_ON = "KILL_SWITCH_ON"
    TRUSTED_MODE_NOT_ACTIVE = "TRUSTED_MODE_NOT_ACTIVE"
    DAILY_LIMIT_REACHED = "DAILY_LIMIT_REACHED"
    OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
    CONSENT_MISSING = "CONSENT_MISSING"
    NO_BEFORE_SNAPSHOT = "NO_BEFORE_SNAPSHOT"


@dataclass(frozen=True)
class ExecutionCheckInputs:
    """Everything the checks look at, as plain values gathered by the caller.

    ``intent_status`` is the intent's status ("APPROVED" runs, both for human
    and policy approval); ``trusted_mode`` is the account's (NONE, ACTIVE,
    PAUSED, REVOKED).
    """

    now: datetime
    intent_status: str
    kill_switch_on: bool
    trusted_mode: str
    count_today: int
    consent_present: bool
    #: True: taken; False: could not be taken; None: not taken yet (it is taken
    #: right after these checks pass, and the checks run again before the change).
    before_snapshot_captured: bool | None
    trusted_mode_required: bool = True
    consent_required: bool = True
    daily_limit: int = DEFAULT_DAILY_LIMIT
    window: ExecutionWindow | None = None
    limit_timezone: str | None = None


@dataclass(frozen=True)
class CheckTrace:
    """One check that ran: its name, what it saw, what it said, whether it passed."""

    check: str
    saw: dict[str, Any] = field(hash=False)
    said: str
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready form for storing with the execution."""
        return {
            "check": self.check,
            "saw": dict(self.saw),
            "said": self.said,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class ExecutionCheckResult:
    """The verdict of :func:`check_execution`, with the trace of every check that ran."""

    outcome: ExecutionOutcome
    reason: ExecutionReason
    retry_at: datetime | None
    trace: tuple[CheckTrace, ...]

    @property
    def proceed(self) -> bool:
        """Return whether the execution may start now."""
        return self.outcome is ExecutionOutcome.PROCEED


def limit_day_bounds(
    now: datetime, window: ExecutionWindow | None = None, timezone: str | None = None
) -> tuple[datetime, datetime]:
    """Return the UTC bounds ``[start, end)`` of the day the daily limit counts over.

    :raises InvalidArgument: naive ``now`` or unknown time zone.
    """
    return day_bounds(now, window.timezone if window is not None else timezone)


def check_execution(inputs: ExecutionCheckInputs) -> ExecutionCheckResult:
    """Run the pre-execution checks in order and stop at the first that decides.

    :raises InvalidArgument: naive ``now``, negative count or limit.
    """
    if inputs.now.tzinfo is None or inputs.now.utcoffset() is None:
        raise InvalidArgument("now must be timezone-aware", details={"field": "now"})
    if inputs.count_today < 0 or inputs.daily_limit < 0:
        raise InvalidArgument(
            "count_today and daily_limit must not be negative", details={"field": "daily_limit"}
        )
    trace: list[CheckTrace] = []

    def done(
        outcome: ExecutionOutcome, reason: ExecutionReason, retry_at: datetime | None = None
    ) -> ExecutionCheckResult:
        return ExecutionCheckResult(outcome, reason, retry_at, tuple(trace))

    status = inputs.intent_status.upper()
    approved = status == "APPROVED"
    trace.append(
        CheckTrace(
            "intent_approved",
            {"intent_status": inputs.intent_status},
            "approved" if approved else f"intent is {inputs.intent_status}, not APPROVED",
            approved,
        )
    )
    if not approved:
        return done(ExecutionOutcome.REFUSE, ExecutionReason.NOT_APPROVED)

    trace.append(
        CheckTrace(
            "kill_switch",
            {"kill_switch_on": inputs.kill_switch_on},
            "kill switch is on" if inputs.kill_switch_on else "kill switch is off",
            not inputs.kill_switch_on,
        )
    )
    if inputs.kill_switch_on:
        return done(ExecutionOutcome.REFUSE, ExecutionReason.KILL_SWITCH_ON)

    mode = inputs.trusted_mode.upper()
    trusted = mode == "ACTIVE" or not inputs.trusted_mode_required
    trace.append(
        CheckTrace(
            "trusted_mode",
            {"trusted_mode": mode, "required": inputs.trusted_mode_required},
            (
                "trusted mode not required"
                if not inputs.trusted_mode_required
                else ("trusted mode is ACTIVE" if trusted else f"trusted mode is {mode}")
            ),
            trusted,
        )
    )
    if not trusted:
        return done(ExecutionOutcome.REFUSE, ExecutionReason.TRUSTED_MODE_NOT_ACTIVE)

    day_start, day_end = limit_day_bounds(inputs.now, inputs.window, inputs.limit_timezone)
    under_limit = inputs.count_today < inputs.daily_limit
    trace.append(
        CheckTrace(
            "daily_limit",
            {
                "count_today": inputs.count_today,
                "daily_limit": inputs.daily_limit,
                "day_start": day_start.isoformat(),
                "day_end": day_end.isoformat(),
            },
            (
                f"{inputs.count_today} of {inputs.daily_limit} executions used today"
                if under_limit
                else f"daily limit of {inputs.daily_limit} reached"
            ),
            under_limit,
        )
    )
    if not under_limit:
        retry = day_end if inputs.window is None else next_open(inputs.window, day_end)
        return done(ExecutionOutcome.WAIT, ExecutionReason.DAILY_LIMIT_REACHED, retry)

    if inputs.window is not None:
        window = inputs.window
        open_now = is_open(window, inputs.now)
        saw: dict[str, Any] = {
            "timezone": window.timezone,
            "days": sorted(window.days),
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
        }
        opens = None if open_now else next_open(window, inputs.now)
        said = "inside the execution window"
        if opens is not None:
            said = f"outside the execution window; next opening {opens.isoformat()}"
        trace.append(CheckTrace("execution_window", saw, said, open_now))
        if opens is not None:
            return done(ExecutionOutcome.WAIT, ExecutionReason.OUTSIDE_WINDOW, opens)
    else:
        trace.append(
            CheckTrace("execution_window", {"window": None}, "no window: always open", True)
        )

    consent_ok = inputs.consent_present or not inputs.consent_required
    trace.append(
        CheckTrace(
            "consent",
            {"consent_present": inputs.consent_present, "required": inputs.consent_required},
            "consent present" if consent_ok else "no consent for this operation",
            consent_ok,
        )
    )
    if not consent_ok:
        return done(ExecutionOutcome.WAIT_CONSENT, ExecutionReason.CONSENT_MISSING)

    captured = inputs.before_snapshot_captured
    trace.append(
        CheckTrace(
            "before_snapshot",
            {"captured": captured},
            {
                True: "before snapshot captured",
                None: "the before snapshot is taken next",
                False: "no before snapshot: the change could not be undone",
            }[captured],
            captured is not False,
        )
    )
    if captured is False:
        return done(ExecutionOutcome.REFUSE, ExecutionReason.NO_BEFORE_SNAPSHOT)
    return done(ExecutionOutcome.PROCEED, ExecutionReason.READY)


@dataclass(frozen=True)
class ExecutionLimitCounter:
    """How much of the daily execution limit is used, for admitting a batch.

    The counter is a value: :meth:`admit` returns a new one, so a batch loop
    reads ``admitted, counter = counter.admit(1)``.
    """

    limit: int = DEFAULT_DAILY_LIMIT
    used: int = 0

    def __post_init__(self) -> None:
        if self.limit < 0 or self.used < 0:
            raise InvalidArgument("limit and used must not be negative", details={"field": "limit"})

    @property
    def remaining(self) -> int:
        """Return how many executions may still start today."""
        return max(self.limit - self.used, 0)

    @property
    def reached(self) -> bool:
        """Return whether the limit is reached."""
        return self.remaining == 0

    def admit(self, wanted: int = 1) -> tuple[int, ExecutionLimitCounter]:
        """Admit up to ``wanted`` executions; return how many, and the updated counter."""
        if wanted < 0:
            raise InvalidArgument("wanted must not be negative", details={"field": "wanted"})
        admitted = min(wanted, self.remaining)
        return admitted, replace(self, used=self.used + admitted)

    def split(self, batch: Sequence[T]) -> tuple[list[T], list[T], ExecutionLimitCounter]:
        """Split ``batch`` in order into what runs today and what waits for tomorrow."""
        admitted, counter = self.admit(len(batch))
        return list(batch[:admitted]), list(batch[admitted:]), counter
