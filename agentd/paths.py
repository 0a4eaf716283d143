"""Default locations, shared by the daemon and ``agentctl``.

Both programs must agree on where the socket is without ``agentctl`` paying
for pydantic at import time, so the resolution rules live here, in the
standard library only.

Order for the configuration file: ``--config PATH``, then ``AGENTD_CONFIG``,
then ``/etc/agentd/agentd.toml`` when it exists, else none (built-in defaults).

Defaults for the three top-level paths follow systemd's directory variables
when the service manager sets them (``StateDirectory=`` and friends), and the
XDG state folder otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SYSTEM_CONFIG = Path("/etc/agentd/agentd.toml")
SOCKET_NAME = "agentd.sock"


def resolve_config_path(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str] = os.environ
) -> Path | None:
    """Return the configuration file to read, or None for built-in defaults."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    if env.get("AGENTD_CONFIG"):
        return Path(env["AGENTD_CONFIG"]).expanduser().absolute()
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG
    return None


def _first_dir(value: str | None) -> Path | None:
    # systemd may list several directories separated by ':'; the first is ours.
    if not value:
        return None
    return Path(value.split(":")[0])


def default_state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Return the state folder when neither the file nor the environment sets one."""
    systemd = _first_dir(env.get("STATE_DIRECTORY"))
    if systemd:
        return systemd
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "agentd"


def default_socket_path(state_dir: Path, env: Mapping[str, str] = os.environ) -> Path:
    """Return the control socket path for a given state folder."""
    runtime = _first_dir(env.get("RUNTIME_DIRECTORY"))
    if runtime:
        return runtime / SOCKET_NAME
    return state_dir / SOCKET_NAME


def default_log_dir(state_dir: Path, env: Mapping[str, str] = os.environ) -> Path:
    """Return the log folder for a given state folder."""
    logs = _first_dir(env.get("LOGS_DIRECTORY"))
    if logs:
        return logs
    return state_dir / "logs"
