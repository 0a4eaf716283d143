"""SQL for the proactive loop: interactions, patterns, goals, task runs, summaries.

Writes take a :class:`~agentd.store.sqlite.Tx`; reads take the store. The
pattern scan is the exception: it reads every account's history, so it runs
in a worker thread on a read-only connection of its own
(:func:`iter_histories`) and streams rows in account order without holding
them, while the daemon's connections stay free.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from agentd.store.sqlite import SqliteStore, Tx

INSERT_INTERACTION = (
    "INSERT OR IGNORE INTO interactions"
    "(account, at, id, kind, inbound, sentiment, summary, imported_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_KIND_BY_CODE = {int(KindCode[k.name]): k for k in InteractionKind}


def interaction_row(item: Interaction, imported_at: str) -> tuple[Any, ...]:
    """Return the insert parameters of one interaction."""
    _, kind, inbound, at, sentiment = item.compact()
    return (item.account, at, item.id, kind, int(inbound), sentiment, item.summary, imported_at)


async def account_ids(store: SqliteStore) -> set[str]:
    """Return the ids of every known account."""
    return {str(r[0]) for r in await store.read_all("SELECT id FROM accounts")}


async def account_tenants(store: SqliteStore, accounts: Iterable[str]) -> dict[str, str]:
    """Return ``{account: tenant}`` for the given accounts that exist."""
    wanted = sorted(set(accounts))
    out: dict[str, str] = {}
    for n in range(0, len(wanted), 500):
        chunk = wanted[n : n + 500]
        marks = ",".join("?" * len(chunk))
        rows = await store.read_all(f"SELECT id, tenant FROM accounts WHERE id IN ({marks})", chunk)
        out.update({str(r[0]): str(r[1]) for r in rows})
    return out


# -- the scan (worker thread, own connection) ---------------------------------------


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
    cur = conn.execute(
        "SELECT account, id, kind, inbound, at, sentiment FROM interactions "
        "WHERE at >= ? ORDER BY account, at, id",
        (since,),
    )
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
    return {r[0] for r in conn.execute("SELECT key FROM patterns WHERE detected_at >= ?", (since,))}


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


async def insert_patterns(tx: Tx, patterns: Sequence[Pattern]) -> None:
    """Store new patterns; a key already stored is left as it is."""
    await tx.executemany(
        "INSERT OR IGNORE INTO patterns(key, account, kind, severity, direction, summary, "
        "rules, evidence, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_pattern_row(p) for p in patterns],
    )


def pattern_from_row(r: sqlite3.Row) -> Pattern:
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


async def unplanned_patterns(store: SqliteStore, limit: int) -> list[Pattern]:
    """Return patterns not yet planned for, oldest first."""
    rows = await store.read_all(
        "SELECT * FROM patterns WHERE planned_at IS NULL ORDER BY detected_at, key LIMIT ?",
        (limit,),
    )
    return [pattern_from_row(r) for r in rows]


async def mark_planned(tx: Tx, keys: Sequence[str], at: str) -> None:
    """Record that these patterns were planned for."""
    await tx.executemany(
        "UPDATE patterns SET planned_at = ? WHERE key = ? AND planned_at IS NULL",
        [(at, k) for k in keys],
    )


async def list_patterns(
    store: SqliteStore, *, account: str | None, since: str | None, limit: int
) -> list[dict[str, Any]]:
    """Return stored patterns, newest first."""
    where, params = ["1 = 1"], []
    if account:
        where.append("account = ?")
        params.append(account)
    if since:
        where.append("detected_at >= ?")
        params.append(since)
    rows = await store.read_all(
        f"SELECT * FROM patterns WHERE {' AND '.join(where)} "
        "ORDER BY detected_at DESC, key LIMIT ?",
        (*params, limit),
    )
    return [pattern_view(pattern_from_row(r), r["planned_at"]) for r in rows]


# -- goals ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GoalRow:
    """A goal as stored, with the last progress written for it."""

    goal: Goal
    verdict: Verdict | None
    current: float | None
    progress_at: str | None
    created_at: str
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        g = self.goal
        return {
            "id": g.id,
            "tenant": g.tenant,
            "type": g.goal_type.value,
            "name": g.name,
            "target": g.target,
            "start": iso(g.start),
            "end": iso(g.end),
            "last_day": g.last_day.isoformat(),
            "status": g.status.value,
            "verdict": self.verdict.value if self.verdict else None,
            "current": self.current,
            "progress_at": self.progress_at,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


def _goal(r: sqlite3.Row) -> GoalRow:
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


async def insert_goal(tx: Tx, goal: Goal, actor: str) -> None:
    """Store a new goal."""
    at = iso(tx.now)
    await tx.execute(
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


async def get_goal(store: SqliteStore, goal_id: str) -> GoalRow | None:
    """Return one goal, or None."""
    row = await store.read_one("SELECT * FROM goals WHERE id = ?", (goal_id,))
    return _goal(row) if row else None


async def list_goals(
    store: SqliteStore, *, include_final: bool, tenant: str | None = None
) -> list[GoalRow]:
    """Return goals (active only unless ``include_final``), by tenant and end."""
    where, params = ["1 = 1"], []
    if not include_final:
        where.append("status = 'active'")
    if tenant:
        where.append("tenant = ?")
        params.append(tenant)
    rows = await store.read_all(
        f"SELECT * FROM goals WHERE {' AND '.join(where)} ORDER BY tenant, end_at, id", params
    )
    return [_goal(r) for r in rows]


async def write_progress(tx: Tx, rows: Sequence[tuple[str, str, float, str]]) -> None:
    """Store ``(goal id, status, current, verdict)`` as of the transaction's time."""
    at = iso(tx.now)
    await tx.executemany(
        "UPDATE goals SET status = ?, current = ?, verdict = ?, progress_at = ?, updated_at = ? "
        "WHERE id = ?",
        [(status, current, verdict, at, at, gid) for gid, status, current, verdict in rows],
    )


async def metric_counts(
    store: SqliteStore, tenant: str, since: datetime, until: datetime
) -> dict[str, Any]:
    """Return the raw counts behind :class:`~agentd.core.goals.MetricFacts`."""
    since_ts, until_ts = since.timestamp(), until.timestamp()
    row = await store.read_one(
        "SELECT "
        " (SELECT COUNT(*) FROM accounts WHERE tenant = ?"
        "   AND stage IN ('discovery', 'evaluation', 'negotiation')),"
        " (SELECT COUNT(*) FROM accounts WHERE tenant = ? AND stage = 'closed_won')",
        (tenant, tenant),
    )
    inter = await store.read_one(
        "SELECT COALESCE(SUM(i.inbound = 0), 0), COALESCE(SUM(i.sentiment IS NOT NULL), 0), "
        "COALESCE(SUM(i.sentiment >= 0), 0) FROM accounts a "
        "JOIN interactions i ON i.account = a.id AND i.at >= ? AND i.at < ? WHERE a.tenant = ?",
        (since_ts, until_ts, tenant),
    )
    # Executions by when they finished (the audit's subject is the execution's
    # id, not the intent's: the executions table is the record to count).
    execs = await store.read_one(
        "SELECT COALESCE(SUM(state = 'succeeded'), 0), COUNT(*) FROM executions "
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


async def candidate_rows(store: SqliteStore, tenants: Sequence[str]) -> list[sqlite3.Row]:
    """Return ``(tenant, id, stage, last interaction epoch)`` of the tenants' open accounts."""
    if not tenants:
        return []
    marks = ",".join("?" * len(tenants))
    return await store.read_all(
        "SELECT a.tenant, a.id, a.stage, "
        " (SELECT MAX(i.at) FROM interactions i WHERE i.account = a.id) "
        f"FROM accounts a WHERE a.tenant IN ({marks}) "
        "AND a.stage NOT IN ('closed_won', 'closed_lost')",
        list(tenants),
    )


async def recent_contacts(
    store: SqliteStore, accounts: Sequence[str], action_types: Iterable[str], since: datetime
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
        rows = await store.read_all(
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


async def intent_ids_known(store: SqliteStore, ids: Sequence[str]) -> set[str]:
    """Return which of ``ids`` already name a stored intent."""
    out: set[str] = set()
    for n in range(0, len(ids), 500):
        chunk = list(ids[n : n + 500])
        marks = ",".join("?" * len(chunk))
        rows = await store.read_all(f"SELECT id FROM intents WHERE id IN ({marks})", chunk)
        out.update(str(r[0]) for r in rows)
    return out


# -- task runs -----------------------------------------------------------------------


async def task_runs(store: SqliteStore) -> dict[str, sqlite3.Row]:
    """Return every task's stored run record by name."""
    return {str(r["name"]): r for r in await store.read_all("SELECT * FROM task_runs")}


async def record_task_run(
    tx: Tx, name: str, started: datetime, *, ok: bool, detail: str | None
) -> None:
    """Record a finished run of a task (its start is what schedules the next one)."""
    await tx.execute(
        "INSERT INTO task_runs(name, last_run_at, last_finished_at, last_result, last_detail, "
        "runs, failures, consecutive_failures) VALUES (?, ?, ?, ?, ?, 1, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET last_run_at = excluded.last_run_at, "
        "last_finished_at = excluded.last_finished_at, last_result = excluded.last_result, "
        "last_detail = excluded.last_detail, runs = runs + 1, "
        "failures = failures + excluded.failures, "
        "consecutive_failures = CASE WHEN excluded.failures = 0 THEN 0 "
        "ELSE consecutive_failures + 1 END",
        (
            name,
            iso(started),
            iso(tx.now),
            "ok" if ok else "failed",
            detail,
            0 if ok else 1,
            0 if ok else 1,
        ),
    )


# -- summaries -----------------------------------------------------------------------


async def stale_accounts(
    store: SqliteStore, *, since: float, refresh_before: str, limit: int
) -> list[str]:
    """Return accounts active since ``since`` whose summary is missing or out of date.

    Out of date: an interaction newer than the one the summary covered, or a
    summary generated before ``refresh_before``.
    """
    rows = await store.read_all(
        "SELECT i.account FROM interactions i "
        "LEFT JOIN account_summaries s ON s.account = i.account "
        "WHERE i.at >= ? GROUP BY i.account "
        "HAVING MAX(s.generated_at) IS NULL OR MAX(i.at) > MAX(s.last_interaction_at) "
        " OR MAX(s.generated_at) < ? "
        "ORDER BY MAX(i.at) DESC, i.account LIMIT ?",
        (since, refresh_before, limit),
    )
    return [str(r[0]) for r in rows]


async def recent_interactions(store: SqliteStore, account: str, since: float) -> list[Interaction]:
    """Return an account's interactions since ``since``, oldest first."""
    rows = await store.read_all(
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


async def upsert_summary(
    tx: Tx,
    account: str,
    summary: str,
    *,
    method: str,
    count: int,
    last_at: float | None,
    fallback_reason: str | None,
) -> None:
    """Store an account's summary, replacing the previous one."""
    await tx.execute(
        "INSERT OR REPLACE INTO account_summaries(account, summary, method, interactions, "
        "last_interaction_at, generated_at, fallback_reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (account, summary, method, count, last_at, iso(tx.now), fallback_reason),
    )


async def get_summary(store: SqliteStore, account: str) -> dict[str, Any] | None:
    """Return an account's stored summary, or None."""
    r = await store.read_one("SELECT * FROM account_summaries WHERE account = ?", (account,))
    if r is None:
        return None
    return {k: r[k] for k in r.keys()}
