"""Shared fixtures: short temporary folders (AF_UNIX paths must stay short)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


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
