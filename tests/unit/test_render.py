"""agentctl's renderer shows control characters instead of sending them to the terminal."""

from __future__ import annotations

import json

from agentd.ctl import render

HOSTILE = "a\x1b[2Jb\x07c\x9bd\u202ee\r\nf"


def test_cells_and_values_show_every_control_character_on_one_line() -> None:
    table = render.table([{"name": HOSTILE, "n": 1}], ("name", "n"))
    assert table.splitlines()[1] == "a\\x1b[2Jb\\x07c\\x9bd\\u202ee\\x0d\\x0af  1"
    assert render.kv({"name": HOSTILE}) == "name: a\\x1b[2Jb\\x07c\\x9bd\\u202ee\\x0d\\x0af"
    assert render.scalar({"k": "\x1b"}) == '{"k":"\\u001b"}'  # JSON's own escape


def test_whole_text_keeps_its_lines_and_tabs() -> None:
    assert render.terminal_safe("one\n\ttwo\x1b]0;x\x07") == "one\n\ttwo\\x1b]0;x\\x07"


def test_json_output_escapes_c1_and_bidi_but_decodes_to_the_same_values() -> None:
    value = {"name": HOSTILE, "plain": "café ✓"}
    text = render.json_safe(json.dumps(value, ensure_ascii=False))
    assert not any(c in text for c in "\x1b\x07\x9b\u202e\r")
    assert "café ✓" in text  # printable non-ASCII stays as it is
    assert json.loads(text) == value
