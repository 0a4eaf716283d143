"""Readable output for agentctl: key/value blocks and aligned tables."""

from __future__ import annotations

import json
from collections.abc import Mapping

TYPE_CHECKING = False  # typing itself is not imported: agentctl must start fast
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def scalar(value: Any) -> str:
    """Format one value for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def kv(data: Mapping[str, Any], indent: int = 0) -> str:
    """Format a mapping as aligned ``key: value`` lines (nested mappings indented)."""
    if not data:
        return ""
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            lines.append(" " * indent + f"{key}:")
            lines.append(kv(value, indent + 2))
        else:
            lines.append(" " * indent + f"{key + ':':<{width + 1}} {scalar(value)}")
    return "\n".join(lines)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], empty: str = "(none)") -> str:
    """Format rows as an aligned table with a header."""
    if not rows:
        return empty
    cells = [[scalar(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    head = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    body = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join([head.rstrip(), *body])
