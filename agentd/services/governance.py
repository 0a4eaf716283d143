"""Governance as a service: autonomy level, kill switch, readiness, scope expansion.

- **Level.** Lowering (``agentctl level set L3``) is immediate and audited.
  Raising creates a scope-expansion proposal instead: nothing changes until
  ``governance.expansion_approvals`` distinct users have approved it.
- **Kill switch.** On: persisted where the gate and the execution engine read
  it (nothing auto-executes), running browser operations are told to stop at
  their next step, the emergency contact is notified. Off needs an approver;
  an on-off cycle counts as a kill-switch test for readiness.
- **Readiness.** The seed's three checklists: measured items from metrics and
  state, the rest from attestations that expire after
  ``governance.attestation_ttl_days``.
- **Scope expansion.** One proposal waits at a time. Each approval is
  recorded; the last one applies the level and allowlist change in the same
  transaction, audited — unless the kill switch is on or a breaker that
  reverts to L3 is tripped, in which case the approval is refused and nothing
  changes. A rejected or expired proposal changes nothing.
"""

from __future__ import annotations

import secrets as token
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from loguru import logger

from agentd.config import Settings
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.gate import AutonomyLevel
from agentd.core.governance import (
    Approval,
    GovernanceEvent,
    add_approval,
    parse_level,
)
from agentd.core.metrics import compute_rates
from agentd.core.readiness import (
    ATTESTABLE_IDS,
    Attestation,
    ReadinessFacts,
    ReadinessReport,
    assess,
    validate_attestation,
)
from agentd.errors import Conflict, Expired, InvalidArgument, InvalidState, NotFound
from agentd.notifiers import Notification, NotificationKind, Notifier, Severity
from agentd.services.autonomy import AutonomyState
from agentd.services.breakers import BreakerService
from agentd.services.metrics import MetricsCollector
from agentd.store import gov_sql
from agentd.store.base import Store, Transaction
from agentd.store.sqlite import iso

ACTOR = "agentd"
PROPOSAL_PREFIX = "scope_"
PROPOSAL_STATUSES = ("pending", "approved", "rejected", "expired")


class Stoppable(Protocol):
    """What the kill switch needs from browser operations."""

    def stop_all(self, reason: str, message: str) -> int:
        """Stop every running operation at its next step boundary; return how many."""
        ...


def _text(value: Any, field: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(what, details={"field": field})
    return value.strip()


def readiness_dict(report: ReadinessReport) -> dict[str, Any]:
    """Return a readiness report as JSON."""
    return {
        "score": report.score,
        "max_score": report.max_score,
        "threshold": report.threshold,
        "ready": report.ready,
        "checklists": [
            {
                "checklist": str(c.checklist),
                "score": c.score,
                "max_score": c.max_score,
                "items": [
                    {
                        "id": r.item.id,
                        "name": r.item.name,
                        "weight": r.item.weight,
                        "required": r.item.required,
                        "kind": str(r.item.kind),
                        "met": r.met,
                        "why": r.why,
                    }
                    for r in c.items
                ],
            }
            for c in report.checklists
        ],
        "blockers": list(report.blockers),
        "recommendations": [
            {"item": r.item_id, "priority": r.priority, "text": r.text}
            for r in report.recommendations
        ],
    }


def readiness_summary(report: ReadinessReport) -> dict[str, Any]:
    """Return the headline of a readiness report (a proposal's evidence)."""
    return {
        "score": report.score,
        "max_score": report.max_score,
        "ready": report.ready,
        "blockers": list(report.blockers),
    }


class GovernanceService:
    """Levels, kill switch, readiness, attestations and scope-expansion proposals."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        autonomy: AutonomyState,
        breakers: BreakerService,
        metrics: MetricsCollector,
        notifier: Notifier,
        *,
        operations: Stoppable | None = None,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.autonomy = autonomy
        self.breakers = breakers
        self.metrics = metrics
        self.notifier = notifier
        self.operations = operations
        self.on_change = on_change
        self.clock = clock

    # -- level --------------------------------------------------------------------------------

    async def level(self) -> dict[str, Any]:
        """Return the global level, where it comes from, and each tenant's."""
        state = await self.autonomy.load()
        settings = self.settings()
        tenants = {
            name: (
                str(state.level.stricter(AutonomyLevel(t.autonomy.level)))
                if t.autonomy.level is not None
                else str(state.level)
            )
            for name, t in settings.tenants.items()
        }
        pending = await gov_sql.pending_proposal(self.store.read_all)
        return {
            **state.to_dict(),
            "tenants": tenants,
            "breakers_tripped": self.breakers.tripped_keys(),
            "pending_expansion": pending.to_dict(evidence=False) if pending else None,
        }

    async def set_level(self, level: Any, actor: str, reason: Any) -> dict[str, Any]:
        """Lower the level at once, or propose raising it (two approvals needed).

        :raises InvalidArgument: unknown level or no reason.
        :raises Conflict: raising while another proposal waits.
        """
        target = parse_level(level)
        why = _text(reason, "reason", "say why the level changes (--reason)")
        now = self.clock()
        current = (await self.autonomy.load()).level
        if target.rank > current.rank:
            evidence = {"readiness": readiness_summary(await self.assess(now))}
            proposal = await self.propose(
                now,
                source="operator",
                requested_by=actor,
                current=current,
                target=target,
                action_types=(),
                rationale=why,
                evidence=evidence,
                report=None,
            )
            return {
                "changed": False,
                "level": str(current),
                "proposal": proposal.to_dict(evidence=False),
                "message": f"raising {current} to {target} needs "
                f"{proposal.required_approvals} approvals from distinct users: agentctl "
                f"governance approve {proposal.id}",
            }
        async with self.store.write(now) as tx:
            state = await self.autonomy.in_tx(tx)
            if target == state.level:
                return {
                    "changed": False,
                    "level": str(state.level),
                    "message": f"the level is already {state.level}",
                }
            if target.rank > state.level.rank:
                raise Conflict(
                    "the level changed meanwhile; run the command again",
                    details={"field": "level"},
                )
            await self.autonomy.set_level_in_tx(
                tx, target, previous=state.level, actor=actor, reason=why, source="operator"
            )
        state = await self.autonomy.load()
        self.on_change()
        logger.warning("autonomy level lowered to {} by {}: {}", target, actor, why)
        return {
            "changed": True,
            "level": str(state.level),
            "previous": str(current),
            "message": f"level lowered from {current} to {target}",
        }

    # -- kill switch --------------------------------------------------------------------------

    async def kill_switch(self, on: bool, actor: str, reason: Any) -> dict[str, Any]:
        """Turn the kill switch on (stop all auto-execution, stop running operations) or off.

        :raises InvalidArgument: no reason.
        """
        why = _text(reason, "reason", "say why (--reason)")
        now = self.clock()
        async with self.store.write(now) as tx:
            state = await self.autonomy.in_tx(tx)
            changed = state.kill_switch != on
            if changed:
                await self.autonomy.set_kill_switch_in_tx(
                    tx, on, actor=actor, reason=why, tested=not on
                )
                tx.audit(
                    AuditEvent(
                        AuditEventType.KILL_SWITCH_CHANGED,
                        actor,
                        "autonomy.kill_switch",
                        {"on": on, "reason": why},
                    )
                )
        stopped = 0
        if on and self.operations is not None:
            # Even when it was already on: an operation started by hand since is stopped too.
            stopped = self.operations.stop_all(
                "kill_switch", f"kill switch turned on by {actor}: {why}"
            )
        state = await self.autonomy.load()
        if changed:
            self.on_change()
            logger.warning("kill switch turned {} by {}: {}", "on" if on else "off", actor, why)
            await self._notify(
                Severity.HIGH if on else Severity.INFO,
                NotificationKind.KILL_SWITCH,
                f"Kill switch turned {'on' if on else 'off'} by {actor}",
                why,
            )
        configured = self.settings().autonomy.kill_switch
        message = (
            f"kill switch {'on' if on else 'off'}"
            if changed
            else f"the kill switch was already {'on' if on else 'off'}"
        )
        if not on and configured:
            message += "; but autonomy.kill_switch in the configuration is still on"
        return {
            "kill_switch": state.kill_switch,
            "changed": changed,
            "operations_stopped": stopped,
            "configured_kill_switch": configured,
            "message": message,
        }

    async def _notify(
        self, severity: Severity, kind: NotificationKind, title: str, body: str
    ) -> None:
        try:
            await self.notifier.send(
                Notification.create(severity=severity, kind=kind, title=title, body=body)
            )
        except Exception as exc:
            logger.error("could not notify {!r}: {}", title, exc)

    # -- readiness and attestations -------------------------------------------------------------

    async def facts(self, now: datetime) -> ReadinessFacts:
        """Measure the measured readiness items."""
        settings = self.settings()
        cfg = settings.governance.readiness
        start = now - timedelta(days=cfg.period_days)
        read = self.store.read_all
        rates = compute_rates(await self.metrics.counts(start, now))
        state = await self.autonomy.load()
        rules = [r for r in self.breakers.rules if r.enabled]
        enforcing = (
            0
            if settings.breakers.alert_only
            else sum(1 for r in rules if r.action == "revert_to_l3" and not r.alerts_only)
        )
        rollback = await gov_sql.last_rollback_at(read)
        since = state.level_since or now
        return ReadinessFacts(
            days_at_l3=max((now - since).total_seconds() / 86400, 0.0),
            success_rate=rates.success_rate,
            approval_rate=rates.approval_rate,
            rollback_rate=rates.rollback_rate,
            critical_incidents=await gov_sql.critical_autonomous_incidents(read, start, now),
            breaker_rules_enabled=len(rules),
            breaker_rules_enforcing=enforcing,
            kill_switch_tested_at=state.kill_switch_tested_at,
            metrics_written_at=self.metrics.written_at(),
            rollback_succeeded_at=datetime.fromisoformat(rollback) if rollback else None,
            audit_verified_at=state.audit_verified_at,
            audit_chain_intact=state.audit_intact,
        )

    async def attestations(self) -> list[Attestation]:
        """Return every stored attestation."""
        return [
            Attestation(
                a.item,
                a.by_name,
                a.evidence,
                datetime.fromisoformat(a.at),
                datetime.fromisoformat(a.expires_at),
            )
            for a in await gov_sql.list_attestations(self.store.read_all)
        ]

    async def assess(self, now: datetime) -> ReadinessReport:
        """Score readiness now."""
        policy = self.settings().governance.readiness.policy()
        return assess(await self.facts(now), await self.attestations(), now, policy)

    async def readiness(self) -> dict[str, Any]:
        """Return the readiness report with the level it is assessed at."""
        now = self.clock()
        report = await self.assess(now)
        state = self.autonomy.snapshot
        return {
            "assessed_at": now.isoformat(),
            "level": str(state.level),
            "period_days": self.settings().governance.readiness.period_days,
            **readiness_dict(report),
        }

    async def attest(self, item: Any, by: Any, evidence: Any, actor: str) -> dict[str, Any]:
        """Record an attestation for an attested readiness item.

        :raises InvalidArgument: unknown or measured item, no ``by`` or ``evidence``.
        """
        now = self.clock()
        ttl = timedelta(days=self.settings().governance.attestation_ttl_days)
        name = item.strip() if isinstance(item, str) else ""
        if name not in ATTESTABLE_IDS:
            known = ", ".join(sorted(ATTESTABLE_IDS))
            what = "is measured by the daemon" if name else "is missing"
            try:
                validate_attestation(name, "x", "x", now)
            except InvalidArgument as exc:
                what = exc.message
            raise InvalidArgument(
                f"{what}; attestable items: {known}",
                details={"field": "item", "known": sorted(ATTESTABLE_IDS)},
            )
        attestation = validate_attestation(
            name,
            by if isinstance(by, str) else "",
            evidence if isinstance(evidence, str) else "",
            now,
            now + ttl,
        )
        expires = attestation.expires_at or now + ttl
        row = {
            "id": f"att_{token.token_hex(6)}",
            "item": attestation.item_id,
            "by_name": attestation.by,
            "evidence": attestation.evidence,
            "recorded_by": actor,
            "at": iso(now),
            "expires_at": iso(expires),
        }
        async with self.store.write(now) as tx:
            await gov_sql.insert_attestation(tx, row)
            tx.audit(
                AuditEvent(
                    GovernanceEvent.ATTESTATION_RECORDED,
                    actor,
                    row["id"],
                    {k: row[k] for k in ("item", "by_name", "evidence", "expires_at")},
                )
            )
        return gov_sql.AttestationRow(**row).to_dict()

    async def list_attestations(self) -> list[dict[str, Any]]:
        """Return attestations, newest first, each saying whether it still counts."""
        now = self.clock()
        out = []
        for row in await gov_sql.list_attestations(self.store.read_all):
            item = row.to_dict()
            item["valid"] = (
                datetime.fromisoformat(row.at) <= now < datetime.fromisoformat(row.expires_at)
            )
            out.append(item)
        return out

    # -- scope-expansion proposals ----------------------------------------------------------------

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
    ) -> gov_sql.ProposalRow:
        """Create a scope-expansion proposal waiting for approvals.

        :raises Conflict: another proposal is waiting.
        """
        cfg = self.settings().governance
        proposal_id = f"{PROPOSAL_PREFIX}{token.token_hex(8)}"
        async with self.store.write(now) as tx:
            await self._expire_in_tx(tx, now)
            waiting = await gov_sql.pending_proposal(tx.fetchall)
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
            await gov_sql.insert_proposal(tx, values)
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
        row = await gov_sql.get_proposal(self.store.read_all, proposal_id)
        assert row is not None
        await self._notify(
            Severity.INFO,
            NotificationKind.GOVERNANCE,
            f"Scope expansion {proposal_id} waits for {row.required_approvals} approvals",
            f"{current} -> {target}; allowlist additions: {', '.join(action_types) or 'none'}. "
            f"{rationale}",
        )
        return row

    async def _get(self, proposal_id: Any) -> gov_sql.ProposalRow:
        if not isinstance(proposal_id, str) or not proposal_id.strip():
            raise InvalidArgument("name the scope expansion (its id)", details={"field": "id"})
        row = await gov_sql.get_proposal(self.store.read_all, proposal_id.strip())
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
        rows = await gov_sql.list_proposals(self.store.read_all, status)
        return [r.to_dict(evidence=False) for r in rows]

    def _check_pending(self, row: gov_sql.ProposalRow) -> None:
        if row.status != "pending":
            by = f" by {row.decided_by}" if row.decided_by else ""
            raise InvalidState(
                f"scope expansion {row.id} is {row.status}{by}; nothing to decide",
                details={"proposal": row.id, "status": row.status},
            )

    async def _expire_in_tx(self, tx: Transaction, now: datetime) -> list[str]:
        row = await gov_sql.pending_proposal(tx.fetchall)
        if row is None or datetime.fromisoformat(row.expires_at) > now:
            return []
        await gov_sql.update_proposal(
            tx,
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
                row = await gov_sql.get_proposal(tx.fetchall, row.id) or row
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
                    await gov_sql.update_proposal(tx, row.id, changes)
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

    async def _apply_in_tx(
        self, tx: Transaction, row: gov_sql.ProposalRow, actor: str
    ) -> dict[str, Any]:
        state = await self.autonomy.in_tx(tx)
        if state.kill_switch:
            raise InvalidState(
                "the kill switch is on; turn it off before widening autonomy "
                "(the approval was not recorded)",
                details={"proposal": row.id},
            )
        reverting = [
            t.key
            for t in await gov_sql.open_trips(tx.fetchall)
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
            row = await gov_sql.get_proposal(tx.fetchall, row.id) or row
            self._check_pending(row)
            await gov_sql.update_proposal(
                tx,
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

    # -- audit verification -----------------------------------------------------------------------

    async def verify_audit(self, actor: str = ACTOR) -> dict[str, Any]:
        """Verify the audit chain and remember the outcome (a readiness item)."""
        verdict = await self.store.verify_audit()
        now = self.clock()
        await self.autonomy.record_audit_verified(verdict.intact, now)
        return {
            "intact": verdict.intact,
            "count": verdict.count,
            "first_broken_seq": verdict.first_broken_seq,
            "problem": verdict.problem,
        }
