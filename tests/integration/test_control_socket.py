"""The daemon in-process with a real SQLite file, a real Unix socket and a
datagram socket bound here as NOTIFY_SOCKET; clients that misbehave."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from agentd.config import load_settings
from agentd.ctl.client import call
from agentd.daemon import App, run_daemon
from agentd.errors import ConfigInvalid, ErrorCode
from agentd.sdnotify import SystemdNotifier
from agentd.server import SocketInUse
from tests.helpers import ask, serving


@dataclass
class Running:
    app: App
    socket: Path
    notify: socket.socket

    def notifications(self) -> list[dict[str, str]]:
        out = []
        while True:
            try:
                data = self.notify.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().splitlines()))


@pytest.fixture
async def running(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    monkeypatch.setenv("AGENTD_CONTROL__READ_TIMEOUT_S", "0.5")
    monkeypatch.setenv("AGENTD_CONTROL__MAX_MESSAGE_BYTES", "65536")
    notify_path = short_tmp / "notify"
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(notify_path))
    dgram.setblocking(False)
    settings = load_settings(None)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(notify_path)})
    async with serving(settings, notifier) as app:
        yield Running(app, settings.resolved_socket_path, dgram)
    dgram.close()


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


async def test_ready_status_and_audit(running: Running) -> None:
    msgs = running.notifications()
    assert any(m.get("READY") == "1" for m in msgs)
    assert any("STATUS" in m for m in msgs)
    status = await ask(running.socket, "status")
    assert isinstance(status, dict)
    assert status["state"] == "running"
    assert status["pid"] == os.getpid()
    assert status["schema_version"] == status["latest_schema_version"] >= 1
    assert status["socket_path"] == str(running.socket)
    tail = await running.app.store.audit_tail(5)
    assert [r.event for r in tail] == ["DAEMON_STARTED"]


async def test_socket_mode_is_restrictive(running: Running) -> None:
    st = running.socket.stat()
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
async def test_bad_requests_get_errors(running: Running, payload: bytes, code: ErrorCode) -> None:
    answer = await raw_exchange(running.socket, payload)
    assert answer["ok"] is False
    assert answer["error"]["code"] == code
    assert answer["error"]["name"] == code.name
    assert await ask(running.socket, "ping")


async def test_oversized_message_is_refused(running: Running) -> None:
    answer = await raw_exchange(running.socket, b"x" * 70_000)
    assert answer["error"]["code"] == ErrorCode.MESSAGE_TOO_LARGE
    assert await ask(running.socket, "ping")


async def test_silent_client_times_out(running: Running) -> None:
    answer = await raw_exchange(running.socket, b"")
    assert answer["error"]["code"] == ErrorCode.REQUEST_TIMEOUT


async def test_half_request_then_eof(running: Running) -> None:
    answer = await raw_exchange(running.socket, b'{"cmd": "pi', close_write=True)
    assert answer["error"]["code"] == ErrorCode.BAD_REQUEST


async def test_client_vanishing_mid_request_does_not_hurt(running: Running) -> None:
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(running.socket))
        s.send(b'{"cmd": "status", "ar')
        s.close()
    assert await ask(running.socket, "ping")


async def test_two_hundred_clients_at_once(running: Running) -> None:
    results: list[object] = []

    async def one() -> None:
        results.append(await ask(running.socket, "ping"))

    # Some idle clients hold connections open meanwhile.
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(10)]
    for s in idle:
        s.connect(str(running.socket))
    limiter = anyio.CapacityLimiter(200)
    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(
                lambda: anyio.to_thread.run_sync(
                    lambda: results.append(call(running.socket, "ping", timeout=20)),
                    limiter=limiter,
                )
            )
    for s in idle:
        s.close()
    assert len(results) == 200
    assert all(isinstance(r, dict) and r["pong"] for r in results)


async def test_second_daemon_on_live_socket_refuses(running: Running) -> None:
    # Another state folder: on the same one, the folder's lock refuses it first.
    settings = load_settings(None).model_copy(
        update={"state_dir": running.app.settings.state_dir.parent / "other-state"}
    )
    with pytest.raises(SocketInUse, match="already serving"):
        await run_daemon(settings, notifier=SystemdNotifier({}))
    assert await ask(running.socket, "ping")


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
