"""The SQL kit of the SQLite store's area classes: one reader shape, and row-shaped SQL.

:class:`SqlReader` is what every read of an area class runs on: the store's
committed-read side and a write transaction both implement it, so each read
exists once and serves a command (last committed state) and a transaction
(its own writes included) alike. :class:`SqlWriter` adds the writes.

This is the SQLite adapter's inside: statements are SQLite's dialect with
``?`` parameters. Nothing outside ``agentd/store/`` sees it: the services
speak to the store through the operations declared in :mod:`agentd.store.api`.

Table and column names come from the calling module, never from a client;
values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from agentd.core.audit import AuditEvent


class Row(Protocol):
    """A result row: by column name or by position."""

    def __getitem__(self, key: int | str) -> Any: ...

    def keys(self) -> list[str]:
        """Return the column names."""
        ...


class SqlReader(Protocol):
    """Run queries: on the last committed state, or inside a transaction."""

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Read one row."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Row]:
        """Read rows."""
        ...

    async def fetch_each(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> Sequence[Sequence[Row]]:
        """Run each ``(sql, params)`` query in order and return the rows of each."""
        ...


class SqlWriter(SqlReader, Protocol):
    """A write transaction's statements (its reads see its own writes)."""

    now: datetime
    #: ``sqlite`` or ``postgresql``: the few statements that differ (row locks) ask.
    dialect: str

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; return its cursor (``rowcount``)."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for many rows; return how many rows it changed."""
        ...

    async def execute_each(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> None:
        """Run each ``(sql, rows)`` statement for its rows, in order."""
        ...

    def audit(self, event: AuditEvent) -> None:
        """Append an audit event when the transaction commits."""
        ...


class SqlBlock(Protocol):
    """A write transaction's statements for plain code on the writer's thread."""

    #: ``sqlite`` or ``postgresql`` (see :attr:`SqlWriter.dialect`).
    dialect: str

    def fetch_each(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> Sequence[Sequence[Row]]:
        """Run each query, in order; return the rows of each (sees the block's writes)."""
        ...

    def execute_each(self, statements: Sequence[tuple[str, Iterable[Sequence[Any]]]]) -> None:
        """Run each statement for its rows, in order."""
        ...


async def insert_row(tx: SqlWriter, table: str, values: Mapping[str, Any]) -> None:
    """Insert one row whose columns are the keys of ``values``."""
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    await tx.execute(f"INSERT INTO {table}({columns}) VALUES ({marks})", list(values.values()))


async def update_row(
    tx: SqlWriter, table: str, key_column: str, key: Any, changes: Mapping[str, Any]
) -> None:
    """Set ``changes`` on the row of ``table`` whose ``key_column`` is ``key``."""
    sets = ", ".join(f"{column} = ?" for column in changes)
    await tx.execute(f"UPDATE {table} SET {sets} WHERE {key_column} = ?", [*changes.values(), key])


def skip_locked(tx: SqlWriter | SqlBlock, of: str = "") -> str:
    """Return the clause that claims the selected rows for ``tx`` alone.

    On PostgreSQL, where several daemons write at once, ``FOR UPDATE SKIP
    LOCKED``: the rows are locked until ``tx`` ends, and another daemon's
    claim passes over them instead of waiting. SQLite has one writer at a
    time, so the transaction already holds every row it reads: nothing.
    ``of`` names the table whose rows are locked when the query joins others.
    """
    if tx.dialect != "postgresql":
        return ""
    return f" FOR UPDATE OF {of} SKIP LOCKED" if of else " FOR UPDATE SKIP LOCKED"


def row_dict(row: Row) -> dict[str, Any]:
    """Return a row as a dict of column name to value."""
    return {k: row[k] for k in row.keys()}
