from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from agentd.core.executors import DEFAULT_EXECUTORS, resolve_executor
from agentd.core.goals import Goal, GoalEvaluation, GoalStatus, GoalType, Verdict, evaluate_goal
from agentd.core.patterns import EngagementDirection, Pattern, PatternKind, RiskSeverity
from agentd.core.planning import (
    PATTERN_ACTIONS,
    CandidateAccount,
    PlannedIntent,
    RecentContact,
    apply_cooldown,
    plan_for_goals,
    plan_for_patterns,
    plan_outreach,
    submittable,
)

NOW = datetime(2024, 6, 16, tzinfo=UTC)
START = datetime(2024, 6, 1, tzinfo=UTC)
END = datetime(2024, 7, 1, tzinfo=UTC)


def pattern(
    account: str,
    kind: PatternKind,
    severity: RiskSeverity | None = None,
    direction: EngagementDirection | None = None,
    key: str | None = None,
) -> Pattern:
    qualifier = severity or direction
    label = kind.value + (f"/{qualifier.value}" if qualifier else "")
    return Pattern(
        account=account,
        kind=kind,
        severity=severity,
        direction=direction,
        evidence=("i1", "i2"),
        detected_at=NOW,
        summary="2 pricing-page visits in the last 14 days",
        key=key or f"{account}|{label}|2024-06-06",
        rules=("repeat_pricing_visits",),
    )


BUY = pattern("acme", PatternKind.BUYING_SIGNAL)
CRIT = pattern("acme", PatternKind.RISK, severity=RiskSeverity.CRITICAL)
MED = pattern("globex", PatternKind.RISK, severity=RiskSeverity.MEDIUM)
UP = pattern("initech", PatternKind.ENGAGEMENT_CHANGE, direction=EngagementDirection.UP)
DOWN = pattern("umbrella", PatternKind.ENGAGEMENT_CHANGE, direction=EngagementDirection.DOWN)
TENANTS = {"acme": "t1", "globex": "t1", "initech": "t2", "umbrella": "t2"}


def test_mapping_table_is_spec_4_2() -> None:
    assert {(k.value, s.value if s else None): a for (k, s), a in PATTERN_ACTIONS.items()} == {
        ("buying_signal", None): "send_follow_up_email",
        ("risk", "critical"): "escalate_to_management",
        ("risk", "medium"): "send_follow_up_email",
        ("engagement_change", None): "send_chat_message",
    }


@pytest.mark.parametrize(
    ("source", "action", "template", "confidence"),
    [
        (BUY, "send_follow_up_email", "buying_signal_follow_up", 0.8),
        (CRIT, "escalate_to_management", "risk_escalation", 0.9),
        (MED, "send_follow_up_email", "risk_follow_up", 0.75),
        (UP, "send_chat_message", "engagement_up_chat", 0.7),
        (DOWN, "send_chat_message", "engagement_down_chat", 0.7),
    ],
)
def test_each_pattern_plans_its_action(
    source: Pattern, action: str, template: str, confidence: float
) -> None:
    [intent] = plan_for_patterns([source], TENANTS)
    assert intent.action_type == action
    assert intent.tenant == TENANTS[source.account]
    assert intent.account == source.account
    assert intent.serves == {"pattern": source.key}
    assert intent.confidence == confidence
    assert intent.diff["template"] == template
    assert source.summary in intent.rationale or intent.diff["channel"] == "chat"
    assert intent.trace[0]["pattern"] == source.key
    json.dumps(intent.diff)
    json.dumps(list(intent.trace))


def test_escalation_and_messages_carry_their_content() -> None:
    [escalation] = plan_for_patterns([CRIT], TENANTS)
    assert escalation.diff["severity"] == "critical"
    assert escalation.diff["pattern"]["evidence"] == ["i1", "i2"]
    assert "critical risk" in escalation.diff["body"]
    [email] = plan_for_patterns([BUY], TENANTS)
    assert email.diff["channel"] == "email"
    assert email.diff["subject"] and email.diff["body"]
    # The customer-facing text does not quote what we observed about them.
    assert "pricing-page" not in email.diff["body"]


def test_pattern_planning_is_deterministic_and_skips_unknown_accounts() -> None:
    patterns = [BUY, CRIT, MED, UP, DOWN, pattern("gone", PatternKind.BUYING_SIGNAL)]
    first = plan_for_patterns(patterns, TENANTS)
    shuffled = patterns[:]
    random.Random(3).shuffle(shuffled)
    again = plan_for_patterns(shuffled, TENANTS)
    assert first == again
    assert [i.content_id() for i in first] == [i.content_id() for i in again]
    assert [(i.tenant, i.account, i.action_type) for i in first] == [
        ("t1", "acme", "send_follow_up_email"),
        ("t1", "acme", "escalate_to_management"),
        ("t1", "globex", "send_follow_up_email"),
        ("t2", "initech", "send_chat_message"),
        ("t2", "umbrella", "send_chat_message"),
    ]
    assert len({i.content_id() for i in first}) == len(first)


def goal(
    gid: str, goal_type: GoalType, tenant: str = "t1", status: GoalStatus = GoalStatus.ACTIVE
) -> Goal:
    return Goal(gid, tenant, goal_type, 100.0, START, END, f"{goal_type.value} goal", status)


def judged(g: Goal, current: float, now: datetime = NOW) -> tuple[Goal, GoalEvaluation]:
    return g, evaluate_goal(g, current, now)


def cand(account: str, stage: str, days_ago: float | None, tenant: str = "t1") -> CandidateAccount:
    last = NOW - timedelta(days=days_ago) if days_ago is not None else None
    return CandidateAccount(tenant, account, stage, last)


CANDIDATES = [
    cand("cold", "discovery", None),
    cand("warm", "discovery", 1),
    cand("warmer", "evaluation", 0.5),
    cand("lukewarm", "negotiation", 10),
    cand("b-tie", "prospect", 3),
    cand("a-tie", "qualification", 3),
    cand("won", "closed_won", 0),
    cand("other-tenant", "discovery", 0, tenant="t2"),
]


@pytest.mark.parametrize(
    ("goal_type", "action", "accounts"),
    [
        (GoalType.ACTIVITY, "send_follow_up_email", ["warmer", "warm", "a-tie"]),
        (GoalType.PIPELINE, "qualify_conversation", ["a-tie", "b-tie"]),
        (GoalType.QUALITY, "update_account_context", ["warmer", "warm", "a-tie"]),
        (GoalType.REVENUE, "send_proposal", ["warmer", "lukewarm"]),
    ],
)
def test_goal_behind_plans_its_corrective_action_on_chosen_accounts(
    goal_type: GoalType, action: str, accounts: list[str]
) -> None:
    g, evaluation = judged(goal(f"g-{goal_type.value}", goal_type), 10)
    assert evaluation.verdict is Verdict.BEHIND
    intents = plan_for_goals([(g, evaluation)], CANDIDATES)
    assert [i.account for i in intents] == accounts
    assert {i.action_type for i in intents} == {action}
    for intent in intents:
        assert intent.serves == {"goal": g.id, "goal_verdict": "behind"}
        assert intent.tenant == "t1"
        assert intent.trace[0]["verdict"] == "behind"
        assert intent.trace[0]["goal"] == g.id
        assert "is behind: 10 of 100 (10%)" in intent.rationale
        assert intent.diff["goal"]["id"] == g.id


def test_a_planned_proposal_is_a_request_a_person_completes() -> None:
    """The planner names no prices: its proposals go out as ``SALES.proposal_request``,
    which the default executors hand off to a person instead of a quote that needs lines."""
    g, evaluation = judged(goal("g-rev", GoalType.REVENUE), 10)
    intents = plan_for_goals([(g, evaluation)], CANDIDATES)
    assert intents and {(i.domain, i.change_type) for i in intents} == {
        ("SALES", "proposal_request")
    }
    assert "lines" not in intents[0].diff and "amount" not in intents[0].diff
    executor, key = resolve_executor(
        DEFAULT_EXECUTORS, "send_proposal", "SALES", "proposal_request"
    )
    assert (executor, key) == ("handoff", "SALES.proposal_request")
    # A proposal a person proposes with its lines still goes to the CRM's quote.
    assert resolve_executor(DEFAULT_EXECUTORS, "send_proposal", None, None)[0] == "quote"
    other, _ = judged(goal("g-act", GoalType.ACTIVITY), 10)
    assert all(i.change_type is None for i in plan_for_goals([(other, _)], CANDIDATES))


@pytest.mark.parametrize(
    "pair",
    [
        judged(goal("g", GoalType.ACTIVITY), 60),
        judged(goal("g", GoalType.ACTIVITY), 100),
        judged(goal("g", GoalType.ACTIVITY), 10, END),
        judged(goal("g", GoalType.ACTIVITY, status=GoalStatus.COMPLETED), 0),
        judged(goal("g", GoalType.ACTIVITY, status=GoalStatus.MISSED), 0),
    ],
    ids=["on_track", "completed", "missed", "stored-completed", "stored-missed"],
)
def test_goals_not_behind_plan_nothing(pair: tuple[Goal, GoalEvaluation]) -> None:
    assert plan_for_goals([pair], CANDIDATES) == []
    assert plan_outreach([BUY], TENANTS, [pair], CANDIDATES) == plan_for_patterns([BUY], TENANTS)


def test_accounts_per_goal_limits_and_goals_do_not_double_up() -> None:
    first = judged(goal("g-1", GoalType.ACTIVITY), 10)
    second = judged(goal("g-2", GoalType.ACTIVITY), 10)
    intents = plan_for_goals([second, first], CANDIDATES, accounts_per_goal=2)
    assert [(i.goal_id, i.account) for i in intents] == [
        ("g-1", "warmer"),
        ("g-1", "warm"),
        ("g-2", "a-tie"),
        ("g-2", "b-tie"),
    ]


def test_goal_joins_a_pattern_intent_with_the_same_action() -> None:
    g, evaluation = judged(goal("g-1", GoalType.ACTIVITY), 10)
    alone = plan_for_patterns([BUY], TENANTS)[0]
    intents = plan_outreach(
        [BUY, CRIT], TENANTS, [(g, evaluation)], CANDIDATES, accounts_per_goal=2
    )
    joined = intents[0]
    assert joined.account == "acme"
    assert joined.serves == {"pattern": BUY.key, "goal": "g-1", "goal_verdict": "behind"}
    assert [step["step"] for step in joined.trace] == ["pattern", "goal"]
    assert "also serves goal 'activity goal'" in joined.rationale
    # Joining a goal does not make it a different intent.
    assert joined.content_id() == alone.content_id()
    assert [(i.account, i.action_type, i.goal_id) for i in intents[1:]] == [
        ("acme", "escalate_to_management", None),
        ("warmer", "send_follow_up_email", "g-1"),
    ]


def test_outreach_is_deterministic() -> None:
    goals = [judged(goal("g-1", GoalType.ACTIVITY), 10), judged(goal("g-2", GoalType.REVENUE), 5)]
    patterns = [BUY, CRIT, MED, UP, DOWN]
    runs = []
    for seed in range(3):
        rnd = random.Random(seed)
        p, g, c = patterns[:], goals[:], CANDIDATES[:]
        rnd.shuffle(p)
        rnd.shuffle(g)
        rnd.shuffle(c)
        runs.append(plan_outreach(p, TENANTS, g, c))
    assert runs[0] == runs[1] == runs[2]


def test_content_id_depends_on_what_is_served() -> None:
    base = PlannedIntent("t1", "acme", "send_follow_up_email", "r", 0.8, {}, pattern_key="k1")
    assert (
        base.content_id()
        == PlannedIntent(
            "t1", "acme", "send_follow_up_email", "other", 0.5, {"x": 1}, pattern_key="k1"
        ).content_id()
    )
    for other in (
        PlannedIntent("t2", "acme", "send_follow_up_email", "r", 0.8, {}, pattern_key="k1"),
        PlannedIntent("t1", "globex", "send_follow_up_email", "r", 0.8, {}, pattern_key="k1"),
        PlannedIntent("t1", "acme", "send_chat_message", "r", 0.8, {}, pattern_key="k1"),
        PlannedIntent("t1", "acme", "send_follow_up_email", "r", 0.8, {}, pattern_key="k2"),
        PlannedIntent("t1", "acme", "send_follow_up_email", "r", 0.8, {}, goal_id="k1"),
    ):
        assert other.content_id() != base.content_id()


GOAL_ONLY = PlannedIntent(
    "t1", "acme", "send_follow_up_email", "r", 0.7, {}, goal_id="g-1", goal_verdict=Verdict.BEHIND
)


@pytest.mark.parametrize(
    ("intent", "verdicts", "expected"),
    [
        (GOAL_ONLY, {"g-1": Verdict.BEHIND}, True),
        (GOAL_ONLY, {"g-1": Verdict.ON_TRACK}, True),
        (GOAL_ONLY, {"g-1": Verdict.COMPLETED}, False),
        (GOAL_ONLY, {"g-1": Verdict.MISSED}, False),
        (GOAL_ONLY, {}, True),
        (
            PlannedIntent(
                "t1", "acme", "x", "r", 0.7, {}, goal_id="g-1", goal_verdict=Verdict.MISSED
            ),
            {},
            False,
        ),
        (
            PlannedIntent("t1", "acme", "x", "r", 0.7, {}, pattern_key="k", goal_id="g-1"),
            {"g-1": Verdict.COMPLETED},
            True,
        ),
    ],
)
def test_submittable(intent: PlannedIntent, verdicts: dict[str, Verdict], expected: bool) -> None:
    assert submittable(intent, verdicts) is expected


def test_joining_pattern_intents_counts_towards_accounts_per_goal() -> None:
    g, evaluation = judged(goal("g-1", GoalType.ACTIVITY), 10)
    intents = plan_outreach([BUY, MED], TENANTS, [(g, evaluation)], CANDIDATES, accounts_per_goal=1)
    assert [(i.account, i.goal_id) for i in intents] == [("acme", "g-1"), ("globex", None)]


def planned(account: str, action: str, tenant: str = "t1") -> PlannedIntent:
    return PlannedIntent(tenant, account, action, "why", 0.8, {})


COOLDOWN = timedelta(hours=72)


@pytest.mark.parametrize(
    ("plan", "contacts", "kept", "held"),
    [
        # Nothing earlier: one outreach per account per run, the first planned wins.
        ([planned("a", "send_follow_up_email"), planned("a", "schedule_meeting"),
          planned("b", "send_chat_message")], [], ["a:send_follow_up_email",
          "b:send_chat_message"], ["a:schedule_meeting"]),
        # An open outreach (pending, approved, running, handed off) holds any new one back.
        ([planned("a", "send_proposal")], [RecentContact("t1", "a", "send_chat_message", True)],
         [], ["a:send_proposal"]),
        # One that reached the account within the cooldown too; an older one does not.
        ([planned("a", "send_follow_up_email")], [RecentContact(
            "t1", "a", "send_follow_up_email", False, NOW - timedelta(hours=71))], [],
         ["a:send_follow_up_email"]),
        ([planned("a", "send_follow_up_email")], [RecentContact(
            "t1", "a", "send_follow_up_email", False, NOW - timedelta(hours=73))],
         ["a:send_follow_up_email"], []),
        # Other accounts and other tenants are not affected.
        ([planned("a", "send_follow_up_email", "t2")], [RecentContact(
            "t1", "a", "send_follow_up_email", True)], ["a:send_follow_up_email"], []),
        # Work that does not reach the customer is never held back.
        ([planned("a", "log_interaction"), planned("a", "create_briefing")], [RecentContact(
            "t1", "a", "send_follow_up_email", True)], ["a:log_interaction", "a:create_briefing"],
         []),
        # Escalations: once per account while one is open; outreach does not hold them.
        ([planned("a", "escalate_to_management"), planned("a", "escalate_to_management")],
         [RecentContact("t1", "a", "send_follow_up_email", True)],
         ["a:escalate_to_management"], ["a:escalate_to_management"]),
        ([planned("a", "escalate_to_management")], [RecentContact(
            "t1", "a", "escalate_to_management", True)], [], ["a:escalate_to_management"]),
        ([planned("a", "escalate_to_management")], [RecentContact(
            "t1", "a", "escalate_to_management", False, NOW - timedelta(hours=1))],
         ["a:escalate_to_management"], []),
    ],
)  # fmt: skip
def test_contact_cooldown(
    plan: list[PlannedIntent], contacts: list[RecentContact], kept: list[str], held: list[str]
) -> None:
    got, back = apply_cooldown(plan, contacts, now=NOW, cooldown=COOLDOWN)
    assert [f"{p.account}:{p.action_type}" for p in got] == kept
    assert [f"{p.account}:{p.action_type}" for p, _ in back] == held
    assert all(why for _, why in back)
