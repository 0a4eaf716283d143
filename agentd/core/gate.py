"""The gate: one decision per intent, in the order of SPEC §3.3.

It applies a :class:`~agentd.core.policy.GatePolicy` (the policy's model and
its rules are :mod:`agentd.core.policy`'s) to an intent in a
:class:`GateContext` (the state of the world, as plain values).

:func:`evaluate` runs the checks below in this order and stops at the first
one that decides; every check that ran leaves a :class:`TraceEntry`, so the
last entry names the deciding check (or, for ``AUTO_APPROVED``, the budget
check that let the intent through).

1. ``hard_stop``, ``forbidden_change_type`` — guardrails.
2. ``goal`` — the goal tracker: the active goal the intent serves (or none)
   and that goal's verdict. An intent serving only a completed or missed goal
   is refused (``GOAL_CLOSED``); with ``require_goal_alignment``, an
   autonomous intent that serves no active goal waits for a person.
3. ``executor`` — something carries the intent out: an executor or a hand-off
   to a person (``[execution.executors]``); otherwise it waits for a person
   (``NO_EXECUTOR``) and never consumes budget.
4. ``tier`` — guardrails: the tier, stage gating, unknown action types.
5. ``allowlist`` — the account's own allowlist when it has one, else the tenant's.
6. ``autonomy_mode``, ``autonomy_level``, ``kill_switch``, ``action_type_paused``,
   ``trusted_mode``.
7. ``risk``, ``confidence`` — policy.
8. ``idempotency`` — an intent already ``RESERVED`` or ``PUBLISHED``.
9. ``budget`` — daily limits per tenant, account and action type.
10. Auto-approval: consume budget, reserve, publish.

Settings that exist both per tenant and globally combine to the stricter:
the lower of the tenant's and the global autonomy level applies, and either
kill switch stops auto-execution. The outcome only *describes* its effects
(``consume_budget``, ``reserve``, ``publish``); the caller applies them, or
does not (``policy check``).

A human approval skips checks 4–7 and the budget: the caller first re-checks
:func:`approval_blocker` (the tables may have been reloaded since the intent
was queued), then applies :func:`approval_effects` for the intent's
idempotency state.

Idempotency is fifth, as the SPEC orders it, so a resubmitted intent that an
earlier check now stops (the kill switch went on) gets that check's answer.
The caller should therefore answer a known intent id from its stored decision
without evaluating again, and finish a RESERVED hand-off found after a crash
with ``approval_effects(RESERVED)`` rather than through :func:`evaluate`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from agentd.core.executors import HANDOFF, resolve_executor
from agentd.core.goals import GoalFact, match_goal
from agentd.core.guardrails import Classification, GuardrailPolicy, Tier, classify, is_forbidden
from agentd.core.intents import ActionIntent, IntentSource
from agentd.core.policy import (
    AutonomyLevel,
    AutonomyMode,
    GatePolicy,
    TenantPolicy,
)
from agentd.core.risk import RiskAssessment, RiskLevel, RiskReason, assess_risk
from agentd.errors import InvalidArgument

# An operator who leaves out a confidence vouches for the intent; a planner or
# governance intent without one has not earned auto-execution.
_MISSING_CONFIDENCE = {
    IntentSource.OPERATOR: 1.0,
    IntentSource.PLANNER: 0.0,
    IntentSource.GOVERNANCE: 0.0,
}


class Decision(StrEnum):
    """The gate's verdict."""

    AUTO_EXECUTE = "AUTO_EXECUTE"
    REQUIRE_APPROVAL = "REQUIRE_APPROVAL"
    BLOCKED = "BLOCKED"


class Reason(StrEnum):
    """Why the gate decided as it did; stable codes shown by ``agentctl explain``."""

    HARD_STOP = "HARD_STOP"
    FORBIDDEN_CHANGE_TYPE = "FORBIDDEN_CHANGE_TYPE"
    NO_EXECUTOR = "NO_EXECUTOR"
    GOAL_CLOSED = "GOAL_CLOSED"
    GOAL_NOT_ALIGNED = "GOAL_NOT_ALIGNED"
    APPROVAL_REQUIRED_TIER = "APPROVAL_REQUIRED_TIER"
    STAGE_GATED = "STAGE_GATED"
    UNKNOWN_ACTION_TYPE = "UNKNOWN_ACTION_TYPE"
    ACTION_TYPE_NOT_ALLOWLISTED = "ACTION_TYPE_NOT_ALLOWLISTED"
    AUTONOMY_MODE_MANUAL = "AUTONOMY_MODE_MANUAL"
    AUTONOMY_LEVEL_L3 = "AUTONOMY_LEVEL_L3"
    KILL_SWITCH = "KILL_SWITCH"
    ACTION_TYPE_PAUSED = "ACTION_TYPE_PAUSED"
    TRUST_NOT_ACTIVE = "TRUST_NOT_ACTIVE"
    RISK_ABOVE_LEVEL = "RISK_ABOVE_LEVEL"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    ALREADY_PUBLISHED = "ALREADY_PUBLISHED"
    RESUME_PUBLISH = "RESUME_PUBLISH"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    AUTO_APPROVED = "AUTO_APPROVED"
    HUMAN_APPROVED = "HUMAN_APPROVED"


class ApprovalSource(StrEnum):
    """Who approved an executed intent; written once, never rewritten."""

    POLICY = "POLICY"
    HUMAN = "HUMAN"


class TrustedMode(StrEnum):
    """The customer's grant of auto-approval for an account."""

    NONE = "NONE"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    REVOKED = "REVOKED"


class IdempotencyState(StrEnum):
    """How far an approved intent got: budget consumed and reserved, or handed off."""

    RESERVED = "RESERVED"
    PUBLISHED = "PUBLISHED"


@dataclass(frozen=True)
class BudgetUsage:
    """Auto-executions already counted today for the intent's tenant, account
    and action type (within the tenant)."""

    tenant: int = 0
    account: int = 0
    action_type: int = 0


@dataclass(frozen=True)
class GateContext:
    """What the gate needs to know about the world right now, as plain values.

    ``stage`` and ``trusted_mode`` describe the account; ``account_allowlist``
    is the account's own allowlist, or None to use the tenant's.
    ``global_kill_switch`` and ``global_level`` are the daemon-wide settings
    (governance and breakers move them); ``usage`` is today's budget use
    before this intent; ``goals`` the tenant's goals with the tracker's
    latest verdicts (active ones, and any the intent names).
    """

    stage: str
    trusted_mode: TrustedMode = TrustedMode.NONE
    account_allowlist: frozenset[str] | None = None
    global_kill_switch: bool = False
    global_level: AutonomyLevel = AutonomyLevel.L3
    paused_action_types: frozenset[str] = frozenset()
    idempotency: IdempotencyState | None = None
    usage: BudgetUsage = field(default_factory=BudgetUsage)
    goals: tuple[GoalFact, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One check that ran: its name, what it saw (JSON), what it said, and
    whether the intent got past it.

    Entries are immutable and :func:`evaluate` shares them between outcomes
    (see :class:`_PrefixMemo`): treat ``saw`` as read-only.
    """

    check: str
    saw: Mapping[str, Any] = field(hash=False)
    said: str
    passed: bool
    # The text of to_json() and the dict of as_view(), kept once computed: a
    # shared entry serialises once.
    _json: str | None = field(default=None, init=False, repr=False, compare=False)
    _view: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (a new dict)."""
        return {
            "check": self.check,
            "saw": dict(self.saw),
            "said": self.said,
            "passed": self.passed,
        }

    def as_view(self) -> Mapping[str, Any]:
        """Return the JSON form, shared by every answer that shows this entry: read-only."""
        view = self._view
        if view is None:
            view = self.to_dict()
            object.__setattr__(self, "_view", view)
        return view

    def to_json(self) -> str:
        """Return ``json.dumps(self.to_dict())``."""
        text = self._json
        if text is None:
            text = json.dumps(self.to_dict())
            object.__setattr__(self, "_json", text)
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceEntry:
        """Rebuild an entry from :meth:`to_dict` output."""
        return cls(str(data["check"]), dict(data["saw"]), str(data["said"]), bool(data["passed"]))


@dataclass(frozen=True)
class Effects:
    """What the caller must do after a decision, in one transaction where possible.

    ``consume_budget`` then ``reserve`` (mark the intent RESERVED) then
    ``publish`` (hand it to execution, then mark it PUBLISHED). ``approval_source``
    and ``auto_executed`` are None when the values written earlier stand.
    """

    consume_budget: bool = False
    reserve: bool = False
    publish: bool = False
    approval_source: ApprovalSource | None = None
    auto_executed: bool | None = None


_NO_EFFECTS = Effects()


@dataclass(frozen=True)
class GateOutcome:
    """The gate's decision on one intent, with its trace and effects."""

    decision: Decision
    reason: Reason
    tier: Tier
    risk: RiskAssessment
    trace: tuple[TraceEntry, ...]
    message: str = ""
    consume_budget: bool = False
    reserve: bool = False
    publish: bool = False
    approval_source: ApprovalSource | None = None
    auto_executed: bool | None = None

    @property
    def effects(self) -> Effects:
        """Return the effect flags as one value."""
        return Effects(
            self.consume_budget,
            self.reserve,
            self.publish,
            self.approval_source,
            self.auto_executed,
        )

    @property
    def checks(self) -> tuple[str, ...]:
        """Return the names of the checks that ran, in order."""
        return tuple(entry.check for entry in self.trace)

    def to_json(self) -> str:
        """Return ``json.dumps(self.to_dict())``, built from cached pieces.

        The gate stores this text with every decision; most of it (the
        entries of checks that saw the same facts, whose text they keep, and
        the fields around the trace) is the same from one decision to the next.
        """
        head, tail = _outcome_frame(
            self.decision,
            self.reason,
            self.tier,
            self.risk,
            self.message,
            self.consume_budget,
            self.reserve,
            self.publish,
            self.approval_source,
            self.auto_executed,
        )
        texts: list[str] = []
        for entry in self.trace:
            text = entry._json
            if text is None:
                break
            texts.append(text)
        rest = self.trace[len(texts) :]
        if rest:
            # The entries no other outcome shares (the last ones): one encoder call.
            texts.append(json.dumps([entry.to_dict() for entry in rest])[1:-1])
        return f'{head}, "trace": [{", ".join(texts)}], {tail}'

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form stored with the decision."""
        return {
            "decision": str(self.decision),
            "reason": str(self.reason),
            "tier": str(self.tier),
            "risk": self.risk.to_dict(),
            "trace": [entry.to_dict() for entry in self.trace],
            "message": self.message,
            "consume_budget": self.consume_budget,
            "reserve": self.reserve,
            "publish": self.publish,
            "approval_source": None if self.approval_source is None else str(self.approval_source),
            "auto_executed": self.auto_executed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateOutcome:
        """Rebuild an outcome from :meth:`to_dict` output."""
        risk = data["risk"]
        source = data.get("approval_source")
        return cls(
            decision=Decision(data["decision"]),
            reason=Reason(data["reason"]),
            tier=Tier(data["tier"]),
            risk=RiskAssessment(
                RiskLevel(risk["level"]), RiskReason(risk["reason"]), int(risk["items"])
            ),
            trace=tuple(TraceEntry.from_dict(entry) for entry in data["trace"]),
            message=str(data.get("message", "")),
            consume_budget=bool(data.get("consume_budget", False)),
            reserve=bool(data.get("reserve", False)),
            publish=bool(data.get("publish", False)),
            approval_source=None if source is None else ApprovalSource(source),
            auto_executed=data.get("auto_executed"),
        )


@functools.lru_cache(maxsize=256)
def _outcome_frame(
    decision: Decision,
    reason: Reason,
    tier: Tier,
    risk: RiskAssessment,
    message: str,
    consume_budget: bool,
    reserve: bool,
    publish: bool,
    approval_source: ApprovalSource | None,
    auto_executed: bool | None,
) -> tuple[str, str]:
    """Return the JSON of an outcome before and after its trace (see ``to_json``)."""
    head = json.dumps(
        {
            "decision": str(decision),
            "reason": str(reason),
            "tier": str(tier),
            "risk": risk.to_dict(),
        }
    )
    tail = json.dumps(
        {
            "message": message,
            "consume_budget": consume_budget,
            "reserve": reserve,
            "publish": publish,
            "approval_source": None if approval_source is None else str(approval_source),
            "auto_executed": auto_executed,
        }
    )
    return head[:-1], tail[1:]


@dataclass(slots=True)
class _Facts:
    """Everything the checks look at, resolved once per evaluation."""

    intent: ActionIntent
    tp: TenantPolicy
    ctx: GateContext
    cls: Classification
    risk: RiskAssessment
    level: AutonomyLevel


@dataclass(slots=True)
class _Step:
    """What one check saw and said; ``stop`` is set when it decides."""

    saw: dict[str, Any]
    said: str
    stop: tuple[Decision, Reason] | None = None
    effects: Effects = _NO_EFFECTS


def _hard_stop(f: _Facts) -> _Step:
    saw = {"action_type": f.intent.action_type, "tier": str(f.cls.base_tier), "known": f.cls.known}
    if f.cls.base_tier is Tier.HARD_STOP:
        said = "hard-stop action type: never executes, not even with approval"
        return _Step(saw, said, (Decision.BLOCKED, Reason.HARD_STOP))
    return _Step(saw, "not a hard-stop action type")


def _forbidden(f: _Facts) -> _Step:
    domain, change_type = f.intent.domain, f.intent.change_type
    saw = {"domain": domain, "change_type": change_type}
    if is_forbidden(f.tp.guardrails, domain, change_type):
        said = f"change type {change_type} is forbidden in domain {domain}"
        return _Step(saw, said, (Decision.BLOCKED, Reason.FORBIDDEN_CHANGE_TYPE))
    return _Step(saw, "change type not forbidden")


# What an intent's ``serves`` may name besides its goal (planner bookkeeping aside).
_GOAL_KEYS = frozenset({"goal", "goal_verdict", "planning"})


def _named_goal(intent: ActionIntent) -> tuple[str | None, bool]:
    """Return the goal id the intent names (None: none) and whether it serves more."""
    named = intent.serves.get("goal")
    more = any(k not in _GOAL_KEYS for k in intent.serves)
    return (named if isinstance(named, str) and named else None), more


def _goal(f: _Facts) -> _Step:
    # The goal tracker takes part in every decision: the trace names the goal.
    named, more = _named_goal(f.intent)
    match = match_goal(f.intent.action_type, named, more, f.ctx.goals)
    goal = match.goal
    saw: dict[str, Any] = {
        "goal": None if goal is None else goal.id,
        "goal_type": None if goal is None else str(goal.goal_type),
        "verdict": None if goal is None else str(goal.verdict),
        "named": named,
        "named_verdict": None if match.named_fact is None else str(match.named_fact.verdict),
        "require_alignment": f.tp.require_goal_alignment,
    }
    if match.closed_only:
        assert match.named_fact is not None
        said = (
            f"serves only goal {named}, which is {match.named_fact.verdict}: "
            "nothing more is done for a closed goal"
        )
        return _Step(saw, said, (Decision.BLOCKED, Reason.GOAL_CLOSED))
    if goal is not None:
        how = "named by the intent" if goal.id == named else "its action moves that metric"
        return _Step(saw, f"serves {goal.goal_type} goal {goal.id}, {goal.verdict} ({how})")
    if f.tp.require_goal_alignment and f.cls.tier is Tier.AUTONOMOUS:
        said = "serves no active goal, and [goals] require_alignment asks a person to approve it"
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.GOAL_NOT_ALIGNED))
    return _Step(saw, "serves no active goal")


def _executor(f: _Facts) -> _Step:
    # Nothing that cannot happen may consume budget or auto-execute: say so now,
    # not when a person approves it or at 3 a.m.
    intent = f.intent
    saw: dict[str, Any] = {
        "action_type": intent.action_type,
        "domain": intent.domain,
        "change_type": intent.change_type,
    }
    if intent.source is IntentSource.GOVERNANCE:
        saw["executor"] = "governance"
        return _Step(saw, "a governance intent: governance carries it out")
    name, key = resolve_executor(
        f.tp.executors,
        intent.action_type,
        intent.domain,
        intent.change_type,
        f.tp.default_executor,
    )
    saw.update(executor=name, mapped_by=key)
    if name is None:
        said = (
            f"nothing carries out {intent.action_type}: no executor and no hand-off is mapped "
            "to it ([execution.executors]); it cannot run until one is"
        )
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.NO_EXECUTOR))
    if name == HANDOFF:
        how = "the default for unmapped action types" if key == "*" else f"mapped by {key}"
        return _Step(saw, f"handed off to a person when approved ({how})")
    return _Step(saw, f"carried out by the {name} executor (mapped by {key})")


def _tier(f: _Facts) -> _Step:
    action_type, cls = f.intent.action_type, f.cls
    saw = {
        "action_type": action_type,
        "stage": f.ctx.stage,
        "base_tier": str(cls.base_tier),
        "tier": str(cls.tier),
        "stage_gated": cls.stage_gated,
        "known": cls.known,
    }
    if cls.tier is Tier.AUTONOMOUS:
        return _Step(saw, "autonomous tier")
    if cls.stage_gated:
        said, reason = f"stage {f.ctx.stage} needs a person to approve", Reason.STAGE_GATED
    elif not cls.known:
        said = f"unknown action type {action_type}: a person must approve it"
        reason = Reason.UNKNOWN_ACTION_TYPE
    else:
        said = f"{action_type} is in the approval_required tier"
        reason = Reason.APPROVAL_REQUIRED_TIER
    return _Step(saw, said, (Decision.REQUIRE_APPROVAL, reason))


def _allowlist(f: _Facts) -> _Step:
    # Cheap, and the hard limit on blast radius should the policy be too permissive.
    own = f.ctx.account_allowlist
    allowlist = own if own is not None else f.tp.autonomy.allowlist
    whose = "account" if own is not None else "tenant"
    saw = {
        "action_type": f.intent.action_type,
        "allowlist_of": whose,
        "allowlist": sorted(allowlist),
    }
    if f.intent.action_type not in allowlist:
        said = f"{f.intent.action_type} is not on the {whose}'s auto-execute allowlist"
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.ACTION_TYPE_NOT_ALLOWLISTED))
    return _Step(saw, f"on the {whose}'s auto-execute allowlist")


def _autonomy_mode(f: _Facts) -> _Step:
    mode, scope = f.tp.autonomy.modes.resolve(f.intent.account, f.intent.action_type)
    saw = {"mode": str(mode), "scope": scope}
    if mode is AutonomyMode.MANUAL:
        return _Step(
            saw,
            f"autonomy mode is MANUAL (set for the {scope})",
            (Decision.REQUIRE_APPROVAL, Reason.AUTONOMY_MODE_MANUAL),
        )
    return _Step(saw, f"autonomy mode is AUTO (set for the {scope})")


def _autonomy_level(f: _Facts) -> _Step:
    saw = {
        "tenant_level": str(f.tp.autonomy.level),
        "global_level": str(f.ctx.global_level),
        "level": str(f.level),
    }
    if f.level is AutonomyLevel.L3:
        said = "autonomy level L3: nothing auto-executes"
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.AUTONOMY_LEVEL_L3))
    return _Step(saw, f"autonomy level {f.level}")


def _kill_switch(f: _Facts) -> _Step:
    on_global, on_tenant = f.ctx.global_kill_switch, f.tp.autonomy.kill_switch
    saw = {"global": on_global, "tenant": on_tenant}
    if on_global or on_tenant:
        said = f"the {'global' if on_global else 'tenant'} kill switch is on"
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.KILL_SWITCH))
    return _Step(saw, "kill switch off")


def _paused(f: _Facts) -> _Step:
    action_type = f.intent.action_type
    saw = {"action_type": action_type, "paused": sorted(f.ctx.paused_action_types)}
    if action_type in f.ctx.paused_action_types:
        said = f"{action_type} is paused by a circuit breaker"
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.ACTION_TYPE_PAUSED))
    return _Step(saw, "action type not paused")


def _trusted_mode(f: _Facts) -> _Step:
    mode = f.ctx.trusted_mode
    saw = {"trusted_mode": str(mode)}
    if mode is not TrustedMode.ACTIVE:
        said = f"trusted mode is {mode}; only ACTIVE accounts get auto-approval"
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.TRUST_NOT_ACTIVE))
    return _Step(saw, "trusted mode ACTIVE")


def _risk(f: _Facts) -> _Step:
    risk, level = f.risk, f.level
    saw = {
        **risk.to_dict(),
        "change_type": f.intent.change_type,
        "autonomy_level": str(level),
        "allowed": [str(r) for r in RiskLevel if level.allows(r)],
    }
    if not level.allows(risk.level):
        said = f"{risk.level} risk is above what level {level} allows"
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.RISK_ABOVE_LEVEL))
    return _Step(saw, f"{risk.level} risk allowed at level {level}")


def _confidence(f: _Facts) -> _Step:
    given = f.intent.confidence
    counted = given if given is not None else _MISSING_CONFIDENCE[f.intent.source]
    floor = f.tp.autonomy.confidence_floor
    saw = {
        "confidence": given,
        "counted_as": counted,
        "floor": floor,
        "source": str(f.intent.source),
    }
    if counted < floor:
        said = f"confidence {counted} is below the floor {floor}"
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.LOW_CONFIDENCE))
    return _Step(saw, f"confidence {counted} meets the floor {floor}")


def _idempotency(f: _Facts) -> _Step:
    # Budget is consumed at most once per intent id, whatever retries happen.
    state = f.ctx.idempotency
    saw = {"intent_id": f.intent.intent_id, "state": None if state is None else str(state)}
    if state is IdempotencyState.PUBLISHED:
        return _Step(
            saw,
            "already published: nothing more to do",
            (Decision.AUTO_EXECUTE, Reason.ALREADY_PUBLISHED),
        )
    if state is IdempotencyState.RESERVED:
        return _Step(
            saw,
            "reserved earlier: retry the hand-off only",
            (Decision.AUTO_EXECUTE, Reason.RESUME_PUBLISH),
            Effects(publish=True),
        )
    return _Step(saw, "new intent")


def _budget(f: _Facts) -> _Step:
    # Exhausted means a person decides, never a silent drop.
    limits, usage = f.tp.budget, f.ctx.usage
    counters = (
        ("per_tenant_daily", usage.tenant, limits.per_tenant_daily),
        ("per_account_daily", usage.account, limits.per_account_daily),
        ("per_action_type_daily", usage.action_type, limits.per_action_type_daily),
    )
    saw: dict[str, Any] = {name: {"used": used, "limit": limit} for name, used, limit in counters}
    spent = [(name, used, limit) for name, used, limit in counters if used >= limit]
    saw["exhausted"] = [name for name, _, _ in spent]
    if spent:
        said = "daily budget exhausted: " + ", ".join(
            f"{name} ({used} of {limit} used)" for name, used, limit in spent
        )
        return _Step(saw, said, (Decision.REQUIRE_APPROVAL, Reason.BUDGET_EXHAUSTED))
    return _Step(saw, "within the daily budget")


# The order of SPEC §3.3; evaluation stops at the first check that decides.
_CHECKS: tuple[tuple[str, Callable[[_Facts], _Step]], ...] = (
    ("hard_stop", _hard_stop),
    ("forbidden_change_type", _forbidden),
    ("goal", _goal),
    ("executor", _executor),
    ("tier", _tier),
    ("allowlist", _allowlist),
    ("autonomy_mode", _autonomy_mode),
    ("autonomy_level", _autonomy_level),
    ("kill_switch", _kill_switch),
    ("action_type_paused", _paused),
    ("trusted_mode", _trusted_mode),
    ("risk", _risk),
    ("confidence", _confidence),
    ("idempotency", _idempotency),
    ("budget", _budget),
)
CHECKS: tuple[str, ...] = tuple(name for name, _ in _CHECKS)
# Checks up to ``confidence`` look only at what _prefix_key() covers; the last
# two look at the intent's id and today's budget.
_SHARED = CHECKS.index("confidence") + 1
_SHARED_CHECKS, _OWN_CHECKS = _CHECKS[:_SHARED], _CHECKS[_SHARED:]

_AUTO_APPROVED = Effects(
    consume_budget=True,
    reserve=True,
    publish=True,
    approval_source=ApprovalSource.POLICY,
    auto_executed=True,
)
_EVERY_CHECK_PASSED = "every check passed: auto-approved"


def _run_checks(
    checks: tuple[tuple[str, Callable[[_Facts], _Step]], ...],
    facts: _Facts,
    trace: list[TraceEntry],
) -> _Step | None:
    """Run ``checks`` in order, appending to ``trace``; return the deciding step, if any."""
    for name, check in checks:
        step = check(facts)
        passed = step.stop is None or step.stop[0] is Decision.AUTO_EXECUTE
        # The step's dict is fresh, and no one writes to it afterwards (entries of
        # the shared checks are shared between outcomes), so no copy is needed.
        trace.append(TraceEntry(name, step.saw, step.said, passed))
        if step.stop is not None:
            return step
    return None


def _outcome(facts: _Facts, trace: list[TraceEntry], step: _Step | None) -> GateOutcome:
    if step is None:
        decision, reason, effects = Decision.AUTO_EXECUTE, Reason.AUTO_APPROVED, _AUTO_APPROVED
        message = _EVERY_CHECK_PASSED
    else:
        assert step.stop is not None
        (decision, reason), effects, message = step.stop, step.effects, step.said
    return GateOutcome(
        decision=decision,
        reason=reason,
        tier=facts.cls.tier,
        risk=facts.risk,
        trace=tuple(trace),
        message=message,
        consume_budget=effects.consume_budget,
        reserve=effects.reserve,
        publish=effects.publish,
        approval_source=effects.approval_source,
        auto_executed=effects.auto_executed,
    )


@dataclass(frozen=True, slots=True)
class _Prefix:
    """The shared checks for one set of facts: their entries, or the outcome if one decided."""

    tp: TenantPolicy
    cls: Classification
    level: AutonomyLevel
    entries: tuple[TraceEntry, ...]
    outcome: GateOutcome | None


def _prefix_key(
    intent: ActionIntent, policy: GatePolicy, ctx: GateContext, risk: RiskAssessment
) -> tuple[Any, ...]:
    """Return everything the shared checks look at (the policy aside).

    Intents differ in their ids and their budget; mostly in little else.
    """
    modes = policy.tenant_autonomy.get(intent.tenant, policy.autonomy).modes
    # The account only matters when the tenant sets modes per account.
    per_account = modes.accounts or modes.account_action_types
    named, more = _named_goal(intent) if intent.serves else (None, False)
    return (
        intent.tenant,
        intent.account if per_account else None,
        intent.action_type,
        intent.domain,
        intent.change_type,
        risk,
        ctx.stage,
        ctx.trusted_mode,
        ctx.account_allowlist,
        ctx.global_kill_switch,
        ctx.global_level,
        ctx.paused_action_types,
        intent.confidence,
        intent.source,
        ctx.goals,
        named,
        more,
    )


class _PrefixMemo:
    """The shared checks' results for recently seen facts, under one policy.

    Intents that agree on the facts those checks look at get the same entries
    (and, when one of the checks decides, the same outcome), so a busy gate
    builds them once rather than once per intent. A memo, not state: the
    answers are the ones evaluating afresh would give. Bounded; a different
    policy object starts afresh (it is held, so its id cannot be reused).
    """

    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._state: tuple[GatePolicy | None, dict[tuple[Any, ...], _Prefix]] = (None, {})

    def prefix(
        self, intent: ActionIntent, policy: GatePolicy, ctx: GateContext, risk: RiskAssessment
    ) -> _Prefix:
        """Return the shared checks for these facts, running them when not known."""
        known, found = self._state
        if known is not policy:
            found = {}
            self._state = (policy, found)
        key = _prefix_key(intent, policy, ctx, risk)
        try:
            hit = found.get(key)
        except TypeError:  # an unhashable value (say a set for a frozenset): no memo
            return _shared_checks(intent, policy, ctx, risk)
        if hit is None:
            hit = _shared_checks(intent, policy, ctx, risk)
            if len(found) >= self.MAX_ENTRIES:
                found.clear()
            found[key] = hit
        return hit


def _shared_checks(
    intent: ActionIntent, policy: GatePolicy, ctx: GateContext, risk: RiskAssessment
) -> _Prefix:
    tp = policy.for_tenant(intent.tenant)
    facts = _Facts(
        intent=intent,
        tp=tp,
        ctx=ctx,
        cls=classify(tp.guardrails, intent.action_type, ctx.stage),
        risk=risk,
        level=tp.autonomy.level.stricter(ctx.global_level),
    )
    trace: list[TraceEntry] = []
    step = _run_checks(_SHARED_CHECKS, facts, trace)
    for entry in trace:
        entry.to_json()  # serialised once, for every outcome that shares it
    outcome = None if step is None else _outcome(facts, trace, step)
    return _Prefix(tp, facts.cls, facts.level, tuple(trace), outcome)


_MEMO = _PrefixMemo()


def evaluate(intent: ActionIntent, policy: GatePolicy, ctx: GateContext) -> GateOutcome:
    """Decide what happens to ``intent``: auto-execute, wait for approval, or never.

    Pure: reads nothing but its arguments and changes nothing (the memo of
    shared checks only saves recomputing them).
    """
    risk = assess_risk(policy.risk, intent.change_type, intent.diff)
    prefix = _MEMO.prefix(intent, policy, ctx, risk)
    if prefix.outcome is not None:
        return prefix.outcome
    facts = _Facts(intent, prefix.tp, ctx, prefix.cls, risk, prefix.level)
    trace = list(prefix.entries)
    step = _run_checks(_OWN_CHECKS, facts, trace)
    return _outcome(facts, trace, step)


def can_approve(decision: Decision) -> bool:
    """Return True when a person may approve an intent with this decision.

    Only intents waiting for approval can be approved: BLOCKED ones never,
    and AUTO_EXECUTE ones need no approval.
    """
    return decision is Decision.REQUIRE_APPROVAL


def approval_blocker(
    guardrails: GuardrailPolicy, intent: ActionIntent, stage: str
) -> Reason | None:
    """Return HARD_STOP or FORBIDDEN_CHANGE_TYPE if the intent may no longer run at all.

    Called when a person approves, because the tables may have changed since
    the intent was queued; None means the approval may proceed.
    """
    if classify(guardrails, intent.action_type, stage).base_tier is Tier.HARD_STOP:
        return Reason.HARD_STOP
    if is_forbidden(guardrails, intent.domain, intent.change_type):
        return Reason.FORBIDDEN_CHANGE_TYPE
    return None


def approval_effects(state: IdempotencyState | None) -> tuple[Reason, Effects]:
    """Return what a human approval does given the intent's idempotency state.

    A new intent is reserved and published with ``approval_source = HUMAN``;
    no autonomy budget is consumed. A reserved one only retries the hand-off;
    a published one needs nothing.
    """
    if state is IdempotencyState.PUBLISHED:
        return Reason.ALREADY_PUBLISHED, Effects()
    if state is IdempotencyState.RESERVED:
        return Reason.RESUME_PUBLISH, Effects(publish=True)
    return Reason.HUMAN_APPROVED, Effects(
        reserve=True, publish=True, approval_source=ApprovalSource.HUMAN, auto_executed=False
    )


def budget_day(now: datetime) -> date:
    """Return the UTC day that ``now`` counts against for daily budgets.

    :raises InvalidArgument: ``now`` has no time zone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgument("now: must be timezone-aware", details={"field": "now"})
    return now.astimezone(UTC).date()


class BudgetLedger:
    """Today's budget counters for a batch of intents decided in one transaction.

    Seed it with the stored usage, then for each intent in turn: evaluate with
    :meth:`usage`, and :meth:`consume` when the outcome says so. Later intents
    then see the budget the earlier ones used, so a batch never exceeds a
    limit. The only mutable object of the core.
    """

    def __init__(self) -> None:
        self._tenant: dict[tuple[date, str], int] = {}
        self._account: dict[tuple[date, str, str], int] = {}
        self._action_type: dict[tuple[date, str, str], int] = {}

    def _keys(
        self, intent: ActionIntent, day: date
    ) -> tuple[tuple[date, str], tuple[date, str, str], tuple[date, str, str]]:
        return (
            (day, intent.tenant),
            (day, intent.tenant, intent.account),
            (day, intent.tenant, intent.action_type),
        )

    def is_seeded(self, intent: ActionIntent, day: date) -> bool:
        """Return True when all three counters for ``intent`` on ``day`` are known."""
        t, a, x = self._keys(intent, day)
        return t in self._tenant and a in self._account and x in self._action_type

    def seed(self, intent: ActionIntent, day: date, stored: BudgetUsage) -> None:
        """Load stored usage for the intent's counters, keeping any already loaded.

        Counters already present are left alone: they may include what this
        batch has consumed since.
        """
        t, a, x = self._keys(intent, day)
        self._tenant.setdefault(t, stored.tenant)
        self._account.setdefault(a, stored.account)
        self._action_type.setdefault(x, stored.action_type)

    def usage(self, intent: ActionIntent, day: date) -> BudgetUsage:
        """Return the usage the gate should see for ``intent`` (0 when never seeded)."""
        t, a, x = self._keys(intent, day)
        return BudgetUsage(
            self._tenant.get(t, 0), self._account.get(a, 0), self._action_type.get(x, 0)
        )

    def consume(self, intent: ActionIntent, day: date) -> BudgetUsage:
        """Count one auto-execution of ``intent`` on ``day`` and return the new usage."""
        t, a, x = self._keys(intent, day)
        self._tenant[t] = self._tenant.get(t, 0) + 1
        self._account[a] = self._account.get(a, 0) + 1
        self._action_type[x] = self._action_type.get(x, 0) + 1
        return self.usage(intent, day)
