"""Commands about the daemon itself: ping, status."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from agentd import __version__
from agentd.commands.registry import CommandContext, command


@command("ping", summary="Check that the daemon answers.")
async def ping(ctx: CommandContext) -> dict[str, Any]:
    """Answer with the daemon's time."""
    return {"pong": True, "time": datetime.now(UTC).isoformat(timespec="seconds")}


@command("status", summary="Show version, state, uptime, schema and paths.")
async def status(ctx: CommandContext) -> dict[str, Any]:
    """Describe the running daemon."""
    app = ctx.app
    info = await app.store.info()
    settings = app.settings
    store = app.store
    last_error = store.last_write_error
    result: dict[str, Any] = {
        "version": __version__,
        "pid": os.getpid(),
        "state": app.state,
        "started_at": app.started_at.isoformat(timespec="seconds"),
        "uptime_s": round(time.monotonic() - app.started_monotonic, 3),
        "schema_version": info.schema_version,
        "latest_schema_version": info.latest_schema_version,
        "store": {
            "backend": info.backend,
            "location": info.location,
            "synchronous": info.synchronous,
            "journal_mode": info.journal_mode,
            "write_errors": store.write_errors,
            "last_write_error": (
                None
                if last_error is None
                else {"at": last_error[0].isoformat(timespec="seconds"), "error": last_error[1]}
            ),
            "writes_refused": store.corrupt is not None,
            "integrity": app.integrity,
        },
        # Empty when all is well; otherwise what needs an operator, one line each.
        "problems": app.problems(),
        "config_file": str(settings.config_file) if settings.config_file else None,
        "state_dir": str(settings.state_dir),
        "socket_path": str(settings.resolved_socket_path),
        "log_file": str(app.log_file) if app.log_file else None,
        "peer": {"user": ctx.peer.user, "uid": ctx.peer.uid},
        "governance": app.governance.summary(),
        "browser": app.operations.browser.describe(),
    }
    return result
