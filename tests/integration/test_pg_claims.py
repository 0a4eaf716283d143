"""Two daemons on one PostgreSQL database: their claims never overlap.

Each test opens two :class:`PostgresStore` objects on one database (two
daemons) and makes their transactions claim at the same moment: each claim
has taken its rows and waits, inside its transaction, until the other's
claim has run too. With ``FOR UPDATE SKIP LOCKED`` the second passes over the
rows the first holds; without the row locks (the control test) both take the
same hand-off, which is what the locks are for.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from agentd.config import AutonomyConfig, Settings
from agentd.core.intents import ActionIntent, make_intent
from agentd.core.timefmt import iso
from agentd.policy import gate_policy
from agentd.services.gate import GateService
from agentd.store.postgres import PgTx, PostgresStore
from agentd.testing.pgcluster import PgCluster
from tests.conformance.test_store_areas import account, execution
from tests.conformance.test_store_core import operation

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_names = itertools.count(1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with PgCluster() as pg:
        yield pg


@pytest.fixture
async def two(cluster: PgCluster) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    name = f"c{next(_names)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    a, b = PostgresStore(cluster.url_for(name)), PostgresStore(cluster.url_for(name))
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def queue_intents(store: PostgresStore, n: int) -> list[str]:
    """Store ``n`` approved intents and hand each to the execution queue."""
    ids = [f"int_{i:03d}" for i in range(n)]
    at = iso(NOW)
    async with store.write(NOW) as tx:
        for i, intent_id in enumerate(ids):
            await tx.execute(
                "INSERT INTO intents(id, fingerprint, tenant, account, action_type, diff, "
                "rationale, source, serves, created_at, created_by, decision, reason, tier, "
                "risk_level, outcome, status, updated_at) VALUES (?, ?, 't1', 'globex', "
                "'send_follow_up_email', '{}', 'r', 'operator', '{}', ?, 'tester', "
                "'AUTO_EXECUTE', 'ok', 'T1', 'LOW', '{}', 'approved', ?)",
                (intent_id, f"fp{i}", at, at),
            )
            await tx.execute(
                "INSERT INTO execution_queue(intent_id, approval_source, enqueued_at, "
                "updated_at, intent_seq) SELECT id, 'POLICY', ?, ?, seq FROM intents "
                "WHERE id = ?",
                (at, at, intent_id),
            )
    return ids


async def side_by_side(
    a: PostgresStore, b: PostgresStore, claim: Any, *, size: int = 5
) -> tuple[list[str], list[str]]:
    """Run ``claim(tx, size)`` in one transaction on each store at once; return what each took.

    Each transaction, having claimed, waits until the other has claimed too
    before it commits: the two claims overlap in time.
    """
    took: dict[str, list[str]] = {}
    claimed = {"a": anyio.Event(), "b": anyio.Event()}

    async def daemon(store: PostgresStore, me: str, other: str) -> None:
        async with store.write(NOW) as tx:
            took[me] = await claim(tx, size)
            claimed[me].set()
            with anyio.fail_after(10):
                await claimed[other].wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon, a, "a", "b")
        tg.start_soon(daemon, b, "b", "a")
    return took["a"], took["b"]


async def take_queue(tx: PgTx, size: int) -> list[str]:
    rows = await tx.execution.claim_queued(size)
    for row in rows:
        await tx.execution.mark_queue(row["intent_id"], "taken")
    return [str(r["intent_id"]) for r in rows]


async def test_two_daemons_take_disjoint_handoffs(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    ids = await queue_intents(a, 12)
    got_a, got_b = await side_by_side(a, b, take_queue)
    assert len(got_a) == len(got_b) == 5
    assert not set(got_a) & set(got_b)
    # Until the queue is empty, whoever looks: each hand-off taken exactly once.
    taken = got_a + got_b
    while True:
        more_a, more_b = await side_by_side(a, b, take_queue)
        if not more_a + more_b:
            break
        assert not set(more_a) & set(more_b)
        taken += more_a + more_b
    assert sorted(taken) == ids


async def test_without_the_row_locks_both_daemons_take_the_same_handoff(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """The control: the hazard the claim's row locks remove is real on this server."""
    a, b = two
    await queue_intents(a, 3)

    async def unlocked(tx: PgTx, size: int) -> list[str]:
        rows = await tx.execution.queued_intents(size)  # a plain read, no claim
        return [str(r["intent_id"]) for r in rows]

    got_a, got_b = await side_by_side(a, b, unlocked)
    assert got_a == got_b == ["int_000", "int_001", "int_002"]


async def test_two_daemons_lease_disjoint_executions(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    async with a.write(NOW) as tx:
        for i in range(8):
            await tx.execution.insert_execution(execution(f"exe_{i}", f"int_{i}"))
    until = iso(NOW + timedelta(seconds=30))

    async def lease(tx: PgTx, owner: str) -> list[str]:
        rows = await tx.execution.claim_executions(
            ["queued"], owner=owner, mine=owner.split("/")[0] + "/", until=until
        )
        return [e.id for e in rows]

    got: dict[str, list[str]] = {}
    go = {"a": anyio.Event(), "b": anyio.Event()}

    async def daemon(store: PostgresStore, me: str, other: str) -> None:
        async with store.write(NOW) as tx:
            got[me] = await lease(tx, f"{me}/1")
            go[me].set()
            with anyio.fail_after(10):
                await go[other].wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon, a, "a", "b")
        tg.start_soon(daemon, b, "b", "a")
    assert sorted(got["a"] + got["b"]) == [f"exe_{i}" for i in range(8)]
    assert not set(got["a"]) & set(got["b"])
    # Each holds what it claimed; neither can take the other's while the leases run.
    for e in await a.read_all("SELECT id, lease_owner FROM executions"):
        assert (e[0] in got["a"]) == (e[1] == "a/1")
    async with b.write(NOW + timedelta(seconds=10)) as tx:
        assert set(await tx.execution.renew_leases(got["a"], owner="b/1", until=until)) == set()
    # Daemon a dies: after its leases expire, b takes its executions over.
    async with b.write(NOW + timedelta(seconds=31)) as tx:
        taken = await tx.execution.claim_executions(
            ["queued"], owner="b/1", mine="b/", until=iso(NOW + timedelta(seconds=61))
        )
    assert sorted(e.id for e in taken) == [f"exe_{i}" for i in range(8)]


async def test_two_daemons_start_disjoint_operations(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    async with a.write(NOW) as tx:
        for i in range(6):
            created = iso(NOW + timedelta(seconds=i))
            await tx.ops.insert_operation(operation(f"op_{i}", created_at=created))

    async def start(tx: PgTx, size: int) -> list[str]:
        ops = await tx.ops.claim_pending(size)
        for op in ops:
            await tx.ops.update_operation(op.id, {"state": "in_progress"})
        return [op.id for op in ops]

    got_a, got_b = await side_by_side(a, b, start, size=3)
    assert sorted(got_a + got_b) == [f"op_{i}" for i in range(6)]
    assert not set(got_a) & set(got_b)


async def test_a_task_runs_once_per_interval_whichever_daemon_ticks(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = two
    wins: list[str] = []

    async def tick(store: PostgresStore, me: str) -> None:
        async with store.write(NOW) as tx:
            if await tx.proactive.claim_task_run(
                "scan", owner=me, due_before=NOW, until=NOW + timedelta(minutes=5)
            ):
                wins.append(me)
            await anyio.sleep(0.2)  # the other daemon's claim meets this one uncommitted

    for _ in range(3):  # the first tick inserts the row, later ones update it
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick, a, "a")
            tg.start_soon(tick, b, "b")
        assert len(wins) == 1, wins
        async with a.write(NOW) as tx:
            await tx.proactive.record_task_run("scan", NOW - timedelta(hours=1), ok=True, detail="")
        wins.clear()
    row = await a.read_one("SELECT runs FROM task_runs WHERE name = 'scan'")
    assert row is not None and int(row[0]) == 3


async def test_two_daemons_gates_consume_each_budget_once(
    two: tuple[PostgresStore, PostgresStore], tmp_path: Path
) -> None:
    """Both daemons decide the same intents at once, under one tenant's budget of 10."""
    a, b = two
    settings = Settings(
        state_dir=tmp_path,
        autonomy=AutonomyConfig(level="L3+"),
        budget={"per_tenant_daily": 10, "per_account_daily": 100},  # type: ignore[arg-type]
    )
    policy = gate_policy(settings)
    gates = [
        GateService(
            s, lambda: policy, approval_ttl=lambda _t: timedelta(hours=1), clock=lambda: NOW
        )
        for s in (a, b)
    ]
    async with a.write(NOW) as tx:
        await tx.gate.upsert_accounts([account("globex")], iso(NOW))
    intents = [
        make_intent(
            tenant="t1",
            account="globex",
            action_type="send_follow_up_email",
            rationale=f"r{i}",
            source="operator",
        )
        for i in range(30)
    ]
    answers: dict[str, set[str]] = {}

    async def submit(gate: GateService, intent: ActionIntent) -> None:
        r = await gate.submit(intent, "tester")
        answers.setdefault(r["intent_id"], set()).add(r["decision"])

    async with anyio.create_task_group() as tg:
        for g in gates:
            tg.start_soon(g.run)
        async with anyio.create_task_group() as subs:
            for intent in intents:  # each to both daemons at once
                for g in gates:
                    subs.start_soon(submit, g, intent)
        tg.cancel_scope.cancel()
    for g in gates:
        g.close()
    # One decision per intent, whichever daemon answered; the budget consumed once each.
    assert len(answers) == 30 and all(len(d) == 1 for d in answers.values())
    auto = [i for i, d in answers.items() if d == {"AUTO_EXECUTE"}]
    consumed = [r[0] for r in await a.read_all("SELECT intent_id FROM budget_consumption")]
    assert sorted(consumed) == sorted(auto) and len(auto) == 10
    used = await a.read_one("SELECT used FROM budget_usage WHERE scope = 'tenant'")
    assert used is not None and int(used[0]) == 10
    assert (await a.verify_audit()).intact
