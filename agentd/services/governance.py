"""Governance as a service: autonomy level, kill switch, readiness and attestations.

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

Scope-expansion proposals and their approvals are :mod:`agentd.services.scope`.
"""

from __future__ import annotations

import secrets as token
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from loguru import logger

from agentd.config import Settings
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.governance import GovernanceEvent, parse_level
from agentd.core.metrics import compute_rates
from agentd.core.policy import AutonomyLevel
from agentd.core.readiness import (
    ATTESTABLE_IDS,
    Attestation,
    ReadinessFacts,
    ReadinessReport,
    assess,
    validate_attestation,
)
from agentd.core.timefmt import iso
from agentd.errors import Conflict, InvalidArgument, StoreError
from agentd.notifiers import NotificationKind, Notifier, Severity
from agentd.services.autonomy import AutonomyState
from agentd.services.breakers import BreakerService
from agentd.services.metrics import MetricsCollector
from agentd.services.scope import ACTOR, ScopeExpansions, notify_quietly
from agentd.store.base import Store
from agentd.store.records import AttestationRow


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
    """Levels, kill switch, readiness and attestations."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        autonomy: AutonomyState,
        breakers: BreakerService,
        metrics: MetricsCollector,
        scope: ScopeExpansions,
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
        self.scope = scope
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
        pending = await self.store.gov.pending_proposal()
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
            proposal = await self.scope.propose(
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

        On takes effect before anything is written: the gate's policy carries
        it and running operations are told to stop; then it is saved. If the
        store refuses the write (a full disk), it stays on in memory, status
        says so, and it is saved as soon as the store accepts writes again
        (:meth:`save_held_kill_switch`). Off needs the store.

        :raises InvalidArgument: no reason.
        :raises StoreError: off could not be saved (the switch stays on).
        """
        why = _text(reason, "reason", "say why (--reason)")
        now = self.clock()
        stopped = 0
        if on:
            held_before = self.autonomy.unsaved_kill_switch
            if held_before is None:
                self.autonomy.unsaved_kill_switch = {
                    "at": iso(now),
                    "by": actor,
                    "reason": why,
                    "error": None,
                }
                self.on_change()
            if self.operations is not None:
                # Even when it was already on: an operation started by hand since is stopped too.
                stopped = self.operations.stop_all(
                    "kill_switch", f"kill switch turned on by {actor}: {why}"
                )
        else:
            # Save a switch held in memory first, so that its on-off cycle is on record.
            await self.save_held_kill_switch(raise_error=True)
        try:
            changed = await self._save_kill_switch(on, actor, why, now)
        except StoreError as exc:
            if not on:
                raise
            held = self.autonomy.unsaved_kill_switch
            assert held is not None
            first_failure = held["error"] is None
            held["error"] = exc.message
            if first_failure:
                logger.error(
                    "kill switch turned on by {} ({}), in memory only: it could not be saved: {}",
                    actor,
                    why,
                    exc.message,
                )
                await self._notify(
                    Severity.HIGH,
                    NotificationKind.KILL_SWITCH,
                    f"Kill switch turned on by {actor} (in memory: not yet saved)",
                    f"{why}\n\nThe store refused the write ({exc.message}). Auto-execution is "
                    f"stopped; the switch is saved as soon as the store accepts writes, and "
                    f"is lost if agentd restarts before then.",
                )
            return {
                "kill_switch": True,
                "changed": True,
                "saved": False,
                "operations_stopped": stopped,
                "configured_kill_switch": self.settings().autonomy.kill_switch,
                "message": f"kill switch on, in memory only: it could not be saved "
                f"({exc.message}); it is saved as soon as the store accepts writes",
            }
        if on:
            # Saved: the stored switch takes over from the one held in memory.
            changed = changed or held_before is None
            self.autonomy.unsaved_kill_switch = None
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
            "saved": True,
            "operations_stopped": stopped,
            "configured_kill_switch": configured,
            "message": message,
        }

    async def _save_kill_switch(self, on: bool, actor: str, why: str, now: datetime) -> bool:
        """Store the switch with its audit record; return whether it changed.

        :raises StoreError: the store refused the write.
        """
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
        return changed

    async def save_held_kill_switch(self, *, raise_error: bool = False) -> bool:
        """Save a kill switch held in memory (governance's monitor task calls this).

        Return True if one was saved.

        :raises StoreError: the store still refuses it (only with ``raise_error``).
        """
        held = self.autonomy.unsaved_kill_switch
        if held is None:
            return False
        try:
            await self._save_kill_switch(True, held["by"], held["reason"], self.clock())
        except StoreError as exc:
            held["error"] = exc.message
            if raise_error:
                raise StoreError(
                    f"the kill switch stays on: it is held in memory and the store still "
                    f"refuses writes ({exc.message})",
                    details={"kill_switch": True},
                ) from exc
            return False
        self.autonomy.unsaved_kill_switch = None
        await self.autonomy.load()
        self.on_change()
        logger.warning(
            "kill switch turned on by {} at {} is now saved ({})",
            held["by"],
            held["at"],
            held["reason"],
        )
        return True

    async def _notify(
        self, severity: Severity, kind: NotificationKind, title: str, body: str
    ) -> None:
        await notify_quietly(self.notifier, severity, kind, title, body)

    # -- readiness and attestations -------------------------------------------------------------

    async def facts(self, now: datetime) -> ReadinessFacts:
        """Measure the measured readiness items."""
        settings = self.settings()
        cfg = settings.governance.readiness
        start = now - timedelta(days=cfg.period_days)
        read = self.store
        rates = compute_rates(await self.metrics.counts(start, now))
        state = await self.autonomy.load()
        rules = [r for r in self.breakers.rules if r.enabled]
        enforcing = (
            0
            if settings.breakers.alert_only
            else sum(1 for r in rules if r.action == "revert_to_l3" and not r.alerts_only)
        )
        rollback = await read.gov.last_rollback_at()
        since = state.level_since or now
        return ReadinessFacts(
            days_at_l3=max((now - since).total_seconds() / 86400, 0.0),
            success_rate=rates.success_rate,
            approval_rate=rates.approval_rate,
            rollback_rate=rates.rollback_rate,
            critical_incidents=await read.gov.critical_autonomous_incidents(start, now),
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
            for a in await self.store.gov.list_attestations()
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
            await tx.gov.insert_attestation(row)
            tx.audit(
                AuditEvent(
                    GovernanceEvent.ATTESTATION_RECORDED,
                    actor,
                    row["id"],
                    {k: row[k] for k in ("item", "by_name", "evidence", "expires_at")},
                )
            )
        return AttestationRow(**row).to_dict()

    async def list_attestations(self) -> list[dict[str, Any]]:
        """Return attestations, newest first, each saying whether it still counts."""
        now = self.clock()
        out = []
        for row in await self.store.gov.list_attestations():
            item = row.to_dict()
            item["valid"] = (
                datetime.fromisoformat(row.at) <= now < datetime.fromisoformat(row.expires_at)
            )
            out.append(item)
        return out

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
