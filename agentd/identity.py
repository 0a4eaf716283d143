"""Which daemon this is, when several share one store.

Each ``agentd serve`` has a daemon id: ``[store] daemon_id`` when set, else
the host name and a short hash of its state folder (two daemons on one host
have two state folders). Its processes run work under runner ids
``DAEMON_ID/RANDOM``: a lease held by a runner of this daemon id was this
daemon's earlier process, gone since (the state folder's lock lets one
process at a time be this daemon), so a restarted daemon takes its own work
back at once instead of waiting for the lease to expire.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

#: What a configured daemon id may hold (``/`` separates it from a runner's suffix).
DAEMON_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def host_name() -> str:
    """Return this host's name."""
    return socket.gethostname() or "localhost"


def daemon_id(configured: str, state_dir: Path) -> str:
    """Return the configured daemon id, or ``HOST-HASH`` of the state folder."""
    if configured:
        return configured
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    host = re.sub(r"[^A-Za-z0-9._-]", "-", host_name())[:54] or "host"
    return f"{host}-{digest}"


def runner_id(daemon: str) -> str:
    """Return a fresh runner id for this process of ``daemon``."""
    return f"{daemon}/{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Identity:
    """This daemon and process, and whether other daemons share its store."""

    daemon: str
    runner: str
    host: str
    shared: bool

    @property
    def mine(self) -> str:
        """Return the prefix of this daemon's runner ids ("" when no other daemon shares)."""
        return f"{self.daemon}/" if self.shared else ""

    @property
    def claimer(self) -> str | None:
        """Return who claims scheduled runs (None when no other daemon shares the store)."""
        return self.runner if self.shared else None

    @property
    def origin(self) -> dict[str, str]:
        """Return what notifications and the start record say of their writer."""
        return {"host": self.host, "daemon": self.daemon}


def identify(configured: str, state_dir: Path, *, shared: bool) -> Identity:
    """Return this process's identity (see the module)."""
    daemon = daemon_id(configured, state_dir)
    return Identity(daemon, runner_id(daemon), host_name(), shared)
