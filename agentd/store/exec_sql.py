"""SQL for executions, rollback tokens and incidents.

Writes take a transaction so a state change and its audit event commit
together; reads take the store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentd.core.states import ENDED_EXECUTION_STATES
from agentd.core.timefmt import iso
from agentd.store.base import Row, Store, Transaction
from agentd.store.rows import insert_row, row_dict, update_row

_JSON_COLUMNS = ("checks", "params", "before", "after", "diff", "result")


def _load(raw: str | None) -> Any:
    return json.loads(raw) if raw is not None else None


@dataclass(frozen=True)
class ExecutionRow:
    """An execution as stored (JSON columns decoded)."""

    id: str
    kind: str
    intent_id: str
    rollback_of: str | None
    rollback_type: str | None
    tenant: str
    account: str
    action_type: str
    executor: str
    risk: str
    autonomous: bool
    state: str
    reason: str | None
    detail: str | None
    retry_at: str | None
    checks: list[dict[str, Any]]
    params: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    diff: dict[str, Any] | None
    target_state: str | None
    result: dict[str, Any] | None
    snapshot_op: str | None
    change_op: str | None
    verify_op: str | None
    attempts: int
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None

    @property
    def finished(self) -> bool:
        """Return whether the execution reached a terminal state."""
        return self.state in ENDED_EXECUTION_STATES

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form `agentctl` shows."""
        return dict(self.__dict__)


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


async def insert_execution(tx: Transaction, values: dict[str, Any]) -> None:
    """Insert an execution (JSON columns as Python objects)."""
    await insert_row(tx, "executions", _encode(values))


async def update_execution(tx: Transaction, exe_id: str, changes: dict[str, Any]) -> None:
    """Set columns of one execution (column names come from the caller, never a client)."""
    await update_row(tx, "executions", "id", exe_id, _encode(changes))


async def execution_in_tx(tx: Transaction, exe_id: str) -> ExecutionRow | None:
    """Return one execution as this transaction sees it."""
    row = await tx.fetchone("SELECT * FROM executions WHERE id = ?", (exe_id,))
    return _execution(row) if row else None


async def get_execution(store: Store, exe_id: str) -> ExecutionRow | None:
    """Return one execution or None."""
    row = await store.read_one("SELECT * FROM executions WHERE id = ?", (exe_id,))
    return _execution(row) if row else None


async def list_executions(
    store: Store, *, state: str | None = None, limit: int = 200
) -> list[ExecutionRow]:
    """Return executions, newest first."""
    where, params = ("WHERE state = ?", [state]) if state else ("", [])
    rows = await store.read_all(
        f"SELECT * FROM executions {where} ORDER BY created_at DESC, id LIMIT ?",
        [*params, limit],
    )
    return [_execution(r) for r in rows]


async def executions_in_state(tx: Transaction, states: Sequence[str]) -> list[ExecutionRow]:
    """Return executions in any of ``states``, oldest first."""
    marks = ", ".join("?" for _ in states)
    rows = await tx.fetchall(
        f"SELECT * FROM executions WHERE state IN ({marks}) ORDER BY created_at, id", list(states)
    )
    return [_execution(r) for r in rows]


async def count_started(tx: Transaction, tenant: str, start: str, end: str) -> int:
    """Count the tenant's change executions started in ``[start, end)`` (the daily limit)."""
    row = await tx.fetchone(
        "SELECT COUNT(*) FROM executions WHERE tenant = ? AND kind = 'change' "
        "AND started_at >= ? AND started_at < ?",
        (tenant, start, end),
    )
    return int(row[0]) if row else 0


# -- the gate's hand-off queue --------------------------------------------------------------


async def queued_intents(tx: Transaction, limit: int) -> list[Row]:
    """Return queued hand-offs with their intents, oldest first."""
    return list(
        await tx.fetchall(
            "SELECT q.intent_id, q.approval_source, i.tenant, i.account, i.action_type, "
            "i.domain, i.change_type, i.diff, i.rationale, i.status, i.risk_level "
            "FROM execution_queue q JOIN intents i ON i.seq = q.intent_seq "
            "WHERE q.state = 'queued' ORDER BY q.seq LIMIT ?",
            (limit,),
        )
    )


async def mark_queue(tx: Transaction, intent_id: str, state: str) -> None:
    """Move a hand-off row to ``state`` (taken: an execution row now owns it)."""
    await tx.execute(
        "UPDATE execution_queue SET state = ?, updated_at = ? "
        "WHERE intent_seq = (SELECT seq FROM intents WHERE id = ?)",
        (state, iso(tx.now), intent_id),
    )


# -- rollback tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRow:
    """A rollback token as stored."""

    token: str
    execution_id: str
    risk: str
    executed_at: str
    deadline: str
    state: str
    used_at: str | None
    used_by: str | None
    rollback_execution: str | None
    extensions: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return dict(self.__dict__)


def _token(row: Row) -> TokenRow:
    data = row_dict(row)
    data["extensions"] = json.loads(data["extensions"])
    return TokenRow(**data)


async def insert_token(tx: Transaction, values: dict[str, Any]) -> None:
    """Insert a rollback token."""
    await insert_row(tx, "rollback_tokens", values)


async def update_token(tx: Transaction, token: str, changes: dict[str, Any]) -> None:
    """Set columns of one token."""
    data = dict(changes)
    if "extensions" in data and not isinstance(data["extensions"], str):
        data["extensions"] = json.dumps(data["extensions"], sort_keys=True)
    await update_row(tx, "rollback_tokens", "token", token, data)


async def token_in_tx(tx: Transaction, token: str) -> TokenRow | None:
    """Return one token as this transaction sees it."""
    row = await tx.fetchone("SELECT * FROM rollback_tokens WHERE token = ?", (token,))
    return _token(row) if row else None


async def get_token(store: Store, token: str) -> TokenRow | None:
    """Return one token or None."""
    row = await store.read_one("SELECT * FROM rollback_tokens WHERE token = ?", (token,))
    return _token(row) if row else None


async def token_for_execution(store: Store, exe_id: str) -> TokenRow | None:
    """Return the token of an execution, or None."""
    row = await store.read_one("SELECT * FROM rollback_tokens WHERE execution_id = ?", (exe_id,))
    return _token(row) if row else None


async def token_for_execution_in_tx(tx: Transaction, exe_id: str) -> TokenRow | None:
    """Return the token of an execution as this transaction sees it."""
    row = await tx.fetchone("SELECT * FROM rollback_tokens WHERE execution_id = ?", (exe_id,))
    return _token(row) if row else None


async def list_tokens(store: Store, limit: int = 500) -> list[TokenRow]:
    """Return rollback tokens, newest first."""
    rows = await store.read_all(
        "SELECT * FROM rollback_tokens ORDER BY executed_at DESC LIMIT ?", (limit,)
    )
    return [_token(r) for r in rows]


# -- incidents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentRow:
    """An incident as stored."""

    id: str
    severity: str
    status: str
    kind: str
    title: str
    detail: str
    ref: str | None
    tenant: str | None
    account: str | None
    autonomous: bool
    notified: list[str]
    created_at: str
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return dict(self.__dict__)


def _incident(row: Row) -> IncidentRow:
    data = row_dict(row)
    data["notified"] = json.loads(data["notified"])
    data["autonomous"] = bool(data["autonomous"])
    return IncidentRow(**data)


async def insert_incident(tx: Transaction, values: dict[str, Any]) -> None:
    """Insert an incident."""
    await insert_row(tx, "incidents", {**values, "autonomous": int(bool(values.get("autonomous")))})


async def update_incident(tx: Transaction, incident_id: str, changes: dict[str, Any]) -> None:
    """Set columns of one incident."""
    data = dict(changes)
    if "notified" in data and not isinstance(data["notified"], str):
        data["notified"] = json.dumps(data["notified"])
    await update_row(tx, "incidents", "id", incident_id, data)


async def incident_in_tx(tx: Transaction, incident_id: str) -> IncidentRow | None:
    """Return one incident as this transaction sees it."""
    row = await tx.fetchone("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return _incident(row) if row else None


async def get_incident(store: Store, incident_id: str) -> IncidentRow | None:
    """Return one incident or None."""
    row = await store.read_one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return _incident(row) if row else None


async def list_incidents(
    store: Store, *, status: str | None = None, limit: int = 200
) -> list[IncidentRow]:
    """Return incidents, newest first."""
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    rows = await store.read_all(
        f"SELECT * FROM incidents {where} ORDER BY created_at DESC, id LIMIT ?",
        [*params, limit],
    )
    return [_incident(r) for r in rows]
