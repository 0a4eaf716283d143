"""The daily digest over a real SQLite file: a busy day's true totals, failed operations
with their failing step's screenshot, people's decisions through the real gate, and no
digest of the days before the daemon first ran.

Executions and operations are recorded with the store functions the execution engine
and the browser agent record them with (``exec_sql``, ``ops_sql``); the day is a fixed
one in the past, set through the services' clocks.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.config import Settings
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.intents import parse_intent
from agentd.core.timefmt import iso
from agentd.policy import gate_policy
from agentd.services.digest import DigestService
from agentd.services.gate import GateService
from agentd.services.goals import GoalService
from agentd.store.sqlite import SqliteStore

DAY = date(2024, 6, 3)
START = datetime(2024, 6, 3, tzinfo=UTC)
GENERATED = datetime(2024, 6, 4, 0, 5, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "agentd.sqlite3", synchronous="NORMAL")
    await db.open()
    try:
        yield db
    finally:
        await db.close()


def service(store: SqliteStore, folder: Path, now: datetime) -> DigestService:
    return DigestService(
        store, GoalService(store, clock=lambda: now), lambda: folder, clock=lambda: now
    )


async def started(store: SqliteStore, at: datetime) -> None:
    """Write the first audit record as the daemon does when it starts."""
    await store.append_audit([AuditEvent(AuditEventType.DAEMON_STARTED, "agentd")], at)


async def execution(
    store: SqliteStore, n: int, at: datetime, state: str, *, autonomous: bool = True, **kw: Any
) -> str:
    exe = f"exe_{n:05d}"
    async with store.write(at) as tx:
        await tx.execution.insert_execution(
            {
                "id": exe,
                "kind": "change",
                "intent_id": f"int_{n:05d}",
                "tenant": "t1",
                "account": kw.pop("account", "acme"),
                "action_type": kw.pop("action_type", "send_chat_message"),
                "executor": "message",
                "risk": "LOW",
                "autonomous": autonomous,
                "state": state,
                "created_at": iso(at),
                "updated_at": iso(at),
                "started_at": iso(at),
                "finished_at": iso(at),
                **kw,
            },
        )
        event = (
            AuditEventType.EXECUTION_COMPLETED
            if state == "succeeded"
            else AuditEventType.EXECUTION_FAILED
        )
        tx.audit(AuditEvent(event, "agentd", exe, {"intent_id": f"int_{n:05d}"}))
    return exe


async def failed_operation(
    store: SqliteStore,
    op_id: str,
    exe: str,
    account: str,
    at: datetime,
    shots: Path,
    *,
    fail_at: int = 7,
    total: int = 10,
) -> Path:
    """Record an operation of ``total`` steps whose step ``fail_at`` failed, as the agent does.

    Every step has its screenshot on disk; return the failing step's.
    """
    folder = shots / op_id
    folder.mkdir(parents=True)
    steps = []
    for idx in range(1, fail_at + 1):
        shot = folder / f"{idx:03d}.png"
        shot.write_bytes(b"\x89PNG step")
        steps.append(
            {
                "op_id": op_id,
                "attempt": 1,
                "idx": idx,
                "intent": "press Save" if idx == fail_at else f"step {idx}",
                "action": "click",
                "target": "#save",
                "source": "workflow",
                "status": "failed" if idx == fail_at else "ok",
                "error": "timeout waiting for #save" if idx == fail_at else None,
                "screenshot": str(shot),
                "sha256": "0" * 64,
                "at": iso(at),
            }
        )
    final = folder / "final.png"
    final.write_bytes(b"\x89PNG final")
    steps.append(
        {
            **steps[-1],
            "idx": 0,
            "intent": "final screenshot",
            "action": "screenshot",
            "status": "final",
            "screenshot": str(final),
        }
    )
    async with store.write(at) as tx:
        await tx.ops.insert_operation(
            {
                "id": op_id,
                "account": account,
                "service": "backoffice",
                "workflow": "update_product_seo",
                "state": "failed",
                "step": fail_at - 1,
                "total": total,
                "reason": "step_failed",
                "error": f"step {fail_at} (press Save): timeout waiting for #save",
                "folder": str(folder),
                "execution_id": exe,
                "created_by": "agentd",
                "created_at": iso(at),
                "updated_at": iso(at),
                "started_at": iso(at),
                "finished_at": iso(at),
            },
        )
        await tx.ops.insert_steps(steps)
        tx.audit(AuditEvent(AuditEventType.OPERATION_FAILED, "agentd", op_id, {}))
    return folder / f"{fail_at:03d}.png"


def section(text: str, title: str) -> str:
    return text.split(f"## {title}\n\n", 1)[1].split("\n## ", 1)[0]


async def test_a_busy_day_counts_everything_and_shows_the_newest(
    store: SqliteStore, tmp_path: Path
) -> None:
    await started(store, START - timedelta(days=3))
    # 601 autonomous actions ran, a second apart; one the day before and one after.
    for n in range(601):
        await execution(store, n, START + timedelta(hours=8, seconds=n), "succeeded")
    await execution(store, 900, START - timedelta(seconds=1), "succeeded")
    await execution(store, 901, START + timedelta(days=1), "succeeded")
    # Two autonomous changes failed in their browser operation, one a person approved too.
    shots = tmp_path / "screenshots"
    failing: dict[str, Path] = {}
    for n, (account, autonomous) in enumerate(
        [("acme", True), ("globex", True), ("initech", False)], start=700
    ):
        when = START + timedelta(hours=9 + n - 700)
        op_id = f"op_{n}"
        exe = await execution(
            store,
            n,
            when,
            "failed",
            autonomous=autonomous,
            account=account,
            action_type="update_account_context",
            reason="STEP_FAILED",
            detail="the save button never answered; the target is unchanged",
            change_op=op_id,
        )
        failing[op_id] = await failed_operation(store, op_id, exe, account, when, shots)

    path = await service(store, tmp_path / "digest", GENERATED).write(DAY)
    text = path.read_text()
    headline = text.splitlines()[2]
    assert headline.startswith(
        "On 2024-06-03: 601 autonomous actions succeeded, 2 failed (and 1 approved by a person),"
    ), headline
    assert "3 failed operations" in headline
    ran = section(text, "Autonomous actions that succeeded")
    assert ran.startswith("Showing 500 of 601 (newest first).\n")
    rows = [line for line in ran.splitlines() if line.startswith("| 2024")]
    assert len(rows) == 500
    # Newest first: 08:10:00 (the 601st) down to 08:01:41 (the 102nd).
    assert rows[0].startswith("| 2024-06-03 08:10 UTC | send_chat_message | acme | int_00600 |")
    assert "int_00101" in rows[-1] and "int_00100" not in ran
    assert "int_00900" not in text and "int_00901" not in text
    # Failed executions are not among the actions that ran.
    assert not any(f"int_{n:05d}" in ran for n in (700, 701, 702))
    failed = section(text, "Executions that failed")
    assert failed.count("policy (autonomous)") == 2 and failed.count("| a person |") == 1

    ops = [line for line in section(text, "Failed operations").splitlines() if "| op_" in line]
    assert [line.split(" | ")[1] for line in ops] == ["op_702", "op_701", "op_700"]
    for line, account in zip(ops, ["initech", "globex", "acme"], strict=True):
        cells = line.split(" | ")
        assert cells[2:6] == [account, "update_product_seo", cells[4], "step 7 of 10: press Save"]
        assert cells[4].startswith("exe_007")
        # The link, relative to the digest file, opens the failing step's screenshot.
        (link,) = re.findall(r"\]\(<([^>]+)>\)", line)
        assert link == f"../screenshots/{cells[1]}/007.png"
        assert (path.parent / link).resolve() == failing[cells[1]].resolve()
        assert (path.parent / link).read_bytes() == b"\x89PNG step"


async def test_handoffs_are_listed_apart_with_their_true_totals(
    store: SqliteStore, tmp_path: Path
) -> None:
    # Hand-offs as the engine and `agentctl handoff done|failed` leave them: a person
    # did (or could not do) the work, so they are neither actions that succeeded nor
    # executions that failed; one refused before it reached a person is a failure.
    await started(store, START - timedelta(days=3))
    for n in range(503):  # open: handed off, not closed yet
        await execution(
            store,
            n,
            START + timedelta(hours=8, seconds=n),
            "handed_off",
            executor="handoff",
            finished_at=None,
        )
    await execution(
        store, 600, START + timedelta(hours=10), "succeeded", executor="handoff", detail="sent"
    )
    await execution(
        store, 601, START + timedelta(hours=11), "failed", executor="handoff", detail="no stock"
    )
    await execution(
        store,
        602,
        START + timedelta(hours=12),
        "refused",
        executor="handoff",
        reason="KILL_SWITCH_ON",
        started_at=None,
    )
    await execution(store, 603, START + timedelta(hours=13), "succeeded")  # the agent ran it

    text = (await service(store, tmp_path / "digest", GENERATED).write(DAY)).read_text()
    headline = text.splitlines()[2]
    assert headline.startswith("On 2024-06-03: 1 autonomous action succeeded, 1 failed,"), headline
    assert headline.endswith(", 505 hand-offs to a person (503 still open)."), headline
    handed = section(text, "Handed off to a person")
    assert handed.startswith("Showing 500 of 505 (newest first).\n")
    rows = [line for line in handed.splitlines() if line.startswith("| 2024")]
    assert rows[:2] == [
        "| 2024-06-03 11:00 UTC | send_chat_message | acme | exe_00601 | failed | no stock |",
        "| 2024-06-03 10:00 UTC | send_chat_message | acme | exe_00600 | done | sent |",
    ]
    assert rows[2].startswith("| 2024-06-03 08:08 UTC | send_chat_message | acme | exe_00502 |")
    assert "exe_00602" not in handed
    failed = section(text, "Executions that failed")
    assert "exe_00602" in failed and "KILL_SWITCH_ON" in failed and "exe_00601" not in failed
    assert "int_00600" not in section(text, "Autonomous actions that succeeded")


async def test_decisions_by_people_through_the_gate(store: SqliteStore, tmp_path: Path) -> None:
    now = START + timedelta(hours=11)
    await started(store, START - timedelta(days=1))
    async with store.write(now) as tx:
        await tx.execute(
            "INSERT INTO accounts(id, tenant, name, stage, trusted_mode, created_at, updated_at) "
            "VALUES ('acme', 't1', 'Acme', 'discovery', 'ACTIVE', ?, ?)",
            (iso(now), iso(now)),
        )
    policy = gate_policy(Settings(state_dir=tmp_path))
    ticks = itertools.count()  # the gate's clock moves a second each time it is read
    gate = GateService(
        store,
        lambda: policy,
        approval_ttl=lambda _t: timedelta(hours=72),
        clock=lambda: now + timedelta(seconds=next(ticks)),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(gate.run)
        ids = []
        for n in range(4):
            intent = parse_intent(
                {
                    "tenant": "t1",
                    "account": "acme",
                    "action_type": "escalate_to_management",
                    "rationale": f"escalation {n}",
                }
            )
            decided = await gate.submit(intent, "operator")
            assert decided["decision"] == "REQUIRE_APPROVAL"
            ids.append(decided["intent_id"])
        await gate.approve(ids[0], "dana", "go ahead")
        await gate.reject(ids[1], "lee", "not this quarter")
        await gate.reject(ids[2], "lee", "duplicate")
        tg.cancel_scope.cancel()
    gate.close()

    text = (await service(store, tmp_path / "digest", GENERATED).write(DAY)).read_text()
    assert "3 decisions by a person (1 approved, 2 rejected), 1 waiting for approval" in text
    rows = [line for line in section(text, "Decisions by a person").splitlines() if "| 20" in line]
    assert [r.split(" | ")[1:3] for r in rows] == [
        ["rejected", "lee"],
        ["rejected", "lee"],
        ["approved", "dana"],
    ]
    assert f"| escalate_to_management | acme | {ids[0]} | go ahead |" in rows[2]
    # None of them ran on its own.
    assert "0 autonomous actions succeeded, 0 failed" in text


async def test_no_digest_for_the_days_before_the_first_start(
    store: SqliteStore, tmp_path: Path
) -> None:
    folder = tmp_path / "digest"
    # Nothing recorded yet: only today's page.
    assert await service(store, folder, START + timedelta(hours=9)).daily() == (
        "wrote 2024-06-03.md"
    )
    # The daemon first starts that morning: still nothing for the day before.
    await started(store, START + timedelta(hours=10))
    assert await service(store, folder, START + timedelta(hours=12)).daily() == (
        "wrote 2024-06-03.md"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["2024-06-03.md"]
    # The next day, yesterday (the first day) is there; a missing one is written.
    (folder / "2024-06-03.md").unlink()
    assert await service(store, folder, GENERATED).daily() == ("wrote 2024-06-03.md, 2024-06-04.md")
