"""Every store, area by area: the operations' contracts, seen through the Store protocol.

The gate's intents are written by the gate's own batch (``write_block``), so
its tests drive a real :class:`GateService` over the store under test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.config import AutonomyConfig, Settings
from agentd.core.audit import AuditEvent
from agentd.core.gate import IdempotencyState
from agentd.core.goals import Goal, GoalType
from agentd.core.intents import ActionIntent, make_intent
from agentd.core.interactions import Direction, Interaction, InteractionKind
from agentd.core.timefmt import iso
from agentd.errors import InvalidState, NotFound, StoreError
from agentd.policy import gate_policy
from agentd.services.gate import GateService
from agentd.store.base import BlockTransaction, Store
from agentd.store.records import GateBatchWrites
from tests.conformance.test_store_core import NOW, operation

DAY = NOW.date().isoformat()


def account(account_id: str, *, stage: str = "discovery", trust: str = "ACTIVE") -> dict[str, Any]:
    return {
        "id": account_id,
        "tenant": "t1",
        "name": account_id.title(),
        "stage": stage,
        "trusted_mode": trust,
        "domains": ["SALES"],
        "allowed_hosts": [],
    }


def execution(exe_id: str, intent_id: str, **over: Any) -> dict[str, Any]:
    return {
        "id": exe_id,
        "kind": "change",
        "intent_id": intent_id,
        "tenant": "t1",
        "account": "globex",
        "action_type": "send_follow_up_email",
        "executor": "message",
        "risk": "LOW",
        "autonomous": True,
        "state": "queued",
        "created_at": iso(NOW),
        "updated_at": iso(NOW),
        **over,
    }


def proposal(account_id: str) -> ActionIntent:
    return make_intent(
        tenant="t1",
        account=account_id,
        action_type="send_follow_up_email",
        rationale="buying signal",
        source="operator",
    )


@pytest.fixture
async def gate(store: Store, tmp_path: Path) -> AsyncIterator[GateService]:
    policy = gate_policy(Settings(state_dir=tmp_path, autonomy=AutonomyConfig(level="L3+")))
    service = GateService(
        store, lambda: policy, approval_ttl=lambda _t: timedelta(hours=72), clock=lambda: NOW
    )
    async with store.write(NOW) as tx:
        await tx.gate.upsert_accounts([account("globex"), account("wayne", trust="NONE")], iso(NOW))
    async with anyio.create_task_group() as tg:
        tg.start_soon(service.run)
        yield service
        tg.cancel_scope.cancel()
    service.close()


# -- the gate -------------------------------------------------------------------------


async def test_accounts_are_upserted_read_and_updated(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.gate.upsert_accounts([account("globex"), account("initech")], iso(NOW))
        await tx.gate.upsert_accounts([account("globex", stage="negotiation")], iso(NOW))
        await tx.gate.update_account("initech", {"trusted_mode": "NONE"}, iso(NOW))
    globex = await store.gate.get_account("globex")
    assert globex is not None and globex.stage == "negotiation"
    assert [a.id for a in await store.gate.list_accounts(tenant="t1")] == ["globex", "initech"]
    found = await store.gate.accounts_by_id(["initech", "nobody"])
    assert list(found) == ["initech"] and found["initech"].trusted_mode == "NONE"
    assert await store.gate.get_account("nobody") is None


async def test_an_intent_is_stored_once_and_its_budget_consumed_once(
    store: Store, gate: GateService
) -> None:
    intent = proposal("globex")
    first = await gate.submit(intent, "tester")
    assert first["decision"] == "AUTO_EXECUTE"
    again = await gate.submit(intent, "tester")
    assert again["duplicate"] is True and again["intent_id"] == first["intent_id"]
    assert [i.intent.intent_id for i in await store.gate.list_intents()] == [intent.intent_id]
    used = await store.gate.budget_used(DAY, [("account", "t1/globex"), ("tenant", "t1")])
    assert used == {("account", "t1/globex"): 1, ("tenant", "t1"): 1}
    assert await store.gate.idempotency_states([intent.intent_id]) == {
        intent.intent_id: IdempotencyState.PUBLISHED
    }
    assert await store.gate.intent_status(intent.intent_id) == "approved"
    queued = await store.gate.list_queue()
    assert [q["intent_id"] for q in queued] == [intent.intent_id]
    entry = await store.gate.queue_entry(intent.intent_id)
    assert entry is not None and entry["state"] == "queued"


async def test_a_pending_intent_is_approved_once_and_handed_off_once(
    store: Store, gate: GateService
) -> None:
    intent = proposal("wayne")
    assert (await gate.submit(intent, "tester"))["decision"] == "REQUIRE_APPROVAL"
    assert await store.gate.queue_entry(intent.intent_id) is None
    approved = await gate.approve(intent.intent_id, "alice", "fine")
    assert approved["status"] == "approved" and approved["decided_by"] == "alice"
    with pytest.raises(InvalidState):
        await gate.approve(intent.intent_id, "bob", None)
    async with store.write(NOW) as tx:
        await tx.gate.enqueue([(intent.intent_id, "HUMAN", iso(NOW))])  # again: a no-op
    assert [q["intent_id"] for q in await store.gate.list_queue()] == [intent.intent_id]
    record = await store.gate.get_intent(intent.intent_id)
    assert record is not None and record.approval_source == "HUMAN"


async def test_pending_intents_expire_at_their_deadline(store: Store, gate: GateService) -> None:
    intent = proposal("wayne")
    await gate.submit(intent, "tester")
    stored = await store.gate.get_intent(intent.intent_id)
    assert stored is not None and stored.expires_at is not None
    assert await store.gate.due_intents(iso(NOW)) == []
    assert await store.gate.due_intents(stored.expires_at) == [intent.intent_id]
    async with store.write(NOW) as tx:
        await tx.gate.expire_intents([intent.intent_id], stored.expires_at)
    assert await store.gate.intent_status(intent.intent_id) == "expired"
    assert await store.gate.due_intents(stored.expires_at) == []


async def test_a_refused_intent_is_not_stored(store: Store, gate: GateService) -> None:
    intent = proposal("nobody")
    with pytest.raises(NotFound):  # an unknown account: refused, nothing stored
        await gate.submit(intent, "tester")
    assert await store.gate.get_intent(intent.intent_id) is None
    with pytest.raises(NotFound):
        await gate.approve(intent.intent_id, "alice", None)


async def test_a_batch_that_consumes_one_intent_twice_is_refused_whole(
    store: Store, gate: GateService
) -> None:
    """The gate batch's own write: budget consumption is recorded once per intent, ever."""
    intent = proposal("globex")
    await gate.submit(intent, "tester")
    stored = await store.gate.get_intent(intent.intent_id)
    assert stored is not None
    other = proposal("wayne")

    def block(tx: BlockTransaction) -> None:
        rows = tx.gate.read_batch([intent, other], DAY, NOW, ["autonomy.level"])
        assert list(rows.stored) == [intent.intent_id]
        assert rows.counters[("account", "t1/globex")] == 1
        assert rows.counters[("account", "t1/wayne")] == 0
        tx.audit(AuditEvent("LOST", "tester"))
        tx.gate.write_batch(
            GateBatchWrites(
                DAY,
                consumed=[(intent.intent_id, DAY, iso(NOW))],
                counters={("account", "t1/globex"): 2},
            )
        )

    with pytest.raises(StoreError):
        await store.write_block(block, NOW)
    used = await store.gate.budget_used(DAY, [("account", "t1/globex")])
    assert used == {("account", "t1/globex"): 1}
    assert [r.event for r in await store.audit_tail(1)] != ["LOST"]


# -- executions, tokens, incidents ------------------------------------------------------


async def test_executions_are_written_read_and_counted(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.execution.insert_execution(
            execution("exe_1", "int_1", params={"to": "a@example.com"})
        )
        await tx.execution.insert_execution(execution("exe_2", "int_2", state="running"))
        await tx.execution.update_execution(
            "exe_1", {"state": "succeeded", "result": {"sent": True}}
        )
        assert (await tx.execution.get_execution("exe_1")).state == "succeeded"  # type: ignore[union-attr]
    one = await store.execution.get_execution("exe_1")
    assert one is not None and one.params == {"to": "a@example.com"}
    assert one.result == {"sent": True}
    assert [e.id for e in await store.execution.executions_in_state(["running"])] == ["exe_2"]
    assert {e.id for e in await store.execution.list_executions()} == {"exe_1", "exe_2"}
    changes = await store.execution.changes_of_intents(["int_1", "int_3"])
    assert list(changes) == ["int_1"] and changes["int_1"]["state"] == "succeeded"
    assert await store.execution.change_ids_by_executor("message", ["running"], 10) == ["exe_2"]


async def test_a_rollback_token_and_its_incident(store: Store) -> None:
    deadline = iso(NOW + timedelta(hours=24))
    async with store.write(NOW) as tx:
        await tx.execution.insert_execution(execution("exe_1", "int_1", state="succeeded"))
        await tx.execution.insert_execution(
            execution("exe_r", "int_1", kind="rollback", rollback_of="exe_1")
        )
        await tx.execution.insert_token(
            {
                "token": "rbk_1",
                "execution_id": "exe_1",
                "risk": "LOW",
                "executed_at": iso(NOW),
                "deadline": deadline,
            }
        )
        await tx.execution.insert_incident(
            {
                "id": "inc_1",
                "severity": "high",
                "kind": "execution_failed",
                "title": "it failed",
                "ref": "exe_1",
                "created_at": iso(NOW),
            }
        )
    token = await store.execution.token_for_execution("exe_1")
    assert token is not None and token.token == "rbk_1" and token.state == "available"
    async with store.write(NOW) as tx:
        await tx.execution.update_token("rbk_1", {"state": "used", "used_by": "alice"})
        await tx.execution.update_incident("inc_1", {"status": "resolved"})
    used = await store.execution.get_token("rbk_1")
    assert used is not None and used.state == "used"
    assert [t.token for t in await store.execution.list_tokens()] == ["rbk_1"]
    assert await store.execution.rollbacks_of("exe_1") == ["exe_r"]
    assert await store.execution.has_incident("exe_1")
    assert not await store.execution.has_incident("exe_r")
    incident = await store.execution.get_incident("inc_1")
    assert incident is not None and incident.status == "resolved"
    assert [i.id for i in await store.execution.list_incidents(status="resolved")] == ["inc_1"]


async def test_a_handoff_is_taken_once(store: Store, gate: GateService) -> None:
    intent = proposal("globex")
    await gate.submit(intent, "tester")
    async with store.write(NOW) as tx:
        taken = await tx.execution.queued_intents(10)
        assert [r["intent_id"] for r in taken] == [intent.intent_id]
        await tx.execution.mark_queue(intent.intent_id, "taken")
        assert await tx.execution.queued_intents(10) == []
    async with store.write(NOW) as tx:
        assert await tx.execution.queued_intents(10) == []


# -- operations, consents, secrets --------------------------------------------------------


async def test_operation_steps_are_appended_in_order(store: Store) -> None:
    step = {"attempt": 1, "intent": "save", "target": "#save", "source": "kb", "at": iso(NOW)}
    async with store.write(NOW) as tx:
        await tx.ops.insert_operation(operation("op_1", execution_id="exe_1"))
        await tx.ops.insert_steps(
            [
                {**step, "op_id": "op_1", "idx": 1, "action": "fill", "status": "ok"},
                {**step, "op_id": "op_1", "idx": 2, "action": "click", "status": "planned"},
            ]
        )
        await tx.ops.insert_steps(
            [{**step, "op_id": "op_1", "idx": 2, "action": "click", "status": "ok"}]
        )
        assert await tx.ops.planned_commits("op_1", 1) == [2]
    steps = await store.ops.list_steps("op_1")
    assert [(s.seq, s.idx, s.status) for s in steps] == [
        (1, 1, "ok"),
        (2, 2, "planned"),
        (3, 2, "ok"),
    ]
    assert [s.seq for s in await store.ops.list_steps("op_1", after_seq=2)] == [3]
    assert await store.ops.latest_operation_id("exe_1", "update_product_seo") == "op_1"
    assert await store.ops.latest_operation_id("exe_1", "other") is None
    assert [o.id for o in await store.ops.list_operations(state="pending")] == ["op_1"]


async def test_consents_are_versioned_and_revoked(store: Store) -> None:
    async with store.write(NOW) as tx:
        first = await tx.ops.upsert_consent("acme", "backoffice", "*", ["read"], "alice")
        second = await tx.ops.upsert_consent("acme", "backoffice", "*", ["read", "write"], "bob")
    assert (first.version, second.version) == (1, 2)
    active = await store.ops.active_consent("acme", "backoffice", "update_product_seo")
    assert active is not None and active.permissions == ("read", "write")
    async with store.write(NOW) as tx:
        revoked = await tx.ops.revoke_consent("acme", "backoffice", "*", "carol")
    async with store.write(NOW + timedelta(seconds=1)) as tx:
        assert await tx.ops.revoke_consent("acme", "backoffice", "*", "carol") is None
    assert revoked is not None and revoked.revoked_by == "carol"
    assert await store.ops.active_consent("acme", "backoffice", "update_product_seo") is None
    assert [c.active for c in await store.ops.list_consents("acme")] == [False]


async def test_secrets_are_sealed_blobs_listed_without_values(store: Store) -> None:
    async with store.write(NOW) as tx:
        assert not await tx.ops.upsert_secret("acme", "bo", "password", b"\x00s1", "fp1", "alice")
        assert await tx.ops.upsert_secret("acme", "bo", "password", b"\x00s2", "fp1", "alice")
    assert await store.ops.secrets_by_key() == {"fp1": 1}
    assert await store.ops.secret_blobs("acme", "bo", ["password", "other"]) == {
        "password": b"\x00s2"
    }
    listed = await store.ops.list_secrets("acme")
    assert [s["name"] for s in listed] == ["password"] and "blob" not in listed[0]
    async with store.write(NOW) as tx:
        assert await tx.ops.delete_secret("acme", "bo", "password")
        assert not await tx.ops.delete_secret("acme", "bo", "password")
    assert await store.ops.secret_blobs("acme", "bo", ["password"]) == {}


# -- governance ---------------------------------------------------------------------------


async def test_governance_meta_and_breaker_trips(store: Store) -> None:
    trip = {
        "key": "failures",
        "rule": "failures",
        "action": "revert_to_l3",
        "severity": "high",
        "alert_only": False,
        "value": 5.0,
        "threshold": 3.0,
        "message": "too many failures",
        "tripped_at": iso(NOW),
    }
    async with store.write(NOW) as tx:
        await tx.gov.set_meta("autonomy.level", "L3")
        await tx.gov.insert_trip({"id": "trp_1", **trip})
    assert await store.gov.read_meta(["autonomy.level", "missing"]) == {"autonomy.level": "L3"}
    assert [t.id for t in await store.gov.open_trips()] == ["trp_1"]
    with pytest.raises(StoreError):  # one open trip per key
        async with store.write(NOW) as tx:
            await tx.gov.insert_trip({"id": "trp_2", **trip})
    async with store.write(NOW) as tx:
        await tx.gov.reset_trips(["trp_1"], NOW + timedelta(hours=1), "alice", "fixed")
    assert await store.gov.open_trips() == []
    between = await store.gov.trips_between(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert [t.id for t in between] == ["trp_1"]


async def test_scope_proposals_pending_then_decided(store: Store) -> None:
    async with store.write(NOW) as tx:
        await tx.gov.insert_proposal(
            {
                "id": "scope_1",
                "status": "pending",
                "source": "operator",
                "requested_by": "alice",
                "current_level": "L3",
                "target_level": "L3+",
                "action_types": ["send_follow_up_email"],
                "rationale": "ready",
                "required_approvals": 2,
                "created_at": iso(NOW),
                "expires_at": iso(NOW + timedelta(days=7)),
            }
        )
    pending = await store.gov.pending_proposal()
    assert pending is not None and pending.id == "scope_1"
    async with store.write(NOW) as tx:
        await tx.gov.update_proposal("scope_1", {"status": "approved", "decided_by": "bob"})
    assert await store.gov.pending_proposal() is None
    decided = await store.gov.get_proposal("scope_1")
    assert decided is not None and decided.status == "approved"


# -- the proactive side and the digest --------------------------------------------------


async def test_goals_task_runs_and_summaries(store: Store) -> None:
    goal = Goal(
        id="goal_1",
        tenant="t1",
        goal_type=GoalType.PIPELINE,
        target=3.0,
        start=NOW,
        end=NOW + timedelta(days=30),
        name="three more",
    )
    async with store.write(NOW) as tx:
        await tx.proactive.insert_goal(goal, "alice")
        await tx.proactive.record_task_run("digest", NOW, ok=True, detail="sent")
        await tx.proactive.upsert_summary(
            "acme", "quiet", method="extractive", count=2, last_at=None, fallback_reason=None
        )
        await tx.proactive.upsert_summary(
            "acme", "busy", method="extractive", count=5, last_at=None, fallback_reason=None
        )
    stored = await store.proactive.get_goal("goal_1")
    assert stored is not None and stored.goal.target == 3.0
    assert [g.goal.id for g in await store.proactive.list_goals(include_final=False)] == ["goal_1"]
    runs = await store.proactive.task_runs()
    assert list(runs) == ["digest"] and runs["digest"]["last_result"] == "ok"
    summary = await store.proactive.get_summary("acme")
    assert summary is not None and summary["summary"] == "busy"


async def test_interactions_are_stored_once_and_scanned_by_account(store: Store) -> None:
    def contact(ident: str, account_id: str, hours: int) -> Interaction:
        at = NOW + timedelta(hours=hours)
        return Interaction(ident, account_id, InteractionKind.EMAIL, Direction.IN, at, 0.5, "hi")

    first = [contact("m1", "acme", 1), contact("m2", "acme", 0), contact("m3", "globex", 2)]
    async with store.write(NOW) as tx:
        assert await tx.proactive.insert_interactions(first, iso(NOW)) == 3
    async with store.write(NOW) as tx:
        again = [contact("m1", "acme", 1), contact("m4", "acme", 3)]
        assert await tx.proactive.insert_interactions(again, iso(NOW)) == 1
    recent = await store.proactive.recent_interactions("acme", NOW.timestamp())
    assert [i.id for i in recent] == ["m2", "m1", "m4"]

    def work(known: set[str], histories: Any) -> list[tuple[str, list[str]]]:
        assert known == set()
        return [(account_id, [i[0] for i in items]) for account_id, items in histories]

    scanned = await store.proactive.scan_histories(NOW.timestamp(), iso(NOW), work)
    assert scanned == [("acme", ["m2", "m1", "m4"]), ("globex", ["m3"])]


async def test_the_digest_reads_the_first_audit_record(store: Store) -> None:
    assert await store.digest.first_audit_at() is None
    await store.append_audit([AuditEvent("A", "alice")], NOW)
    await store.append_audit([AuditEvent("B", "bob")], NOW + timedelta(hours=1))
    assert await store.digest.first_audit_at() == NOW
    assert await store.gov.first_audit_at() == iso(NOW)


async def test_counts_over_a_period_read_states_and_audit_data(store: Store) -> None:
    # The counts that sum conditions and read the audit records' JSON data.
    done = iso(NOW + timedelta(minutes=5))
    async with store.write(NOW) as tx:
        await tx.gate.upsert_accounts([account("globex")], iso(NOW))
        rows = [
            execution("exe_1", "int_1", state="succeeded", finished_at=done, autonomous=False),
            execution("exe_2", "int_2", state="failed", finished_at=done, autonomous=False),
            execution("exe_3", "int_3", state="succeeded", finished_at=done),
            execution("exe_4", "int_4", state="handed_off", executor="handoff", started_at=done),
        ]
        for row in rows:
            await tx.execution.insert_execution(row)
        tx.audit(AuditEvent("KILL_SWITCH_CHANGED", "alice", data={"on": True}))
        tx.audit(AuditEvent("KILL_SWITCH_CHANGED", "alice", data={"on": False}))
        tx.audit(AuditEvent("BREAKER_TRIPPED", "agentd", data={"alert_only": False}))
        tx.audit(AuditEvent("BREAKER_TRIPPED", "agentd", data={"alert_only": True}))
        tx.audit(AuditEvent("APPROVAL_REFUSED", "mallory"))
    period = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    counts = await store.gov.metric_counts(*period)
    assert (counts.executions_succeeded, counts.executions_failed) == (2, 1)
    assert (counts.handoffs_open, counts.handoffs_done) == (1, 0)
    assert (counts.emergency_aborts, counts.constraint_violations) == (2, 1)
    stats = await store.gov.human_action_stats(*period)
    assert stats["send_follow_up_email"].succeeded == 1
    assert stats["send_follow_up_email"].failed == 1
    facts = await store.proactive.metric_counts("t1", *period)
    assert (facts["executions_succeeded"], facts["executions_total"]) == (2, 3)
    assert facts["pipeline_accounts"] == 1
    handoffs, total, still_open = await store.digest.handoffs(iso(period[0]), iso(period[1]), 10)
    assert [h.execution_id for h in handoffs] == ["exe_4"] and (total, still_open) == (1, 1)


async def test_task_runs_count_runs_and_failures(store: Store) -> None:
    for ok in (False, False, True):
        async with store.write(NOW) as tx:
            await tx.proactive.record_task_run("digest", NOW, ok=ok, detail=None)
    run = (await store.proactive.task_runs())["digest"]
    assert (run["runs"], run["failures"], run["consecutive_failures"]) == (3, 2, 0)
