"""Shared by the governance integration tests: a configured daemon, outcomes as the
execution engine reports them, and approvers with distinct identities."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentd.commands import Dispatcher, InProcessClient, Peer
from agentd.commands.registry import AccessPolicy
from agentd.config import Settings, load_settings
from agentd.core.breakers import BreakerEvent, BreakerEventKind
from agentd.daemon import App
from agentd.sdnotify import SystemdNotifier
from agentd.store import exec_sql
from agentd.store.sqlite import iso
from tests.helpers import ask, serving

ACCOUNTS = """id,tenant,name,stage,trusted_mode
acme,t1,Acme,discovery,ACTIVE
globex,t1,Globex,discovery,ACTIVE
"""
BASE_CONFIG = '[autonomy]\nlevel = "L3+"\n[scheduler]\nenabled = false\n'
KINDS = {
    ("change", "succeeded"): BreakerEventKind.EXECUTION_SUCCEEDED,
    ("change", "failed"): BreakerEventKind.EXECUTION_FAILED,
    ("rollback", "succeeded"): BreakerEventKind.EXECUTION_ROLLED_BACK,
}


def configure(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "", *, base: str = BASE_CONFIG
) -> Settings:
    """Write a configuration (``base``: L3+, no scheduled runs; plus ``extra``) and load it."""
    cfg = short_tmp / "agentd.toml"
    cfg.write_text(base + extra)
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    return load_settings(None)


@dataclass
class Daemon:
    """A daemon served in-process, with the datagram socket systemd would listen on."""

    app: App
    sock: Path
    notify: socket.socket

    async def ask(self, cmd: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
        return await ask(self.sock, cmd, args, **kw)

    def statuses(self) -> list[str]:
        """Return the STATUS= lines sent so far."""
        out = []
        while True:
            try:
                data = self.notify.recv(4096)
            except BlockingIOError:
                return out
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            if "STATUS" in fields:
                out.append(fields["STATUS"])

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


@asynccontextmanager
async def running(
    settings: Settings, short_tmp: Path, *, accounts: bool = True
) -> AsyncIterator[Daemon]:
    """Serve the daemon with a NOTIFY_SOCKET bound here; import the two accounts."""
    path = short_tmp / f"notify-{secrets.token_hex(3)}"
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


async def record_outcomes(
    app: App,
    outcomes: Sequence[tuple[str, str]],
    *,
    kind: str = "change",
    at: datetime | None = None,
    autonomous: bool = True,
    publish: bool = True,
    rollback_of: str | None = None,
) -> list[str]:
    """Store executions as the engine does, then publish their outcomes in order.

    ``outcomes``: ``(state, action_type)`` pairs; ``at`` backdates them (history).
    """
    when = at or datetime.now(UTC)
    ids = []
    async with app.store.write(when) as tx:
        for state, action_type in outcomes:
            exe = f"exe_{secrets.token_hex(8)}"
            ids.append(exe)
            await exec_sql.insert_execution(
                tx,
                {
                    "id": exe,
                    "kind": kind,
                    "intent_id": f"int_{secrets.token_hex(8)}",
                    "rollback_of": rollback_of,
                    "tenant": "t1",
                    "account": "acme",
                    "action_type": action_type,
                    "executor": "message",
                    "risk": "LOW",
                    "autonomous": autonomous,
                    "state": state,
                    "created_at": iso(when),
                    "updated_at": iso(when),
                    "started_at": iso(when),
                    "finished_at": iso(when),
                },
            )
    if publish:
        for state, action_type in outcomes:
            event = BreakerEvent(
                when, KINDS[(kind, state)], action_type=action_type, autonomous=autonomous
            )
            await app.events.publish(event)
    return ids


async def audit_events(app: App, event: str) -> list[Any]:
    """Return the audit records of one event type."""
    return [r async for r in app.store.audit_records() if r.event == event]
