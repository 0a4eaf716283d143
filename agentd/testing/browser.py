"""A scripted browser and an in-memory operation log: the agent without Chromium or a store.

:class:`ScriptedBrowser` satisfies :class:`~agentd.browser.protocols.Browser`.
Its site is a few pages (a path, the text each selector shows, where a click
leads); its sessions keep the form's values, count every change to the page
(``version``) and record what happened in order (``events``): a capture's
start and end, with the version it shows, and each step's act (``on_act``
runs after each change, e.g. to revoke the consent there). A capture
takes ``capture_s`` (so a step that did not wait for it would show in it),
shows the page as it is when it ends, masks the fields holding a protected
(vault) value and is refused when a page's text shows one. A step can be
scripted to fail (``failures``: step index to problem).

:class:`MemoryOperationLog` satisfies
:class:`~agentd.browser.journal.OperationLog`: the consent in force, the
host allowlist and the secrets are set by the test; step records, audit
events and the end are kept in lists. ``on_step`` runs after each write of
step records (e.g. to revoke the consent mid-run).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

import anyio

from agentd.browser import CaptureRefused, StepFailed, StepProblem
from agentd.browser.journal import OperationEnd, StepEntry
from agentd.core.audit import AuditEvent
from agentd.errors import NotFound

if TYPE_CHECKING:
    from agentd.kb import Step
    from agentd.ops_config import BrowserSettings
    from agentd.store.records import OperationRow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class ScriptedPage:
    """One page of the scripted site: what its selectors show, where its clicks lead."""

    texts: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # selector: path a click opens


@dataclass(frozen=True)
class Event:
    """What happened in a session: ``capture_start``/``capture`` (``version`` shown) or ``act``."""

    kind: str
    version: int
    step: int = 0
    action: str = ""


def shown(png: bytes) -> dict[str, Any]:
    """Return the page state a scripted capture shows (``version``, ``path``, ``fields``)."""
    assert png.startswith(PNG_MAGIC), "not a scripted capture"
    state: dict[str, Any] = json.loads(png[len(PNG_MAGIC) :])
    return state


class ScriptedSession:
    """One operation's scripted page (see the module's docstring)."""

    def __init__(self, browser: ScriptedBrowser, allowed_hosts: Sequence[str], base_url: str):
        self.browser = browser
        self.allowed_hosts = tuple(allowed_hosts)
        self.settings = browser.settings
        self.base_url = base_url.rstrip("/")
        self.path: str | None = None
        self.fields: dict[str, str] = {}
        self.version = 0
        self.events: list[Event] = []
        self.closed = False
        self._vault: dict[str, str] = {}

    def protect(self, secrets: Mapping[str, str]) -> None:
        """Name the values captures must mask (in fields) and never show (in text)."""
        self._vault = {name: value for name, value in secrets.items() if value}

    def url(self) -> str:
        """Return the page's URL (``about:blank`` before the first ``goto``)."""
        return "about:blank" if self.path is None else self.absolute(self.path)

    def absolute(self, target: str) -> str:
        """Return the URL a ``goto`` target points at."""
        if target.startswith(("http://", "https://")):
            return target
        return urljoin(self.base_url + "/", target.lstrip("/"))

    def refused_hosts(self) -> list[str]:
        """Return the hosts kept from the page (none: the script goes nowhere else)."""
        return []

    def page(self) -> ScriptedPage:
        """Return the page open now (an empty one off the script)."""
        return self.browser.pages.get(self.path or "", ScriptedPage())

    async def screenshot(
        self, kind: Literal["png", "jpeg"] | None = None, *, scale: float | None = None
    ) -> bytes:
        """Capture the page as it is when the capture ends (it takes ``capture_s``)."""
        self.events.append(Event("capture_start", self.version))
        await anyio.sleep(self.browser.capture_s)
        text = " ".join(self.page().texts.values())
        names = sorted(n for n, v in self._vault.items() if v in text)
        if names:
            raise CaptureRefused(f"the page shows {', '.join(names)}", names=names)
        secret = set(self._vault.values())
        fields = {k: ("*" * 8 if v in secret else v) for k, v in self.fields.items()}
        self.events.append(Event("capture", self.version))
        state = {"version": self.version, "path": self.path, "fields": fields}
        return PNG_MAGIC + json.dumps(state, sort_keys=True).encode()

    async def masked_screenshot(self, kind: Literal["png", "jpeg"] = "png") -> bytes:
        """Capture the page at full size (for the planner)."""
        return await self.screenshot(kind, scale=1.0)

    async def outline(self, limit: int = 4000) -> str:
        """Return the page's selectors and texts."""
        return json.dumps(self.page().texts)[:limit]

    async def digest(self, limit: int = 80) -> list[dict[str, str]]:
        """Return the page's elements: one per scripted selector, with its text."""
        items = list(self.page().texts.items())[:limit]
        return [{"tag": "div", "testid": "", "text": text, "selector": sel} for sel, text in items]

    async def perform(
        self,
        step: Step,
        ready: Callable[[], Awaitable[None]] | None = None,
        *,
        secrets: Sequence[str] = (),
        secret_field_only: bool = True,
        sign_in: bool = False,
    ) -> str | None:
        """Carry out a step on the script; a change waits for ``ready`` first."""
        problem = self.browser.failures.get(step.index)
        if problem is not None:
            raise StepFailed(problem, f"scripted failure of step {step.index}")
        action = step.action.value
        if action in ("wait_for", "expect_text", "expect_url", "extract", "accept_dialog"):
            return self._read(step)
        if ready is not None:
            await ready()
        self.version += 1
        self.events.append(Event("act", self.version, step.index, action))
        self.browser.on_act(self.events[-1])
        if action == "goto":
            self.path = urlsplit(self.absolute(step.target)).path
            self.fields = {}
        elif action in ("fill", "select_option"):
            self.fields[step.target] = step.value or ""
        elif action == "check":
            self.fields[step.target] = "checked"
        elif action == "click" and step.target in self.page().links:
            self.path, self.fields = self.page().links[step.target], {}
        return None

    def _read(self, step: Step) -> str | None:
        self.events.append(Event("act", self.version, step.index, step.action.value))
        texts = self.page().texts
        if step.action.value == "expect_text" and (step.expect or "") not in texts.get(
            step.target, ""
        ):
            raise StepFailed(StepProblem.EXPECTATION, f"{step.target} does not show {step.expect}")
        if step.action.value == "extract":
            return texts.get(step.target, "")
        return None

    async def hide_from_trace(self, hidden: bool) -> None:
        """Nothing to hide: no trace."""

    async def save_trace(self) -> None:
        """Nothing to save: no trace."""

    async def close(self) -> None:
        """Close the page."""
        self.closed = True


class ScriptedBrowser:
    """A browser over a scripted site (see the module's docstring)."""

    def __init__(
        self,
        settings: BrowserSettings,
        pages: Mapping[str, ScriptedPage],
        *,
        failures: Mapping[int, StepProblem] | None = None,
        capture_s: float = 0.02,
        on_act: Callable[[Event], None] = lambda event: None,
    ) -> None:
        self.settings = settings
        self.pages = dict(pages)
        self.failures = dict(failures or {})
        self.capture_s = capture_s
        self.on_act = on_act
        self.sessions: list[ScriptedSession] = []

    def describe(self) -> dict[str, Any]:
        """Return what ``status`` would show."""
        return {"scripted": True, "running": bool(self.sessions)}

    async def new_session(
        self,
        allowed_hosts: Sequence[str],
        folder: Path,
        *,
        base_url: str,
        settings: BrowserSettings | None = None,
    ) -> ScriptedSession:
        """Open a fresh scripted page."""
        session = ScriptedSession(self, allowed_hosts, base_url)
        self.sessions.append(session)
        return session

    async def close(self) -> None:
        """Close every session."""
        for session in self.sessions:
            await session.close()


@dataclass
class MemoryOperationLog:
    """An operation log in memory (see the module's docstring)."""

    operations: dict[str, OperationRow] = field(default_factory=dict)
    consent: Any = None  # the consent in force (anything with operation, permissions, version)
    hosts: Sequence[str] | None = ()
    blobs: dict[str, bytes] = field(default_factory=dict)
    audits: list[AuditEvent] = field(default_factory=list)
    steps: list[StepEntry] = field(default_factory=list)
    ends: list[OperationEnd] = field(default_factory=list)
    on_step: Callable[[StepEntry], None] = lambda entry: None

    async def operation(self, op_id: str) -> OperationRow:
        """Return the operation as given (its end applied)."""
        if op_id not in self.operations:
            raise NotFound(f"unknown operation {op_id!r}")
        return self.operations[op_id]

    async def active_consent(self, account: str, service: str, workflow: str) -> Any:
        """Return the consent the test put in force."""
        return self.consent

    async def allowed_hosts(self, account: str) -> Sequence[str] | None:
        """Return the allowlist the test set."""
        return self.hosts

    async def secret_blobs(
        self, account: str, service: str, names: Sequence[str]
    ) -> Mapping[str, bytes]:
        """Return the sealed secrets the test stored."""
        return {n: b for n, b in self.blobs.items() if n in names}

    async def audit(self, event: AuditEvent) -> None:
        """Keep an audit event."""
        self.audits.append(event)

    async def write_steps(self, op_id: str, owner: str, steps: Sequence[StepEntry]) -> None:
        """Keep step records."""
        for entry in steps:
            self.steps.append(entry)
            self.on_step(entry)

    async def record_end(self, end: OperationEnd, owner: str, steps: Sequence[StepEntry]) -> None:
        """Keep the last step records and the end."""
        self.steps.extend(steps)
        self.ends.append(end)


if TYPE_CHECKING:
    # Checked by mypy: the doubles satisfy the interfaces the agent is typed against.
    from agentd.browser.journal import OperationLog
    from agentd.browser.protocols import Browser

    def _conforms(settings: BrowserSettings) -> tuple[Browser, OperationLog]:
        return ScriptedBrowser(settings, {}), MemoryOperationLog()
