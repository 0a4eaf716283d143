"""Make text that came from outside inert inside a Markdown document.

Account names, rationales, interaction summaries, workflow names, error
messages: anything a client, an import or a back-office supplied can end up
in the digest or the governance report. Those files are read rendered (a
Markdown viewer, a mail client, a wiki), where ``<script>``, ``<img
onerror=...>``, ``[click](https://evil.example)`` or ``![](https://tracker)``
would become live HTML, a disguised link or an image fetched on opening.
:func:`markdown_text` turns such a value into text that renders as exactly
the characters it held, on one line.
"""

from __future__ import annotations

# No raw tag, comment or autolink can start without "<", and no entity (one
# could spell a bidirectional override) without "&". A lone ">" is inert
# inside a line, so "error rate 7% > 5%" stays readable in the file.
_HTML = {"&": "&amp;", "<": "&lt;"}
# Characters that open Markdown inline constructs: code spans, emphasis,
# strike-through, links and images ("[" and "]"; "!" is inert without them),
# and "|", which would end a table cell. "\\" first so added escapes stay single.
_ALWAYS = "\\`*[]|~"


def _visible_control(char: str) -> str:
    # A control character (ESC, BEL, DEL, C1, bidirectional overrides) shown as
    # its code, so it can neither drive a terminal that prints the file nor hide.
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _is_control(char: str) -> bool:
    code = ord(char)
    return (
        code < 0x20 or 0x7F <= code < 0xA0 or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069
    )


def markdown_text(value: object) -> str:
    """Return ``value`` as Markdown text that renders literally, on one line.

    Whitespace runs (newlines included) become one space; other control
    characters are written as ``\\xNN``; ``&`` and ``<`` become HTML entities;
    the characters that start code, emphasis, links and images, and the
    table separator ``|``, are backslash-escaped. An underscore inside a word
    (``meta_update``) cannot start emphasis and is left as it is.
    """
    text = " ".join(str(value).split())
    if any(_is_control(c) for c in text):
        text = "".join(_visible_control(c) if _is_control(c) else c for c in text)
    out = []
    last = len(text) - 1
    for i, char in enumerate(text):
        if char in _HTML:
            out.append(_HTML[char])
        elif char in _ALWAYS:
            out.append("\\" + char)
        elif char == "_" and not (0 < i < last and text[i - 1].isalnum() and text[i + 1].isalnum()):
            out.append("\\_")
        else:
            out.append(char)
    return "".join(out)
