"""The integration tests' daemon: served in-process over a real SQLite file, a
real Unix socket, and a datagram socket bound here as NOTIFY_SOCKET.

``async with daemon(settings) as d:`` (the ``daemon`` fixture) starts it with
``settings`` (default: loaded from the environment ``daemon_env`` and the test
set up) and stops it when the block ends; ``accounts=True`` imports the two
test accounts (acme and globex, tenant t1) first.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentd.commands import Dispatcher, InProcessClient, Peer
from agentd.commands.registry import AccessPolicy
from agentd.config import Settings, load_settings
from agentd.daemon import App
from agentd.sdnotify import SystemdNotifier
from tests.helpers import ask, serving

ACCOUNTS = """id,tenant,name,stage,trusted_mode
acme,t1,Acme,discovery,ACTIVE
globex,t1,Globex,discovery,ACTIVE
"""


@dataclass
class Daemon:
    """A daemon served in-process, with the datagram socket systemd would listen on."""

    app: App
    sock: Path
    notify: socket.socket

    async def ask(self, cmd: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
        return await ask(self.sock, cmd, args, **kw)

    def notifications(self) -> list[dict[str, str]]:
        """Return the sd_notify messages sent since the last call, as fields."""
        out: list[dict[str, str]] = []
        while True:
            try:
                data = self.notify.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def statuses(self) -> list[str]:
        """Return the STATUS= lines sent since the last call."""
        return [n["STATUS"] for n in self.notifications() if "STATUS" in n]

    def as_user(self, name: str, *, approver: bool = True) -> InProcessClient:
        """Return a client that calls as another user (same rules as over the socket)."""
        policy = AccessPolicy(daemon_uid=os.getuid(), group="readers", approvers_group="approvers")
        groups = frozenset({"approvers" if approver else "readers"})
        peer = Peer(pid=os.getpid(), uid=60000 + len(name), gid=60000, user=name, groups=groups)
        return InProcessClient(Dispatcher(self.app, policy), peer)

    async def intent(self, rationale: str, action: str = "send_chat_message", **kw: Any) -> Any:
        """Submit an operator intent on acme and return the decision."""
        args = {"tenant": "t1", "account": "acme", "action_type": action, "rationale": rationale}
        return await self.ask("propose", {**args, **kw})

    async def check(self, action: str = "send_chat_message", **kw: Any) -> Any:
        """Return what the gate would decide for ``action`` on acme now."""
        args = {"tenant": "t1", "account": "acme", "action_type": action, "rationale": "check"}
        return await self.ask("policy.check", {**args, **kw})


StartDaemon = Callable[..., AbstractAsyncContextManager[Daemon]]


@asynccontextmanager
async def _serve(settings: Settings, folder: Path, *, accounts: bool) -> AsyncIterator[Daemon]:
    path = folder / f"notify-{secrets.token_hex(3)}"
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(path))
    dgram.setblocking(False)
    try:
        async with serving(settings, SystemdNotifier({"NOTIFY_SOCKET": str(path)})) as app:
            daemon = Daemon(app, settings.resolved_socket_path, dgram)
            if accounts:
                await daemon.ask("accounts.import", {"name": "a.csv"}, upload=ACCOUNTS.encode())
            yield daemon
    finally:
        dgram.close()


@pytest.fixture
def daemon(short_tmp: Path) -> StartDaemon:
    """Start the daemon in-process: ``async with daemon(settings, accounts=True) as d``."""

    def start(
        settings: Settings | None = None, *, accounts: bool = False
    ) -> AbstractAsyncContextManager[Daemon]:
        return _serve(settings or load_settings(None), short_tmp, accounts=accounts)

    return start
