"""``agentd serve`` as a subprocess, driven by ``agentctl`` as a person would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentd.supervise import DaemonProcess

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def agentctl(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentctl"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def daemon(daemon_env: dict[str, str], short_tmp: Path):  # type: ignore[no-untyped-def]
    proc = DaemonProcess(daemon_env, log_path=short_tmp / "daemon.log")
    try:
        proc.wait_ready(30)
        yield proc
    finally:
        proc.stop()
        proc.close()


def test_serve_status_and_clean_stop(daemon: DaemonProcess, daemon_env: dict[str, str]) -> None:
    result = agentctl("--json", "status")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["pid"] == daemon.pid
    assert status["state"] == "running"
    assert status["schema_version"] >= 1
    assert status["state_dir"] == daemon_env["AGENTD_STATE_DIR"]
    assert status["config_file"] == daemon_env["AGENTD_CONFIG"]
    # Chromium's sandbox: off only as root, where Chromium cannot sandbox itself.
    root = os.geteuid() == 0
    assert status["browser"]["sandbox"] is not root
    assert ("runs as root" if root else "does not run as root") in status["browser"][
        "sandbox_reason"
    ]

    human = agentctl("status")
    assert "schema version:" in human.stdout and "running" in human.stdout
    assert f"browser sandbox: {'OFF' if root else 'on'} (" in human.stdout

    started = time.monotonic()
    code = daemon.stop(timeout=5)
    assert code == 0
    assert time.monotonic() - started < 5
    assert daemon.saw("STOPPING", "1")
    assert not Path(daemon_env["AGENTD_SOCKET_PATH"]).exists()


def test_socket_flag_and_env_precedence(daemon: DaemonProcess, daemon_env: dict[str, str]) -> None:
    sock = daemon_env["AGENTD_SOCKET_PATH"]
    env = {k: v for k, v in os.environ.items() if k != "AGENTD_SOCKET_PATH"}
    flag = subprocess.run(
        [str(BIN / "agentctl"), "--socket", sock, "ping"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert flag.returncode == 0 and "pong" in flag.stdout
    # Without flag or variable, the socket comes from the state folder in the configuration.
    via_state = subprocess.run(
        [str(BIN / "agentctl"), "ping"], capture_output=True, text=True, timeout=30, env=env
    )
    assert via_state.returncode == 3  # default path differs from the one the daemon uses
    assert "agentd.sock" in via_state.stderr


def test_unreachable_daemon_exit_3(short_tmp: Path) -> None:
    result = agentctl("--socket", str(short_tmp / "none.sock"), "status")
    assert result.returncode == 3
    assert str(short_tmp / "none.sock") in result.stderr
    as_json = agentctl("--json", "--socket", str(short_tmp / "none.sock"), "status")
    assert json.loads(as_json.stdout)["error"]["name"] == "UNREACHABLE"


def test_usage_error_exit_2() -> None:
    result = agentctl("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_daemon_error_exit_1(daemon: DaemonProcess, daemon_env: dict[str, str]) -> None:
    import socket as so

    # A command the client does not know is still sent as the daemon sees it: use raw.
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.connect(daemon_env["AGENTD_SOCKET_PATH"])
    s.sendall(b'{"cmd":"nope"}\n')
    answer = json.loads(s.makefile().readline())
    s.close()
    assert answer["error"]["name"] == "UNKNOWN_COMMAND"


def test_broken_config_exit_78_nothing_written(short_tmp: Path) -> None:
    cfg = short_tmp / "bad.toml"
    cfg.write_text("[control]\nread_timeout_s = 'soon'\nbogus_key = 1\n")
    state = short_tmp / "state-never"
    env = {**os.environ, "AGENTD_STATE_DIR": str(state), "AGENTD_CONFIG": str(cfg)}
    env.pop("AGENTD_SOCKET_PATH", None)
    env.pop("AGENTD_LOG_DIR", None)
    result = subprocess.run(
        [str(BIN / "agentd"), "serve"], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 78
    assert str(cfg) in result.stderr
    assert "control.read_timeout_s" in result.stderr
    assert "control.bogus_key: unknown key" in result.stderr
    assert not state.exists()


def test_watchdog_pings_while_healthy(daemon_env: dict[str, str], short_tmp: Path) -> None:
    proc = DaemonProcess(daemon_env, log_path=short_tmp / "wd.log", watchdog_usec=400_000)
    try:
        proc.wait_ready(30)
        deadline = time.monotonic() + 5
        while not proc.saw("WATCHDOG", "1") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.saw("WATCHDOG", "1")
    finally:
        assert proc.stop() == 0
        proc.close()


def test_sigkill_then_restart_recovers(daemon_env: dict[str, str], short_tmp: Path) -> None:
    first = DaemonProcess(daemon_env, log_path=short_tmp / "k.log")
    first.wait_ready(30)
    first.kill()
    first.close()
    assert Path(daemon_env["AGENTD_SOCKET_PATH"]).exists()  # stale socket left behind
    second = DaemonProcess(daemon_env, log_path=short_tmp / "k.log")
    try:
        second.wait_ready(30)
        result = agentctl("--json", "status")
        assert result.returncode == 0
    finally:
        assert second.stop() == 0
        second.close()
    import anyio

    from agentd.store.sqlite import SqliteStore

    async def verify() -> tuple[bool, list[str]]:
        store = SqliteStore(Path(daemon_env["AGENTD_STATE_DIR"]) / "agentd.sqlite3")
        await store.open()
        try:
            verdict = await store.verify_audit()
            events = [r.event for r in await store.audit_tail(10)]
        finally:
            await store.close()
        return verdict.intact, events

    intact, events = anyio.run(verify)
    assert intact
    assert events == ["DAEMON_STARTED", "DAEMON_STARTED", "DAEMON_STOPPED"]


def _python_for_nobody() -> str:
    """Return a Python 3.11+ that uid 65534 may execute (ours may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys, tomllib; assert sys.version_info >= (3, 11)"],
                capture_output=True,
                timeout=30,
                user=65534,
                group=65534,
                cwd="/",
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return candidate
    pytest.fail("no Python 3.11 that another user may run; install Debian's python3")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another uid")
def test_refused_peer_is_refused_and_audited(
    daemon: DaemonProcess, daemon_env: dict[str, str], short_tmp: Path
) -> None:
    sock = Path(daemon_env["AGENTD_SOCKET_PATH"])
    # Let the other user reach the socket file at all, so SO_PEERCRED is what refuses it.
    os.chmod(short_tmp, 0o755)
    os.chmod(sock, 0o666)
    python = _python_for_nobody()
    # agentctl's import path is standard library only, so any Python 3.11 runs it.
    result = subprocess.run(
        [python, "-m", "agentd.ctl.main", "--json", "--socket", str(sock), "status"],
        capture_output=True,
        text=True,
        timeout=30,
        user=65534,
        group=65534,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "HOME": "/nonexistent",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        cwd="/",
    )
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["name"] == "PERMISSION_DENIED"
    assert "nobody" in error["message"] or "65534" in error["message"]
    # Logged and audited.
    log = (short_tmp / "daemon.log").read_text()
    assert "refused use the control socket for" in log
    import sqlite3

    db = sqlite3.connect(Path(daemon_env["AGENTD_STATE_DIR"]) / "agentd.sqlite3")
    rows = db.execute("SELECT actor, data FROM audit WHERE event = 'ACCESS_REFUSED'").fetchall()
    db.close()
    assert len(rows) == 1 and json.loads(rows[0][1])["uid"] == 65534
    # The daemon goes on serving permitted peers.
    assert agentctl("--json", "status").returncode == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies_cleanly(tmp_path: Path) -> None:
    unit = (REPO / "systemd" / "agentd.service").read_text()
    # The unit names the install prefix /opt/agentd; verify it against this checkout's.
    rendered = unit.replace("/opt/agentd/.venv", str(Path(sys.executable).parent.parent))
    path = tmp_path / "agentd.service"
    path.write_text(rendered)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    for key in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=agentd",
        "RuntimeDirectory=agentd",
        "LogsDirectory=agentd",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "User=agentd",
    ):
        assert key in unit
