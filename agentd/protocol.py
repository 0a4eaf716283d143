"""Control protocol framing: one JSON object per line, pure functions only.

A client sends one request line and reads response lines until a final one:

    -> {"cmd": "status", "args": {}}
    <- {"ok": true, "result": {...}}
    <- {"ok": false, "error": {"code": 30, "name": "NOT_FOUND", "message": "..."}}

A streaming command first sends any number of event lines, then the final one:

    <- {"event": {...}}
    <- {"ok": true, "result": {...}}

One request per connection. Lines are UTF-8 JSON terminated by ``\\n``; a line
longer than the configured maximum is refused with MESSAGE_TOO_LARGE. This
module is imported by ``agentctl``: standard library only, no I/O.
"""

from __future__ import annotations

import json

from agentd.errors import AgentdError, BadRequest, MessageTooLarge

TYPE_CHECKING = False  # typing itself is not imported: agentctl must start fast
if TYPE_CHECKING:
    from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
# Deeper requests are refused: nothing legitimate nests this far, and every
# later step (validation, audit's canonical JSON) would recurse as deep.
MAX_NESTING = 64
_COMMAND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class Request:
    """One decoded request."""

    __slots__ = ("args", "cmd")

    def __init__(self, cmd: str, args: dict[str, Any]) -> None:
        self.cmd = cmd
        self.args = args


def _valid_command(cmd: object) -> bool:
    # Checked by hand: importing re would cost agentctl start-up time.
    return (
        isinstance(cmd, str)
        and 0 < len(cmd) <= 64
        and cmd[0].isascii()
        and cmd[0].isalpha()
        and cmd[0].islower()
        and set(cmd) <= _COMMAND_CHARS
    )


def encode(obj: dict[str, Any]) -> bytes:
    """Encode one protocol object as a line."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode() + b"\n"


def encode_request(cmd: str, args: dict[str, Any] | None = None) -> bytes:
    """Encode a request line."""
    return encode({"cmd": cmd, "args": args or {}})


def _loads(line: bytes, what: str, *, max_nesting: int | None = None) -> Any:
    """Parse one JSON line (no deeper than ``max_nesting``, when given).

    :raises BadRequest: not UTF-8 JSON, an integer too long to convert, or nested too deep.
    """
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError, and the int-from-string limit (a number of more
        # than 4,300 digits): both are bad input, not a daemon failure. The
        # limit's message ends in advice for Python programmers: cut it off.
        reason = str(exc).split(";")[0][:200] or type(exc).__name__
        raise BadRequest(f"{what} is not valid JSON: {reason}") from None
    if max_nesting is not None and _nesting(line, max_nesting) > max_nesting:
        raise BadRequest(f"{what} is nested more than {max_nesting} levels deep")
    return obj


_DEPTH_STEP = [0] * 256
_DEPTH_STEP[ord("[")] = _DEPTH_STEP[ord("{")] = 1
_DEPTH_STEP[ord("]")] = _DEPTH_STEP[ord("}")] = -1


def _nesting(line: bytes, limit: int) -> int:
    """Return how deep the brackets of valid JSON ``line`` nest (0 if it cannot pass ``limit``)."""
    if line.count(b"[") + line.count(b"{") <= limit:
        return 0  # the common case: too few brackets to nest that deep
    # Imported here: agentctl never decodes a request, and re costs start-up time.
    import re
    from itertools import accumulate

    # Brackets inside strings do not nest; the rest is summed in C (a Python
    # loop took 0.25 s on a 1 MB line, about 30 ms this way).
    skeleton = re.sub(rb'"(?:[^"\\]+|\\.)*"', b"", line)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, skeleton)), default=0)


def decode_request(line: bytes) -> Request:
    """Decode and check a request line.

    :raises BadRequest: not UTF-8 JSON (or an integer too long to convert, or
        nested more than MAX_NESTING levels), not an object, or a malformed
        command or args.
    """
    obj = _loads(line, "request", max_nesting=MAX_NESTING)
    if not isinstance(obj, dict):
        raise BadRequest("request must be a JSON object")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not _valid_command(cmd):
        raise BadRequest("request needs a 'cmd' string such as \"status\"")
    args = obj.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadRequest("'args' must be a JSON object")
    unknown = set(obj) - {"cmd", "args", "v"}
    if unknown:
        raise BadRequest(f"unknown request fields: {', '.join(sorted(unknown))}")
    return Request(cmd=cmd, args=args)


def ok(result: Any) -> bytes:
    """Encode a final success line."""
    return encode({"ok": True, "result": result})


def error(err: AgentdError) -> bytes:
    """Encode a final error line."""
    return encode({"ok": False, "error": err.to_dict()})


def event(data: Any) -> bytes:
    """Encode one streamed event line."""
    return encode({"event": data})


def decode_response(line: bytes) -> dict[str, Any]:
    """Decode a response line (final or event).

    :raises BadRequest: the line is not a protocol object.
    """
    obj = _loads(line, "response")
    if not isinstance(obj, dict) or not ({"ok", "event"} & set(obj)):
        raise BadRequest("response is not a protocol object")
    return obj


class LineBuffer:
    """Accumulate bytes and split them into lines no longer than ``limit``.

    :raises MessageTooLarge: from :meth:`feed` when a line outgrows the limit.
    """

    def __init__(self, limit: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._unread: list[bytes] = []
        self.closed = False

    def unread(self, lines: list[bytes]) -> None:
        """Keep complete lines for :meth:`take` (the start of an upload)."""
        self._unread.extend(lines)

    def take(self) -> list[bytes]:
        """Return and forget the lines kept by :meth:`unread`."""
        lines, self._unread = self._unread, []
        return lines

    def finish(self) -> bytes:
        """Return the bytes after the last newline (a final line without one)."""
        self.closed = True
        tail = bytes(self._buf)
        self._buf.clear()
        return tail

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete lines they finish, without newlines."""
        self._buf += data
        lines: list[bytes] = []
        while True:
            idx = self._buf.find(b"\n")
            if idx < 0:
                break
            if idx > self.limit:
                raise MessageTooLarge(f"message exceeds {self.limit} bytes")
            lines.append(bytes(self._buf[:idx]))
            del self._buf[: idx + 1]
        if len(self._buf) > self.limit:
            raise MessageTooLarge(f"message exceeds {self.limit} bytes")
        return lines

    @property
    def pending(self) -> int:
        """Return how many bytes wait for a newline."""
        return len(self._buf)
