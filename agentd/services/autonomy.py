"""The global autonomy state: level, kill switch, paused action types, allowlist additions.

It lives in the store's ``meta`` table: ``autonomy.level`` (``L3`` … ``L4+``,
absent: the configured level), ``autonomy.kill_switch`` (``"1"`` on),
``breakers.paused_action_types`` (a JSON list), and governance's own facts
next to them under ``governance.*``. :func:`snapshot_from` is the one parser
of those rows into the one model, :class:`AutonomySnapshot`: the gate reads
it on every batch of decisions, the execution engine before every change
(:func:`read_global_state`), governance and the breakers through
:class:`AutonomyState`. Writers change it inside their transaction (with the
audit record), then :meth:`AutonomyState.load` refreshes the snapshot that
the status line and the policy overlay read.

The configured ``autonomy.level`` is where a fresh install starts; once
governance has set a level (a breaker lowered it, two approvers raised it),
that level is the daemon-wide one. The gate combines it with each tenant's
configured level by taking the stricter, so :meth:`AutonomyState.overlay`
gives the tenants that inherit the default level the governance level, and
adds approved allowlist additions to the tenants that inherit the default
allowlist; a tenant with its own level or allowlist keeps it as a ceiling.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from agentd.config import Settings
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.policy import AutonomyLevel, GatePolicy
from agentd.core.timefmt import iso
from agentd.store.api import GovernanceReads
from agentd.store.base import Store, Transaction

LEVEL = "autonomy.level"
KILL_SWITCH = "autonomy.kill_switch"
PAUSED = "breakers.paused_action_types"
LEVEL_SINCE = "governance.level_since"
KILL_SWITCH_CHANGED = "governance.kill_switch_changed"
KILL_SWITCH_TESTED = "governance.kill_switch_tested_at"
ALLOWLIST_ADDED = "governance.allowlist_additions"
AUDIT_VERIFIED = "governance.audit_verified"
REPLAY_AFTER = "breakers.replay_after"
KEYS = (
    LEVEL,
    KILL_SWITCH,
    PAUSED,
    LEVEL_SINCE,
    KILL_SWITCH_CHANGED,
    KILL_SWITCH_TESTED,
    ALLOWLIST_ADDED,
    AUDIT_VERIFIED,
    REPLAY_AFTER,
)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class AutonomySnapshot:
    """The global autonomy state as last committed.

    ``configured_level`` is the configuration's ``autonomy.level`` (the store
    does not hold it): :class:`AutonomyState` fills it in. The gate, which
    applies each tenant's configured level, reads ``level_override`` instead.
    """

    configured_level: AutonomyLevel = AutonomyLevel.L3
    level_override: AutonomyLevel | None = None
    level_since: datetime | None = None
    kill_switch: bool = False
    kill_switch_changed: dict[str, Any] = field(default_factory=dict)
    kill_switch_tested_at: datetime | None = None
    paused: tuple[str, ...] = ()
    allowlist_additions: tuple[str, ...] = ()
    audit_verified_at: datetime | None = None
    audit_intact: bool = True
    replay_after: datetime | None = None

    @property
    def level(self) -> AutonomyLevel:
        """Return the daemon-wide level: governance's when set, else the configured one."""
        return self.level_override or self.configured_level

    @property
    def level_source(self) -> str:
        """Return where the level comes from (``governance`` or ``config``)."""
        return "governance" if self.level_override is not None else "config"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form ``agentctl level`` shows."""
        return {
            "level": str(self.level),
            "source": self.level_source,
            "configured_level": str(self.configured_level),
            "level_since": self.level_since.isoformat() if self.level_since else None,
            "kill_switch": self.kill_switch,
            "kill_switch_changed": self.kill_switch_changed or None,
            "kill_switch_tested_at": (
                self.kill_switch_tested_at.isoformat() if self.kill_switch_tested_at else None
            ),
            "paused_action_types": list(self.paused),
            "allowlist_additions": list(self.allowlist_additions),
        }


def snapshot_from(
    values: Mapping[str, str], configured: AutonomyLevel = AutonomyLevel.L3
) -> AutonomySnapshot:
    """Build a snapshot from the meta values of :data:`KEYS` that are set (missing: defaults)."""
    since = json.loads(values[LEVEL_SINCE]) if LEVEL_SINCE in values else {}
    audit = json.loads(values[AUDIT_VERIFIED]) if AUDIT_VERIFIED in values else {}
    level = values.get(LEVEL)
    return AutonomySnapshot(
        configured_level=configured,
        level_override=AutonomyLevel(level) if level else None,
        level_since=_time(since.get("since")),
        kill_switch=values.get(KILL_SWITCH) == "1",
        kill_switch_changed=json.loads(values.get(KILL_SWITCH_CHANGED, "{}")),
        kill_switch_tested_at=_time(values.get(KILL_SWITCH_TESTED)),
        paused=tuple(sorted(json.loads(values.get(PAUSED, "[]")))),
        allowlist_additions=tuple(sorted(json.loads(values.get(ALLOWLIST_ADDED, "[]")))),
        audit_verified_at=_time(audit.get("at")),
        audit_intact=bool(audit.get("intact", True)),
        replay_after=_time(values.get(REPLAY_AFTER)),
    )


async def read_global_state(
    gov: GovernanceReads,
    configured: AutonomyLevel = AutonomyLevel.L3,
) -> AutonomySnapshot:
    """Read the state through ``gov`` (the store's committed reads, or a transaction's)."""
    return snapshot_from(await gov.read_meta(KEYS), configured)


class AutonomyState:
    """Read, change and cache the global autonomy state."""

    def __init__(self, store: Store, settings: Callable[[], Settings]) -> None:
        self.store = store
        self.settings = settings
        self._snapshot = AutonomySnapshot(configured_level=AutonomyLevel(settings().autonomy.level))
        # A kill switch turned on but not (yet) saved, e.g. on a full disk:
        # ``{"at", "by", "reason", "error"}``. It is on all the same: the
        # snapshot and the gate's policy say so until it is saved.
        self.unsaved_kill_switch: dict[str, Any] | None = None

    @property
    def snapshot(self) -> AutonomySnapshot:
        """Return the state as last loaded, with a kill switch held in memory (no I/O)."""
        return self._effective(self._snapshot)

    def _effective(self, state: AutonomySnapshot) -> AutonomySnapshot:
        held = self.unsaved_kill_switch
        if held is None or state.kill_switch:
            return state
        return replace(
            state,
            kill_switch=True,
            kill_switch_changed={k: held[k] for k in ("at", "by", "reason")} | {"on": True},
        )

    def _configured(self) -> AutonomyLevel:
        return AutonomyLevel(self.settings().autonomy.level)

    async def load(self) -> AutonomySnapshot:
        """Re-read the state from the store and return it."""
        self._snapshot = await read_global_state(self.store.gov, self._configured())
        return self.snapshot

    async def in_tx(self, tx: Transaction) -> AutonomySnapshot:
        """Return the state as ``tx`` sees it."""
        return await read_global_state(tx.gov, self._configured())

    async def start(self, now: datetime) -> AutonomySnapshot:
        """Load the state; start the clock of the current level if it has none.

        A store that never recorded a level start counts from its first audit
        record (the day the daemon was installed); a level changed in the
        configuration since counts from now.
        """
        async with self.store.write(now) as tx:
            state = await self.in_tx(tx)
            since = json.loads((await tx.gov.read_meta((LEVEL_SINCE,))).get(LEVEL_SINCE, "{}"))
            if since.get("level") != str(state.level):
                first = await tx.gov.first_audit_at()
                begun = first if not since and first else iso(now)
                await tx.gov.set_meta(
                    LEVEL_SINCE, json.dumps({"level": str(state.level), "since": begun})
                )
        return await self.load()

    # -- changes inside a caller's transaction ------------------------------------------------

    async def set_level_in_tx(
        self,
        tx: Transaction,
        level: AutonomyLevel,
        *,
        previous: AutonomyLevel,
        actor: str,
        reason: str,
        source: str,
        ref: str | None = None,
    ) -> None:
        """Set the global level, restart its clock and audit ``LEVEL_CHANGED``."""
        await tx.gov.set_meta(LEVEL, str(level))
        await tx.gov.set_meta(LEVEL_SINCE, json.dumps({"level": str(level), "since": iso(tx.now)}))
        data = {"from": str(previous), "to": str(level), "reason": reason, "source": source}
        if ref:
            data["ref"] = ref
        tx.audit(AuditEvent(AuditEventType.LEVEL_CHANGED, actor, "autonomy.level", data))

    async def set_paused_in_tx(self, tx: Transaction, paused: set[str]) -> None:
        """Replace the set of action types paused by breakers."""
        await tx.gov.set_meta(PAUSED, json.dumps(sorted(paused)))

    async def set_kill_switch_in_tx(
        self, tx: Transaction, on: bool, *, actor: str, reason: str, tested: bool
    ) -> None:
        """Turn the kill switch on or off (``tested``: an on-off cycle completed)."""
        await tx.gov.set_meta(KILL_SWITCH, "1" if on else "0")
        changed = {"on": on, "at": iso(tx.now), "by": actor, "reason": reason}
        await tx.gov.set_meta(KILL_SWITCH_CHANGED, json.dumps(changed))
        if tested:
            await tx.gov.set_meta(KILL_SWITCH_TESTED, iso(tx.now))

    async def add_allowlist_in_tx(self, tx: Transaction, names: set[str]) -> None:
        """Add action types to the governance allowlist additions."""
        current = set((await self.in_tx(tx)).allowlist_additions)
        await tx.gov.set_meta(ALLOWLIST_ADDED, json.dumps(sorted(current | names)))

    async def record_audit_verified(self, intact: bool, now: datetime) -> None:
        """Remember when the audit chain was last verified and whether it held."""
        async with self.store.write(now) as tx:
            await tx.gov.set_meta(AUDIT_VERIFIED, json.dumps({"at": iso(now), "intact": intact}))
        await self.load()

    # -- the gate's policy --------------------------------------------------------------------

    def overlay(self, policy: GatePolicy, settings: Settings) -> GatePolicy:
        """Return ``policy`` with the governance level and allowlist additions applied.

        Idempotent: it only replaces levels and unions allowlists, so applying
        it to an already overlaid policy changes nothing.
        """
        state = self._snapshot
        added = frozenset(state.allowlist_additions)
        held = self.unsaved_kill_switch is not None
        if state.level_override is None and not added and not held:
            return policy

        def adjust(autonomy: Any, own_level: bool, own_allowlist: bool) -> Any:
            changes: dict[str, Any] = {}
            if held:
                # Not saved where the gate and the engine read the switch: their
                # policy carries it instead (a tenant's switch stops it all the same).
                changes["kill_switch"] = True
            if state.level_override is not None and not own_level:
                changes["level"] = state.level_override
            if added and not own_allowlist:
                changes["allowlist"] = autonomy.allowlist | (added - policy.guardrails.hard_stop)
            return replace(autonomy, **changes) if changes else autonomy

        tenants = {
            name: adjust(
                autonomy,
                own_level=name in settings.tenants
                and settings.tenants[name].autonomy.level is not None,
                own_allowlist=name in settings.tenants
                and settings.tenants[name].autonomy.allowlist is not None,
            )
            for name, autonomy in policy.tenant_autonomy.items()
        }
        return replace(
            policy,
            autonomy=adjust(policy.autonomy, own_level=False, own_allowlist=False),
            tenant_autonomy=MappingProxyType(tenants),
        )


def utcnow() -> datetime:
    """Return the current time (UTC)."""
    return datetime.now(UTC)
