"""Notifiers: how an emergency contact hears about incidents, breaker trips and approvals.

By default a notification becomes one JSON file in a notifications folder and a
log line; a webhook is optional. :class:`FanoutNotifier` sends to several and
never lets one failing channel silence the others.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio
from loguru import logger

from agentd.atomic import write_atomically
from agentd.errors import ExternalError, InvalidArgument


class Severity(StrEnum):
    """How urgent a notification is (the breaker and incident vocabulary)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class NotificationKind(StrEnum):
    """What a notification is about."""

    INCIDENT = "incident"
    BREAKER = "breaker"
    APPROVAL = "approval"
    ROLLBACK = "rollback"
    OPERATION = "operation"
    KILL_SWITCH = "kill_switch"
    GOVERNANCE = "governance"
    HANDOFF = "handoff"
    STORE = "store"
    EXECUTION = "execution"


@dataclass(frozen=True)
class Notification:
    """One message for the emergency contact; ``refs`` link it to ids in the store."""

    id: str
    at: datetime
    severity: Severity
    kind: NotificationKind
    title: str
    body: str = ""
    refs: Mapping[str, str] = field(default_factory=dict)
    # Structured content for a machine reading the notification (a hand-off's
    # approved intent); left out of the JSON form when empty.
    data: Mapping[str, Any] = field(default_factory=dict)
    # Which daemon wrote it (``host``, ``daemon``), where several share one store;
    # stamped by :class:`FanoutNotifier`, left out of the JSON form when empty.
    origin: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidArgument("notification id must not be empty")
        if self.at.tzinfo is None:
            raise InvalidArgument("notification time must be timezone-aware")
        if not self.title:
            raise InvalidArgument("notification title must not be empty")

    @classmethod
    def create(
        cls,
        *,
        severity: Severity,
        kind: NotificationKind,
        title: str,
        body: str = "",
        refs: Mapping[str, str] | None = None,
        at: datetime | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Notification:
        """Build a notification with a fresh id, stamped now unless ``at`` is given."""
        return cls(
            id=uuid.uuid4().hex,
            at=at or datetime.now(UTC),
            severity=severity,
            kind=kind,
            title=title,
            body=body,
            refs=dict(refs or {}),
            data=dict(data or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form written to files and posted to webhooks."""
        out = {
            "id": self.id,
            "at": self.at.astimezone(UTC).isoformat(),
            "severity": str(self.severity),
            "kind": str(self.kind),
            "title": self.title,
            "body": self.body,
            "refs": dict(self.refs),
        }
        if self.data:
            out["data"] = dict(self.data)
        if self.origin:
            out["origin"] = dict(self.origin)
        return out


@runtime_checkable
class Notifier(Protocol):
    """Deliver a notification somewhere a person will see it."""

    async def send(self, n: Notification) -> None:
        """Deliver ``n``.

        :raises ExternalError: if it could not be delivered.
        """
        ...


def notifier_name(notifier: Notifier) -> str:
    """Return a notifier's display name (its ``name`` attribute, else its class name)."""
    name = getattr(notifier, "name", None)
    return name if isinstance(name, str) else type(notifier).__name__


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class FileNotifier:
    """Write each notification as one JSON file, atomically, into ``folder``.

    File names sort by time, then id: ``20250101T120000.000000Z-<id>.json``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.name = f"file:{self.folder}"

    def path_for(self, n: Notification) -> Path:
        """Return the file a notification is written to."""
        stamp = n.at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        # the id comes from callers: keep it from naming a path outside the folder
        return self.folder / f"{stamp}-{_UNSAFE.sub('_', n.id)}.json"

    async def send(self, n: Notification) -> None:
        """Write ``n``; sending the same notification twice rewrites the same file.

        :raises ExternalError: if the folder or file cannot be written.
        """
        await anyio.to_thread.run_sync(self._write, n)

    def _write(self, n: Notification) -> None:
        target = self.path_for(n)
        data = json.dumps(n.to_dict(), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
        try:
            write_atomically(target, data, mode=0o640)
        except OSError as exc:
            raise ExternalError(
                f"cannot write notification {target}: {exc.strerror or exc}"
            ) from exc


class LogNotifier:
    """Log each notification: ERROR for high and critical, WARNING otherwise."""

    name = "log"

    async def send(self, n: Notification) -> None:
        """Log ``n`` (never fails)."""
        level = "ERROR" if n.severity in (Severity.HIGH, Severity.CRITICAL) else "WARNING"
        logger.bind(notification_id=n.id, kind=str(n.kind), refs=dict(n.refs)).log(
            level, "notification [{}/{}] {}: {}", n.kind, n.severity, n.title, n.body
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST silently turns into a GET without body: treat it as a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookNotifier:
    """POST each notification as JSON to ``url``.

    Only scheme, host and port appear in names and errors: webhook URLs often
    carry their token in the path or query.

    :raises InvalidArgument: if ``url`` is not http(s) or ``timeout_s`` is not positive.
    """

    def __init__(
        self, url: str, timeout_s: float = 5.0, headers: Mapping[str, str] | None = None
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument("webhook URL must be an http:// or https:// URL with a host")
        if timeout_s <= 0:
            raise InvalidArgument("webhook timeout must be positive")
        self.url = url
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.safe_url = f"{parts.scheme}://{host}"
        self.name = f"webhook:{self.safe_url}"
        self._opener = urllib.request.build_opener(_NoRedirect)

    async def send(self, n: Notification) -> None:
        """POST ``n``; return once the server answered 2xx.

        :raises ExternalError: on a non-2xx answer, a refused connection, or no
            answer within ``timeout_s``.
        """
        body = json.dumps(n.to_dict(), ensure_ascii=False).encode("utf-8")
        try:
            # The socket timeout bounds each read; this bounds the whole exchange.
            with anyio.fail_after(self.timeout_s + 0.5):
                await anyio.to_thread.run_sync(self._post, body, abandon_on_cancel=True)
        except TimeoutError as exc:
            raise self._timeout() from exc

    def _timeout(self) -> ExternalError:
        return ExternalError(
            f"webhook {self.safe_url} did not answer within {self.timeout_s:g}s",
            details={"notifier": self.name, "reason": "timeout"},
        )

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "agentd", **self.headers}
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read(65536)
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise ExternalError(
                f"webhook {self.safe_url} answered HTTP {exc.code} {exc.reason}",
                details={"notifier": self.name, "status": exc.code},
            ) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timeout() from exc
            reason = exc.reason.strerror if isinstance(exc.reason, OSError) else exc.reason
            raise ExternalError(
                f"webhook {self.safe_url} unreachable: {reason}",
                details={"notifier": self.name, "reason": str(reason)},
            ) from exc
        except TimeoutError as exc:
            raise self._timeout() from exc
        except OSError as exc:
            raise ExternalError(
                f"webhook {self.safe_url} failed: {exc.strerror or exc}",
                details={"notifier": self.name},
            ) from exc
        if not 200 <= status < 300:
            raise ExternalError(
                f"webhook {self.safe_url} answered HTTP {status}",
                details={"notifier": self.name, "status": status},
            )


Delivery = tuple[str, Exception | None]
"""(notifier name, the error it raised or None) for one notifier."""


class FanoutNotifier:
    """Send each notification to every notifier at once; one failure stops no other."""

    name = "fanout"

    def __init__(
        self, notifiers: Sequence[Notifier], origin: Mapping[str, str] | None = None
    ) -> None:
        self.notifiers = list(notifiers)
        self.origin = dict(origin or {})

    async def deliver(self, n: Notification) -> list[Delivery]:
        """Send ``n`` (stamped with :attr:`origin`) to all notifiers; return who failed and why."""
        if self.origin and not n.origin:
            n = replace(n, origin=self.origin)
        results: list[Exception | None] = [None] * len(self.notifiers)

        async def one(index: int, notifier: Notifier) -> None:
            try:
                await notifier.send(n)
            except Exception as exc:  # any channel may break; the others must still run
                results[index] = exc
                logger.warning(
                    "notifier {} failed for notification {}: {}", notifier_name(notifier), n.id, exc
                )

        async with anyio.create_task_group() as tg:
            for index, notifier in enumerate(self.notifiers):
                tg.start_soon(one, index, notifier)
        return [(notifier_name(x), err) for x, err in zip(self.notifiers, results, strict=True)]

    async def send(self, n: Notification) -> None:
        """Send ``n`` to all notifiers.

        :raises ExternalError: after every notifier was tried, if any failed;
            ``details["failed"]`` names them, ``details["delivered"]`` the rest.
        """
        deliveries = await self.deliver(n)
        failed = {name: str(err) for name, err in deliveries if err is not None}
        if failed:
            delivered = [name for name, err in deliveries if err is None]
            raise ExternalError(
                f"notification {n.id} failed on {', '.join(failed)}"
                f" (delivered to {', '.join(delivered) or 'none'})",
                details={"failed": failed, "delivered": delivered},
            )


class MemoryNotifier:
    """Keep notifications in a list: the test double services share."""

    name = "memory"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, n: Notification) -> None:
        """Record ``n``."""
        self.sent.append(n)
