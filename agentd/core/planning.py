"""Planning: turn new patterns and goals that are behind into planned intents.

The mapping from patterns to actions is SPEC §4.2 as data
(:data:`PATTERN_ACTIONS`); a goal that is behind gets its type's first
corrective action (:data:`~agentd.core.goals.CORRECTIVE_ACTIONS`) on a few
deterministically chosen accounts. Everything here is a pure function of its
inputs, in a stable order, so that :meth:`PlannedIntent.content_id` makes a
re-run submit the same intents again, which the gate then recognises.

A planned intent says what it serves (a pattern key, a goal and the goal's
verdict, or both) and carries a planning ``trace`` that the caller puts in
front of the gate's trace, so "why was this proposed?" has an answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from agentd.core.goals import (
    CORRECTIVE_ACTIONS,
    FINAL_VERDICTS,
    Goal,
    GoalEvaluation,
    GoalType,
    Verdict,
)
from agentd.core.patterns import EngagementDirection, Pattern, PatternKind, RiskSeverity

#: SPEC §4.2: which action a pattern calls for.
PATTERN_ACTIONS: Mapping[tuple[PatternKind, RiskSeverity | None], str] = {
    (PatternKind.BUYING_SIGNAL, None): "send_follow_up_email",
    (PatternKind.RISK, RiskSeverity.CRITICAL): "escalate_to_management",
    (PatternKind.RISK, RiskSeverity.MEDIUM): "send_follow_up_email",
    (PatternKind.ENGAGEMENT_CHANGE, None): "send_chat_message",
}

#: The planner's confidence in each mapping; the gate compares it with its floor.
PATTERN_CONFIDENCE: Mapping[tuple[PatternKind, RiskSeverity | None], float] = {
    (PatternKind.BUYING_SIGNAL, None): 0.8,
    (PatternKind.RISK, RiskSeverity.CRITICAL): 0.9,
    (PatternKind.RISK, RiskSeverity.MEDIUM): 0.75,
    (PatternKind.ENGAGEMENT_CHANGE, None): 0.7,
}
GOAL_CONFIDENCE = 0.7

#: Deal stages whose accounts a goal type's corrective action is aimed at.
GOAL_STAGES: Mapping[GoalType, frozenset[str]] = {
    GoalType.PIPELINE: frozenset({"prospect", "qualification"}),
    GoalType.ACTIVITY: frozenset(
        {"prospect", "qualification", "discovery", "evaluation", "negotiation"}
    ),
    GoalType.QUALITY: frozenset(
        {"prospect", "qualification", "discovery", "evaluation", "negotiation"}
    ),
    GoalType.REVENUE: frozenset({"evaluation", "negotiation"}),
}

DOMAIN = "SALES"
_KIND_ORDER = {kind: n for n, kind in enumerate(PatternKind)}

# Message templates: (subject, body). Wording never quotes the evidence back to
# the customer ("you visited our pricing page twice" reads as surveillance).
_MESSAGES: Mapping[str, tuple[str, str]] = {
    "buying_signal_follow_up": (
        "Next steps",
        "Hello,\n\nThank you for your interest. Would a short call to go through"
        " options and pricing questions be useful this week?\n",
    ),
    "risk_follow_up": (
        "Checking in",
        "Hello,\n\nI wanted to check in and make sure everything is working for you."
        " Is there anything we should look at together?\n",
    ),
    "engagement_up_chat": ("", "Hi! Good to see you around. Anything I can help with?"),
    "engagement_down_chat": ("", "Hi, just checking in. Is there anything we can help with?"),
    "goal_send_follow_up_email": (
        "Following up",
        "Hello,\n\nFollowing up on our last conversation: is there anything you need from us?\n",
    ),
    "goal_schedule_meeting": (
        "Time for a short call?",
        "Hello,\n\nWould you have 30 minutes in the coming days to catch up?\n",
    ),
    "goal_send_proposal": (
        "Our proposal",
        "Hello,\n\nAs discussed, please find our proposal for your review.\n",
    ),
}


@dataclass(frozen=True, slots=True)
class PlannedIntent:
    """An action the planner wants, before the gate has seen it.

    ``diff`` is the content (template, subject, body, evidence); ``trace`` the
    planning steps, JSON-ready. Treat both as read-only.
    """

    tenant: str
    account: str
    action_type: str
    rationale: str
    confidence: float
    diff: Mapping[str, Any]
    pattern_key: str | None = None
    goal_id: str | None = None
    goal_verdict: Verdict | None = None
    domain: str = DOMAIN
    change_type: str | None = None
    trace: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def serves(self) -> dict[str, str]:
        """Return what the intent serves: ``pattern`` and/or ``goal`` with ``goal_verdict``."""
        out: dict[str, str] = {}
        if self.pattern_key is not None:
            out["pattern"] = self.pattern_key
        if self.goal_id is not None:
            out["goal"] = self.goal_id
            if self.goal_verdict is not None:
                out["goal_verdict"] = self.goal_verdict.value
        return out

    def content_id(self) -> str:
        """Return a stable id from tenant, account, action and what it serves first.

        A pattern intent is identified by its pattern key alone (a goal joining
        it later does not make it a new intent); a goal intent by the goal id.
        """
        served = ("pattern", self.pattern_key) if self.pattern_key else ("goal", self.goal_id)
        material = json.dumps([self.tenant, self.account, self.action_type, *served])
        return hashlib.sha256(material.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CandidateAccount:
    """An account a goal's corrective action may be aimed at."""

    tenant: str
    account: str
    stage: str
    last_activity: datetime | None = None


def _pattern_diff(pattern: Pattern, action: str) -> dict[str, Any]:
    facts = {
        "kind": pattern.kind.value,
        "key": pattern.key,
        "summary": pattern.summary,
        "evidence": list(pattern.evidence),
    }
    if action == "escalate_to_management":
        return {
            "template": "risk_escalation",
            "subject": f"Critical risk on account {pattern.account}",
            "body": f"Account {pattern.account} shows critical risk: {pattern.summary}.",
            "severity": RiskSeverity.CRITICAL.value,
            "pattern": facts,
        }
    if pattern.kind is PatternKind.ENGAGEMENT_CHANGE:
        up = pattern.direction is EngagementDirection.UP
        template = "engagement_up_chat" if up else "engagement_down_chat"
        return {"channel": "chat", "template": template, "message": _MESSAGES[template][1]}
    template = (
        "buying_signal_follow_up" if pattern.kind is PatternKind.BUYING_SIGNAL else "risk_follow_up"
    )
    subject, body = _MESSAGES[template]
    return {
        "channel": "email",
        "template": template,
        "subject": subject,
        "body": body,
        "pattern": facts,
    }


def plan_for_patterns(
    patterns: Iterable[Pattern], account_tenants: Mapping[str, str]
) -> list[PlannedIntent]:
    """Return one intent per pattern, ordered by tenant, account, kind and key.

    Patterns of accounts missing from ``account_tenants`` (deleted since the
    scan) are skipped.
    """
    keyed: list[tuple[tuple[str, str, int, str], PlannedIntent]] = []
    for pattern in patterns:
        tenant = account_tenants.get(pattern.account)
        if tenant is None:
            continue
        mapping_key = (pattern.kind, pattern.severity)
        action = PATTERN_ACTIONS[mapping_key]
        label = pattern.kind.value.replace("_", " ")
        qualifier = pattern.severity or pattern.direction
        if qualifier is not None:
            label = f"{label} ({qualifier.value})"
        step = {
            "step": "pattern",
            "pattern": pattern.key,
            "kind": pattern.kind.value,
            "qualifier": qualifier.value if qualifier else None,
            "rules": list(pattern.rules),
            "evidence": len(pattern.evidence),
            "action": action,
        }
        intent = PlannedIntent(
            tenant=tenant,
            account=pattern.account,
            action_type=action,
            rationale=f"{label} on {pattern.account}: {pattern.summary}",
            confidence=PATTERN_CONFIDENCE[mapping_key],
            diff=_pattern_diff(pattern, action),
            pattern_key=pattern.key,
            trace=(step,),
        )
        keyed.append(((tenant, pattern.account, _KIND_ORDER[pattern.kind], pattern.key), intent))
    keyed.sort(key=lambda pair: pair[0])
    return [intent for _, intent in keyed]


def _goal_step(goal: Goal, evaluation: GoalEvaluation, action: str) -> dict[str, Any]:
    return {
        "step": "goal",
        "goal": goal.id,
        "goal_type": goal.goal_type.value,
        "verdict": evaluation.verdict.value,
        "current": evaluation.current,
        "target": evaluation.target,
        "progress_ratio": round(evaluation.progress_ratio, 4),
        "elapsed_ratio": round(evaluation.elapsed_ratio, 4),
        "action": action,
    }


def _goal_rationale(goal: Goal, evaluation: GoalEvaluation, why: str) -> str:
    return f"goal {goal.name!r} ({goal.goal_type.value}) is {evaluation.describe()}; {why}"


#: Goal actions the planner cannot fill in itself, by the change type that says so.
#: A proposal needs prices and line items no pattern or goal carries: it goes out
#: as ``SALES.proposal_request``, which the default executors hand off to a person.
GOAL_CHANGE_TYPES: Mapping[str, str] = {"send_proposal": "proposal_request"}


def _goal_diff(goal: Goal, action: str) -> dict[str, Any]:
    template = f"goal_{action}"
    diff: dict[str, Any] = {
        "template": template,
        "goal": {"id": goal.id, "type": goal.goal_type.value, "name": goal.name},
    }
    if template in _MESSAGES:
        subject, body = _MESSAGES[template]
        diff.update(channel="email", subject=subject, body=body)
    return diff


def _rank(candidate: CandidateAccount) -> tuple[bool, float, str]:
    """Most recently active first, never-active last, then by account id."""
    last = candidate.last_activity
    return (last is None, -last.timestamp() if last else 0.0, candidate.account)


def plan_outreach(
    patterns: Iterable[Pattern],
    account_tenants: Mapping[str, str],
    goals: Iterable[tuple[Goal, GoalEvaluation]],
    candidates: Sequence[CandidateAccount],
    *,
    accounts_per_goal: int = 3,
) -> list[PlannedIntent]:
    """Plan for patterns and goals together (``proactive_outreach_check``).

    A goal that is behind first joins pattern intents of its tenant whose
    action is its corrective action, then adds goal-only intents on candidate
    accounts of the stages :data:`GOAL_STAGES` names, up to ``accounts_per_goal``
    accounts per goal. Goals on track, completed or missed plan nothing.
    """
    intents = plan_for_patterns(patterns, account_tenants)
    behind = sorted(
        (pair for pair in goals if pair[1].verdict is Verdict.BEHIND),
        key=lambda pair: (pair[0].tenant, pair[0].id),
    )
    ranked = sorted(candidates, key=_rank)
    # One account never gets the same action twice in a run, whatever it serves.
    taken = {(i.tenant, i.account, i.action_type) for i in intents}
    extra: list[PlannedIntent] = []
    for goal, evaluation in behind:
        action, why = CORRECTIVE_ACTIONS[goal.goal_type][0]
        step = _goal_step(goal, evaluation, action)
        rationale = _goal_rationale(goal, evaluation, why)
        served: set[str] = set()
        for n, intent in enumerate(intents):
            if len(served) >= accounts_per_goal:
                break
            if (
                intent.tenant == goal.tenant
                and intent.action_type == action
                and intent.goal_id is None
            ):
                intents[n] = replace(
                    intent,
                    goal_id=goal.id,
                    goal_verdict=evaluation.verdict,
                    rationale=f"{intent.rationale}; also serves {rationale}",
                    trace=(*intent.trace, step),
                )
                served.add(intent.account)
        for candidate in ranked:
            if len(served) >= accounts_per_goal:
                break
            if (
                candidate.tenant != goal.tenant
                or candidate.stage not in GOAL_STAGES[goal.goal_type]
                or candidate.account in served
                or (goal.tenant, candidate.account, action) in taken
            ):
                continue
            served.add(candidate.account)
            taken.add((goal.tenant, candidate.account, action))
            pick = {"step": "account", "stage": candidate.stage, "rank": len(served)}
            extra.append(
                PlannedIntent(
                    tenant=goal.tenant,
                    account=candidate.account,
                    action_type=action,
                    rationale=rationale,
                    confidence=GOAL_CONFIDENCE,
                    diff=_goal_diff(goal, action),
                    goal_id=goal.id,
                    goal_verdict=evaluation.verdict,
                    change_type=GOAL_CHANGE_TYPES.get(action),
                    trace=(step, pick),
                )
            )
    return intents + extra


def plan_for_goals(
    goals: Iterable[tuple[Goal, GoalEvaluation]],
    candidates: Sequence[CandidateAccount],
    *,
    accounts_per_goal: int = 3,
) -> list[PlannedIntent]:
    """Plan corrective intents for the goals that are behind, with no patterns involved."""
    return plan_outreach([], {}, goals, candidates, accounts_per_goal=accounts_per_goal)


def submittable(intent: PlannedIntent, verdicts: Mapping[str, Verdict]) -> bool:
    """Return whether to submit ``intent`` given the goals' latest verdicts.

    An intent that serves only a goal, when that goal is completed or missed
    (by ``verdicts``, else by the verdict it was planned with), is not submitted.
    """
    if intent.pattern_key is not None or intent.goal_id is None:
        return True
    verdict = verdicts.get(intent.goal_id, intent.goal_verdict)
    return verdict not in FINAL_VERDICTS


# -- contact cooldown ----------------------------------------------------------------------

#: Action types that reach the customer: one at a time per account, then a cooldown.
OUTREACH_ACTIONS: frozenset[str] = frozenset(
    {
        "send_follow_up_email",
        "send_routine_response",
        "send_chat_message",
        "schedule_meeting",
        "send_proposal",
        "discuss_pricing",
        "negotiate_terms",
        "contact_c_suite",
        "share_minutes_externally",
    }
)
#: Internal escalations: once per account while one is open.
ESCALATION_ACTIONS: frozenset[str] = frozenset({"escalate_to_management"})


@dataclass(frozen=True, slots=True)
class RecentContact:
    """An earlier outreach or escalation intent of an account, as far as it got.

    ``open``: still pending, approved but not carried out, running or handed off;
    ``reached_at``: when its execution finished (None while open, or when it
    never ran).
    """

    tenant: str
    account: str
    action_type: str
    open: bool
    reached_at: datetime | None = None


def apply_cooldown(
    plan: Sequence[PlannedIntent],
    contacts: Iterable[RecentContact],
    *,
    now: datetime,
    cooldown: timedelta,
) -> tuple[list[PlannedIntent], list[tuple[PlannedIntent, str]]]:
    """Split ``plan`` into the intents to submit and the ones held back, with why.

    No new outreach to an account while another outreach to it is open or
    reached it within ``cooldown``, and at most one per account in a plan;
    no new escalation while one is open for the account, and at most one per
    account in a plan. Other intents pass. The plan's order decides which of
    two new ones goes first.
    """
    busy: dict[tuple[str, str, bool], str] = {}
    for c in contacts:
        escalation = c.action_type in ESCALATION_ACTIONS
        if c.open:
            busy.setdefault(
                (c.tenant, c.account, escalation), f"{c.action_type} is still open for it"
            )
        elif not escalation and c.reached_at is not None and c.reached_at > now - cooldown:
            hours = cooldown.total_seconds() / 3600
            busy.setdefault(
                (c.tenant, c.account, False),
                f"{c.action_type} reached it at {c.reached_at.isoformat(timespec='minutes')}, "
                f"within the {hours:g} h contact cooldown",
            )
    kept: list[PlannedIntent] = []
    held: list[tuple[PlannedIntent, str]] = []
    for intent in plan:
        escalation = intent.action_type in ESCALATION_ACTIONS
        if not escalation and intent.action_type not in OUTREACH_ACTIONS:
            kept.append(intent)
            continue
        key = (intent.tenant, intent.account, escalation)
        why = busy.get(key)
        if why is not None:
            held.append((intent, why))
            continue
        busy[key] = f"{intent.action_type} is planned for it in this run"
        kept.append(intent)
    return kept, held
