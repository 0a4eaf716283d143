"""Hand-offs to a person: the executor for what the agent should not or cannot do itself.

An intent mapped to the ``handoff`` executor is approved like any other; its
execution passes the same checks (kill switch, trusted mode, daily limit,
window; consent aside, since no browser runs), then goes to ``handed_off``:
a notification (file, log, webhook) carries exactly what was approved, and a
person does the work. ``agentctl handoff done ID --note TEXT`` closes it as
succeeded (with a rollback token, whose rollback escalates: only a person can
take the work back), ``agentctl handoff failed ID --reason TEXT`` as failed.
Every step is audited; a closed hand-off counts in the metrics as an execution,
and a failed one counts for the circuit breakers like a failed execution.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.breakers import BreakerEvent, BreakerEventKind
from agentd.core.executors import HANDOFF
from agentd.core.states import ENDED_EXECUTION_STATES, ExecutionState
from agentd.core.timefmt import iso
from agentd.errors import InvalidArgument, InvalidState, NotFound
from agentd.notifiers import FanoutNotifier, Notification, NotificationKind, Notifier, Severity
from agentd.notifiers import notifier_name as _name
from agentd.services.incidents import EventHub
from agentd.store.base import Store, Transaction
from agentd.store.records import ExecutionRow

ACTOR = "agentd"
HANDED_OFF = ExecutionState.HANDED_OFF
#: ``agentctl handoffs --status``: the execution states each one covers.
LIST_STATES = {
    "open": (HANDED_OFF,),
    "done": (ExecutionState.SUCCEEDED,),
    "failed": (ExecutionState.FAILED,),
}
MAX_TEXT = 2000

TokenMaker = Callable[[Transaction, ExecutionRow, datetime], Awaitable[str]]


def _text(value: str | None, field: str, flag: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidArgument(f"say what happened ({flag})", details={"field": field})
    if len(text) > MAX_TEXT:
        raise InvalidArgument(
            f"{flag} is longer than {MAX_TEXT} characters", details={"field": field}
        )
    return text


class HandoffDesk:
    """Hand approved intents to a person, list the hand-offs, and close them."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        events: EventHub,
        *,
        clock: Callable[[], datetime],
        token: TokenMaker,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.events = events
        self.clock = clock
        self.token = token

    async def hand_off_in_tx(
        self, tx: Transaction, exe: ExecutionRow, checks: list[dict[str, Any]]
    ) -> None:
        """Mark a checked execution handed off, with what was approved; audit it.

        Call :meth:`announce` after the commit.
        """
        row = await tx.gate.get_intent(exe.intent_id)
        approved: dict[str, Any] = {"intent_id": exe.intent_id}
        if row is not None:
            intent = row.intent
            approved.update(
                tenant=intent.tenant,
                account=intent.account,
                action_type=intent.action_type,
                domain=intent.domain,
                change_type=intent.change_type,
                diff=dict(intent.diff),
                rationale=intent.rationale,
                serves=dict(intent.serves),
                risk=str(row.outcome.risk.level),
                approval={
                    "source": row.approval_source,
                    "by": row.decided_by or ("policy" if row.approval_source else None),
                    "at": row.decided_at,
                    "note": row.decision_note,
                },
            )
        await tx.execution.update_execution(
            exe.id,
            {
                "state": HANDED_OFF,
                "checks": checks,
                "reason": "HANDED_OFF",
                "detail": f"waiting for a person: agentctl handoff done {exe.id} --note TEXT "
                f"(or handoff failed {exe.id} --reason TEXT)",
                "retry_at": None,
                "started_at": iso(tx.now),
                "result": {"handoff": approved, "notified": []},
                "updated_at": iso(tx.now),
            },
        )
        tx.audit(
            AuditEvent(
                AuditEventType.EXECUTION_HANDED_OFF,
                ACTOR,
                exe.id,
                {"intent_id": exe.intent_id, "handoff": approved},
            )
        )

    async def announce(self, exe_id: str) -> list[str]:
        """Notify of a committed hand-off; record and return the channels that delivered."""
        exe = await self._get(exe_id)
        approved = dict((exe.result or {}).get("handoff") or {})
        note = Notification.create(
            severity=Severity.MEDIUM,
            kind=NotificationKind.HANDOFF,
            title=f"hand-off {exe.id}: {exe.action_type} on {exe.account} needs a person",
            body=json.dumps(approved, indent=2, sort_keys=True)
            + f"\n\nWhen it is done: agentctl handoff done {exe.id} --note TEXT"
            + f"\nIf it cannot be done: agentctl handoff failed {exe.id} --reason TEXT\n",
            refs={"execution": exe.id, "intent": exe.intent_id},
            data={"execution": exe.id, "approved": approved},
        )
        delivered: list[str] = []
        try:
            if isinstance(self.notifier, FanoutNotifier):
                results = await self.notifier.deliver(note)
                delivered = [name for name, err in results if err is None]
            else:
                await self.notifier.send(note)
                delivered = [_name(self.notifier)]
        except Exception as exc:  # the hand-off stands; `agentctl handoffs` still lists it
            logger.error("hand-off {} could not be notified: {}", exe.id, exc)
        async with self.store.write(self.clock()) as tx:
            fresh = await tx.execution.get_execution(exe.id)
            if fresh is not None:
                result = {**(fresh.result or {}), "notified": delivered}
                await tx.execution.update_execution(exe.id, {"result": result})
        logger.info("execution {} handed off ({})", exe.id, ", ".join(delivered) or "not notified")
        return delivered

    async def list_handoffs(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        """Return hand-offs, newest first: all, or ``open``, ``done`` or ``failed`` ones.

        :raises InvalidArgument: unknown status.
        """
        if status is not None and status not in LIST_STATES:
            raise InvalidArgument(
                f"unknown hand-off status {status!r} (one of {', '.join(LIST_STATES)})",
                details={"field": "status"},
            )
        states = (
            LIST_STATES[status]
            if status
            else (HANDED_OFF, ExecutionState.SUCCEEDED, ExecutionState.FAILED)
        )
        ids = await self.store.execution.change_ids_by_executor(HANDOFF, states, limit)
        return [self._view(await self._get(i)) for i in ids]

    async def done(self, exe_id: str, actor: str, note: str | None) -> dict[str, Any]:
        """Close a hand-off as done: the execution succeeded.

        :raises NotFound: no such execution.
        :raises InvalidState: not a hand-off, or not open (``details["reason"]``).
        :raises InvalidArgument: no note.
        """
        text = _text(note, "note", "--note")
        async with self.store.write(self.clock()) as tx:
            exe = await self._open_in_tx(tx, exe_id)
            await tx.execution.update_execution(
                exe.id,
                {
                    "state": ExecutionState.SUCCEEDED,
                    "reason": "HANDOFF_DONE",
                    "detail": text,
                    "target_state": "applied",
                    "finished_at": iso(tx.now),
                    "result": {**(exe.result or {}), "closed_by": actor, "note": text},
                    "updated_at": iso(tx.now),
                },
            )
            token = await self.token(tx, exe, tx.now)
            tx.audit(
                AuditEvent(
                    AuditEventType.EXECUTION_COMPLETED,
                    actor,
                    exe.id,
                    {
                        "intent_id": exe.intent_id,
                        "handoff": True,
                        "note": text,
                        "rollback_token": token,
                    },
                )
            )
        await self._publish(exe, BreakerEventKind.EXECUTION_SUCCEEDED)
        return self._view(await self._get(exe.id))

    async def failed(self, exe_id: str, actor: str, reason: str | None) -> dict[str, Any]:
        """Close a hand-off as failed: it counts like a failed execution.

        :raises NotFound: no such execution.
        :raises InvalidState: not a hand-off, or not open (``details["reason"]``).
        :raises InvalidArgument: no reason.
        """
        text = _text(reason, "reason", "--reason")
        async with self.store.write(self.clock()) as tx:
            exe = await self._open_in_tx(tx, exe_id)
            await tx.execution.update_execution(
                exe.id,
                {
                    "state": ExecutionState.FAILED,
                    "reason": "HANDOFF_FAILED",
                    "detail": text,
                    "target_state": "unchanged",
                    "finished_at": iso(tx.now),
                    "result": {**(exe.result or {}), "closed_by": actor, "reason": text},
                    "updated_at": iso(tx.now),
                },
            )
            tx.audit(
                AuditEvent(
                    AuditEventType.EXECUTION_FAILED,
                    actor,
                    exe.id,
                    {
                        "intent_id": exe.intent_id,
                        "handoff": True,
                        "reason": "HANDOFF_FAILED",
                        "error": text,
                    },
                )
            )
        await self._publish(exe, BreakerEventKind.EXECUTION_FAILED)
        return self._view(await self._get(exe.id))

    async def _open_in_tx(self, tx: Transaction, exe_id: str) -> ExecutionRow:
        exe = await tx.execution.get_execution(exe_id)
        if exe is None:
            raise NotFound(f"unknown execution {exe_id!r}", details={"execution": exe_id})
        if exe.executor != HANDOFF or exe.kind != "change":
            raise InvalidState(
                f"execution {exe_id} is not a hand-off (executor {exe.executor}); only "
                "hand-offs are closed by a person",
                details={"reason": "NOT_A_HANDOFF", "execution": exe_id},
            )
        if exe.state != HANDED_OFF:
            closed = exe.state in ENDED_EXECUTION_STATES
            why = (
                f"was already closed ({exe.state}"
                + (f" by {(exe.result or {}).get('closed_by')}" if exe.result else "")
                + f" at {exe.finished_at})"
                if closed
                else f"is not handed off yet (state {exe.state})"
            )
            raise InvalidState(
                f"hand-off {exe_id} {why}",
                details={
                    "reason": "HANDOFF_CLOSED" if closed else "HANDOFF_NOT_OPEN",
                    "execution": exe_id,
                    "state": exe.state,
                },
            )
        return exe

    async def _get(self, exe_id: str) -> ExecutionRow:
        exe = await self.store.execution.get_execution(exe_id)
        if exe is None:
            raise NotFound(f"unknown execution {exe_id!r}", details={"execution": exe_id})
        return exe

    async def _publish(self, exe: ExecutionRow, kind: BreakerEventKind) -> None:
        await self.events.publish(
            BreakerEvent(at=self.clock(), kind=kind, action_type=exe.action_type)
        )

    @staticmethod
    def _view(exe: ExecutionRow) -> dict[str, Any]:
        result = exe.result or {}
        return {
            "id": exe.id,
            "intent_id": exe.intent_id,
            "state": "open" if exe.state == HANDED_OFF else exe.state,
            "tenant": exe.tenant,
            "account": exe.account,
            "action_type": exe.action_type,
            "handed_off_at": exe.started_at,
            "closed_at": exe.finished_at,
            "closed_by": result.get("closed_by"),
            "note": result.get("note") or result.get("reason"),
            "notified": result.get("notified", []),
            "approved": result.get("handoff", {}),
        }
