"""The audit trail's hash chain: pure functions over plain records.

Each record's hash covers its own fields and the previous record's hash, so
altering a record breaks its hash and removing one breaks the next record's
link (and leaves a gap in the sequence numbers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

GENESIS = "0" * 64


class AuditEventType(StrEnum):
    """Audit event names (SPEC §6 and the rest of the product).

    Every event agentd writes is a member (governance's own are
    :class:`agentd.core.governance.GovernanceEvent`); the stored name is the
    member's value, a contract of the audit trail that never changes.
    """

    DAEMON_STARTED = "DAEMON_STARTED"
    DAEMON_STOPPED = "DAEMON_STOPPED"
    ACCESS_REFUSED = "ACCESS_REFUSED"
    CONFIG_RELOADED = "CONFIG_RELOADED"
    CONFIG_RELOAD_FAILED = "CONFIG_RELOAD_FAILED"
    ACCOUNTS_IMPORTED = "ACCOUNTS_IMPORTED"
    ACCOUNT_UPDATED = "ACCOUNT_UPDATED"
    PROPOSAL_CREATED = "PROPOSAL_CREATED"
    PROPOSAL_APPROVED = "PROPOSAL_APPROVED"
    PROPOSAL_REJECTED = "PROPOSAL_REJECTED"
    PROPOSAL_AUTO_APPROVED = "PROPOSAL_AUTO_APPROVED"
    PROPOSAL_BLOCKED = "PROPOSAL_BLOCKED"
    PROPOSAL_EXPIRED = "PROPOSAL_EXPIRED"
    APPROVAL_REFUSED = "APPROVAL_REFUSED"
    EXECUTION_QUEUED = "EXECUTION_QUEUED"
    EXECUTION_STARTED = "EXECUTION_STARTED"
    EXECUTION_COMPLETED = "EXECUTION_COMPLETED"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    EXECUTION_HANDED_OFF = "EXECUTION_HANDED_OFF"
    EXECUTION_ROLLED_BACK = "EXECUTION_ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    ROLLBACK_ESCALATED = "ROLLBACK_ESCALATED"
    ROLLBACK_DEADLINE_EXTENDED = "ROLLBACK_DEADLINE_EXTENDED"
    OPERATION_CREATED = "OPERATION_CREATED"
    OPERATION_STARTED = "OPERATION_STARTED"
    OPERATION_RESUMED = "OPERATION_RESUMED"
    OPERATION_AWAITING_CONSENT = "OPERATION_AWAITING_CONSENT"
    OPERATION_CAPTURE_REFUSED = "OPERATION_CAPTURE_REFUSED"
    OPERATION_STEP = "OPERATION_STEP"
    OPERATION_COMPLETED = "OPERATION_COMPLETED"
    OPERATION_FAILED = "OPERATION_FAILED"
    OPERATION_CANCELLED = "OPERATION_CANCELLED"
    OPERATION_REFUSED_COMMAND = "OPERATION_REFUSED_COMMAND"
    # agent mode: a model-planned write waits for a person, who approves or rejects it
    OPERATION_STEP_AWAITING_APPROVAL = "OPERATION_STEP_AWAITING_APPROVAL"
    OPERATION_STEP_APPROVED = "OPERATION_STEP_APPROVED"
    OPERATION_STEP_REJECTED = "OPERATION_STEP_REJECTED"
    # agent mode: a budget (steps, tokens, cost, wall clock) ended an operation
    OPERATION_BUDGET_REACHED = "OPERATION_BUDGET_REACHED"
    HOST_NOT_ALLOWED = "HOST_NOT_ALLOWED"
    CONSENT_GRANTED = "CONSENT_GRANTED"
    CONSENT_REVOKED = "CONSENT_REVOKED"
    SECRET_SET = "SECRET_SET"
    SECRET_ACCESSED = "SECRET_ACCESSED"
    SECRET_REMOVED = "SECRET_REMOVED"
    LEVEL_CHANGED = "LEVEL_CHANGED"
    KILL_SWITCH_CHANGED = "KILL_SWITCH_CHANGED"
    BREAKER_TRIPPED = "BREAKER_TRIPPED"
    BREAKER_RESET = "BREAKER_RESET"
    INCIDENT_OPENED = "INCIDENT_OPENED"
    INCIDENT_RESOLVED = "INCIDENT_RESOLVED"
    TASK_FAILED = "TASK_FAILED"
    INTERACTIONS_IMPORTED = "INTERACTIONS_IMPORTED"
    PATTERNS_DETECTED = "PATTERNS_DETECTED"
    GOAL_CREATED = "GOAL_CREATED"
    GOAL_STATUS_CHANGED = "GOAL_STATUS_CHANGED"


@dataclass(frozen=True)
class AuditEvent:
    """An event to append; the store assigns sequence, time and hashes."""

    event: str
    actor: str
    subject: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    """One stored audit record."""

    seq: int
    at: str
    event: str
    actor: str
    subject: str | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict (the export format)."""
        return {
            "seq": self.seq,
            "at": self.at,
            "event": self.event,
            "actor": self.actor,
            "subject": self.subject,
            "data": dict(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
)


def canonical_data(data: Mapping[str, Any]) -> str:
    """Return the canonical JSON text of a record's data (what is stored and hashed)."""
    # json.dumps with these options, without building an encoder per record.
    return _CANONICAL.encode(data)


def record_hash(
    prev_hash: str, seq: int, at: str, event: str, actor: str, subject: str | None, data_json: str
) -> str:
    """Return the hash of one record given its predecessor's hash.

    Each field is length-prefixed, so no choice of values can make two
    different records hash the same input (and it is cheaper than JSON).
    """
    seq_text = str(seq)
    subject = "\x00" if subject is None else subject
    # Spelt out rather than joined in a loop: this runs for every record.
    body = (
        f"{len(prev_hash)}:{prev_hash};{len(seq_text)}:{seq_text};{len(at)}:{at};"
        f"{len(event)}:{event};{len(actor)}:{actor};{len(subject)}:{subject};"
        f"{len(data_json)}:{data_json};"
    )
    return hashlib.sha256(body.encode()).hexdigest()


def chain_rows(
    events: Sequence[AuditEvent], seq: int, prev: str, at: str
) -> tuple[list[tuple[Any, ...]], tuple[int, str]]:
    """Return the ``audit`` rows of ``events`` chained after ``(seq, prev)``, and the new head.

    Rows are ``(seq, at, event, actor, subject, data_json, prev_hash, hash)``.
    """
    rows: list[tuple[Any, ...]] = []
    # Events often share one data mapping (a constant): serialise it once.
    # Keyed by id() only for this loop, while every event is alive.
    texts: dict[int, str] = {}
    for ev in events:
        seq += 1
        data_json = texts.get(id(ev.data))
        if data_json is None:
            data_json = texts[id(ev.data)] = canonical_data(ev.data)
        digest = record_hash(prev, seq, at, ev.event, ev.actor, ev.subject, data_json)
        rows.append((seq, at, ev.event, ev.actor, ev.subject, data_json, prev, digest))
        prev = digest
    return rows, (seq, prev)


@dataclass(frozen=True)
class ChainVerdict:
    """The outcome of verifying a chain."""

    intact: bool
    count: int
    first_broken_seq: int | None = None
    problem: str | None = None


class ChainVerifier:
    """Check a chain incrementally, one row at a time, in sequence order.

    Rows are ``(seq, at, event, actor, subject, data_json, prev_hash, hash)``.
    The first record must link to GENESIS and sequence numbers must be
    consecutive from 1.

    ``written`` is ``(seq, hash)`` of a record the writer knows it wrote (the
    running daemon's head, kept in memory): the chain must reach it and hold
    that very record. A database whose tail was cut off and whose last records
    were rewritten into a consistent chain passes every other check.
    """

    def __init__(self, written: tuple[int, str] | None = None) -> None:
        self._prev = GENESIS
        self._seq = 1
        self.count = 0
        self.failure: ChainVerdict | None = None
        self._written = written if written is not None and written[0] > 0 else None

    def feed(self, row: tuple[int, str, str, str, str | None, str, str, str]) -> bool:
        """Check one row; return False once the chain is broken."""
        if self.failure is not None:
            return False
        seq, at, event, actor, subject, data_json, prev, digest = row
        if seq != self._seq:
            self.failure = ChainVerdict(
                False, self.count, self._seq, f"record {self._seq} is missing"
            )
        elif prev != self._prev:
            self.failure = ChainVerdict(
                False, self.count, seq, f"record {seq} does not link to record {seq - 1}"
            )
        elif record_hash(prev, seq, at, event, actor, subject, data_json) != digest:
            self.failure = ChainVerdict(
                False, self.count, seq, f"record {seq} was altered (hash mismatch)"
            )
        elif self._written is not None and seq == self._written[0]:
            if digest != self._written[1]:
                self.failure = ChainVerdict(
                    False,
                    self.count,
                    seq,
                    f"record {seq} in the database (hash {digest[:12]}…) is not the one the "
                    f"running daemon wrote (hash {self._written[1][:12]}…): it was replaced",
                )
        if self.failure is not None:
            return False
        self._prev = digest
        self._seq += 1
        self.count += 1
        return True

    def finish(self, head_seq: int | None = None, head_hash: str | None = None) -> ChainVerdict:
        """Return the verdict; ``head_*`` is the last record the store says it wrote."""
        if self.failure is not None:
            return self.failure
        if self._written is not None and self._written[0] > self.count:
            return ChainVerdict(
                False,
                self.count,
                self.count + 1,
                f"the database ends at record {self.count}, but the running daemon wrote "
                f"records up to {self._written[0]}: records {self.count + 1}.."
                f"{self._written[0]} were removed (trail was truncated)",
            )
        if head_seq is not None and head_seq > self.count:
            return ChainVerdict(
                False,
                self.count,
                self.count + 1,
                f"records {self.count + 1}..{head_seq} are missing (trail was truncated)",
            )
        if head_seq is not None and head_seq == self.count and head_hash not in (None, self._prev):
            return ChainVerdict(False, self.count, head_seq, f"record {head_seq} was replaced")
        return ChainVerdict(True, self.count)


def verify_chain(
    records: Iterable[tuple[int, str, str, str, str | None, str, str, str]],
    head_seq: int | None = None,
    head_hash: str | None = None,
    written: tuple[int, str] | None = None,
) -> ChainVerdict:
    """Check a whole chain given in sequence order (see :class:`ChainVerifier`)."""
    verifier = ChainVerifier(written)
    for row in records:
        if not verifier.feed(row):
            break
    return verifier.finish(head_seq, head_hash)
