"""A daemon's id (several daemons on one store) and the origin its notifications carry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentd.config import Settings
from agentd.errors import ConfigInvalid
from agentd.identity import daemon_id, host_name, runner_id
from agentd.notifiers import (
    FanoutNotifier,
    MemoryNotifier,
    Notification,
    NotificationKind,
    Severity,
)


def test_the_default_id_names_the_host_and_differs_per_state_folder(tmp_path: Path) -> None:
    one, two = daemon_id("", tmp_path / "a"), daemon_id("", tmp_path / "b")
    assert one != two and one.startswith(host_name()[:10])
    assert daemon_id("", tmp_path / "a") == one  # stable across restarts
    assert daemon_id("eu-1", tmp_path / "a") == "eu-1"


def test_runner_ids_are_fresh_and_carry_the_daemon_id() -> None:
    first, second = runner_id("eu-1"), runner_id("eu-1")
    assert first != second and first.startswith("eu-1/") and second.startswith("eu-1/")


@pytest.mark.parametrize("bad", ["a/b", "-x", "with space", "x" * 64, "é"])
def test_a_daemon_id_that_could_pass_for_another_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises((ConfigInvalid, ValueError), match=r"daemon_id|letters"):
        Settings(state_dir=tmp_path, store={"daemon_id": bad})  # type: ignore[arg-type]


async def test_notifications_say_which_daemon_wrote_them() -> None:
    memory = MemoryNotifier()
    fanout = FanoutNotifier([memory], {"host": "h1", "daemon": "eu-1"})
    note = Notification.create(
        severity=Severity.HIGH, kind=NotificationKind.KILL_SWITCH, title="t", at=datetime.now(UTC)
    )
    await fanout.send(note)
    assert memory.sent[0].to_dict()["origin"] == {"host": "h1", "daemon": "eu-1"}
    plain = MemoryNotifier()
    await FanoutNotifier([plain]).send(note)
    assert "origin" not in plain.sent[0].to_dict()
