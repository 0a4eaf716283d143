"""SQLite's governance records (:class:`~agentd.store.api.GovernanceReads`): global state
in meta, breaker trips, attestations, scope proposals, and the metric queries over
intents, executions, incidents and the audit trail.

The read class runs on any :class:`~agentd.store.rows.SqlReader` (the store's
committed state, or a transaction), so the same query serves a command and a
transaction; the write class runs on a transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from agentd.core.governance import ActionStats
from agentd.core.metrics import MetricCounts
from agentd.core.timefmt import iso
from agentd.store.records import AttestationRow, ProposalRow, TripRow
from agentd.store.rows import Row, SqlReader, SqlWriter, insert_row, row_dict, update_row

#: The PostgreSQL channel on which a global state change (kill switch, level,
#: paused action types, breaker trips) is announced to every daemon at commit.
STATE_CHANNEL = "agentd_state"

# Reasons for which the gate held an intent back for safety (metrics' gate triggers).
SAFETY_REASONS = (
    "HARD_STOP",
    "FORBIDDEN_CHANGE_TYPE",
    "KILL_SWITCH",
    "ACTION_TYPE_PAUSED",
    "RISK_ABOVE_LEVEL",
    "BUDGET_EXHAUSTED",
)

# -- meta ---------------------------------------------------------------------------------


# -- breaker trips ------------------------------------------------------------------------


def _trip(row: Row) -> TripRow:
    data = row_dict(row)
    data["alert_only"] = bool(data["alert_only"])
    data["effects"] = json.loads(data["effects"])
    return TripRow(**data)


# -- attestations -------------------------------------------------------------------------


# -- scope proposals ----------------------------------------------------------------------


def _proposal(row: Row) -> ProposalRow:
    data = row_dict(row)
    for column in ("action_types", "evidence", "approvals"):
        data[column] = json.loads(data[column])
    return ProposalRow(**data)


# -- metrics ------------------------------------------------------------------------------


def _bounds(start: datetime | None, end: datetime | None) -> tuple[str, str]:
    return (iso(start) if start else "", iso(end) if end else "9999")


def _emergency_abort(event: str, data: str) -> bool:
    """Return whether an audit record turned the kill switch on or tripped a (stopping) breaker."""
    values = json.loads(data or "{}")
    if event == "KILL_SWITCH_CHANGED":
        return bool(values.get("on") == 1)
    return bool(values.get("alert_only") == 0)


class SqliteGovernance:
    """The reads of governance (:class:`~agentd.store.api.GovernanceReads`)."""

    def __init__(self, db: SqlReader) -> None:
        self._db = db

    async def read_meta(self, keys: Sequence[str]) -> dict[str, str]:
        """Return the values of ``keys`` that are set."""
        marks = ",".join("?" for _ in keys)
        rows = await self._db.fetchall(
            f"SELECT key, value FROM meta WHERE key IN ({marks})", list(keys)
        )
        return {r[0]: r[1] for r in rows}

    async def open_trips(self) -> list[TripRow]:
        """Return the trips not yet reset, oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM breaker_trips WHERE reset_at IS NULL ORDER BY tripped_at, id", ()
        )
        return [_trip(r) for r in rows]

    async def trips_between(self, start: datetime, end: datetime) -> list[TripRow]:
        """Return trips made in ``[start, end)``, oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM breaker_trips WHERE tripped_at >= ? AND tripped_at < ? "
            "ORDER BY tripped_at, id",
            (iso(start), iso(end)),
        )
        return [_trip(r) for r in rows]

    async def recent_trips(self, limit: int) -> list[TripRow]:
        """Return the latest trips, newest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM breaker_trips ORDER BY tripped_at DESC, id LIMIT ?", (limit,)
        )
        return [_trip(r) for r in rows]

    async def list_attestations(self, limit: int = 1000) -> list[AttestationRow]:
        """Return attestations, newest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM attestations ORDER BY at DESC, id LIMIT ?", (limit,)
        )
        return [AttestationRow(**{k: r[k] for k in r.keys()}) for r in rows]

    async def get_proposal(self, proposal_id: str) -> ProposalRow | None:
        """Return one proposal or None."""
        rows = await self._db.fetchall("SELECT * FROM scope_proposals WHERE id = ?", (proposal_id,))
        return _proposal(rows[0]) if rows else None

    async def pending_proposal(self) -> ProposalRow | None:
        """Return the proposal waiting for approval, if any."""
        rows = await self._db.fetchall("SELECT * FROM scope_proposals WHERE status = 'pending'", ())
        return _proposal(rows[0]) if rows else None

    async def list_proposals(
        self, status: str | None = None, limit: int = 200
    ) -> list[ProposalRow]:
        """Return proposals, newest first."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = await self._db.fetchall(
            f"SELECT * FROM scope_proposals {where} ORDER BY created_at DESC, id LIMIT ?",
            [*params, limit],
        )
        return [_proposal(r) for r in rows]

    async def metric_counts(self, start: datetime | None, end: datetime | None) -> MetricCounts:
        """Count what happened in ``[start, end)`` (None: since the store began / until now).

        Intents by creation time and how they ended; executions by when they
        finished, ``rolled_back`` being those later undone by a successful rollback;
        incidents by creation time; safety events from the audit trail and the
        gate's reasons.
        """
        lo, hi = _bounds(start, end)
        marks = ",".join("?" for _ in SAFETY_REASONS)
        (i,) = await self._db.fetchall(
            "SELECT COUNT(*), "
            "COUNT(*) FILTER (WHERE approval_source = 'POLICY'), "
            "COUNT(*) FILTER (WHERE approval_source = 'HUMAN'), "
            "COUNT(*) FILTER (WHERE status = 'rejected'), "
            "COUNT(*) FILTER (WHERE decision = 'BLOCKED'), "
            "COUNT(*) FILTER (WHERE status = 'expired'), "
            f"COUNT(*) FILTER (WHERE reason IN ({marks})) "
            "FROM intents WHERE created_at >= ? AND created_at < ?",
            (*SAFETY_REASONS, lo, hi),
        )
        (e,) = await self._db.fetchall(
            "SELECT COUNT(*) FILTER (WHERE state = 'succeeded'), "
            "COUNT(*) FILTER (WHERE state = 'failed'), "
            "COUNT(*) FILTER (WHERE state = 'succeeded' AND EXISTS (SELECT 1 FROM executions r "
            "WHERE r.rollback_of = e.id AND r.kind = 'rollback' AND r.state = 'succeeded')) "
            "FROM executions e WHERE e.kind = 'change' AND e.finished_at >= "
            "? AND e.finished_at < ?",
            (lo, hi),
        )
        (h,) = await self._db.fetchall(
            "SELECT COUNT(*) FILTER (WHERE state = 'handed_off'), "
            "COUNT(*) FILTER (WHERE state = 'succeeded'), "
            "COUNT(*) FILTER (WHERE state = 'failed') FROM executions WHERE kind = 'change' "
            "AND executor = 'handoff' AND started_at >= ? AND started_at < ?",
            (lo, hi),
        )
        severity: dict[str, int] = {}
        autonomous = 0
        for row in await self._db.fetchall(
            "SELECT severity, COUNT(*), COALESCE(SUM(autonomous), 0) FROM incidents "
            "WHERE created_at >= ? AND created_at < ? GROUP BY severity",
            (lo, hi),
        ):
            severity[row[0]] = int(row[1])
            autonomous += int(row[2])
        (refused,) = await self._db.fetchall(
            "SELECT COUNT(*) FROM audit WHERE event IN "
            "('OPERATION_REFUSED_COMMAND', 'APPROVAL_REFUSED') AND at >= ? AND at < ?",
            (lo, hi),
        )
        # Which of these were emergency aborts is in their JSON data, read here
        # rather than in SQL, whose JSON functions differ between databases.
        aborts = await self._db.fetchall(
            "SELECT event, data FROM audit WHERE event IN "
            "('KILL_SWITCH_CHANGED', 'BREAKER_TRIPPED') AND at >= ? AND at < ?",
            (lo, hi),
        )
        return MetricCounts(
            intents_total=int(i[0]),
            intents_auto_executed=int(i[1]),
            intents_approved=int(i[2]),
            intents_rejected=int(i[3]),
            intents_blocked=int(i[4]),
            intents_expired=int(i[5]),
            executions_succeeded=int(e[0]),
            executions_failed=int(e[1]),
            executions_rolled_back=int(e[2]),
            handoffs_open=int(h[0]),
            handoffs_done=int(h[1]),
            handoffs_failed=int(h[2]),
            incidents_by_severity=severity,
            incidents_from_autonomous=autonomous,
            constraint_violations=int(refused[0]),
            emergency_aborts=sum(_emergency_abort(r[0], r[1]) for r in aborts),
            gate_triggers=int(i[6]),
        )

    async def human_action_stats(self, start: datetime, end: datetime) -> dict[str, ActionStats]:
        """Return, per action type, how human-approved change executions finished in the period."""
        rows = await self._db.fetchall(
            "SELECT action_type, COUNT(*) FILTER (WHERE state = 'succeeded'), "
            "COUNT(*) FILTER (WHERE state = 'failed'), "
            "COUNT(*) FILTER (WHERE state = 'succeeded' AND EXISTS (SELECT 1 FROM executions r "
            "WHERE r.rollback_of = e.id AND r.kind = 'rollback' AND r.state = 'succeeded')) "
            "FROM executions e WHERE e.kind = 'change' AND e.autonomous = 0 "
            "AND e.finished_at >= ? AND e.finished_at < ? GROUP BY action_type",
            (iso(start), iso(end)),
        )
        return {r[0]: ActionStats(int(r[1]), int(r[2]), int(r[3])) for r in rows}

    async def last_rollback_at(self) -> str | None:
        """Return when a rollback last succeeded."""
        rows = await self._db.fetchall(
            "SELECT MAX(finished_at) FROM executions WHERE kind = "
            "'rollback' AND state = 'succeeded'",
            (),
        )
        return rows[0][0] if rows else None

    async def first_audit_at(self) -> str | None:
        """Return the time of the first audit record (when the store began)."""
        rows = await self._db.fetchall("SELECT at FROM audit ORDER BY seq LIMIT 1", ())
        return rows[0][0] if rows else None

    async def recent_outcomes(self, since: datetime) -> list[tuple[str, str, str, bool]]:
        """Return ``(at, kind, action_type, autonomous)`` of outcomes after ``since``, oldest first.

        Kinds: ``succeeded`` and ``failed`` (change executions), ``rolled_back``
        (successful rollbacks, autonomous when the change they undid was). Used to
        rebuild the breakers' windows on start-up.
        """
        rows = await self._db.fetchall(
            "SELECT e.finished_at, CASE WHEN e.kind = 'rollback' THEN "
            "'rolled_back' ELSE e.state END, "
            "e.action_type, CASE WHEN e.kind = 'rollback' THEN COALESCE((SELECT c.autonomous "
            "FROM executions c WHERE c.id = e.rollback_of), 0) ELSE e.autonomous END "
            "FROM executions e WHERE e.finished_at > ? AND ("
            "(e.kind = 'change' AND e.state IN ('succeeded', 'failed')) "
            "OR (e.kind = 'rollback' AND e.state = 'succeeded')) ORDER BY e.finished_at",
            (iso(since),),
        )
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]

    async def recent_incidents(self, since: datetime) -> list[tuple[str, str, bool]]:
        """Return ``(created_at, severity, autonomous)`` of incidents after ``since`` not raised
        by breakers."""
        rows = await self._db.fetchall(
            "SELECT created_at, severity, autonomous FROM incidents WHERE created_at > ? "
            "AND kind != 'breaker_tripped' ORDER BY created_at",
            (iso(since),),
        )
        return [(r[0], r[1], bool(r[2])) for r in rows]

    async def critical_autonomous_incidents(self, start: datetime, end: datetime) -> int:
        """Count critical incidents from autonomous actions created in ``[start, end)``."""
        rows = await self._db.fetchall(
            "SELECT COUNT(*) FROM incidents WHERE severity = 'critical' AND autonomous = 1 "
            "AND created_at >= ? AND created_at < ?",
            (iso(start), iso(end)),
        )
        return int(rows[0][0]) if rows else 0


class SqliteGovernanceWrites(SqliteGovernance):
    """The reads and writes inside a transaction (:class:`~agentd.store.api.GovernanceRecords`)."""

    def __init__(self, tx: SqlWriter) -> None:
        super().__init__(tx)
        self._tx = tx

    async def set_meta(self, key: str, value: str) -> None:
        """Set one meta value in ``tx``."""
        await self._tx.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        await self._changed(key)

    async def _changed(self, what: str) -> None:
        """Tell the other daemons on the store, when this transaction commits, what changed."""
        if self._tx.dialect == "postgresql":
            await self._tx.execute("SELECT pg_notify(?, ?)", (STATE_CHANNEL, what))

    async def insert_trip(self, values: dict[str, Any]) -> None:
        """Insert a trip."""
        data = dict(values)
        data["alert_only"] = int(bool(data["alert_only"]))
        data["effects"] = json.dumps(data.get("effects", []))
        await insert_row(self._tx, "breaker_trips", data)
        await self._changed("breaker_trips")

    async def reset_trips(self, ids: Iterable[str], at: datetime, by: str, reason: str) -> None:
        """Mark trips reset."""
        await self._tx.executemany(
            "UPDATE breaker_trips SET reset_at = ?, reset_by = ?, reset_reason = ? WHERE id = ?",
            [(iso(at), by, reason, trip_id) for trip_id in ids],
        )
        await self._changed("breaker_trips")

    async def insert_attestation(self, values: dict[str, Any]) -> None:
        """Insert an attestation."""
        await insert_row(self._tx, "attestations", values)

    async def insert_proposal(self, values: dict[str, Any]) -> None:
        """Insert a proposal (JSON columns as Python objects)."""
        data = dict(values)
        for column in ("action_types", "evidence", "approvals"):
            data[column] = json.dumps(
                data.get(column, [] if column != "evidence" else {}), default=str
            )
        await insert_row(self._tx, "scope_proposals", data)

    async def update_proposal(self, proposal_id: str, changes: dict[str, Any]) -> None:
        """Set columns of one proposal (column names come from the caller, never a client)."""
        data = dict(changes)
        if "approvals" in data:
            data["approvals"] = json.dumps(data["approvals"], default=str)
        await update_row(self._tx, "scope_proposals", "id", proposal_id, data)
