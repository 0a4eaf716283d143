"""The store conformance suite: claims and leases (several daemons on one store).

What a store must do so that each piece of work runs on one daemon: the
hand-off queue and pending operations claimed inside a transaction, executions
leased to a runner until a deadline and taken over only when it expired (or
when the runner was this daemon's earlier process), a scheduled task's run
claimed once per interval. With one daemon (SQLite) the same operations hold
every claim; PostgreSQL adds that two daemons' claims never overlap
(``tests/integration/test_pg_claims.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from agentd.config import AutonomyConfig, Settings
from agentd.core.timefmt import iso
from agentd.policy import gate_policy
from agentd.services.gate import GateService
from agentd.store.base import Store
from tests.conformance.test_store_areas import account, execution, proposal
from tests.conformance.test_store_core import NOW, operation

LATER = NOW + timedelta(seconds=30)
OPEN = ["queued", "running"]


@pytest.fixture
async def gate(store: Store, tmp_path: Path) -> AsyncIterator[GateService]:
    policy = gate_policy(Settings(state_dir=tmp_path, autonomy=AutonomyConfig(level="L3+")))
    service = GateService(
        store, lambda: policy, approval_ttl=lambda _t: timedelta(hours=72), clock=lambda: NOW
    )
    async with store.write(NOW) as tx:
        await tx.gate.upsert_accounts([account("globex")], iso(NOW))
    async with anyio.create_task_group() as tg:
        tg.start_soon(service.run)
        yield service
        tg.cancel_scope.cancel()
    service.close()


async def test_a_claimed_handoff_is_taken_once(store: Store, gate: GateService) -> None:
    intent = proposal("globex")
    await gate.submit(intent, "tester")
    async with store.write(NOW) as tx:
        claimed = await tx.execution.claim_queued(10)
        assert [r["intent_id"] for r in claimed] == [intent.intent_id]
        assert claimed[0]["tenant"] == "t1" and isinstance(claimed[0]["diff"], dict)
        await tx.execution.mark_queue(intent.intent_id, "taken")
    async with store.write(NOW) as tx:
        assert await tx.execution.claim_queued(10) == []


async def test_an_execution_lease_is_held_until_it_expires(store: Store) -> None:
    until = iso(NOW + timedelta(seconds=20))
    async with store.write(NOW) as tx:
        await tx.execution.insert_execution(execution("exe_1", "int_1"))
        await tx.execution.insert_execution(execution("exe_2", "int_2", state="running"))
        await tx.execution.insert_execution(execution("exe_3", "int_3", state="succeeded"))
        got = await tx.execution.claim_executions(OPEN, owner="a/1", mine="a/", until=until)
    assert [(e.id, e.lease_owner) for e in got] == [("exe_1", None), ("exe_2", None)]
    stored = await store.execution.get_execution("exe_1")
    assert stored is not None and (stored.lease_owner, stored.lease_until) == ("a/1", until)
    # Another daemon finds nothing free while the lease runs; the holder finds its own.
    async with store.write(NOW + timedelta(seconds=10)) as tx:
        assert await tx.execution.claim_executions(OPEN, owner="b/1", mine="b/", until=until) == []
        mine = await tx.execution.claim_executions(OPEN, owner="a/1", mine="a/", until=until)
        assert [e.id for e in mine] == ["exe_1", "exe_2"]
    # Expired: the other daemon takes both over.
    async with store.write(NOW + timedelta(seconds=21)) as tx:
        taken = await tx.execution.claim_executions(
            OPEN, owner="b/1", mine="b/", until=iso(NOW + timedelta(seconds=41))
        )
        assert [(e.id, e.lease_owner) for e in taken] == [("exe_1", "a/1"), ("exe_2", "a/1")]
    stored = await store.execution.get_execution("exe_2")
    assert stored is not None and stored.lease_owner == "b/1"


async def test_a_restarted_daemon_takes_its_own_leases_at_once(store: Store) -> None:
    until = iso(NOW + timedelta(seconds=20))
    async with store.write(NOW) as tx:
        await tx.execution.insert_execution(execution("exe_1", "int_1"))
        await tx.execution.claim_executions(OPEN, owner="a/old", mine="a/", until=until)
    async with store.write(NOW) as tx:
        assert await tx.execution.claim_executions(OPEN, owner="b/1", mine="b/", until=until) == []
        again = await tx.execution.claim_executions(OPEN, owner="a/new", mine="a/", until=until)
        assert [(e.id, e.lease_owner) for e in again] == [("exe_1", "a/old")]
    # One daemon holding every lease (mine = ""): any other runner is gone.
    async with store.write(NOW) as tx:
        alone = await tx.execution.claim_executions(OPEN, owner="c/1", mine="", until=until)
        assert [e.lease_owner for e in alone] == ["a/new"]
    assert (await store.execution.get_execution("exe_1")).lease_owner == "c/1"  # type: ignore[union-attr]


async def test_leases_are_renewed_and_released_by_their_holder_only(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.execution.insert_execution(execution("exe_1", "int_1"))
        await tx.execution.insert_execution(execution("exe_2", "int_2"))
        await tx.execution.claim_executions(OPEN, owner="a/1", mine="a/", until=iso(LATER))
    longer = iso(NOW + timedelta(seconds=60))
    async with store.write(NOW) as tx:
        assert await tx.execution.renew_leases(
            ["exe_1", "exe_2", "exe_x"], owner="a/1", until=longer
        ) == {"exe_1", "exe_2"}
        assert await tx.execution.renew_leases(["exe_1"], owner="b/1", until=longer) == set()
        assert not await tx.execution.release_lease("exe_1", owner="b/1")
        assert await tx.execution.release_lease("exe_1", owner="a/1")
    one, two = [await store.execution.get_execution(i) for i in ("exe_1", "exe_2")]
    assert one is not None and (one.lease_owner, one.lease_until) == (None, None)
    assert two is not None and (two.lease_owner, two.lease_until) == ("a/1", longer)


async def test_pending_operations_are_claimed_oldest_first(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.ops.insert_operation(operation("op_2", created_at=iso(LATER)))
        await tx.ops.insert_operation(operation("op_1"))
        await tx.ops.insert_operation(operation("op_3", state="completed"))
        assert [o.id for o in await tx.ops.claim_pending(5)] == ["op_1", "op_2"]
        assert [o.id for o in await tx.ops.claim_pending(1)] == ["op_1"]


async def test_orphaned_operations_are_those_whose_runner_is_gone(store: Store) -> None:
    live, dead = iso(NOW + timedelta(seconds=60)), iso(NOW - timedelta(seconds=1))
    running = ["in_progress"]
    async with store.write(NOW) as tx:
        for op_id, owner, until in (
            ("op_live_b", "b/1", live),  # another daemon, alive
            ("op_dead_b", "b/1", dead),  # another daemon, lease expired
            ("op_mine_old", "a/old", live),  # this daemon before its restart
            ("op_mine_now", "a/new", live),  # this process
        ):
            await tx.ops.insert_operation(
                operation(op_id, state="in_progress", lease_owner=owner, lease_until=until)
            )
    async with store.write(NOW) as tx:
        found = await tx.ops.orphaned_operations(running, owner="a/new", mine="a/")
        assert sorted(o.id for o in found) == ["op_dead_b", "op_mine_old"]
        alone = await tx.ops.orphaned_operations(running, owner="a/new", mine="")
        assert sorted(o.id for o in alone) == ["op_dead_b", "op_live_b", "op_mine_old"]


async def test_a_task_run_is_claimed_once_per_interval(store: Store) -> None:
    hour = timedelta(hours=1)
    claim = {"until": NOW + hour}
    async with store.write(NOW) as tx:
        assert await tx.proactive.claim_task_run("scan", owner="a", due_before=NOW, **claim)
    async with store.write(NOW) as tx:
        # The other daemon's tick, while the run goes on: refused.
        assert not await tx.proactive.claim_task_run("scan", owner="b", due_before=NOW, **claim)
    async with store.write(NOW + timedelta(minutes=5)) as tx:
        await tx.proactive.record_task_run("scan", NOW, ok=True, detail="done")
    runs = await store.proactive.task_runs()
    assert runs["scan"]["last_run_at"] == iso(NOW) and runs["scan"]["claim_until"] is None
    # The claim is over, but this interval's run is done: a tick soon after is refused...
    soon = NOW + timedelta(minutes=10)
    async with store.write(soon) as tx:
        due = soon - hour * 0.9
        assert not await tx.proactive.claim_task_run("scan", owner="b", due_before=due, **claim)
    # ...and the next interval's is claimed by whichever daemon ticks first.
    nxt = NOW + hour
    async with store.write(nxt) as tx:
        due = nxt - hour * 0.9
        assert await tx.proactive.claim_task_run("scan", owner="b", due_before=due, **claim)
    assert (await store.proactive.task_runs())["scan"]["claimed_by"] == "b"


async def test_a_claim_left_by_a_dead_runner_expires(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.proactive.claim_task_run(
            "scan", owner="a", due_before=NOW, until=NOW + timedelta(minutes=1)
        )
    later = NOW + timedelta(minutes=2)
    async with store.write(later) as tx:
        # Its run never finished: once the claim expires, the task is due again.
        assert await tx.proactive.claim_task_run(
            "scan", owner="b", due_before=later, until=later + timedelta(minutes=1)
        )
