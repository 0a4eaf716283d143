"""Scheduled tasks on APScheduler 3 (``AsyncIOScheduler``), and the proactive loop's table.

Each task is an interval job with ``coalesce`` (missed runs collapse into
one), ``max_instances=1`` and an integer ``misfire_grace_time``. The job only
hands the run to this scheduler's own task group, so APScheduler's shutdown
(which cancels the asyncio tasks of running jobs) never cuts a run short:
:meth:`TaskScheduler.run` drains the group itself, up to ``drain_timeout``.

Every finished run (success or failure) is stored with its start time, and
the first run after a (re)start is placed at ``last start + interval`` — or
at once when that is past — so a restart neither skips nor doubles a daily
task. A failure is logged, counted, audited (``TASK_FAILED``) and the task
simply runs again at its next tick; other tasks are untouched. Each run
writes one log line with its outcome and duration: INFO when it succeeded,
ERROR when it failed (APScheduler's own per-run lines are DEBUG, see
:mod:`agentd.logs`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.errors import AgentdError, InvalidArgument, InvalidState, NotFound
from agentd.llm import Summarizer
from agentd.proactive_config import (
    DigestConfig,
    GoalsConfig,
    InboxConfig,
    LLMConfig,
    PatternsConfig,
    PlannerConfig,
    SchedulerConfig,
)
from agentd.services.digest import DigestService
from agentd.services.gate import GateService
from agentd.services.goals import GoalService
from agentd.services.inbox import Inbox
from agentd.services.patterns import PatternScanner
from agentd.services.planner import OutreachPlanner
from agentd.services.summaries import SummaryOptions, SummaryService
from agentd.store.base import Store

#: Delay of a due task's first run after start-up (lets the daemon finish starting).
START_DELAY = timedelta(seconds=0.2)


#: The shortest claim on a scheduled run (several daemons; see TaskScheduler._claim).
CLAIM_AT_LEAST = timedelta(minutes=15)


@dataclass(frozen=True)
class TaskSpec:
    """One scheduled task: its name, interval and what it runs.

    ``run`` returns a one-line result for ``agentctl tasks``.
    """

    name: str
    interval: Callable[[], timedelta]
    run: Callable[[], Awaitable[str]]


@dataclass
class _State:
    lock: anyio.Lock
    running: bool = False
    last_run: datetime | None = None
    done: anyio.Event | None = None
    scope: anyio.CancelScope | None = None


class TaskScheduler:
    """Run tasks at intervals, on demand, one instance of each at a time."""

    def __init__(
        self,
        store: Store,
        tasks: Sequence[TaskSpec],
        *,
        misfire_grace_time: int = 3600,
        drain_timeout: float = 30.0,
        enabled: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        runner: str | None = None,
    ) -> None:
        self.store = store
        # Several daemons on one store: each scheduled run is claimed in the
        # store by ``runner`` (this process), so it runs once per interval
        # whichever daemon ticks first. None: one daemon, nothing to claim.
        self.runner = runner
        self.tasks = {t.name: t for t in tasks}
        self.misfire_grace_time = int(misfire_grace_time)
        self.drain_timeout = drain_timeout
        self.enabled = enabled
        self.clock = clock
        self._state = {name: _State(anyio.Lock()) for name in self.tasks}
        self._scheduler: AsyncIOScheduler | None = None
        self._tg: TaskGroup | None = None
        self._ready = anyio.Event()

    def add(self, spec: TaskSpec) -> None:
        """Add a task (before :meth:`run`; the daemon adds governance's this way).

        :raises InvalidState: a task of that name exists, or the scheduler runs.
        """
        if spec.name in self.tasks or self._tg is not None:
            raise InvalidState(f"cannot add task {spec.name!r}", details={"task": spec.name})
        self.tasks[spec.name] = spec
        self._state[spec.name] = _State(anyio.Lock())

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Schedule the tasks and run them until cancelled; then drain and stop."""
        runs = await self.store.proactive.task_runs()
        now = self.clock()
        scheduler = AsyncIOScheduler(timezone=UTC)
        for name, spec in self.tasks.items():
            row = runs.get(name)
            last = (
                datetime.fromisoformat(row["last_run_at"]) if row and row["last_run_at"] else None
            )
            self._state[name].last_run = last
            interval = spec.interval()
            first = max(last + interval, now + START_DELAY) if last else now + START_DELAY
            scheduler.add_job(
                self._fire,
                IntervalTrigger(seconds=interval.total_seconds(), start_date=first, timezone=UTC),
                args=(name,),
                id=name,
                name=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=self.misfire_grace_time,
                replace_existing=True,
            )
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if self.enabled:
                    scheduler.start()
                    self._scheduler = scheduler
                self._ready.set()
                task_status.started()
                try:
                    await anyio.sleep_forever()
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._stop(scheduler, tg)
        finally:
            self._tg = None
            self._scheduler = None

    async def _stop(self, scheduler: AsyncIOScheduler, tg: TaskGroup) -> None:
        if scheduler.running:
            scheduler.pause()
            scheduler.shutdown(wait=False)
        busy = [s.done for s in self._state.values() if s.running and s.done is not None]
        with anyio.move_on_after(self.drain_timeout) as scope:
            for event in busy:
                await event.wait()
        if scope.cancelled_caught:
            logger.warning(
                "scheduled tasks still running after {:g}s; cancelling them", self.drain_timeout
            )
            for state in self._state.values():
                if state.scope is not None:
                    state.scope.cancel()
        tg.cancel_scope.cancel()

    async def _fire(self, name: str) -> None:
        """The APScheduler job: hand the run to our task group and wait for it."""
        state = self._state[name]
        if self._tg is None or state.lock.locked():
            logger.info("task {} is still running; skipping this tick", name)
            return
        if self.runner is not None and not await self._claim(name):
            logger.debug("task {}: this interval's run is another daemon's; skipping", name)
            return
        done = anyio.Event()
        self._tg.start_soon(self._execute, name, "schedule", done)
        await done.wait()

    async def _claim(self, name: str) -> bool:
        """Claim this interval's run of ``name`` in the store (several daemons).

        Due when no run started in the last nine tenths of the interval (a
        tick of another daemon, whose clock runs in another phase, may come
        a little early); the claim holds for the interval, at least 15
        minutes, so a daemon that dies mid-run blocks no more than that.
        """
        assert self.runner is not None
        now = self.clock()
        interval = self.tasks[name].interval()
        try:
            async with self.store.write(now) as tx:
                return await tx.proactive.claim_task_run(
                    name,
                    owner=self.runner,
                    due_before=now - interval * 0.9,
                    until=now + max(interval, CLAIM_AT_LEAST),
                )
        except AgentdError as exc:
            logger.error("task {}: its run could not be claimed: {}", name, exc.message)
            return False

    # -- running -------------------------------------------------------------------------

    async def _execute(
        self, name: str, trigger: str, done: anyio.Event | None = None
    ) -> dict[str, Any]:
        spec, state = self.tasks[name], self._state[name]
        try:
            async with state.lock:
                state.running, state.done = True, anyio.Event()
                started = self.clock()
                began = time.monotonic()
                ok, detail = True, ""
                try:
                    # Shielded so a daemon shutdown drains the run instead of cutting
                    # it short; _stop cancels this scope once the drain time is over.
                    with anyio.CancelScope(shield=True) as state.scope:
                        detail = await spec.run()
                    if state.scope.cancelled_caught:
                        ok, detail = False, "cancelled: the daemon stopped during the run"
                except Exception as exc:
                    ok = False
                    detail = (
                        exc.message
                        if isinstance(exc, AgentdError)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    logger.opt(exception=not isinstance(exc, AgentdError)).error(
                        "task {} failed after {:.2f} s ({}); it runs again at its next tick: {}",
                        name,
                        time.monotonic() - began,
                        trigger,
                        detail,
                    )
                else:
                    took = time.monotonic() - began
                    if ok:
                        logger.info("task {} ok in {:.2f} s ({}): {}", name, took, trigger, detail)
                    else:
                        logger.warning("task {} {} after {:.2f} s", name, detail, took)
                finally:
                    state.running, state.scope = False, None
                    state.done.set()
                with anyio.CancelScope(shield=True):
                    async with self.store.write(self.clock()) as tx:
                        await tx.proactive.record_task_run(
                            name, started, ok=ok, detail=detail[:1000]
                        )
                        if not ok:
                            tx.audit(
                                AuditEvent(
                                    AuditEventType.TASK_FAILED,
                                    "agentd",
                                    name,
                                    {"task": name, "trigger": trigger, "error": detail[:1000]},
                                )
                            )
                state.last_run = started
                return {"task": name, "ok": ok, "result": detail, "started_at": started.isoformat()}
        finally:
            if done is not None:
                done.set()

    async def run_now(self, name: str, *, wait: bool) -> dict[str, Any]:
        """Run a task now (after a run in progress); ``wait`` returns its result.

        :raises NotFound: no such task.
        :raises InvalidState: the scheduler is not running.
        """
        if name not in self.tasks:
            raise NotFound(
                f"no task {name!r} (tasks: {', '.join(sorted(self.tasks))})",
                details={"task": name, "known": sorted(self.tasks)},
            )
        if wait:
            return await self._execute(name, "manual")
        if self._tg is None:
            raise InvalidState("the scheduler is not running", details={"task": name})
        self._tg.start_soon(self._execute, name, "manual")
        return {"task": name, "started": True}

    async def table(self) -> list[dict[str, Any]]:
        """Return every task: interval, last run and result, next run, counts."""
        runs = await self.store.proactive.task_runs()
        out = []
        for name, spec in self.tasks.items():
            row = runs.get(name)
            job = self._scheduler.get_job(name) if self._scheduler is not None else None
            nxt = getattr(job, "next_run_time", None) if job is not None else None
            out.append(
                {
                    "name": name,
                    "interval_s": spec.interval().total_seconds(),
                    "last_run": row["last_run_at"] if row else None,
                    "last_result": row["last_result"] if row else None,
                    "last_detail": row["last_detail"] if row else None,
                    "next_run": nxt.astimezone(UTC).isoformat() if nxt else None,
                    "running": self._state[name].running,
                    "runs": int(row["runs"]) if row else 0,
                    "failures": int(row["failures"]) if row else 0,
                    "consecutive_failures": int(row["consecutive_failures"]) if row else 0,
                }
            )
        return out

    async def wait_ready(self) -> None:
        """Return once :meth:`run` has scheduled the tasks."""
        await self._ready.wait()


def check_task_name(name: Any) -> str:
    """Return ``name`` if it is a plain task name.

    :raises InvalidArgument: it is not (field ``name``).
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise InvalidArgument("name: a task name is required", details={"field": "name"})
    return name


# -- the proactive loop: its services and its task table ----------------------------------


class ProactiveSettings(Protocol):
    """The settings the proactive loop reads (``agentd.config.Settings`` has them)."""

    @property
    def state_dir(self) -> Path: ...
    @property
    def gate(self) -> Any: ...
    @property
    def scheduler(self) -> SchedulerConfig: ...
    @property
    def patterns(self) -> PatternsConfig: ...
    @property
    def goals(self) -> GoalsConfig: ...
    @property
    def planner(self) -> PlannerConfig: ...
    @property
    def digest(self) -> DigestConfig: ...
    @property
    def inbox(self) -> InboxConfig: ...
    @property
    def llm(self) -> LLMConfig: ...


#: SPEC §4.1 and the daemon's housekeeping, in the order ``agentctl tasks`` lists them.
TASK_NAMES = (
    "pattern_scan",
    "proactive_outreach_check",
    "goal_progress_update",
    "daily_digest_generation",
    "context_summarization",
    "approval_expiry",
    "idempotency_pruning",
    "inbox_poll",
)


def _under(state_dir: Path, path: Path) -> Path:
    return path if path.is_absolute() else state_dir / path


class ProactiveLoop:
    """The proactive loop's services and their scheduler, built from settings.

    ``settings`` is read at each use, so a reload's new intervals and rules
    apply from the next run (intervals: from the next start).
    """

    def __init__(
        self,
        store: Store,
        gate: GateService,
        settings: Callable[[], ProactiveSettings],
        *,
        model: Summarizer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        runner: str | None = None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.settings = settings
        self.model = model
        self.clock = clock
        self.goals = GoalService(store, clock=clock)
        self.scanner = PatternScanner(store, lambda: settings().patterns.rules(), clock=clock)
        self.planner = OutreachPlanner(
            store,
            gate,
            self.goals,
            accounts_per_goal=lambda: settings().goals.accounts_per_goal,
            max_patterns=lambda: settings().goals.max_patterns_per_check,
            contact_cooldown=lambda: timedelta(hours=settings().planner.contact_cooldown_hours),
            clock=clock,
        )
        self.digest = DigestService(
            store,
            self.goals,
            lambda: _under(settings().state_dir, settings().digest.dir),
            clock=clock,
        )
        self.summaries = SummaryService(
            store,
            lambda: self.model,
            lambda: SummaryOptions(
                period_days=settings().llm.summary_period_days,
                refresh_days=settings().llm.summary_refresh_days,
                max_sentences=settings().llm.summary_max_sentences,
                max_accounts=settings().llm.summary_max_accounts,
            ),
            clock=clock,
        )
        self.inbox = Inbox(
            store,
            lambda: _under(settings().state_dir, settings().inbox.dir),
            skip_bad=lambda: settings().inbox.skip_bad,
            max_file_bytes=lambda: settings().inbox.max_file_bytes,
        )
        cfg = settings().scheduler
        self.scheduler = TaskScheduler(
            store,
            self.task_specs(),
            misfire_grace_time=cfg.misfire_grace_time_s,
            drain_timeout=cfg.drain_timeout_s,
            enabled=cfg.enabled,
            clock=clock,
            runner=runner,
        )

    @property
    def spool_dir(self) -> Path:
        """Return where uploads are spooled before an import."""
        return self.settings().state_dir / "tmp"

    def task_specs(self) -> list[TaskSpec]:
        """Return the scheduled tasks (SPEC §4.1 plus housekeeping)."""

        def every(name: str) -> Callable[[], timedelta]:
            return lambda: self.settings().scheduler.interval(name)

        async def scan() -> str:
            return (await self.scanner.scan()).describe()

        async def outreach() -> str:
            return (await self.planner.check()).describe()

        async def progress() -> str:
            return (await self.goals.update_progress()).describe()

        async def summarize() -> str:
            return (await self.summaries.run()).describe()

        async def expire() -> str:
            return f"{await self.gate.expire_due()} approvals expired"

        async def prune() -> str:
            days = self.settings().gate.idempotency_retention_days
            return f"{await self.gate.prune_idempotency(timedelta(days=days))} records pruned"

        async def inbox() -> str:
            return (await self.inbox.poll()).describe()

        runs: dict[str, Callable[[], Awaitable[str]]] = {
            "pattern_scan": scan,
            "proactive_outreach_check": outreach,
            "goal_progress_update": progress,
            "daily_digest_generation": self.digest.daily,
            "context_summarization": summarize,
            "approval_expiry": expire,
            "idempotency_pruning": prune,
            "inbox_poll": inbox,
        }
        return [TaskSpec(name, every(name), runs[name]) for name in TASK_NAMES]

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the scheduler until cancelled (start it in the daemon's task group)."""
        await self.scheduler.run(task_status=task_status)

    async def aclose(self) -> None:
        """Release the model's HTTP connections, if any."""
        close = getattr(self.model, "aclose", None)
        if close is not None:
            await close()
