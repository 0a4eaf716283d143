"""Governance through the real daemon process and agentctl: the kill switch survives a
restart, and a breaker trip shows in ``agentctl status`` and systemd's STATUS= line."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from agentd.supervise import DaemonProcess
from tests.e2e.test_daemon_process import agentctl


def store_failed_outcomes(db: Path) -> None:
    """Write nine successful and one failed execution, as a crashed engine would leave them."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    with sqlite3.connect(db) as conn:
        for n in range(10):
            conn.execute(
                "INSERT INTO executions(id, kind, intent_id, tenant, account, action_type, "
                "executor, risk, autonomous, state, created_at, updated_at, started_at, "
                "finished_at) VALUES (?, 'change', ?, 't1', 'acme', 'send_chat_message', "
                "'message', 'LOW', 1, ?, ?, ?, ?, ?)",
                (f"exe_{n}", f"int_{n}", "failed" if n == 9 else "succeeded", now, now, now, now),
            )
    conn.close()


def ok(*args: str) -> str:
    result = agentctl(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_kill_switch_persists_and_a_trip_shows_in_status(
    daemon_env: dict[str, str], short_tmp: Path
) -> None:
    first = DaemonProcess(daemon_env, log_path=short_tmp / "g.log")
    try:
        first.wait_ready(30)
        assert "kill switch on" in ok("kill-switch", "on", "--reason", "e2e drill")
        assert json.loads(ok("--json", "level"))["kill_switch"] is True
        missing = agentctl("kill-switch", "off")
        assert missing.returncode == 2 and "--reason" in missing.stderr
        bad = agentctl("--json", "level", "set", "L5", "--reason", "x")
        assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["name"] == "INVALID_ARGUMENT"
        assert first.stop() == 0
    finally:
        first.close()

    store_failed_outcomes(Path(daemon_env["AGENTD_STATE_DIR"]) / "agentd.sqlite3")
    second = DaemonProcess(daemon_env, log_path=short_tmp / "g.log")
    try:
        second.wait_ready(30)
        status = json.loads(ok("--json", "status"))["governance"]
        assert status["kill_switch"] is True, "the kill switch survived the restart"
        assert status["breakers_tripped"] == ["high_error_rate"]
        assert "high_error_rate" in ok("status")
        assert second.saw("STATUS")
        statuses = [m["STATUS"] for m in second.messages if "STATUS" in m]
        assert any(
            "KILL SWITCH ON" in s and "breaker tripped: high_error_rate" in s for s in statuses
        )
        assert "high_error_rate" in ok("breaker", "status")

        assert "reset high_error_rate" in ok(
            "breaker", "reset", "high_error_rate", "--reason", "drill over"
        )
        assert "kill switch off" in ok("kill-switch", "off", "--reason", "drill over")
        level = json.loads(ok("--json", "level"))
        assert (level["kill_switch"], level["breakers_tripped"], level["level"]) == (
            False,
            [],
            "L3",
        )
        assert "readiness" in ok("governance", "readiness")
        assert "executions:    succeeded 9, failed 1" in ok("metrics", "--since", "1h")
        assert second.stop() == 0
    finally:
        second.close()
