"""The kill switch and the level reach every daemon on one PostgreSQL within the bound.

Two stores on one database (two daemons): daemon A changes the global state
in a transaction (the governance area's writes announce it at commit); daemon
B's :class:`StateWatcher` hears it and applies it. With a 30 s poll the
change can only arrive by the notification; with no listener, by the poll
(the fallback), within ``poll_s``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import psycopg
import pytest

from agentd.config import Settings
from agentd.services.autonomy import KILL_SWITCH, KILL_SWITCH_CHANGED, LEVEL, AutonomyState
from agentd.services.state_watch import POLL_S, StateWatcher
from agentd.store.gov_sql import STATE_CHANNEL
from agentd.store.postgres import ChangeListener, PostgresStore
from agentd.testing.pgcluster import PgCluster

_names = itertools.count(1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with PgCluster() as pg:
        yield pg


@pytest.fixture
async def url(cluster: PgCluster) -> AsyncIterator[str]:
    name = f"p{next(_names)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield cluster.url_for(name)


async def set_state(store: PostgresStore, values: dict[str, str]) -> None:
    """Daemon A: change the global state in one transaction."""
    async with store.write() as tx:
        for key, value in values.items():
            await tx.gov.set_meta(key, value)


async def watch_until_changed(
    url: str, tmp_path: Path, change: dict[str, str], *, listen: bool, poll_s: float
) -> tuple[float, list[tuple[str, str]], AutonomyState]:
    a, b = PostgresStore(url), PostgresStore(url)
    await a.open()
    await b.open()
    stopped: list[tuple[str, str]] = []
    changed = anyio.Event()
    autonomy = AutonomyState(b, lambda: Settings(state_dir=tmp_path))
    await autonomy.load()
    watcher = StateWatcher(
        autonomy,
        on_change=changed.set,
        stop_all=lambda reason, why: stopped.append((reason, why)) or 1,
        listener=ChangeListener(url, STATE_CHANNEL) if listen else None,
        poll_s=poll_s,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run)
            await anyio.sleep(0.3)  # B is listening
            began = time.monotonic()
            await set_state(a, change)
            with anyio.fail_after(10):
                await changed.wait()
            took = time.monotonic() - began
            tg.cancel_scope.cancel()
    finally:
        await a.close()
        await b.close()
    return took, stopped, autonomy


async def test_the_kill_switch_reaches_the_other_daemon_by_notification(
    url: str, tmp_path: Path
) -> None:
    change = {KILL_SWITCH: "1", KILL_SWITCH_CHANGED: '{"on": true, "by": "alice", "reason": "x"}'}
    took, stopped, autonomy = await watch_until_changed(
        url, tmp_path, change, listen=True, poll_s=30.0
    )
    # A 30 s poll: only the notification can have brought it this soon.
    assert took < POLL_S, took
    assert autonomy.snapshot.kill_switch
    assert stopped == [("kill_switch", "kill switch turned on by alice: x")]


async def test_the_level_reaches_the_other_daemon_by_the_poll_without_notifications(
    url: str, tmp_path: Path
) -> None:
    took, stopped, autonomy = await watch_until_changed(
        url, tmp_path, {LEVEL: "L4"}, listen=False, poll_s=POLL_S
    )
    assert took < POLL_S + 0.5, took
    assert str(autonomy.snapshot.level) == "L4" and autonomy.snapshot.level_source == "governance"
    assert stopped == []
