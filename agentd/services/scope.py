"""Scope expansion: proposals to widen autonomy, and the distinct approvers they need.

A proposal (from the weekly cycle, or from ``agentctl level set`` raising the
level) names a target level and action types to add to the auto-execute
allowlist. One waits at a time. Each approval is recorded; the last one
required (``governance.expansion_approvals``, at least two, from distinct
users) applies the change in the same transaction, audited — unless the kill
switch is on or a breaker that reverts to L3 is tripped, in which case that
approval is refused and nothing changes. A rejected or expired proposal
(``governance.expansion_ttl_hours``; fail closed) changes nothing.
"""

from __future__ import annotations

import secrets as token
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger

from agentd.config import Settings
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.governance import Approval, GovernanceEvent, add_approval
from agentd.core.policy import AutonomyLevel
from agentd.core.timefmt import iso
from agentd.errors import Conflict, Expired, InvalidArgument, InvalidState, NotFound
from agentd.notifiers import Notification, NotificationKind, Notifier, Severity
from agentd.services.autonomy import AutonomyState
from agentd.store.base import Store, Transaction
from agentd.store.records import ProposalRow

ACTOR = "agentd"
PROPOSAL_PREFIX = "scope_"
PROPOSAL_STATUSES = ("pending", "approved", "rejected", "expired")


def _text(value: Any, field: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(what, details={"field": field})
    return value.strip()


async def notify_quietly(
    notifier: Notifier, severity: Severity, kind: NotificationKind, title: str, body: str
) -> None:
    """Send a notification; a failing channel is logged, never raised."""
    try:
        await notifier.send(
            Notification.create(severity=severity, kind=kind, title=title, body=body)
        )
    except Exception as exc:
        logger.error("could not notify {!r}: {}", title, exc)


class ScopeExpansions:
    """Create, approve, reject and expire scope-expansion proposals."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        autonomy: AutonomyState,
        notifier: Notifier,
        *,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.autonomy = autonomy
        self.notifier = notifier
        self.on_change = on_change
        self.clock = clock

    async def _notify(
        self, severity: Severity, kind: NotificationKind, title: str, body: str
    ) -> None:
        await notify_quietly(self.notifier, severity, kind, title, body)

    async def propose(
        self,
        now: datetime,
        *,
        source: str,
        requested_by: str,
        current: AutonomyLevel,
        target: AutonomyLevel,
        action_types: tuple[str, ...],
        rationale: str,
        evidence: dict[str, Any],
        report: str | None,
    ) -> ProposalRow:
        """Create a scope-expansion proposal waiting for approvals.

        :raises Conflict: another proposal is waiting.
        """
        cfg = self.settings().governance
        proposal_id = f"{PROPOSAL_PREFIX}{token.token_hex(8)}"
        async with self.store.write(now) as tx:
            await self._expire_in_tx(tx, now)
            waiting = await tx.gov.pending_proposal()
            if waiting is not None:
                raise Conflict(
                    f"scope expansion {waiting.id} ({waiting.current_level} -> "
                    f"{waiting.target_level}) is already waiting for approval; approve or reject "
                    "it first",
                    details={"proposal": waiting.id},
                )
            values = {
                "id": proposal_id,
                "status": "pending",
                "source": source,
                "requested_by": requested_by,
                "current_level": str(current),
                "target_level": str(target),
                "action_types": list(action_types),
                "rationale": rationale,
                "evidence": evidence,
                "report": report,
                "required_approvals": cfg.expansion_approvals,
                "approvals": [],
                "created_at": iso(now),
                "expires_at": iso(now + timedelta(hours=cfg.expansion_ttl_hours)),
            }
            await tx.gov.insert_proposal(values)
            tx.audit(
                AuditEvent(
                    GovernanceEvent.SCOPE_EXPANSION_PROPOSED,
                    requested_by,
                    proposal_id,
                    {
                        "source": source,
                        "from": str(current),
                        "to": str(target),
                        "action_types": list(action_types),
                        "rationale": rationale,
                        "required_approvals": cfg.expansion_approvals,
                        "report": report,
                    },
                )
            )
        row = await self.store.gov.get_proposal(proposal_id)
        assert row is not None
        await self._notify(
            Severity.INFO,
            NotificationKind.GOVERNANCE,
            f"Scope expansion {proposal_id} waits for {row.required_approvals} approvals",
            f"{current} -> {target}; allowlist additions: {', '.join(action_types) or 'none'}. "
            f"{rationale}",
        )
        return row

    async def _get(self, proposal_id: Any) -> ProposalRow:
        if not isinstance(proposal_id, str) or not proposal_id.strip():
            raise InvalidArgument("name the scope expansion (its id)", details={"field": "id"})
        row = await self.store.gov.get_proposal(proposal_id.strip())
        if row is None:
            raise NotFound(f"no scope expansion {proposal_id!r}", details={"proposal": proposal_id})
        return row

    async def proposal(self, proposal_id: Any) -> dict[str, Any]:
        """Return one proposal with its evidence.

        :raises NotFound: no such proposal.
        """
        return (await self._get(proposal_id)).to_dict()

    async def proposals(self, status: Any = None) -> list[dict[str, Any]]:
        """Return proposals, newest first.

        :raises InvalidArgument: unknown status.
        """
        if status is not None and status not in PROPOSAL_STATUSES:
            raise InvalidArgument(
                f"status must be one of {', '.join(PROPOSAL_STATUSES)}",
                details={"field": "status"},
            )
        rows = await self.store.gov.list_proposals(status)
        return [r.to_dict(evidence=False) for r in rows]

    def _check_pending(self, row: ProposalRow) -> None:
        if row.status != "pending":
            by = f" by {row.decided_by}" if row.decided_by else ""
            raise InvalidState(
                f"scope expansion {row.id} is {row.status}{by}; nothing to decide",
                details={"proposal": row.id, "status": row.status},
            )

    async def _expire_in_tx(self, tx: Transaction, now: datetime) -> list[str]:
        row = await tx.gov.pending_proposal()
        if row is None or datetime.fromisoformat(row.expires_at) > now:
            return []
        await tx.gov.update_proposal(
            row.id,
            {"status": "expired", "decided_at": iso(now), "decision_note": "not approved in time"},
        )
        tx.audit(
            AuditEvent(
                GovernanceEvent.SCOPE_EXPANSION_EXPIRED,
                ACTOR,
                row.id,
                {"approvals": len(row.approvals), "required": row.required_approvals},
            )
        )
        return [row.id]

    async def expire_due(self) -> str:
        """Expire a proposal past its deadline (fail closed; the scheduled task)."""
        async with self.store.write(self.clock()) as tx:
            expired = await self._expire_in_tx(tx, tx.now)
        return f"{len(expired)} scope expansion(s) expired"

    async def approve(self, proposal_id: Any, actor: str, note: Any = None) -> dict[str, Any]:
        """Record ``actor``'s approval; the last required one applies the change.

        :raises NotFound: no such proposal.
        :raises InvalidState: not pending, or the kill switch is on or a reverting
            breaker is tripped when the change would apply.
        :raises Conflict: ``actor`` has already approved it.
        :raises Expired: it expired (it is marked so; nothing changes).
        """
        row = await self._get(proposal_id)
        text = note.strip() if isinstance(note, str) else ""
        now = self.clock()
        applied: dict[str, Any] | None = None
        expired = False
        try:
            async with self.store.write(now) as tx:
                row = await tx.gov.get_proposal(row.id) or row
                self._check_pending(row)
                if await self._expire_in_tx(tx, now):
                    expired = True
                else:
                    approvals = [
                        Approval(a["by"], datetime.fromisoformat(a["at"]), a.get("note", ""))
                        for a in row.approvals
                    ]
                    complete = add_approval(
                        approvals, Approval(actor, now, text), row.required_approvals
                    )
                    recorded = [*row.approvals, {"by": actor, "at": iso(now), "note": text}]
                    changes: dict[str, Any] = {"approvals": recorded}
                    if complete:
                        applied = await self._apply_in_tx(tx, row, actor)
                        changes |= {
                            "status": "approved",
                            "decided_at": iso(now),
                            "decided_by": actor,
                            "decision_note": text or None,
                        }
                    await tx.gov.update_proposal(row.id, changes)
                    tx.audit(
                        AuditEvent(
                            GovernanceEvent.SCOPE_EXPANSION_APPROVAL,
                            actor,
                            row.id,
                            {
                                "note": text,
                                "approvals": len(recorded),
                                "required": row.required_approvals,
                            },
                        )
                    )
        except (Conflict, InvalidState) as exc:
            await self._refused(row.id, actor, exc.message)
            raise
        if expired:
            raise Expired(
                f"scope expansion {row.id} expired at {row.expires_at}; nothing changed",
                details={"proposal": row.id},
            )
        if applied is not None:
            await self.autonomy.load()
            self.on_change()
            await self._notify(
                Severity.INFO,
                NotificationKind.GOVERNANCE,
                f"Scope expansion {row.id} approved and applied",
                f"level {applied['from']} -> {applied['level']}; allowlist additions: "
                f"{', '.join(applied['added']) or 'none'}",
            )
        out = (await self._get(row.id)).to_dict(evidence=False)
        out["applied"] = applied
        return out

    async def _apply_in_tx(self, tx: Transaction, row: ProposalRow, actor: str) -> dict[str, Any]:
        state = await self.autonomy.in_tx(tx)
        if state.kill_switch:
            raise InvalidState(
                "the kill switch is on; turn it off before widening autonomy "
                "(the approval was not recorded)",
                details={"proposal": row.id},
            )
        reverting = [
            t.key
            for t in await tx.gov.open_trips()
            if t.action == "revert_to_l3" and not t.alert_only
        ]
        if reverting:
            raise InvalidState(
                f"breaker {', '.join(reverting)} is tripped; reset it before widening autonomy "
                "(the approval was not recorded)",
                details={"proposal": row.id, "breakers": reverting},
            )
        target = AutonomyLevel(row.target_level)
        previous = state.level
        if target.rank > previous.rank:
            await self.autonomy.set_level_in_tx(
                tx,
                target,
                previous=previous,
                actor=actor,
                reason=f"scope expansion {row.id} approved",
                source="scope_expansion",
                ref=row.id,
            )
        hard_stop = set(self.settings().guardrails.hard_stop)
        added = sorted(set(row.action_types) - set(state.allowlist_additions) - hard_stop)
        if added:
            await self.autonomy.add_allowlist_in_tx(tx, set(added))
            tx.audit(
                AuditEvent(
                    GovernanceEvent.ALLOWLIST_CHANGED,
                    actor,
                    "autonomy.allowlist",
                    {"added": added, "proposal": row.id},
                )
            )
        level = target if target.rank > previous.rank else previous
        tx.audit(
            AuditEvent(
                GovernanceEvent.SCOPE_EXPANSION_APPLIED,
                actor,
                row.id,
                {
                    "from": str(previous),
                    "to": str(level),
                    "added": added,
                    "approvers": [a["by"] for a in row.approvals] + [actor],
                },
            )
        )
        return {"from": str(previous), "level": str(level), "added": added}

    async def _refused(self, proposal_id: str, actor: str, why: str) -> None:
        try:
            async with self.store.write(self.clock()) as tx:
                tx.audit(
                    AuditEvent(AuditEventType.APPROVAL_REFUSED, actor, proposal_id, {"reason": why})
                )
        except Exception as exc:
            logger.error("could not audit a refused approval: {}", exc)

    async def reject(self, proposal_id: Any, actor: str, reason: Any) -> dict[str, Any]:
        """Reject a pending proposal; nothing else changes.

        :raises InvalidArgument: no reason.
        :raises NotFound: no such proposal.
        :raises InvalidState: not pending.
        """
        why = _text(reason, "reason", "say why it is rejected (--reason)")
        row = await self._get(proposal_id)
        now = self.clock()
        async with self.store.write(now) as tx:
            row = await tx.gov.get_proposal(row.id) or row
            self._check_pending(row)
            await tx.gov.update_proposal(
                row.id,
                {
                    "status": "rejected",
                    "decided_at": iso(now),
                    "decided_by": actor,
                    "decision_note": why,
                },
            )
            tx.audit(
                AuditEvent(GovernanceEvent.SCOPE_EXPANSION_REJECTED, actor, row.id, {"reason": why})
            )
        return (await self._get(row.id)).to_dict(evidence=False)
