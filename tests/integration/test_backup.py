"""`agentd backup`: an online copy of the store while it is being written."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentd.core.audit import AuditEvent
from agentd.errors import StoreError
from agentd.store.backup import backup_database
from agentd.store.sqlite import LATEST_SCHEMA_VERSION, SqliteStore


async def test_backup_while_writing_is_consistent(short_tmp: Path) -> None:
    store = SqliteStore(short_tmp / "agentd.sqlite3")
    await store.open()
    try:
        for i in range(50):
            await store.append_audit([AuditEvent("TEST", "t", str(i))], datetime.now(UTC))
        result = backup_database(short_tmp / "agentd.sqlite3", short_tmp / "b" / "copy.db")
        await store.append_audit([AuditEvent("TEST", "t", "after")], datetime.now(UTC))
    finally:
        await store.close()
    assert result["schema_version"] == LATEST_SCHEMA_VERSION
    copy = sqlite3.connect(short_tmp / "b" / "copy.db")
    (count,) = copy.execute("SELECT count(*) FROM audit").fetchone()
    copy.close()
    assert count == result["audit_records"] >= 50
    assert not list((short_tmp / "b").glob(".*.tmp"))  # no temporary file left


def test_backup_refuses_a_missing_database(short_tmp: Path) -> None:
    with pytest.raises(StoreError, match="no database"):
        backup_database(short_tmp / "missing.sqlite3", short_tmp / "out.db")
    assert not (short_tmp / "out.db").exists()


def test_backup_command(daemon_env: dict[str, str], short_tmp: Path) -> None:
    store_dir = Path(daemon_env["AGENTD_STATE_DIR"])
    store_dir.mkdir(parents=True)
    con = sqlite3.connect(store_dir / "agentd.sqlite3")
    con.execute("CREATE TABLE audit (seq INTEGER)")
    con.commit()
    con.close()
    out = subprocess.run(
        [sys.executable, "-m", "agentd", "backup", str(short_tmp), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["backup"] == str(short_tmp / "agentd.sqlite3")
    bad = subprocess.run(
        [sys.executable, "-m", "agentd", "backup", str(short_tmp / "x.db")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**daemon_env, "AGENTD_STATE_DIR": str(short_tmp / "nowhere")},
    )
    assert bad.returncode == 1 and "no database" in bad.stderr
