"""Incidents: what needs a person, stored with severity and status, and notified.

An incident is written in the caller's transaction (with its audit event), so
it exists exactly when the thing it is about does; the notification goes out
after the commit (a slow webhook never holds the store's write lock) and the
channels that delivered are recorded on the incident. Listeners (the circuit
breakers) hear of every incident after it is committed.
"""

from __future__ import annotations

import secrets as token
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.breakers import BreakerEvent, BreakerEventKind
from agentd.core.timefmt import iso
from agentd.errors import InvalidArgument, InvalidState, NotFound
from agentd.notifiers import (
    FanoutNotifier,
    Notification,
    NotificationKind,
    Notifier,
    Severity,
    notifier_name,
)
from agentd.store.base import Store, Transaction
from agentd.store.records import IncidentRow

SEVERITIES = ("critical", "high", "medium", "low")
ACTOR = "agentd"

Listener = Callable[[BreakerEvent], Awaitable[None]]


class EventHub:
    """Tell listeners about outcomes (executions, rollbacks, incidents) after they commit."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Add a listener; it is awaited for every event, in order."""
        self._listeners.append(listener)

    async def publish(self, event: BreakerEvent) -> None:
        """Deliver ``event``; a failing listener is logged and never stops the others."""
        for listener in self._listeners:
            try:
                await listener(event)
            except Exception as exc:
                logger.exception("event listener failed on {}: {}", event.kind, exc)


class IncidentService:
    """Open, notify, list and resolve incidents."""

    def __init__(self, store: Store, notifier: Notifier, events: EventHub) -> None:
        self.store = store
        self.notifier = notifier
        self.events = events

    def open_in_tx(
        self,
        tx: Transaction,
        *,
        severity: str,
        kind: str,
        title: str,
        detail: str = "",
        ref: str | None = None,
        tenant: str | None = None,
        account: str | None = None,
        autonomous: bool = False,
    ) -> Awaitable[str]:
        """Write an incident in ``tx`` and return its id; call :meth:`announce` after commit."""
        return self._open(tx, severity, kind, title, detail, ref, tenant, account, autonomous)

    async def _open(
        self,
        tx: Transaction,
        severity: str,
        kind: str,
        title: str,
        detail: str,
        ref: str | None,
        tenant: str | None,
        account: str | None,
        autonomous: bool,
    ) -> str:
        if severity not in SEVERITIES:
            raise InvalidArgument(
                f"unknown severity {severity!r} (one of {', '.join(SEVERITIES)})",
                details={"field": "severity"},
            )
        incident_id = f"inc_{token.token_hex(6)}"
        await tx.execution.insert_incident(
            {
                "id": incident_id,
                "severity": severity,
                "kind": kind,
                "title": title,
                "detail": detail,
                "ref": ref,
                "tenant": tenant,
                "account": account,
                "autonomous": autonomous,
                "created_at": iso(tx.now),
            },
        )
        data = {"severity": severity, "kind": kind, "title": title, "ref": ref}
        tx.audit(AuditEvent(AuditEventType.INCIDENT_OPENED, ACTOR, incident_id, data))
        return incident_id

    async def announce(self, incident_id: str) -> None:
        """Notify the emergency contact of a committed incident and tell the listeners."""
        incident = await self.get(incident_id)
        note = Notification.create(
            severity=Severity(incident.severity),
            kind=NotificationKind.INCIDENT,
            title=incident.title,
            body=incident.detail,
            refs={k: v for k, v in (("incident", incident.id), ("ref", incident.ref)) if v},
        )
        delivered: list[str] = []
        try:
            if isinstance(self.notifier, FanoutNotifier):
                results = await self.notifier.deliver(note)
                delivered = [name for name, err in results if err is None]
            else:
                await self.notifier.send(note)
                delivered = [notifier_name(self.notifier)]
        except Exception as exc:
            logger.error("incident {} could not be notified: {}", incident_id, exc)
        async with self.store.write() as tx:
            await tx.execution.update_incident(incident_id, {"notified": delivered})
        await self.events.publish(
            BreakerEvent(
                at=datetime.fromisoformat(incident.created_at),
                kind=BreakerEventKind.INCIDENT,
                severity=incident.severity,
                autonomous=incident.autonomous,
            )
        )

    async def open(self, **fields: Any) -> str:
        """Open an incident in its own transaction and announce it."""
        async with self.store.write() as tx:
            incident_id = await self.open_in_tx(tx, **fields)
        await self.announce(incident_id)
        return incident_id

    async def report(
        self, *, severity: str, reason: str, actor: str, account: str | None = None
    ) -> IncidentRow:
        """Open an incident a person reports (``agentctl incidents open``), audited and notified.

        A critical one trips the critical-incident breaker like any other.

        :raises InvalidArgument: unknown severity, or no reason.
        """
        text = (reason or "").strip()
        if not text:
            raise InvalidArgument("say what happened (--reason)", details={"field": "reason"})
        if len(text) > 2000:
            raise InvalidArgument(
                "--reason is longer than 2000 characters", details={"field": "reason"}
            )
        incident_id = await self.open(
            severity=severity,
            kind="reported",
            title=f"reported by {actor}: {text.splitlines()[0][:200]}",
            detail=text,
            ref=actor,
            account=account,
        )
        return await self.get(incident_id)

    async def get(self, incident_id: str) -> IncidentRow:
        """Return one incident.

        :raises NotFound: no such incident.
        """
        row = await self.store.execution.get_incident(incident_id)
        if row is None:
            raise NotFound(f"unknown incident {incident_id!r}", details={"incident": incident_id})
        return row

    async def list_incidents(
        self, status: str | None = None, limit: int = 200
    ) -> list[IncidentRow]:
        """Return incidents, newest first.

        :raises InvalidArgument: unknown status.
        """
        if status not in (None, "open", "resolved"):
            raise InvalidArgument(
                f"unknown incident status {status!r} (open or resolved)",
                details={"field": "status"},
            )
        return await self.store.execution.list_incidents(status=status, limit=limit)

    async def resolve(self, incident_id: str, actor: str, note: str) -> IncidentRow:
        """Resolve an open incident with a note.

        :raises NotFound: no such incident.
        :raises InvalidState: already resolved.
        :raises InvalidArgument: empty note.
        """
        if not note or not note.strip():
            raise InvalidArgument("say how it was resolved (--note)", details={"field": "note"})
        now = datetime.now(UTC)
        async with self.store.write(now) as tx:
            row = await tx.execution.get_incident(incident_id)
            if row is None:
                raise NotFound(
                    f"unknown incident {incident_id!r}", details={"incident": incident_id}
                )
            if row.status == "resolved":
                raise InvalidState(
                    f"incident {incident_id} was already resolved by {row.resolved_by} "
                    f"at {row.resolved_at}",
                    details={"incident": incident_id},
                )
            await tx.execution.update_incident(
                incident_id,
                {
                    "status": "resolved",
                    "resolved_at": iso(now),
                    "resolved_by": actor,
                    "resolution": note.strip(),
                },
            )
            tx.audit(
                AuditEvent(
                    AuditEventType.INCIDENT_RESOLVED, actor, incident_id, {"note": note.strip()}
                )
            )
        return await self.get(incident_id)
