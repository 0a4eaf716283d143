"""Circuit breakers as a service: watch outcomes as they are published, trip, act, remember.

Events come from the app's :class:`~agentd.services.incidents.EventHub` (the
execution engine publishes each execution's and rollback's outcome, the
incident service each incident) and go through the pure
:class:`~agentd.core.breakers.BreakerMonitor`. A scheduled task also advances
the clock, since old successes leaving a window can raise a rate.

A trip is one transaction: the trip row (tripped state survives restarts),
its action — ``revert_to_l3`` sets the global level to L3,
``pause_command_type`` pauses the action type in the gate — unless the rule
or ``breakers.alert_only`` says to only alert, an incident, and the
``BREAKER_TRIPPED`` audit record (which the daily digest lists). Then the
emergency contact is notified and the status line is refreshed.

A reset (``agentctl breaker reset``) clears the trip and lifts the pause it
set; a level it lowered stays lowered — raising it takes the approval path.
On start-up the windows are rebuilt from the outcomes stored in the last
window (after the latest reset), so a restart forgets nothing.
"""

from __future__ import annotations

import secrets as token
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from loguru import logger

from agentd.config import Settings
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.breakers import (
    BreakerAction,
    BreakerEvent,
    BreakerEventKind,
    BreakerMonitor,
    BreakerRule,
    Trip,
    format_window,
)
from agentd.core.policy import AutonomyLevel
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
from agentd.services.autonomy import REPLAY_AFTER, AutonomyState
from agentd.services.incidents import IncidentService
from agentd.store.base import Store
from agentd.store.records import TripRow

ACTOR = "agentd"
_OUTCOME_KINDS = {
    "succeeded": BreakerEventKind.EXECUTION_SUCCEEDED,
    "failed": BreakerEventKind.EXECUTION_FAILED,
    "rolled_back": BreakerEventKind.EXECUTION_ROLLED_BACK,
}


def rule_dict(rule: BreakerRule) -> dict[str, Any]:
    """Return a rule as ``agentctl breaker status`` shows it."""
    return {
        "name": rule.name,
        "metric": str(rule.metric),
        "threshold": rule.threshold,
        "window": format_window(rule.window),
        "action": str(rule.action),
        "severity": str(rule.severity),
        "min_events": rule.min_events,
        "alert_only": rule.alert_only,
        "enabled": rule.enabled,
    }


class BreakerService:
    """Evaluate the configured breaker rules and carry out their trips."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        autonomy: AutonomyState,
        incidents: IncidentService,
        notifier: Notifier,
        *,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.autonomy = autonomy
        self.incidents = incidents
        self.notifier = notifier
        self.on_change = on_change
        self.clock = clock
        self._rules: tuple[BreakerRule, ...] = settings().breakers.parsed_rules()
        self._monitor = BreakerMonitor(self._rules)
        self._tripped: dict[str, TripRow] = {}
        self._lock = anyio.Lock()

    @property
    def rules(self) -> tuple[BreakerRule, ...]:
        """Return the rules being watched (as configured now)."""
        return self._current_rules()

    def tripped_keys(self) -> list[str]:
        """Return the keys of tripped breakers (no I/O)."""
        return sorted(self._tripped)

    def _current_rules(self) -> tuple[BreakerRule, ...]:
        rules = self.settings().breakers.parsed_rules()
        if rules != self._rules:
            # A reload changed the rules: their windows start afresh, trips stay.
            self._rules = rules
            self._monitor = BreakerMonitor(rules, tripped=self._tripped)
        return rules

    # -- start-up -----------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Load tripped breakers and rebuild the windows from the store; return new trip keys."""
        self._tripped = {t.key: t for t in await self.store.gov.open_trips()}
        self._rules = self.settings().breakers.parsed_rules()
        self._monitor = BreakerMonitor(self._rules, tripped=self._tripped)
        now = self.clock()
        if not self._rules:
            return []
        since = now - max(r.window for r in self._rules)
        after = self.autonomy.snapshot.replay_after
        if after is not None and after > since:
            since = after  # the operator dealt with everything before the last reset
        events = [
            BreakerEvent(
                datetime.fromisoformat(at),
                _OUTCOME_KINDS[kind],
                action_type=action,
                autonomous=autonomous,
            )
            for at, kind, action, autonomous in await self.store.gov.recent_outcomes(since)
        ] + [
            BreakerEvent(
                datetime.fromisoformat(at),
                BreakerEventKind.INCIDENT,
                severity=severity,
                autonomous=autonomous,
            )
            for at, severity, autonomous in await self.store.gov.recent_incidents(since)
        ]
        trips: list[Trip] = []
        for event in sorted(events, key=lambda e: e.at):
            trips += self._monitor.observe(event)
        trips += self._monitor.evaluate(now)
        for trip in trips:
            await self._carry_out(trip)
        return [t.key for t in trips]

    # -- events -------------------------------------------------------------------------------

    async def on_event(self, event: BreakerEvent) -> None:
        """Take one published outcome; carry out any trip it causes (the hub's listener)."""
        if not self._current_rules():
            return
        for trip in self._monitor.observe(event):
            await self._carry_out(trip)

    async def tick(self) -> str:
        """Advance the windows to now (the scheduled task); return a one-line result."""
        if not self._current_rules():
            return "breakers disabled"
        trips = self._monitor.evaluate(self.clock())
        for trip in trips:
            await self._carry_out(trip)
        tripped = self.tripped_keys()
        return f"{len(trips)} new trip(s); tripped: {', '.join(tripped) or 'none'}"

    # -- tripping -----------------------------------------------------------------------------

    async def _carry_out(self, trip: Trip) -> None:
        try:
            async with self._lock:
                await self._record(trip)
        except Exception as exc:
            # Let the rule trip again on the next event rather than stay silently tripped.
            logger.opt(exception=exc).error("breaker {} tripped but was not recorded", trip.key)
            self._monitor.reset(trip.key)
            return
        self.on_change()
        await self._notify(trip)

    async def _record(self, trip: Trip) -> None:
        alert_only = trip.alert_only or self.settings().breakers.alert_only
        trip_id = f"trp_{token.token_hex(6)}"
        effects: list[str] = []
        async with self.store.write(self.clock()) as tx:
            state = await self.autonomy.in_tx(tx)
            reason = f"breaker {trip.key} tripped: {trip.message}"
            if not alert_only and trip.action is BreakerAction.REVERT_TO_L3:
                if state.level is not AutonomyLevel.L3:
                    await self.autonomy.set_level_in_tx(
                        tx,
                        AutonomyLevel.L3,
                        previous=state.level,
                        actor=ACTOR,
                        reason=reason,
                        source="breaker",
                        ref=trip_id,
                    )
                    effects.append(f"level {state.level} -> L3")
                elif state.level_override is None:
                    # Pin L3 so a configuration change cannot raise it behind the breaker's back.
                    await self.autonomy.set_level_in_tx(
                        tx,
                        AutonomyLevel.L3,
                        previous=state.level,
                        actor=ACTOR,
                        reason=reason,
                        source="breaker",
                        ref=trip_id,
                    )
                    effects.append("level pinned at L3")
            if (
                not alert_only
                and trip.action is BreakerAction.PAUSE_COMMAND_TYPE
                and trip.action_type
                and trip.action_type not in state.paused
            ):
                await self.autonomy.set_paused_in_tx(tx, {*state.paused, trip.action_type})
                effects.append(f"paused {trip.action_type}")
            incident_id = await self.incidents.open_in_tx(
                tx,
                severity=str(trip.severity),
                kind="breaker_tripped",
                title=f"Circuit breaker {trip.key} tripped",
                detail=trip.message + (" (alert only: nothing changed)" if alert_only else ""),
                ref=trip.key,
                # Tripped by autonomous actions' failures: the incident is theirs.
                autonomous=trip.autonomous,
            )
            values = {
                "id": trip_id,
                "key": trip.key,
                "rule": trip.rule.name,
                "action_type": trip.action_type,
                "action": str(trip.action),
                "severity": str(trip.severity),
                "alert_only": alert_only,
                "value": float(trip.value),
                "threshold": float(trip.threshold),
                "message": trip.message,
                "effects": effects,
                "incident_id": incident_id,
                "tripped_at": iso(trip.at),
            }
            await tx.gov.insert_trip(values)
            tx.audit(
                AuditEvent(
                    AuditEventType.BREAKER_TRIPPED,
                    ACTOR,
                    trip.key,
                    {
                        "rule": trip.key,
                        "action": str(trip.action),
                        "severity": str(trip.severity),
                        "detail": trip.message,
                        "alert_only": alert_only,
                        "value": trip.value,
                        "threshold": trip.threshold,
                        "action_type": trip.action_type,
                        "effects": effects,
                        "incident": incident_id,
                        "trip": trip_id,
                    },
                )
            )
        rows = await self.store.gov.open_trips()
        self._tripped = {t.key: t for t in rows}
        await self.autonomy.load()
        logger.warning("circuit breaker {} tripped: {} ({})", trip.key, trip.message, effects)

    async def _notify(self, trip: Trip) -> None:
        row = self._tripped.get(trip.key)
        if row is None:
            return
        effects = "; ".join(row.effects) or "alert only: nothing changed"
        note = Notification.create(
            severity=Severity(str(trip.severity)),
            kind=NotificationKind.BREAKER,
            title=f"Circuit breaker {trip.key} tripped",
            body=f"{trip.message}. {effects}. Reset with: agentctl breaker reset {trip.key} "
            "--reason TEXT",
            refs={k: v for k, v in (("breaker", trip.key), ("incident", row.incident_id)) if v},
        )
        delivered: list[str] = []
        try:
            if isinstance(self.notifier, FanoutNotifier):
                delivered = [n for n, err in await self.notifier.deliver(note) if err is None]
            else:
                await self.notifier.send(note)
                delivered = [notifier_name(self.notifier)]
        except Exception as exc:
            logger.error("breaker trip {} could not be notified: {}", trip.key, exc)
        if row.incident_id:
            async with self.store.write(self.clock()) as tx:
                await tx.execution.update_incident(row.incident_id, {"notified": delivered})

    # -- reset and status ---------------------------------------------------------------------

    async def reset(self, key: Any, actor: str, reason: Any) -> dict[str, Any]:
        """Reset a tripped breaker (a rule name resets all its action types).

        :raises InvalidArgument: no reason.
        :raises NotFound: no rule of that name.
        :raises InvalidState: the breaker is not tripped.
        """
        if not isinstance(key, str) or not key.strip():
            raise InvalidArgument("name the breaker to reset", details={"field": "name"})
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidArgument(
                "say why it is safe to reset (--reason)", details={"field": "reason"}
            )
        key, reason = key.strip(), reason.strip()
        rule, _, action_type = key.partition(":")
        known = {r.name for r in self._current_rules()}
        async with self._lock:
            rows = await self.store.gov.open_trips()
            matched = [t for t in rows if t.key == key or (not action_type and t.rule == rule)]
            if not matched:
                if rule not in known and not any(t.rule == rule for t in rows):
                    raise NotFound(
                        f"unknown breaker {key!r} (rules: {', '.join(sorted(known)) or 'none'})",
                        details={"breaker": key, "known": sorted(known)},
                    )
                raise InvalidState(
                    f"breaker {key} is not tripped; nothing to reset "
                    f"(tripped: {', '.join(t.key for t in rows) or 'none'})",
                    details={"breaker": key},
                )
            now = self.clock()
            unpaused: list[str] = []
            async with self.store.write(now) as tx:
                state = await self.autonomy.in_tx(tx)
                paused = set(state.paused)
                for trip in matched:
                    if trip.action == "pause_command_type" and trip.action_type in paused:
                        paused.discard(trip.action_type)
                        unpaused.append(trip.action_type)
                if unpaused:
                    await self.autonomy.set_paused_in_tx(tx, paused)
                await tx.gov.reset_trips([t.id for t in matched], now, actor, reason)
                await tx.gov.set_meta(REPLAY_AFTER, iso(now))
                for trip in matched:
                    tx.audit(
                        AuditEvent(
                            AuditEventType.BREAKER_RESET,
                            actor,
                            trip.key,
                            {
                                "rule": trip.key,
                                "detail": f"reset by {actor}: {reason}",
                                "reason": reason,
                                "trip": trip.id,
                                "unpaused": [trip.action_type]
                                if trip.action_type in unpaused
                                else [],
                            },
                        )
                    )
            for trip in matched:
                if trip.rule in known:
                    self._monitor.reset(trip.key)
            self._tripped = {t.key: t for t in await self.store.gov.open_trips()}
            state = await self.autonomy.load()
        self.on_change()
        return {
            "reset": [t.key for t in matched],
            "by": actor,
            "reason": reason,
            "unpaused": unpaused,
            "level": str(state.level),
            "note": (
                "the level stays "
                f"{state.level}; raising it needs approval (agentctl level set LEVEL --reason)"
            ),
        }

    async def status(self) -> dict[str, Any]:
        """Return rules, tripped breakers and recent trips."""
        rules = self._current_rules()
        state = self.autonomy.snapshot
        recent = await self.store.gov.recent_trips(20)
        return {
            "enabled": self.settings().breakers.enabled,
            "alert_only": self.settings().breakers.alert_only,
            "rules": [rule_dict(r) for r in rules],
            "tripped": [t.to_dict() for t in await self.store.gov.open_trips()],
            "paused_action_types": list(state.paused),
            "level": str(state.level),
            "recent": [t.to_dict() for t in recent],
        }
