"""The store interface the rest of agentd depends on.

``SqliteStore`` (``agentd.store.sqlite``) is the embedded implementation. The
services only see these protocols, which speak in operations (the areas of
:mod:`agentd.store.api`), never in a database's SQL, so another database can
implement them without the services changing; ``tests/conformance/`` is what
it is held to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from agentd.core.audit import AuditEvent, AuditRecord, ChainVerdict
from agentd.store.api import (
    DigestReads,
    ExecutionReads,
    ExecutionRecords,
    GateBlock,
    GateReads,
    GateRecords,
    GovernanceReads,
    GovernanceRecords,
    OperationReads,
    OperationRecords,
    ProactiveReads,
    ProactiveRecords,
)

T = TypeVar("T")


@dataclass(frozen=True)
class StoreInfo:
    """What ``agentctl status`` shows about the store."""

    backend: str
    location: str
    schema_version: int
    latest_schema_version: int
    synchronous: str
    journal_mode: str


class AuditLog(Protocol):
    """The append-only, hash-chained audit trail."""

    async def append_audit(self, events: Sequence[AuditEvent], now: datetime) -> list[AuditRecord]:
        """Append events atomically, in order; return the stored records."""
        ...

    async def audit_tail(self, n: int) -> list[AuditRecord]:
        """Return the last ``n`` records, oldest first."""
        ...

    def audit_records(self, after_seq: int = 0) -> AsyncIterator[AuditRecord]:
        """Yield every record after ``after_seq`` in order, in batches."""
        ...

    async def verify_audit(self) -> ChainVerdict:
        """Recompute the chain and report the first broken record, if any."""
        ...


class Transaction(Protocol):
    """One atomic unit of writes; audit events commit (or vanish) with it.

    Each area reads as this transaction sees the store (its own writes
    included) and writes inside it.
    """

    now: datetime

    @property
    def gate(self) -> GateRecords:
        """Accounts, intents, budgets, idempotency and the hand-off queue."""
        ...

    @property
    def execution(self) -> ExecutionRecords:
        """Executions, the execution queue, rollback tokens and incidents."""
        ...

    @property
    def ops(self) -> OperationRecords:
        """Browser operations and their steps, consents and sealed secrets."""
        ...

    @property
    def gov(self) -> GovernanceRecords:
        """Global state, breaker trips, attestations, scope proposals and metrics."""
        ...

    @property
    def proactive(self) -> ProactiveRecords:
        """Interactions, patterns, goals, task runs and account summaries."""
        ...

    @property
    def digest(self) -> DigestReads:
        """The daily digest's reads."""
        ...

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        ...


class BlockTransaction(Protocol):
    """A write transaction run by plain (not async) code on the store's own thread.

    See :meth:`Store.write_block`.
    """

    now: datetime

    @property
    def gate(self) -> GateBlock:
        """The gate batch's read and write."""
        ...

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        ...


class Store(AuditLog, Protocol):
    """Everything the daemon keeps.

    Each area reads the last committed state (never waiting for a writer);
    writes go through :meth:`write`.
    """

    @property
    def gate(self) -> GateReads:
        """Accounts, intents, budgets, idempotency and the hand-off queue."""
        ...

    @property
    def execution(self) -> ExecutionReads:
        """Executions, the execution queue, rollback tokens and incidents."""
        ...

    @property
    def ops(self) -> OperationReads:
        """Browser operations and their steps, consents and sealed secrets."""
        ...

    @property
    def gov(self) -> GovernanceReads:
        """Global state, breaker trips, attestations, scope proposals and metrics."""
        ...

    @property
    def proactive(self) -> ProactiveReads:
        """Interactions, patterns, goals, task runs and account summaries."""
        ...

    @property
    def digest(self) -> DigestReads:
        """The daily digest's reads."""
        ...

    async def write_block(
        self, block: Callable[[BlockTransaction], T], now: datetime | None = None
    ) -> T:
        """Run ``block`` as one write transaction on the store's own thread; return its result.

        One hand-off to that thread for the whole transaction (its reads, its
        writes, its audit records and the commit), where :meth:`write` makes
        one per statement: for a hot path whose work between statements is
        pure computation. ``block`` must not block or await anything. If it
        raises, the transaction rolls back and the exception propagates.

        :raises StoreError: the store is closed or refused the write.
        """
        ...

    def write(self, now: datetime | None = None) -> AbstractAsyncContextManager[Transaction]:
        """Open a write transaction (one writer at a time).

        :raises StoreError: the store is closed or refused the write.
        """
        ...

    async def open(self) -> None:
        """Open the store and apply pending migrations.

        :raises StoreError: the store cannot be opened or migrated.
        """
        ...

    async def close(self) -> None:
        """Close the store; safe to call twice."""
        ...

    async def info(self) -> StoreInfo:
        """Return backend facts for status output."""
        ...

    async def health_check(self) -> None:
        """Run a trivial read and write round trip.

        :raises StoreError: the store does not answer.
        """
        ...

    async def get_meta(self, key: str) -> str | None:
        """Return a metadata value, or None."""
        ...

    async def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        ...
