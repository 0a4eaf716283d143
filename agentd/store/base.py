"""The store interface the rest of agentd depends on.

``SqliteStore`` (``agentd.store.sqlite``) is the embedded implementation. The
services only see these protocols, so another database can implement them
without the services changing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agentd.core.audit import AuditEvent, AuditRecord, ChainVerdict


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


class Store(AuditLog, Protocol):
    """Everything the daemon keeps."""

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
