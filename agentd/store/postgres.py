"""PostgreSQL implementation of the store's foundations (psycopg 3, its async pool).

What several daemons sharing one database need from PostgreSQL itself, and
nothing home-made: migrations applied once under an advisory lock, however
many daemons start at the same moment; one audit chain, whose next sequence
number and previous hash are read under a transaction-level advisory lock
held only while the records are appended at the end of a transaction (so
all daemons write the trail in one order); committed reads on connections of
the pool.

Why psycopg 3 rather than asyncpg: it is the reference driver, with a
connection pool of its own (``psycopg_pool``), pipeline mode (several
statements in one round trip, which ``executemany`` uses), LISTEN/NOTIFY on
an async connection, and libpq's own connection strings and environment
(``PGPASSFILE``, ``sslmode``, service files) that operators already know.

Statements reach it in the store's portable form (``?`` parameters, ``?N``
for a numbered one); :func:`to_format` turns them into psycopg's ``%s``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from loguru import logger

from agentd.core.audit import (
    GENESIS,
    AuditEvent,
    AuditRecord,
    chain_rows,
)
from agentd.core.interactions import CompactInteraction
from agentd.core.store_url import redact_url
from agentd.core.timefmt import iso
from agentd.errors import StoreError
from agentd.store.audit_log import ChainedAuditReads, audit_record
from agentd.store.base import BlockTransaction, StoreInfo
from agentd.store.digest_sql import SqliteDigest
from agentd.store.exec_sql import SqliteExecutions, SqliteExecutionWrites
from agentd.store.gate_sql import SqliteGate, SqliteGateBlock, SqliteGateWrites
from agentd.store.gov_sql import SqliteGovernance, SqliteGovernanceWrites
from agentd.store.ops_sql import SqliteOperations, SqliteOperationWrites
from agentd.store.proactive_sql import (
    HISTORIES,
    KNOWN_KEYS,
    SqliteProactive,
    SqliteProactiveWrites,
    group_histories,
)
from agentd.store.rows import SqlReader, SqlWriter

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

#: Advisory lock keys (any two 32-bit numbers; these spell "agen" "td…").
MIGRATION_LOCK = (0x6167656E, 1)
AUDIT_LOCK = (0x6167656E, 2)
#: The gate batch's key (0x6167656E, 3) is ``agentd.store.gate_sql.GATE_LOCK``.

T = TypeVar("T")


def _pg_migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("agentd.store.pg_migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    return found


#: PostgreSQL's migrations: a baseline at the version SQLite had when
#: PostgreSQL came, then one per later version (the same numbers as SQLite's).
PG_MIGRATIONS = _pg_migrations()


_PARAM = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?(\d*)|%")


@functools.lru_cache(maxsize=1024)
def to_format(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """Return ``sql`` with psycopg's ``%s`` placeholders, and the parameter order.

    ``?`` becomes ``%s``; a literal ``%`` becomes ``%%`` (psycopg reads
    every ``%``, even quoted, as a placeholder);
    numbered ``?N`` parameters (SQLite's) become ``%s`` in the order they
    appear, and the second value lists which of the caller's parameters goes
    to each (``None`` when the statement numbers none). A ``?`` in quoted
    text is text, not a parameter.
    """
    order: list[int] = []
    numbered = False

    def swap(m: re.Match[str]) -> str:
        nonlocal numbered
        text = m.group(0)
        if text.startswith(("'", '"')):
            # psycopg reads every % as a placeholder, quoted or not.
            return text.replace("%", "%%")
        if text == "%":
            return "%%"
        if m.group(1):
            numbered = True
            order.append(int(m.group(1)) - 1)
        else:
            order.append(len(order))
        return "%s"

    out = _PARAM.sub(swap, sql)
    return out, (tuple(order) if numbered else None)


def _params(order: tuple[int, ...] | None, params: Sequence[Any]) -> Sequence[Any]:
    return params if order is None else [params[i] for i in order]


class PgRow(tuple[Any, ...]):
    """A result row by position or by column name (what the store's readers expect)."""

    _names: dict[str, int]

    def __new__(cls, names: dict[str, int], values: Sequence[Any]) -> PgRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        """Return the column names."""
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}
    return lambda values: PgRow(names, values)


class PgTx:
    """One write transaction on one connection of the pool; audit events commit with it."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection[Any], now: datetime, url: str) -> None:
        self._conn = conn
        self.now = now
        self._audit: list[AuditEvent] = []
        # The areas: the same classes as SQLite's, their SQL being portable.
        self.gate = SqliteGateWrites(self)
        self.execution = SqliteExecutionWrites(self)
        self.ops = SqliteOperationWrites(self)
        self.gov = SqliteGovernanceWrites(self)
        self.proactive = PgProactiveWrites(self, url)
        self.digest = SqliteDigest(self)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; return its cursor."""
        text, order = to_format(sql)
        return await self._conn.execute(text, _params(order, params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for many rows (pipelined by psycopg); return the rows changed."""
        text, order = to_format(sql)
        batch = [_params(order, r) for r in rows]
        if not batch:
            return 0
        async with self._conn.cursor() as cur:
            await cur.executemany(text, batch)
            # psycopg sums the rows each execution changed.
            return max(0, int(cur.rowcount))

    async def execute_each(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> None:
        """Run each ``(sql, rows)`` statement for its rows, in order."""
        for sql, rows in statements:
            await self.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[PgRow]:
        """Read rows, seeing this transaction's own writes."""
        text, order = to_format(sql)
        async with self._conn.cursor(row_factory=_row_factory) as cur:
            await cur.execute(text, _params(order, params))
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> PgRow | None:
        """Read one row, seeing this transaction's own writes."""
        return next(iter(await self.fetchall(sql, params)), None)

    async def fetch_each(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[PgRow]]:
        """Run each query in order and return the rows of each."""
        return [await self.fetchall(sql, params) for sql, params in queries]

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        self._audit.append(event)


class PgBlockTx:
    """The gate block's transaction: plain code on a worker thread, statements on the loop.

    psycopg's connection is asynchronous: the block (see ``Store.write_block``)
    runs on a worker thread, and each of its reads and writes (one
    ``fetch_each`` and one ``execute_each`` per batch) is handed back to the
    event loop, to run on the transaction's connection.
    """

    dialect = "postgresql"

    def __init__(self, tx: PgTx) -> None:
        self._tx = tx
        self.now = tx.now
        self.gate = SqliteGateBlock(self)

    def fetch_each(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[PgRow]]:
        """Run each query, in order; return the rows of each (sees the block's writes)."""
        return anyio.from_thread.run(self._tx.fetch_each, queries)

    def execute_each(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> None:
        """Run each statement for its rows, in order."""
        anyio.from_thread.run(self._tx.execute_each, statements)

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        self._tx.audit(event)


def _scan(
    url: str,
    since: float,
    keys_since: str,
    work: Callable[[set[str], Iterator[tuple[str, list[CompactInteraction]]]], T],
) -> T:
    """Run ``work`` over the interaction histories read on a connection of its own.

    A server-side cursor hands the rows over in slices, so one account's
    history is held at a time, as SQLite's scan does.
    """
    import psycopg

    with psycopg.connect(url) as conn:
        conn.read_only = True
        keys = {str(r[0]) for r in conn.execute(to_format(KNOWN_KEYS)[0], (keys_since,))}
        with conn.cursor(name="agentd_histories") as cur:
            cur.execute(to_format(HISTORIES)[0], (since,))
            return work(keys, group_histories(cur))


class PgProactive(SqliteProactive):
    """The proactive reads; the history scan reads on a connection of its own."""

    def __init__(self, db: SqlReader, url: str) -> None:
        super().__init__(db, Path())
        self._url = url

    async def scan_histories(
        self,
        since: float,
        keys_since: str,
        work: Callable[[set[str], Iterator[tuple[str, list[CompactInteraction]]]], T],
    ) -> T:
        """Run ``work`` on a worker thread over the interaction histories; return its result."""
        return await anyio.to_thread.run_sync(_scan, self._url, since, keys_since, work)


class PgProactiveWrites(SqliteProactiveWrites):
    """The proactive records inside a transaction; the scan as :class:`PgProactive`'s."""

    def __init__(self, tx: SqlWriter, url: str) -> None:
        super().__init__(tx, Path())
        self._url = url

    async def scan_histories(
        self,
        since: float,
        keys_since: str,
        work: Callable[[set[str], Iterator[tuple[str, list[CompactInteraction]]]], T],
    ) -> T:
        """Run ``work`` on a worker thread over the interaction histories; return its result."""
        return await anyio.to_thread.run_sync(_scan, self._url, since, keys_since, work)


class PostgresStore(ChainedAuditReads):
    """The store on a PostgreSQL database that several daemons may share (see the module)."""

    backend = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self._pool: AsyncConnectionPool[Any] | None = None
        # The last record this store appended (for verify_audit, as SQLite's).
        self._head_seq = 0
        self._head_hash = GENESIS
        # Write failures, for status, as SQLite's store counts them.
        self.write_errors = 0
        self.last_write_error: tuple[datetime, str] | None = None
        self.writes_failing = False
        # SQLite's damaged-file state; PostgreSQL keeps its own files sound.
        self.corrupt: str | None = None
        # One writer at a time in this process, as SQLite's store promises.
        self._lock = anyio.Lock()
        # The areas, reading the last committed state on connections of the pool.
        self.gate = SqliteGate(self)
        self.execution = SqliteExecutions(self)
        self.ops = SqliteOperations(self)
        self.gov = SqliteGovernance(self)
        self.proactive = PgProactive(self, url)
        self.digest = SqliteDigest(self)

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r})"

    @property
    def location(self) -> str:
        """Where the store is, without a password."""
        return redact_url(self.url)

    # -- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        """Open the pool and apply pending migrations (once, whoever else starts).

        :raises StoreError: the server cannot be reached, or its schema is newer.
        """
        import psycopg
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            timeout=self.connect_timeout_s,
            name="agentd",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout_s)
        except (PoolTimeout, psycopg.Error) as exc:
            await pool.close()
            raise StoreError(f"cannot reach PostgreSQL at {self.location}: {exc}") from exc
        self._pool = pool
        try:
            await self._migrate()
            await self._load_head()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _pool_or_fail(self) -> AsyncConnectionPool[Any]:
        if self._pool is None:
            raise StoreError("store is closed")
        return self._pool

    async def _migrate(self) -> None:
        import psycopg

        latest = PG_MIGRATIONS[-1][0]
        async with self._pool_or_fail().connection() as conn:
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version "
                        "(version BIGINT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                    )
                    cur = await conn.execute("SELECT max(version) FROM schema_version")
                    row = await cur.fetchone()
                    current = int(row[0]) if row and row[0] is not None else 0
                    if current > latest:
                        raise StoreError(
                            f"database {self.location} has schema version {current}, newer "
                            f"than this agentd understands ({latest}); upgrade agentd"
                        )
                    for version, name, sql in PG_MIGRATIONS:
                        if version <= current:
                            continue
                        await conn.execute(sql.encode())
                        await conn.execute(
                            "INSERT INTO schema_version VALUES (%s, %s, %s)",
                            (version, name, iso(datetime.now(UTC))),
                        )
            except psycopg.Error as exc:
                raise StoreError(f"migration of {self.location} failed: {exc}") from exc

    async def _load_head(self) -> None:
        row = await self.read_one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        if row is not None:
            self._head_seq, self._head_hash = int(row[0]), str(row[1])

    async def info(self) -> StoreInfo:
        """Return backend facts for status output."""
        version = await self.read_one("SELECT max(version) FROM schema_version")
        sync = await self.read_one("SHOW synchronous_commit")
        return StoreInfo(
            backend=self.backend,
            location=self.location,
            schema_version=int(version[0]) if version and version[0] is not None else 0,
            latest_schema_version=PG_MIGRATIONS[-1][0],
            synchronous=str(sync[0]) if sync else "?",
            journal_mode="wal",
        )

    async def health_check(self) -> None:
        """Run a trivial read.

        :raises StoreError: the server does not answer.
        """
        await self.read_one("SELECT 1")

    # -- transactions and reads -------------------------------------------------------

    @asynccontextmanager
    async def write(self, now: datetime | None = None) -> AsyncIterator[PgTx]:
        """Run a block as one transaction; its audit events are chained and commit with it.

        :raises StoreError: the server refused the transaction.
        """
        import psycopg

        async with self._lock:
            try:
                async with self._pool_or_fail().connection() as conn, conn.transaction():
                    tx = PgTx(conn, now or datetime.now(UTC), self.url)
                    yield tx
                    if tx._audit:
                        # A commit in flight finishes even if our caller is cancelled.
                        with anyio.CancelScope(shield=True):
                            head = await self._append(conn, tx._audit, tx.now)
                        self._head_seq, self._head_hash = head
            except psycopg.Error as exc:
                raise self._write_failed(f"write failed: {exc}") from exc
            self.writes_failing = False

    def _write_failed(self, message: str) -> StoreError:
        """Count and log a failed write; return the error to raise."""
        self.write_errors += 1
        self.last_write_error = (datetime.now(UTC), message)
        self.writes_failing = True
        logger.error("store: {} ({})", message, self.location)
        return StoreError(message)

    async def write_block(
        self, block: Callable[[BlockTransaction], T], now: datetime | None = None
    ) -> T:
        """Run ``block`` as one write transaction; return its result.

        The block runs on a worker thread with a :class:`PgBlockTx`, whose
        statements run on the transaction's connection; see
        ``Store.write_block``.

        :raises StoreError: the store is closed or PostgreSQL refused the write.
        """
        async with self.write(now) as tx:
            # Shielded: the block finishes (or fails) whole, as SQLite's does.
            with anyio.CancelScope(shield=True):
                result = await anyio.to_thread.run_sync(block, PgBlockTx(tx))
        return result

    async def _append(
        self, conn: psycopg.AsyncConnection[Any], events: Sequence[AuditEvent], now: datetime
    ) -> tuple[int, str]:
        """Chain ``events`` on the trail's head, read under the audit lock, and insert them.

        The lock is a transaction-level advisory lock: every daemon's
        transaction that appends takes it just before appending and holds it
        to its commit, so records go in one order and each links to the one
        before it, whichever daemon wrote that.
        """
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", AUDIT_LOCK)
        cur = await conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        row = await cur.fetchone()
        seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        rows, (seq, prev) = chain_rows(events, seq, prev, iso(now))
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO audit(seq, at, event, actor, subject, data, prev_hash, hash) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        await conn.execute(
            "INSERT INTO meta(key, value) VALUES ('audit.head', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (f"{seq}:{prev}",),
        )
        return seq, prev

    async def read_all(self, sql: str, params: Sequence[Any] = ()) -> list[PgRow]:
        """Read rows from the last committed state."""
        import psycopg

        text, order = to_format(sql)
        try:
            async with self._pool_or_fail().connection() as conn:
                async with conn.cursor(row_factory=_row_factory) as cur:
                    await cur.execute(text, _params(order, params))
                    rows = list(await cur.fetchall())
                await conn.rollback()
                return rows
        except psycopg.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc

    async def read_one(self, sql: str, params: Sequence[Any] = ()) -> PgRow | None:
        """Read the first row from the last committed state."""
        return next(iter(await self.read_all(sql, params)), None)

    # The committed-read side of :class:`~agentd.store.rows.SqlReader`, which
    # the areas read through (a transaction is the other side).

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> PgRow | None:
        """Read one row of the last committed state."""
        return await self.read_one(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[PgRow]:
        """Read rows of the last committed state."""
        return await self.read_all(sql, params)

    async def fetch_each(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[PgRow]]:
        """Run each query, in order, on one snapshot of the committed state."""
        import psycopg

        try:
            async with self._pool_or_fail().connection() as conn:
                await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
                try:
                    return await PgTx(conn, datetime.now(UTC), self.url).fetch_each(queries)
                finally:
                    await conn.rollback()
                    await conn.set_isolation_level(None)
        except psycopg.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc

    # -- meta ------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        """Return a metadata value, or None."""
        row = await self.read_one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value."""
        async with self.write() as tx:
            await tx.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- audit -----------------------------------------------------------------------

    async def append_audit(self, events: Sequence[AuditEvent], now: datetime) -> list[AuditRecord]:
        """Append events atomically, in order; return the stored records."""
        if not events:
            return []
        async with self.write(now) as tx:
            for ev in events:
                tx.audit(ev)
        last = self._head_seq
        rows = await self.read_all(
            "SELECT seq, at, event, actor, subject, data, prev_hash, hash FROM audit "
            "WHERE seq > ? AND seq <= ? ORDER BY seq",
            (last - len(events), last),
        )
        return [audit_record(r) for r in rows]


class ChangeListener:
    """Wait for the state changes other daemons announce (``LISTEN``, psycopg's ``notifies``).

    One connection of its own, outside the pool, in autocommit. :meth:`wait`
    returns the payloads that arrived within ``timeout_s`` (empty: none came,
    or the connection is lost and is opened again at the next wait; the
    caller's poll covers the gap).
    """

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        import psycopg
        from psycopg import sql

        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self._conn = conn
        return self._conn

    async def wait(self, timeout_s: float) -> list[str]:
        """Return the payloads announced within ``timeout_s`` (at least the first one)."""
        import anyio
        import psycopg

        got: list[str] = []
        try:
            conn = await self._connect()
            async for note in conn.notifies(timeout=timeout_s, stop_after=1):
                got.append(note.payload)
            # Whatever else arrived with it, without waiting again.
            async for note in conn.notifies(timeout=0.0):
                got.append(note.payload)
        except (psycopg.Error, OSError):
            await self.close()
            await anyio.sleep(timeout_s)
        return got

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
