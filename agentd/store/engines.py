"""Which store a configuration names: SQLite in the state folder, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from agentd.store.postgres import PostgresStore
from agentd.store.sqlite import SqliteStore

#: Either implementation of the store.
AnyStore = SqliteStore | PostgresStore


def make_store(
    url: str, path: Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 5000
) -> AnyStore:
    """Return the store ``url`` names (not opened): PostgreSQL, or SQLite at ``path`` if empty."""
    if url:
        return PostgresStore(url)
    return SqliteStore(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
