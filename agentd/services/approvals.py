"""A person's approval or rejection of what waits for one: intents and scope expansions.

Both wait in the one pending queue that ``agentctl pending`` lists, so one
``approve`` (or ``reject``) answers either: an id of a scope expansion goes to
governance, which wants distinct approvers; any other id names an intent, which
the gate decides. Before the gate approves a change, the execution engine says
whether anything can carry it out, so that an approval nothing could act on is
refused (and audited) now rather than failing later.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.errors import NoExecutor
from agentd.services.execution import ExecutionService
from agentd.services.gate import GateService
from agentd.services.scope import PROPOSAL_PREFIX, ScopeExpansions
from agentd.store.base import Store


def is_scope_expansion(item_id: str) -> bool:
    """Return True when ``item_id`` names a scope expansion rather than an intent."""
    return item_id.startswith(PROPOSAL_PREFIX)


class ApprovalService:
    """Approve and reject pending intents and scope expansions as a person."""

    def __init__(
        self,
        store: Store,
        gate: GateService,
        execution: ExecutionService,
        scope: ScopeExpansions,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.gate = gate
        self.execution = execution
        self.scope = scope
        self.clock = clock

    async def approve(self, item_id: str, actor: str, note: str | None) -> dict[str, Any]:
        """Approve ``item_id`` as ``actor``; an intent is handed to execution.

        :raises NoExecutor: nothing can carry the intent out (the refusal is audited).
        :raises NotFound, BlockedIntent, Expired, InvalidState: from the gate or governance.
        """
        if is_scope_expansion(item_id):
            return {"scope_expansion": await self.scope.approve(item_id, actor, note)}
        try:
            await self.execution.check_executable(item_id)
        except NoExecutor as exc:
            refused = AuditEvent(
                AuditEventType.APPROVAL_REFUSED,
                actor,
                item_id,
                {"error": exc.code.name, "message": exc.message},
            )
            await self.store.append_audit([refused], self.clock())
            raise
        result = await self.gate.approve(item_id, actor, note)
        self.execution.wake()
        return result

    async def reject(self, item_id: str, actor: str, reason: str) -> dict[str, Any]:
        """Reject ``item_id`` as ``actor``, for ``reason``.

        :raises InvalidArgument: the reason is blank.
        :raises NotFound, Expired, InvalidState: from the gate or governance.
        """
        if is_scope_expansion(item_id):
            return {"scope_expansion": await self.scope.reject(item_id, actor, reason)}
        return await self.gate.reject(item_id, actor, reason)
