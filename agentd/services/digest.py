"""The daily digest as a service: gather one UTC day, render, write atomically.

The page is :func:`agentd.core.digest.render_digest`'s; this module reads the
day's intents, goals, patterns and audit events, and writes
``DIGEST_DIR/YYYY-MM-DD.md`` through a temporary file and a rename, so a
reader never sees half a digest.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import anyio

from agentd.core.digest import (
    BlockedItem,
    BreakerEvent,
    DigestData,
    ExecutedItem,
    FailedOperation,
    GoalLine,
    HandoffLine,
    PendingItem,
    render_digest,
)
from agentd.errors import InvalidArgument, NotFound
from agentd.services.goals import GoalService
from agentd.store import proactive_sql
from agentd.store.sqlite import SqliteStore, iso

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


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a synced temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        # Keep the original error; the temporary file must not linger.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


class DigestService:
    """Write and find daily digests."""

    def __init__(
        self,
        store: SqliteStore,
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
        """Collect everything ``day``'s digest shows."""
        now = self.clock()
        start = datetime.combine(day, time(), UTC)
        end = start + timedelta(days=1)
        lo, hi = iso(start), iso(end)
        rows = await self.store.read_all(
            "SELECT id, account, action_type, rationale, created_at, reason, outcome, status, "
            "approval_source, decision FROM intents WHERE created_at >= ? AND created_at < ? "
            "AND (approval_source = 'POLICY' OR decision = 'BLOCKED') ORDER BY created_at "
            "LIMIT ?",
            (lo, hi, _ROW_LIMIT * 2),
        )
        executed, blocked = [], []
        for r in rows:
            if r["decision"] == "BLOCKED":
                message = json.loads(r["outcome"]).get("message") or ""
                blocked.append(
                    BlockedItem(
                        r["id"],
                        r["account"],
                        r["action_type"],
                        _when(r["created_at"]),
                        r["reason"],
                        message,
                    )
                )
            else:
                executed.append(
                    ExecutedItem(
                        r["id"],
                        r["account"],
                        r["action_type"],
                        _when(r["created_at"]),
                        r["rationale"],
                    )
                )
        pending = [
            PendingItem(r[0], r[1], r[2], _when(r[3]), r[4])
            for r in await self.store.read_all(
                "SELECT id, account, action_type, created_at, reason FROM intents "
                "WHERE status = 'pending' AND created_at < ? ORDER BY created_at LIMIT ?",
                (hi, _ROW_LIMIT),
            )
        ]
        goals = []
        for g in await proactive_sql.list_goals(self.store, include_final=True):
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
        patterns = [
            proactive_sql.pattern_from_row(r)
            for r in await self.store.read_all(
                "SELECT * FROM patterns WHERE detected_at >= ? AND detected_at < ? "
                "ORDER BY detected_at LIMIT ?",
                (lo, hi, _ROW_LIMIT),
            )
        ]
        events = await self.store.read_all(
            "SELECT at, event, subject, data FROM audit WHERE event IN "
            "('BREAKER_TRIPPED', 'BREAKER_RESET', 'TASK_FAILED', 'EXECUTION_FAILED') "
            "AND at >= ? AND at < ? ORDER BY seq LIMIT ?",
            (lo, hi, _ROW_LIMIT),
        )
        breakers, failures = [], []
        for e in events:
            data: dict[str, Any] = json.loads(e["data"])
            at = _when(e["at"])
            if e["event"].startswith("BREAKER_"):
                breakers.append(
                    BreakerEvent(
                        at,
                        str(data.get("rule", e["subject"] or "?")),
                        str(data.get("action", "reset" if e["event"] == "BREAKER_RESET" else "?")),
                        str(data.get("severity", "-")),
                        str(data.get("detail", data.get("message", ""))),
                    )
                )
            else:
                task = e["event"] == "TASK_FAILED"
                failures.append(
                    FailedOperation(
                        str(e["subject"] or "?"),
                        str(data.get("account", "-")),
                        f"task {data.get('task', e['subject'])}"
                        if task
                        else str(data.get("workflow", "-")),
                        at,
                        str(data.get("error", "")),
                        tuple(str(s) for s in data.get("screenshots", ())),
                    )
                )
        handoffs = [
            HandoffLine(
                r["id"],
                r["account"],
                r["action_type"],
                _when(r["started_at"]),
                {"handed_off": "open", "succeeded": "done"}.get(r["state"], r["state"]),
                r["detail"] if r["state"] != "handed_off" else "",
            )
            for r in await self.store.read_all(
                "SELECT id, account, action_type, started_at, state, detail FROM executions "
                "WHERE kind = 'change' AND executor = 'handoff' AND started_at >= ? "
                "AND started_at < ? ORDER BY started_at LIMIT ?",
                (lo, hi, _ROW_LIMIT),
            )
        ]
        return DigestData(
            day=day,
            generated_at=now,
            auto_executed=executed[:_ROW_LIMIT],
            pending=pending,
            blocked=blocked[:_ROW_LIMIT],
            goals=goals,
            patterns=patterns,
            breaker_events=breakers,
            failures=failures,
            handoffs=handoffs,
        )

    async def write(self, day: date | None = None) -> Path:
        """Render and write ``day``'s digest (default: today, UTC); return its path."""
        day = day or self.clock().astimezone(UTC).date()
        path = self.path_for(day)
        text = render_digest(await self.gather(day), digest_dir=str(path.parent.absolute()))
        await anyio.to_thread.run_sync(write_atomically, path, text)
        return path

    async def daily(self) -> str:
        """Write yesterday's digest if it is missing, and today's so far (the daily task)."""
        today = self.clock().astimezone(UTC).date()
        written = []
        yesterday = today - timedelta(days=1)
        if not self.path_for(yesterday).exists():
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
