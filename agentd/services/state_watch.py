"""The global state as every daemon sees it, where several share one store.

The kill switch, the level, the action types the breakers paused and the
allowlist additions live in the store (:mod:`agentd.services.autonomy`); the
gate and the execution engine read them from the store at each decision,
but each daemon also keeps a snapshot (the gate policy's overlay, ``status``)
and the kill switch stops the operations running on the daemon where it was
turned on. :class:`StateWatcher` brings the other daemons along: on
PostgreSQL each change is announced at its commit (``NOTIFY agentd_state``,
sent by the governance area's writes), and every daemon listens; a short poll
(``poll_s``) covers a lost listening connection. When the snapshot changed,
the daemon reloads it, applies it to its gate policy, and when the kill
switch came on, stops its own running operations.

The bound: a change reaches every daemon within ``poll_s`` (1 s) of its
commit, usually within milliseconds (the notification).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
from loguru import logger

from agentd.errors import AgentdError
from agentd.services.autonomy import AutonomySnapshot, AutonomyState

#: How long a change may take to reach a daemon whose notification was lost.
POLL_S = 1.0


class Listener(Protocol):
    """Waits for announced changes (:class:`agentd.store.postgres.ChangeListener`)."""

    async def wait(self, timeout_s: float) -> list[str]:
        """Return what was announced within ``timeout_s``."""
        ...

    async def close(self) -> None:
        """Stop listening."""
        ...


def _view(s: AutonomySnapshot) -> tuple[object, ...]:
    return (s.level, s.kill_switch, s.paused, s.allowlist_additions, s.replay_after)


class StateWatcher:
    """Keep this daemon's snapshot of the global state in step with the store."""

    def __init__(
        self,
        autonomy: AutonomyState,
        *,
        on_change: Callable[[], None],
        stop_all: Callable[[str, str], Awaitable[int] | int] | None = None,
        listener: Listener | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.autonomy = autonomy
        self.on_change = on_change
        self.stop_all = stop_all
        self.listener = listener
        self.poll_s = poll_s
        self.reloads = 0

    async def check(self) -> bool:
        """Reload the state; apply it when it changed. Return whether it did."""
        before = self.autonomy.snapshot
        after = await self.autonomy.load()
        if _view(after) == _view(before):
            return False
        self.reloads += 1
        self.on_change()
        if after.kill_switch and not before.kill_switch and self.stop_all is not None:
            changed = after.kill_switch_changed
            why = f"kill switch turned on by {changed.get('by', '?')}: {changed.get('reason', '')}"
            stopped = self.stop_all("kill_switch", why)
            if not isinstance(stopped, int):
                await stopped
        logger.warning(
            "global state changed by another daemon: level {}, kill switch {}",
            after.level,
            "on" if after.kill_switch else "off",
        )
        return True

    async def run(self) -> None:
        """Watch until cancelled."""
        try:
            while True:
                if self.listener is not None:
                    await self.listener.wait(self.poll_s)
                else:
                    await anyio.sleep(self.poll_s)
                try:
                    await self.check()
                except AgentdError as exc:
                    logger.error("global state could not be read: {}", exc.message)
        finally:
            if self.listener is not None:
                with anyio.CancelScope(shield=True):
                    await self.listener.close()
