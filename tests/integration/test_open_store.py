"""A long store open (a migration) asks systemd for more start-up time (real NOTIFY_SOCKET)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from agentd.daemon import open_store
from agentd.errors import StoreError
from agentd.sdnotify import SystemdNotifier
from agentd.store.sqlite import SqliteStore


class SlowStore(SqliteStore):
    """A real store whose open takes ``delay_s`` longer (as a large migration does)."""

    def __init__(self, path: Path, delay_s: float) -> None:
        super().__init__(path)
        self.delay_s = delay_s

    async def open(self) -> None:
        await anyio.sleep(self.delay_s)
        await super().open()


@pytest.fixture
def notify(short_tmp: Path) -> Iterator[tuple[SystemdNotifier, socket.socket]]:
    path = short_tmp / "notify"
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(path))
    dgram.setblocking(False)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
    yield notifier, dgram
    notifier.close()
    dgram.close()


def received(dgram: socket.socket) -> list[dict[str, str]]:
    messages = []
    while True:
        try:
            data = dgram.recv(4096)
        except BlockingIOError:
            return messages
        messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))


async def test_a_long_open_extends_the_start_timeout_until_it_is_done(
    notify: tuple[SystemdNotifier, socket.socket], tmp_path: Path
) -> None:
    notifier, dgram = notify
    store = SlowStore(tmp_path / "agentd.sqlite3", delay_s=0.45)
    await open_store(store, notifier, every_s=0.1)
    try:
        sent = received(dgram)
        assert len(sent) >= 3  # 0.45 s of delay, a message every 0.1 s
        assert {m["EXTEND_TIMEOUT_USEC"] for m in sent} == {"300000"}
        assert sent[0]["STATUS"].startswith("opening store: 0 s so far")
        assert (await store.info()).schema_version >= 7
        await anyio.sleep(0.3)
        assert received(dgram) == []  # nothing once the store is open
    finally:
        await store.close()


async def test_a_quick_open_sends_nothing(
    notify: tuple[SystemdNotifier, socket.socket], tmp_path: Path
) -> None:
    notifier, dgram = notify
    store = SqliteStore(tmp_path / "agentd.sqlite3")
    await open_store(store, notifier, every_s=5)
    await store.close()
    assert received(dgram) == []


async def test_a_failed_open_raises_its_own_error(
    notify: tuple[SystemdNotifier, socket.socket], tmp_path: Path
) -> None:
    notifier, dgram = notify
    path = tmp_path / "agentd.sqlite3"
    path.write_bytes(b"not a database" * 200)
    with pytest.raises(StoreError, match="cannot open database"):
        await open_store(SlowStore(path, delay_s=0.15), notifier, every_s=0.1)
    assert len(received(dgram)) >= 1
