"""What is read about executions: the list, and one execution with all it did.

Read models, apart from the engine (:mod:`agentd.services.execution`) that
writes executions and the rollback service (:mod:`agentd.services.rollback`)
that writes tokens: they read the store and the operations' steps, change
nothing, and need neither the engine's loop nor its configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentd.core.states import ExecutionState
from agentd.errors import InvalidArgument, NotFound
from agentd.store.records import ExecutionRow

if TYPE_CHECKING:
    from agentd.services.operations import OperationsService
    from agentd.store.base import Store


async def get_execution(store: Store, exe_id: str) -> ExecutionRow:
    """Return one execution.

    :raises NotFound: no such execution.
    """
    row = await store.execution.get_execution(exe_id)
    if row is None:
        raise NotFound(f"unknown execution {exe_id!r}", details={"execution": exe_id})
    return row


class ExecutionViews:
    """Answer ``executions.list`` and ``execution.show``."""

    def __init__(self, store: Store, operations: OperationsService) -> None:
        self.store = store
        self.operations = operations

    async def list_executions(
        self, state: str | None = None, limit: int = 200
    ) -> list[ExecutionRow]:
        """Return executions, newest first.

        :raises InvalidArgument: unknown state.
        """
        if state is not None and state not in frozenset(ExecutionState):
            known = ", ".join(ExecutionState)
            raise InvalidArgument(
                f"unknown execution state {state!r} (one of {known})", details={"field": "status"}
            )
        return await self.store.execution.list_executions(state=state, limit=limit)

    async def show(self, exe_id: str) -> dict[str, Any]:
        """Return an execution with its token, rollbacks and the operations it ran."""
        exe = await get_execution(self.store, exe_id)
        tok = await self.store.execution.token_for_execution(exe.id)
        operations = []
        for column in ("snapshot_op", "change_op", "verify_op"):
            op_id = getattr(exe, column)
            if op_id is None:
                continue
            op = await self.operations.get(op_id)
            steps = await self.operations.steps(op_id)
            operations.append(
                {
                    "phase": column.removesuffix("_op"),
                    "id": op.id,
                    "workflow": op.workflow,
                    "state": op.state,
                    "folder": op.folder,
                    "screenshots": [s.screenshot for s in steps if s.screenshot],
                }
            )
        rollbacks = await self.store.execution.rollbacks_of(exe.id)
        return {
            **exe.to_dict(),
            "rollback_token": tok.to_dict() if tok else None,
            "operations": operations,
            "rollbacks": rollbacks,
        }
