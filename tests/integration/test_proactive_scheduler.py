"""The real APScheduler with short intervals, restarts, run-task, and the model via the stub."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from loguru import logger

from agentd.config import LogSettings, Settings
from agentd.errors import NotFound
from agentd.llm import AnthropicModel, LLMSettings
from agentd.logs import setup_logging, shutdown_logging
from agentd.policy import gate_policy
from agentd.proactive_config import SchedulerConfig
from agentd.services.gate import GateService
from agentd.services.scheduler import TASK_NAMES, ProactiveLoop, TaskScheduler, TaskSpec
from agentd.store.sqlite import SqliteStore
from agentd.testing.anthropic_stub import AnthropicStub, Reply
from tests.integration.test_proactive_services import BUYING, NOW, Cfg, _accounts, _jsonl, clock


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "agentd.sqlite3", synchronous="NORMAL")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_every_task_runs_on_the_real_scheduler(tmp_path: Path, store: SqliteStore) -> None:
    fast = {f"{name}_interval_s": 0.3 for name in TASK_NAMES}
    cfg = Cfg(tmp_path, scheduler=SchedulerConfig(**fast, misfire_grace_time_s=5))
    policy = gate_policy(Settings(state_dir=tmp_path))
    gate = GateService(
        store, lambda: policy, approval_ttl=lambda _t: timedelta(hours=1), clock=clock
    )
    loop = ProactiveLoop(store, gate, lambda: cfg, clock=clock)  # type: ignore[arg-type, return-value]
    await _accounts(store)
    (loop.inbox.ensure() / "i.jsonl").write_bytes(_jsonl(BUYING))
    async with anyio.create_task_group() as tg:
        tg.start_soon(gate.run)
        await tg.start(loop.run)
        with anyio.fail_after(10):
            while True:
                table = {t["name"]: t for t in await loop.scheduler.table()}
                planned = await store.read_one("SELECT COUNT(*) FROM intents")
                assert planned is not None
                if all(t["runs"] >= 2 for t in table.values()) and planned[0]:
                    break
                await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    gate.close()
    assert all(t["last_result"] == "ok" for t in table.values()), table
    assert (tmp_path / "inbox" / "done" / "i.jsonl").exists()
    row = await store.read_one("SELECT COUNT(*) FROM intents")
    assert row is not None and row[0] == 1  # the buying signal, planned once despite many runs
    planned = await store.read_one("SELECT COUNT(*) FROM patterns WHERE planned_at IS NOT NULL")
    assert planned is not None and planned[0] == 1
    assert (tmp_path / "digest" / f"{NOW.date().isoformat()}.md").exists()


async def test_restart_keeps_last_runs_and_failures_are_counted(store: SqliteStore) -> None:
    calls: dict[str, int] = {"daily": 0, "due": 0, "broken": 0}

    def spec(name: str, seconds: float) -> TaskSpec:
        async def run() -> str:
            calls[name] += 1
            if name == "broken":
                raise RuntimeError("boom")
            return f"{name} ran"

        return TaskSpec(name, lambda: timedelta(seconds=seconds), run)

    tasks = [spec("daily", 86_400), spec("due", 0.5), spec("broken", 0.3)]
    first = TaskScheduler(store, tasks, misfire_grace_time=5)
    async with anyio.create_task_group() as tg:
        await tg.start(first.run)
        await anyio.sleep(0.9)
        tg.cancel_scope.cancel()
    assert calls["daily"] == 1 and calls["due"] >= 2 and calls["broken"] >= 2
    table = {t["name"]: t for t in await first.table()}
    assert table["broken"]["failures"] == calls["broken"]
    assert table["broken"]["last_result"] == "failed" and "boom" in table["broken"]["last_detail"]
    audit = await store.read_all("SELECT subject FROM audit WHERE event = 'TASK_FAILED'")
    assert {r[0] for r in audit} == {"broken"}

    # A new scheduler on the same store: the daily task is not due again, the short one is.
    before = dict(calls)
    await anyio.sleep(0.5)
    second = TaskScheduler(store, tasks, misfire_grace_time=5)
    async with anyio.create_task_group() as tg:
        await tg.start(second.run)
        await anyio.sleep(0.4)
        nxt = {t["name"]: t["next_run"] for t in await second.table()}
        tg.cancel_scope.cancel()
    assert calls["daily"] == before["daily"]
    assert calls["due"] == before["due"] + 1
    assert datetime.fromisoformat(nxt["daily"]) > datetime.now(UTC) + timedelta(hours=23)


async def test_run_task_waits_and_unknown_task_is_not_found(store: SqliteStore) -> None:
    gate_started = anyio.Event()

    async def slow() -> str:
        gate_started.set()
        await anyio.sleep(0.2)
        return "slow done"

    sched = TaskScheduler(store, [TaskSpec("slow", lambda: timedelta(days=1), slow)], enabled=False)
    async with anyio.create_task_group() as tg:
        await tg.start(sched.run)
        result = await sched.run_now("slow", wait=True)
        assert result["ok"] and result["result"] == "slow done"
        started = await sched.run_now("slow", wait=False)
        assert started == {"task": "slow", "started": True}
        await gate_started.wait()
        with pytest.raises(NotFound):
            await sched.run_now("nope", wait=True)
        tg.cancel_scope.cancel()  # the running task is drained, not cut short
    table = {t["name"]: t for t in await sched.table()}
    assert table["slow"]["runs"] == 2 and table["slow"]["last_result"] == "ok"


@pytest.mark.parametrize(
    ("reply", "method", "reason"),
    [
        (Reply.text("Acme is evaluating a pilot; budget questions open."), "model", None),
        (Reply.error(500), "extractive", "HTTP 500"),
        (Reply.hang(), "extractive", "did not answer"),
    ],
)
async def test_summaries_through_the_anthropic_stub(
    tmp_path: Path, store: SqliteStore, reply: Reply, method: str, reason: str | None
) -> None:
    from agentd.services import interactions

    await _accounts(store)
    path = tmp_path / "i.jsonl"
    path.write_bytes(_jsonl(BUYING))
    await interactions.import_file(
        store, path, source="i.jsonl", fmt="jsonl", skip_bad=False, actor="t", clock=clock
    )
    policy = gate_policy(Settings(state_dir=tmp_path))
    ttl = timedelta(hours=1)
    gate = GateService(store, lambda: policy, approval_ttl=lambda _t: ttl, clock=clock)
    with AnthropicStub(api_key="k") as stub:
        stub.push(reply)
        model = AnthropicModel(
            LLMSettings(api_key="k", base_url=stub.url, timeout_s=0.5, max_retries=0)
        )
        loop = ProactiveLoop(store, gate, lambda: Cfg(tmp_path), model=model, clock=clock)  # type: ignore[arg-type, return-value]
        try:
            result = await loop.summaries.summarize_account("acme")
        finally:
            await loop.aclose()
            gate.close()
    assert result["method"] == method
    if reason is None:
        assert result["summary"].startswith("Acme is evaluating")
        assert "pricing_page_visit in" in stub.requests[0].text
    else:
        assert reason in result["fallback_reason"]
        assert result["summary"].startswith("acme: 3 interactions")


@pytest.fixture
def daemon_logging(tmp_path: Path) -> Iterator[Path]:
    """The daemon's logging at DEBUG into tmp_path; the test run's own logging restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    path = setup_logging(
        Settings(state_dir=tmp_path, log_dir=tmp_path / "logs", log=LogSettings(level="DEBUG")),
        journald_prefix=False,
    )
    try:
        yield path
    finally:
        shutdown_logging()
        logger.add(sys.stderr)
        root.handlers[:], root.level = handlers, level
        logging.getLogger("apscheduler").setLevel(logging.NOTSET)


async def test_one_info_line_per_task_run_and_apscheduler_chatter_at_debug(
    store: SqliteStore, daemon_logging: Path
) -> None:
    async def quick() -> str:
        return "quick result"

    async def broken() -> str:
        raise RuntimeError("boom")

    tasks = [
        TaskSpec("quick", lambda: timedelta(seconds=0.2), quick),
        TaskSpec("broken", lambda: timedelta(seconds=0.3), broken),
    ]
    sched = TaskScheduler(store, tasks, misfire_grace_time=5)
    async with anyio.create_task_group() as tg:
        await tg.start(sched.run)
        with anyio.fail_after(10):
            while min(t["runs"] for t in await sched.table()) < 3:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    table = {t["name"]: t for t in await sched.table()}
    logger.complete()
    records = [json.loads(line)["record"] for line in daemon_logging.read_text().splitlines()]
    lines = [(r["level"]["name"], r["message"]) for r in records]

    chatter = [(lvl, m) for lvl, m in lines if "Running job" in m or "executed successfully" in m]
    assert chatter, "APScheduler's per-run lines are expected at DEBUG"
    assert {lvl for lvl, _ in chatter} == {"DEBUG"}, chatter

    info = [m for lvl, m in lines if lvl == "INFO"]
    quick_lines = [m for m in info if m.startswith("task quick ")]
    assert len(quick_lines) == table["quick"]["runs"], (quick_lines, table["quick"])
    assert all(
        re.fullmatch(r"task quick ok in \d+\.\d\d s \(schedule\): quick result", m)
        for m in quick_lines
    ), quick_lines
    assert not [m for m in info if "broken" in m]
    failed = [m for lvl, m in lines if lvl == "ERROR" and m.startswith("task broken failed")]
    assert len(failed) == table["broken"]["failures"] == table["broken"]["runs"]
    assert all(re.search(r"failed after \d+\.\d\d s \(schedule\).*boom", m) for m in failed)
    assert len(info) == table["quick"]["runs"], info


async def test_two_daemons_ticking_run_each_interval_once(store: SqliteStore) -> None:
    """Several daemons on one store: a scheduled run is claimed, so one of them does it."""
    ran: list[str] = []
    now = [NOW]

    def spec(who: str) -> TaskSpec:
        async def run() -> str:
            ran.append(who)
            await anyio.sleep(0.05)
            return "ok"

        return TaskSpec("scan", lambda: timedelta(hours=1), run)

    a = TaskScheduler(store, [spec("a")], clock=lambda: now[0], runner="a/1")
    b = TaskScheduler(store, [spec("b")], clock=lambda: now[0], runner="b/1")
    async with anyio.create_task_group() as tg:
        a._tg = b._tg = tg
        # Both tick at once, and again a minute later: one run in the interval.
        async with anyio.create_task_group() as ticks:
            ticks.start_soon(a._fire, "scan")
            ticks.start_soon(b._fire, "scan")
        now[0] = NOW + timedelta(minutes=1)
        await b._fire("scan")
        assert len(ran) == 1
        # The next interval: whichever ticks first runs it, the other does not.
        now[0] = NOW + timedelta(hours=1)
        await b._fire("scan")
        await a._fire("scan")
        assert ran[1:] == ["b"]
    runs = await store.proactive.task_runs()
    assert runs["scan"]["runs"] == 2 and runs["scan"]["claim_until"] is None
