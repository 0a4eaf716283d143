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


def _acme(short_tmp: Path) -> None:
    accounts = _jsonl(
        short_tmp / "accounts.jsonl",
        {"id": "acme", "tenant": "t1", "name": "Acme", "stage": "discovery"},
    )
    assert agentctl("accounts", "import", accounts).returncode == 0


def test_a_skipped_line_is_named_once(daemon: object, short_tmp: Path) -> None:
    _acme(short_tmp)
    # A bad line is reported once with its line number, not "line 2: i.jsonl:2: ...".
    (short_tmp / "i.jsonl").write_text(
        json.dumps({"id": "i1", "account": "acme", "kind": "fax", "direction": "in", "at": "x"})
        + "\n"
    )
    skipped = agentctl("interactions", "import", str(short_tmp / "i.jsonl"), "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr
    line = skipped.stdout.splitlines()[1]
    assert line.startswith("  skipped i.jsonl:1: kind: unknown kind 'fax'"), line
    assert line.count(":1:") + line.count("line 1") == 1, line


def test_a_consent_without_permissions_shows_every_permission(
    daemon: object, short_tmp: Path
) -> None:
    _acme(short_tmp)
    # No permissions named: every permission, and the answer says so.
    granted = agentctl("--json", "consent", "grant", "acme", "backoffice")
    assert granted.returncode == 0, granted.stderr
    assert json.loads(granted.stdout)["permissions"] == ["read", "write"]
    assert 'permissions: ["read","write"]' in agentctl("consent", "grant", "acme", "x").stdout


def test_a_goal_end_is_shown_as_the_day_given(daemon: object) -> None:
    # --end names the goal's last day: shown as that day, not the next midnight.
    added = agentctl(
        "goals",
        "add",
        "--tenant",
        "t1",
        "--type",
        "activity",
        "--target",
        "5",
        "--start",
        "2026-11-01",
        "--end",
        "2026-12-01",
    )
    assert added.returncode == 0, added.stderr
    assert "end:" in added.stdout and "2026-12-01 (the last day, inclusive; UTC)" in added.stdout
    assert "2026-12-02" not in added.stdout
    listed = agentctl("goals", "--all").stdout
    assert "LAST_DAY" in listed and "2026-12-01" in listed and "2026-12-02" not in listed
    as_json = json.loads(agentctl("--json", "goals", "--all").stdout)["goals"][0]
    assert (as_json["end"][:10], as_json["last_day"]) == ("2026-12-02", "2026-12-01")
