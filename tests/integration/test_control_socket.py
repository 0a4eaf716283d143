"""The daemon in-process with a real SQLite file, a real Unix socket and a
datagram socket bound here as NOTIFY_SOCKET; clients that misbehave."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from loguru import logger

from agentd.config import load_settings
from agentd.core.audit import record_hash
from agentd.ctl.client import call
from agentd.daemon import run_daemon
from agentd.errors import AgentdError, ConfigInvalid, ErrorCode
from agentd.sdnotify import SystemdNotifier
from agentd.server import SocketInUse
from tests import flood_peer
from tests.helpers import ask, serving
from tests.integration.conftest import Daemon, StartDaemon

pytestmark = pytest.mark.slow(15)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")


@pytest.fixture
async def running(
    daemon_env: dict[str, str], daemon: StartDaemon, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Daemon]:
    monkeypatch.setenv("AGENTD_CONTROL__READ_TIMEOUT_S", "0.5")
    monkeypatch.setenv("AGENTD_CONTROL__MAX_MESSAGE_BYTES", "65536")
    async with daemon() as d:
        yield d


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every line the daemon logs during the test (message and traceback, if any)."""
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.extend(str(m).splitlines()), level="DEBUG", format="{message}"
    )
    yield lines
    logger.remove(sink)


async def raw_exchange(path: Path, payload: bytes, *, close_write: bool = False) -> dict:  # type: ignore[type-arg]
    async with await anyio.connect_unix(path) as stream:
        if payload:
            await stream.send(payload)
        if close_write:
            await stream.send_eof()
        data = b""
        with anyio.fail_after(5):
            while not data.endswith(b"\n"):
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    break
    return json.loads(data)


async def test_ready_status_and_audit(running: Daemon) -> None:
    msgs = running.notifications()
    assert any(m.get("READY") == "1" for m in msgs)
    assert any("STATUS" in m for m in msgs)
    status = await ask(running.sock, "status")
    assert isinstance(status, dict)
    assert status["state"] == "running"
    assert status["pid"] == os.getpid()
    assert status["schema_version"] == status["latest_schema_version"] >= 1
    assert status["socket_path"] == str(running.sock)
    tail = await running.app.store.audit_tail(5)
    assert [r.event for r in tail] == ["DAEMON_STARTED"]


async def test_socket_mode_is_restrictive(running: Daemon) -> None:
    st = running.sock.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"this is not json\n", ErrorCode.BAD_REQUEST),
        (b"[1, 2, 3]\n", ErrorCode.BAD_REQUEST),
        (b'{"cmd": "no_such_command"}\n', ErrorCode.UNKNOWN_COMMAND),
        (b'{"cmd": "ping", "args": "x"}\n', ErrorCode.BAD_REQUEST),
    ],
)
async def test_bad_requests_get_errors(running: Daemon, payload: bytes, code: ErrorCode) -> None:
    answer = await raw_exchange(running.sock, payload)
    assert answer["ok"] is False
    assert answer["error"]["code"] == code
    assert answer["error"]["name"] == code.name
    assert await ask(running.sock, "ping")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'{"cmd": "status", "args": {"n": ' + b"7" * 5000 + b"}}\n", "4300 digits"),
        (b'{"cmd": "status", "args": ' + b"[" * 20_000 + b"]" * 20_000 + b"}\n", "nested"),
    ],
)
async def test_hostile_json_gets_bad_request_and_one_log_line(
    running: Daemon, log_lines: list[str], payload: bytes, fragment: str
) -> None:
    answer = await raw_exchange(running.sock, payload)
    assert answer["ok"] is False
    assert answer["error"]["name"] == "BAD_REQUEST"
    assert fragment in answer["error"]["message"]
    about = [line for line in log_lines if "request" in line.lower()]
    assert len(about) == 1 and "bad request from" in about[0], log_lines
    assert not any("Traceback" in line for line in log_lines)
    assert await ask(running.sock, "ping")


async def test_oversized_message_is_refused(running: Daemon) -> None:
    answer = await raw_exchange(running.sock, b"x" * 70_000)
    assert answer["error"]["code"] == ErrorCode.MESSAGE_TOO_LARGE
    assert await ask(running.sock, "ping")


async def test_silent_client_times_out(running: Daemon) -> None:
    answer = await raw_exchange(running.sock, b"")
    assert answer["error"]["code"] == ErrorCode.REQUEST_TIMEOUT


async def test_silent_client_gives_its_slot_back_after_the_first_byte_timeout(
    daemon_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__FIRST_BYTE_TIMEOUT_S", "0.3")
    settings = load_settings(None)
    async with serving(settings) as app:
        started = time.monotonic()
        answer = await raw_exchange(app.settings.resolved_socket_path, b"")
        waited = time.monotonic() - started
    assert answer["error"]["code"] == ErrorCode.REQUEST_TIMEOUT
    assert 0.25 < waited < 5  # not the 10 s read timeout


async def test_full_server_answers_busy_at_once_and_runs_nothing(
    daemon_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__MAX_CONNECTIONS", "3")
    monkeypatch.setenv("AGENTD_CONTROL__RESERVED_CONNECTIONS", "1")
    settings = load_settings(None)
    path = settings.resolved_socket_path
    async with serving(settings):
        # Root may use the reserve too: three silent connections fill every slot.
        held = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
        for s in held:
            s.connect(str(path))
        await anyio.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(AgentdError) as info:
            await anyio.to_thread.run_sync(
                lambda: call(path, "kill_switch.on", {"reason": "test"}, timeout=20)
            )
        assert time.monotonic() - started < 1.0
        assert info.value.code == ErrorCode.BUSY and "nothing was done" in info.value.message
        for s in held:
            s.close()
        await anyio.sleep(0.2)
        # The refused request never ran, then or later.
        assert (await ask(path, "level"))["kill_switch"] is False
        cli = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [sys.executable, "-m", "agentd.ctl.main", "--socket", str(path), "status"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        )
        assert cli.returncode == 0, cli.stderr


async def test_busy_exits_5_with_a_clear_message(
    daemon_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__MAX_CONNECTIONS", "2")
    monkeypatch.setenv("AGENTD_CONTROL__RESERVED_CONNECTIONS", "0")
    settings = load_settings(None)
    path = settings.resolved_socket_path
    async with serving(settings):
        held = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
        for s in held:
            s.connect(str(path))
        await anyio.sleep(0.2)
        cli = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [sys.executable, "-m", "agentd.ctl.main", "--socket", str(path), "status"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        )
        for s in held:
            s.close()
    assert cli.returncode == 5
    assert "BUSY (92)" in cli.stderr and "try again" in cli.stderr


async def test_request_of_a_client_that_hung_up_is_not_run(
    running: Daemon, log_lines: list[str]
) -> None:
    # Sent and closed without yielding to the loop: the daemon reads the
    # request only after its client gave up on it.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(running.sock))
    s.sendall(b'{"cmd": "kill_switch.on", "args": {"reason": "gave up"}}\n')
    s.close()
    await anyio.sleep(0.3)
    assert (await ask(running.sock, "level"))["kill_switch"] is False
    assert any("client hung up before it ran" in line for line in log_lines)


async def test_half_request_then_eof(running: Daemon) -> None:
    answer = await raw_exchange(running.sock, b'{"cmd": "pi', close_write=True)
    assert answer["error"]["code"] == ErrorCode.BAD_REQUEST


async def test_client_vanishing_mid_request_does_not_hurt(running: Daemon) -> None:
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(running.sock))
        s.send(b'{"cmd": "status", "ar')
        s.close()
    assert await ask(running.sock, "ping")


async def test_two_hundred_clients_at_once(running: Daemon) -> None:
    results: list[object] = []

    async def one() -> None:
        results.append(await ask(running.sock, "ping"))

    # Some idle clients hold connections open meanwhile.
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(10)]
    for s in idle:
        s.connect(str(running.sock))
    limiter = anyio.CapacityLimiter(200)
    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(
                lambda: anyio.to_thread.run_sync(
                    lambda: results.append(call(running.sock, "ping", timeout=20)),
                    limiter=limiter,
                )
            )
    for s in idle:
        s.close()
    assert len(results) == 200
    assert all(isinstance(r, dict) and r["pong"] for r in results)


async def test_second_daemon_on_live_socket_refuses(running: Daemon) -> None:
    # Another state folder: on the same one, the folder's lock refuses it first.
    settings = load_settings(None).model_copy(
        update={"state_dir": running.app.settings.state_dir.parent / "other-state"}
    )
    with pytest.raises(SocketInUse, match="already serving"):
        await run_daemon(settings, notifier=SystemdNotifier({}))
    assert await ask(running.sock, "ping")


async def test_stop_sends_stopping_and_removes_socket(
    daemon_env: dict[str, str], short_tmp: Path
) -> None:
    notify_path = short_tmp / "n2"
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(notify_path))
    dgram.setblocking(False)
    settings = load_settings(None)
    async with serving(settings, SystemdNotifier({"NOTIFY_SOCKET": str(notify_path)})):
        pass
    data = []
    while True:
        try:
            data.append(dgram.recv(4096).decode())
        except BlockingIOError:
            break
    dgram.close()
    assert any("STOPPING=1" in d for d in data)
    assert not settings.resolved_socket_path.exists()


async def test_stale_socket_is_replaced(daemon_env: dict[str, str]) -> None:
    path = Path(daemon_env["AGENTD_SOCKET_PATH"])
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a SIGKILLed daemon leaves
    assert path.exists()
    settings = load_settings(None)
    async with serving(settings, SystemdNotifier({})):
        assert await ask(path, "ping")


async def test_non_socket_at_socket_path_is_refused(daemon_env: dict[str, str]) -> None:
    path = Path(daemon_env["AGENTD_SOCKET_PATH"])
    path.write_text("precious")
    with pytest.raises(ConfigInvalid, match="not a socket"):
        await run_daemon(load_settings(None), notifier=SystemdNotifier({}))
    assert path.read_text() == "precious"


async def test_mode_0600_when_configured(
    daemon_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__SOCKET_MODE", str(0o600))
    settings = load_settings(None)
    async with serving(settings, SystemdNotifier({})):
        assert stat.S_IMODE(settings.resolved_socket_path.stat().st_mode) == 0o600


@pytest.fixture
def reader_env(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Let uid 65534 (nobody, group nogroup) reach the socket as a reader."""
    monkeypatch.setenv("AGENTD_CONTROL__GROUP", "nogroup")
    os.chmod(short_tmp, 0o755)  # mkdtemp's 0700 would stop it before the socket
    return daemon_env


@needs_root
async def test_a_reader_flooding_the_socket_does_not_lock_root_out(
    reader_env: dict[str, str],
) -> None:
    """600 connections of another uid, half of them half a request, kept open."""
    settings = load_settings(None)
    path = settings.resolved_socket_path
    async with serving(settings):
        peer = await anyio.to_thread.run_sync(lambda: flood_peer.spawn(path, "hold", "600", "6"))
        try:
            latencies = []
            for _ in range(5):
                started = time.monotonic()
                status = await anyio.to_thread.run_sync(lambda: call(path, "status", timeout=20))
                latencies.append(time.monotonic() - started)
                assert status["state"] == "running"
            # The kill switch is done and said so: never "failed", then done later.
            started = time.monotonic()
            result = await anyio.to_thread.run_sync(
                lambda: call(path, "kill_switch.on", {"reason": "flood test"}, timeout=20)
            )
            kill_s = time.monotonic() - started
            assert result["kill_switch"] is True
            # agentctl itself (its time includes starting Python, on a machine the
            # flood keeps busy: the socket's share is what is measured above).
            started = time.monotonic()
            cli = await anyio.to_thread.run_sync(
                lambda: subprocess.run(
                    [sys.executable, "-m", "agentd.ctl.main", "--socket", str(path), "status"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            )
            agentctl_s = time.monotonic() - started
            assert cli.returncode == 0, cli.stderr
        finally:
            answers = await anyio.to_thread.run_sync(lambda: flood_peer.result(peer))
    print(
        f"under the flood: root's status took {', '.join(f'{t:.3f}' for t in latencies)} s, "
        f"kill-switch on {kill_s:.3f} s; agentctl status {agentctl_s:.2f} s; "
        f"the flood got {answers}"
    )
    assert max(latencies) < 1.0, latencies
    assert kill_s < 5.0  # a store write and a notification, on a machine the flood keeps busy
    # The flood was turned away at once (its connections opened again and again), not queued.
    assert answers.get("BUSY", 0) >= 600 - 16, answers


@needs_root
@pytest.mark.parametrize("reader", [True, False], ids=["reader", "stranger"])
async def test_a_refusal_flood_writes_one_record_per_interval_with_the_count(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch, reader: bool
) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__REFUSAL_AUDIT_INTERVAL_S", "1")
    os.chmod(short_tmp, 0o755)
    if reader:
        monkeypatch.setenv("AGENTD_CONTROL__GROUP", "nogroup")  # may read, not operate
    settings = load_settings(None)
    path = settings.resolved_socket_path
    async with serving(settings):
        if not reader:
            os.chmod(path, 0o666)  # so that SO_PEERCRED is what refuses it
        peer = await anyio.to_thread.run_sync(lambda: flood_peer.spawn(path, "refuse", "2.5"))
        answers = await anyio.to_thread.run_sync(lambda: flood_peer.result(peer))
        # The daemon stops before the last interval ends: its count is written at shutdown.
    refused = answers.get("PERMISSION_DENIED", 0)
    assert refused > 50 and set(answers) == {"PERMISSION_DENIED"}, answers
    db = sqlite3.connect(settings.database_path)
    rows = [
        (json.loads(data), event)
        for data, event in db.execute("SELECT data, event FROM audit ORDER BY seq")
    ]
    db.close()
    records = [data for data, event in rows if event == "ACCESS_REFUSED"]
    # One record at once, then one per interval (2.5 s of flood, 1 s intervals), plus the
    # count left at shutdown: a handful, not one per refusal.
    assert 2 <= len(records) <= 5, records
    assert all(r["uid"] == flood_peer.NOBODY for r in records)
    assert 1 + sum(r.get("count", 0) for r in records[1:]) == refused
    assert records[0]["reason"] and "count" not in records[0]
    # Written before the daemon said it stopped.
    assert [event for _, event in rows][-1] == "DAEMON_STOPPED"


async def test_audit_verify_fails_when_the_trail_is_cut_under_the_running_daemon(
    running: Daemon,
) -> None:
    """Delete the tail, rewrite the new head and the meta head with raw SQLite: still found."""
    for i in range(5):
        await ask(
            running.sock,
            "kill_switch.on" if i % 2 == 0 else "kill_switch.off",
            {"reason": f"r{i}"},
        )
    db_path = running.app.settings.database_path
    assert (await ask(running.sock, "audit.verify"))["intact"] is True

    def cut() -> tuple[int, int]:
        # On a worker thread: the daemon serves in this process, and a write on
        # the event loop would hold up a transaction it has under way.
        raw = sqlite3.connect(db_path)
        top = raw.execute("SELECT max(seq) FROM audit").fetchone()[0]
        keep = top - 3
        # Rewriting in place is refused even with the delete trigger gone.
        raw.execute("DROP TRIGGER audit_no_delete")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute(
                "INSERT OR REPLACE INTO audit SELECT seq, at, event, 'mallory', subject, data, "
                f"prev_hash, hash FROM audit WHERE seq = {keep}"
            )
        raw.execute(f"DELETE FROM audit WHERE seq > {keep}")
        raw.execute("DROP TRIGGER audit_no_update")
        seq, at, event, subject, data, prev = raw.execute(
            f"SELECT seq, at, event, subject, data, prev_hash FROM audit WHERE seq = {keep}"
        ).fetchone()
        digest = record_hash(prev, seq, at, event, "mallory", subject, data)
        raw.execute(f"UPDATE audit SET actor = 'mallory', hash = ? WHERE seq = {keep}", (digest,))
        raw.execute("UPDATE meta SET value = ? WHERE key = 'audit.head'", (f"{keep}:{digest}",))
        raw.commit()
        raw.close()
        return top, keep

    top, keep = await anyio.to_thread.run_sync(cut)
    verdict = await ask(running.sock, "audit.verify")
    assert verdict["intact"] is False
    assert verdict["first_broken_seq"] == keep + 1
    assert f"the database ends at record {keep}" in verdict["problem"]
    assert f"running daemon wrote records up to {top}" in verdict["problem"]
