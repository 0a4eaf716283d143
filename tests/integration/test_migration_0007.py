"""Migration 0007 on a real file: the gate's per-intent records move to the intent's number."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentd.errors import StoreError
from agentd.store import gate_sql
from agentd.store.sqlite import LATEST_SCHEMA_VERSION, MIGRATIONS, SqliteStore

AT = "2026-11-23T12:00:00.000000+00:00"


def version_6(path: Path) -> sqlite3.Connection:
    """Create a database as agentd left it at schema version 6."""
    con = sqlite3.connect(path, isolation_level=None)
    for version, _name, sql in MIGRATIONS[:6]:
        con.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
    return con


def add_intent(con: sqlite3.Connection, intent_id: str, approval_source: str | None) -> None:
    con.execute(
        "INSERT INTO intents(id, fingerprint, tenant, account, action_type, diff, rationale, "
        "source, serves, created_at, created_by, decision, reason, tier, risk_level, outcome, "
        "status, approval_source, auto_executed, updated_at) "
        "VALUES (?, 'fp', 't1', 'acme', 'send_follow_up_email', '{}', 'r', 'operator', '[]', "
        "?, 'ops', 'AUTO_EXECUTE', 'OK', 'AUTONOMOUS', 'LOW', '{}', 'approved', ?, 1, ?)",
        (intent_id, AT, approval_source, AT),
    )


async def test_records_follow_their_intents_numbers(tmp_path: Path) -> None:
    path = tmp_path / "v6.sqlite3"
    con = version_6(path)
    for intent_id in ("i-c", "i-a", "i-b"):  # ids out of order: numbers follow insertion
        add_intent(con, intent_id, "POLICY")
    con.execute("DELETE FROM intents WHERE id = 'i-c'")  # a gap in the rowids
    add_intent(con, "i-d", None)
    con.execute("INSERT INTO budget_consumption VALUES ('i-b', '2026-11-23', ?)", (AT,))
    con.execute("INSERT INTO budget_consumption VALUES ('i-a', '2026-11-23', ?)", (AT,))
    con.execute("INSERT INTO idempotency VALUES ('i-a', 'PUBLISHED', ?)", (AT,))
    con.execute("INSERT INTO idempotency VALUES ('i-b', 'RESERVED', ?)", (AT,))
    con.execute(
        "INSERT INTO execution_queue(seq, intent_id, approval_source, enqueued_at, state, "
        "updated_at) VALUES (7, 'i-a', 'POLICY', ?, 'taken', ?)",
        (AT, AT),
    )
    rowids = dict(con.execute("SELECT id, rowid FROM intents"))
    con.close()

    store = SqliteStore(path)
    await store.open()
    # The rewrite's log was copied in and its space given back at once.
    assert path.with_name(path.name + "-wal").stat().st_size == 0
    await store.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == LATEST_SCHEMA_VERSION
    assert dict(con.execute("SELECT id, seq FROM intents")) == rowids
    assert sorted(con.execute("SELECT intent_id, intent_seq FROM budget_consumption")) == [
        ("i-a", rowids["i-a"]),
        ("i-b", rowids["i-b"]),
    ]
    assert sorted(con.execute("SELECT intent_id, state, intent_seq FROM idempotency")) == [
        ("i-a", "PUBLISHED", rowids["i-a"]),
        ("i-b", "RESERVED", rowids["i-b"]),
    ]
    assert con.execute(
        "SELECT seq, intent_id, state, intent_seq FROM execution_queue"
    ).fetchall() == [(7, "i-a", "taken", rowids["i-a"])]
    # The constraints came along: consumed at most once, handed off once,
    # approval written once, a new intent numbered after the old ones.
    with pytest.raises(sqlite3.IntegrityError):
        con.execute(gate_sql.RECORD_CONSUMPTION, ("i-a", "2026-11-24", AT))
    con.execute(gate_sql.ENQUEUE, ("i-a", "HUMAN", AT))
    assert con.execute("SELECT count(*) FROM execution_queue").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError, match="written once"):
        con.execute("UPDATE intents SET approval_source = 'HUMAN' WHERE id = 'i-a'")
    add_intent(con, "i-e", None)
    assert con.execute("SELECT seq FROM intents WHERE id = 'i-e'").fetchone()[0] > max(
        rowids.values()
    )
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert {"intents_status", "intents_tenant", "intents_expiry", "idempotency_age"} <= names
    assert {"execution_queue_state", "intents_approval_written_once"} <= names
    assert not any(name.endswith("_0007") for name in names)
    assert "audit_subject" not in names  # migration 0008: an index no query used


async def test_a_record_without_its_intent_stops_the_migration_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orphan.sqlite3"
    con = version_6(path)
    add_intent(con, "i-a", "POLICY")
    con.execute("INSERT INTO idempotency VALUES ('i-gone', 'PUBLISHED', ?)", (AT,))
    con.close()

    store = SqliteStore(path)
    with pytest.raises(StoreError, match="every_gate_record_names_a_stored_intent"):
        await store.open()
    await store.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 6
    assert con.execute("SELECT intent_id FROM idempotency").fetchall() == [("i-gone",)]
    assert "seq" not in {r[1] for r in con.execute("PRAGMA table_info(intents)")}
