"""A blocking control-socket client (standard library only, for a fast start)."""

from __future__ import annotations

import os
import socket

from agentd import paths, protocol
from agentd.errors import AgentdError, from_dict

TYPE_CHECKING = False  # typing itself is not imported: agentctl must start fast
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class ConfigUnreadable(Exception):
    """The configuration file named for agentctl is missing or not valid TOML."""


class Unreachable(Exception):
    """The daemon could not be reached on the socket."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot reach agentd at {path}: {reason}")
        self.path = path
        self.reason = reason


def resolve_socket(explicit: str | None, config: str | None = None) -> str:
    """Find the socket: ``--socket``, then ``AGENTD_SOCKET_PATH``, then the configuration."""
    if explicit:
        return explicit
    env = os.environ
    if env.get("AGENTD_SOCKET_PATH"):
        return env["AGENTD_SOCKET_PATH"]
    data: dict[str, Any] = {}
    cfg = paths.resolve_config_path(config)
    if cfg is not None:
        import tomllib  # only when the socket is not given directly

        # A file that cannot be read is named as such: falling back to the
        # default socket would blame an unreachable daemon instead.
        origin = "--config" if config else ("AGENTD_CONFIG" if env.get("AGENTD_CONFIG") else "")
        named = f"configuration file {cfg}" + (f" (from {origin})" if origin else "")
        try:
            with open(cfg, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigUnreadable(f"{named} not found") from None
        except OSError as exc:
            raise ConfigUnreadable(f"cannot read {named}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigUnreadable(f"{named} is not valid TOML: {exc}") from None
    if isinstance(data.get("socket_path"), str):
        return paths.absolute(data["socket_path"])
    state = env.get("AGENTD_STATE_DIR") or data.get("state_dir")
    state_dir = state if isinstance(state, str) else paths.default_state_dir()
    return paths.default_socket_path(paths.absolute(state_dir))


def _refused(path: str) -> str:
    # connect() on a regular file or a FIFO is refused too: only a socket is stale.
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFSOCK
    if not stat.S_ISSOCK(mode):
        return "not a socket (something else is at that path; is the socket path right?)"
    return "connection refused (stale socket; is agentd running?)"


def call(  # noqa: C901, PLR0915
    path: str | os.PathLike[str],
    cmd: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 30.0,
    on_event: Callable[[Any], None] | None = None,
    upload: Any = None,
) -> Any:
    """Send one request and return the result.

    ``upload`` is a binary file object sent after the request line (the
    request's args then carry ``"upload": true``); the daemon reads it as a
    stream, so a large file is never held whole on either side.

    :raises Unreachable: no daemon answers on ``path``.
    :raises AgentdError: the daemon answered with an error.
    """
    path = os.fspath(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise Unreachable(path, "no socket there (is agentd running?)") from None
        except ConnectionRefusedError:
            raise Unreachable(path, _refused(path)) from None
        except PermissionError:
            raise Unreachable(path, "permission denied (are you in the agentd group?)") from None
        except OSError as exc:
            raise Unreachable(path, exc.strerror or str(exc)) from None
        sent = False
        try:
            if upload is not None:
                args = {**(args or {}), "upload": True}
            try:
                sock.sendall(protocol.encode_request(cmd, args))
                sent = True
            except (BrokenPipeError, ConnectionResetError):
                # The daemon answered before reading the request (BUSY, or a
                # refused peer) and closed: its answer waits to be read below.
                upload = None
            if upload is not None:
                try:
                    while chunk := upload.read(1 << 20):
                        sock.sendall(chunk)
                    sock.shutdown(socket.SHUT_WR)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the daemon stopped reading early: its answer says why
            buffer = protocol.LineBuffer(256 * 1024 * 1024)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    raise Unreachable(path, "the daemon closed the connection without answering")
                for line in buffer.feed(chunk):
                    msg = protocol.decode_response(line)
                    if "event" in msg:
                        if on_event is not None:
                            on_event(msg["event"])
                        continue
                    if msg.get("ok"):
                        return msg.get("result")
                    raise from_dict(msg.get("error") or {})
        except TimeoutError:
            if not sent:
                raise Unreachable(path, f"no answer within {timeout:g} s") from None
            # The daemon does not start a request whose client has hung up,
            # but one it had started runs to its end.
            raise Unreachable(
                path,
                f"no answer within {timeout:g} s; the request was sent and may still "
                "take effect: check before repeating it",
            ) from None
        except (BrokenPipeError, ConnectionResetError):
            raise Unreachable(path, "connection reset by the daemon") from None
    finally:
        sock.close()


__all__ = ["AgentdError", "ConfigUnreadable", "Unreachable", "call", "resolve_socket"]
