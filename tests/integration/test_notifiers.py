"""Notifiers against real files, the real logger and a real local HTTP server."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from agentd.errors import ExternalError, InvalidArgument
from agentd.notifiers import (
    FanoutNotifier,
    FileNotifier,
    LogNotifier,
    MemoryNotifier,
    Notification,
    NotificationKind,
    Notifier,
    Severity,
    WebhookNotifier,
)
from agentd.testing.anthropic_stub import blackhole_server, closed_port_url

AT = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def note(**overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "id": "n-0001",
        "at": AT,
        "severity": Severity.CRITICAL,
        "kind": NotificationKind.BREAKER,
        "title": "Circuit breaker tripped: high error rate",
        "body": "error rate 7.5% > 5% over 5 min; autonomy reverted to L3",
        "refs": {"breaker": "high_error_rate"},
    }
    fields.update(overrides)
    return Notification(**fields)


def files_in(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


# --- a local webhook receiver ------------------------------------------------


@dataclass
class Receiver:
    url: str
    status: int = 200
    location: str | None = None
    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            state.bodies.append(json.loads(raw))
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0K3N-in-path?key=abc"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- notification ------------------------------------------------------------


def test_notification_validation() -> None:
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        note(at=datetime(2025, 1, 1))
    with pytest.raises(InvalidArgument, match="id"):
        note(id="")
    with pytest.raises(InvalidArgument, match="title"):
        note(title="")


def test_create_stamps_id_and_time() -> None:
    first = Notification.create(
        severity=Severity.HIGH, kind=NotificationKind.INCIDENT, title="Rollback failed"
    )
    second = Notification.create(
        severity=Severity.HIGH, kind=NotificationKind.INCIDENT, title="Rollback failed"
    )
    assert first.id != second.id
    assert abs(datetime.now(UTC) - first.at) < timedelta(seconds=5)


# --- files -------------------------------------------------------------------


async def test_file_notifier_writes_one_json_file(tmp_path: Path) -> None:
    folder = tmp_path / "notifications"
    await FileNotifier(folder).send(note())
    (path,) = files_in(folder)
    assert path.name == "20250304T050607.890123Z-n-0001.json"
    assert json.loads(path.read_text()) == {
        "id": "n-0001",
        "at": "2025-03-04T05:06:07.890123+00:00",
        "severity": "critical",
        "kind": "breaker",
        "title": "Circuit breaker tripped: high error rate",
        "body": "error rate 7.5% > 5% over 5 min; autonomy reverted to L3",
        "refs": {"breaker": "high_error_rate"},
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


async def test_file_names_sort_by_time_then_id(tmp_path: Path) -> None:
    notifier = FileNotifier(tmp_path)
    plus_two = timezone(timedelta(hours=2))
    # sent out of order, and one in another time zone: names still sort by UTC time
    await notifier.send(note(id="c", at=AT + timedelta(minutes=1)))
    await notifier.send(note(id="b", at=AT.astimezone(plus_two)))
    await notifier.send(note(id="a", at=AT))
    await notifier.send(note(id="d", at=AT - timedelta(days=1)))
    names = [p.name for p in files_in(tmp_path)]
    ids = [json.loads((tmp_path / name).read_text())["id"] for name in names]
    assert ids == ["d", "a", "b", "c"]


async def test_same_notification_twice_is_one_file(tmp_path: Path) -> None:
    notifier = FileNotifier(tmp_path)
    await notifier.send(note())
    await notifier.send(note())
    assert len(files_in(tmp_path)) == 1


async def test_id_cannot_escape_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    await FileNotifier(folder).send(note(id="../../escaped"))
    assert [p.parent for p in files_in(folder)] == [folder]
    assert files_in(tmp_path) == [folder]


async def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ExternalError, match="No space left on device"):
        await FileNotifier(tmp_path).send(note())
    assert files_in(tmp_path) == []  # neither the temp file nor a partial file


async def test_folder_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "notifications"
    blocker.write_text("not a folder")
    with pytest.raises(ExternalError, match="cannot write notification"):
        await FileNotifier(blocker).send(note())


# --- log ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        (Severity.CRITICAL, "ERROR"),
        (Severity.HIGH, "ERROR"),
        (Severity.MEDIUM, "WARNING"),
        (Severity.LOW, "WARNING"),
        (Severity.INFO, "WARNING"),
    ],
)
async def test_log_notifier_level_by_severity(severity: Severity, level: str) -> None:
    records: list[Any] = []
    sink = logger.add(records.append, level="DEBUG", format="{message}")
    try:
        await LogNotifier().send(note(severity=severity, title="Kill switch {on}"))
    finally:
        logger.remove(sink)
    (message,) = records
    assert message.record["level"].name == level
    assert "Kill switch {on}" in message.record["message"]
    assert message.record["extra"]["notification_id"] == "n-0001"


# --- webhook -----------------------------------------------------------------


async def test_webhook_posts_the_json(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, timeout_s=2, headers={"X-Token": "abc"})
    await notifier.send(note())
    assert receiver.bodies == [note().to_dict()]
    assert receiver.headers[0]["content-type"] == "application/json"
    assert receiver.headers[0]["x-token"] == "abc"


@pytest.mark.parametrize(("status", "reason"), [(500, "Internal Server Error"), (404, "Not Found")])
async def test_webhook_error_status(receiver: Receiver, status: int, reason: str) -> None:
    receiver.status = status
    with pytest.raises(ExternalError) as info:
        await WebhookNotifier(receiver.url, timeout_s=2).send(note())
    assert f"answered HTTP {status} {reason}" in str(info.value)
    assert info.value.details["status"] == status
    assert "T0K3N" not in str(info.value)  # the URL's secret parts never show
    assert "key=abc" not in str(info.value)


async def test_webhook_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.status = 307
    receiver.location = "http://127.0.0.1:9/elsewhere"
    with pytest.raises(ExternalError, match="HTTP 307"):
        await WebhookNotifier(receiver.url, timeout_s=2).send(note())
    assert len(receiver.bodies) == 1


async def test_webhook_that_never_answers_times_out() -> None:
    with blackhole_server() as url:
        started = time.monotonic()
        with pytest.raises(ExternalError, match=r"did not answer within 0\.5s") as info:
            await WebhookNotifier(url + "/hook", timeout_s=0.5).send(note())
        assert time.monotonic() - started < 2
    assert info.value.details["reason"] == "timeout"


async def test_webhook_connection_refused() -> None:
    started = time.monotonic()
    with pytest.raises(ExternalError, match="unreachable: Connection refused"):
        await WebhookNotifier(closed_port_url() + "/hook", timeout_s=2).send(note())
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("url", "timeout_s"),
    [("ftp://example.org/x", 5), ("http:///no-host", 5), ("not a url", 5), ("http://h/x", 0)],
)
def test_webhook_config_is_validated(url: str, timeout_s: float) -> None:
    with pytest.raises(InvalidArgument):
        WebhookNotifier(url, timeout_s=timeout_s)


def test_webhook_name_hides_path_and_query() -> None:
    notifier = WebhookNotifier("https://hooks.example.org:8443/services/T0K3N?key=abc")
    assert notifier.name == "webhook:https://hooks.example.org:8443"


# --- fan-out -----------------------------------------------------------------


class Exploding:
    name = "exploding"

    async def send(self, n: Notification) -> None:
        raise RuntimeError("boom")


async def test_fanout_one_failure_stops_no_other(tmp_path: Path) -> None:
    memory = MemoryNotifier()
    webhook = WebhookNotifier(closed_port_url() + "/hook", timeout_s=2)
    notifiers: list[Notifier] = [webhook, Exploding(), FileNotifier(tmp_path), memory]
    fanout = FanoutNotifier(notifiers)

    deliveries = await fanout.deliver(note())

    assert [name for name, _ in deliveries] == [
        webhook.name,
        "exploding",
        f"file:{tmp_path}",
        "memory",
    ]
    errors = [err for _, err in deliveries]
    assert isinstance(errors[0], ExternalError)
    assert isinstance(errors[1], RuntimeError)
    assert errors[2:] == [None, None]
    assert len(files_in(tmp_path)) == 1
    assert memory.sent == [note()]


async def test_fanout_send_reports_failures_after_delivering(tmp_path: Path) -> None:
    fanout = FanoutNotifier([Exploding(), FileNotifier(tmp_path)])
    with pytest.raises(ExternalError, match="failed on exploding") as info:
        await fanout.send(note())
    assert info.value.details["delivered"] == [f"file:{tmp_path}"]
    assert info.value.details["failed"] == {"exploding": "boom"}
    assert len(files_in(tmp_path)) == 1


async def test_fanout_all_good(tmp_path: Path) -> None:
    memory = MemoryNotifier()
    await FanoutNotifier([FileNotifier(tmp_path), LogNotifier(), memory]).send(note())
    assert memory.sent == [note()]
    assert isinstance(memory, Notifier)
