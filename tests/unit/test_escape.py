"""Values from outside become inert Markdown text (digest, governance report)."""

from __future__ import annotations

import pytest

from agentd.core.escape import markdown_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Acme Corp", "Acme Corp"),
        ("meta_update", "meta_update"),  # an underscore inside a word opens nothing
        ("error rate 7% > 5%", "error rate 7% > 5%"),
        ("<script>alert(1)</script>", "&lt;script>alert(1)&lt;/script>"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)>"),
        ("<https://evil.example>", "&lt;https://evil.example>"),  # no autolink
        ("[click here](https://evil.example)", "\\[click here\\](https://evil.example)"),
        ("![](https://tracker.example/p.png)", "!\\[\\](https://tracker.example/p.png)"),
        ("[x][ref]", "\\[x\\]\\[ref\\]"),
        ("AT&T &#8238;gnp.exe", "AT&amp;T &amp;#8238;gnp.exe"),  # no entity survives
        ("**urgent** _now_ ~~old~~", "\\*\\*urgent\\*\\* \\_now\\_ \\~\\~old\\~\\~"),
        ("`rm -rf /`", "\\`rm -rf /\\`"),
        ("a | b", "a \\| b"),
        ("C:\\temp\\[x]", "C:\\\\temp\\\\\\[x\\]"),
        ("line one\nline two\r\n\tend", "line one line two end"),
        (
            "bell\x07 esc\x1b[2J c1\x9b rlo\u202e",
            "bell\\\\x07 esc\\\\x1b\\[2J c1\\\\x9b rlo\\\\u202e",
        ),
        (42, "42"),
    ],
)
def test_markdown_text(value: object, expected: str) -> None:
    assert markdown_text(value) == expected


def test_nothing_live_survives_any_mix() -> None:
    hostile = "<b>[a](b)</b>![c](d)&lt;<!-- x -->`e`*f*\x1b|"
    text = markdown_text(hostile)
    assert "<" not in text and "\x1b" not in text
    assert "](" not in text.replace("\\](", "")  # every bracket is escaped
    assert "|" not in text.replace("\\|", "")
