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

# Strings, not pathlib: agentctl imports this module and pathlib alone would
# add several milliseconds to every agentctl start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

SYSTEM_CONFIG = "/etc/agentd/agentd.toml"
SOCKET_NAME = "agentd.sock"


def absolute(path: str | os.PathLike[str]) -> str:
    """Return ``path`` with ``~`` expanded, made absolute against the working folder."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def resolve_config_path(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str] = os.environ
) -> str | None:
    """Return the configuration file to read, or None for built-in defaults."""
    if explicit:
        return absolute(explicit)
    if env.get("AGENTD_CONFIG"):
        return absolute(env["AGENTD_CONFIG"])
    if os.path.isfile(SYSTEM_CONFIG):
        return SYSTEM_CONFIG
    return None


def _first_dir(value: str | None) -> str | None:
    # systemd may list several directories separated by ':'; the first is ours.
    if not value:
        return None
    return value.split(":")[0]


def default_state_dir(env: Mapping[str, str] = os.environ) -> str:
    """Return the state folder when neither the file nor the environment sets one."""
    systemd = _first_dir(env.get("STATE_DIRECTORY"))
    if systemd:
        return systemd
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "agentd")


def default_socket_path(
    state_dir: str | os.PathLike[str], env: Mapping[str, str] = os.environ
) -> str:
    """Return the control socket path for a given state folder."""
    runtime = _first_dir(env.get("RUNTIME_DIRECTORY"))
    return os.path.join(runtime or os.fspath(state_dir), SOCKET_NAME)


def default_log_dir(state_dir: str | os.PathLike[str], env: Mapping[str, str] = os.environ) -> str:
    """Return the log folder for a given state folder."""
    logs = _first_dir(env.get("LOGS_DIRECTORY"))
    return logs or os.path.join(os.fspath(state_dir), "logs")
