"""Goals: validation, progress verdicts, corrective suggestions and metrics.

A goal is a target for one metric (``pipeline``, ``activity``, ``quality``,
``revenue``) between a start and an end. Its verdict at ``now``:

* ``completed`` as soon as ``current >= target``, even before the end
  (auto-complete);
* ``missed`` once ``now >= end`` without that;
* otherwise ``on_track`` when ``current / target >= elapsed / total`` (linear
  pace; before the start nothing has elapsed, so any progress is on track),
  else ``behind``.

``completed`` and ``missed`` are final: a goal that was stored with one of them
keeps it whatever the metric does later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from agentd.errors import InvalidArgument

MAX_NAME_LENGTH = 200

#: Deal stages that count as open pipeline for the ``pipeline`` metric.
PIPELINE_STAGES: tuple[str, ...] = ("discovery", "evaluation", "negotiation")


class GoalType(StrEnum):
    """The metric a goal targets (see :class:`MetricFacts` for how each is computed)."""

    PIPELINE = "pipeline"
    ACTIVITY = "activity"
    QUALITY = "quality"
    REVENUE = "revenue"


class GoalStatus(StrEnum):
    """A goal's stored lifecycle state."""

    ACTIVE = "active"
    COMPLETED = "completed"
    MISSED = "missed"


class Verdict(StrEnum):
    """The goal tracker's judgement at one moment."""

    ON_TRACK = "on_track"
    BEHIND = "behind"
    COMPLETED = "completed"
    MISSED = "missed"


#: Verdicts after which nothing more is done for a goal.
FINAL_VERDICTS = frozenset({Verdict.COMPLETED, Verdict.MISSED})


@dataclass(frozen=True, slots=True)
class GoalSpec:
    """A validated goal before it is stored."""

    tenant: str
    goal_type: GoalType
    target: float
    start: datetime
    end: datetime
    name: str


@dataclass(frozen=True, slots=True)
class Goal:
    """A stored goal: its terms, its id and its lifecycle state."""

    id: str
    tenant: str
    goal_type: GoalType
    target: float
    start: datetime
    end: datetime
    name: str
    status: GoalStatus = GoalStatus.ACTIVE

    @property
    def last_day(self) -> date:
        """Return the last UTC day the goal covers (``end`` itself is excluded)."""
        return (self.end - timedelta(microseconds=1)).astimezone(UTC).date()

    @classmethod
    def from_spec(cls, goal_id: str, spec: GoalSpec) -> Goal:
        """Return the active goal ``spec`` describes, under ``goal_id``."""
        return cls(
            goal_id, spec.tenant, spec.goal_type, spec.target, spec.start, spec.end, spec.name
        )


def _invalid(field: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"goal {field}: {message}", details={"field": field})


def _moment(field: str, value: datetime | date | str, *, end: bool) -> datetime:
    """Read a start or end; a bare date is midnight UTC, and for ``end`` the next midnight."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise _invalid(field, f"not an ISO 8601 date or date-time: {value!r}") from None
    if not isinstance(value, datetime):
        # An end date names the last day of the goal, so it runs to that day's end.
        day = value + timedelta(days=1) if end else value
        return datetime.combine(day, time(), UTC)
    if value.tzinfo is None or value.utcoffset() is None:
        raise _invalid(field, f"{value.isoformat()} has no UTC offset")
    return value.astimezone(UTC)


def validate_goal(
    tenant: str,
    goal_type: GoalType | str,
    target: float | str,
    start: datetime | date | str,
    end: datetime | date | str,
    name: str | None = None,
) -> GoalSpec:
    """Validate goal terms as an operator typed them and return the spec.

    A bare date for ``start`` means its midnight UTC; for ``end`` it means the
    end of that day, so ``--start 2024-07-01 --end 2024-09-30`` covers the quarter.

    :raises InvalidArgument: ``details["field"]`` names the bad field (tenant,
        type, target, start, end, name).
    """
    if not tenant or not tenant.strip():
        raise _invalid("tenant", "must not be empty")
    try:
        kind = GoalType(goal_type)
    except ValueError:
        allowed = ", ".join(t.value for t in GoalType)
        raise _invalid("type", f"unknown type {goal_type!r} (one of {allowed})") from None
    try:
        value = float(target)
    except (TypeError, ValueError):
        raise _invalid("target", f"not a number: {target!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise _invalid("target", f"must be greater than 0, got {target!r}")
    begins = _moment("start", start, end=False)
    ends = _moment("end", end, end=True)
    if ends <= begins:
        raise _invalid("end", f"must be after start ({ends.isoformat()} <= {begins.isoformat()})")
    if name is None or not name.strip():
        label = f"{kind.value} {value:g} by {(ends - timedelta(microseconds=1)).date().isoformat()}"
    else:
        label = " ".join(name.split())
        if len(label) > MAX_NAME_LENGTH:
            raise _invalid("name", f"longer than {MAX_NAME_LENGTH} characters")
    return GoalSpec(tenant.strip(), kind, value, begins, ends, label)


@dataclass(frozen=True, slots=True)
class GoalEvaluation:
    """Where a goal stands at ``at``.

    ``expected`` is the value a linear pace would have reached by now;
    ``status_changed`` tells the caller to store ``status`` (and audit it).
    """

    goal_id: str | None
    status: GoalStatus
    verdict: Verdict
    current: float
    target: float
    progress_ratio: float
    elapsed_ratio: float
    expected: float
    at: datetime
    status_changed: bool

    def describe(self) -> str:
        """Return a one-line account of the evaluation, for rationales and the digest."""
        return (
            f"{self.verdict.value}: {self.current:g} of {self.target:g}"
            f" ({self.progress_ratio:.0%}) with {self.elapsed_ratio:.0%} of the time elapsed"
        )


def evaluate_goal(goal: Goal | GoalSpec, current: float, now: datetime) -> GoalEvaluation:
    """Judge a goal at ``now`` against the metric's ``current`` value.

    :raises InvalidArgument: ``current`` is not a finite number or ``now`` is naive.
    """
    if not math.isfinite(current):
        raise _invalid("current", f"not a finite number: {current!r}")
    if now.tzinfo is None:
        raise InvalidArgument("now must be timezone-aware", details={"field": "now"})
    total = (goal.end - goal.start).total_seconds()
    elapsed = min(max((now - goal.start).total_seconds(), 0.0), total) / total
    progress = current / goal.target
    previous = goal.status if isinstance(goal, Goal) else GoalStatus.ACTIVE
    if previous is GoalStatus.COMPLETED or (previous is GoalStatus.ACTIVE and progress >= 1.0):
        status, verdict = GoalStatus.COMPLETED, Verdict.COMPLETED
    elif previous is GoalStatus.MISSED or now >= goal.end:
        status, verdict = GoalStatus.MISSED, Verdict.MISSED
    else:
        status = GoalStatus.ACTIVE
        verdict = Verdict.ON_TRACK if progress >= elapsed else Verdict.BEHIND
    return GoalEvaluation(
        goal_id=goal.id if isinstance(goal, Goal) else None,
        status=status,
        verdict=verdict,
        current=current,
        target=goal.target,
        progress_ratio=progress,
        elapsed_ratio=elapsed,
        expected=goal.target * elapsed,
        at=now,
        status_changed=status is not previous,
    )


@dataclass(frozen=True, slots=True)
class SuggestedAction:
    """One corrective action for a goal that is behind."""

    action_type: str
    rationale: str


#: Corrective actions per goal type, most useful first: ``(action type, why)``.
CORRECTIVE_ACTIONS: Mapping[GoalType, tuple[tuple[str, str], ...]] = {
    GoalType.PIPELINE: (
        ("qualify_conversation", "qualify early-stage accounts to move them into discovery"),
        ("send_follow_up_email", "follow up with warm accounts to open new opportunities"),
    ),
    GoalType.ACTIVITY: (
        ("send_follow_up_email", "follow up with recently active accounts"),
        ("schedule_meeting", "propose a meeting to accounts with open threads"),
    ),
    GoalType.QUALITY: (
        ("update_account_context", "refresh stale account context before the next contact"),
        ("create_briefing", "prepare a briefing so the next contact is well informed"),
    ),
    GoalType.REVENUE: (
        ("send_proposal", "send a proposal to accounts in evaluation or negotiation"),
    ),
}


def suggest_actions(goal_type: GoalType, evaluation: GoalEvaluation) -> list[SuggestedAction]:
    """Return corrective actions for a goal that is behind; none for any other verdict."""
    if evaluation.verdict is not Verdict.BEHIND:
        return []
    gap = max(evaluation.expected - evaluation.current, 0.0)
    state = f"{goal_type.value} goal {evaluation.describe()}; {gap:g} short of pace"
    return [
        SuggestedAction(action, f"{state}: {why}") for action, why in CORRECTIVE_ACTIONS[goal_type]
    ]


@dataclass(frozen=True, slots=True)
class MetricFacts:
    """Plain counts the caller queries for one tenant and one goal period.

    * ``pipeline``: ``pipeline_accounts``, accounts now in a :data:`PIPELINE_STAGES` stage;
    * ``activity``: ``outbound_interactions + executed_actions`` in the period;
    * ``quality``: the percentage (0..100) of rated interactions in the period
      with sentiment >= 0; with none rated, the percentage of executions that
      succeeded; with neither, 0;
    * ``revenue``: ``closed_won_value`` (sum of the accounts' ``value``) when
      known, else ``closed_won_count``.
    """

    pipeline_accounts: int = 0
    outbound_interactions: int = 0
    executed_actions: int = 0
    rated_interactions: int = 0
    non_negative_interactions: int = 0
    executions_total: int = 0
    executions_succeeded: int = 0
    closed_won_count: int = 0
    closed_won_value: float | None = None

    def __post_init__(self) -> None:
        for field, value in (
            ("pipeline_accounts", self.pipeline_accounts),
            ("outbound_interactions", self.outbound_interactions),
            ("executed_actions", self.executed_actions),
            ("rated_interactions", self.rated_interactions),
            ("non_negative_interactions", self.non_negative_interactions),
            ("executions_total", self.executions_total),
            ("executions_succeeded", self.executions_succeeded),
            ("closed_won_count", self.closed_won_count),
            ("closed_won_value", self.closed_won_value or 0.0),
        ):
            if value < 0:
                raise _invalid(field, f"must not be negative, got {value!r}")
        if self.non_negative_interactions > self.rated_interactions:
            raise _invalid("non_negative_interactions", "exceeds rated_interactions")
        if self.executions_succeeded > self.executions_total:
            raise _invalid("executions_succeeded", "exceeds executions_total")


def compute_metrics(facts: MetricFacts) -> dict[GoalType, float]:
    """Return every goal type's current value from ``facts``."""
    if facts.rated_interactions:
        quality = 100.0 * facts.non_negative_interactions / facts.rated_interactions
    elif facts.executions_total:
        quality = 100.0 * facts.executions_succeeded / facts.executions_total
    else:
        quality = 0.0
    revenue = (
        facts.closed_won_value
        if facts.closed_won_value is not None
        else float(facts.closed_won_count)
    )
    return {
        GoalType.PIPELINE: float(facts.pipeline_accounts),
        GoalType.ACTIVITY: float(facts.outbound_interactions + facts.executed_actions),
        GoalType.QUALITY: quality,
        GoalType.REVENUE: revenue,
    }


# -- goals in the gate ---------------------------------------------------------------------

#: Goal types an action type moves besides ``activity`` (every executed action
#: counts toward activity): stage moves toward pipeline, contacts about money
#: toward revenue, context work toward quality.
SERVED_GOAL_TYPES: Mapping[str, tuple[GoalType, ...]] = {
    "qualify_conversation": (GoalType.PIPELINE,),
    "progress_early_stage": (GoalType.PIPELINE,),
    "progress_past_evaluation": (GoalType.PIPELINE, GoalType.REVENUE),
    "send_proposal": (GoalType.REVENUE,),
    "discuss_pricing": (GoalType.REVENUE,),
    "negotiate_terms": (GoalType.REVENUE,),
    "update_account_context": (GoalType.QUALITY,),
    "create_briefing": (GoalType.QUALITY,),
    "log_interaction": (GoalType.QUALITY,),
}
_VERDICT_RANK = {Verdict.BEHIND: 0, Verdict.ON_TRACK: 1}


@dataclass(frozen=True, slots=True)
class GoalFact:
    """A goal as the gate sees it: its id, type and the tracker's latest verdict."""

    id: str
    goal_type: GoalType
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class GoalMatch:
    """Which goal an intent serves.

    ``goal`` is the active goal it serves (None: none); ``named`` the goal the
    intent names in its ``serves`` and ``named_fact`` that goal as known (None
    when unknown); ``closed_only`` is True when the intent serves nothing but a
    completed or missed goal.
    """

    goal: GoalFact | None
    named: str | None = None
    named_fact: GoalFact | None = None
    closed_only: bool = False


def goal_types_served(action_type: str) -> tuple[GoalType, ...]:
    """Return the goal types an action type moves, the most specific first."""
    return (*SERVED_GOAL_TYPES.get(action_type, ()), GoalType.ACTIVITY)


def match_goal(
    action_type: str,
    named: str | None,
    serves_more: bool,
    goals: tuple[GoalFact, ...],
) -> GoalMatch:
    """Return the goal an intent serves among its tenant's ``goals``.

    A goal the intent names wins while it is active. Otherwise (it names none,
    an unknown one, or a closed one but also serves something else, such as a
    pattern) the active goal of a type the action moves: the most specific
    type first, a goal behind before one on track, then by id.
    """
    known = {g.id: g for g in goals}
    fact = known.get(named) if named else None
    if fact is not None and fact.verdict not in FINAL_VERDICTS:
        return GoalMatch(fact, named, fact)
    if fact is not None and not serves_more:
        return GoalMatch(None, named, fact, closed_only=True)
    types = goal_types_served(action_type)
    active = [g for g in goals if g.verdict not in FINAL_VERDICTS and g.goal_type in types]
    if not active:
        return GoalMatch(None, named, fact)
    best = min(
        active, key=lambda g: (types.index(g.goal_type), _VERDICT_RANK.get(g.verdict, 2), g.id)
    )
    return GoalMatch(best, named, fact)
