"""``agentd serve`` processes on hostile ground: a permissive umask, a second daemon on
the same state folder, a write another process broke, a damaged database file."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd.supervise import DaemonFailed, DaemonProcess
from tests.e2e.test_daemon_process import agentctl

BIN = Path(sys.executable).parent


def _accounts_csv(folder: Path, n: int) -> Path:
    path = folder / "accounts.csv"
    rows = [
        f"acct{i:05d},t1,Account number {i} with a longer name,discovery,ACTIVE" for i in range(n)
    ]
    path.write_text("id,tenant,name,stage,trusted_mode\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The shell's usual umask (022) for the daemons started in the test."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_files_are_not_world_readable_under_umask_022(
    daemon_env: dict[str, str], short_tmp: Path, permissive_umask: None
) -> None:
    proc = DaemonProcess(daemon_env, log_path=short_tmp / "d.log")
    try:
        proc.wait_ready(30)
        assert agentctl("accounts", "import", str(_accounts_csv(short_tmp, 3))).returncode == 0
        state = Path(daemon_env["AGENTD_STATE_DIR"])
        logs = Path(daemon_env["AGENTD_LOG_DIR"])
        created = [state, logs, *state.iterdir(), *logs.iterdir()]
        names = {p.name for p in created}
        assert {"agentd.sqlite3", "agentd.sqlite3-wal", "agentd.jsonl"} <= names, names
        for path in created:
            mode = stat.S_IMODE(path.lstat().st_mode)
            assert mode & 0o007 == 0, f"{path} has mode {mode:04o}"
    finally:
        assert proc.stop() == 0
        proc.close()


def test_second_daemon_on_the_same_state_folder_is_refused(
    daemon_env: dict[str, str], short_tmp: Path
) -> None:
    first = DaemonProcess(daemon_env, log_path=short_tmp / "first.log")
    try:
        first.wait_ready(30)
        other = {**daemon_env, "AGENTD_SOCKET_PATH": str(short_tmp / "other.sock")}
        second = DaemonProcess(other, log_path=short_tmp / "second.log")
        try:
            with pytest.raises(DaemonFailed):
                second.wait_ready(30)
            assert second.proc.wait(10) != 0
        finally:
            second.close()
        said = (short_tmp / "second.log").read_text()
        assert f"in use by agentd pid {first.pid}" in said, said
        assert str(Path(daemon_env["AGENTD_STATE_DIR"]) / "agentd.lock") in said
        assert not (short_tmp / "other.sock").exists()

        # The first one goes on writing, and says nothing is wrong.
        imported = agentctl("accounts", "import", str(_accounts_csv(short_tmp, 2)))
        assert imported.returncode == 0, imported.stderr
        status = json.loads(agentctl("--json", "status").stdout)
        assert status["state"] == "running"
        assert status["problems"] == [] and status["store"]["write_errors"] == 0
        verify = agentctl("--json", "audit", "verify")
        assert verify.returncode == 0 and json.loads(verify.stdout)["intact"], verify.stdout
    finally:
        assert first.stop() == 0
        first.close()
    # The lock goes with the process: a daemon starts again on the folder.
    again = DaemonProcess(daemon_env, log_path=short_tmp / "again.log")
    try:
        again.wait_ready(30)
    finally:
        assert again.stop() == 0
        again.close()


def test_a_failing_store_write_is_logged_and_shown_by_status(
    daemon_env: dict[str, str], short_tmp: Path
) -> None:
    proc = DaemonProcess(daemon_env, log_path=short_tmp / "d.log")
    try:
        proc.wait_ready(30)
        db = Path(daemon_env["AGENTD_STATE_DIR"]) / "agentd.sqlite3"
        # Another writer (what a second daemon did) takes the next audit record number.
        with sqlite3.connect(db) as other:
            other.execute(
                "INSERT INTO audit(seq, at, event, actor, subject, data, prev_hash, hash) "
                "SELECT seq + 1, at, event, actor, subject, data, hash, hash FROM audit "
                "ORDER BY seq DESC LIMIT 1"
            )
        failed = agentctl("accounts", "import", str(_accounts_csv(short_tmp, 2)))
        # The audit table's trigger refuses a record on a number already taken.
        refusal = "audit trail is append-only"
        assert failed.returncode == 1 and refusal in failed.stderr

        status = json.loads(agentctl("--json", "status").stdout)
        assert status["store"]["write_errors"] == 1
        assert refusal in status["store"]["last_write_error"]["error"]
        assert any(refusal in p for p in status["problems"]), status["problems"]
        human = agentctl("status").stdout
        assert "PROBLEMS" in human and refusal in human
        log = Path(daemon_env["AGENTD_LOG_DIR"]) / "agentd.jsonl"
        errors = [
            json.loads(line)["record"]
            for line in log.read_text().splitlines()
            if '"ERROR"' in line and refusal in line
        ]
        assert errors and errors[0]["message"].startswith("store: write failed")
    finally:
        proc.stop()
        proc.close()


def _damage(db: Path, table: str, pages: int = 3) -> list[int]:
    """Overwrite ``pages`` of ``table``'s pages in the middle of the file with garbage."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        numbers = [
            int(r[0])
            for r in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
                (table,),
            )
        ]
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    assert len(numbers) >= pages + 2, numbers
    middle = len(numbers) // 2
    chosen = numbers[middle : middle + pages]
    with db.open("r+b") as f:
        for number in chosen:
            f.seek((number - 1) * page_size)
            f.write(os.urandom(page_size))
    return chosen


def test_a_damaged_database_is_refused_at_start(
    daemon_env: dict[str, str], short_tmp: Path
) -> None:
    proc = DaemonProcess(daemon_env, log_path=short_tmp / "d.log")
    try:
        proc.wait_ready(30)
        imported = agentctl("accounts", "import", str(_accounts_csv(short_tmp, 3000)))
        assert imported.returncode == 0, imported.stderr
    finally:
        assert proc.stop() == 0
        proc.close()
    db = Path(daemon_env["AGENTD_STATE_DIR"]) / "agentd.sqlite3"
    _damage(db, "accounts")
    before = db.read_bytes()
    result = subprocess.run(
        [str(BIN / "agentd"), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **daemon_env},
    )
    assert result.returncode == 1
    assert f"database {db} is damaged" in result.stderr, result.stderr
    assert "refusing to start" in result.stderr
    assert db.read_bytes() == before, "nothing may be written to a damaged store"
    assert not Path(daemon_env["AGENTD_SOCKET_PATH"]).exists()
