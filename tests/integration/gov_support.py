"""Shared by the governance integration tests: a configuration, outcomes as the
execution engine reports them, audit records. The daemon itself is conftest's
``daemon`` fixture."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentd.config import Settings, load_settings
from agentd.core.breakers import BreakerEvent, BreakerEventKind
from agentd.core.timefmt import iso
from agentd.daemon import App

BASE_CONFIG = '[autonomy]\nlevel = "L3+"\n[scheduler]\nenabled = false\n'
KINDS = {
    ("change", "succeeded"): BreakerEventKind.EXECUTION_SUCCEEDED,
    ("change", "failed"): BreakerEventKind.EXECUTION_FAILED,
    ("rollback", "succeeded"): BreakerEventKind.EXECUTION_ROLLED_BACK,
}


def configure(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "", *, base: str = BASE_CONFIG
) -> Settings:
    """Write a configuration (``base``: L3+, no scheduled runs; plus ``extra``) and load it."""
    cfg = short_tmp / "agentd.toml"
    cfg.write_text(base + extra)
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    return load_settings(None)


async def record_outcomes(
    app: App,
    outcomes: Sequence[tuple[str, str]],
    *,
    kind: str = "change",
    at: datetime | None = None,
    autonomous: bool = True,
    publish: bool = True,
    rollback_of: str | None = None,
) -> list[str]:
    """Store executions as the engine does, then publish their outcomes in order.

    ``outcomes``: ``(state, action_type)`` pairs; ``at`` backdates them (history).
    """
    when = at or datetime.now(UTC)
    ids = []
    async with app.store.write(when) as tx:
        for state, action_type in outcomes:
            exe = f"exe_{secrets.token_hex(8)}"
            ids.append(exe)
            await tx.execution.insert_execution(
                {
                    "id": exe,
                    "kind": kind,
                    "intent_id": f"int_{secrets.token_hex(8)}",
                    "rollback_of": rollback_of,
                    "tenant": "t1",
                    "account": "acme",
                    "action_type": action_type,
                    "executor": "message",
                    "risk": "LOW",
                    "autonomous": autonomous,
                    "state": state,
                    "created_at": iso(when),
                    "updated_at": iso(when),
                    "started_at": iso(when),
                    "finished_at": iso(when),
                },
            )
    if publish:
        for state, action_type in outcomes:
            event = BreakerEvent(
                when, KINDS[(kind, state)], action_type=action_type, autonomous=autonomous
            )
            await app.events.publish(event)
    return ids


async def audit_events(app: App, event: str) -> list[Any]:
    """Return the audit records of one event type."""
    return [r async for r in app.store.audit_records() if r.event == event]
