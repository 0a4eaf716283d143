"""SQLite's gate records (:class:`~agentd.store.api.GateReads`): accounts, intents,
budgets, idempotency, hand-off queue.

The read class runs on any :class:`~agentd.store.rows.SqlReader` (the store's
committed state, or a transaction); the write class on a transaction. The
gate's batch (``write_block``) sends the statement constants and the
``*_query`` reads of this module in one hand-off to the writer's thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agentd.core.gate import GateOutcome, IdempotencyState
from agentd.core.goals import GoalFact, GoalType, Verdict
from agentd.core.intents import ActionIntent, IntentSource
from agentd.core.timefmt import iso
from agentd.store.records import (
    AccountRow,
    GateBatchRows,
    GateBatchWrites,
    IntentRow,
    budget_keys,
)
from agentd.store.rows import Row, SqlBlock, SqlReader, SqlWriter


def _account(row: Row) -> AccountRow:
    return AccountRow(
        id=row["id"],
        tenant=row["tenant"],
        name=row["name"],
        stage=row["stage"],
        trusted_mode=row["trusted_mode"],
        domains=tuple(json.loads(row["domains"])),
        allowed_hosts=tuple(json.loads(row["allowed_hosts"])),
        allowlist=None if row["allowlist"] is None else tuple(json.loads(row["allowlist"])),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_INTENT_COLUMNS = (
    "id, fingerprint, tenant, account, action_type, domain, change_type, diff, rationale, "
    "confidence, source, serves, created_at, created_by, outcome, status, expires_at, "
    "approval_source, auto_executed, decided_by, decided_at, decision_note"
)


def _intent(row: Row) -> IntentRow:
    intent = ActionIntent(
        intent_id=row["id"],
        tenant=row["tenant"],
        account=row["account"],
        action_type=row["action_type"],
        domain=row["domain"],
        change_type=row["change_type"],
        diff=json.loads(row["diff"]),
        rationale=row["rationale"],
        confidence=row["confidence"],
        source=IntentSource(row["source"]),
        serves=json.loads(row["serves"]),
    )
    auto = row["auto_executed"]
    return IntentRow(
        intent=intent,
        fingerprint=row["fingerprint"],
        outcome=GateOutcome.from_dict(json.loads(row["outcome"])),
        status=row["status"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        expires_at=row["expires_at"],
        approval_source=row["approval_source"],
        auto_executed=None if auto is None else bool(auto),
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        decision_note=row["decision_note"],
    )


def _marks(n: int) -> str:
    return ",".join("?" * n)


# A read as (sql, params) pairs, so that a caller can send several in one round
# trip (Transaction.fetch_each), and what their rows mean.
Query = list[tuple[str, Sequence[Any]]]


def _chunks(values: Sequence[Any], size: int) -> list[list[Any]]:
    unique = list(dict.fromkeys(values))
    return [unique[start : start + size] for start in range(0, len(unique), size)]


# -- accounts -----------------------------------------------------------------


def accounts_query(ids: Sequence[str]) -> Query:
    """Return the read of the accounts among ``ids`` (see :func:`accounts_found`)."""
    return [
        (f"SELECT * FROM accounts WHERE id IN ({_marks(len(chunk))})", chunk)
        for chunk in _chunks(ids, 500)
    ]


def accounts_found(rowsets: Iterable[Sequence[Row]]) -> dict[str, AccountRow]:
    """Return the accounts read by :func:`accounts_query`, by id."""
    return {row["id"]: _account(row) for rows in rowsets for row in rows}


# -- intents --------------------------------------------------------------------


def intents_query(ids: Sequence[str]) -> Query:
    """Return the read of the stored intents among ``ids`` (see :func:`intents_found`)."""
    return [
        (f"SELECT {_INTENT_COLUMNS} FROM intents WHERE id IN ({_marks(len(chunk))})", chunk)
        for chunk in _chunks(ids, 500)
    ]


def intents_found(rowsets: Iterable[Sequence[Row]]) -> dict[str, IntentRow]:
    """Return the intents read by :func:`intents_query`, by id."""
    return {row["id"]: _intent(row) for rows in rowsets for row in rows}


def _object_json(value: Mapping[str, Any]) -> str:
    # Most intents have an empty diff or serves: skip the encoder for those.
    return json.dumps(value) if value else "{}"


def intent_insert_row(
    intent: ActionIntent,
    fingerprint: str,
    outcome: GateOutcome,
    *,
    status: str,
    created_at: str,
    created_by: str,
    expires_at: str | None,
    outcome_json: str | None = None,
) -> tuple[Any, ...]:
    """Return the parameters of :data:`INSERT_INTENT` for one decision."""
    if outcome_json is None:
        outcome_json = json.dumps(outcome.to_dict())
    return (
        intent.intent_id,
        fingerprint,
        intent.tenant,
        intent.account,
        intent.action_type,
        intent.domain,
        intent.change_type,
        _object_json(intent.diff),
        intent.rationale,
        intent.confidence,
        str(intent.source),
        _object_json(intent.serves),
        created_at,
        created_by,
        str(outcome.decision),
        str(outcome.reason),
        str(outcome.tier),
        str(outcome.risk.level),
        outcome_json,
        status,
        expires_at,
        None if outcome.approval_source is None else str(outcome.approval_source),
        None if outcome.auto_executed is None else int(outcome.auto_executed),
        created_at,
    )


INSERT_INTENT = (
    "INSERT INTO intents(id, fingerprint, tenant, account, action_type, domain, change_type, "
    "diff, rationale, confidence, source, serves, created_at, created_by, decision, reason, "
    "tier, risk_level, outcome, status, expires_at, approval_source, auto_executed, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


# -- budgets, idempotency, hand-off ---------------------------------------------


def budget_query(day: str, keys: Iterable[tuple[str, str]]) -> Query:
    """Return the read of the counters for ``keys`` on ``day`` (see :func:`budget_found`)."""
    queries: Query = []
    for chunk in _chunks(list(keys), 300):
        cond = " OR ".join("(scope = ? AND key = ?)" for _ in chunk)
        params: list[Any] = [day]
        for scope, key in chunk:
            params += [scope, key]
        queries.append(
            (f"SELECT scope, key, used FROM budget_usage WHERE day = ? AND ({cond})", params)
        )
    return queries


def budget_found(
    keys: Iterable[tuple[str, str]], rowsets: Iterable[Sequence[Row]]
) -> dict[tuple[str, str], int]:
    """Return the counters read by :func:`budget_query` (missing ones are 0)."""
    found: dict[tuple[str, str], int] = dict.fromkeys(keys, 0)
    for rows in rowsets:
        for row in rows:
            found[(row["scope"], row["key"])] = int(row["used"])
    return found


WRITE_BUDGET = (
    "INSERT INTO budget_usage(day, scope, key, used) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(day, scope, key) DO UPDATE SET used = excluded.used"
)


def budget_rows(day: str, counters: dict[tuple[str, str], int]) -> list[tuple[str, str, str, int]]:
    """Return the :data:`WRITE_BUDGET` rows that store a batch's final counters."""
    return [(day, scope, key, used) for (scope, key), used in counters.items()]


def idempotency_query(ids: Sequence[str]) -> Query:
    """Return the read of the idempotency states of ``ids`` (see :func:`idempotency_found`)."""
    return [
        (
            "SELECT i.id AS intent_id, d.state FROM intents i "
            "JOIN idempotency d ON d.intent_seq = i.seq "
            f"WHERE i.id IN ({_marks(len(chunk))})",
            chunk,
        )
        for chunk in _chunks(ids, 500)
    ]


def idempotency_found(rowsets: Iterable[Sequence[Row]]) -> dict[str, IdempotencyState]:
    """Return the states read by :func:`idempotency_query`, by intent id."""
    return {row["intent_id"]: IdempotencyState(row["state"]) for rows in rowsets for row in rows}


# The records kept per intent are keyed by its sequence number (migration
# 0007): each statement takes (intent_id, ...) rows and finds the number in
# the intent's row, which must already be stored.
SET_IDEMPOTENCY = (
    "INSERT INTO idempotency(intent_id, state, updated_at, intent_seq) "
    "SELECT id, ?2, ?3, seq FROM intents WHERE id = ?1 "
    "ON CONFLICT(intent_seq) DO UPDATE SET state = excluded.state, "
    "updated_at = excluded.updated_at"
)


ENQUEUE = (
    "INSERT INTO execution_queue(intent_id, approval_source, enqueued_at, updated_at, intent_seq) "
    "SELECT id, ?2, ?3, ?3, seq FROM intents WHERE id = ?1 "
    "ON CONFLICT(intent_seq) DO NOTHING"
)


#: Taken first by each gate batch's transaction on PostgreSQL and held to its
#: commit, so the batches of several daemons read and write budgets one at a
#: time (an advisory lock key, beside agentd.store.postgres's).
GATE_LOCK = (0x6167656E, 3)
LOCK_GATE = "SELECT pg_advisory_xact_lock(?, ?)"


RECORD_CONSUMPTION = (
    "INSERT INTO budget_consumption(intent_id, day, at, intent_seq) "
    "SELECT id, ?2, ?3, seq FROM intents WHERE id = ?1"
)


QUEUE_COLUMNS = (
    "seq",
    "intent_id",
    "approval_source",
    "enqueued_at",
    "state",
    "tenant",
    "account",
    "action_type",
)


_GOAL_COLUMNS = "SELECT id, tenant, goal_type, status, verdict, end_at FROM goals"


def goals_query(intents: Sequence[ActionIntent]) -> Query:
    """Return the read of the goals the gate shows: the active ones, and any an intent names."""
    named = sorted({g for i in intents if isinstance(g := i.serves.get("goal"), str) and g})[:500]
    if not named:
        return [(f"{_GOAL_COLUMNS} WHERE status = 'active'", ())]
    marks = ",".join("?" * len(named))
    return [(f"{_GOAL_COLUMNS} WHERE status = 'active' OR id IN ({marks})", named)]


def goal_facts(rowsets: Iterable[Sequence[Row]], now: datetime) -> dict[str, tuple[GoalFact, ...]]:
    """Return the goals read by :func:`goals_query` by tenant, with their verdict at ``now``.

    A stored final status stands; an active goal whose end has passed is missed;
    otherwise the verdict of the last progress update (on track before the first).
    """
    by_tenant: dict[str, list[GoalFact]] = {}
    at = iso(now)
    for rows in rowsets:
        for r in rows:
            status = r["status"]
            if status in ("completed", "missed"):
                verdict = Verdict(status)
            elif r["end_at"] <= at:
                verdict = Verdict.MISSED
            elif r["verdict"] in ("on_track", "behind"):
                verdict = Verdict(r["verdict"])
            else:
                verdict = Verdict.ON_TRACK
            by_tenant.setdefault(r["tenant"], []).append(
                GoalFact(r["id"], GoalType(r["goal_type"]), verdict)
            )
    return {t: tuple(sorted(facts, key=lambda g: g.id)) for t, facts in by_tenant.items()}


class _BatchRead:
    """The reads of one gate batch, as queries to send in one round trip, and their parsing."""

    def __init__(self, intents: Sequence[ActionIntent], day: str, meta_keys: Sequence[str]):
        ids = [i.intent_id for i in intents]
        self.keys = [k for i in intents for k in budget_keys(i.tenant, i.account, i.action_type)]
        self.intents = intents
        self.groups: tuple[Query, ...] = (
            [(f"SELECT key, value FROM meta WHERE key IN ({_marks(len(meta_keys))})", meta_keys)],
            intents_query(ids),
            idempotency_query(ids),
            accounts_query([i.account for i in intents]),
            budget_query(day, self.keys),
            goals_query(intents),
        )
        self.queries: Query = [q for group in self.groups for q in group]

    def rows(self, rowsets: Sequence[Sequence[Row]], now: datetime) -> GateBatchRows:
        """Return what the rows of :attr:`queries` (in order) say."""
        found = iter(rowsets)
        got = [[next(found) for _ in group] for group in self.groups]
        return GateBatchRows(
            meta={r[0]: r[1] for rows in got[0] for r in rows},
            stored=intents_found(got[1]),
            idempotency=idempotency_found(got[2]),
            accounts=accounts_found(got[3]),
            counters=budget_found(self.keys, got[4]),
            goals=goal_facts(got[5], now),
        )


class SqliteGate:
    """The reads (:class:`~agentd.store.api.GateReads`), on any reader."""

    def __init__(self, db: SqlReader) -> None:
        self._db = db

    async def _fetch(self, queries: Query) -> Sequence[Sequence[Row]]:
        return await self._db.fetch_each(queries) if queries else []

    async def accounts_by_id(self, ids: Sequence[str]) -> dict[str, AccountRow]:
        """Return the accounts among ``ids`` that exist."""
        return accounts_found(await self._fetch(accounts_query(ids)))

    async def read_batch(
        self,
        intents: Sequence[ActionIntent],
        day: str,
        now: datetime,
        meta_keys: Sequence[str],
    ) -> GateBatchRows:
        """Return what the decisions of ``intents`` depend on: the batch's reads, in one go.

        The same reads as the gate block's, for a dry run (``policy check``):
        on the store, each sees the last committed state and holds up no writer.
        """
        batch = _BatchRead(intents, day, meta_keys)
        return batch.rows(await self._fetch(batch.queries), now)

    async def list_accounts(
        self, *, tenant: str | None = None, limit: int = 1000, offset: int = 0
    ) -> list[AccountRow]:
        """Return accounts ordered by tenant and id."""
        where, params = ("WHERE tenant = ?", [tenant]) if tenant else ("", [])
        rows = await self._db.fetchall(
            f"SELECT * FROM accounts {where} ORDER BY tenant, id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_account(r) for r in rows]

    async def get_account(self, account_id: str) -> AccountRow | None:
        """Return one account or None."""
        row = await self._db.fetchone("SELECT * FROM accounts WHERE id = ?", (account_id,))
        return _account(row) if row else None

    async def intents_by_id(self, ids: Sequence[str]) -> dict[str, IntentRow]:
        """Return the stored intents among ``ids`` that exist."""
        return intents_found(await self._fetch(intents_query(ids)))

    async def get_intent(self, intent_id: str) -> IntentRow | None:
        """Return one stored intent or None."""
        row = await self._db.fetchone(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE id = ?", (intent_id,)
        )
        return _intent(row) if row else None

    async def list_intents(
        self, *, status: str | None = None, tenant: str | None = None, limit: int = 200
    ) -> list[IntentRow]:
        """Return intents, newest first."""
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if tenant:
            clauses.append("tenant = ?")
            params.append(tenant)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._db.fetchall(
            f"SELECT {_INTENT_COLUMNS} FROM intents {where} ORDER BY created_at DESC, id LIMIT ?",
            [*params, limit],
        )
        return [_intent(r) for r in rows]

    async def idempotency_states(self, ids: Sequence[str]) -> dict[str, IdempotencyState]:
        """Return the idempotency state of each intent among ``ids`` that has one."""
        return idempotency_found(await self._fetch(idempotency_query(ids)))

    async def list_queue(
        self, *, state: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Return hand-off queue rows with their intents' summaries, oldest first."""
        where, params = ("WHERE q.state = ?", [state]) if state else ("", [])
        rows = await self._db.fetchall(
            "SELECT q.seq, q.intent_id, q.approval_source, q.enqueued_at, q.state, "
            "i.tenant, i.account, i.action_type FROM execution_queue q "
            f"JOIN intents i ON i.seq = q.intent_seq {where} ORDER BY q.seq LIMIT ?",
            [*params, limit],
        )
        return [{k: r[k] for k in QUEUE_COLUMNS} for r in rows]

    async def intent_status(self, intent_id: str) -> str | None:
        """Return an intent's status, or None when there is no such intent."""
        row = await self._db.fetchone("SELECT status FROM intents WHERE id = ?", (intent_id,))
        return str(row[0]) if row else None

    async def due_intents(self, at: str) -> list[str]:
        """Return the pending intents whose approval deadline is ``at`` or earlier."""
        rows = await self._db.fetchall(
            "SELECT id FROM intents WHERE status = 'pending' AND expires_at <= ?", (at,)
        )
        return [str(r[0]) for r in rows]

    async def budget_used(
        self, day: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """Return the counters of ``keys`` on ``day`` (missing ones are 0)."""
        wanted = list(keys)
        return budget_found(wanted, await self._db.fetch_each(budget_query(day, wanted)))

    async def reserved_handoffs(self) -> list[tuple[str, str | None]]:
        """Return (intent_id, approval_source) of the hand-offs left RESERVED."""
        rows = await self._db.fetchall(
            "SELECT d.intent_id, i.approval_source FROM idempotency d "
            "JOIN intents i ON i.seq = d.intent_seq WHERE d.state = 'RESERVED'"
        )
        return [(str(r[0]), r[1]) for r in rows]

    async def queue_entry(self, intent_id: str) -> dict[str, Any] | None:
        """Return an intent's hand-off (``enqueued_at``, ``state``), or None."""
        row = await self._db.fetchone(
            "SELECT q.enqueued_at, q.state FROM intents i "
            "JOIN execution_queue q ON q.intent_seq = i.seq WHERE i.id = ?",
            (intent_id,),
        )
        return None if row is None else {"enqueued_at": row[0], "state": row[1]}

    async def gate_goals(
        self, intents: Sequence[ActionIntent], now: datetime
    ) -> dict[str, tuple[GoalFact, ...]]:
        """Return the goals the gate shows for ``intents`` by tenant, with their verdicts."""
        return goal_facts(await self._db.fetch_each(goals_query(intents)), now)


class SqliteGateWrites(SqliteGate):
    """The reads and writes inside a transaction (:class:`~agentd.store.api.GateRecords`)."""

    def __init__(self, tx: SqlWriter) -> None:
        super().__init__(tx)
        self._tx = tx

    async def upsert_accounts(self, rows: Iterable[dict[str, Any]], now: str) -> None:
        """Insert or update accounts from validated import rows."""
        await self._tx.executemany(
            "INSERT INTO accounts(id, tenant, name, stage, trusted_mode, domains, allowed_hosts, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET tenant = excluded.tenant, name = excluded.name, "
            "stage = excluded.stage, trusted_mode = excluded.trusted_mode, "
            "domains = excluded.domains, allowed_hosts = excluded.allowed_hosts, "
            "updated_at = excluded.updated_at",
            [
                (
                    r["id"],
                    r["tenant"],
                    r["name"],
                    r["stage"],
                    r["trusted_mode"],
                    json.dumps(r["domains"]),
                    json.dumps(r["allowed_hosts"]),
                    now,
                    now,
                )
                for r in rows
            ],
        )

    async def update_account(self, account_id: str, changes: dict[str, Any], now: str) -> None:
        """Set columns of one account (names come from the caller, never the client)."""
        sets = ", ".join(f"{column} = ?" for column in changes)
        await self._tx.execute(
            f"UPDATE accounts SET {sets}, updated_at = ? WHERE id = ?",
            [*changes.values(), now, account_id],
        )

    async def set_idempotency(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Upsert (intent_id, state, at) idempotency records."""
        await self._tx.executemany(SET_IDEMPOTENCY, rows)

    async def enqueue(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Hand (intent_id, approval_source, at) to execution; a second hand-off is a no-op."""
        await self._tx.executemany(ENQUEUE, rows)

    async def decide_intent(
        self,
        intent_id: str,
        status: str,
        *,
        actor: str,
        note: str | None,
        approval_source: str | None = None,
    ) -> None:
        """Record a person's decision on an intent (approved or rejected) at the tx's time."""
        at = iso(self._tx.now)
        if approval_source is not None:
            await self._tx.execute(
                "UPDATE intents SET status = ?, approval_source = ?, auto_executed = 0, "
                "decided_by = ?, decided_at = ?, decision_note = ?, updated_at = ? WHERE id = ?",
                (status, approval_source, actor, at, note, at, intent_id),
            )
        else:
            await self._tx.execute(
                "UPDATE intents SET status = ?, decided_by = ?, decided_at = ?, "
                "decision_note = ?, updated_at = ? WHERE id = ?",
                (status, actor, at, note, at, intent_id),
            )

    async def expire_intents(self, ids: Sequence[str], at: str) -> None:
        """Expire the pending intents among ``ids`` (decided by agentd at ``at``)."""
        await self._tx.executemany(
            "UPDATE intents SET status = 'expired', decided_by = 'agentd', decided_at = ?, "
            "decision_note = 'approval expired', updated_at = ? "
            "WHERE id = ? AND status = 'pending'",
            [(at, at, i) for i in ids],
        )

    async def prune_idempotency(self, before: str) -> int:
        """Delete published idempotency records last updated before ``before``; count them."""
        cur = await self._tx.execute(
            "DELETE FROM idempotency WHERE state = 'PUBLISHED' AND updated_at < ?", (before,)
        )
        return int(cur.rowcount or 0)


class SqliteGateBlock:
    """The gate batch's read and write, for plain code on the writer's thread.

    See :class:`~agentd.store.api.GateBlock`: all of a batch's reads go in one
    :meth:`~agentd.store.rows.SqlBlock.fetch_each`, all of its writes in one
    :meth:`~agentd.store.rows.SqlBlock.execute_each`.
    """

    def __init__(self, tx: SqlBlock) -> None:
        self._tx = tx

    def read_batch(
        self,
        intents: Sequence[ActionIntent],
        day: str,
        now: datetime,
        meta_keys: Sequence[str],
    ) -> GateBatchRows:
        """Return what the decisions of ``intents`` on budget day ``day`` depend on.

        On PostgreSQL the batch first takes the gate's transaction-level
        advisory lock (held to its commit), so a batch of another daemon
        cannot read the same budget counters or idempotency records before
        this one's writes commit: budgets are consumed once, a duplicate is
        seen as one. Within a daemon, batching keeps that to one lock per batch.
        """
        batch = _BatchRead(intents, day, meta_keys)
        if self._tx.dialect == "postgresql":
            rowsets = self._tx.fetch_each([(LOCK_GATE, GATE_LOCK), *batch.queries])[1:]
        else:
            rowsets = self._tx.fetch_each(batch.queries)
        return batch.rows(rowsets, now)

    def write_batch(self, writes: GateBatchWrites) -> None:
        """Write a batch's decisions, budget consumption, idempotency records and hand-offs."""
        statements: list[tuple[str, Iterable[Sequence[Any]]]] = []
        if writes.intents:
            rows = [
                intent_insert_row(
                    r.intent,
                    r.fingerprint,
                    r.outcome,
                    status=r.status,
                    created_at=r.created_at,
                    created_by=r.created_by,
                    expires_at=r.expires_at,
                    outcome_json=r.outcome.to_json(),
                )
                for r in writes.intents
            ]
            statements.append((INSERT_INTENT, rows))
        if writes.consumed:
            statements.append((RECORD_CONSUMPTION, writes.consumed))
            statements.append((WRITE_BUDGET, budget_rows(writes.day, writes.counters)))
        if writes.idempotency:
            statements.append((SET_IDEMPOTENCY, writes.idempotency))
        if writes.queue:
            statements.append((ENQUEUE, writes.queue))
        if statements:
            self._tx.execute_each(statements)
