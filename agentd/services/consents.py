"""Consents: a customer's permission for browser operations on one of their back-offices.

A consent names an account, a service and a workflow (``*``: every one) and the
permissions it grants (:mod:`agentd.core.consent` holds the rules). A grant
releases the operations waiting for it and stops, at their next step, the
running ones a narrower grant no longer covers; a revoke stops the running
operations it covered (unless another consent in force still covers them).
Kept apart from :class:`~agentd.services.operations.OperationsService`, which
it asks to stop or wake operations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from loguru import logger

from agentd.core.agent_mode import TASK_WORKFLOW
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.consent import Permission, ShortfallReason, consent_shortfall, workflow_needs
from agentd.core.states import OperationState
from agentd.core.timefmt import iso
from agentd.errors import AgentdError, InvalidArgument, NotFound
from agentd.kb import KnowledgeBase
from agentd.store.base import Store
from agentd.store.records import ConsentRow

if TYPE_CHECKING:
    from agentd.services.operations import OperationsService


def permission_lookup(knowledge_base: Callable[[], KnowledgeBase]) -> Callable[[str], Permission]:
    """Return a lookup of the permission each workflow needs (an unknown one: WRITE).

    The knowledge base is loaded once for the lookup; one that does not load
    leaves every workflow unknown.
    """
    try:
        kb: KnowledgeBase | None = knowledge_base()
    except AgentdError:
        kb = None

    def needs(workflow: str) -> Permission:
        if workflow == TASK_WORKFLOW:
            return Permission.READ  # a task's writes are checked one by one (agent mode)
        if kb is None or workflow not in kb.names:
            return workflow_needs(None)  # fail closed
        return workflow_needs(kb.workflow(workflow).steps)

    return needs


class ConsentsService:
    """Grant, revoke and list consents, and tell the operations what changed for them."""

    def __init__(
        self,
        store: Store,
        operations: OperationsService,
        *,
        knowledge_base: Callable[[], KnowledgeBase],
    ) -> None:
        self.store = store
        self.operations = operations
        self.knowledge_base = knowledge_base

    async def grant_consent(
        self,
        account: str,
        service: str,
        operation: str = "*",
        *,
        permissions: Sequence[str] = (),
        actor: str,
    ) -> ConsentRow:
        """Grant consent (a new version) and release the operations waiting for it.

        :raises InvalidArgument: an empty account, service or operation.
        """
        _names(account=account, service=service, operation=operation)
        unknown = sorted(set(permissions) - set(Permission))
        if unknown:
            raise InvalidArgument(
                f"unknown permission {', '.join(unknown)}: grant "
                f"{' or '.join(p.value for p in Permission)} (or none for every permission)",
                details={"field": "permissions"},
            )
        # None named means every permission: stored as such, so what is shown
        # (consent list, the grant's answer, the audit) says what it allows.
        granted = list(dict.fromkeys(permissions)) or [p.value for p in Permission]
        needs = permission_lookup(self.knowledge_base)
        async with self.store.write() as tx:
            row = await tx.ops.upsert_consent(account, service, operation, granted, actor)
            tx.audit(AuditEvent(AuditEventType.CONSENT_GRANTED, actor, account, row.to_dict()))
            released = 0
            covered = [
                op
                for op in await tx.ops.operations_in_state(
                    [OperationState.AWAITING_CONSENT, OperationState.IN_PROGRESS]
                )
                if op.account == account
                and op.service == service
                and operation in ("*", op.workflow)
            ]
            narrowed = []
            for op in covered:
                consent = await tx.ops.active_consent(account, service, op.workflow)
                shortfall = consent_shortfall(consent, op.workflow, needs(op.workflow))
                if op.state == OperationState.IN_PROGRESS:
                    if shortfall is not None:
                        narrowed.append((op.id, shortfall.message))
                elif shortfall is None:
                    await tx.ops.update_operation(
                        op.id, {"state": OperationState.PENDING, "updated_at": iso(tx.now)}
                    )
                    released += 1
        # A grant that narrows the permissions stops what it no longer covers.
        for op_id, message in narrowed:
            self.operations.stop(op_id, "permission_revoked", message)
        if released:
            logger.info("consent for {}/{} released {} operations", account, service, released)
            self.operations.consent_arrived()
        return row

    async def revoke_consent(
        self, account: str, service: str, operation: str = "*", *, actor: str
    ) -> ConsentRow:
        """Revoke a consent; running operations it covered stop at their next step.

        :raises NotFound: no such consent in force.
        """
        _names(account=account, service=service, operation=operation)
        async with self.store.write() as tx:
            row = await tx.ops.revoke_consent(account, service, operation, actor)
            if row is None:
                raise NotFound(
                    f"no consent in force for {account}/{service}/{operation}",
                    details={"account": account, "service": service, "operation": operation},
                )
            tx.audit(AuditEvent(AuditEventType.CONSENT_REVOKED, actor, account, row.to_dict()))
            running = await tx.ops.operations_in_state([OperationState.IN_PROGRESS])
        needs = permission_lookup(self.knowledge_base)
        for op in running:
            if (
                op.account == account
                and op.service == service
                and self.operations.is_running(op.id)
            ):
                consent = await self.store.ops.active_consent(account, service, op.workflow)
                shortfall = consent_shortfall(consent, op.workflow, needs(op.workflow))
                if shortfall is None:
                    continue  # another consent in force still covers it
                if shortfall.reason is ShortfallReason.CONSENT_MISSING:
                    self.operations.stop(op.id, "consent_revoked", f"consent revoked by {actor}")
                else:
                    self.operations.stop(op.id, "permission_revoked", shortfall.message)
        return row

    async def list_consents(self, account: str | None = None) -> list[ConsentRow]:
        """Return consents, active and revoked."""
        return await self.store.ops.list_consents(account)


def _names(**values: str) -> None:
    for label, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise InvalidArgument(f"{label} must not be empty", details={"field": label})
