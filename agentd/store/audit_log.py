"""The audit trail's reads and its verification, the same on every store.

A store keeps the trail in its ``audit`` table and the head in ``meta``
(``audit.head``: ``seq:hash``); how it appends (one writer in SQLite, a lock
every daemon takes in PostgreSQL) is its own. What it reads back, and how the
chain is checked, is written once here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agentd.core.audit import AuditRecord, ChainVerdict, ChainVerifier

_COLUMNS = "seq, at, event, actor, subject, data, prev_hash, hash"


class ChainedAuditReads:
    """``audit_tail``, ``audit_records`` and ``verify_audit`` over a store's committed reads.

    The store provides ``read_all`` and ``get_meta``, and keeps in
    ``_head_seq``/``_head_hash`` the last record it appended itself.
    """

    _head_seq: int
    _head_hash: str

    async def read_all(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any]:
        raise NotImplementedError

    async def get_meta(self, key: str) -> str | None:
        raise NotImplementedError

    async def audit_tail(self, n: int) -> list[AuditRecord]:
        """Return the last ``n`` records, oldest first."""
        rows = await self.read_all(
            f"SELECT * FROM (SELECT {_COLUMNS} FROM audit ORDER BY seq DESC LIMIT ?) AS t "
            "ORDER BY seq",
            (max(0, n),),
        )
        return [audit_record(r) for r in rows]

    async def audit_records(
        self, after_seq: int = 0, batch: int = 2000
    ) -> AsyncIterator[AuditRecord]:
        """Yield every record after ``after_seq`` in order, in batches."""
        last = after_seq
        while True:
            rows = await self.read_all(
                f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)
            )
            for r in rows:
                yield audit_record(r)
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    async def verify_audit(self) -> ChainVerdict:
        """Recompute the chain and report the first broken record, if any.

        Besides the database's own head (``meta``, which whoever rewrites the
        database can rewrite too), the chain must hold the last record this
        store knows it appended, as it remembers it (read at open, moved on by
        each append): a trail cut short or rewritten under the running daemon
        fails here.
        """
        # Taken before any read: every record up to it has committed, so each
        # read below sees it (records appended meanwhile come after it).
        written = (self._head_seq, self._head_hash)
        head = await self.get_meta("audit.head")
        head_seq: int | None = None
        head_hash: str | None = None
        if head:
            seq_text, _, head_hash = head.partition(":")
            head_seq = int(seq_text)
        verifier = ChainVerifier(written)
        last = 0
        while True:
            rows = await self.read_all(
                f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT 5000", (last,)
            )
            for r in rows:
                if not verifier.feed(tuple(r)):
                    return verifier.finish()
            if len(rows) < 5000:
                break
            last = int(rows[-1][0])
        return verifier.finish(head_seq, head_hash)


def audit_record(r: Sequence[Any]) -> AuditRecord:
    """Return the record of one ``audit`` row (columns in the table's order)."""
    return AuditRecord(
        seq=int(r[0]),
        at=str(r[1]),
        event=str(r[2]),
        actor=str(r[3]),
        subject=r[4],
        data=json.loads(r[5]),
        prev_hash=str(r[6]),
        hash=str(r[7]),
    )
