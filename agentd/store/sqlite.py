"""SQLite implementation of the store (aiosqlite, WAL).

Two connections: one writer, behind a lock, that runs every write as one
``BEGIN IMMEDIATE`` transaction; one reader (``query_only``) so reads never
queue behind writes — WAL lets them see the last committed state meanwhile.
A third, on a thread of its own (:mod:`agentd.store.wal`), copies the WAL
into the database file after commits, so that the writer's commits do not.

Durability: ``synchronous`` is FULL by default, so a transaction the daemon
has acknowledged survives power loss, not only a crash of the daemon. Hot
paths stay fast by grouping many decisions into one transaction (one fsync),
not by weakening that promise. NORMAL is available for hosts that prefer
throughput; WAL keeps the file consistent either way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
from loguru import logger

from agentd.core.audit import (
    GENESIS,
    AuditEvent,
    AuditRecord,
    chain_rows,
)
from agentd.core.timefmt import iso
from agentd.errors import StoreError
from agentd.store.audit_log import ChainedAuditReads
from agentd.store.base import BlockTransaction, StoreInfo
from agentd.store.digest_sql import SqliteDigest
from agentd.store.exec_sql import SqliteExecutions, SqliteExecutionWrites
from agentd.store.gate_sql import SqliteGate, SqliteGateBlock, SqliteGateWrites
from agentd.store.gov_sql import SqliteGovernance, SqliteGovernanceWrites
from agentd.store.ops_sql import SqliteOperations, SqliteOperationWrites
from agentd.store.proactive_sql import SqliteProactive, SqliteProactiveWrites
from agentd.store.wal import WRITER_AUTOCHECKPOINT, Checkpointer


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("agentd.store.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    for expected, (version, name, _) in enumerate(found, start=1):
        if version != expected:
            raise StoreError(f"migration {name} is out of sequence (expected {expected:04d})")
    return found


MIGRATIONS = _migrations()
LATEST_SCHEMA_VERSION = len(MIGRATIONS)


T = TypeVar("T")


async def _on_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` with the connection on the connection's own thread, in one hand-off.

    Each hand-off to that thread costs tens of microseconds and a wake-up of
    the event loop; a batch of statements in one call pays that once.
    aiosqlite has no public call for this: ``_execute`` is what its own
    methods go through.
    """
    raw = conn._conn
    result: T = await conn._execute(fn, raw)  # type: ignore[no-untyped-call]
    return result


class Tx:
    """One write transaction: statements plus buffered audit events.

    The statements are this adapter's own (its area classes run them); the
    services see only the areas, bound to this transaction.
    """

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, now: datetime, path: Path) -> None:
        self.conn = conn
        self.now = now
        self._audit: list[AuditEvent] = []
        self.gate = SqliteGateWrites(self)
        self.execution = SqliteExecutionWrites(self)
        self.ops = SqliteOperationWrites(self)
        self.gov = SqliteGovernanceWrites(self)
        self.proactive = SqliteProactiveWrites(self, path)
        self.digest = SqliteDigest(self)

    async def execute(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> aiosqlite.Cursor:
        """Run one statement inside the transaction."""
        return await self.conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for many rows inside the transaction; return the rows changed."""
        cur = await self.conn.executemany(sql, rows)
        return max(0, int(cur.rowcount))

    async def execute_each(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> None:
        """Run each statement for its rows, in order, inside the transaction."""

        def run(raw: sqlite3.Connection) -> None:
            for sql, rows in statements:
                raw.executemany(sql, rows)

        await _on_thread(self.conn, run)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """Read one row inside the transaction (sees its own writes)."""
        row: sqlite3.Row | None = await _on_thread(
            self.conn, lambda raw: raw.execute(sql, params).fetchone()
        )
        return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read rows inside the transaction (sees its own writes)."""
        return list(await self.conn.execute_fetchall(sql, params))

    async def fetch_each(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[sqlite3.Row]]:
        """Run each query, in order, inside the transaction; return the rows of each."""
        return await _on_thread(
            self.conn, lambda raw: [raw.execute(sql, params).fetchall() for sql, params in queries]
        )

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        self._audit.append(event)


class BlockTx:
    """A write transaction for plain code on the writer's thread (see ``write_block``)."""

    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection, now: datetime) -> None:
        self.raw = raw
        self.now = now
        self._audit: list[AuditEvent] = []
        self.gate = SqliteGateBlock(self)

    def fetch_each(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[sqlite3.Row]]:
        """Run each query, in order; return the rows of each (sees the block's writes)."""
        return [self.raw.execute(sql, params).fetchall() for sql, params in queries]

    def execute_each(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> None:
        """Run each statement for its rows, in order."""
        for sql, rows in statements:
            self.raw.executemany(sql, rows)

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        self._audit.append(event)


class SqliteStore(ChainedAuditReads):
    """The embedded store: one SQLite file under the state folder."""

    backend = "sqlite"

    def __init__(
        self, path: Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 5000
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = anyio.Lock()
        self._head_seq = 0
        self._head_hash = GENESIS
        self._checkpointer: Checkpointer | None = None
        # Write failures, for status: how many, the last one, and whether the
        # last write failed (cleared by the next one that commits).
        self.write_errors = 0
        self.last_write_error: tuple[datetime, str] | None = None
        self.writes_failing = False
        # Set when an integrity check found the file damaged: writes are refused.
        self.corrupt: str | None = None
        # The areas, reading the last committed state on the reader connection.
        self.gate = SqliteGate(self)
        self.execution = SqliteExecutions(self)
        self.ops = SqliteOperations(self)
        self.gov = SqliteGovernance(self)
        self.proactive = SqliteProactive(self, path)
        self.digest = SqliteDigest(self)

    # -- lifecycle ---------------------------------------------------------

    async def _connect(self, *, readonly: bool) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            if readonly:
                await conn.execute("PRAGMA query_only = ON")
            else:
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except BaseException:
            # aiosqlite runs each connection in a thread of its own: an
            # unclosed one keeps the process from exiting.
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return conn

    async def open(self) -> None:
        """Open both connections and apply pending migrations.

        :raises StoreError: the file cannot be opened, is not a database, or
            was written by a newer agentd.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._writer = await self._connect(readonly=False)
            await self._migrate()
            self._reader = await self._connect(readonly=True)
            await self._load_head()
            await self._writer.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}")
            self._checkpointer = Checkpointer(self.path, synchronous=self.synchronous)
            self._checkpointer.start()
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        except OSError as exc:
            await self.close()
            raise StoreError(f"cannot open database {self.path}: {exc.strerror}") from exc
        except StoreError:
            await self.close()
            raise

    async def close(self) -> None:
        """Close both connections; safe to call twice."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(checkpointer.stop)
        for name in ("_reader", "_writer"):
            conn = getattr(self, name)
            setattr(self, name, None)
            if conn is not None:
                with anyio.CancelScope(shield=True):
                    await conn.close()

    async def _user_version(self) -> int:
        assert self._writer is not None
        async with self._writer.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        assert self._writer is not None
        current = await self._user_version()
        if current > LATEST_SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} has schema version {current}, newer than this agentd "
                f"understands ({LATEST_SCHEMA_VERSION}); upgrade agentd or restore a backup"
            )
        pending = MIGRATIONS[current:]
        # A new file gets every migration in one transaction: one sync to disk
        # instead of one per migration (most of an empty start's store open).
        # An existing file gets them one by one, each committed on its own.
        steps = [pending] if current == 0 and pending else [[m] for m in pending]
        for step in steps:
            stamp = iso(datetime.now(UTC))
            body = "\n".join(
                f"{sql}\nINSERT OR REPLACE INTO meta(key, value) VALUES "
                f"('migration.{version:04d}', '{name} {stamp}');"
                for version, name, sql in step
            )
            script = f"BEGIN IMMEDIATE;\n{body}\nPRAGMA user_version = {step[-1][0]};\nCOMMIT;"
            try:
                await self._writer.executescript(script)
            except sqlite3.Error as exc:
                if self._writer.in_transaction:
                    await self._writer.execute("ROLLBACK")
                names = ", ".join(name for _, name, _ in step)
                raise StoreError(f"migration {names} failed: {exc}") from exc
        if pending:
            # A migration that rewrote a table left a log as large as the
            # table: copy it in now and give its space back to the disk.
            await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def _load_head(self) -> None:
        row = await self._read_one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        if row is not None:
            self._head_seq, self._head_hash = int(row[0]), str(row[1])

    async def info(self) -> StoreInfo:
        """Return backend facts for status output."""
        row = await self._read_one("PRAGMA user_version")
        journal = await self._read_one("PRAGMA journal_mode")
        return StoreInfo(
            backend=self.backend,
            location=str(self.path),
            schema_version=int(row[0]) if row else 0,
            latest_schema_version=LATEST_SCHEMA_VERSION,
            synchronous=self.synchronous,
            journal_mode=str(journal[0]) if journal else "?",
        )

    async def health_check(self) -> None:
        """Read through both connections.

        :raises StoreError: a connection does not answer.
        """
        try:
            await self._read_one("SELECT 1")
            assert self._writer is not None
            async with self._writer.execute("SELECT 1") as cur:
                await cur.fetchone()
        except (sqlite3.Error, AssertionError, ValueError) as exc:
            raise StoreError(f"store health check failed: {exc}") from exc

    # -- primitives used by every repository ---------------------------------

    @asynccontextmanager
    async def write(self, now: datetime | None = None) -> AsyncIterator[Tx]:
        """Run a block as one write transaction; audit events commit with it.

        :raises StoreError: the store is closed or SQLite refused the write.
        """
        async with self._lock:
            conn = self._writable()
            tx = Tx(conn, now or datetime.now(UTC), self.path)
            try:
                # Shielded: a cancel landing here must not leave the
                # connection inside a transaction nobody owns.
                with anyio.CancelScope(shield=True):
                    await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._write_failed(f"cannot start a transaction: {exc}") from exc
            try:
                yield tx
                records, head = self._audit_rows(tx)
                # One hand-off appends the audit records and commits. A commit
                # in flight must finish even if our caller is cancelled, or the
                # in-memory chain head would disagree.
                with anyio.CancelScope(shield=True):
                    await _on_thread(conn, lambda raw: _append_and_commit(raw, records, head))
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._write_failed(f"write failed: {exc}") from exc
                raise
            self._head_seq, self._head_hash = head
            self.writes_failing = False
            if self._checkpointer is not None:
                self._checkpointer.nudge()

    async def write_block(
        self, block: Callable[[BlockTransaction], T], now: datetime | None = None
    ) -> T:
        """Run ``block`` as one write transaction on the writer's thread, in one hand-off.

        BEGIN, the block (its reads and writes), the audit records and COMMIT
        all happen in that one call; see ``Store.write_block``.

        :raises StoreError: the store is closed or SQLite refused the write.
        """
        async with self._lock:
            conn = self._writable()
            tx_now = now or datetime.now(UTC)

            def run(raw: sqlite3.Connection) -> tuple[T, tuple[int, str]]:
                try:
                    raw.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise self._write_failed(f"cannot start a transaction: {exc}") from exc
                try:
                    tx = BlockTx(raw, tx_now)
                    result = block(tx)
                    # The head only changes under the lock this coroutine holds.
                    records, head = self._chain(tx._audit, tx_now)
                    _append_and_commit(raw, records, head)
                except BaseException:
                    if raw.in_transaction:
                        raw.execute("ROLLBACK")
                    raise
                return result, head

            try:
                # Shielded: the transaction finishes (or rolls back) whole on its
                # thread, and the in-memory chain head must follow what committed.
                with anyio.CancelScope(shield=True):
                    result, head = await _on_thread(conn, run)
            except sqlite3.Error as exc:
                raise self._write_failed(f"write failed: {exc}") from exc
            self._head_seq, self._head_hash = head
            self.writes_failing = False
            if self._checkpointer is not None:
                self._checkpointer.nudge()
            return result

    def _writable(self) -> aiosqlite.Connection:
        """Return the writer connection.

        :raises StoreError: the store is closed, or found corrupt (writes are refused).
        """
        if self.corrupt is not None:
            raise StoreError(
                f"writes are refused: database {self.path} is damaged ({self.corrupt}); "
                f"stop agentd and restore a backup",
                details={"corrupt": self.corrupt},
            )
        if self._writer is None:
            raise StoreError("store is closed")
        return self._writer

    def _write_failed(self, message: str) -> StoreError:
        """Count and log a failed write; return the error to raise."""
        self.write_errors += 1
        self.last_write_error = (datetime.now(UTC), message)
        self.writes_failing = True
        logger.error("store: {} ({})", message, self.path)
        return StoreError(message)

    async def quick_check(self, max_errors: int = 20) -> list[str]:
        """Run ``PRAGMA quick_check`` on a connection of its own; return the problems found.

        An empty list: the file's structure is sound. Runs on a worker thread
        (it reads the whole file) so the event loop and the other connections
        go on meanwhile.

        :raises StoreError: the check itself could not run.
        """

        def run() -> list[str]:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            try:
                rows = conn.execute(f"PRAGMA quick_check({int(max_errors)})").fetchall()
            finally:
                conn.close()
            found = [str(r[0]) for r in rows]
            return [] if found == ["ok"] else found

        try:
            return await anyio.to_thread.run_sync(run)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                # Damage can stop the check itself ("database disk image is malformed").
                return [str(exc)]
            raise StoreError(f"integrity check of {self.path} could not run: {exc}") from exc

    def _audit_rows(self, tx: Tx) -> tuple[list[tuple[Any, ...]], tuple[int, str]]:
        """Return the audit rows of ``tx``'s events, chained on the head, and the new head."""
        return self._chain(tx._audit, tx.now)

    def _chain(
        self, events: Sequence[AuditEvent], now: datetime
    ) -> tuple[list[tuple[Any, ...]], tuple[int, str]]:
        """Return the audit rows of ``events``, chained on the head, and the new head."""
        return chain_rows(events, self._head_seq, self._head_hash, iso(now))

    async def _read_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        conn = self._reader or self._writer
        if conn is None:
            raise StoreError("store is closed")
        # One hop to the connection's thread for execute + fetch + close: a cursor
        # left open between hops would hold a read snapshot that other readers on
        # this connection share, and they would miss commits made since.
        rows = await conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def read_all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a query on the reader connection."""
        conn = self._reader or self._writer
        if conn is None:
            raise StoreError("store is closed")
        try:
            return list(await conn.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc

    async def read_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """Run a query on the reader connection and return its first row."""
        try:
            return await self._read_one(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc

    # The committed-read side of :class:`~agentd.store.rows.SqlReader`, which
    # the areas read through (a transaction is the other side).

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """Read one row of the last committed state."""
        return await self.read_one(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read rows of the last committed state."""
        return await self.read_all(sql, params)

    async def fetch_each(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[sqlite3.Row]]:
        """Run each query, in order, on the last committed state; return the rows of each."""
        return [await self.read_all(sql, params) for sql, params in queries]

    # -- meta ------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        """Return a metadata value, or None."""
        row = await self.read_one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        async with self.write() as tx:
            await tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- audit -----------------------------------------------------------------

    async def append_audit(self, events: Sequence[AuditEvent], now: datetime) -> list[AuditRecord]:
        """Append events atomically, in order; return the stored records."""
        async with self.write(now) as tx:
            for ev in events:
                tx.audit(ev)
        return await self.audit_tail(len(events)) if events else []


def _append_and_commit(
    raw: sqlite3.Connection, records: list[tuple[Any, ...]], head: tuple[int, str]
) -> None:
    if records:
        raw.executemany(
            "INSERT INTO audit(seq, at, event, actor, subject, data, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            records,
        )
        raw.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('audit.head', ?)",
            (f"{head[0]}:{head[1]}",),
        )
    raw.execute("COMMIT")
