"""SQL for the gate: accounts, intents, budgets, idempotency, hand-off queue.

Functions take a :class:`~agentd.store.sqlite.Tx` so the gate service can
group many decisions into one transaction; reads that need no transaction
take the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentd.core.gate import GateOutcome, IdempotencyState
from agentd.core.intents import ActionIntent, IntentSource
from agentd.store.base import Row, Store, Transaction


@dataclass(frozen=True)
class AccountRow:
    """An account as stored."""

    id: str
    tenant: str
    name: str
    stage: str
    trusted_mode: str
    domains: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    allowlist: tuple[str, ...] | None
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "stage": self.stage,
            "trusted_mode": self.trusted_mode,
            "domains": list(self.domains),
            "allowed_hosts": list(self.allowed_hosts),
            "allowlist": None if self.allowlist is None else list(self.allowlist),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


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


@dataclass(frozen=True)
class IntentRow:
    """An intent with its decision and approval state, as stored."""

    intent: ActionIntent
    fingerprint: str
    outcome: GateOutcome
    status: str
    created_at: str
    created_by: str
    expires_at: str | None
    approval_source: str | None
    auto_executed: bool | None
    decided_by: str | None
    decided_at: str | None
    decision_note: str | None

    def to_dict(self, *, with_trace: bool = True) -> dict[str, Any]:
        """Return the protocol form (the ``propose --json`` field names)."""
        out: dict[str, Any] = {
            "intent_id": self.intent.intent_id,
            "tenant": self.intent.tenant,
            "account": self.intent.account,
            "action_type": self.intent.action_type,
            "domain": self.intent.domain,
            "change_type": self.intent.change_type,
            "diff": dict(self.intent.diff),
            "rationale": self.intent.rationale,
            "confidence": self.intent.confidence,
            "source": str(self.intent.source),
            "serves": dict(self.intent.serves),
            "decision": str(self.outcome.decision),
            "reason": str(self.outcome.reason),
            "message": self.outcome.message,
            "tier": str(self.outcome.tier),
            "risk_level": str(self.outcome.risk.level),
            "status": self.status,
            "approval_source": self.approval_source,
            "auto_executed": self.auto_executed,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "decision_note": self.decision_note,
        }
        if with_trace:
            # Read-only entries, shared with other answers (serialised, never changed).
            out["trace"] = [entry.as_view() for entry in self.outcome.trace]
        return out


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


async def _fetch(tx: Transaction, queries: Query) -> Sequence[Sequence[Row]]:
    return await tx.fetch_each(queries) if queries else []


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


async def accounts_by_id(tx: Transaction, ids: Sequence[str]) -> dict[str, AccountRow]:
    """Return the accounts among ``ids`` that exist."""
    return accounts_found(await _fetch(tx, accounts_query(ids)))


async def upsert_accounts(tx: Transaction, rows: Iterable[dict[str, Any]], now: str) -> None:
    """Insert or update accounts from validated import rows."""
    await tx.executemany(
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


async def update_account(
    tx: Transaction, account_id: str, changes: dict[str, Any], now: str
) -> None:
    """Set columns of one account (names come from the caller, never the client)."""
    sets = ", ".join(f"{column} = ?" for column in changes)
    await tx.execute(
        f"UPDATE accounts SET {sets}, updated_at = ? WHERE id = ?",
        [*changes.values(), now, account_id],
    )


async def list_accounts(
    store: Store, *, tenant: str | None = None, limit: int = 1000, offset: int = 0
) -> list[AccountRow]:
    """Return accounts ordered by tenant and id."""
    where, params = ("WHERE tenant = ?", [tenant]) if tenant else ("", [])
    rows = await store.read_all(
        f"SELECT * FROM accounts {where} ORDER BY tenant, id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [_account(r) for r in rows]


async def get_account(store: Store, account_id: str) -> AccountRow | None:
    """Return one account or None."""
    row = await store.read_one("SELECT * FROM accounts WHERE id = ?", (account_id,))
    return _account(row) if row else None


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


async def intents_by_id(tx: Transaction, ids: Sequence[str]) -> dict[str, IntentRow]:
    """Return the stored intents among ``ids`` (inside a transaction)."""
    return intents_found(await _fetch(tx, intents_query(ids)))


async def get_intent(store: Store, intent_id: str) -> IntentRow | None:
    """Return one stored intent or None (reader connection)."""
    row = await store.read_one(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE id = ?", (intent_id,))
    return _intent(row) if row else None


async def list_intents(
    store: Store, *, status: str | None = None, tenant: str | None = None, limit: int = 200
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
    rows = await store.read_all(
        f"SELECT {_INTENT_COLUMNS} FROM intents {where} ORDER BY created_at DESC, id LIMIT ?",
        [*params, limit],
    )
    return [_intent(r) for r in rows]


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


def budget_keys(tenant: str, account: str, action_type: str) -> tuple[tuple[str, str], ...]:
    """Return the (scope, key) counters an intent counts against."""
    return (
        ("tenant", tenant),
        ("account", f"{tenant}/{account}"),
        ("action_type", f"{tenant}/{action_type}"),
    )


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


async def idempotency_states(tx: Transaction, ids: Sequence[str]) -> dict[str, IdempotencyState]:
    """Return the idempotency state of each intent among ``ids`` that has one."""
    return idempotency_found(await _fetch(tx, idempotency_query(ids)))


# The records kept per intent are keyed by its sequence number (migration
# 0007): each statement takes (intent_id, ...) rows and finds the number in
# the intent's row, which must already be stored.
SET_IDEMPOTENCY = (
    "INSERT INTO idempotency(intent_id, state, updated_at, intent_seq) "
    "SELECT id, ?2, ?3, seq FROM intents WHERE id = ?1 "
    "ON CONFLICT(intent_seq) DO UPDATE SET state = excluded.state, "
    "updated_at = excluded.updated_at"
)


async def set_idempotency(tx: Transaction, rows: Iterable[tuple[str, str, str]]) -> None:
    """Upsert (intent_id, state, at) idempotency records."""
    await tx.executemany(SET_IDEMPOTENCY, rows)


ENQUEUE = (
    "INSERT INTO execution_queue(intent_id, approval_source, enqueued_at, updated_at, intent_seq) "
    "SELECT id, ?2, ?3, ?3, seq FROM intents WHERE id = ?1 "
    "ON CONFLICT(intent_seq) DO NOTHING"
)


async def enqueue(tx: Transaction, rows: Iterable[tuple[str, str, str]]) -> None:
    """Hand (intent_id, approval_source, at) to execution; a second hand-off is a no-op."""
    await tx.executemany(ENQUEUE, rows)


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


async def list_queue(
    store: Store, *, state: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Return hand-off queue rows with their intents' summaries, oldest first."""
    where, params = ("WHERE q.state = ?", [state]) if state else ("", [])
    rows = await store.read_all(
        "SELECT q.seq, q.intent_id, q.approval_source, q.enqueued_at, q.state, "
        "i.tenant, i.account, i.action_type FROM execution_queue q "
        f"JOIN intents i ON i.seq = q.intent_seq {where} ORDER BY q.seq LIMIT ?",
        [*params, limit],
    )
    return [{k: r[k] for k in QUEUE_COLUMNS} for r in rows]
