"""Helpers shared by integration tests: run the daemon in-process, call it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from agentd.config import Settings
from agentd.ctl.client import call
from agentd.daemon import App, run_daemon
from agentd.sdnotify import SystemdNotifier


@asynccontextmanager
async def serving(
    settings: Settings, notifier: SystemdNotifier | None = None
) -> AsyncIterator[App]:
    """Run the daemon in a task group until the block ends."""
    ready = anyio.Event()
    apps: list[App] = []

    def on_ready(app: App) -> None:
        apps.append(app)
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: run_daemon(settings, notifier=notifier or SystemdNotifier({}), ready=on_ready)
        )
        with anyio.fail_after(10):
            await ready.wait()
        yield apps[0]
        apps[0].request_stop("test finished")


async def ask(
    path: Path, cmd: str, args: dict[str, Any] | None = None, *, upload: bytes | None = None
) -> Any:
    """Call the daemon over its socket from a worker thread."""
    body = io.BytesIO(upload) if upload is not None else None
    return await anyio.to_thread.run_sync(lambda: call(path, cmd, args, timeout=20, upload=body))
