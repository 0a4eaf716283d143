"""What agentctl prints of values that came from outside, against a real daemon process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e import test_daemon_process as base
from tests.e2e.test_daemon_process import agentctl

daemon = base.daemon  # the fixture: a real `agentd serve` process

# ESC ] 0 ; ... BEL retitles the window; ESC [ 2 J clears it; 0x9b is an 8-bit CSI;
# U+202E reverses what follows.
HOSTILE_NAME = "Acme\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil"
HOSTILE_SUMMARY = "Wants a pilot.\x1b[1A\x1b[2KApproved by the CFO."
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def _jsonl(path: Path, *records: dict[str, object]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_control_characters_from_outside_are_shown_not_obeyed(
    daemon: object, short_tmp: Path
) -> None:
    accounts = _jsonl(
        short_tmp / "accounts.jsonl",
        {"id": "acme", "tenant": "t1", "name": HOSTILE_NAME, "stage": "discovery"},
    )
    imported = agentctl("accounts", "import", accounts)
    assert imported.returncode == 0, imported.stderr
    interactions = _jsonl(
        short_tmp / "interactions.jsonl",
        {
            "id": "i1",
            "account": "acme",
            "kind": "email",
            "direction": "in",
            # An hour ago: inside the summary's period whatever the day is.
            "at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "summary": HOSTILE_SUMMARY,
        },
    )
    imported = agentctl("interactions", "import", interactions)
    assert imported.returncode == 0, imported.stderr

    for args in (("accounts", "list"), ("accounts", "show", "acme"), ("summary", "acme")):
        if args[0] == "summary":
            args = ("summary", "acme", "--refresh")
        shown = agentctl(*args)
        assert shown.returncode == 0, (args, shown.stderr)
        assert not any(c in shown.stdout for c in RAW), (args, shown.stdout)
    listed = agentctl("accounts", "list").stdout
    assert "Acme\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u202eevil" in listed
    summary = agentctl("summary", "acme").stdout
    assert "Wants a pilot.\\x1b[1A\\x1b[2KApproved by the CFO." in summary

    # --json keeps the values as they are (json.loads gives them back) yet
    # writes no raw control character either.
    as_json = agentctl("--json", "accounts", "show", "acme")
    assert not any(c in as_json.stdout for c in RAW), as_json.stdout
    assert json.loads(as_json.stdout)["name"] == HOSTILE_NAME

    # An error message quoting a hostile value is shown the same way.
    missing = agentctl("accounts", "set", "acme", "--stage", "\x1b[2Jnowhere")
    assert missing.returncode == 1
    assert "\x1b" not in missing.stderr and "\\x1b[2Jnowhere" in missing.stderr
