"""The SQLite store on a real file: migrations, durability settings, audit trail."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from agentd.core.audit import AuditEvent, canonical_data, record_hash
from agentd.errors import StoreError
from agentd.store.sqlite import LATEST_SCHEMA_VERSION, BlockTx, SqliteStore

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SqliteStore(tmp_path / "db" / "agentd.sqlite3")
    await s.open()
    yield s
    await s.close()


async def test_open_applies_migrations_and_reports_them(store: SqliteStore) -> None:
    info = await store.info()
    assert info.schema_version == LATEST_SCHEMA_VERSION >= 1
    assert info.journal_mode == "wal"
    assert info.synchronous == "FULL"
    raw = sqlite3.connect(store.path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_SCHEMA_VERSION
    assert raw.execute("SELECT value FROM meta WHERE key='migration.0001'").fetchone()


async def test_reopen_keeps_data_and_version(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    s = SqliteStore(path)
    await s.open()
    await s.set_meta("k", "v")
    await s.close()
    s = SqliteStore(path)
    await s.open()
    assert await s.get_meta("k") == "v"
    assert (await s.info()).schema_version == LATEST_SCHEMA_VERSION
    await s.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LATEST_SCHEMA_VERSION + 5}")
    raw.close()
    s = SqliteStore(path)
    with pytest.raises(StoreError, match="newer than this agentd"):
        await s.open()


async def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        await SqliteStore(path).open()


async def test_audit_chain_survives_reopen_and_verifies(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    s = SqliteStore(path)
    await s.open()
    await s.append_audit([AuditEvent("A", "alice", "x", {"n": 1}), AuditEvent("B", "bob")], NOW)
    await s.close()
    s = SqliteStore(path)
    await s.open()
    await s.append_audit([AuditEvent("C", "carol", data={"nested": {"k": [1, 2]}})], NOW)
    verdict = await s.verify_audit()
    assert verdict.intact and verdict.count == 3
    tail = await s.audit_tail(2)
    assert [r.event for r in tail] == ["B", "C"]
    assert tail[1].prev_hash == tail[0].hash
    assert [r.seq async for r in s.audit_records()] == [1, 2, 3]
    await s.close()


async def test_audit_is_append_only_for_the_daemon(store: SqliteStore) -> None:
    await store.append_audit([AuditEvent("A", "x")], NOW)
    with pytest.raises(StoreError, match="append-only"):
        async with store.write() as tx:
            await tx.execute("DELETE FROM audit")
    assert (await store.verify_audit()).count == 1


@pytest.mark.parametrize(
    "verb", ["INSERT OR REPLACE", "REPLACE", "INSERT OR IGNORE", "INSERT OR ROLLBACK"]
)
async def test_a_record_cannot_be_rewritten_in_place(store: SqliteStore, verb: str) -> None:
    """REPLACE deletes the old row without firing audit_no_delete: migration 0009 stops it."""
    await store.append_audit([AuditEvent("A", "alice"), AuditEvent("B", "bob")], NOW)
    raw = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute(
            f"{verb} INTO audit(seq, at, event, actor, subject, data, prev_hash, hash) "
            "SELECT seq, at, event, 'mallory', subject, data, prev_hash, hash "
            "FROM audit WHERE seq = 2"
        )
    raw.rollback()
    raw.close()
    assert [r.actor for r in await store.audit_tail(2)] == ["alice", "bob"]
    assert (await store.verify_audit()).intact


async def test_truncation_under_the_open_store_is_found(store: SqliteStore) -> None:
    """Delete the tail, re-hash the new last record and fix meta: the store's head tells."""
    await store.append_audit([AuditEvent("E", "a", data={"n": i}) for i in range(6)], NOW)
    raw = sqlite3.connect(store.path)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute("DELETE FROM audit WHERE seq > 4")
    seq, at, event, actor, subject, prev = raw.execute(
        "SELECT seq, at, event, actor, subject, prev_hash FROM audit WHERE seq = 4"
    ).fetchone()
    data = canonical_data({"n": "forged"})
    digest = record_hash(prev, seq, at, event, actor, subject, data)
    raw.execute("UPDATE audit SET data = ?, hash = ? WHERE seq = 4", (data, digest))
    raw.execute("UPDATE meta SET value = ? WHERE key = 'audit.head'", (f"4:{digest}",))
    raw.commit()
    raw.close()
    verdict = await store.verify_audit()
    assert not verdict.intact and verdict.first_broken_seq == 5
    assert verdict.problem is not None and "records 5..6 were removed" in verdict.problem
    # Reopened, the store knows only the file: the chain is consistent again.
    await store.close()
    again = SqliteStore(store.path)
    await again.open()
    try:
        assert (await again.verify_audit()).intact
    finally:
        await again.close()


def _tamper(path: Path, sql: str) -> None:
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("DROP TRIGGER audit_no_delete")
    raw.execute(sql)
    raw.commit()
    raw.close()


@pytest.mark.parametrize(
    ("sql", "broken"),
    [
        ("UPDATE audit SET actor = 'mallory' WHERE seq = 3", 3),
        ("UPDATE audit SET data = '{\"n\":99}' WHERE seq = 2", 2),
        ("DELETE FROM audit WHERE seq = 2", 2),
        ("DELETE FROM audit WHERE seq = 5", 5),
    ],
)
async def test_tampering_is_found(tmp_path: Path, sql: str, broken: int) -> None:
    path = tmp_path / "e.sqlite3"
    s = SqliteStore(path)
    await s.open()
    await s.append_audit([AuditEvent("E", "a", data={"n": i}) for i in range(5)], NOW)
    await s.close()
    _tamper(path, sql)
    s = SqliteStore(path)
    await s.open()
    verdict = await s.verify_audit()
    await s.close()
    assert not verdict.intact
    assert verdict.first_broken_seq == broken


async def test_failed_transaction_leaves_no_audit(store: SqliteStore) -> None:
    with pytest.raises(RuntimeError):
        async with store.write() as tx:
            tx.audit(AuditEvent("LOST", "x"))
            await tx.execute("INSERT INTO meta(key, value) VALUES ('half', 'written')")
            raise RuntimeError("boom")
    assert await store.get_meta("half") is None
    assert (await store.audit_tail(10)) == []
    await store.append_audit([AuditEvent("KEPT", "x")], NOW)
    verdict = await store.verify_audit()
    assert verdict.intact and verdict.count == 1


async def test_concurrent_writers_keep_one_chain(store: SqliteStore) -> None:
    async def writer(i: int) -> None:
        for j in range(10):
            await store.append_audit([AuditEvent("W", f"w{i}", data={"j": j})], NOW)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(writer, i)
    verdict = await store.verify_audit()
    assert verdict.intact and verdict.count == 200


async def test_cancelled_writer_does_not_break_the_chain(store: SqliteStore) -> None:
    with anyio.move_on_after(0.001):
        for _ in range(1000):
            await store.append_audit([AuditEvent("C", "x")], NOW)
    await store.append_audit([AuditEvent("AFTER", "x")], NOW)
    assert (await store.verify_audit()).intact


async def test_write_block_commits_reads_writes_and_audit_in_one_transaction(
    store: SqliteStore,
) -> None:
    await store.append_audit([AuditEvent("BEFORE", "x")], NOW)

    def block(tx: BlockTx) -> list[str]:
        tx.execute_each(
            [("INSERT INTO meta(key, value) VALUES (?, ?)", [("b1", "v1"), ("b2", "v2")])]
        )
        tx.audit(AuditEvent("IN_BLOCK", "x", data={"n": 2}))
        # Its own reads see its writes.
        rows = tx.fetch_each([("SELECT value FROM meta WHERE key LIKE 'b%' ORDER BY key", ())])
        return [r[0] for r in rows[0]]

    assert await store.write_block(block, NOW) == ["v1", "v2"]
    assert await store.get_meta("b2") == "v2"
    # The chain goes on from the block's record, whichever path writes next.
    await store.append_audit([AuditEvent("AFTER", "x")], NOW)
    assert [r.event for r in await store.audit_tail(3)] == ["BEFORE", "IN_BLOCK", "AFTER"]
    verdict = await store.verify_audit()
    assert verdict.intact and verdict.count == 3


async def test_write_block_that_raises_rolls_back_whole(store: SqliteStore) -> None:
    def failing(tx: BlockTx) -> None:
        tx.execute_each([("INSERT INTO meta(key, value) VALUES ('half', 'written')", [()])])
        tx.audit(AuditEvent("LOST", "x"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.write_block(failing, NOW)

    def bad_sql(tx: BlockTx) -> None:
        tx.execute_each([("INSERT INTO no_such_table VALUES (1)", [()])])

    with pytest.raises(StoreError, match="no_such_table"):
        await store.write_block(bad_sql, NOW)
    assert await store.get_meta("half") is None
    assert await store.audit_tail(10) == []
    await store.append_audit([AuditEvent("KEPT", "x")], NOW)
    assert (await store.verify_audit()).count == 1
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.write_block(lambda tx: None, NOW)


async def test_a_read_right_after_a_commit_sees_it_while_others_read(short_tmp: Path) -> None:
    """Readers share one connection: none may pin a stale snapshot for the others."""
    store = SqliteStore(short_tmp / "rw.sqlite3")
    await store.open()
    done = False

    async def reader() -> None:
        while not done:
            await store.read_all("SELECT key, value FROM meta")

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(reader)
            for i in range(300):
                await store.set_meta("probe", str(i))
                assert await store.get_meta("probe") == str(i)
            done = True
    finally:
        await store.close()


async def test_the_log_starts_over_between_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer never checkpoints here (its threshold is out of reach): the log
    # can only start over (and its file stop growing) because the background
    # passes copied all of it in a gap between commits.
    monkeypatch.setattr("agentd.store.sqlite.WRITER_AUTOCHECKPOINT", 1_000_000)
    path = tmp_path / "r.sqlite3"
    wal = tmp_path / "r.sqlite3-wal"
    s = SqliteStore(path)
    await s.open()
    try:
        largest = 0
        for n in range(60):  # about 6 MB of commits, 20 ms apart
            async with s.write(NOW) as tx:
                await tx.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [(f"k{n}.{i}", "x" * 1000) for i in range(100)],
                )
            largest = max(largest, wal.stat().st_size)
            await anyio.sleep(0.02)
        assert largest < 3_000_000, largest
    finally:
        await s.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone()[0] == 6000
    raw.close()


async def test_wal_is_copied_into_the_database_by_the_checkpoint_thread(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    s = SqliteStore(path)
    await s.open()
    try:
        start = path.stat().st_size
        # About 2 MB of commits: far below the writer's own checkpoint threshold,
        # so only the background checkpoints can move them into the file.
        for n in range(20):
            async with s.write(NOW) as tx:
                await tx.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [(f"k{n}.{i}", "x" * 1000) for i in range(100)],
                )
        with anyio.fail_after(10):
            while path.stat().st_size < start + 1_500_000:
                await anyio.sleep(0.05)
        threads = {t.name for t in threading.enumerate()}
        assert "agentd-wal-checkpoint" in threads
    finally:
        await s.close()
    assert "agentd-wal-checkpoint" not in {t.name for t in threading.enumerate()}
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone()[0] == 2000
    raw.close()
