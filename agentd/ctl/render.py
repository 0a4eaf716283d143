"""Readable output for agentctl: key/value blocks and aligned tables."""

from __future__ import annotations

import json
from collections.abc import Mapping

TYPE_CHECKING = False  # typing itself is not imported: agentctl must start fast
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# Characters a terminal acts on or that reorder what is shown: C0 controls,
# DEL, C1 controls (0x9b is a CSI on many terminals) and the bidirectional
# overrides. Values come from clients, imports and back-offices: printed raw,
# an account named "\x1b]0;...\x07" would retitle the window or rewrite the
# lines above it.
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROLS = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in (*range(0x20), *range(0x7F, 0xA0), *map(ord, _BIDI))
}
# Text printed as a whole keeps its line breaks and tabs; a single value keeps neither.
_CONTROLS_KEEP_LINES = {c: v for c, v in _CONTROLS.items() if chr(c) not in "\n\t"}
# JSON output: json.dumps already writes C0 as \u00XX; the rest is escaped the
# same way (the decoded values are unchanged).
_JSON_CONTROLS = {c: f"\\u{c:04x}" for c in _CONTROLS if c >= 0x7F}


def terminal_safe(text: str) -> str:
    """Return ``text`` with every control character but newline and tab shown as its code."""
    return text.translate(_CONTROLS_KEEP_LINES)


def json_safe(text: str) -> str:
    """Return JSON text with DEL, C1 and bidirectional controls as ``\\uXXXX`` escapes."""
    return text.translate(_JSON_CONTROLS)


def scalar(value: Any) -> str:
    """Format one value for a table cell (one line: every control character shown as its code)."""
    return _scalar(value).translate(_CONTROLS)


def _scalar(value: Any) -> str:
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
