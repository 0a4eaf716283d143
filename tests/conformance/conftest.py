"""The store conformance suite: what every store implementation must do.

Each test takes the ``store`` fixture, parametrised over :data:`STORES`, and
speaks to it only through the :class:`~agentd.store.base.Store` protocol and
its areas (no SQL). A new store joins by adding one row to :data:`STORES`: a
factory that builds it on a fresh location, and the means to damage its audit
trail behind its back (for the tamper-detection test).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentd.store.base import Store
from agentd.store.sqlite import SqliteStore


@dataclass(frozen=True)
class Backend:
    """How to build one store implementation on a fresh location, and damage it."""

    make: Callable[[Path], Store]
    # Rewrite the ``data`` of audit record ``seq`` without going through the store.
    tamper: Callable[[Path, int], Awaitable[None]]


def _sqlite(folder: Path) -> Store:
    return SqliteStore(folder / "agentd.sqlite3")


async def _sqlite_tamper(folder: Path, seq: int) -> None:
    con = sqlite3.connect(folder / "agentd.sqlite3")
    try:
        # Whoever can write the file can drop the append-only triggers too.
        con.execute("DROP TRIGGER audit_no_update")
        con.execute("UPDATE audit SET data = '{\"forged\":true}' WHERE seq = ?", (seq,))
        con.commit()
    finally:
        con.close()


STORES: dict[str, Backend] = {
    "sqlite": Backend(_sqlite, _sqlite_tamper),
}


@dataclass
class Opened:
    """A store under test, with the folder it lives in and its backend."""

    store: Store
    folder: Path
    backend: Backend

    async def reopen(self) -> Store:
        """Close the store and open a new one on the same location."""
        await self.store.close()
        self.store = self.backend.make(self.folder)
        await self.store.open()
        return self.store


@pytest.fixture(params=sorted(STORES))
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    backend = STORES[request.param]
    store = backend.make(tmp_path)
    await store.open()
    held = Opened(store, tmp_path, backend)
    try:
        yield held
    finally:
        await held.store.close()


@pytest.fixture
def store(opened: Opened) -> Store:
    return opened.store
