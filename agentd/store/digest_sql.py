"""SQLite's half of the daily digest (:class:`~agentd.store.api.DigestReads`): one UTC
day's lists, newest first, with their true sizes.

Each reader returns ``(rows, total)``: at most ``limit`` rows, newest first,
and how many there are in all, so the digest can say "showing 500 of 601"
instead of counting only what it shows. Times are compared as stored (ISO
8601 UTC text, :func:`agentd.core.timefmt.iso`), over ``[lo, hi)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agentd.core.digest import (
    BlockedItem,
    BreakerEvent,
    DecisionItem,
    ExecutedItem,
    FailedExecution,
    FailedOperation,
    FailedTask,
    HandoffLine,
    PendingItem,
    RollbackItem,
)
from agentd.store.rows import Row, SqlReader

_ROLLBACK_OUTCOMES = {
    "EXECUTION_ROLLED_BACK": "rolled back",
    "ROLLBACK_FAILED": "failed",
    "ROLLBACK_ESCALATED": "escalated",
}
_DECISIONS = {"PROPOSAL_APPROVED": "approved", "PROPOSAL_REJECTED": "rejected"}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _data(row: Row) -> dict[str, Any]:
    value = json.loads(row["data"] or "{}")
    return value if isinstance(value, dict) else {}


# -- executions -----------------------------------------------------------------------------

# A hand-off a person closed (done or failed) is in the hand-off list, not these two:
# the agent did not carry it out. One refused before it reached a person stays a failure.
_SUCCEEDED = (
    "FROM executions e WHERE e.kind = 'change' AND e.autonomous = 1 AND e.state = 'succeeded' "
    "AND e.executor != 'handoff' AND e.finished_at >= ? AND e.finished_at < ?"
)


_FAILED = (
    "FROM executions e WHERE e.kind = 'change' AND e.state IN ('failed', 'refused') "
    "AND NOT (e.executor = 'handoff' AND e.state = 'failed') "
    "AND e.finished_at >= ? AND e.finished_at < ?"
)


_HANDOFFS = (
    "FROM executions e WHERE e.kind = 'change' AND e.executor = 'handoff' "
    "AND e.started_at IS NOT NULL AND e.started_at >= ? AND e.started_at < ?"
)
_HANDOFF_STATES = {"handed_off": "open", "succeeded": "done"}


# -- audit-trail lists ----------------------------------------------------------------------


def _events(names: Sequence[str], join: str = "") -> str:
    return (
        f"FROM audit a {join} WHERE a.event IN ({','.join('?' for _ in names)}) "
        "AND a.at >= ? AND a.at < ?"
    )


# -- intents --------------------------------------------------------------------------------

_BLOCKED = "FROM intents WHERE decision = 'BLOCKED' AND created_at >= ? AND created_at < ?"


_PENDING = "FROM intents WHERE status = 'pending' AND created_at < ?"


# -- browser operations ---------------------------------------------------------------------

_OPS_FAILED = "FROM operations WHERE state = 'failed' AND finished_at >= ? AND finished_at < ?"


class SqliteDigest:
    """The reads of digest (:class:`~agentd.store.api.DigestReads`)."""

    def __init__(self, db: SqlReader) -> None:
        self._db = db

    async def _count(self, sql: str, params: Sequence[Any]) -> int:
        row = await self._db.fetchone(sql, params)
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def first_audit_at(self) -> datetime | None:
        """Return when the store's first audit record was written (the daemon's first start)."""
        row = await self._db.fetchone("SELECT at FROM audit ORDER BY seq LIMIT 1")
        return _when(row[0]) if row is not None else None

    async def autonomous_succeeded(
        self, lo: str, hi: str, limit: int
    ) -> tuple[list[ExecutedItem], int]:
        """Return autonomous change executions that succeeded in the day."""
        rows = await self._db.fetchall(
            "SELECT e.id, e.intent_id, e.account, e.action_type, e.finished_at, "
            "(SELECT i.rationale FROM intents i WHERE i.id = e.intent_id) AS rationale "
            f"{_SUCCEEDED} ORDER BY e.finished_at DESC, e.id DESC LIMIT ?",
            (lo, hi, limit),
        )
        items = [
            ExecutedItem(
                r["intent_id"],
                r["account"],
                r["action_type"],
                _when(r["finished_at"]),
                r["rationale"] or "",
                r["id"],
            )
            for r in rows
        ]
        return items, await self._count(f"SELECT COUNT(*) {_SUCCEEDED}", (lo, hi))

    async def failed_executions(
        self, lo: str, hi: str, limit: int
    ) -> tuple[list[FailedExecution], int, int]:
        """Return change executions that failed or were refused in the day.

        Returns the rows, their total, and how many of the total were autonomous.
        """
        rows = await self._db.fetchall(
            "SELECT e.id, e.intent_id, e.account, e.action_type, e.finished_at, e.autonomous, "
            f"e.state, e.reason, e.detail, e.change_op {_FAILED} "
            "ORDER BY e.finished_at DESC, e.id DESC LIMIT ?",
            (lo, hi, limit),
        )
        items = [
            FailedExecution(
                r["id"],
                r["intent_id"],
                r["account"],
                r["action_type"],
                _when(r["finished_at"]),
                bool(r["autonomous"]),
                r["reason"] or r["state"],
                r["detail"] or "",
                r["change_op"] or "",
            )
            for r in rows
        ]
        counted = await self._db.fetchone(
            f"SELECT COUNT(*), COALESCE(SUM(e.autonomous), 0) {_FAILED}", (lo, hi)
        )
        assert counted is not None
        return items, int(counted[0]), int(counted[1])

    async def handoffs(self, lo: str, hi: str, limit: int) -> tuple[list[HandoffLine], int, int]:
        """Return the hand-offs to a person made in the day, and where each stands now.

        Returns the rows, their total, and how many of the total are still open.
        """
        rows = await self._db.fetchall(
            f"SELECT e.id, e.account, e.action_type, e.started_at, e.state, e.detail {_HANDOFFS} "
            "ORDER BY e.started_at DESC, e.id DESC LIMIT ?",
            (lo, hi, limit),
        )
        items = [
            HandoffLine(
                r["id"],
                r["account"],
                r["action_type"],
                _when(r["started_at"]),
                _HANDOFF_STATES.get(r["state"], r["state"]),
                (r["detail"] or "") if r["state"] != "handed_off" else "",
            )
            for r in rows
        ]
        counted = await self._db.fetchone(
            f"SELECT COUNT(*), COUNT(*) FILTER (WHERE e.state = 'handed_off') {_HANDOFFS}", (lo, hi)
        )
        assert counted is not None
        return items, int(counted[0]), int(counted[1])

    async def rollbacks(self, lo: str, hi: str, limit: int) -> tuple[list[RollbackItem], int]:
        """Return the undos asked for in the day: rolled back, failed, escalated or refused."""
        names = list(_ROLLBACK_OUTCOMES)
        where = _events(names)
        rows = await self._db.fetchall(
            "SELECT a.at, a.event, a.actor, a.subject, a.data, e.account, e.action_type "
            f"{_events(names, 'LEFT JOIN executions e ON e.id = a.subject')} "
            "ORDER BY a.seq DESC LIMIT ?",
            (*names, lo, hi, limit),
        )
        items = []
        for r in rows:
            data = _data(r)
            escalated = r["event"] == "ROLLBACK_ESCALATED"
            outcome = _ROLLBACK_OUTCOMES[r["event"]]
            why = str(data.get("reason") or data.get("error") or "")
            if data.get("refused"):  # asked for, refused before anything ran (token used, ...)
                outcome, why = "refused", f"{data['refused']}: {data.get('detail') or ''}"
            elif data.get("error") and data.get("reason"):
                why = f"{data['reason']}: {data['error']}"
            items.append(
                RollbackItem(
                    r["subject"] or "?",
                    r["account"] or "-",
                    r["action_type"] or "-",
                    _when(r["at"]),
                    outcome,
                    "ESCALATED_RESTORE" if escalated else str(data.get("type") or "-"),
                    r["actor"],
                    why,
                )
            )
        return items, await self._count(f"SELECT COUNT(*) {where}", (*names, lo, hi))

    async def decisions(self, lo: str, hi: str, limit: int) -> tuple[list[DecisionItem], int, int]:
        """Return people's approvals and rejections of intents in the day.

        Returns the rows, their total, and how many of the total were approvals.
        """
        names = list(_DECISIONS)
        where = _events(names)
        rows = await self._db.fetchall(
            "SELECT a.at, a.event, a.actor, a.subject, a.data, i.account, i.action_type "
            f"{_events(names, 'LEFT JOIN intents i ON i.id = a.subject')} "
            "ORDER BY a.seq DESC LIMIT ?",
            (*names, lo, hi, limit),
        )
        items = []
        for r in rows:
            data = _data(r)
            items.append(
                DecisionItem(
                    r["subject"] or "?",
                    r["account"] or "-",
                    r["action_type"] or "-",
                    _when(r["at"]),
                    _DECISIONS[r["event"]],
                    r["actor"],
                    str(data.get("note") or data.get("reason") or ""),
                )
            )
        counted = await self._db.fetchone(
            f"SELECT COUNT(*), COUNT(*) FILTER (WHERE a.event = 'PROPOSAL_APPROVED') {where}",
            (*names, lo, hi),
        )
        assert counted is not None
        return items, int(counted[0]), int(counted[1])

    async def breaker_events(self, lo: str, hi: str, limit: int) -> tuple[list[BreakerEvent], int]:
        """Return breaker trips and resets in the day."""
        names = ["BREAKER_TRIPPED", "BREAKER_RESET"]
        where = _events(names)
        rows = await self._db.fetchall(
            f"SELECT a.at, a.event, a.subject, a.data {where} ORDER BY a.seq DESC LIMIT ?",
            (*names, lo, hi, limit),
        )
        items = []
        for r in rows:
            data = _data(r)
            items.append(
                BreakerEvent(
                    _when(r["at"]),
                    str(data.get("rule", r["subject"] or "?")),
                    str(data.get("action", "reset" if r["event"] == "BREAKER_RESET" else "?")),
                    str(data.get("severity", "-")),
                    str(data.get("detail", data.get("message", ""))),
                )
            )
        return items, await self._count(f"SELECT COUNT(*) {where}", (*names, lo, hi))

    async def failed_tasks(self, lo: str, hi: str, limit: int) -> tuple[list[FailedTask], int]:
        """Return scheduled task runs that failed in the day."""
        where = _events(["TASK_FAILED"])
        rows = await self._db.fetchall(
            f"SELECT a.at, a.subject, a.data {where} ORDER BY a.seq DESC LIMIT ?",
            ("TASK_FAILED", lo, hi, limit),
        )
        items = [
            FailedTask(
                str(_data(r).get("task") or r["subject"] or "?"),
                _when(r["at"]),
                str(_data(r).get("error") or ""),
            )
            for r in rows
        ]
        return items, await self._count(f"SELECT COUNT(*) {where}", ("TASK_FAILED", lo, hi))

    async def blocked(self, lo: str, hi: str, limit: int) -> tuple[list[BlockedItem], int]:
        """Return intents the gate blocked in the day."""
        rows = await self._db.fetchall(
            f"SELECT id, account, action_type, created_at, reason, outcome {_BLOCKED} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (lo, hi, limit),
        )
        items = []
        for r in rows:
            outcome = json.loads(r["outcome"] or "{}")
            message = outcome.get("message") if isinstance(outcome, dict) else None
            items.append(
                BlockedItem(
                    r["id"],
                    r["account"],
                    r["action_type"],
                    _when(r["created_at"]),
                    r["reason"],
                    str(message or ""),
                )
            )
        return items, await self._count(f"SELECT COUNT(*) {_BLOCKED}", (lo, hi))

    async def pending(self, hi: str, limit: int) -> tuple[list[PendingItem], int]:
        """Return intents created before the day's end still waiting for approval, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT id, account, action_type, created_at, reason {_PENDING} "
            "ORDER BY created_at, id LIMIT ?",
            (hi, limit),
        )
        items = [PendingItem(r[0], r[1], r[2], _when(r[3]), r[4]) for r in rows]
        return items, await self._count(f"SELECT COUNT(*) {_PENDING}", (hi,))

    async def failed_operations(
        self, lo: str, hi: str, limit: int
    ) -> tuple[list[FailedOperation], int]:
        """Return browser operations that failed in the day, with the failing step's screenshot.

        The failing step is the operation's last step recorded as failed or
        refused; when it has no screenshot, the page as the operation ended (its
        final screenshot) stands in.
        """
        ops = await self._db.fetchall(
            f"SELECT id, account, workflow, finished_at, error, reason, execution_id, total "
            f"{_OPS_FAILED} ORDER BY finished_at DESC, id DESC LIMIT ?",
            (lo, hi, limit),
        )
        failing: dict[str, Row] = {}
        final: dict[str, str] = {}
        if ops:
            marks = ",".join("?" for _ in ops)
            for s in await self._db.fetchall(
                f"SELECT op_id, idx, intent, status, screenshot FROM operation_steps "
                f"WHERE op_id IN ({marks}) AND status IN ('failed', 'refused', 'final') "
                "ORDER BY op_id, seq",
                [o["id"] for o in ops],
            ):
                if s["status"] == "final":
                    if s["screenshot"]:
                        final[s["op_id"]] = s["screenshot"]
                else:
                    failing[s["op_id"]] = s  # the last one wins
        items = []
        for o in ops:
            step = failing.get(o["id"])
            label = f"step {step['idx']} of {o['total']}: {step['intent']}" if step else ""
            shot = (step["screenshot"] if step else None) or final.get(o["id"])
            items.append(
                FailedOperation(
                    o["id"],
                    o["account"],
                    o["workflow"],
                    _when(o["finished_at"]),
                    o["error"] or o["reason"] or "",
                    label,
                    shot,
                    o["execution_id"] or "",
                )
            )
        return items, await self._count(f"SELECT COUNT(*) {_OPS_FAILED}", (lo, hi))
