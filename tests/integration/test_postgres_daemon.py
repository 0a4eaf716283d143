"""The daemon on PostgreSQL, end to end, and ``agentd backup`` with pg_dump.

One throwaway cluster for the module, a fresh database per test. The daemon
is the real one (``tests/integration/conftest.py``'s fixture) with
``AGENTD_STORE__URL`` pointing at the cluster; no browser is involved.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from agentd import cli
from agentd.config import load_settings
from agentd.core.audit import AuditEvent
from agentd.errors import StoreError
from agentd.store.pg_backup import backup_postgres, client_args, find_tool
from agentd.store.postgres import PostgresStore
from agentd.testing.pgcluster import PgCluster
from tests.integration.conftest import StartDaemon

_names = itertools.count(1)

CONFIG = """
[autonomy]
level = "L3+"

[budget]
per_tenant_daily = 8
per_account_daily = 3
per_action_type_daily = 6

[control]
approvers_group = "agentd-approvers-test"

# Executions run against a browser service; here the hand-offs to execution
# are what is checked, so no browser is involved.
[execution]
enabled = false
"""

ACCOUNTS = """id,tenant,name,stage,trusted_mode,domains
globex,t1,Globex,discovery,ACTIVE,SALES;SEO
acme,t1,Acme,negotiation,ACTIVE,SALES
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with PgCluster() as pg:
        yield pg


@pytest.fixture
def url(cluster: PgCluster) -> str:
    name = f"d{next(_names)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.url_for(name)


def _intent(account: str, rationale: str) -> dict[str, Any]:
    return {
        "tenant": "t1",
        "account": account,
        "action_type": "send_chat_message",
        "rationale": rationale,
    }


async def test_a_daemon_on_postgresql_decides_approves_hands_off_and_audits(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    cfg = short_tmp / "agentd.toml"
    cfg.write_text(CONFIG)
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    monkeypatch.setenv("AGENTD_STORE__URL", url)
    async with daemon(load_settings(None)) as d:
        imported = await d.ask("accounts.import", {"name": "a.csv"}, upload=ACCOUNTS.encode())
        assert imported["imported"] == 2
        auto = await d.ask("propose", _intent("globex", "buying signal"))
        assert auto["decision"] == "AUTO_EXECUTE" and auto["auto_executed"] is True
        again = await d.ask("propose", _intent("globex", "buying signal"))
        assert again["duplicate"] is True and again["intent_id"] == auto["intent_id"]
        pending = await d.ask("propose", _intent("acme", "Checking in"))
        assert pending["status"] == "pending"
        approved = await d.ask("approve", {"id": pending["intent_id"], "note": "ok"})
        assert approved["status"] == "approved" and approved["approval_source"] == "HUMAN"
        for handed in (auto, pending):
            shown = await d.ask("intents.show", {"id": handed["intent_id"]})
            assert shown["handoff"]["state"] == "queued"
        assert (await d.ask("audit.verify"))["intact"]
        status = await d.ask("status")
        assert status["store"]["backend"] == "postgresql"
        assert status["store"]["location"] == url
        assert status["schema_version"] == status["latest_schema_version"]
        assert status["problems"] == []
    # Nothing of the store is in the state folder: it is all in the database.
    assert not (short_tmp / "state" / "agentd.sqlite3").exists()
    store = PostgresStore(url)
    await store.open()
    try:
        stored = await store.gate.intents_by_id([auto["intent_id"], pending["intent_id"]])
        assert {i.status for i in stored.values()} == {"approved"}
    finally:
        await store.close()


async def test_backup_dumps_and_pg_restore_brings_the_trail_back(
    url: str, cluster: PgCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = PostgresStore(url)
    await store.open()
    try:
        await store.append_audit([AuditEvent(e, "alice") for e in ("A", "B", "C")], _now())
        await store.set_meta("backup.k", "kept")
    finally:
        await store.close()
    folder = tmp_path / "backups"
    folder.mkdir()
    config = tmp_path / "agentd.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[store]\nurl = "{url}"\n')
    assert cli.main(["backup", str(folder), "--config", str(config), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    dump = Path(result["backup"])
    assert dump.parent == folder and dump.name.endswith(".pgdump") and dump.stat().st_size > 0
    assert [p.name for p in folder.iterdir()] == [dump.name]  # no temporary file left
    # Lose the database, restore it into a new one with pg_restore.
    restored = f"r{next(_names)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {urlsplit(url).path.lstrip('/')}")
        conn.execute(f"CREATE DATABASE {restored}")
    conninfo, env = client_args(cluster.url_for(restored))
    tool = find_tool("pg_restore")
    assert tool is not None
    subprocess.run([str(tool), f"--dbname={conninfo}", str(dump)], env=env, check=True)
    back = PostgresStore(cluster.url_for(restored))
    await back.open()
    try:
        assert (await back.verify_audit()).intact
        assert [r.event for r in await back.audit_tail(5)] == ["A", "B", "C"]
        assert await back.get_meta("backup.k") == "kept"
        await back.append_audit([AuditEvent("D", "bob")], _now())
        assert (await back.verify_audit()).intact
    finally:
        await back.close()


def test_backup_without_pg_dump_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_PG_BINDIR", str(tmp_path))  # a folder without pg_dump
    url = "postgresql://agentd:s3cret@db.internal/agentd"
    with pytest.raises(StoreError) as info:
        backup_postgres(url, tmp_path / "out.pgdump")
    message = info.value.message
    assert "pg_dump --format=custom" in message and "postgresql-client" in message
    assert "s3cret" not in message and "agentd:***@db.internal" in message
    assert not (tmp_path / "out.pgdump").exists()


def test_the_password_goes_to_pg_dump_in_its_environment() -> None:
    conninfo, env = client_args("postgresql://agentd:s3cret@db.internal:5433/agentd")
    assert "s3cret" not in conninfo and "db.internal" in conninfo and "5433" in conninfo
    assert env["PGPASSWORD"] == "s3cret"


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
