"""The PostgreSQL store's foundations on a real, throwaway cluster.

Migrations applied once however many daemons start together, the schema
matching SQLite's, one audit chain written by several stores at once, and
clear errors when the server is away.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import psycopg
import pytest

from agentd.core.audit import AuditEvent
from agentd.errors import StoreError
from agentd.store.postgres import PG_MIGRATIONS, PostgresStore, to_format
from agentd.store.sqlite import LATEST_SCHEMA_VERSION, SqliteStore
from agentd.testing.pgcluster import PgCluster

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_names = itertools.count(1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with PgCluster() as pg:
        yield pg


@pytest.fixture
def url(cluster: PgCluster) -> str:
    name = f"t{next(_names)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.url_for(name)


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


# -- placeholders ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected", "order"),
    [
        ("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = %s AND c = %s", None),
        (
            "UPDATE t SET a = ?2 WHERE id = ?1 OR up = ?1",
            "UPDATE t SET a = %s WHERE id = %s OR up = %s",
            (1, 0, 0),
        ),
        (
            "SELECT '?', 'it''s ?', \"q?\" FROM t WHERE a = ?",
            "SELECT '?', 'it''s ?', \"q?\" FROM t WHERE a = %s",
            None,
        ),
        (
            "SELECT a FROM t WHERE b LIKE 'x%' AND c = ?",
            "SELECT a FROM t WHERE b LIKE 'x%%' AND c = %s",
            None,
        ),
        ("SELECT a % 2 FROM t WHERE c = ?", "SELECT a %% 2 FROM t WHERE c = %s", None),
    ],
)
def test_statements_in_the_portable_form_become_psycopg_ones(
    sql: str, expected: str, order: tuple[int, ...] | None
) -> None:
    assert to_format(sql) == (expected, order)


# -- migrations ------------------------------------------------------------------------


async def test_daemons_starting_together_migrate_once(url: str) -> None:
    stores = [PostgresStore(url) for _ in range(3)]
    async with anyio.create_task_group() as tg:
        for s in stores:
            tg.start_soon(s.open)
    try:
        info = await stores[0].info()
        assert info.backend == "postgresql"
        assert info.schema_version == info.latest_schema_version == PG_MIGRATIONS[-1][0]
        rows = await stores[1].read_all("SELECT version FROM schema_version ORDER BY version")
        assert [int(r[0]) for r in rows] == [v for v, _, _ in PG_MIGRATIONS]
    finally:
        for s in stores:
            await s.close()


async def test_a_schema_newer_than_this_agentd_is_refused(url: str) -> None:
    s = PostgresStore(url)
    await s.open()
    async with s.write() as tx:
        await tx.execute("INSERT INTO schema_version VALUES (999, 'future', 'x')")
    await s.close()
    with pytest.raises(StoreError, match="schema version 999, newer"):
        await PostgresStore(url).open()


def _sqlite_catalogue(path: Path) -> dict[str, object]:
    con = sqlite3.connect(path)
    types = {"TEXT": "text", "INTEGER": "bigint", "REAL": "double precision", "BLOB": "bytea"}
    tables: dict[str, object] = {}
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        cols = con.execute(f"PRAGMA table_info({name})").fetchall()
        tables[name] = sorted((c[1], types[c[2]], bool(c[3]) or c[5] > 0, c[5] > 0) for c in cols)
    indexes = {
        n
        for (n,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    con.close()
    return {"tables": tables, "indexes": indexes}


async def _pg_catalogue(store: PostgresStore) -> dict[str, object]:
    cols = await store.read_all(
        "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO', "
        "EXISTS (SELECT 1 FROM information_schema.key_column_usage k "
        "JOIN information_schema.table_constraints tc ON tc.constraint_name = k.constraint_name "
        "WHERE tc.constraint_type = 'PRIMARY KEY' AND k.table_name = c.table_name "
        "AND k.column_name = c.column_name) "
        "FROM information_schema.columns c WHERE c.table_schema = 'public' "
        "AND c.table_name <> 'schema_version'"
    )
    tables: dict[str, list[tuple[str, str, bool, bool]]] = {}
    for t, name, kind, notnull, pk in cols:
        tables.setdefault(t, []).append((name, kind, bool(notnull), bool(pk)))
    indexes = {
        str(r[0])
        for r in await store.read_all(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
            "AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'"
        )
    }
    return {"tables": {t: sorted(c) for t, c in tables.items()}, "indexes": indexes}


async def test_the_schema_matches_sqlites_table_by_table(
    store: PostgresStore, tmp_path: Path
) -> None:
    lite = SqliteStore(tmp_path / "agentd.db")
    await lite.open()
    await lite.close()
    assert PG_MIGRATIONS[-1][0] == LATEST_SCHEMA_VERSION
    expected = _sqlite_catalogue(tmp_path / "agentd.db")
    got = await _pg_catalogue(store)
    assert got["tables"] == expected["tables"]
    assert got["indexes"] == expected["indexes"]


# -- meta and audit ----------------------------------------------------------------------


async def test_meta_is_set_and_read_back(store: PostgresStore) -> None:
    assert await store.get_meta("k") is None
    await store.set_meta("k", "one")
    await store.set_meta("k", "two")
    assert await store.get_meta("k") == "two"


def _event(n: int, who: str) -> AuditEvent:
    return AuditEvent(event="TEST_EVENT", actor=who, subject=f"s{n}", data={"n": n, "by": who})


async def test_two_daemons_write_one_chain(url: str) -> None:
    a, b = PostgresStore(url), PostgresStore(url)
    await a.open()
    await b.open()
    try:

        async def writer(s: PostgresStore, who: str) -> None:
            for n in range(25):
                async with s.write(NOW) as tx:
                    await tx.execute(
                        "INSERT INTO meta(key, value) VALUES (?, ?)", (f"{who}.{n}", "x")
                    )
                    tx.audit(_event(n, who))
                    tx.audit(_event(n, who))

        async with anyio.create_task_group() as tg:
            for w in range(3):
                tg.start_soon(writer, a, f"a{w}")
                tg.start_soon(writer, b, f"b{w}")
        rows = await a.read_all("SELECT seq, actor FROM audit ORDER BY seq")
        assert [int(r[0]) for r in rows] == list(range(1, 301))
        # Both daemons' records are interleaved in the one chain, each pair kept together.
        actors = [str(r[1]) for r in rows]
        assert {x[0] for x in actors} == {"a", "b"}
        assert all(actors[i] == actors[i + 1] for i in range(0, 300, 2))
        for s in (a, b):
            verdict = await s.verify_audit()
            assert verdict.intact and verdict.count == 300, verdict
        assert await a.get_meta("audit.head") == await b.get_meta("audit.head")
    finally:
        await a.close()
        await b.close()


async def test_a_rolled_back_transaction_leaves_no_record(store: PostgresStore) -> None:
    with pytest.raises(RuntimeError):
        async with store.write(NOW) as tx:
            await tx.execute("INSERT INTO meta(key, value) VALUES ('gone', 'x')")
            tx.audit(_event(1, "x"))
            raise RuntimeError("boom")
    assert await store.get_meta("gone") is None
    assert await store.audit_tail(5) == []
    assert (await store.verify_audit()).intact


async def test_audit_tail_and_records_read_in_order(store: PostgresStore) -> None:
    records = await store.append_audit([_event(n, "x") for n in range(5)], NOW)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert [r.seq for r in await store.audit_tail(2)] == [4, 5]
    assert [r.seq async for r in store.audit_records(after_seq=3)] == [4, 5]
    assert (await store.verify_audit()).intact


async def test_the_trail_refuses_update_delete_and_truncate(store: PostgresStore) -> None:
    await store.append_audit([_event(1, "x")], NOW)
    for sql in ("UPDATE audit SET actor = 'y'", "DELETE FROM audit", "TRUNCATE audit"):
        with pytest.raises(StoreError, match="append-only"):
            async with store.write(NOW) as tx:
                await tx.execute(sql)
    assert (await store.verify_audit()).intact


async def test_a_record_altered_behind_the_daemons_back_fails_verification(
    store: PostgresStore, url: str
) -> None:
    await store.append_audit([_event(n, "x") for n in range(3)], NOW)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_update")
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    verdict = await store.verify_audit()
    assert not verdict.intact and verdict.first_broken_seq == 2


async def test_an_unreachable_server_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    s = PostgresStore(f"postgresql://agentd:s3cret@/agentd?host={tmp_path}", connect_timeout_s=1)
    with pytest.raises(StoreError) as err:
        await s.open()
    assert "cannot reach PostgreSQL" in err.value.message
    assert "s3cret" not in err.value.message and "***" in err.value.message
    with pytest.raises(StoreError, match="closed"):
        await s.read_all("SELECT 1")
