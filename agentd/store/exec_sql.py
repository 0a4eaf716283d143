"""SQLite's executions, rollback tokens and incidents (:class:`~agentd.store.api.ExecutionReads`).

The read class runs on any :class:`~agentd.store.rows.SqlReader` (the store's
committed state, or a transaction); the write class on a transaction, so a
state change and its audit event commit together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentd.core.timefmt import iso
from agentd.store.records import ExecutionRow, IncidentRow, TokenRow
from agentd.store.rows import (
    Row,
    SqlReader,
    SqlWriter,
    insert_row,
    row_dict,
    skip_locked,
    update_row,
)

_QUEUED = (
    "SELECT q.intent_id, q.approval_source, i.tenant, i.account, i.action_type, "
    "i.domain, i.change_type, i.diff, i.rationale, i.status, i.risk_level "
    "FROM execution_queue q JOIN intents i ON i.seq = q.intent_seq "
    "WHERE q.state = 'queued' ORDER BY q.seq LIMIT ?"
)

#: A lease another runner may take: none, expired, or held by a runner of
#: ``mine`` (the same daemon before a restart: the prefix of its runner ids).
_FREE_LEASE = (
    "(lease_owner IS NULL OR lease_until IS NULL OR lease_until <= ? "
    "OR substr(lease_owner, 1, length(?)) = ?)"
)

_JSON_COLUMNS = ("checks", "params", "before", "after", "diff", "result")


def _load(raw: str | None) -> Any:
    return json.loads(raw) if raw is not None else None


def _object(raw: str | None) -> dict[str, Any]:
    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


def _execution(row: Row) -> ExecutionRow:
    data = row_dict(row)
    for column in _JSON_COLUMNS:
        data[column] = _load(data[column])
    data["autonomous"] = bool(data["autonomous"])
    return ExecutionRow(**data)


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for column in _JSON_COLUMNS:
        if column in out and out[column] is not None and not isinstance(out[column], str):
            out[column] = json.dumps(out[column], sort_keys=True, default=str)
    if "autonomous" in out:
        out["autonomous"] = int(bool(out["autonomous"]))
    return out


# -- the gate's hand-off queue --------------------------------------------------------------


# -- rollback tokens ----------------------------------------------------------------------


def _token(row: Row) -> TokenRow:
    data = row_dict(row)
    data["extensions"] = json.loads(data["extensions"])
    return TokenRow(**data)


# -- incidents ----------------------------------------------------------------------------


def _incident(row: Row) -> IncidentRow:
    data = row_dict(row)
    data["notified"] = json.loads(data["notified"])
    data["autonomous"] = bool(data["autonomous"])
    return IncidentRow(**data)


class SqliteExecutions:
    """The reads (:class:`~agentd.store.api.ExecutionReads`), on any reader."""

    def __init__(self, db: SqlReader) -> None:
        self._db = db

    async def get_execution(self, exe_id: str) -> ExecutionRow | None:
        """Return one execution or None."""
        row = await self._db.fetchone("SELECT * FROM executions WHERE id = ?", (exe_id,))
        return _execution(row) if row else None

    async def list_executions(
        self, *, state: str | None = None, limit: int = 200
    ) -> list[ExecutionRow]:
        """Return executions, newest first."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        rows = await self._db.fetchall(
            f"SELECT * FROM executions {where} ORDER BY created_at DESC, id LIMIT ?",
            [*params, limit],
        )
        return [_execution(r) for r in rows]

    async def executions_in_state(self, states: Sequence[str]) -> list[ExecutionRow]:
        """Return executions in any of ``states``, oldest first."""
        marks = ", ".join("?" for _ in states)
        rows = await self._db.fetchall(
            f"SELECT * FROM executions WHERE state IN ({marks}) ORDER BY created_at, id",
            list(states),
        )
        return [_execution(r) for r in rows]

    async def count_started(self, tenant: str, start: str, end: str) -> int:
        """Count the tenant's change executions started in ``[start, end)`` (the daily limit)."""
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM executions WHERE tenant = ? AND kind = 'change' "
            "AND started_at >= ? AND started_at < ?",
            (tenant, start, end),
        )
        return int(row[0]) if row else 0

    async def queued_intents(self, limit: int) -> list[dict[str, Any]]:
        """Return queued hand-offs with their intents, oldest first.

        Each: ``intent_id``, ``approval_source``, ``tenant``, ``account``,
        ``action_type``, ``domain``, ``change_type``, ``diff`` (an object),
        ``rationale``, ``status`` and ``risk_level``.
        """
        return [
            {**row_dict(r), "diff": _object(r["diff"])}
            for r in await self._db.fetchall(_QUEUED, (limit,))
        ]

    async def get_token(self, token: str) -> TokenRow | None:
        """Return one token or None."""
        row = await self._db.fetchone("SELECT * FROM rollback_tokens WHERE token = ?", (token,))
        return _token(row) if row else None

    async def token_for_execution(self, exe_id: str) -> TokenRow | None:
        """Return the token of an execution, or None."""
        row = await self._db.fetchone(
            "SELECT * FROM rollback_tokens WHERE execution_id = ?", (exe_id,)
        )
        return _token(row) if row else None

    async def list_tokens(self, limit: int = 500) -> list[TokenRow]:
        """Return rollback tokens, newest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM rollback_tokens ORDER BY executed_at DESC LIMIT ?", (limit,)
        )
        return [_token(r) for r in rows]

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        """Return one incident or None."""
        row = await self._db.fetchone("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return _incident(row) if row else None

    async def list_incidents(
        self, *, status: str | None = None, limit: int = 200
    ) -> list[IncidentRow]:
        """Return incidents, newest first."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = await self._db.fetchall(
            f"SELECT * FROM incidents {where} ORDER BY created_at DESC, id LIMIT ?",
            [*params, limit],
        )
        return [_incident(r) for r in rows]

    async def has_incident(self, ref: str) -> bool:
        """Return whether an incident refers to ``ref`` (an execution id)."""
        row = await self._db.fetchone("SELECT 1 FROM incidents WHERE ref = ? LIMIT 1", (ref,))
        return row is not None

    async def rollbacks_of(self, exe_id: str) -> list[str]:
        """Return the ids of the executions that roll ``exe_id`` back, oldest first."""
        rows = await self._db.fetchall(
            "SELECT id FROM executions WHERE rollback_of = ? ORDER BY created_at", (exe_id,)
        )
        return [str(r[0]) for r in rows]

    async def change_ids_by_executor(
        self, executor: str, states: Sequence[str], limit: int
    ) -> list[str]:
        """Return the change executions of ``executor`` in ``states``, newest first."""
        marks = ", ".join("?" for _ in states)
        rows = await self._db.fetchall(
            f"SELECT id FROM executions WHERE kind = 'change' AND executor = ? "
            f"AND state IN ({marks}) ORDER BY created_at DESC, id LIMIT ?",
            (executor, *states, limit),
        )
        return [str(r[0]) for r in rows]

    async def changes_of_intents(self, intent_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return each intent's change execution (``id``, ``state``, ``reason``, ``detail``)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(intent_ids), 500):
            chunk = list(intent_ids[start : start + 500])
            rows = await self._db.fetchall(
                "SELECT intent_id, id, state, reason, detail FROM executions "
                f"WHERE kind = 'change' AND intent_id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY created_at",
                chunk,
            )
            for r in rows:
                found[r[0]] = {"id": r[1], "state": r[2], "reason": r[3], "detail": r[4]}
        return found


class SqliteExecutionWrites(SqliteExecutions):
    """The reads and writes inside a transaction (:class:`~agentd.store.api.ExecutionRecords`)."""

    def __init__(self, tx: SqlWriter) -> None:
        super().__init__(tx)
        self._tx = tx

    async def insert_execution(self, values: dict[str, Any]) -> None:
        """Insert an execution (JSON columns as Python objects)."""
        await insert_row(self._tx, "executions", _encode(values))

    async def update_execution(self, exe_id: str, changes: dict[str, Any]) -> None:
        """Set columns of one execution (column names come from the caller, never a client)."""
        await update_row(self._tx, "executions", "id", exe_id, _encode(changes))

    async def mark_queue(self, intent_id: str, state: str) -> None:
        """Move a hand-off row to ``state`` (taken: an execution row now owns it)."""
        await self._tx.execute(
            "UPDATE execution_queue SET state = ?, updated_at = ? "
            "WHERE intent_seq = (SELECT seq FROM intents WHERE id = ?)",
            (state, iso(self._tx.now), intent_id),
        )

    async def claim_queued(self, limit: int) -> list[dict[str, Any]]:
        """Return queued hand-offs as :meth:`queued_intents` does, claimed for this transaction.

        Another daemon's claim skips them until this transaction ends (by
        which time they are ``taken``, or queued again after a rollback).
        """
        return [
            {**row_dict(r), "diff": _object(r["diff"])}
            for r in await self._tx.fetchall(_QUEUED + skip_locked(self._tx, "q"), (limit,))
        ]

    async def claim_executions(
        self, states: Sequence[str], *, owner: str, mine: str, until: str
    ) -> list[ExecutionRow]:
        """Lease to ``owner`` until ``until`` the executions in ``states`` no live runner holds.

        Free: no lease, an expired one (at the transaction's time), ``owner``'s
        own, or one held by a runner id that starts with ``mine`` (this
        daemon's earlier process; ``""`` when one daemon holds every lease).
        Return them, oldest first, as they were before this claim (their
        ``lease_owner``: who held them). Rows another daemon's transaction is
        claiming at the same time are passed over.
        """
        now = iso(self._tx.now)
        marks = ", ".join("?" for _ in states)
        rows = await self._tx.fetchall(
            f"SELECT * FROM executions WHERE state IN ({marks}) "
            f"AND (lease_owner = ? OR {_FREE_LEASE}) ORDER BY created_at, id"
            + skip_locked(self._tx),
            [*states, owner, now, mine, mine],
        )
        found = [_execution(r) for r in rows]
        for start in range(0, len(found), 500):
            chunk = [e.id for e in found[start : start + 500]]
            await self._tx.execute(
                "UPDATE executions SET lease_owner = ?, lease_until = ? "
                f"WHERE id IN ({', '.join('?' for _ in chunk)})",
                [owner, until, *chunk],
            )
        return found

    async def renew_leases(self, ids: Sequence[str], *, owner: str, until: str) -> set[str]:
        """Extend ``owner``'s leases on ``ids`` to ``until``; return the ids it still held."""
        held: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = await self._tx.fetchall(
                "UPDATE executions SET lease_until = ? WHERE lease_owner = ? "
                f"AND id IN ({', '.join('?' for _ in chunk)}) RETURNING id",
                [until, owner, *chunk],
            )
            held.update(str(r[0]) for r in rows)
        return held

    async def release_lease(self, exe_id: str, *, owner: str) -> bool:
        """Give up ``owner``'s lease on an execution; return whether it held it."""
        cur = await self._tx.execute(
            "UPDATE executions SET lease_owner = NULL, lease_until = NULL "
            "WHERE id = ? AND lease_owner = ?",
            (exe_id, owner),
        )
        return bool(cur.rowcount)

    async def insert_token(self, values: dict[str, Any]) -> None:
        """Insert a rollback token."""
        await insert_row(self._tx, "rollback_tokens", values)

    async def update_token(self, token: str, changes: dict[str, Any]) -> None:
        """Set columns of one token."""
        data = dict(changes)
        if "extensions" in data and not isinstance(data["extensions"], str):
            data["extensions"] = json.dumps(data["extensions"], sort_keys=True)
        await update_row(self._tx, "rollback_tokens", "token", token, data)

    async def insert_incident(self, values: dict[str, Any]) -> None:
        """Insert an incident."""
        await insert_row(
            self._tx, "incidents", {**values, "autonomous": int(bool(values.get("autonomous")))}
        )

    async def update_incident(self, incident_id: str, changes: dict[str, Any]) -> None:
        """Set columns of one incident."""
        data = dict(changes)
        if "notified" in data and not isinstance(data["notified"], str):
            data["notified"] = json.dumps(data["notified"])
        await update_row(self._tx, "incidents", "id", incident_id, data)
