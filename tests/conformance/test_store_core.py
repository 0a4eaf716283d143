"""Every store: lifecycle, meta, the audit chain, and what a transaction promises."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from agentd.core.audit import AuditEvent
from agentd.core.timefmt import iso
from agentd.errors import StoreError
from agentd.store.base import Store
from tests.conformance.conftest import Opened

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def operation(op_id: str, **over: Any) -> dict[str, Any]:
    """Return the values of a new operation as the operations service stores one."""
    return {
        "id": op_id,
        "account": "acme",
        "service": "backoffice",
        "workflow": "update_product_seo",
        "params": {"sku": "A-1"},
        "state": "pending",
        "step": 0,
        "total": 3,
        "created_by": "tester",
        "created_at": iso(NOW),
        "updated_at": iso(NOW),
        **over,
    }


# -- lifecycle and meta -------------------------------------------------------------


async def test_a_fresh_store_is_migrated_to_the_latest_schema(store: Store) -> None:
    info = await store.info()
    assert info.schema_version == info.latest_schema_version >= 1
    await store.health_check()


async def test_meta_is_set_replaced_and_missing_is_none(store: Store) -> None:
    assert await store.get_meta("conformance.k") is None
    await store.set_meta("conformance.k", "one")
    await store.set_meta("conformance.k", "two")
    assert await store.get_meta("conformance.k") == "two"


async def test_data_survives_a_reopen(opened: Opened) -> None:
    await opened.store.set_meta("conformance.k", "kept")
    await opened.store.append_audit([AuditEvent("A", "alice")], NOW)
    store = await opened.reopen()
    assert await store.get_meta("conformance.k") == "kept"
    assert [r.event for r in await store.audit_tail(5)] == ["A"]
    assert (await store.verify_audit()).intact


async def test_a_closed_store_refuses_reads_and_writes(opened: Opened) -> None:
    store = opened.store
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(StoreError):
        await store.get_meta("x")
    with pytest.raises(StoreError):
        await store.ops.get_operation("op_1")
    with pytest.raises(StoreError):
        async with store.write() as tx:
            tx.audit(AuditEvent("A", "alice"))
    await store.open()  # and it opens again for the fixture's close


# -- the audit chain --------------------------------------------------------------


async def test_audit_records_come_back_in_append_order_and_chained(store: Store) -> None:
    first = await store.append_audit([AuditEvent("A", "alice", "x", {"n": 1})], NOW)
    more = await store.append_audit([AuditEvent("B", "bob"), AuditEvent("C", "carol")], NOW)
    records = [r async for r in store.audit_records()]
    assert [r.event for r in records] == ["A", "B", "C"]
    assert [r.seq for r in records] == [1, 2, 3]
    assert [r.seq for r in [*first, *more]] == [1, 2, 3]
    assert records[0].data == {"n": 1} and records[0].subject == "x"
    for earlier, later in itertools.pairwise(records):
        assert later.prev_hash == earlier.hash
    assert [r.event for r in await store.audit_tail(2)] == ["B", "C"]
    assert [r.event async for r in store.audit_records(after_seq=2)] == ["C"]
    verdict = await store.verify_audit()
    assert verdict.intact and verdict.count == 3


async def test_an_append_never_replaces_an_earlier_record(store: Store) -> None:
    await store.append_audit([AuditEvent("A", "alice")], NOW)
    before = await store.audit_tail(1)
    for n in range(5):
        await store.append_audit([AuditEvent(f"E{n}", "bob")], NOW)
    records = [r async for r in store.audit_records()]
    assert records[0] == before[0]
    assert len({r.seq for r in records}) == len(records) == 6


async def test_a_record_changed_behind_the_store_fails_verification(opened: Opened) -> None:
    store = opened.store
    await store.append_audit([AuditEvent(e, "alice") for e in ("A", "B", "C")], NOW)
    assert (await store.verify_audit()).intact
    await opened.backend.tamper(opened.folder, 2)
    verdict = await store.verify_audit()
    assert not verdict.intact
    assert verdict.first_broken_seq == 2


async def test_audit_events_commit_with_their_transaction(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.ops.insert_operation(operation("op_1"))
        tx.audit(AuditEvent("OPERATION_CREATED", "tester", "op_1"))
    tail = await store.audit_tail(1)
    assert [(r.event, r.subject, r.at) for r in tail] == [("OPERATION_CREATED", "op_1", iso(NOW))]


# -- transactions -------------------------------------------------------------------


async def test_a_transaction_reads_its_own_writes(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.ops.insert_operation(operation("op_1"))
        await tx.ops.update_operation("op_1", {"state": "running", "step": 1})
        seen = await tx.ops.get_operation("op_1")
        assert seen is not None and (seen.state, seen.step) == ("running", 1)
        assert [o.id for o in await tx.ops.operations_in_state(["running"])] == ["op_1"]


async def test_committed_reads_do_not_see_an_open_transaction(store: Store) -> None:
    inside = anyio.Event()
    release = anyio.Event()

    async def writer() -> None:
        async with store.write(NOW) as tx:
            await tx.ops.insert_operation(operation("op_1"))
            inside.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await inside.wait()
        assert await store.ops.get_operation("op_1") is None
        release.set()
    stored = await store.ops.get_operation("op_1")
    assert stored is not None and stored.params == {"sku": "A-1"}


async def test_an_exception_rolls_back_the_transaction_and_keeps_what_committed(
    store: Store,
) -> None:
    async with store.write(NOW) as tx:
        await tx.ops.insert_operation(operation("op_kept"))
        tx.audit(AuditEvent("KEPT", "tester"))

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.write(NOW) as tx:
            await tx.ops.insert_operation(operation("op_lost"))
            await tx.ops.update_operation("op_kept", {"state": "failed"})
            await tx.gov.set_meta("conformance.lost", "1")
            tx.audit(AuditEvent("LOST", "tester"))
            raise Boom
    assert await store.ops.get_operation("op_lost") is None
    kept = await store.ops.get_operation("op_kept")
    assert kept is not None and kept.state == "pending"
    assert await store.get_meta("conformance.lost") is None
    assert [r.event for r in await store.audit_tail(5)] == ["KEPT"]
    # The chain goes on from what committed.
    await store.append_audit([AuditEvent("AFTER", "tester")], NOW)
    assert (await store.verify_audit()).intact


async def test_a_duplicate_key_is_a_store_error_and_loses_nothing(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.ops.insert_operation(operation("op_1"))
    with pytest.raises(StoreError):
        async with store.write(NOW) as tx:
            await tx.ops.insert_operation(operation("op_1", workflow="other"))
    stored = await store.ops.get_operation("op_1")
    assert stored is not None and stored.workflow == "update_product_seo"


async def test_write_transactions_are_serial_so_a_claim_is_taken_once(store: Store) -> None:
    """Read-then-update in one transaction is atomic: of many claimants, one wins."""
    async with store.write(NOW) as tx:
        await tx.ops.insert_operation(operation("op_1"))
    winners: list[str] = []

    async def claim(who: str) -> None:
        async with store.write(NOW) as tx:
            op = await tx.ops.get_operation("op_1")
            assert op is not None
            await anyio.sleep(0)  # let the others try meanwhile
            if op.lease_owner is None:
                await tx.ops.update_operation("op_1", {"lease_owner": who, "state": "running"})
                winners.append(who)

    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(claim, f"w{n}")
    stored = await store.ops.get_operation("op_1")
    assert len(winners) == 1 and stored is not None and stored.lease_owner == winners[0]
