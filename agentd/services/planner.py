"""``proactive_outreach_check``: turn new patterns and goals behind into gated intents.

The plan is the pure core's (:func:`agentd.core.planning.plan_outreach`). This
service gathers its inputs, gives each planned intent a content-derived id
(``plan_<PlannedIntent.content_id()>``), and submits it through the gate like
any other intent. What the intent serves — the pattern key, the goal and the
tracker's verdict on it, and the planning steps — is written into its
``serves``, so ``agentctl explain`` shows why it was proposed.

Re-running never duplicates: an id already stored is not submitted again (and
the gate would answer a resubmission with its earlier decision, consuming
nothing). An intent serving only a goal that is completed or missed by now is
not submitted at all.

The planner does not pester (:func:`agentd.core.planning.apply_cooldown`): no
new outreach to an account while another outreach to it is pending, approved,
running or handed off, or reached it within ``[planner] contact_cooldown_hours``
(72), and one per account per run; an escalation only while none is open for
the account. A held-back pattern counts as planned: unchanged data plans
nothing new on the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from loguru import logger

from agentd.core.goals import Verdict
from agentd.core.intents import ActionIntent, IntentSource, make_intent
from agentd.core.planning import (
    ESCALATION_ACTIONS,
    OUTREACH_ACTIONS,
    CandidateAccount,
    PlannedIntent,
    RecentContact,
    apply_cooldown,
    plan_outreach,
    submittable,
)
from agentd.core.timefmt import iso
from agentd.errors import AgentdError, Conflict
from agentd.services.gate import GateService
from agentd.services.goals import GoalService
from agentd.store.base import Store

ACTOR = "planner"


@dataclass(frozen=True)
class OutreachReport:
    """What one outreach check did."""

    patterns: int
    goals_behind: int
    planned: int
    submitted: int
    already_planned: int
    not_submitted: int
    failed: int
    decisions: dict[str, int]
    held_back: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        return {
            "patterns": self.patterns,
            "goals_behind": self.goals_behind,
            "planned": self.planned,
            "submitted": self.submitted,
            "already_planned": self.already_planned,
            "not_submitted": self.not_submitted,
            "failed": self.failed,
            "decisions": dict(self.decisions),
            "held_back": self.held_back,
        }

    def describe(self) -> str:
        """Return a one-line summary for the task table."""
        decided = ", ".join(f"{n} {d}" for d, n in sorted(self.decisions.items())) or "none"
        return (
            f"{self.planned} planned from {self.patterns} patterns and {self.goals_behind} goals"
            f" behind: {self.submitted} submitted ({decided}), {self.already_planned} known,"
            f" {self.not_submitted} not submitted, {self.held_back} held back by the contact"
            f" cooldown, {self.failed} failed"
        )


def planned_to_intent(planned: PlannedIntent) -> ActionIntent:
    """Return the gate's intent for a planned one, under its content-derived id.

    :raises InvalidArgument: a field the gate would refuse (named).
    """
    serves: dict[str, Any] = dict(planned.serves)
    serves["planning"] = [dict(step) for step in planned.trace]
    return make_intent(
        tenant=planned.tenant,
        account=planned.account,
        action_type=planned.action_type,
        domain=planned.domain,
        change_type=planned.change_type,
        diff=planned.diff,
        rationale=planned.rationale[:2000],
        confidence=planned.confidence,
        source=IntentSource.PLANNER,
        serves=serves,
        intent_id=f"plan_{planned.content_id()}",
    )


class OutreachPlanner:
    """Plan for unplanned patterns and goals behind, and gate the plan."""

    def __init__(
        self,
        store: Store,
        gate: GateService,
        goals: GoalService,
        *,
        accounts_per_goal: Callable[[], int] = lambda: 3,
        max_patterns: Callable[[], int] = lambda: 5000,
        contact_cooldown: Callable[[], timedelta] = lambda: timedelta(hours=72),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.gate = gate
        self.goals = goals
        self.accounts_per_goal = accounts_per_goal
        self.max_patterns = max_patterns
        self.contact_cooldown = contact_cooldown
        self.clock = clock

    async def check(self) -> OutreachReport:  # noqa: PLR0915
        """Run one outreach check.

        :raises StoreError: the database cannot be read or written.
        """
        patterns = await self.store.proactive.unplanned_patterns(self.max_patterns())
        tenants = await self.store.proactive.account_tenants(p.account for p in patterns)
        evaluated = await self.goals.active()
        goals = [(r.goal, e) for r, e in evaluated]
        verdicts: dict[str, Verdict] = {r.goal.id: e.verdict for r, e in evaluated}
        behind = sorted({g.tenant for g, e in goals if e.verdict is Verdict.BEHIND})
        candidates = [
            CandidateAccount(
                tenant=str(r[0]),
                account=str(r[1]),
                stage=str(r[2]),
                last_activity=None if r[3] is None else datetime.fromtimestamp(r[3], UTC),
            )
            for r in await self.store.proactive.candidate_rows(behind)
        ]
        plan = plan_outreach(
            patterns, tenants, goals, candidates, accounts_per_goal=self.accounts_per_goal()
        )
        to_submit: list[tuple[PlannedIntent, ActionIntent]] = []
        not_submitted = 0
        for planned in plan:
            if not submittable(planned, verdicts):
                not_submitted += 1
                continue
            try:
                to_submit.append((planned, planned_to_intent(planned)))
            except AgentdError as exc:
                not_submitted += 1
                logger.warning("planned intent for {} not valid: {}", planned.account, exc)
        known = await self.store.proactive.intent_ids_known([i.intent_id for _, i in to_submit])
        unknown = [(p, i) for p, i in to_submit if i.intent_id not in known]
        now = self.clock()
        contacts = await self.store.proactive.recent_contacts(
            sorted({p.account for p, _ in unknown}),
            OUTREACH_ACTIONS | ESCALATION_ACTIONS,
            now - self.contact_cooldown(),
        )
        kept, held = apply_cooldown(
            [p for p, _ in unknown],
            [RecentContact(r[0], r[1], r[2], r[3], r[4]) for r in contacts],
            now=now,
            cooldown=self.contact_cooldown(),
        )
        for planned, why in held[:20]:
            logger.info("{} for {} held back: {}", planned.action_type, planned.account, why)
        chosen = {id(p) for p in kept}
        fresh = [i for p, i in unknown if id(p) in chosen]
        decisions: dict[str, int] = {}
        failures: list[str] = []
        retry_keys: set[str] = set()
        already = len(to_submit) - len(unknown)

        async def submit(intent: ActionIntent) -> None:
            nonlocal already
            try:
                result = await self.gate.submit(intent, ACTOR)
            except Conflict:
                # Planned before with other wording (a goal's progress moved): same intent.
                already += 1
                return
            except AgentdError as exc:
                failures.append(f"{intent.intent_id}: {exc.message}")
                if "pattern" in intent.serves:
                    retry_keys.add(str(intent.serves["pattern"]))
                return
            if result.get("duplicate"):
                already += 1
                return
            decision = str(result["decision"])
            decisions[decision] = decisions.get(decision, 0) + 1

        # Submitted together so the gate decides them in a few grouped transactions.
        async with anyio.create_task_group() as tg:
            for intent in fresh:
                tg.start_soon(submit, intent)
        for failure in failures[:20]:
            logger.warning("outreach intent not decided: {}", failure)
        # A pattern whose intent was not decided stays unplanned: the next check retries it.
        done = [p.key for p in patterns if p.key not in retry_keys]
        if done:
            async with self.store.write(self.clock()) as tx:
                await tx.proactive.mark_planned(done, iso(tx.now))
        report = OutreachReport(
            patterns=len(patterns),
            goals_behind=sum(e.verdict is Verdict.BEHIND for _, e in goals),
            planned=len(plan),
            submitted=sum(decisions.values()),
            already_planned=already,
            not_submitted=not_submitted,
            failed=len(failures),
            decisions=decisions,
            held_back=len(held),
        )
        logger.info("outreach check: {}", report.describe())
        if failures:
            raise AgentdError(
                f"outreach check: {len(failures)} intents not decided (first: {failures[0]})",
                details={"report": report.to_dict()},
            )
        return report
