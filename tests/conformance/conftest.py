"""The store conformance suite: what every store implementation must do.

Each test takes the ``store`` fixture, parametrised over :data:`STORES`, and
speaks to it only through the :class:`~agentd.store.base.Store` protocol and
its areas (no SQL). A new store joins by adding one row to :data:`STORES`: a
factory that builds it on a fresh location, and the means to damage its audit
trail behind its back (for the tamper-detection test).

PostgreSQL runs on one throwaway cluster for the session (started only when
a PostgreSQL case runs), with a database of its own for each test.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from agentd.store.base import Store
from agentd.store.postgres import PostgresStore
from agentd.store.sqlite import SqliteStore
from agentd.testing.pgcluster import PgCluster


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


# The session's PostgreSQL cluster (see the ``pg_cluster`` fixture).
_clusters: list[PgCluster] = []


def _pg_url(folder: Path) -> str:
    """Return the URL of the test database of ``folder`` (created on first use)."""
    cluster = _clusters[0]
    name = "c" + hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            conn.execute(f"CREATE DATABASE {name}")
    return cluster.url_for(name)


def _postgres(folder: Path) -> Store:
    return PostgresStore(_pg_url(folder))


async def _postgres_tamper(folder: Path, seq: int) -> None:
    async with await psycopg.AsyncConnection.connect(_pg_url(folder), autocommit=True) as conn:
        # Whoever owns the database can drop the append-only triggers too.
        await conn.execute("DROP TRIGGER audit_no_update ON audit")
        await conn.execute("UPDATE audit SET data = '{\"forged\":true}' WHERE seq = %s", (seq,))


STORES: dict[str, Backend] = {
    "sqlite": Backend(_sqlite, _sqlite_tamper),
    "postgresql": Backend(_postgres, _postgres_tamper),
}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the session's PostgreSQL cases."""
    with PgCluster() as cluster:
        _clusters.append(cluster)
        try:
            yield cluster
        finally:
            _clusters.remove(cluster)


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
    if request.param == "postgresql":
        request.getfixturevalue("pg_cluster")
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
