"""The proactive loop's services on a real SQLite store, with the real gate."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.commands import Dispatcher, InProcessClient
from agentd.commands import proactive as _registers  # noqa: F401
from agentd.commands.registry import AccessPolicy
from agentd.config import GateConfig, Settings
from agentd.core.audit import AuditEvent
from agentd.core.intents import ActionIntent, make_intent
from agentd.errors import InvalidArgument, NotFound
from agentd.policy import gate_policy
from agentd.proactive_config import (
    DigestConfig,
    GoalsConfig,
    InboxConfig,
    LLMConfig,
    PatternsConfig,
    PlannerConfig,
    SchedulerConfig,
)
from agentd.services.gate import GateService
from agentd.services.scheduler import ProactiveLoop
from agentd.store.sqlite import SqliteStore

# A fixed day, never the wall clock's: the services run on a clock that starts
# here and ticks, so a run that crosses midnight UTC sees the same dates.
NOW = datetime(2025, 7, 2, 12, 0, tzinfo=UTC)
_STARTED = time.monotonic()


def clock() -> datetime:
    """Return NOW plus the time the test run has taken so far."""
    return NOW + timedelta(seconds=time.monotonic() - _STARTED)


@dataclass
class Cfg:
    state_dir: Path
    gate: GateConfig = field(default_factory=GateConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    patterns: PatternsConfig = field(default_factory=PatternsConfig)
    goals: GoalsConfig = field(default_factory=GoalsConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)


@dataclass
class World:
    store: SqliteStore
    gate: GateService
    loop: ProactiveLoop
    cfg: Cfg
    client: InProcessClient


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SqliteStore(tmp_path / "agentd.sqlite3", synchronous="NORMAL")
    await store.open()
    policy = gate_policy(Settings(state_dir=tmp_path))
    gate = GateService(
        store, lambda: policy, approval_ttl=lambda _t: timedelta(hours=72), clock=clock
    )
    cfg = Cfg(tmp_path)
    loop = ProactiveLoop(store, gate, lambda: cfg, clock=clock)  # type: ignore[arg-type, return-value]
    app: Any = type("FakeApp", (), {"store": store, "proactive": loop})()
    client = InProcessClient(Dispatcher(app, AccessPolicy(daemon_uid=os.getuid())))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate.run)
            await _accounts(store)
            yield World(store, gate, loop, cfg, client)
            tg.cancel_scope.cancel()
    finally:
        gate.close()
        await store.close()


async def _accounts(store: SqliteStore) -> None:
    at = NOW.isoformat()
    async with store.write(NOW) as tx:
        await tx.executemany(
            "INSERT INTO accounts(id, tenant, name, stage, created_at, updated_at) "
            "VALUES (?, 't1', ?, ?, ?, ?)",
            [
                ("acme", "Acme", "discovery", at, at),
                ("globex", "Globex", "prospect", at, at),
                ("initech", "Initech", "qualification", at, at),
            ],
        )


def _iso(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in records) + b"\n"


BUYING = [
    {"id": "b1", "account": "acme", "kind": "pricing_page_visit", "direction": "in", "at": _iso(3)},
    {"id": "b2", "account": "acme", "kind": "pricing_page_visit", "direction": "in", "at": _iso(2)},
    {
        "id": "b3",
        "account": "acme",
        "kind": "email",
        "direction": "in",
        "at": _iso(1),
        "sentiment": 0.5,
        "summary": "Asked about the budget for a pilot. Wants a proposal soon.",
    },
]


async def test_import_jsonl_then_duplicates_are_ignored(world: World) -> None:
    first = await world.client.call(
        "interactions.import", {"name": "i.jsonl"}, upload=_jsonl(BUYING)
    )
    assert (first["imported"], first["duplicates"]) == (3, 0)
    again = await world.client.call(
        "interactions.import", {"name": "i.jsonl"}, upload=_jsonl(BUYING)
    )
    assert (again["imported"], again["duplicates"]) == (0, 3)
    row = await world.store.read_one("SELECT COUNT(*) FROM interactions")
    assert row is not None and row[0] == 3


async def test_import_csv(world: World) -> None:
    text = (
        "id,account,kind,direction,at,sentiment,summary\n"
        f'c1,globex,meeting,out,{_iso(1)},0.2,"Demo went well, they liked it."\n'
        f"c2,globex,chat,in,{_iso(0.5)},,\n"
    )
    r = await world.client.call("interactions.import", {"name": "x.csv"}, upload=text.encode())
    assert r["imported"] == 2


FUTURE = (NOW + timedelta(days=2)).isoformat()


@pytest.mark.parametrize(
    ("name", "body", "line", "field_name"),
    [
        ("a.csv", "id,account,kind,direction\n", 1, "at"),
        (
            "a.csv",
            f"id,account,kind,direction,at\nx1,acme,email,in,{_iso(1)}\nx2,acme,email,in,yesterday\n",
            3,
            "at",
        ),
        ("a.csv", f"id,account,kind,direction,at\nx1,nobody,email,in,{_iso(1)}\n", 2, "account"),
        ("a.csv", f"id,account,kind,direction,at\nx1,acme,email,in,{FUTURE}\n", 2, "at"),
        ("a.jsonl", '{"id": "j1"}\nnot json\n', 1, "account"),
        ("a.jsonl", f"{json.dumps(BUYING[0])}\nnot json\n", 2, "json"),
    ],
)
async def test_bad_files_import_nothing_and_name_file_and_line(
    world: World, name: str, body: str, line: int, field_name: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await world.client.call("interactions.import", {"name": name}, upload=body.encode())
    assert err.value.details["file"] == name
    assert err.value.details["line"] == line
    assert err.value.details["field"] == field_name
    row = await world.store.read_one("SELECT COUNT(*) FROM interactions")
    assert row is not None and row[0] == 0


async def test_empty_file_and_skip_bad(world: World) -> None:
    with pytest.raises(InvalidArgument, match="no interactions"):
        await world.client.call("interactions.import", {"name": "e.jsonl"}, upload=b"\n")
    body = _jsonl(BUYING[:1]) + b"garbage\n"
    r = await world.client.call(
        "interactions.import", {"name": "s.jsonl", "skip_bad": True}, upload=body
    )
    assert r["imported"] == 1 and r["skipped"] == 1
    assert r["skipped_rows"][0]["line"] == 2


async def test_scan_stores_patterns_once_and_planner_never_duplicates(world: World) -> None:
    await world.client.call("interactions.import", {"name": "i.jsonl"}, upload=_jsonl(BUYING))
    first = await world.loop.scanner.scan()
    assert first.new == 1 and first.accounts == 1
    again = await world.loop.scanner.scan()
    assert again.new == 0 and again.detected == 1
    listed = await world.client.call("patterns", {"account": "acme"})
    assert [p["kind"] for p in listed["patterns"]] == ["buying_signal"]
    assert set(listed["patterns"][0]["evidence"]) == {"b1", "b2", "b3"}

    report = await world.loop.planner.check()
    assert report.submitted == 1
    rows = await world.store.read_all("SELECT id, action_type, serves, source FROM intents")
    assert len(rows) == 1
    serves = json.loads(rows[0]["serves"])
    assert rows[0]["action_type"] == "send_follow_up_email" and rows[0]["source"] == "planner"
    assert serves["pattern"] == listed["patterns"][0]["key"]
    budget = await world.store.read_all("SELECT * FROM budget_consumption")

    # Re-running: the pattern is planned, and resubmitting the same plan changes nothing.
    second = await world.loop.planner.check()
    assert second.patterns == 0 and second.submitted == 0
    async with world.store.write(NOW) as tx:
        await tx.execute("UPDATE patterns SET planned_at = NULL")
    third = await world.loop.planner.check()
    assert third.submitted == 0 and third.already_planned == 1
    assert len(await world.store.read_all("SELECT id FROM intents")) == 1
    assert await world.store.read_all("SELECT * FROM budget_consumption") == budget


async def test_goals_validation_progress_and_goal_intents(world: World) -> None:
    with pytest.raises(InvalidArgument) as err:
        await world.client.call(
            "goals.add",
            {
                "tenant": "t1",
                "type": "pipeline",
                "target": 0,
                "start": "2025-01-01",
                "end": "2025-02-01",
            },
        )
    assert err.value.details["field"] == "target"
    with pytest.raises(InvalidArgument) as err:
        await world.client.call(
            "goals.add",
            {
                "tenant": "t1",
                "type": "pipeline",
                "target": 5,
                "start": "2025-02-01",
                "end": "2025-01-01",
            },
        )
    assert err.value.details["field"] == "end"
    start = (NOW - timedelta(days=10)).date().isoformat()
    end = (NOW + timedelta(days=10)).date().isoformat()
    behind = await world.client.call(
        "goals.add", {"tenant": "t1", "type": "pipeline", "target": 10, "start": start, "end": end}
    )
    done = await world.client.call(
        "goals.add", {"tenant": "t1", "type": "pipeline", "target": 1, "start": start, "end": end}
    )
    shown = await world.client.call("goals.show", {"id": behind["id"]})
    # One account (acme) is in discovery: 1 of 10 with about half the time gone.
    assert shown["evaluation"]["verdict"] == "behind" and shown["evaluation"]["current"] == 1
    assert shown["suggestions"][0]["action_type"] == "qualify_conversation"
    # A goal reached when created is completed at once (the gate sees its verdict).
    assert done["status"] == "completed"
    progress = await world.loop.goals.update_progress()
    assert (progress.goals, progress.completed, progress.behind) == (1, 0, 1)
    listed = await world.client.call("goals.list", {})
    assert [g["id"] for g in listed["goals"]] == [behind["id"]]
    everything = await world.client.call("goals.list", {"all": True})
    assert {g["id"]: g["status"] for g in everything["goals"]}[done["id"]] == "completed"

    report = await world.loop.planner.check()
    rows = await world.store.read_all("SELECT account, serves FROM intents ORDER BY account")
    assert report.submitted == 2  # globex (prospect) and initech (qualification)
    assert [r["account"] for r in rows] == ["globex", "initech"]
    serves = json.loads(rows[0]["serves"])
    assert serves["goal"] == behind["id"] and serves["goal_verdict"] == "behind"
    again = await world.loop.planner.check()
    assert again.submitted == 0 and again.already_planned == 2
    with pytest.raises(NotFound):
        await world.client.call("goals.show", {"id": "goal_nope"})


async def test_digest_written_atomically_and_found(world: World) -> None:
    await world.client.call("interactions.import", {"name": "i.jsonl"}, upload=_jsonl(BUYING))
    await world.loop.scanner.scan()
    await world.loop.planner.check()
    result = await world.client.call("task.run", {"name": "daily_digest_generation", "wait": True})
    assert result["ok"], result
    found = await world.client.call("digest", {"show": True})
    path = Path(found["path"])
    assert path.parent == world.cfg.state_dir / "digest"
    assert path.name == f"{NOW.date().isoformat()}.md"
    assert "## New patterns" in found["content"] and "acme" in found["content"]
    assert "buying signal" in found["content"]
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(NotFound):
        await world.client.call("digest", {"date": "2001-01-01"})


async def test_summaries_extractive_without_a_model(world: World) -> None:
    await world.client.call("interactions.import", {"name": "i.jsonl"}, upload=_jsonl(BUYING))
    report = await world.loop.summaries.run()
    assert (report.accounts, report.extractive, report.by_model) == (1, 1, 0)
    shown = await world.client.call("summary", {"account": "acme"})
    assert shown["method"] == "extractive" and "budget" in shown["summary"]
    assert (await world.loop.summaries.run()).accounts == 0  # nothing stale now


async def test_inbox_takes_renamed_files_only(world: World) -> None:
    inbox = world.loop.inbox.ensure()
    (inbox / "good.jsonl").write_bytes(_jsonl(BUYING))
    (inbox / "bad.csv").write_text("id,account\n1,acme\n")
    (inbox / "half.jsonl.part").write_text("{")
    report = await world.loop.inbox.poll()
    assert report.done == ["good.jsonl"] and report.failed == ["bad.csv"]
    assert (inbox / "done" / "good.jsonl").exists()
    reason = (inbox / "failed" / "bad.csv.reason.txt").read_text()
    assert "missing column" in reason
    assert (inbox / "half.jsonl.part").exists()


async def test_import_spools_and_leaves_no_temp_file(world: World) -> None:
    await world.client.call("interactions.import", {"name": "i.jsonl"}, upload=_jsonl(BUYING))
    assert list((world.cfg.state_dir / "tmp").iterdir()) == []


async def _executed(world: World, intent_id: str, state: str, finished: datetime) -> str:
    """Record a finished change execution of an intent, as the engine writes it."""
    exe_id = f"exe_{intent_id[-8:]}"
    at = finished.isoformat()
    async with world.store.write(finished) as tx:
        await tx.execute(
            "INSERT INTO executions(id, kind, intent_id, tenant, account, action_type, executor, "
            "risk, autonomous, state, created_at, updated_at, started_at, finished_at) "
            "VALUES (?, 'change', ?, 't1', 'acme', 'log_interaction', 'note', 'LOW', 1, ?, "
            "?, ?, ?, ?)",
            (exe_id, intent_id, state, at, at, at, at),
        )
        event = "EXECUTION_COMPLETED" if state == "succeeded" else "EXECUTION_FAILED"
        tx.audit(AuditEvent(event, "agentd", exe_id, {"intent_id": intent_id}))
    return exe_id


async def test_executed_actions_count_toward_activity_and_quality_goals(world: World) -> None:
    start = (NOW - timedelta(days=10)).date().isoformat()
    end = (NOW + timedelta(days=10)).date().isoformat()
    activity = await world.client.call(
        "goals.add", {"tenant": "t1", "type": "activity", "target": 10, "start": start, "end": end}
    )
    quality = await world.client.call(
        "goals.add", {"tenant": "t1", "type": "quality", "target": 90, "start": start, "end": end}
    )
    for n, state in enumerate(("succeeded", "succeeded", "succeeded", "failed")):
        decided = await world.gate.submit(
            make_intent(
                tenant="t1",
                account="acme",
                action_type="log_interaction",
                diff={"note": f"call {n}"},
                source="operator",
            ),
            "tester",
        )
        await _executed(world, decided["intent_id"], state, NOW - timedelta(hours=n + 1))
    shown = await world.client.call("goals.show", {"id": activity["id"]})
    # Three executed actions count toward activity (none did before: 0 of 10).
    assert shown["evaluation"]["current"] == 3
    shown = await world.client.call("goals.show", {"id": quality["id"]})
    # No rated interactions: quality falls back to the executions' success (3 of 4).
    assert shown["evaluation"]["current"] == 75


async def test_the_gate_names_the_goal_and_refuses_a_closed_one(world: World) -> None:
    start = (NOW - timedelta(days=10)).date().isoformat()
    end = (NOW + timedelta(days=10)).date().isoformat()
    behind = await world.client.call(
        "goals.add", {"tenant": "t1", "type": "pipeline", "target": 10, "start": start, "end": end}
    )
    done = await world.client.call(
        "goals.add", {"tenant": "t1", "type": "pipeline", "target": 1, "start": start, "end": end}
    )
    assert (behind["verdict"], done["status"]) == ("behind", "completed")

    def ask(action: str, serves: dict[str, Any]) -> ActionIntent:
        return make_intent(
            tenant="t1", account="globex", action_type=action, serves=serves, source="operator"
        )

    served = await world.gate.submit(ask("qualify_conversation", {}), "tester")
    goal = next(t for t in served["trace"] if t["check"] == "goal")
    assert (goal["saw"]["goal"], goal["saw"]["verdict"]) == (behind["id"], "behind")
    closed = await world.gate.submit(ask("send_follow_up_email", {"goal": done["id"]}), "tester")
    assert (closed["decision"], closed["reason"]) == ("BLOCKED", "GOAL_CLOSED")
    assert done["id"] in closed["message"] and "completed" in closed["message"]
    # The dry run answers the same.
    check = await world.gate.check(ask("send_chat_message", {"goal": done["id"]}), "tester")
    assert check["reason"] == "GOAL_CLOSED"


async def test_the_planner_does_not_pester_an_account(world: World) -> None:
    await world.client.call("interactions.import", {"name": "i.jsonl"}, upload=_jsonl(BUYING))
    await world.loop.scanner.scan()
    first = await world.loop.planner.check()
    assert first.submitted == 1  # the buying signal's follow-up to acme waits for approval
    # An activity goal falls behind: its corrective follow-ups go to the most active
    # accounts, acme first — which has a follow-up open already.
    start = (NOW - timedelta(days=10)).date().isoformat()
    end = (NOW + timedelta(days=10)).date().isoformat()
    await world.client.call(
        "goals.add", {"tenant": "t1", "type": "activity", "target": 50, "start": start, "end": end}
    )
    second = await world.loop.planner.check()
    assert (second.submitted, second.held_back) == (2, 1)
    rows = await world.store.read_all(
        "SELECT account, COUNT(*) FROM intents WHERE action_type = 'send_follow_up_email' "
        "GROUP BY account ORDER BY account"
    )
    assert [tuple(r) for r in rows] == [("acme", 1), ("globex", 1), ("initech", 1)]
    # Unchanged data: a re-run creates nothing new.
    third = await world.loop.planner.check()
    assert third.submitted == 0
    assert len(await world.store.read_all("SELECT id FROM intents")) == 3
    # Once acme's follow-up has reached it, the cooldown still holds new outreach back.
    async with world.store.write(NOW) as tx:
        await tx.execute(
            "UPDATE intents SET status = 'approved' WHERE account = 'acme'",
        )
    [acme] = await world.store.read_all("SELECT id FROM intents WHERE account = 'acme'")
    await _executed(world, acme[0], "succeeded", NOW - timedelta(hours=1))
    fourth = await world.loop.planner.check()
    assert (fourth.submitted, fourth.held_back) == (0, 1)
