"""The gate's decisions, their order, traces and effects, and the batch budget ledger."""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agentd.core.gate import (
    CHECKS,
    ApprovalSource,
    BudgetLedger,
    BudgetUsage,
    Decision,
    Effects,
    GateContext,
    GateOutcome,
    IdempotencyState,
    Reason,
    TrustedMode,
    approval_blocker,
    approval_effects,
    budget_day,
    can_approve,
    evaluate,
)
from agentd.core.goals import GoalFact, GoalType, Verdict
from agentd.core.guardrails import GuardrailPolicy, Tier
from agentd.core.intents import ActionIntent, IntentSource, make_intent
from agentd.core.policy import (
    AutonomyLevel,
    AutonomyMode,
    AutonomyModes,
    AutonomySettings,
    BudgetLimits,
    GatePolicy,
)
from agentd.core.risk import RiskLevel
from agentd.errors import ConfigInvalid, InvalidArgument
from tests.unit.test_guardrails import (
    APPROVAL_REQUIRED,
    AUTONOMOUS,
    FORBIDDEN,
    GATED,
    HARD_STOP,
    OPEN,
)

L3, L3P, L4, L4P = (
    AutonomyLevel.L3,
    AutonomyLevel.L3_PLUS,
    AutonomyLevel.L4,
    AutonomyLevel.L4_PLUS,
)
LOW, MEDIUM, HIGH = RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH
REQUIRE, BLOCKED, AUTO = Decision.REQUIRE_APPROVAL, Decision.BLOCKED, Decision.AUTO_EXECUTE

SETTINGS = AutonomySettings(level=L4P, allowlist=frozenset(AUTONOMOUS))
POLICY = GatePolicy(autonomy=SETTINGS).validate()
# Intents that are LOW, MEDIUM and HIGH risk, none of them forbidden.
RISKY: dict[RiskLevel, dict[str, Any]] = {
    LOW: {"domain": "SEO", "change_type": "meta_update", "diff": {"title": "x"}},
    MEDIUM: {"domain": "SEO", "change_type": "meta_update", "diff": {"bulk": True}},
    HIGH: {"domain": "ADS", "change_type": "budget_change", "diff": {"daily": 20}},
}


# Nothing mapped to an executor; or unmapped action types handed off to a person.
NO_EXECUTORS = replace(POLICY, executors={}).validate()
HANDOFF_DEFAULT = replace(POLICY, default_executor="handoff").validate()


# Goals as the gate sees them.
ACTIVITY_BEHIND = GoalFact("g_act", GoalType.ACTIVITY, Verdict.BEHIND)
CLOSED = (
    GoalFact("g_done", GoalType.PIPELINE, Verdict.COMPLETED),
    GoalFact("g_missed", GoalType.ACTIVITY, Verdict.MISSED),
)
ALIGNED = replace(POLICY, require_goal_alignment=True).validate()


def intent(**changes: Any) -> ActionIntent:
    fields: dict[str, Any] = {
        "tenant": "acme",
        "account": "a1",
        "action_type": "send_follow_up_email",
        "confidence": 0.9,
        "rationale": "buying signal",
    }
    return make_intent(**{**fields, **changes})


def ctx(**changes: Any) -> GateContext:
    base = GateContext(stage="discovery", trusted_mode=TrustedMode.ACTIVE, global_level=L4P)
    return replace(base, **changes)


def with_autonomy(**changes: Any) -> GatePolicy:
    return replace(POLICY, autonomy=replace(SETTINGS, **changes)).validate()


def modes(**changes: Any) -> GatePolicy:
    return with_autonomy(modes=AutonomyModes(**changes))


def check_trace(outcome: GateOutcome, deciding: str) -> None:
    """The trace holds every check up to the deciding one, in order, and no more."""
    assert outcome.checks == CHECKS[: CHECKS.index(deciding) + 1]
    assert all(entry.passed for entry in outcome.trace[:-1])
    assert outcome.trace[-1].passed is (outcome.decision is AUTO)
    json.dumps([entry.to_dict() for entry in outcome.trace])  # `saw` must be JSON


# (case id, intent changes, context changes, policy, decision, reason, deciding check)
SCENARIOS: list[tuple[str, dict[str, Any], dict[str, Any], GatePolicy, Decision, Reason, str]] = [
    ("baseline", {}, {}, POLICY, AUTO, Reason.AUTO_APPROVED, "budget"),
    ("unknown type, nothing carries it out", {"action_type": "launch_rockets"}, {}, POLICY,
     REQUIRE, Reason.NO_EXECUTOR, "executor"),
    ("unknown type handed off by default", {"action_type": "launch_rockets"}, {},
     HANDOFF_DEFAULT, REQUIRE, Reason.UNKNOWN_ACTION_TYPE, "tier"),
    # The goal check: every trace names the goal; a closed goal alone refuses.
    ("serves an active goal", {}, {"goals": (ACTIVITY_BEHIND,)}, POLICY, AUTO,
     Reason.AUTO_APPROVED, "budget"),
    ("serves only a completed goal", {"serves": {"goal": "g_done"}}, {"goals": CLOSED}, POLICY,
     BLOCKED, Reason.GOAL_CLOSED, "goal"),
    ("serves only a missed goal", {"serves": {"goal": "g_missed", "goal_verdict": "behind"}},
     {"goals": CLOSED}, POLICY, BLOCKED, Reason.GOAL_CLOSED, "goal"),
    ("closed goal refuses an approval-tier type too", {"action_type": "send_proposal",
     "serves": {"goal": "g_done"}}, {"goals": CLOSED}, HANDOFF_DEFAULT, BLOCKED,
     Reason.GOAL_CLOSED, "goal"),
    ("closed goal, but a pattern too", {"serves": {"goal": "g_done", "pattern": "p1"}},
     {"goals": CLOSED}, POLICY, AUTO, Reason.AUTO_APPROVED, "budget"),
    ("an unknown goal named", {"serves": {"goal": "g_gone"}}, {"goals": CLOSED}, POLICY, AUTO,
     Reason.AUTO_APPROVED, "budget"),
    ("hard stop before a closed goal", {"action_type": "commit_pricing",
     "serves": {"goal": "g_done"}}, {"goals": CLOSED}, POLICY, BLOCKED, Reason.HARD_STOP,
     "hard_stop"),
    ("alignment required, no goal", {}, {}, ALIGNED, REQUIRE, Reason.GOAL_NOT_ALIGNED, "goal"),
    ("alignment required, only closed goals", {}, {"goals": CLOSED}, ALIGNED, REQUIRE,
     Reason.GOAL_NOT_ALIGNED, "goal"),
    ("alignment required and served", {}, {"goals": (ACTIVITY_BEHIND,)}, ALIGNED, AUTO,
     Reason.AUTO_APPROVED, "budget"),
    ("alignment concerns autonomous intents only", {"action_type": "send_proposal"}, {},
     replace(ALIGNED, default_executor="handoff"), REQUIRE, Reason.APPROVAL_REQUIRED_TIER,
     "tier"),
    ("alignment, stage gated", {}, {"stage": "negotiation"}, ALIGNED, REQUIRE,
     Reason.STAGE_GATED, "tier"),
    # Executor availability: before the budget, so nothing that cannot happen consumes it.
    ("unmapped autonomous type", {}, {}, NO_EXECUTORS, REQUIRE, Reason.NO_EXECUTOR, "executor"),
    ("unmapped type, budget exhausted", {}, {"usage": BudgetUsage(50, 10, 25)}, NO_EXECUTORS,
     REQUIRE, Reason.NO_EXECUTOR, "executor"),
    ("unmapped type, kill switch on", {}, {"global_kill_switch": True}, NO_EXECUTORS, REQUIRE,
     Reason.NO_EXECUTOR, "executor"),
    ("unmapped type handed off by default", {}, {}, replace(NO_EXECUTORS,
     default_executor="handoff"), AUTO, Reason.AUTO_APPROVED, "budget"),
    ("mapped to a hand-off", {}, {}, replace(POLICY, executors={
     "send_follow_up_email": "handoff"}), AUTO, Reason.AUTO_APPROVED, "budget"),
    ("domain key maps what the action type does not", {"domain": "seo",
     "change_type": "meta_update", "diff": {"title": "x"}}, {}, replace(POLICY,
     executors={"SEO.meta_update": "product_seo"}), AUTO, Reason.AUTO_APPROVED, "budget"),
    ("governance needs no executor", {"source": "governance", "action_type": "launch_rockets"},
     {}, NO_EXECUTORS, REQUIRE, Reason.UNKNOWN_ACTION_TYPE, "tier"),
    ("forbidden before no executor", {"domain": "SEO", "change_type": "domain_redirect"}, {},
     NO_EXECUTORS, BLOCKED, Reason.FORBIDDEN_CHANGE_TYPE, "forbidden_change_type"),
    ("hard stop before no executor", {"action_type": "commit_pricing"}, {}, NO_EXECUTORS,
     BLOCKED, Reason.HARD_STOP, "hard_stop"),
    ("not allowlisted", {}, {}, with_autonomy(allowlist=frozenset({"send_chat_message"})),
     REQUIRE, Reason.ACTION_TYPE_NOT_ALLOWLISTED, "allowlist"),
    ("empty tenant allowlist", {}, {}, with_autonomy(allowlist=frozenset()), REQUIRE,
     Reason.ACTION_TYPE_NOT_ALLOWLISTED, "allowlist"),
    ("account allowlist replaces the tenant's", {},
     {"account_allowlist": frozenset({"send_chat_message"})}, POLICY, REQUIRE,
     Reason.ACTION_TYPE_NOT_ALLOWLISTED, "allowlist"),
    ("empty account allowlist", {}, {"account_allowlist": frozenset()}, POLICY, REQUIRE,
     Reason.ACTION_TYPE_NOT_ALLOWLISTED, "allowlist"),
    ("account allowlist grants what the tenant's lacks", {},
     {"account_allowlist": frozenset({"send_follow_up_email"})},
     with_autonomy(allowlist=frozenset()), AUTO, Reason.AUTO_APPROVED, "budget"),
    # Autonomy mode: most specific wins; account vs action type ties go MANUAL.
    ("tenant MANUAL", {}, {}, modes(default=AutonomyMode.MANUAL), REQUIRE,
     Reason.AUTONOMY_MODE_MANUAL, "autonomy_mode"),
    ("account MANUAL", {}, {}, modes(accounts={"a1": AutonomyMode.MANUAL}), REQUIRE,
     Reason.AUTONOMY_MODE_MANUAL, "autonomy_mode"),
    ("other account MANUAL", {}, {}, modes(accounts={"a2": AutonomyMode.MANUAL}), AUTO,
     Reason.AUTO_APPROVED, "budget"),
    ("action type MANUAL", {}, {},
     modes(action_types={"send_follow_up_email": AutonomyMode.MANUAL}), REQUIRE,
     Reason.AUTONOMY_MODE_MANUAL, "autonomy_mode"),
    ("account AUTO, action type MANUAL", {}, {},
     modes(accounts={"a1": AutonomyMode.AUTO},
           action_types={"send_follow_up_email": AutonomyMode.MANUAL}),
     REQUIRE, Reason.AUTONOMY_MODE_MANUAL, "autonomy_mode"),
    ("account AUTO beats tenant MANUAL", {}, {},
     modes(default=AutonomyMode.MANUAL, accounts={"a1": AutonomyMode.AUTO}), AUTO,
     Reason.AUTO_APPROVED, "budget"),
    ("pair AUTO beats account MANUAL", {}, {},
     modes(accounts={"a1": AutonomyMode.MANUAL},
           account_action_types={("a1", "send_follow_up_email"): AutonomyMode.AUTO}),
     AUTO, Reason.AUTO_APPROVED, "budget"),
    ("pair MANUAL", {}, {},
     modes(account_action_types={("a1", "send_follow_up_email"): AutonomyMode.MANUAL}),
     REQUIRE, Reason.AUTONOMY_MODE_MANUAL, "autonomy_mode"),
    # Level: the stricter of the tenant's and the global one.
    ("global L3", {}, {"global_level": L3}, POLICY, REQUIRE, Reason.AUTONOMY_LEVEL_L3,
     "autonomy_level"),
    ("tenant L3", {}, {}, with_autonomy(level=L3), REQUIRE, Reason.AUTONOMY_LEVEL_L3,
     "autonomy_level"),
    ("default context is L3", {}, {"global_level": GateContext(stage="x").global_level},
     POLICY, REQUIRE, Reason.AUTONOMY_LEVEL_L3, "autonomy_level"),
    ("default settings are L3", {}, {}, GatePolicy(), REQUIRE,
     Reason.ACTION_TYPE_NOT_ALLOWLISTED, "allowlist"),
    ("global kill switch", {}, {"global_kill_switch": True}, POLICY, REQUIRE,
     Reason.KILL_SWITCH, "kill_switch"),
    ("tenant kill switch", {}, {}, with_autonomy(kill_switch=True), REQUIRE,
     Reason.KILL_SWITCH, "kill_switch"),
    ("paused by a breaker", {}, {"paused_action_types": frozenset({"send_follow_up_email"})},
     POLICY, REQUIRE, Reason.ACTION_TYPE_PAUSED, "action_type_paused"),
    ("another type paused", {}, {"paused_action_types": frozenset({"send_chat_message"})},
     POLICY, AUTO, Reason.AUTO_APPROVED, "budget"),
    ("trust NONE", {}, {"trusted_mode": TrustedMode.NONE}, POLICY, REQUIRE,
     Reason.TRUST_NOT_ACTIVE, "trusted_mode"),
    ("trust PAUSED", {}, {"trusted_mode": TrustedMode.PAUSED}, POLICY, REQUIRE,
     Reason.TRUST_NOT_ACTIVE, "trusted_mode"),
    ("trust REVOKED", {}, {"trusted_mode": TrustedMode.REVOKED}, POLICY, REQUIRE,
     Reason.TRUST_NOT_ACTIVE, "trusted_mode"),
    # Confidence.
    ("below the floor", {"confidence": 0.69}, {}, POLICY, REQUIRE, Reason.LOW_CONFIDENCE,
     "confidence"),
    ("exactly the floor", {"confidence": 0.7}, {}, POLICY, AUTO, Reason.AUTO_APPROVED, "budget"),
    ("custom floor", {"confidence": 0.9}, {}, with_autonomy(confidence_floor=0.95), REQUIRE,
     Reason.LOW_CONFIDENCE, "confidence"),
    ("operator without confidence", {"confidence": None, "source": "operator"}, {}, POLICY,
     AUTO, Reason.AUTO_APPROVED, "budget"),
    ("planner without confidence", {"confidence": None, "source": "planner"}, {}, POLICY,
     REQUIRE, Reason.LOW_CONFIDENCE, "confidence"),
    ("governance without confidence", {"confidence": None, "source": "governance"}, {},
     POLICY, REQUIRE, Reason.LOW_CONFIDENCE, "confidence"),
    ("operator with low confidence", {"confidence": 0.1, "source": "operator"}, {}, POLICY,
     REQUIRE, Reason.LOW_CONFIDENCE, "confidence"),
    # Idempotency.
    ("published", {}, {"idempotency": IdempotencyState.PUBLISHED}, POLICY, AUTO,
     Reason.ALREADY_PUBLISHED, "idempotency"),
    ("reserved", {}, {"idempotency": IdempotencyState.RESERVED}, POLICY, AUTO,
     Reason.RESUME_PUBLISH, "idempotency"),
    ("reserved, budget since exhausted", {},
     {"idempotency": IdempotencyState.RESERVED, "usage": BudgetUsage(50, 10, 25)}, POLICY,
     AUTO, Reason.RESUME_PUBLISH, "idempotency"),
    # Budget: exhausted at the limit, not one before.
    ("tenant budget at limit", {}, {"usage": BudgetUsage(tenant=50)}, POLICY, REQUIRE,
     Reason.BUDGET_EXHAUSTED, "budget"),
    ("account budget at limit", {}, {"usage": BudgetUsage(account=10)}, POLICY, REQUIRE,
     Reason.BUDGET_EXHAUSTED, "budget"),
    ("action type budget at limit", {}, {"usage": BudgetUsage(action_type=25)}, POLICY,
     REQUIRE, Reason.BUDGET_EXHAUSTED, "budget"),
    ("one below every limit", {}, {"usage": BudgetUsage(49, 9, 24)}, POLICY, AUTO,
     Reason.AUTO_APPROVED, "budget"),
    ("tenant budget override", {}, {"usage": BudgetUsage(tenant=5)},
     replace(POLICY, tenant_budgets={"acme": BudgetLimits(per_tenant_daily=5)}), REQUIRE,
     Reason.BUDGET_EXHAUSTED, "budget"),
    ("override is per tenant", {"tenant": "globex"}, {"usage": BudgetUsage(tenant=5)},
     replace(POLICY, tenant_budgets={"acme": BudgetLimits(per_tenant_daily=5)}), AUTO,
     Reason.AUTO_APPROVED, "budget"),
    ("zero limit disables", {}, {},
     replace(POLICY, budget=BudgetLimits(per_account_daily=0)), REQUIRE,
     Reason.BUDGET_EXHAUSTED, "budget"),
    # Order: the earlier check reports, whatever else is wrong.
    ("hard stop, not allowlisted", {"action_type": "commit_pricing"}, {}, POLICY, BLOCKED,
     Reason.HARD_STOP, "hard_stop"),
    ("hard stop with a forbidden change", {"action_type": "commit_pricing", "domain": "ADS",
     "change_type": "campaign_launch"}, {}, POLICY, BLOCKED, Reason.HARD_STOP, "hard_stop"),
    ("forbidden change on an allowlisted type", {"domain": "SEO",
     "change_type": "domain_redirect"}, {}, POLICY, BLOCKED, Reason.FORBIDDEN_CHANGE_TYPE,
     "forbidden_change_type"),
    ("not allowlisted, kill switch on", {}, {"global_kill_switch": True},
     with_autonomy(allowlist=frozenset()), REQUIRE, Reason.ACTION_TYPE_NOT_ALLOWLISTED,
     "allowlist"),
    ("stage gated, not allowlisted", {}, {"stage": "negotiation"},
     with_autonomy(allowlist=frozenset()), REQUIRE, Reason.STAGE_GATED, "tier"),
    ("manual and L3", {}, {"global_level": L3}, modes(default=AutonomyMode.MANUAL), REQUIRE,
     Reason.AUTONOMY_MODE_MANUAL, "autonomy_mode"),
    ("L3 and kill switch", {}, {"global_level": L3, "global_kill_switch": True}, POLICY,
     REQUIRE, Reason.AUTONOMY_LEVEL_L3, "autonomy_level"),
    ("kill switch, paused, untrusted", {}, {"global_kill_switch": True,
     "paused_action_types": frozenset({"send_follow_up_email"}),
     "trusted_mode": TrustedMode.REVOKED}, POLICY, REQUIRE, Reason.KILL_SWITCH, "kill_switch"),
    ("paused and untrusted", {}, {"paused_action_types": frozenset({"send_follow_up_email"}),
     "trusted_mode": TrustedMode.NONE}, POLICY, REQUIRE, Reason.ACTION_TYPE_PAUSED,
     "action_type_paused"),
    ("untrusted, high risk", RISKY[HIGH], {"trusted_mode": TrustedMode.NONE,
     "global_level": L3P}, POLICY, REQUIRE, Reason.TRUST_NOT_ACTIVE, "trusted_mode"),
    ("high risk, low confidence", {**RISKY[HIGH], "confidence": 0.1}, {"global_level": L3P},
     POLICY, REQUIRE, Reason.RISK_ABOVE_LEVEL, "risk"),
    ("low confidence, published, no budget", {"confidence": 0.1},
     {"idempotency": IdempotencyState.PUBLISHED, "usage": BudgetUsage(50, 10, 25)}, POLICY,
     REQUIRE, Reason.LOW_CONFIDENCE, "confidence"),
    ("published, no budget", {}, {"idempotency": IdempotencyState.PUBLISHED,
     "usage": BudgetUsage(50, 10, 25)}, POLICY, AUTO, Reason.ALREADY_PUBLISHED, "idempotency"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "context", "policy", "decision", "reason", "deciding"),
    [case[1:] for case in SCENARIOS],
    ids=[case[0] for case in SCENARIOS],
)
def test_decision_table(
    changes: dict[str, Any],
    context: dict[str, Any],
    policy: GatePolicy,
    decision: Decision,
    reason: Reason,
    deciding: str,
) -> None:
    outcome = evaluate(intent(**changes), policy, ctx(**context))
    assert (outcome.decision, outcome.reason) == (decision, reason)
    check_trace(outcome, deciding)


@pytest.mark.parametrize("action_type", HARD_STOP)
@pytest.mark.parametrize("stage", OPEN + GATED)
def test_every_hard_stop_is_blocked_on_every_stage(action_type: str, stage: str) -> None:
    outcome = evaluate(intent(action_type=action_type), POLICY, ctx(stage=stage))
    assert (outcome.decision, outcome.reason, outcome.tier) == (
        BLOCKED,
        Reason.HARD_STOP,
        Tier.HARD_STOP,
    )
    check_trace(outcome, "hard_stop")


@pytest.mark.parametrize("action_type", APPROVAL_REQUIRED)
def test_every_approval_required_type_waits_even_when_allowlisted(action_type: str) -> None:
    policy = with_autonomy(allowlist=frozenset(AUTONOMOUS + APPROVAL_REQUIRED))
    outcome = evaluate(intent(action_type=action_type), policy, ctx())
    assert (outcome.decision, outcome.reason) == (REQUIRE, Reason.APPROVAL_REQUIRED_TIER)
    check_trace(outcome, "tier")


@pytest.mark.parametrize("action_type", AUTONOMOUS)
@pytest.mark.parametrize("stage", GATED)
def test_every_autonomous_type_is_stage_gated(action_type: str, stage: str) -> None:
    outcome = evaluate(intent(action_type=action_type), POLICY, ctx(stage=stage))
    assert (outcome.decision, outcome.reason, outcome.tier) == (
        REQUIRE,
        Reason.STAGE_GATED,
        Tier.APPROVAL_REQUIRED,
    )
    check_trace(outcome, "tier")


@pytest.mark.parametrize("action_type", AUTONOMOUS)
@pytest.mark.parametrize("stage", OPEN)
def test_every_autonomous_type_auto_executes_on_open_stages(action_type: str, stage: str) -> None:
    outcome = evaluate(intent(action_type=action_type), POLICY, ctx(stage=stage))
    assert (outcome.decision, outcome.reason) == (AUTO, Reason.AUTO_APPROVED)


@pytest.mark.parametrize(("domain", "change_type"), FORBIDDEN)
def test_every_forbidden_change_is_blocked(domain: str, change_type: str) -> None:
    changed = intent(domain=domain.lower(), change_type=change_type)
    outcome = evaluate(changed, POLICY, ctx())
    assert (outcome.decision, outcome.reason) == (BLOCKED, Reason.FORBIDDEN_CHANGE_TYPE)
    check_trace(outcome, "forbidden_change_type")


@pytest.mark.parametrize(
    ("level", "risk", "allowed"),
    [
        (L3P, LOW, True),
        (L3P, MEDIUM, False),
        (L3P, HIGH, False),
        (L4, LOW, True),
        (L4, MEDIUM, True),
        (L4, HIGH, False),
        (L4P, LOW, True),
        (L4P, MEDIUM, True),
        (L4P, HIGH, True),
    ],
)
def test_risk_against_level(level: AutonomyLevel, risk: RiskLevel, allowed: bool) -> None:
    assert level.allows(risk) is allowed
    outcome = evaluate(intent(**RISKY[risk]), POLICY, ctx(global_level=level))
    assert outcome.risk.level is risk
    if allowed:
        assert (outcome.decision, outcome.reason) == (AUTO, Reason.AUTO_APPROVED)
    else:
        assert (outcome.decision, outcome.reason) == (REQUIRE, Reason.RISK_ABOVE_LEVEL)
        check_trace(outcome, "risk")


@pytest.mark.parametrize("risk", [LOW, MEDIUM, HIGH])
def test_l3_allows_no_risk(risk: RiskLevel) -> None:
    assert not L3.allows(risk)
    outcome = evaluate(intent(**RISKY[risk]), POLICY, ctx(global_level=L3))
    assert outcome.reason is Reason.AUTONOMY_LEVEL_L3


@pytest.mark.parametrize(
    ("tenant", "global_", "effective"),
    [(L3, L4P, L3), (L4P, L3, L3), (L3P, L4, L3P), (L4, L3P, L3P), (L4P, L4P, L4P)],
)
def test_the_stricter_level_applies(
    tenant: AutonomyLevel, global_: AutonomyLevel, effective: AutonomyLevel
) -> None:
    assert tenant.stricter(global_) is effective
    outcome = evaluate(intent(), with_autonomy(level=tenant), ctx(global_level=global_))
    level_entry = next(e for e in outcome.trace if e.check == "autonomy_level")
    assert level_entry.saw["level"] == str(effective)


@pytest.mark.parametrize(
    ("usage", "exhausted"),
    [
        (BudgetUsage(50, 0, 0), ["per_tenant_daily"]),
        (BudgetUsage(0, 10, 0), ["per_account_daily"]),
        (BudgetUsage(0, 0, 25), ["per_action_type_daily"]),
        (BudgetUsage(51, 10, 3), ["per_tenant_daily", "per_account_daily"]),
    ],
)
def test_budget_exhaustion_names_the_limit(usage: BudgetUsage, exhausted: list[str]) -> None:
    outcome = evaluate(intent(), POLICY, ctx(usage=usage))
    assert outcome.reason is Reason.BUDGET_EXHAUSTED
    assert outcome.trace[-1].saw["exhausted"] == exhausted
    for name in exhausted:
        assert name in outcome.message


def test_trust_not_active_reports_the_mode_seen() -> None:
    outcome = evaluate(intent(), POLICY, ctx(trusted_mode=TrustedMode.PAUSED))
    assert outcome.trace[-1].saw == {"trusted_mode": "PAUSED"}
    assert "PAUSED" in outcome.message


def test_account_allowlist_is_what_the_trace_shows() -> None:
    outcome = evaluate(intent(), POLICY, ctx(account_allowlist=frozenset({"log_interaction"})))
    assert outcome.trace[-1].saw == {
        "action_type": "send_follow_up_email",
        "allowlist_of": "account",
        "allowlist": ["log_interaction"],
    }


@pytest.mark.parametrize(
    ("context", "effects"),
    [
        ({}, Effects(True, True, True, ApprovalSource.POLICY, True)),
        ({"idempotency": IdempotencyState.RESERVED}, Effects(publish=True)),
        ({"idempotency": IdempotencyState.PUBLISHED}, Effects()),
        ({"usage": BudgetUsage(account=10)}, Effects()),
        ({"trusted_mode": TrustedMode.NONE}, Effects()),
        ({"stage": "closed_won"}, Effects()),
    ],
)
def test_effects(context: dict[str, Any], effects: Effects) -> None:
    outcome = evaluate(intent(), POLICY, ctx(**context))
    assert outcome.effects == effects


def test_blocked_intent_has_no_effects_and_still_a_risk() -> None:
    outcome = evaluate(intent(action_type="commit_pricing", **RISKY[HIGH]), POLICY, ctx())
    assert outcome.effects == Effects()
    assert outcome.risk.level is HIGH


def test_outcome_round_trips_through_json() -> None:
    for context in ({}, {"trusted_mode": TrustedMode.REVOKED}):
        outcome = evaluate(intent(**RISKY[MEDIUM]), POLICY, ctx(**context))
        again = GateOutcome.from_dict(json.loads(json.dumps(outcome.to_dict())))
        assert again == outcome


@pytest.mark.parametrize(
    ("made", "context"),
    [
        (intent(), {}),
        (intent(**RISKY[MEDIUM]), {"trusted_mode": TrustedMode.REVOKED}),
        (intent(action_type="commit_pricing"), {}),
        (intent(rationale="é ünïcode \u2028"), {"usage": BudgetUsage(50, 10, 25)}),
        (intent(), {"idempotency": IdempotencyState.RESERVED}),
    ],
)
def test_stored_json_is_the_json_of_the_dict(made: ActionIntent, context: dict[str, Any]) -> None:
    outcome = evaluate(made, POLICY, ctx(**context))
    again = GateOutcome.from_dict(json.loads(outcome.to_json()))
    for o in (outcome, again, outcome):  # the third time from cached pieces
        assert o.to_json() == json.dumps(o.to_dict())


def test_shared_checks_follow_every_fact_they_saw() -> None:
    # Outcomes of the first checks are remembered; nothing they look at may be missed.
    made = intent()
    assert evaluate(made, POLICY, ctx()).decision is AUTO
    variations: list[tuple[GatePolicy, GateContext, Reason]] = [
        (with_autonomy(allowlist=frozenset()), ctx(), Reason.ACTION_TYPE_NOT_ALLOWLISTED),
        (POLICY, ctx(account_allowlist=frozenset()), Reason.ACTION_TYPE_NOT_ALLOWLISTED),
        (POLICY, ctx(stage="negotiation"), Reason.STAGE_GATED),
        (POLICY, ctx(trusted_mode=TrustedMode.PAUSED), Reason.TRUST_NOT_ACTIVE),
        (POLICY, ctx(global_kill_switch=True), Reason.KILL_SWITCH),
        (POLICY, ctx(global_level=L3), Reason.AUTONOMY_LEVEL_L3),
        (
            POLICY,
            ctx(paused_action_types=frozenset({"send_follow_up_email"})),
            Reason.ACTION_TYPE_PAUSED,
        ),
        (modes(accounts={"a1": AutonomyMode.MANUAL}), ctx(), Reason.AUTONOMY_MODE_MANUAL),
        (with_autonomy(confidence_floor=0.95), ctx(), Reason.LOW_CONFIDENCE),
    ]
    for policy, context, reason in variations:
        assert evaluate(made, policy, context).reason is reason
        assert evaluate(made, POLICY, ctx()).decision is AUTO
    # Account modes apply per account, even for facts otherwise the same.
    manual_a1 = modes(accounts={"a1": AutonomyMode.MANUAL})
    assert evaluate(intent(account="a2"), manual_a1, ctx()).decision is AUTO
    assert evaluate(intent(account="a1"), manual_a1, ctx()).reason is Reason.AUTONOMY_MODE_MANUAL
    assert evaluate(intent(confidence=0.5), POLICY, ctx()).reason is Reason.LOW_CONFIDENCE
    assert evaluate(intent(diff={"bulk": True}), with_autonomy(level=L3P), ctx()).reason is (
        Reason.RISK_ABOVE_LEVEL
    )
    # A plain set where a frozenset belongs cannot be remembered, but still decides.
    loose = ctx(account_allowlist={"send_follow_up_email"})  # type: ignore[arg-type]
    assert evaluate(made, POLICY, loose).decision is AUTO


def test_each_intent_gets_its_own_id_and_budget_in_the_trace() -> None:
    first, second = intent(rationale="one"), intent(rationale="two")
    a = evaluate(first, POLICY, ctx(usage=BudgetUsage(1, 1, 1)))
    b = evaluate(second, POLICY, ctx(usage=BudgetUsage(2, 2, 2)))
    assert a.trace[:-2] == b.trace[:-2]
    assert a.trace[-2].saw["intent_id"] == first.intent_id
    assert b.trace[-2].saw["intent_id"] == second.intent_id
    assert a.trace[-1].saw["per_account_daily"]["used"] == 1
    assert b.trace[-1].saw["per_account_daily"]["used"] == 2


def test_evaluate_is_pure() -> None:
    made, context = intent(), ctx()
    assert evaluate(made, POLICY, context) == evaluate(made, POLICY, context)
    assert context.usage == BudgetUsage()


# --- human approval ---------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "allowed"), [(REQUIRE, True), (BLOCKED, False), (AUTO, False)]
)
def test_can_approve(decision: Decision, allowed: bool) -> None:
    assert can_approve(decision) is allowed


@pytest.mark.parametrize(
    ("state", "reason", "effects"),
    [
        (None, Reason.HUMAN_APPROVED, Effects(False, True, True, ApprovalSource.HUMAN, False)),
        (IdempotencyState.RESERVED, Reason.RESUME_PUBLISH, Effects(publish=True)),
        (IdempotencyState.PUBLISHED, Reason.ALREADY_PUBLISHED, Effects()),
    ],
)
def test_approval_effects(state: IdempotencyState | None, reason: Reason, effects: Effects) -> None:
    assert approval_effects(state) == (reason, effects)
    assert not effects.consume_budget


@pytest.mark.parametrize(
    ("changes", "guardrails", "blocker"),
    [
        ({"action_type": "send_proposal"}, GuardrailPolicy(), None),
        ({"action_type": "launch_rockets"}, GuardrailPolicy(), None),
        ({"action_type": "commit_pricing"}, GuardrailPolicy(), Reason.HARD_STOP),
        ({"domain": "CRO", "change_type": "forced_winner"}, GuardrailPolicy(),
         Reason.FORBIDDEN_CHANGE_TYPE),
        # The tables were reloaded after the intent was queued.
        ({"action_type": "send_proposal"},
         GuardrailPolicy(approval_required=frozenset(), hard_stop=frozenset({"send_proposal"})),
         Reason.HARD_STOP),
    ],
)  # fmt: skip
def test_approval_blocker(
    changes: dict[str, Any], guardrails: GuardrailPolicy, blocker: Reason | None
) -> None:
    assert approval_blocker(guardrails, intent(**changes), "negotiation") is blocker


# --- budget ledger and batches ------------------------------------------------

DAY = date(2024, 3, 1)


def run_batch(
    intents: list[ActionIntent], ledger: BudgetLedger, policy: GatePolicy = POLICY
) -> list[GateOutcome]:
    """Decide a batch the way the service does: sequentially, applying effects as it goes."""
    states: dict[str, IdempotencyState] = {}
    outcomes = []
    for item in intents:
        ledger.seed(item, DAY, BudgetUsage())
        outcome = evaluate(
            item,
            policy,
            ctx(usage=ledger.usage(item, DAY), idempotency=states.get(item.intent_id)),
        )
        if outcome.consume_budget:
            ledger.consume(item, DAY)
        if outcome.reserve:
            states[item.intent_id] = IdempotencyState.RESERVED
        outcomes.append(outcome)
    return outcomes


def many(
    count: int, *, accounts: int = 1, action_type: str = "send_chat_message"
) -> list[ActionIntent]:
    return [
        intent(account=f"a{i % accounts}", action_type=action_type, rationale=f"n{i}")
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("intents", "limits", "executed", "limit"),
    [
        (many(30), BudgetLimits(), 10, "per_account_daily"),
        (many(80, accounts=8), BudgetLimits(50, 99, 99), 50, "per_tenant_daily"),
        (many(40, accounts=8), BudgetLimits(), 25, "per_action_type_daily"),
    ],
)
def test_a_batch_never_exceeds_a_limit(
    intents: list[ActionIntent], limits: BudgetLimits, executed: int, limit: str
) -> None:
    outcomes = run_batch(intents, BudgetLedger(), replace(POLICY, budget=limits))
    auto = [o for o in outcomes if o.reason is Reason.AUTO_APPROVED]
    assert len(auto) == executed
    assert outcomes[:executed] == auto  # first come, first served
    rest = outcomes[executed:]
    assert all(o.reason is Reason.BUDGET_EXHAUSTED for o in rest)
    assert all(limit in o.trace[-1].saw["exhausted"] for o in rest)


def test_the_same_intent_twice_in_a_batch_consumes_once() -> None:
    ledger = BudgetLedger()
    twice = [intent(), intent()]
    first, second = run_batch(twice, ledger)
    assert (first.reason, second.reason) == (Reason.AUTO_APPROVED, Reason.RESUME_PUBLISH)
    assert ledger.usage(twice[0], DAY) == BudgetUsage(1, 1, 1)


def test_ledger_seeds_from_the_store_and_keeps_batch_consumption() -> None:
    ledger = BudgetLedger()
    a1, a2 = intent(account="a1"), intent(account="a2")
    assert not ledger.is_seeded(a1, DAY)
    ledger.seed(a1, DAY, BudgetUsage(tenant=40, account=8, action_type=3))
    assert ledger.is_seeded(a1, DAY) and not ledger.is_seeded(a2, DAY)
    assert ledger.consume(a1, DAY) == BudgetUsage(41, 9, 4)
    # A stored count read before this batch's consumption must not undo it.
    ledger.seed(a2, DAY, BudgetUsage(tenant=40, account=0, action_type=3))
    assert ledger.usage(a2, DAY) == BudgetUsage(41, 0, 4)
    assert ledger.usage(a1, DAY + timedelta(days=1)) == BudgetUsage()
    assert ledger.usage(intent(tenant="globex"), DAY) == BudgetUsage()


def test_stored_usage_leaves_only_the_remainder() -> None:
    ledger = BudgetLedger()
    batch = many(5)
    ledger.seed(batch[0], DAY, BudgetUsage(tenant=8, account=8, action_type=8))
    outcomes = run_batch(batch, ledger)
    assert [o.reason for o in outcomes].count(Reason.AUTO_APPROVED) == 2


@pytest.mark.parametrize(
    ("now", "day"),
    [
        (datetime(2024, 3, 1, 23, 59, tzinfo=UTC), date(2024, 3, 1)),
        (datetime(2024, 3, 2, 0, 0, tzinfo=UTC), date(2024, 3, 2)),
        (datetime(2024, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))), date(2024, 3, 2)),
        (datetime(2024, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2))), date(2024, 3, 1)),
    ],
)
def test_budget_day_is_the_utc_day(now: datetime, day: date) -> None:
    assert budget_day(now) == day


def test_budget_day_refuses_naive_time() -> None:
    with pytest.raises(InvalidArgument):
        budget_day(datetime(2024, 3, 1, 12, 0))


# --- policy resolution and validation ------------------------------------------


def test_for_tenant_resolves_overrides() -> None:
    strict = AutonomySettings(level=L3P, allowlist=frozenset({"log_interaction"}))
    policy = replace(
        POLICY,
        tenant_autonomy={"globex": strict},
        tenant_budgets={"globex": BudgetLimits(5, 5, 5)},
    ).validate()
    assert policy.for_tenant("globex").autonomy == strict
    assert policy.for_tenant("globex").budget == BudgetLimits(5, 5, 5)
    assert policy.for_tenant("acme").autonomy == SETTINGS
    assert policy.for_tenant("acme").budget == BudgetLimits()
    outcome = evaluate(intent(tenant="globex"), policy, ctx())
    assert outcome.reason is Reason.ACTION_TYPE_NOT_ALLOWLISTED


def test_budget_defaults() -> None:
    assert BudgetLimits() == BudgetLimits(
        per_tenant_daily=50, per_account_daily=10, per_action_type_daily=25
    )
    assert AutonomySettings().confidence_floor == 0.7
    assert AutonomySettings().level is L3


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (replace(POLICY, autonomy=replace(SETTINGS, confidence_floor=1.5)),
         "autonomy.confidence_floor"),
        (replace(POLICY, autonomy=replace(SETTINGS, allowlist=frozenset({"commit_pricing"}))),
         "autonomy.allowlist"),
        (replace(POLICY, autonomy=replace(SETTINGS, allowlist=frozenset({"Bad"}))),
         "autonomy.allowlist"),
        (replace(POLICY, autonomy=replace(SETTINGS, level="L5")), "autonomy.level"),  # type: ignore[arg-type]
        (replace(POLICY, autonomy=replace(SETTINGS, modes=AutonomyModes(default="auto"))),  # type: ignore[arg-type]
         "autonomy.modes.default"),
        (replace(POLICY, autonomy=replace(SETTINGS, modes=AutonomyModes(
            accounts={"a1": "MANUAL"}))), "autonomy.modes.accounts.a1"),  # type: ignore[dict-item]
        (replace(POLICY, budget=BudgetLimits(per_account_daily=-1)), "budget.per_account_daily"),
        (replace(POLICY, tenant_budgets={"acme": BudgetLimits(per_tenant_daily=2.5)}),  # type: ignore[arg-type]
         "tenants.acme.budget.per_tenant_daily"),
        (replace(POLICY, tenant_autonomy={"Acme Corp": SETTINGS}), "tenants"),
        (replace(POLICY, tenant_autonomy={"acme": replace(SETTINGS, kill_switch="yes")}),  # type: ignore[arg-type]
         "tenants.acme.autonomy.kill_switch"),
        (replace(POLICY, guardrails=GuardrailPolicy(gated_stages=frozenset({"won"}))),
         "guardrails.gated_stages"),
        (replace(POLICY, executors={"send_proposal": "fax"}), "execution.executors.send_proposal"),
        (replace(POLICY, default_executor="message"), "execution.default_executor"),
    ],
)  # fmt: skip
def test_invalid_policies_name_the_field(policy: GatePolicy, field: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        policy.validate()
    assert err.value.details["field"] == field


def test_operator_source_enum_is_used_for_missing_confidence() -> None:
    outcome = evaluate(intent(confidence=None, source=IntentSource.OPERATOR), POLICY, ctx())
    entry = next(e for e in outcome.trace if e.check == "confidence")
    assert entry.saw == {"confidence": None, "counted_as": 1.0, "floor": 0.7, "source": "operator"}


@pytest.mark.parametrize(
    ("policy", "changes", "executor", "mapped_by", "said"),
    [
        (POLICY, {}, "message", "send_follow_up_email", "carried out by the message executor"),
        (POLICY, {"domain": "seo", "change_type": "meta_update", "diff": {"title": "x"}},
         "product_seo", "SEO.meta_update", "carried out by the product_seo executor"),
        (HANDOFF_DEFAULT, {"action_type": "launch_rockets"}, "handoff", "*",
         "the default for unmapped action types"),
        (replace(POLICY, executors={"send_follow_up_email": "handoff"}), {}, "handoff",
         "send_follow_up_email", "handed off to a person"),
        (NO_EXECUTORS, {}, None, None, "no executor and no hand-off is mapped"),
    ],
)  # fmt: skip
def test_the_executor_check_says_what_carries_the_intent_out(
    policy: GatePolicy,
    changes: dict[str, Any],
    executor: str | None,
    mapped_by: str | None,
    said: str,
) -> None:
    outcome = evaluate(intent(**changes), policy, ctx())
    entry = next(e for e in outcome.trace if e.check == "executor")
    assert (entry.saw["executor"], entry.saw["mapped_by"]) == (executor, mapped_by)
    assert said in entry.said
    assert entry.passed is (executor is not None)
    if executor is None:
        # Nothing can happen: no budget, no reservation, no hand-off to execution.
        assert outcome.effects == Effects()
        assert "cannot run" in outcome.message


QUALITY_ON_TRACK = GoalFact("g_q", GoalType.QUALITY, Verdict.ON_TRACK)
ACTIVITY_ON_TRACK = GoalFact("g_a2", GoalType.ACTIVITY, Verdict.ON_TRACK)


@pytest.mark.parametrize(
    ("changes", "goals", "goal", "verdict", "said"),
    [
        ({}, (), None, None, "serves no active goal"),
        ({}, (ACTIVITY_ON_TRACK, ACTIVITY_BEHIND), "g_act", "behind", "its action moves"),
        ({"action_type": "log_interaction"}, (ACTIVITY_BEHIND, QUALITY_ON_TRACK), "g_q",
         "on_track", "serves quality goal g_q, on_track"),
        ({"serves": {"goal": "g_a2"}}, (ACTIVITY_BEHIND, ACTIVITY_ON_TRACK), "g_a2", "on_track",
         "named by the intent"),
        ({"serves": {"goal": "g_done", "pattern": "p"}}, (*CLOSED, ACTIVITY_BEHIND), "g_act",
         "behind", "its action moves"),
        ({"serves": {"goal": "g_done"}}, CLOSED, None, None, "which is completed"),
    ],
)  # fmt: skip
def test_every_trace_names_the_goal_it_serves_and_its_verdict(
    changes: dict[str, Any],
    goals: tuple[GoalFact, ...],
    goal: str | None,
    verdict: str | None,
    said: str,
) -> None:
    outcome = evaluate(intent(**changes), POLICY, ctx(goals=goals))
    entry = next(e for e in outcome.trace if e.check == "goal")
    assert (entry.saw["goal"], entry.saw["verdict"]) == (goal, verdict)
    assert said in entry.said
    if "g_done" in str(changes):
        assert entry.saw["named"] == "g_done" and entry.saw["named_verdict"] == "completed"


def test_the_goal_check_sees_each_intents_own_goals() -> None:
    """The shared checks' memo tells intents apart by the goals they name and see."""
    served = evaluate(intent(serves={"goal": "g_act"}), POLICY, ctx(goals=(ACTIVITY_BEHIND,)))
    closed = evaluate(intent(serves={"goal": "g_done"}), POLICY, ctx(goals=CLOSED))
    again = evaluate(intent(serves={"goal": "g_act"}), POLICY, ctx(goals=(ACTIVITY_BEHIND,)))
    assert [o.reason for o in (served, closed, again)] == [
        Reason.AUTO_APPROVED,
        Reason.GOAL_CLOSED,
        Reason.AUTO_APPROVED,
    ]
    moved = evaluate(
        intent(serves={"goal": "g_act"}),
        POLICY,
        ctx(goals=(GoalFact("g_act", GoalType.ACTIVITY, Verdict.COMPLETED),)),
    )
    assert moved.reason is Reason.GOAL_CLOSED


def test_the_policy_model_is_apart_from_the_decision() -> None:
    # core/policy.py: the model of the policy and its rules; core/gate.py applies it.
    import agentd.core.gate as gate_module
    import agentd.core.policy as policy_module

    for model in (GatePolicy, AutonomySettings, AutonomyModes, BudgetLimits, AutonomyLevel):
        assert model.__module__ == "agentd.core.policy"
    tree = ast.parse(Path(policy_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "agentd.core.gate" not in imported
    assert not hasattr(gate_module, "_check_autonomy")
