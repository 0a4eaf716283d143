"""The goal tracker as a service: create, list, show, and refresh progress.

Progress comes from metrics computed over stored data
(:func:`agentd.core.goals.compute_metrics` over the counts of
:meth:`agentd.store.api.ProactiveReads.metric_counts`) for the goal's tenant and
period. A goal reaching its target is completed, one whose end passes is
missed; both are final, stored and audited.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.goals import (
    Goal,
    GoalEvaluation,
    MetricFacts,
    compute_metrics,
    evaluate_goal,
    suggest_actions,
    validate_goal,
)
from agentd.errors import NotFound
from agentd.store.base import Store
from agentd.store.records import GoalRow


@dataclass(frozen=True)
class ProgressReport:
    """What one progress refresh did."""

    goals: int
    completed: int
    missed: int
    behind: int

    def describe(self) -> str:
        """Return a one-line summary for the task table."""
        return (
            f"{self.goals} goals: {self.behind} behind, {self.completed} completed,"
            f" {self.missed} missed"
        )


def evaluation_view(evaluation: GoalEvaluation) -> dict[str, Any]:
    """Return the protocol form of an evaluation."""
    return {
        "verdict": evaluation.verdict.value,
        "current": evaluation.current,
        "target": evaluation.target,
        "progress_ratio": round(evaluation.progress_ratio, 4),
        "elapsed_ratio": round(evaluation.elapsed_ratio, 4),
        "expected": round(evaluation.expected, 4),
        "summary": evaluation.describe(),
    }


class GoalService:
    """Goals: validation, storage, metrics and verdicts."""

    def __init__(
        self, store: Store, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.clock = clock

    async def add(
        self,
        *,
        tenant: str,
        goal_type: str,
        target: float | str,
        start: str,
        end: str,
        name: str | None,
        actor: str,
    ) -> dict[str, Any]:
        """Validate and store a new goal.

        :raises InvalidArgument: ``details["field"]`` names the bad field.
        """
        spec = validate_goal(tenant, goal_type, target, start, end, name)
        goal = Goal.from_spec("goal_" + secrets.token_hex(6), spec)
        async with self.store.write(self.clock()) as tx:
            await tx.proactive.insert_goal(goal, actor)
            tx.audit(
                AuditEvent(
                    AuditEventType.GOAL_CREATED,
                    actor,
                    goal.id,
                    {"tenant": goal.tenant, "type": goal.goal_type.value, "target": goal.target},
                )
            )
        # The gate names the goal an intent serves with its latest verdict: have one at once.
        evaluation = await self.evaluate(goal)
        async with self.store.write(self.clock()) as tx:
            await tx.proactive.write_progress(
                [(goal.id, evaluation.status.value, evaluation.current, evaluation.verdict.value)],
            )
            if evaluation.status_changed:
                tx.audit(
                    AuditEvent(
                        AuditEventType.GOAL_STATUS_CHANGED,
                        "agentd",
                        goal.id,
                        {"status": evaluation.status.value, "summary": evaluation.describe()},
                    )
                )
        row = await self.store.proactive.get_goal(goal.id)
        assert row is not None
        return row.to_dict()

    async def current_value(self, goal: Goal, now: datetime) -> float:
        """Return the goal metric's value now, over the goal's period so far."""
        until = min(max(now, goal.start), goal.end)
        counts = await self.store.proactive.metric_counts(goal.tenant, goal.start, until)
        return compute_metrics(MetricFacts(**counts))[goal.goal_type]

    async def evaluate(self, goal: Goal, now: datetime | None = None) -> GoalEvaluation:
        """Return the tracker's verdict on ``goal`` now."""
        now = now or self.clock()
        return evaluate_goal(goal, await self.current_value(goal, now), now)

    async def list_goals(self, *, include_final: bool = False) -> list[dict[str, Any]]:
        """Return goals with their last stored progress."""
        rows = await self.store.proactive.list_goals(include_final=include_final)
        return [r.to_dict() for r in rows]

    async def show(self, goal_id: str) -> dict[str, Any]:
        """Return one goal with a fresh evaluation and suggested corrective actions.

        :raises NotFound: no such goal.
        """
        row = await self.store.proactive.get_goal(goal_id)
        if row is None:
            raise NotFound(f"no goal {goal_id!r}", details={"goal": goal_id})
        evaluation = await self.evaluate(row.goal)
        out = row.to_dict()
        out["evaluation"] = evaluation_view(evaluation)
        out["suggestions"] = [
            {"action_type": s.action_type, "rationale": s.rationale}
            for s in suggest_actions(row.goal.goal_type, evaluation)
        ]
        return out

    async def active(self) -> list[tuple[GoalRow, GoalEvaluation]]:
        """Return the active goals with their verdict now (nothing is stored)."""
        now = self.clock()
        rows = await self.store.proactive.list_goals(include_final=False)
        return [(r, await self.evaluate(r.goal, now)) for r in rows]

    async def update_progress(self) -> ProgressReport:
        """Refresh every active goal's progress; store and audit final verdicts."""
        now = self.clock()
        pairs = await self.active()
        if not pairs:
            return ProgressReport(0, 0, 0, 0)
        async with self.store.write(now) as tx:
            await tx.proactive.write_progress(
                [(r.goal.id, e.status.value, e.current, e.verdict.value) for r, e in pairs],
            )
            for r, e in pairs:
                if e.status_changed:
                    tx.audit(
                        AuditEvent(
                            AuditEventType.GOAL_STATUS_CHANGED,
                            "agentd",
                            r.goal.id,
                            {"status": e.status.value, "summary": e.describe()},
                        )
                    )
                    logger.info("goal {} ({}) is now {}", r.goal.id, r.goal.name, e.status.value)
        counts = {
            v: sum(e.verdict.value == v for _, e in pairs)
            for v in ("completed", "missed", "behind")
        }
        return ProgressReport(len(pairs), counts["completed"], counts["missed"], counts["behind"])
