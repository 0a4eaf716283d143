"""The store-backed operation log: the step journal and end of each operation.

Each write is one transaction that first checks the operation is still
leased to the runner (:class:`~agentd.errors.Conflict` otherwise): step rows,
the progress they make (the last step done) and a renewed lease go together,
with an ``OPERATION_STEP`` audit event per row (and the command refusals seen
before it); the end writes what is left of the journal, the final screenshot
row, the state and the end's audit event. Crash recovery judges by this
recorded progress (see :func:`~agentd.services.operations.recovery_decision`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from agentd.browser.journal import (
    ACTOR,
    OPERATION_CANCELLED,
    OPERATION_COMPLETED,
    OPERATION_FAILED,
    RECORDED,
    OperationEnd,
    Refusal,
    StepEntry,
)
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.states import OperationState
from agentd.core.timefmt import iso
from agentd.errors import Conflict, NotFound
from agentd.store.base import Store
from agentd.store.records import ConsentRow, OperationRow

_END_EVENTS: dict[str, AuditEventType] = {
    OperationState.COMPLETED: OPERATION_COMPLETED,
    OperationState.FAILED: OPERATION_FAILED,
    OperationState.CANCELLED: OPERATION_CANCELLED,
}


class StoredOperationLog:
    """Record operations in the store (:class:`~agentd.browser.journal.OperationLog`).

    :param lease_s: how long a write renews the operation's lease for.
    """

    def __init__(self, store: Store, *, lease_s: float) -> None:
        self.store = store
        self.lease_s = lease_s

    async def operation(self, op_id: str) -> OperationRow:
        """Return the operation as stored.

        :raises NotFound: no such operation.
        """
        row = await self.store.ops.get_operation(op_id)
        if row is None:
            raise NotFound(f"unknown operation {op_id!r}", details={"operation": op_id})
        return row

    async def active_consent(self, account: str, service: str, workflow: str) -> ConsentRow | None:
        """Return the consent in force for a workflow, or None."""
        return await self.store.ops.active_consent(account, service, workflow)

    async def allowed_hosts(self, account: str) -> Sequence[str] | None:
        """Return an account's host allowlist, or None for an unknown account."""
        row = await self.store.gate.get_account(account)
        return None if row is None else row.allowed_hosts

    async def secret_blobs(
        self, account: str, service: str, names: Sequence[str]
    ) -> Mapping[str, bytes]:
        """Return the sealed secrets of these names that exist."""
        return await self.store.ops.secret_blobs(account, service, list(names))

    async def audit(self, event: AuditEvent) -> None:
        """Append one audit event on its own."""
        await self.store.append_audit([event], datetime.now(UTC))

    async def write_steps(self, op_id: str, owner: str, steps: Sequence[StepEntry]) -> None:
        """Write step records, their progress and a renewed lease in one transaction.

        :raises Conflict: the operation is no longer leased to ``owner``.
        """
        now = datetime.now(UTC)
        async with self.store.write(now) as tx:
            await _own(tx, op_id, owner)
            await self._insert_steps(tx, op_id, steps, now)

    async def record_end(self, end: OperationEnd, owner: str, steps: Sequence[StepEntry]) -> None:
        """Write the last step records, the final screenshot, the state and the end's audit.

        :raises Conflict: the operation is no longer leased to ``owner``.
        """
        op, now = end.op, datetime.now(UTC)
        async with self.store.write(now) as tx:
            await _own(tx, op.id, owner)
            if steps:
                await self._insert_steps(tx, op.id, steps, now)
            _audit_refusals(tx, op.id, end.refusals)
            if end.off_list is not None:
                tx.audit(
                    AuditEvent(AuditEventType.HOST_NOT_ALLOWED, ACTOR, op.id, dict(end.off_list))
                )
            if end.saved:
                await tx.ops.insert_steps([_final_row(end, iso(now))])
            await tx.ops.update_operation(
                op.id,
                {
                    "state": end.state,
                    "reason": end.reason,
                    "error": end.error,
                    "result": dict(end.results),
                    "folder": end.folder,
                    "lease_owner": None,
                    "lease_until": None,
                    "updated_at": iso(now),
                    "finished_at": iso(now),
                },
            )
            tx.audit(AuditEvent(_END_EVENTS[end.state], ACTOR, op.id, _end_data(end)))

    async def _insert_steps(
        self, tx: Any, op_id: str, steps: Sequence[StepEntry], now: datetime
    ) -> None:
        await tx.ops.insert_steps(
            [{k: v for k, v in s.row.items() if k != RECORDED} for s in steps]
        )
        changes: dict[str, Any] = {
            "updated_at": iso(now),
            "lease_until": iso(now + timedelta(seconds=self.lease_s)),
        }
        done = [s.row["idx"] for s in steps if s.row["status"] == "ok"]
        if done:
            changes["step"] = max(done)
        await tx.ops.update_operation(op_id, changes)
        for step in steps:
            _audit_refusals(tx, op_id, step.refusals)
            data = {k: v for k, v in step.row.items() if k not in ("op_id", "attempt")}
            tx.audit(AuditEvent(AuditEventType.OPERATION_STEP, ACTOR, op_id, data))


async def _own(tx: Any, op_id: str, owner: str) -> None:
    current = await tx.ops.get_operation(op_id)
    if current is None or current.lease_owner != owner or current.finished:
        raise Conflict(f"operation {op_id} is no longer run by this process", details={"op": op_id})


def _audit_refusals(tx: Any, op_id: str, refusals: Sequence[Refusal]) -> None:
    for index, source, problem, target in refusals:
        data = {"step": index, "source": source, "problem": problem, "target": target}
        tx.audit(AuditEvent(AuditEventType.OPERATION_REFUSED_COMMAND, ACTOR, op_id, data))


def _final_row(end: OperationEnd, at: str) -> dict[str, Any]:
    return {
        "op_id": end.op.id,
        "attempt": end.attempt,
        "idx": 0,
        "intent": "final screenshot",
        "action": "screenshot",
        "target": "",
        "source": "agent",
        "status": "final",
        "error": end.error,
        "screenshot": end.saved["screenshot"],
        "sha256": end.saved["sha256"],
        "at": at,
    }


def _end_data(end: OperationEnd) -> dict[str, Any]:
    return {
        "workflow": end.op.workflow,
        "account": end.op.account,
        "state": end.state,
        "reason": end.reason,
        "error": end.error,
        "results": sorted(end.results),
        "refused_hosts": list(end.refused_hosts),
        "screenshot": end.saved.get("screenshot"),
        "sha256": end.saved.get("sha256"),
    }
