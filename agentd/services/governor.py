"""Governance's services in one place, as the daemon wires them.

:class:`Governance` holds the global autonomy state, the circuit breakers,
the metrics collector, the governance service and the weekly cycle; it gives
the daemon its scheduled tasks, the status summary and the start-up step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agentd.config import Settings
from agentd.core.governance import status_text
from agentd.notifiers import Notifier
from agentd.services.autonomy import AutonomyState
from agentd.services.breakers import BreakerService
from agentd.services.gov_cycle import GovernanceCycle
from agentd.services.governance import GovernanceService, Stoppable
from agentd.services.incidents import IncidentService
from agentd.services.metrics import MetricsCollector
from agentd.services.scheduler import TaskSpec
from agentd.services.scope import ScopeExpansions
from agentd.store.base import Store

#: Governance's scheduled tasks (intervals under [scheduler]).
TASK_NAMES = (
    "breaker_monitor",
    "metrics_textfile",
    "scope_expansion_expiry",
    "governance_cycle",
)


class Governance:
    """Autonomy state, breakers, metrics, levels, readiness, scope expansion, weekly cycle."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        *,
        incidents: IncidentService,
        notifier: Notifier,
        operations: Stoppable | None = None,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.autonomy = AutonomyState(store, settings)
        self.breakers = BreakerService(
            store,
            settings,
            self.autonomy,
            incidents,
            notifier,
            on_change=on_change,
            clock=clock,
        )
        self.metrics = MetricsCollector(
            store, settings, self.autonomy, self.breakers.tripped_keys, clock=clock
        )
        self.scope = ScopeExpansions(
            store, settings, self.autonomy, notifier, on_change=on_change, clock=clock
        )
        self.service = GovernanceService(
            store,
            settings,
            self.autonomy,
            self.breakers,
            self.metrics,
            self.scope,
            notifier,
            operations=operations,
            on_change=on_change,
            clock=clock,
        )
        self.cycle = GovernanceCycle(self.service, settings, clock=clock)
        self.clock = clock

    async def start(self) -> None:
        """Load the state and rebuild the breakers' windows (after the store opens)."""
        await self.autonomy.start(self.clock())
        await self.breakers.start()

    def task_specs(self) -> list[TaskSpec]:
        """Return the scheduled tasks of governance."""

        def every(name: str) -> Any:
            return lambda: self.settings().scheduler.interval(name)

        async def monitor() -> str:
            # A kill switch the store refused (a full disk) is saved once it can be.
            saved = await self.service.save_held_kill_switch()
            result = await self.breakers.tick()
            return f"held kill switch saved; {result}" if saved else result

        runs = {
            "breaker_monitor": monitor,
            "metrics_textfile": self.metrics.write_textfile,
            "scope_expansion_expiry": self.scope.expire_due,
            "governance_cycle": self.cycle.run,
        }
        return [TaskSpec(name, every(name), runs[name]) for name in TASK_NAMES]

    def status_text(self) -> str:
        """Return the governance part of systemd's status line (no I/O)."""
        state = self.autonomy.snapshot
        return status_text(str(state.level), state.kill_switch, self.breakers.tripped_keys())

    def summary(self) -> dict[str, Any]:
        """Return the governance block of ``agentctl status`` (no I/O)."""
        state = self.autonomy.snapshot
        return {
            "level": str(state.level),
            "kill_switch": state.kill_switch,
            "kill_switch_saved": self.autonomy.unsaved_kill_switch is None,
            "breakers_tripped": self.breakers.tripped_keys(),
            "paused_action_types": list(state.paused),
        }
