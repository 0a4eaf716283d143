"""Shared fixtures: short temporary folders (AF_UNIX paths must stay short)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the slowest modules first (their ``slow(seconds)`` mark), the rest as collected.

    scripts/test hands the files to the workers in this order, each taking the
    next when it is free: the longest go first and none is left running alone
    at the end.
    """
    items.sort(key=lambda item: -_expected_seconds(item))


def _expected_seconds(item: pytest.Item) -> float:
    mark = item.get_closest_marker("slow")
    if mark is None:
        return 0.0
    return float(mark.args[0]) if mark.args else 1.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path, for sockets."""
    path = Path(tempfile.mkdtemp(prefix="ad-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon_env(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment pointing a daemon at a fresh state folder (and no system config)."""
    env = {
        "AGENTD_STATE_DIR": str(short_tmp / "state"),
        "AGENTD_SOCKET_PATH": str(short_tmp / "s.sock"),
        "AGENTD_LOG_DIR": str(short_tmp / "logs"),
        "AGENTD_CONFIG": str(Path(__file__).resolve().parent.parent / "config" / "agentd.toml"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(autouse=True)
def _no_leaked_sqlite_threads() -> Iterator[None]:
    """Fail a test that leaves an aiosqlite connection open (it would hang the run at exit)."""
    import threading
    import time

    def leaked() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if "_connection_worker_thread" in t.name and t.is_alive()
        ]

    before = set(leaked())
    yield
    deadline = time.monotonic() + 2.0
    while set(leaked()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    left = set(leaked()) - before
    assert not left, f"test left aiosqlite connections open: {sorted(left)}"


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real store back-office's database, migrated and seeded once per session.

    Tests serve copies of it (``tests.backoffice.store.Store``), one per module.
    """
    from tests.backoffice.store import StoreTemplate

    return StoreTemplate.create(tmp_path_factory.mktemp("store"))
