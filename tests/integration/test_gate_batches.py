"""Grouped gate decisions on a real SQLite file: what a failed batch tells its submitters."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.config import AutonomyConfig, Settings
from agentd.core.intents import make_intent
from agentd.errors import AgentdError, NotFound
from agentd.policy import gate_policy
from agentd.services.gate import GateService
from agentd.store import sqlite
from agentd.store.sqlite import SqliteStore


@dataclass
class World:
    store: SqliteStore
    gate: GateService
    db: Path

    def count(self, table: str) -> int:
        con = sqlite3.connect(self.db)
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            con.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    db = tmp_path / "agentd.sqlite3"
    store = SqliteStore(db)
    await store.open()
    policy = gate_policy(Settings(state_dir=tmp_path, autonomy=AutonomyConfig(level="L3+")))
    gate = GateService(store, lambda: policy, approval_ttl=lambda _t: timedelta(hours=72))
    at = datetime.now(UTC).isoformat()
    async with store.write() as tx:
        await tx.gate.upsert_accounts(
            [
                {
                    "id": f"a{i}",
                    "tenant": "t1",
                    "name": f"A{i}",
                    "stage": "prospect",
                    "trusted_mode": "ACTIVE",
                    "domains": [],
                    "allowed_hosts": [],
                }
                for i in range(3)
            ],
            at,
        )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate.run)
            yield World(store, gate, db)
            tg.cancel_scope.cancel()
    finally:
        gate.close()
        await store.close()


def intents(n: int, **kw: Any) -> list[Any]:
    return [
        make_intent(
            tenant="t1",
            account=f"a{i % 3}",
            action_type="send_follow_up_email",
            rationale=f"r{i}",
            source="operator",
            **kw,
        )
        for i in range(n)
    ]


async def submit_all(gate: GateService, items: list[Any]) -> list[dict[str, Any] | AgentdError]:
    out: list[dict[str, Any] | AgentdError] = [AgentdError("not answered")] * len(items)

    async def one(k: int) -> None:
        try:
            out[k] = await gate.submit(items[k], "tester")
        except AgentdError as exc:
            out[k] = exc

    async with anyio.create_task_group() as tg:
        for k in range(len(items)):
            tg.start_soon(one, k)
    return out


async def test_a_batch_that_is_not_stored_gives_no_one_a_decision(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sqlite._append_and_commit
    failures = iter([True])

    def failing(raw: sqlite3.Connection, *args: Any) -> None:
        if next(failures, False):
            raise sqlite3.OperationalError("disk I/O error")
        real(raw, *args)

    monkeypatch.setattr(sqlite, "_append_and_commit", failing)
    stranger = make_intent(tenant="t1", account="nobody", action_type="send_follow_up_email")
    answers = await submit_all(world.gate, [*intents(5), stranger])
    # Submitted together, decided together, lost together: every submitter hears
    # of the failure (the unknown account still gets its own answer).
    assert all(isinstance(a, AgentdError) for a in answers)
    assert isinstance(answers[-1], NotFound)
    assert all("disk I/O error" in a.message for a in answers[:-1])  # type: ignore[union-attr]
    for table in ("intents", "budget_consumption", "idempotency", "execution_queue", "audit"):
        assert world.count(table) == 0, table
    # The same intents, submitted again, are decided once and stored.
    again = await submit_all(world.gate, intents(5))
    assert [a["decision"] for a in again] == ["AUTO_EXECUTE"] * 5  # type: ignore[index]
    assert world.count("budget_consumption") == world.count("execution_queue") == 5
    assert (await world.store.verify_audit()).intact
