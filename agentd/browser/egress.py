"""The one way out of a browser context: a SOCKS5 proxy on loopback that opens a
connection only to a host the account allows.

Playwright's request interception sees the first URL of a navigation, not the
hops of its redirect chain, and never sees WebSockets, speculative prefetches
or a TURN server's connection. A proxy sees every connection Chromium's
network stack opens, whatever opened it: each context is pointed at its own
proxy (loopback included), and a connection to a host off the allowlist is
refused before anything is sent to it. SOCKS5 rather than an HTTP proxy: the
browser hands over the host name (it resolves nothing itself) and then the
bytes, so the proxy only checks the host and port and copies bytes, whatever
the protocol (HTTP, TLS, WebSocket).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence

from loguru import logger

from agentd.browser import endpoint_allowed

# The time a client gets to say where it wants to go, and to connect there.
HANDSHAKE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 30.0
CHUNK = 256 * 1024
# A host name as Chromium writes it (lower case, IDN in punycode); anything
# else is refused, so the host connected to is exactly the one checked.
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,252})")

# SOCKS5 (RFC 1928) replies.
_SUCCEEDED = 0x00
_GENERAL_FAILURE = 0x01
_NOT_ALLOWED = 0x02
_HOST_UNREACHABLE = 0x04
_REFUSED = 0x05
_COMMAND_NOT_SUPPORTED = 0x07
_ADDRESS_NOT_SUPPORTED = 0x08


class EgressProxy:
    """A SOCKS5 proxy (no authentication, CONNECT only) that enforces one host allowlist.

    ``refused`` lists each ``host:port`` it refused, in order (never a URL:
    a path could carry what a page wanted to send out).
    """

    def __init__(self, allowed_hosts: Sequence[str]) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
        self.refused: list[str] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def server(self) -> str:
        """The proxy's address in the form Playwright's ``proxy`` option takes."""
        return f"socks5://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port.

        :raises OSError: no port could be bound.
        """
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and cut every connection still open; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if server is not None:
            await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S + CONNECT_TIMEOUT_S):
                upstream = await self._handshake(reader, writer)
            if upstream is not None:
                self._writers.add(upstream[1])
                await asyncio.gather(
                    _pipe(reader, upstream[1]), _pipe(upstream[0], writer), return_exceptions=True
                )
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Answer the greeting and the request; return the connection made, or None."""
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5 or 0 not in methods:
            writer.write(b"\x05\xff")  # no acceptable method
            return None
        writer.write(b"\x05\x00")
        version, command, _, kind = await reader.readexactly(4)
        host = await _read_host(reader, kind)
        if host is None:
            writer.write(_reply(_ADDRESS_NOT_SUPPORTED))
            return None
        port = int.from_bytes(await reader.readexactly(2), "big")
        if version != 5 or command != 1:
            writer.write(_reply(_COMMAND_NOT_SUPPORTED))
            return None
        if not endpoint_allowed(host, port, self.allowed_hosts):
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            # Chromium's own services (autofill queries on a form) try again and again.
            level = "DEBUG" if where in self.refused else "WARNING"
            self.refused.append(where)
            logger.log(level, "refused a connection off the allowlist, to {}", where)
            writer.write(_reply(_NOT_ALLOWED))
            return None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                upstream = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            writer.write(_reply(_failure(exc)))
            return None
        writer.write(_reply(_SUCCEEDED))
        await writer.drain()
        return upstream


def _failure(exc: BaseException) -> int:
    if isinstance(exc, TimeoutError):
        return _HOST_UNREACHABLE
    if isinstance(exc, ConnectionRefusedError):
        return _REFUSED
    return _GENERAL_FAILURE


def _reply(code: int) -> bytes:
    """A reply to a request; browsers do not use its bound address (zeros)."""
    return bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])


async def _read_host(reader: asyncio.StreamReader, kind: int) -> str | None:
    """Read a SOCKS5 address of type ``kind``; None when it is of no usable kind."""
    if kind == 1:
        return str(ipaddress.IPv4Address(await reader.readexactly(4)))
    if kind == 4:
        return str(ipaddress.IPv6Address(await reader.readexactly(16)))
    if kind == 3:
        (length,) = await reader.readexactly(1)
        raw = await reader.readexactly(length)
        try:
            name = raw.decode("ascii").lower()
        except UnicodeDecodeError:
            return None
        return name if _HOST_NAME.fullmatch(name) else None
    return None


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy bytes until ``src`` ends, then end ``dst`` too (a half close)."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except OSError:
        dst.transport.abort()  # the other direction ends too
