"""Agent mode's side in the daemon: the store, the autonomy level and the approvals
a task operation needs (:class:`~agentd.browser.task.TaskHost`), and how a task
finds the workflow learned from an earlier one.

A step awaiting approval is held in memory by the runner that paused it (its
browser session is open): :meth:`StoreTaskHost.decide` records the person's
decision and wakes it. After a restart no session is left, so recovery ends
such an operation as ``interrupted``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from agentd.browser.agent import StopSignal
from agentd.browser.journal import ACTOR
from agentd.browser.task import Decision
from agentd.core.agent_mode import Spend, match_task, task_template
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.policy import AutonomyLevel
from agentd.core.states import OperationState
from agentd.core.timefmt import iso
from agentd.errors import Conflict, InvalidState, NotFound
from agentd.kb import KnowledgeBase
from agentd.store.base import Store
from agentd.store.records import OperationRow


@dataclass
class _Waiter:
    owner: str
    arrived: anyio.Event = field(default_factory=anyio.Event)
    decision: Decision | None = None


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


class StoreTaskHost:
    """The store-backed :class:`~agentd.browser.task.TaskHost`.

    :param level: returns the autonomy level in force (the daemon's governance).
    """

    def __init__(self, store: Store, level: Callable[[], AutonomyLevel]) -> None:
        self.store = store
        self._level = level
        self._waiting: dict[str, _Waiter] = {}

    async def secret_names(self, account: str, service: str) -> Sequence[str]:
        """Return the names of the account's secrets for the service."""
        return await self.store.ops.secret_names(account, service)

    async def day_spend(self) -> Spend:
        """Return today's spend (UTC)."""
        return await self.store.ops.day_spend(_today())

    async def add_spend(self, op_id: str, spend: Spend) -> None:
        """Add one call's spend to the operation and today's total."""
        async with self.store.write() as tx:
            await tx.ops.add_spend(op_id, _today(), spend)

    async def level(self) -> AutonomyLevel:
        """Return the autonomy level in force."""
        return self._level()

    async def pause(self, op_id: str, owner: str, pending: Mapping[str, Any]) -> None:
        """Record the step that waits and the state ``awaiting_step_approval`` (audited).

        :raises Conflict: the operation is no longer run by ``owner``.
        """
        self._waiting[op_id] = _Waiter(owner)
        now = datetime.now(UTC)
        async with self.store.write(now) as tx:
            op = await tx.ops.get_operation(op_id)
            if op is None or op.lease_owner != owner or op.finished:
                self._waiting.pop(op_id, None)
                raise Conflict(f"operation {op_id} is no longer run by this process")
            await tx.ops.update_operation(
                op_id,
                {
                    "state": OperationState.AWAITING_STEP_APPROVAL,
                    "pending_step": dict(pending),
                    "updated_at": iso(now),
                },
            )
            event = AuditEventType.OPERATION_STEP_AWAITING_APPROVAL
            tx.audit(AuditEvent(event, ACTOR, op_id, dict(pending)))

    async def decision(self, op_id: str, stop: StopSignal, timeout_s: float) -> Decision | None:
        """Wait for :meth:`decide`; None when ``stop`` is set or ``timeout_s`` passes."""
        waiter = self._waiting[op_id]
        try:
            with anyio.move_on_after(timeout_s):
                while stop.reason is None:
                    with anyio.move_on_after(0.2):
                        await waiter.arrived.wait()
                    if waiter.decision is not None:
                        return waiter.decision
            return None
        finally:
            self._waiting.pop(op_id, None)

    async def decide(self, op_id: str, decision: Decision) -> OperationRow:
        """Record a person's decision on the step an operation waits with, and wake it.

        :raises NotFound: no such operation.
        :raises InvalidState: it does not wait for a step's approval in this daemon.
        """
        now = datetime.now(UTC)
        async with self.store.write(now) as tx:
            op = await tx.ops.get_operation(op_id)
            if op is None:
                raise NotFound(f"unknown operation {op_id!r}", details={"operation": op_id})
            waiter = self._waiting.get(op_id)
            if op.state != OperationState.AWAITING_STEP_APPROVAL or waiter is None:
                raise InvalidState(
                    f"operation {op_id} is {op.state}, not waiting for a step's approval",
                    details={"operation": op_id, "state": op.state},
                )
            if waiter.decision is not None:
                raise InvalidState(f"the step of operation {op_id} was decided already")
            changes: dict[str, Any] = {"pending_step": None, "updated_at": iso(now)}
            if decision.approved:
                changes["state"] = OperationState.IN_PROGRESS
            await tx.ops.update_operation(op_id, changes)
            event = (
                AuditEventType.OPERATION_STEP_APPROVED
                if decision.approved
                else AuditEventType.OPERATION_STEP_REJECTED
            )
            data = {"step": op.pending_step, "reason": decision.reason}
            tx.audit(AuditEvent(event, decision.actor, op_id, data))
            waiter.decision = decision
        waiter.arrived.set()
        row = await self.store.ops.get_operation(op_id)
        assert row is not None
        return row


def learned_workflow_for(
    kb: KnowledgeBase, task: str, account: str
) -> tuple[str, dict[str, str]] | None:
    """Return the learned workflow that does ``task`` and its parameters, if one does.

    A learned workflow's docstring is ``Task: TEXT`` (see :mod:`agentd.core.agent_mode`);
    the task matches when it reads as the text with its ``{name}`` parameters filled
    in (an ``{account}`` must be the operation's account). The workflow with the
    fewest parameters wins, then the first by name.
    """
    found: list[tuple[int, str, dict[str, str]]] = []
    for wf in kb.workflows:
        template = task_template(wf.description)
        if template is None:
            continue
        params = match_task(template, task)
        if params is None or params.get("account", account) != account:
            continue
        found.append((len(params), wf.name, params))
    if not found:
        return None
    _, name, params = min(found, key=lambda f: (f[0], f[1]))
    return name, params
