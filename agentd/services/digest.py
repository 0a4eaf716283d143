"""The daily digest as a service: gather one UTC day, render, write atomically.

The page is :func:`agentd.core.digest.render_digest`'s; this module reads the
day's executions, hand-offs, intents, operations, goals, patterns and audit events (at
most ``_ROW_LIMIT`` of each list, newest first, with the true totals), and writes
``DIGEST_DIR/YYYY-MM-DD.md`` through a temporary file and a rename, so a
reader never sees half a digest.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import anyio

from agentd.atomic import write_atomically
from agentd.core.digest import DigestData, GoalLine, render_digest
from agentd.core.timefmt import iso
from agentd.errors import InvalidArgument, NotFound
from agentd.services.goals import GoalService
from agentd.store.base import Store

_ROW_LIMIT = 500


def parse_day(text: str | None, today: date) -> date:
    """Return the day an operator named (``YYYY-MM-DD``, ``today``, ``yesterday``).

    :raises InvalidArgument: not a date (field ``date``).
    """
    if text is None or text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"date: {text!r} is not YYYY-MM-DD", details={"field": "date"}
        ) from None


class DigestService:
    """Write and find daily digests."""

    def __init__(
        self,
        store: Store,
        goals: GoalService,
        directory: Callable[[], Path],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.goals = goals
        self.directory = directory
        self.clock = clock

    def path_for(self, day: date) -> Path:
        """Return the digest file of ``day``."""
        return self.directory() / f"{day.isoformat()}.md"

    async def gather(self, day: date) -> DigestData:
        """Collect everything ``day``'s digest shows (each list newest first, with its total)."""
        now = self.clock()
        start = datetime.combine(day, time(), UTC)
        end = start + timedelta(days=1)
        lo, hi = iso(start), iso(end)
        store, limit = self.store, _ROW_LIMIT
        succeeded, n_succeeded = await store.digest.autonomous_succeeded(lo, hi, limit)
        failed, n_failed, n_failed_auto = await store.digest.failed_executions(lo, hi, limit)
        rollbacks, n_rollbacks = await store.digest.rollbacks(lo, hi, limit)
        decisions, n_decisions, n_approved = await store.digest.decisions(lo, hi, limit)
        pending, n_pending = await store.digest.pending(hi, limit)
        blocked, n_blocked = await store.digest.blocked(lo, hi, limit)
        breakers, n_breakers = await store.digest.breaker_events(lo, hi, limit)
        failures, n_failures = await store.digest.failed_operations(lo, hi, limit)
        tasks, n_tasks = await store.digest.failed_tasks(lo, hi, limit)
        handoffs, n_handoffs, n_handoffs_open = await store.digest.handoffs(lo, hi, limit)
        goals = []
        for g in await self.store.proactive.list_goals(include_final=True):
            if g.goal.end < start or g.goal.start >= end:
                continue
            evaluation = await self.goals.evaluate(g.goal, min(now, end))
            goals.append(
                GoalLine(
                    g.goal.id,
                    g.goal.name,
                    g.goal.goal_type,
                    evaluation.verdict,
                    evaluation.current,
                    g.goal.target,
                    g.goal.end,
                )
            )
        patterns, n_patterns = await self.store.proactive.patterns_between(lo, hi, limit)
        return DigestData(
            day=day,
            generated_at=now,
            auto_executed=succeeded,
            failed_executions=failed,
            rollbacks=rollbacks,
            decisions=decisions,
            pending=pending,
            blocked=blocked,
            goals=goals,
            patterns=patterns,
            breaker_events=breakers,
            failures=failures,
            failed_tasks=tasks,
            handoffs=handoffs,
            totals={
                "auto_executed": n_succeeded,
                "failed_executions": n_failed,
                "failed_executions:autonomous": n_failed_auto,
                "rollbacks": n_rollbacks,
                "decisions": n_decisions,
                "decisions:approved": n_approved,
                "pending": n_pending,
                "blocked": n_blocked,
                "patterns": n_patterns,
                "breaker_events": n_breakers,
                "failures": n_failures,
                "failed_tasks": n_tasks,
                "handoffs": n_handoffs,
                "handoffs:open": n_handoffs_open,
            },
        )

    async def write(self, day: date | None = None) -> Path:
        """Render and write ``day``'s digest (default: today, UTC); return its path."""
        day = day or self.clock().astimezone(UTC).date()
        path = self.path_for(day)
        text = render_digest(await self.gather(day), digest_dir=str(path.parent.absolute()))
        await anyio.to_thread.run_sync(
            lambda: write_atomically(path, text, mode=0o640, folder_mode=0o750)
        )
        return path

    async def daily(self) -> str:
        """Write yesterday's digest if it is missing, and today's so far (the daily task).

        Yesterday is skipped when it ended before the daemon first started (its
        first audit record): there is nothing to tell of it, and an all-zero
        page would say a quiet day passed.
        """
        today = self.clock().astimezone(UTC).date()
        written = []
        yesterday = today - timedelta(days=1)
        began = await self.store.digest.first_audit_at()
        started = began is not None and began.astimezone(UTC).date() <= yesterday
        if started and not self.path_for(yesterday).exists():
            written.append(await self.write(yesterday))
        written.append(await self.write(today))
        return "wrote " + ", ".join(p.name for p in written)

    async def find(self, day: date, *, content: bool) -> dict[str, Any]:
        """Return a digest's path (and text when ``content``).

        :raises NotFound: no digest was written for ``day``.
        """
        path = self.path_for(day)
        if not path.exists():
            raise NotFound(
                f"no digest for {day.isoformat()} at {path} "
                "(agentctl run-task daily_digest_generation --wait writes today's)",
                details={"date": day.isoformat(), "path": str(path)},
            )
        out: dict[str, Any] = {"date": day.isoformat(), "path": str(path)}
        if content:
            out["content"] = await anyio.Path(path).read_text(encoding="utf-8")
        return out
