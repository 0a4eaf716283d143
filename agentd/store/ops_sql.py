"""SQLite's browser operations, their steps, consents and sealed secrets
(:class:`~agentd.store.api.OperationReads`).

The read class runs on any :class:`~agentd.store.rows.SqlReader`; the write
class on a transaction, so a step's progress, its step row and its audit event
commit together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentd.core.agent_mode import Spend
from agentd.core.timefmt import iso
from agentd.store.records import ConsentRow, OperationRow, StepRow
from agentd.store.rows import Row, SqlReader, SqlWriter, insert_row, skip_locked, update_row


def _operation(row: Row) -> OperationRow:
    return OperationRow(
        id=row["id"],
        account=row["account"],
        service=row["service"],
        workflow=row["workflow"],
        params=json.loads(row["params"]),
        state=row["state"],
        step=int(row["step"]),
        total=int(row["total"]),
        attempts=int(row["attempts"]),
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        reason=row["reason"],
        error=row["error"],
        result=json.loads(row["result"]) if row["result"] else {},
        folder=row["folder"],
        execution_id=row["execution_id"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        task=row["task"],
        spend=Spend(
            int(row["model_calls"]),
            int(row["input_tokens"]),
            int(row["output_tokens"]),
            float(row["cost_usd"]),
        ),
        pending_step=json.loads(row["pending_step"]) if row["pending_step"] else None,
    )


def _step(row: Row) -> StepRow:
    return StepRow(
        op_id=row["op_id"],
        seq=int(row["seq"]),
        attempt=int(row["attempt"]),
        idx=int(row["idx"]),
        intent=row["intent"],
        action=row["action"],
        target=row["target"],
        source=row["source"],
        status=row["status"],
        error=row["error"],
        screenshot=row["screenshot"],
        sha256=row["sha256"],
        duration_ms=float(row["duration_ms"]),
        at=row["at"],
        detail=json.loads(row["detail"]) if row["detail"] else None,
    )


def _consent(row: Row) -> ConsentRow:
    return ConsentRow(
        account=row["account"],
        service=row["service"],
        operation=row["operation"],
        permissions=tuple(json.loads(row["permissions"])),
        version=int(row["version"]),
        granted_by=row["granted_by"],
        granted_at=row["granted_at"],
        revoked_by=row["revoked_by"],
        revoked_at=row["revoked_at"],
    )


# -- operations -------------------------------------------------------------------------


# -- consents ---------------------------------------------------------------------------


_ACTIVE_CONSENT = (
    "SELECT * FROM consents WHERE account = ? AND service = ? AND operation IN (?, '*') "
    "AND revoked_at IS NULL ORDER BY operation = '*' LIMIT 1"
)


# -- secrets ----------------------------------------------------------------------------


class SqliteOperations:
    """The reads (:class:`~agentd.store.api.OperationReads`), on any reader."""

    def __init__(self, db: SqlReader) -> None:
        self._db = db

    async def get_operation(self, op_id: str) -> OperationRow | None:
        """Return one operation or None."""
        row = await self._db.fetchone("SELECT * FROM operations WHERE id = ?", (op_id,))
        return _operation(row) if row else None

    async def list_operations(
        self, *, state: str | None = None, limit: int = 200
    ) -> list[OperationRow]:
        """Return operations, newest first."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        rows = await self._db.fetchall(
            f"SELECT * FROM operations {where} ORDER BY created_at DESC, id LIMIT ?",
            [*params, limit],
        )
        return [_operation(r) for r in rows]

    async def operations_in_state(self, states: Sequence[str]) -> list[OperationRow]:
        """Return the operations in any of ``states``, oldest first."""
        marks = ", ".join("?" for _ in states)
        rows = await self._db.fetchall(
            f"SELECT * FROM operations WHERE state IN ({marks}) ORDER BY created_at, id",
            list(states),
        )
        return [_operation(r) for r in rows]

    async def planned_commits(self, op_id: str, attempt: int) -> list[int]:
        """Return the steps of an attempt that the planner turned into a click or press."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT idx FROM operation_steps WHERE op_id = ? AND attempt = ? "
            "AND status = 'planned' AND action IN ('click', 'press') ORDER BY idx",
            (op_id, attempt),
        )
        return [int(r[0]) for r in rows]

    async def list_steps(self, op_id: str, after_seq: int = 0) -> list[StepRow]:
        """Return an operation's step rows after ``after_seq``, in order."""
        rows = await self._db.fetchall(
            "SELECT * FROM operation_steps WHERE op_id = ? AND seq > ? ORDER BY seq",
            (op_id, after_seq),
        )
        return [_step(r) for r in rows]

    async def active_consent(self, account: str, service: str, workflow: str) -> ConsentRow | None:
        """Return the consent in force for a workflow (its own, else the account's ``*``)."""
        row = await self._db.fetchone(_ACTIVE_CONSENT, (account, service, workflow))
        return _consent(row) if row else None

    async def list_consents(self, account: str | None = None) -> list[ConsentRow]:
        """Return consents (active and revoked), by account, service and operation."""
        where, params = ("WHERE account = ?", [account]) if account else ("", [])
        rows = await self._db.fetchall(
            f"SELECT * FROM consents {where} ORDER BY account, service, operation", params
        )
        return [_consent(r) for r in rows]

    async def secret_blobs(
        self, account: str, service: str, names: Sequence[str]
    ) -> dict[str, bytes]:
        """Return the sealed blobs among ``names`` that exist."""
        if not names:
            return {}
        marks = ", ".join("?" for _ in names)
        rows = await self._db.fetchall(
            "SELECT name, blob FROM secrets WHERE account = ? AND service = "
            f"? AND name IN ({marks})",
            [account, service, *names],
        )
        return {r["name"]: bytes(r["blob"]) for r in rows}

    async def list_secrets(self, account: str | None = None) -> list[dict[str, Any]]:
        """Return secret names and metadata, never values."""
        where, params = ("WHERE account = ?", [account]) if account else ("", [])
        rows = await self._db.fetchall(
            "SELECT account, service, name, key_fingerprint, created_by, created_at, updated_at "
            f"FROM secrets {where} ORDER BY account, service, name",
            params,
        )
        keys = ("account", "service", "name", "key_fingerprint", "created_by", "created_at")
        return [{**{k: r[k] for k in keys}, "updated_at": r["updated_at"]} for r in rows]

    async def secrets_by_key(self) -> dict[str, int]:
        """Return how many secrets each key sealed (by key fingerprint), most first."""
        rows = await self._db.fetchall(
            "SELECT key_fingerprint, COUNT(*) FROM secrets GROUP BY key_fingerprint "
            "ORDER BY 2 DESC, 1"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def latest_operation_id(self, execution_id: str, workflow: str) -> str | None:
        """Return the last operation an execution started for ``workflow``, or None."""
        row = await self._db.fetchone(
            "SELECT id FROM operations WHERE execution_id = ? AND workflow = ? "
            "ORDER BY created_at DESC LIMIT 1",
            (execution_id, workflow),
        )
        return str(row[0]) if row else None

    async def day_spend(self, day: str) -> Spend:
        """Return what every operation's model calls spent on a UTC day (YYYY-MM-DD)."""
        row = await self._db.fetchone(
            "SELECT calls, input_tokens, output_tokens, cost_usd FROM model_spend WHERE day = ?",
            (day,),
        )
        if row is None:
            return Spend()
        return Spend(int(row[0]), int(row[1]), int(row[2]), float(row[3]))

    async def secret_names(self, account: str, service: str) -> list[str]:
        """Return the names of an account's secrets for a service."""
        rows = await self._db.fetchall(
            "SELECT name FROM secrets WHERE account = ? AND service = ? ORDER BY name",
            (account, service),
        )
        return [str(r[0]) for r in rows]


class SqliteOperationWrites(SqliteOperations):
    """The reads and writes inside a transaction (:class:`~agentd.store.api.OperationRecords`)."""

    def __init__(self, tx: SqlWriter) -> None:
        super().__init__(tx)
        self._tx = tx

    async def insert_operation(self, values: dict[str, Any]) -> None:
        """Insert a new operation (``params`` and ``result`` as Python objects)."""
        data = {**values, "params": json.dumps(values.get("params") or {}, sort_keys=True)}
        await insert_row(self._tx, "operations", data)

    async def claim_pending(self, limit: int) -> list[OperationRow]:
        """Return up to ``limit`` pending operations, oldest first, claimed for this transaction.

        Another daemon's claim skips them until this transaction ends (by
        which time this one has started them, or left them pending).
        """
        rows = await self._tx.fetchall(
            "SELECT * FROM operations WHERE state = 'pending' ORDER BY created_at, id LIMIT ?"
            + skip_locked(self._tx),
            (limit,),
        )
        return [_operation(r) for r in rows]

    async def orphaned_operations(
        self, states: Sequence[str], *, owner: str, mine: str
    ) -> list[OperationRow]:
        """Return the operations in ``states`` whose runner is gone, claimed for this transaction.

        Gone: no lease, an expired one (at the transaction's time), or one held
        by a runner id other than ``owner`` that starts with ``mine`` (this
        daemon's earlier process; ``""`` when one daemon runs every operation).
        """
        marks = ", ".join("?" for _ in states)
        rows = await self._tx.fetchall(
            f"SELECT * FROM operations WHERE state IN ({marks}) AND (lease_owner IS NULL "
            "OR (lease_owner <> ? AND (lease_until IS NULL OR lease_until <= ? "
            "OR substr(lease_owner, 1, length(?)) = ?))) ORDER BY created_at, id"
            + skip_locked(self._tx),
            [*states, owner, iso(self._tx.now), mine, mine],
        )
        return [_operation(r) for r in rows]

    async def update_operation(self, op_id: str, changes: dict[str, Any]) -> None:
        """Set columns of one operation (column names come from the caller, never a client)."""
        for key in ("result", "pending_step"):
            if key in changes and not isinstance(changes[key], str | None):
                changes = {**changes, key: json.dumps(changes[key], sort_keys=True)}
        await update_row(self._tx, "operations", "id", op_id, changes)

    async def insert_steps(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append step rows of one operation (all with the same columns), in order."""
        if not rows:
            return
        rows = [
            {**r, "detail": json.dumps(r["detail"], sort_keys=True)}
            if isinstance(r.get("detail"), dict)
            else r
            for r in rows
        ]
        row = await self._db.fetchone(
            "SELECT COALESCE(MAX(seq), 0) FROM operation_steps WHERE op_id = ?", (rows[0]["op_id"],)
        )
        first = (int(row[0]) if row else 0) + 1
        columns = [*rows[0], "seq"]
        marks = ", ".join("?" for _ in columns)
        await self._tx.executemany(
            f"INSERT INTO operation_steps({', '.join(columns)}) VALUES ({marks})",
            [[*(r[c] for c in columns[:-1]), first + i] for i, r in enumerate(rows)],
        )

    async def add_spend(self, op_id: str, day: str, spend: Spend) -> None:
        """Add one model call's spend to its operation and to the day's total."""
        await self._tx.execute(
            "UPDATE operations SET model_calls = model_calls + ?, input_tokens = input_tokens + ?, "
            "output_tokens = output_tokens + ?, cost_usd = cost_usd + ? WHERE id = ?",
            (spend.calls, spend.input_tokens, spend.output_tokens, spend.cost_usd, op_id),
        )
        await self._tx.execute(
            "INSERT INTO model_spend(day, calls, input_tokens, output_tokens, cost_usd) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(day) DO UPDATE SET "
            "calls = model_spend.calls + excluded.calls, "
            "input_tokens = model_spend.input_tokens + excluded.input_tokens, "
            "output_tokens = model_spend.output_tokens + excluded.output_tokens, "
            "cost_usd = model_spend.cost_usd + excluded.cost_usd",
            (day, spend.calls, spend.input_tokens, spend.output_tokens, spend.cost_usd),
        )

    async def upsert_consent(
        self,
        account: str,
        service: str,
        operation: str,
        permissions: Sequence[str],
        actor: str,
    ) -> ConsentRow:
        """Grant (or re-grant) a consent; every grant bumps its version."""
        now = iso(self._tx.now)
        await self._tx.execute(
            "INSERT INTO consents(account, service, operation, permissions, version, granted_by, "
            "granted_at) VALUES (?, ?, ?, ?, 1, ?, ?) "
            "ON CONFLICT(account, service, operation) DO UPDATE SET "
            "permissions = excluded.permissions, version = consents.version + 1, "
            "granted_by = excluded.granted_by, granted_at = excluded.granted_at, "
            "revoked_by = NULL, revoked_at = NULL",
            (account, service, operation, json.dumps(list(permissions)), actor, now),
        )
        row = await self._db.fetchone(
            "SELECT * FROM consents WHERE account = ? AND service = ? AND operation = ?",
            (account, service, operation),
        )
        assert row is not None
        return _consent(row)

    async def revoke_consent(
        self, account: str, service: str, operation: str, actor: str
    ) -> ConsentRow | None:
        """Revoke an active consent; return it, or None when there was none in force."""
        now = iso(self._tx.now)
        await self._tx.execute(
            "UPDATE consents SET revoked_by = ?, revoked_at = ? "
            "WHERE account = ? AND service = ? AND operation = ? AND revoked_at IS NULL",
            (actor, now, account, service, operation),
        )
        row = await self._db.fetchone(
            "SELECT * FROM consents WHERE account = ? AND service = ? AND operation = ? "
            "AND revoked_at = ?",
            (account, service, operation, now),
        )
        return _consent(row) if row else None

    async def upsert_secret(
        self,
        account: str,
        service: str,
        name: str,
        blob: bytes,
        fingerprint: str,
        actor: str,
    ) -> bool:
        """Store a sealed secret; return True when it replaced an existing one."""
        now = iso(self._tx.now)
        existed = await self._db.fetchone(
            "SELECT 1 FROM secrets WHERE account = ? AND service = ? AND name = ?",
            (account, service, name),
        )
        await self._tx.execute(
            "INSERT INTO secrets(account, service, name, blob, key_fingerprint, created_by, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(account, service, name) DO UPDATE SET blob = excluded.blob, "
            "key_fingerprint = excluded.key_fingerprint, updated_at = excluded.updated_at",
            (account, service, name, blob, fingerprint, actor, now, now),
        )
        return existed is not None

    async def delete_secret(self, account: str, service: str, name: str) -> bool:
        """Delete a secret; return whether there was one."""
        cur = await self._tx.execute(
            "DELETE FROM secrets WHERE account = ? AND service = ? AND name = ?",
            (account, service, name),
        )
        return bool(cur.rowcount)


def read_learnable(path: str, op_id: str) -> tuple[OperationRow, list[StepRow]] | None:
    """Return an operation and its step rows from a store file, read-only (for
    ``agentd kb learn``, which runs beside the daemon), or None when there is no such
    operation.

    :raises sqlite3.Error: the file is not a readable store.
    """
    import sqlite3
    from urllib.parse import quote

    con = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
    try:
        con.row_factory = sqlite3.Row
        op = con.execute("SELECT * FROM operations WHERE id = ?", (op_id,)).fetchone()
        if op is None:
            return None
        steps = con.execute(
            "SELECT * FROM operation_steps WHERE op_id = ? ORDER BY seq", (op_id,)
        ).fetchall()
        return _operation(op), [_step(r) for r in steps]
    finally:
        con.close()
