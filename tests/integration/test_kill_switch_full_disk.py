"""The kill switch on a full disk: it takes effect in memory, and is saved once it can be.

The state folder lives on a small tmpfs that the test fills up, so the store's
writes fail with SQLite's real "database or disk is full".
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.integration.conftest import StartDaemon
from tests.integration.gov_support import audit_events, configure


@pytest.fixture
def small_disk(short_tmp: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (needs the privilege to mount)."""
    mount = short_tmp / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, db: Path) -> Path:
    """Give the WAL back to the disk, then take every free byte; return the filler file.

    Blocking: run it on a worker thread. The daemon serves in this process, and
    its event loop must go on meanwhile, so that a write a background task has under way
    commits and lets the checkpoint finish.
    """
    with contextlib.closing(sqlite3.connect(db)) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):  # then what is left, a smaller piece at a time
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size) == size:
                    pass
    finally:
        os.close(fd)
    with pytest.raises(OSError) as full:
        (disk / "probe").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


async def test_kill_switch_on_a_full_disk_holds_in_memory_then_is_saved(
    daemon: StartDaemon, short_tmp: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_STATE_DIR", str(small_disk / "state"))
    monkeypatch.setenv("AGENTD_SOCKET_PATH", str(short_tmp / "s.sock"))
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        assert (await d.check())["decision"] == "AUTO_EXECUTE"
        filler = await anyio.to_thread.run_sync(fill, small_disk, settings.database_path)

        on = await d.ask("kill_switch.on", {"reason": "runaway agent"})
        assert on["kill_switch"] is True and on["saved"] is False
        assert "in memory" in on["message"] and "full" in on["message"]
        # In effect although not saved: the gate stops auto-execution.
        assert (await d.check())["reason"] == "KILL_SWITCH"
        status = await d.ask("status")
        assert status["governance"]["kill_switch"] is True
        assert status["governance"]["kill_switch_saved"] is False
        assert any("kill switch is on in memory only" in p for p in status["problems"])
        assert any("store writes are failing" in p for p in status["problems"])
        assert "DEGRADED" in d.app.status_line() and "KILL SWITCH ON" in d.app.status_line()
        # Off cannot be decided while on is not on record: it stays on.
        with pytest.raises(Exception, match="stays on"):
            await d.ask("kill_switch.off", {"reason": "too early"})
        assert (await d.check())["reason"] == "KILL_SWITCH"

        # Space again: governance's monitor task saves it.
        filler.unlink()
        ran = await d.ask("task.run", {"name": "breaker_monitor", "wait": True})
        assert ran["ok"] and ran["result"].startswith("held kill switch saved"), ran
        status = await d.ask("status")
        assert status["governance"]["kill_switch_saved"] is True
        assert not any("kill switch" in p for p in status["problems"])
        records = await audit_events(d.app, "KILL_SWITCH_CHANGED")
        assert [(r.actor, r.data["on"], r.data["reason"]) for r in records] == [
            (records[0].actor, True, "runaway agent")
        ]
    # Saved for real: a restart keeps it on.
    async with daemon(settings) as d:
        assert (await d.ask("level"))["kill_switch"] is True
        assert (await d.check())["reason"] == "KILL_SWITCH"
