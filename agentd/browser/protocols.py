"""What the agent needs of a browser: the interfaces its browser and sessions satisfy.

:class:`~agentd.browser.playwright_browser.PlaywrightBrowser` (Chromium
through Playwright) is the browser the daemon wires in;
:class:`agentd.testing.browser.ScriptedBrowser` is a scripted double that
runs the agent's rules (capture ordering, consent, refusals) without
Chromium. Nothing here imports Playwright.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from agentd.kb import Step
    from agentd.ops_config import BrowserSettings


class Session(Protocol):
    """One operation's browser context and page (fresh, signed out)."""

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """The account's host allowlist the session enforces."""
        ...

    @property
    def settings(self) -> BrowserSettings:
        """The session's timeouts, viewport, screenshot and trace settings."""
        ...

    def protect(self, secrets: Mapping[str, str]) -> None:
        """Name the vault values the session's captures must mask, or refuse to show."""
        ...

    def url(self) -> str:
        """Return the page's URL."""
        ...

    def absolute(self, target: str) -> str:
        """Return the URL a ``goto`` target points at."""
        ...

    def refused_hosts(self) -> list[str]:
        """Return the hosts the session kept the page from."""
        ...

    async def screenshot(
        self, kind: Literal["png", "jpeg"] | None = None, *, scale: float | None = None
    ) -> bytes:
        """Return a masked capture of the viewport.

        :raises CaptureRefused: the page's text shows a secret.
        """
        ...

    async def masked_screenshot(self, kind: Literal["png", "jpeg"] = "png") -> bytes:
        """Return a masked capture at full size (for the planner)."""
        ...

    async def outline(self, limit: int = 4000) -> str:
        """Return a short text outline of the page (for the planner)."""
        ...

    async def digest(self, limit: int = 80) -> list[dict[str, str]]:
        """Return the page's visible elements as text fields (for agent mode; no secret values)."""
        ...

    async def perform(
        self,
        step: Step,
        ready: Callable[[], Awaitable[None]] | None = None,
        *,
        secrets: Sequence[str] = (),
        secret_field_only: bool = True,
        sign_in: bool = False,
    ) -> str | None:
        """Carry out one rendered step (``ready`` awaited before it changes the page).

        :raises StepFailed: the step did not do what it should.
        """
        ...

    async def hide_from_trace(self, hidden: bool) -> None:
        """Keep the next step out of the trace (it types a secret) or not."""
        ...

    async def save_trace(self) -> None:
        """Write the session's trace file, if tracing."""
        ...

    async def close(self) -> None:
        """Close the context; safe to call twice."""
        ...


class Browser(Protocol):
    """Open sessions for operations."""

    def describe(self) -> dict[str, Any]:
        """Return what ``status`` shows of the browser."""
        ...

    async def new_session(
        self,
        allowed_hosts: Sequence[str],
        folder: Path,
        *,
        base_url: str,
        settings: BrowserSettings | None = None,
    ) -> Session:
        """Open a fresh context for one operation, with its host allowlist.

        :raises ExternalError: the browser cannot be started.
        """
        ...

    async def close(self) -> None:
        """Close the browser; safe to call twice."""
        ...
