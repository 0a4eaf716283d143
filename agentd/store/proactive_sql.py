"""SQLite's proactive records (:class:`~agentd.store.api.ProactiveReads`): interactions,
patterns, goals, task runs, summaries.

The read class runs on any :class:`~agentd.store.rows.SqlReader`; the write
class on a transaction. The pattern scan is the exception: it reads every
account's history, so it runs in a worker thread on a read-only connection of
its own (:func:`iter_histories`) and streams rows in account order without
holding them, while the daemon's connections stay free.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

from agentd.core.goals import Goal, GoalStatus, GoalType, Verdict
from agentd.core.interactions import (
    CompactInteraction,
    Direction,
    Interaction,
    InteractionKind,
    KindCode,
)
from agentd.core.patterns import EngagementDirection, Pattern, PatternKind, RiskSeverity
from agentd.core.timefmt import iso
from agentd.store.records import GoalRow
from agentd.store.rows import Row, SqlReader, SqlWriter, row_dict

T = TypeVar("T")

INSERT_INTERACTION = (
    "INSERT INTO interactions"
    "(account, at, id, kind, inbound, sentiment, summary, imported_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_KIND_BY_CODE = {int(KindCode[k.name]): k for k in InteractionKind}


def interaction_row(item: Interaction, imported_at: str) -> tuple[Any, ...]:
    """Return the insert parameters of one interaction."""
    _, kind, inbound, at, sentiment = item.compact()
    return (item.account, at, item.id, kind, int(inbound), sentiment, item.summary, imported_at)


# -- the scan (worker thread, own connection) ---------------------------------------


#: The histories' read, in one pass in primary-key order.
HISTORIES = (
    "SELECT account, id, kind, inbound, at, sentiment FROM interactions "
    "WHERE at >= ? ORDER BY account, at, id"
)
#: The read of the keys of patterns detected at or after a time.
KNOWN_KEYS = "SELECT key FROM patterns WHERE detected_at >= ?"


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open a read-only connection for a worker thread."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def iter_histories(
    conn: sqlite3.Connection, since: float
) -> Iterator[tuple[str, list[CompactInteraction]]]:
    """Yield ``(account, interactions sorted by time)`` for accounts active since ``since``.

    Only interactions at or after ``since`` (epoch seconds) are read, in one
    pass in primary-key order; one account's list is held at a time.
    """
    return group_histories(conn.execute(HISTORIES, (since,)))


class Fetcher(Protocol):
    """A cursor that hands its rows over in slices."""

    def fetchmany(self, size: int) -> Sequence[Any]:
        """Return up to ``size`` more rows (none at the end)."""
        ...


def group_histories(cur: Fetcher) -> Iterator[tuple[str, list[CompactInteraction]]]:
    """Yield ``(account, interactions)`` from the rows of :data:`HISTORIES`, one account at once."""
    current: str | None = None
    items: list[CompactInteraction] = []
    while True:
        rows = cur.fetchmany(10_000)
        if not rows:
            break
        for account, ident, kind, inbound, at, sentiment in rows:
            if account != current:
                if items:
                    assert current is not None
                    yield current, items
                current, items = account, []
            items.append((ident, kind, inbound == 1, at, sentiment))
    if items and current is not None:
        yield current, items


def known_keys(conn: sqlite3.Connection, since: str) -> set[str]:
    """Return the keys of patterns detected at or after ``since`` (ISO time)."""
    return {r[0] for r in conn.execute(KNOWN_KEYS, (since,))}


def _pattern_row(p: Pattern) -> tuple[Any, ...]:
    return (
        p.key,
        p.account,
        p.kind.value,
        p.severity.value if p.severity else None,
        p.direction.value if p.direction else None,
        p.summary,
        json.dumps(list(p.rules)),
        json.dumps(list(p.evidence)),
        iso(p.detected_at),
    )


def pattern_from_row(r: Row) -> Pattern:
    """Rebuild a stored pattern."""
    return Pattern(
        account=r["account"],
        kind=PatternKind(r["kind"]),
        severity=RiskSeverity(r["severity"]) if r["severity"] else None,
        direction=EngagementDirection(r["direction"]) if r["direction"] else None,
        evidence=tuple(json.loads(r["evidence"])),
        detected_at=datetime.fromisoformat(r["detected_at"]),
        summary=r["summary"],
        key=r["key"],
        rules=tuple(json.loads(r["rules"])),
    )


def pattern_view(p: Pattern, planned_at: str | None = None) -> dict[str, Any]:
    """Return the protocol form of a pattern."""
    return {
        "key": p.key,
        "account": p.account,
        "kind": p.kind.value,
        "severity": p.severity.value if p.severity else None,
        "direction": p.direction.value if p.direction else None,
        "summary": p.summary,
        "rules": list(p.rules),
        "evidence": list(p.evidence),
        "detected_at": iso(p.detected_at),
        "planned_at": planned_at,
    }


# -- goals ---------------------------------------------------------------------------


def _goal(r: Row) -> GoalRow:
    goal = Goal(
        id=r["id"],
        tenant=r["tenant"],
        goal_type=GoalType(r["goal_type"]),
        target=float(r["target"]),
        start=datetime.fromisoformat(r["start_at"]),
        end=datetime.fromisoformat(r["end_at"]),
        name=r["name"],
        status=GoalStatus(r["status"]),
    )
    return GoalRow(
        goal,
        Verdict(r["verdict"]) if r["verdict"] else None,
        r["current"],
        r["progress_at"],
        r["created_at"],
        r["created_by"],
    )


# -- task runs -----------------------------------------------------------------------


# -- summaries -----------------------------------------------------------------------


class SqliteProactive:
    """The reads of the proactive loop (:class:`~agentd.store.api.ProactiveReads`)."""

    def __init__(self, db: SqlReader, path: Path) -> None:
        self._db = db
        self._path = path

    async def scan_histories(
        self,
        since: float,
        keys_since: str,
        work: Callable[[set[str], Iterator[tuple[str, list[CompactInteraction]]]], T],
    ) -> T:
        """Run ``work`` on a worker thread over the interaction histories; return its result.

        ``work`` gets the keys of patterns detected at or after ``keys_since`` and
        an iterator of ``(account, interactions sorted by time)`` for the accounts
        active since ``since`` (epoch seconds), one account at a time. It reads
        the last committed state on a connection of its own, so neither the
        event loop nor the writer waits for the scan.
        """

        def run() -> T:
            conn = open_readonly(self._path)
            try:
                return work(known_keys(conn, keys_since), iter_histories(conn, since))
            finally:
                conn.close()

        return await anyio.to_thread.run_sync(run)

    async def recent_patterns(self, account: str, limit: int) -> list[Pattern]:
        """Return an account's patterns, newest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM patterns WHERE account = ? ORDER BY detected_at DESC LIMIT ?",
            (account, limit),
        )
        return [pattern_from_row(r) for r in rows]

    async def patterns_between(self, lo: str, hi: str, limit: int) -> tuple[list[Pattern], int]:
        """Return the patterns detected in ``[lo, hi)``, newest first, and how many there were."""
        rows = await self._db.fetchall(
            "SELECT * FROM patterns WHERE detected_at >= ? AND detected_at < ? "
            "ORDER BY detected_at DESC LIMIT ?",
            (lo, hi, limit),
        )
        count = await self._db.fetchone(
            "SELECT COUNT(*) FROM patterns WHERE detected_at >= ? AND detected_at < ?", (lo, hi)
        )
        return [pattern_from_row(r) for r in rows], int(count[0]) if count else 0

    async def account_ids(self) -> set[str]:
        """Return the ids of every known account."""
        return {str(r[0]) for r in await self._db.fetchall("SELECT id FROM accounts")}

    async def account_tenants(self, accounts: Iterable[str]) -> dict[str, str]:
        """Return ``{account: tenant}`` for the given accounts that exist."""
        wanted = sorted(set(accounts))
        out: dict[str, str] = {}
        for n in range(0, len(wanted), 500):
            chunk = wanted[n : n + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._db.fetchall(
                f"SELECT id, tenant FROM accounts WHERE id IN ({marks})", chunk
            )
            out.update({str(r[0]): str(r[1]) for r in rows})
        return out

    async def unplanned_patterns(self, limit: int) -> list[Pattern]:
        """Return patterns not yet planned for, oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM patterns WHERE planned_at IS NULL ORDER BY detected_at, key LIMIT ?",
            (limit,),
        )
        return [pattern_from_row(r) for r in rows]

    async def list_patterns(
        self, *, account: str | None, since: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Return stored patterns, newest first."""
        where, params = ["1 = 1"], []
        if account:
            where.append("account = ?")
            params.append(account)
        if since:
            where.append("detected_at >= ?")
            params.append(since)
        rows = await self._db.fetchall(
            f"SELECT * FROM patterns WHERE {' AND '.join(where)} "
            "ORDER BY detected_at DESC, key LIMIT ?",
            (*params, limit),
        )
        return [pattern_view(pattern_from_row(r), r["planned_at"]) for r in rows]

    async def get_goal(self, goal_id: str) -> GoalRow | None:
        """Return one goal, or None."""
        row = await self._db.fetchone("SELECT * FROM goals WHERE id = ?", (goal_id,))
        return _goal(row) if row else None

    async def list_goals(self, *, include_final: bool, tenant: str | None = None) -> list[GoalRow]:
        """Return goals (active only unless ``include_final``), by tenant and end."""
        where, params = ["1 = 1"], []
        if not include_final:
            where.append("status = 'active'")
        if tenant:
            where.append("tenant = ?")
            params.append(tenant)
        rows = await self._db.fetchall(
            f"SELECT * FROM goals WHERE {' AND '.join(where)} ORDER BY tenant, end_at, id", params
        )
        return [_goal(r) for r in rows]

    async def metric_counts(self, tenant: str, since: datetime, until: datetime) -> dict[str, Any]:
        """Return the raw counts behind :class:`~agentd.core.goals.MetricFacts`."""
        since_ts, until_ts = since.timestamp(), until.timestamp()
        row = await self._db.fetchone(
            "SELECT "
            " (SELECT COUNT(*) FROM accounts WHERE tenant = ?"
            "   AND stage IN ('discovery', 'evaluation', 'negotiation')),"
            " (SELECT COUNT(*) FROM accounts WHERE tenant = ? AND stage = 'closed_won')",
            (tenant, tenant),
        )
        inter = await self._db.fetchone(
            "SELECT COUNT(*) FILTER (WHERE i.inbound = 0), "
            "COUNT(*) FILTER (WHERE i.sentiment IS NOT NULL), "
            "COUNT(*) FILTER (WHERE i.sentiment >= 0) FROM accounts a "
            "JOIN interactions i ON i.account = a.id AND i.at >= ? AND i.at < ? WHERE a.tenant = ?",
            (since_ts, until_ts, tenant),
        )
        # Executions by when they finished (the audit's subject is the execution's
        # id, not the intent's: the executions table is the record to count).
        execs = await self._db.fetchone(
            "SELECT COUNT(*) FILTER (WHERE state = 'succeeded'), COUNT(*) FROM executions "
            "WHERE kind = 'change' AND state IN ('succeeded', 'failed') "
            "AND finished_at >= ? AND finished_at < ? AND tenant = ?",
            (iso(since), iso(until), tenant),
        )
        assert row is not None and inter is not None and execs is not None
        return {
            "pipeline_accounts": int(row[0]),
            "closed_won_count": int(row[1]),
            "outbound_interactions": int(inter[0]),
            "rated_interactions": int(inter[1]),
            "non_negative_interactions": int(inter[2]),
            "executed_actions": int(execs[0]),
            "executions_succeeded": int(execs[0]),
            "executions_total": int(execs[1]),
        }

    async def candidate_rows(
        self, tenants: Sequence[str]
    ) -> list[tuple[str, str, str, float | None]]:
        """Return ``(tenant, id, stage, last interaction epoch)`` of the tenants' open accounts."""
        if not tenants:
            return []
        marks = ",".join("?" * len(tenants))
        rows = await self._db.fetchall(
            "SELECT a.tenant, a.id, a.stage, "
            " (SELECT MAX(i.at) FROM interactions i WHERE i.account = a.id) "
            f"FROM accounts a WHERE a.tenant IN ({marks}) "
            "AND a.stage NOT IN ('closed_won', 'closed_lost')",
            list(tenants),
        )
        return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]

    async def recent_contacts(
        self, accounts: Sequence[str], action_types: Iterable[str], since: datetime
    ) -> list[tuple[str, str, str, bool, datetime | None]]:
        """Return ``(tenant, account, action type, open, reached_at)`` of the accounts' contacts.

        Intents of ``action_types`` that are still open (pending; approved and not
        finished: queued, running or handed off), or whose execution finished
        (succeeded or failed) at or after ``since``.
        """
        types = sorted(action_types)
        out: list[tuple[str, str, str, bool, datetime | None]] = []
        for n in range(0, len(accounts), 500):
            chunk = list(accounts[n : n + 500])
            rows = await self._db.fetchall(
                "SELECT i.tenant, i.account, i.action_type, i.status, e.state, e.finished_at "
                "FROM intents i LEFT JOIN executions e ON e.intent_id = i.id AND e.kind = 'change' "
                f"WHERE i.account IN ({','.join('?' * len(chunk))}) "
                f"AND i.action_type IN ({','.join('?' * len(types))}) "
                "AND (i.status = 'pending' OR (i.status = 'approved' AND (e.state IS NULL "
                "OR e.state NOT IN ('succeeded', 'failed', 'refused') OR e.finished_at >= ?)))",
                (*chunk, *types, iso(since)),
            )
            for r in rows:
                finished = r["state"] in ("succeeded", "failed", "refused")
                reached = (
                    datetime.fromisoformat(r["finished_at"])
                    if r["state"] in ("succeeded", "failed") and r["finished_at"]
                    else None
                )
                out.append((r["tenant"], r["account"], r["action_type"], not finished, reached))
        return out

    async def intent_ids_known(self, ids: Sequence[str]) -> set[str]:
        """Return which of ``ids`` already name a stored intent."""
        out: set[str] = set()
        for n in range(0, len(ids), 500):
            chunk = list(ids[n : n + 500])
            marks = ",".join("?" * len(chunk))
            rows = await self._db.fetchall(f"SELECT id FROM intents WHERE id IN ({marks})", chunk)
            out.update(str(r[0]) for r in rows)
        return out

    async def task_runs(self) -> dict[str, dict[str, Any]]:
        """Return every task's stored run record (column name to value) by name."""
        rows = await self._db.fetchall("SELECT * FROM task_runs")
        return {str(r["name"]): row_dict(r) for r in rows}

    async def stale_accounts(self, *, since: float, refresh_before: str, limit: int) -> list[str]:
        """Return accounts active since ``since`` whose summary is missing or out of date.

        Out of date: an interaction newer than the one the summary covered, or a
        summary generated before ``refresh_before``.
        """
        rows = await self._db.fetchall(
            "SELECT i.account FROM interactions i "
            "LEFT JOIN account_summaries s ON s.account = i.account "
            "WHERE i.at >= ? GROUP BY i.account "
            "HAVING MAX(s.generated_at) IS NULL OR MAX(i.at) > MAX(s.last_interaction_at) "
            " OR MAX(s.generated_at) < ? "
            "ORDER BY MAX(i.at) DESC, i.account LIMIT ?",
            (since, refresh_before, limit),
        )
        return [str(r[0]) for r in rows]

    async def recent_interactions(self, account: str, since: float) -> list[Interaction]:
        """Return an account's interactions since ``since``, oldest first."""
        rows = await self._db.fetchall(
            "SELECT id, kind, inbound, at, sentiment, summary FROM interactions "
            "WHERE account = ? AND at >= ? ORDER BY at, id",
            (account, since),
        )
        return [
            Interaction(
                r[0],
                account,
                _KIND_BY_CODE[int(r[1])],
                Direction.IN if r[2] else Direction.OUT,
                datetime.fromtimestamp(r[3], UTC),
                r[4],
                r[5],
            )
            for r in rows
        ]

    async def get_summary(self, account: str) -> dict[str, Any] | None:
        """Return an account's stored summary, or None."""
        r = await self._db.fetchone("SELECT * FROM account_summaries WHERE account = ?", (account,))
        if r is None:
            return None
        return {k: r[k] for k in r.keys()}


class SqliteProactiveWrites(SqliteProactive):
    """The reads and writes inside a transaction (:class:`~agentd.store.api.ProactiveRecords`)."""

    def __init__(self, tx: SqlWriter, path: Path) -> None:
        super().__init__(tx, path)
        self._tx = tx

    async def insert_interactions(self, items: Sequence[Interaction], imported_at: str) -> int:
        """Store interactions; one already stored (same account and id) is skipped.

        Return how many were new.
        """
        return await self._tx.executemany(
            INSERT_INTERACTION, [interaction_row(item, imported_at) for item in items]
        )

    async def insert_patterns(self, patterns: Sequence[Pattern]) -> None:
        """Store new patterns; a key already stored is left as it is."""
        await self._tx.executemany(
            "INSERT INTO patterns(key, account, kind, severity, direction, summary, "
            "rules, evidence, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [_pattern_row(p) for p in patterns],
        )

    async def mark_planned(self, keys: Sequence[str], at: str) -> None:
        """Record that these patterns were planned for."""
        await self._tx.executemany(
            "UPDATE patterns SET planned_at = ? WHERE key = ? AND planned_at IS NULL",
            [(at, k) for k in keys],
        )

    async def insert_goal(self, goal: Goal, actor: str) -> None:
        """Store a new goal."""
        at = iso(self._tx.now)
        await self._tx.execute(
            "INSERT INTO goals(id, tenant, goal_type, target, start_at, end_at, name, status, "
            "created_at, created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                goal.id,
                goal.tenant,
                goal.goal_type.value,
                goal.target,
                iso(goal.start),
                iso(goal.end),
                goal.name,
                goal.status.value,
                at,
                actor,
                at,
            ),
        )

    async def write_progress(self, rows: Sequence[tuple[str, str, float, str]]) -> None:
        """Store ``(goal id, status, current, verdict)`` as of the transaction's time."""
        at = iso(self._tx.now)
        await self._tx.executemany(
            "UPDATE goals SET status = ?, current = ?, verdict = ?, "
            "progress_at = ?, updated_at = ? "
            "WHERE id = ?",
            [(status, current, verdict, at, at, gid) for gid, status, current, verdict in rows],
        )

    async def record_task_run(
        self, name: str, started: datetime, *, ok: bool, detail: str | None
    ) -> None:
        """Record a finished run of a task (its start is what schedules the next one)."""
        await self._tx.execute(
            "INSERT INTO task_runs(name, last_run_at, last_finished_at, last_result, last_detail, "
            "runs, failures, consecutive_failures) VALUES (?, ?, ?, ?, ?, 1, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET last_run_at = excluded.last_run_at, "
            "last_finished_at = excluded.last_finished_at, last_result = excluded.last_result, "
            "last_detail = excluded.last_detail, runs = task_runs.runs + 1, "
            "failures = task_runs.failures + excluded.failures, "
            "consecutive_failures = CASE WHEN excluded.failures = 0 THEN 0 "
            "ELSE task_runs.consecutive_failures + 1 END, claimed_by = NULL, claim_until = NULL",
            (
                name,
                iso(started),
                iso(self._tx.now),
                "ok" if ok else "failed",
                detail,
                0 if ok else 1,
                0 if ok else 1,
            ),
        )

    async def claim_task_run(
        self, name: str, *, owner: str, due_before: datetime, until: datetime
    ) -> bool:
        """Claim the run of a task starting at the transaction's time for ``owner``.

        Refused (False) while another claim holds it (until its ``until``), or
        when a run started after ``due_before`` (this interval's run has been
        done, or is being done, by whichever daemon ticked first).
        """
        now, due = iso(self._tx.now), iso(due_before)
        rows = await self._tx.fetchall(
            "INSERT INTO task_runs(name, claimed_by, claimed_at, claim_until) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET claimed_by = excluded.claimed_by, "
            "claimed_at = excluded.claimed_at, claim_until = excluded.claim_until "
            "WHERE (task_runs.claim_until IS NULL OR task_runs.claim_until <= ?) "
            "AND (task_runs.claimed_at IS NULL OR task_runs.claimed_at <= ?) "
            "AND (task_runs.last_run_at IS NULL OR task_runs.last_run_at <= ?) RETURNING name",
            (name, owner, now, iso(until), now, due, due),
        )
        return bool(rows)

    async def upsert_summary(
        self,
        account: str,
        summary: str,
        *,
        method: str,
        count: int,
        last_at: float | None,
        fallback_reason: str | None,
    ) -> None:
        """Store an account's summary, replacing the previous one."""
        await self._tx.execute(
            "INSERT INTO account_summaries(account, summary, method, interactions, "
            "last_interaction_at, generated_at, fallback_reason) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(account) DO UPDATE SET summary = excluded.summary, "
            "method = excluded.method, interactions = excluded.interactions, "
            "last_interaction_at = excluded.last_interaction_at, "
            "generated_at = excluded.generated_at, fallback_reason = excluded.fallback_reason",
            (account, summary, method, count, last_at, iso(self._tx.now), fallback_reason),
        )
