"""Migration 0010 on a real file: an operation's execution keeps its id, under its own name."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agentd.store.sqlite import LATEST_SCHEMA_VERSION, MIGRATIONS, SqliteStore

AT = "2026-11-23T12:00:00.000000+00:00"


def version_9(path: Path) -> sqlite3.Connection:
    """Create a database as agentd left it at schema version 9."""
    con = sqlite3.connect(path, isolation_level=None)
    for version, _name, sql in MIGRATIONS[:9]:
        con.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
    return con


def add_operation(con: sqlite3.Connection, op_id: str, started_by: str | None) -> None:
    con.execute(
        "INSERT INTO operations(id, account, service, workflow, state, total, intent_id, "
        "created_by, created_at, updated_at) "
        "VALUES (?, 'acme', 'backoffice', 'read_contact', 'completed', 2, ?, 'ops', ?, ?)",
        (op_id, started_by, AT, AT),
    )


async def test_operations_keep_their_execution(tmp_path: Path) -> None:
    path = tmp_path / "v9.sqlite3"
    con = version_9(path)
    add_operation(con, "op_a", "exe_change")
    add_operation(con, "op_b", "exe_rollback")
    add_operation(con, "op_c", None)  # started by hand
    con.close()

    store = SqliteStore(path)
    await store.open()
    try:
        rows = {op: await store.ops.get_operation(op) for op in ("op_a", "op_b", "op_c")}
        found = await store.read_one(
            "SELECT id FROM operations WHERE execution_id = ? AND workflow = ?",
            ("exe_rollback", "read_contact"),
        )
    finally:
        await store.close()
    assert {op: row.execution_id for op, row in rows.items() if row} == {
        "op_a": "exe_change",
        "op_b": "exe_rollback",
        "op_c": None,
    }
    assert rows["op_a"] is not None and rows["op_a"].to_dict()["execution"] == "exe_change"
    assert found is not None and found[0] == "op_b"
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == LATEST_SCHEMA_VERSION
    columns = [row[1] for row in con.execute("PRAGMA table_info(operations)")]
    assert "execution_id" in columns and "intent_id" not in columns
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
