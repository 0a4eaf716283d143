"""Migrations on a real file: a new file takes them all at once, an old one step by step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentd.errors import StoreError
from agentd.store import sqlite as sqlite_store
from agentd.store.sqlite import LATEST_SCHEMA_VERSION, MIGRATIONS, SqliteStore

BROKEN = (
    LATEST_SCHEMA_VERSION + 1,
    f"{LATEST_SCHEMA_VERSION + 1:04d}_broken.sql",
    "CREATE TABLE (;",
)


def tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


def user_version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


async def test_a_new_file_records_every_migration(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    assert user_version(path) == LATEST_SCHEMA_VERSION
    con = sqlite3.connect(path)
    try:
        rows = dict(con.execute("SELECT key, value FROM meta WHERE key LIKE 'migration.%'"))
    finally:
        con.close()
    assert sorted(rows) == [f"migration.{v:04d}" for v, _, _ in MIGRATIONS]
    for version, name, _ in MIGRATIONS:
        assert rows[f"migration.{version:04d}"].startswith(f"{name} ")


async def test_a_new_file_is_migrated_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One transaction for all (one sync to disk, not one per migration): a failing
    # last migration leaves the new file with no schema at all, not half of one.
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*MIGRATIONS, BROKEN])
    path = tmp_path / "new.sqlite3"
    with pytest.raises(StoreError, match=r"_broken\.sql failed"):
        await SqliteStore(path).open()
    assert user_version(path) == 0
    assert tables(path) == set()


async def test_an_existing_file_is_migrated_one_committed_step_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite3"
    con = sqlite3.connect(path, isolation_level=None)
    for version, _name, sql in MIGRATIONS[:1]:
        con.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
    con.close()
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*MIGRATIONS, BROKEN])
    with pytest.raises(StoreError, match=r"migration \d{4}_broken\.sql failed") as caught:
        await SqliteStore(path).open()
    # Only the broken migration is named, and every one before it stays applied.
    assert MIGRATIONS[-1][1] not in caught.value.message
    assert user_version(path) == LATEST_SCHEMA_VERSION
