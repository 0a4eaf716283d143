"""Row-shaped SQL shared by the store modules: insert a dict, update columns, read a row.

Table and column names come from the calling module, never from a client;
values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentd.store.base import Row, Transaction


async def insert_row(tx: Transaction, table: str, values: Mapping[str, Any]) -> None:
    """Insert one row whose columns are the keys of ``values``."""
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    await tx.execute(f"INSERT INTO {table}({columns}) VALUES ({marks})", list(values.values()))


async def update_row(
    tx: Transaction, table: str, key_column: str, key: Any, changes: Mapping[str, Any]
) -> None:
    """Set ``changes`` on the row of ``table`` whose ``key_column`` is ``key``."""
    sets = ", ".join(f"{column} = ?" for column in changes)
    await tx.execute(f"UPDATE {table} SET {sets} WHERE {key_column} = ?", [*changes.values(), key])


def row_dict(row: Row) -> dict[str, Any]:
    """Return a row as a dict of column name to value."""
    return {k: row[k] for k in row.keys()}
