"""The store interface the rest of agentd depends on.

``SqliteStore`` (``agentd.store.sqlite``) is the embedded implementation. The
services only see these protocols, so another database can implement them
without the services changing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from agentd.core.audit import AuditEvent, AuditRecord, ChainVerdict

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


class Row(Protocol):
    """A result row: by column name or by position."""

    def __getitem__(self, key: int | str) -> Any: ...

    def keys(self) -> list[str]:
        """Return the column names."""
        ...


class Transaction(Protocol):
    """One atomic unit of writes; audit events commit (or vanish) with it.

    Statements are SQL in SQLite's dialect with ``?`` parameters; another
    backend translates them in its adapter.
    """

    now: datetime

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """Run one statement."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many rows."""
        ...

    async def execute_each(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> None:
        """Run each ``(sql, rows)`` statement for its rows, in order.

        The same as calling :meth:`executemany` for each in turn; a backend
        may send them in one round trip.
        """
        ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Read one row, seeing this transaction's own writes."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Row]:
        """Read rows, seeing this transaction's own writes."""
        ...

    async def fetch_each(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> Sequence[Sequence[Row]]:
        """Run each ``(sql, params)`` query in order and return the rows of each.

        The same as calling :meth:`fetchall` for each in turn; a backend may
        send them in one round trip.
        """
        ...

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        ...


class BlockTransaction(Protocol):
    """A write transaction run by plain (not async) code on the store's own thread.

    See :meth:`Store.write_block`.
    """

    now: datetime

    def fetch_each(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> Sequence[Sequence[Row]]:
        """Run each query, in order; return the rows of each (sees the block's writes)."""
        ...

    def execute_each(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> None:
        """Run each statement for its rows, in order."""
        ...

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        ...


class Store(AuditLog, Protocol):
    """Everything the daemon keeps."""

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

    async def read_all(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Row]:
        """Read rows from the last committed state (never waits for a writer)."""
        ...

    async def read_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Read the first row from the last committed state."""
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
