"""The browser's egress proxy over real loopback sockets: SOCKS5 as Chromium speaks it."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from agentd.browser.egress import EgressProxy


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Upstream:
    """A TCP echo server that counts the connections it accepts."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._echo, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[Upstream, Upstream]]:
    allowed, other = Upstream("127.0.0.1"), Upstream("127.0.0.2")
    await allowed.start()
    await other.start()
    yield allowed, other
    await allowed.close()
    await other.close()


async def ask(
    proxy: EgressProxy, address: bytes, port: int, *, command: int = 1, methods: bytes = b"\x00"
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Greet the proxy, ask for a connection; return its reply (or b"" for none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(bytes([5, len(methods)]) + methods)
    choice = await reader.readexactly(2)
    if choice != b"\x05\x00":
        return choice, reader, writer
    writer.write(bytes([5, command, 0]) + address + struct.pack(">H", port))
    return await reader.read(10), reader, writer


def ipv4(host: str) -> bytes:
    return b"\x01" + socket.inet_aton(host)


def name(host: bytes) -> bytes:
    return b"\x03" + bytes([len(host)]) + host


async def test_an_allowed_host_is_connected_and_bytes_flow(
    upstreams: tuple[Upstream, Upstream],
) -> None:
    allowed, other = upstreams
    proxy = EgressProxy(["127.0.0.1", "localhost"])
    await proxy.start()
    try:
        for address in (ipv4("127.0.0.1"), name(b"localhost")):
            reply, reader, writer = await ask(proxy, address, allowed.port)
            assert reply[:2] == b"\x05\x00"
            payload = b"GET / HTTP/1.1\r\n\r\n" * 10000  # larger than one read
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(len(payload)) == payload
            writer.close()
        assert allowed.accepted == 2 and other.accepted == 0 and proxy.refused == []
    finally:
        await proxy.close()


@pytest.mark.parametrize(
    ("address", "code"),
    [
        (ipv4("127.0.0.2"), 0x02),  # off the allowlist
        (name(b"127.0.0.2"), 0x02),  # the same, written as a name
        (name(b"127.0.0.1@127.0.0.2"), 0x08),  # not a host name: refused as such
        (name(b"127.0.0.2/127.0.0.1"), 0x08),
        (name("b\u00e9".encode()), 0x08),
        (b"\x04" + socket.inet_pton(socket.AF_INET6, "::1"), 0x02),
    ],
)
async def test_anything_else_is_refused_before_a_connection_is_made(
    upstreams: tuple[Upstream, Upstream], address: bytes, code: int
) -> None:
    _, other = upstreams
    proxy = EgressProxy(["127.0.0.1"])
    await proxy.start()
    try:
        reply, reader, writer = await ask(proxy, address, other.port)
        assert reply[:2] == bytes([5, code])
        assert await reader.read() == b""  # and the proxy hangs up
        writer.close()
        assert other.accepted == 0
        if code == 0x02:
            assert len(proxy.refused) == 1 and str(other.port) in proxy.refused[0]
    finally:
        await proxy.close()


async def test_only_connect_without_authentication(upstreams: tuple[Upstream, Upstream]) -> None:
    allowed, _ = upstreams
    proxy = EgressProxy(["127.0.0.1"])
    await proxy.start()
    try:
        reply, _, writer = await ask(proxy, ipv4("127.0.0.1"), allowed.port, methods=b"\x02")
        assert reply == b"\x05\xff"
        writer.close()
        # BIND (2) and UDP ASSOCIATE (3) would let a page receive or send elsewhere.
        for command in (2, 3):
            reply, _, writer = await ask(proxy, ipv4("127.0.0.1"), allowed.port, command=command)
            assert reply[:2] == b"\x05\x07"
            writer.close()
        assert allowed.accepted == 0
    finally:
        await proxy.close()


async def test_close_cuts_open_connections(upstreams: tuple[Upstream, Upstream]) -> None:
    allowed, _ = upstreams
    proxy = EgressProxy(["127.0.0.1"])
    await proxy.start()
    reply, reader, writer = await ask(proxy, ipv4("127.0.0.1"), allowed.port)
    assert reply[:2] == b"\x05\x00"
    await proxy.close()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
