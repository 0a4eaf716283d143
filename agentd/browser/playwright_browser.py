"""Chromium through Playwright's async API: one browser, a fresh context per operation.

Every request a page makes — not only the navigations the agent starts — goes
through :meth:`BrowserSession._route`, which lets it out only when its host is
on the account's allowlist. Screenshots mask secret fields (``data-secret``
elements and password inputs) with a solid colour. A trace per operation is
kept beside its screenshots; steps that type a secret are left out of it,
because a trace records the values a ``fill`` typed.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from loguru import logger
from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Dialog,
    Locator,
    Page,
    Playwright,
    Request,
    Route,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from agentd.browser import (
    PASSIVE_ACTIONS,
    StepFailed,
    StepProblem,
    certainly_allowed_pattern,
    host_allowed,
)
from agentd.errors import ExternalError
from agentd.kb import Action, Step, frame_parts
from agentd.ops_config import BrowserSettings

CHROMIUM_ARGS = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
SECRET_SELECTOR = '[data-secret="true"], input[type="password"]'
MASK_COLOR = "#FF00FF"
# Installed in every page before its own scripts run, so each capture is masked
# without a per-screenshot round trip: secret fields become solid blocks.
MASK_STYLE = (
    f"{SECRET_SELECTOR} {{ background: {MASK_COLOR} !important;"
    f" border-color: {MASK_COLOR} !important; color: transparent !important;"
    " -webkit-text-fill-color: transparent !important; text-shadow: none !important;"
    " caret-color: transparent !important; }"
    ' [data-secret="true"]::placeholder, input[type="password"]::placeholder'
    " { color: transparent !important; }"
)
MASK_SCRIPT = f"""(() => {{
  const install = () => {{
    const style = document.createElement('style');
    style.setAttribute('data-agentd-mask', '');
    style.textContent = {MASK_STYLE!r};
    (document.head || document.documentElement).appendChild(style);
  }};
  if (document.documentElement) install();
  else document.addEventListener('DOMContentLoaded', install, {{ once: true }});
}})();"""
# A form field's value or an element's text; null for a secret field.
EXTRACT_SCRIPT = """el => {
  const secret = el.getAttribute('data-secret') === 'true';
  if (secret || (el.tagName === 'INPUT' && el.type === 'password')) return null;
  if (['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName)) return el.value;
  return el.innerText.trim();
}"""
JPEG_QUALITY = 60
CAPTURE_ATTEMPTS = 3
SELECTOR_ACTIONS = frozenset(
    {
        Action.CLICK,
        Action.FILL,
        Action.SELECT_OPTION,
        Action.CHECK,
        Action.PRESS,
        Action.WAIT_FOR,
        Action.EXPECT_TEXT,
        Action.EXTRACT,
    }
)


async def _at_once() -> None:
    """A step that needs nothing before it acts."""


class PlaywrightBrowser:
    """One Chromium process shared by every operation, launched on first use."""

    def __init__(self, settings: BrowserSettings) -> None:
        self.settings = settings
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> Browser:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            path = self.settings.executable_path
            if not path.is_file():
                raise ExternalError(
                    f"Chromium not found at {path}; install it (apt install chromium) or set "
                    "[browser] executable_path",
                    details={"path": str(path)},
                )
            try:
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=str(path),
                    headless=self.settings.headless,
                    chromium_sandbox=False,
                    args=list(CHROMIUM_ARGS),
                )
            except PlaywrightError as exc:
                raise ExternalError(f"cannot launch Chromium at {path}: {exc.message}") from exc
            return self._browser

    async def new_session(
        self,
        allowed_hosts: Sequence[str],
        folder: Path,
        *,
        base_url: str,
        settings: BrowserSettings | None = None,
    ) -> BrowserSession:
        """Open a fresh context for one operation, with its host allowlist and trace.

        ``settings`` (timeouts, viewport, screenshots, trace) default to the browser's.

        :raises ExternalError: Chromium cannot be launched.
        """
        browser = await self._ensure()
        settings = settings or self.settings
        try:
            context = await browser.new_context(
                viewport={"width": settings.viewport_width, "height": settings.viewport_height},
                service_workers="block",  # a worker's fetches would bypass route interception
            )
        except PlaywrightError as exc:
            raise ExternalError(f"cannot open a browser context: {exc.message}") from exc
        session = BrowserSession(context, allowed_hosts, folder, settings, base_url)
        await session.open()
        return session

    async def close(self) -> None:
        """Close Chromium and Playwright; safe to call twice."""
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        if browser is not None:
            try:
                await browser.close()
            except PlaywrightError as exc:
                logger.warning("closing Chromium failed: {}", exc.message)
        if playwright is not None:
            await playwright.stop()


class BrowserSession:
    """One operation's browser context and page."""

    def __init__(
        self,
        context: BrowserContext,
        allowed_hosts: Sequence[str],
        folder: Path,
        settings: BrowserSettings,
        base_url: str,
    ) -> None:
        self.context = context
        self.allowed_hosts = tuple(allowed_hosts)
        self.folder = folder
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.timeout_ms = settings.step_timeout_s * 1000
        self.blocked: list[str] = []
        self._page: Page | None = None
        self._armed: tuple[str, asyncio.Future[None]] | None = None
        self._dialog_problem: str | None = None
        self._tracing = False
        self._chunks = 0
        self._cdp: CDPSession | None = None
        self._closed = False
        self._trace_started = False

    @property
    def page(self) -> Page:
        assert self._page is not None, "session not open"
        return self._page

    async def open(self) -> None:
        """Install the allowlist, start the trace and open the page."""
        self.context.set_default_timeout(self.timeout_ms)
        self.context.set_default_navigation_timeout(self.timeout_ms)
        # Requests the browser can tell are allowed skip the round trip to us.
        fast = certainly_allowed_pattern(self.allowed_hosts)
        routed: str | re.Pattern[str] = re.compile(f"^(?!{fast})") if fast else "**/*"
        await asyncio.gather(
            self.context.route(routed, self._route),
            self.context.add_init_script(MASK_SCRIPT),
            self._start_trace(),
        )
        self._page = await self.context.new_page()
        self._page.on("dialog", self._on_dialog)
        self._cdp = await self.context.new_cdp_session(self._page)

    async def _start_trace(self) -> None:
        if self.settings.trace:
            # No DOM snapshots: they would record secret field values.
            await self.context.tracing.start(snapshots=False, screenshots=False)
            self._trace_started = True
            await self.context.tracing.start_chunk()
            self._tracing = True

    async def _route(self, route: Route, request: Request) -> None:
        if host_allowed(request.url, self.allowed_hosts):
            await route.continue_()
            return
        self.blocked.append(request.url)
        logger.warning("blocked a request off the allowlist: {}", request.url)
        await route.abort("blockedbyclient")

    async def _on_dialog(self, dialog: Dialog) -> None:
        armed = self._armed
        if armed is not None and armed[0] in dialog.message and not armed[1].done():
            await dialog.accept()
            armed[1].set_result(None)
            return
        self._dialog_problem = f"unexpected dialog {dialog.message!r}" + (
            f" (waiting for one containing {armed[0]!r})" if armed else ""
        )
        await dialog.dismiss()

    # -- evidence -------------------------------------------------------------------------

    async def screenshot(
        self, kind: Literal["png", "jpeg"] | None = None, *, scale: float | None = None
    ) -> bytes:
        """Return a screenshot of the viewport with every secret field painted over.

        ``scale`` (default: the ``screenshot_scale`` setting) shrinks the image:
        Chromium scales the copy of the frame before encoding it, which halves
        the capture's cost at 0.5.

        The page's mask stylesheet paints the fields; Chromium is asked directly
        (optimised for speed), since a step's screenshot is on the agent's
        critical path. A navigation in flight may have no frame to capture yet,
        or may swap the page's renderer and detach the session: the capture is
        tried again shortly, on a fresh session after the second failure.
        Playwright's own ``mask`` (full size) is the last resort.
        """
        kind = kind or self.settings.screenshot_format
        scale = self.settings.screenshot_scale if scale is None else scale
        params: dict[str, Any] = {"format": kind, "optimizeForSpeed": True}
        if kind == "jpeg":
            params["quality"] = JPEG_QUALITY
        for attempt in range(CAPTURE_ATTEMPTS):
            try:
                if self._cdp is None:
                    self._cdp = await self.context.new_cdp_session(self.page)
                if scale < 1:
                    # A clip is in page coordinates: the viewport is where it is scrolled to.
                    view = (await self._cdp.send("Page.getLayoutMetrics"))["cssVisualViewport"]
                    params["clip"] = {
                        "x": view["pageX"],
                        "y": view["pageY"],
                        "width": view["clientWidth"],
                        "height": view["clientHeight"],
                        "scale": scale,
                    }
                answer = await self._cdp.send("Page.captureScreenshot", params)
                return base64.b64decode(answer["data"])
            except PlaywrightError as exc:
                logger.debug("fast screenshot failed (attempt {}): {}", attempt + 1, exc.message)
                if attempt:
                    self._cdp = None
                await asyncio.sleep(0.02 * (attempt + 1))
        return await self.masked_screenshot(kind)

    async def masked_screenshot(self, kind: Literal["png", "jpeg"] = "png") -> bytes:
        """Return a screenshot through Playwright with its ``mask`` over secret fields."""
        page = self.page
        try:
            return await page.screenshot(
                type=kind,
                quality=JPEG_QUALITY if kind == "jpeg" else None,
                mask=[page.locator(SECRET_SELECTOR)],
                mask_color=MASK_COLOR,
                animations="disabled",
                caret="hide",
                timeout=self.timeout_ms,
            )
        except PlaywrightError as exc:
            raise ExternalError(f"screenshot failed: {exc.message}") from exc

    async def hide_from_trace(self, hidden: bool) -> None:
        """Stop the trace before a step that types a secret; start it again after.

        A trace records the values a ``fill`` typed. Consecutive secret steps
        share one pause; each pause closes a chunk (``trace-N.zip``).

        :raises ExternalError: the trace could not be paused or resumed.
        """
        try:
            if hidden:
                await self.pause_trace()
            else:
                await self.resume_trace()
        except PlaywrightError as exc:
            raise ExternalError(f"cannot pause or resume the trace: {exc.message}") from exc

    async def pause_trace(self) -> None:
        """Close the current trace chunk (before a step that types a secret)."""
        if self._tracing:
            self._chunks += 1
            self._tracing = False
            await self.context.tracing.stop_chunk(path=self.folder / f"trace-{self._chunks}.zip")

    async def resume_trace(self) -> None:
        """Start a new trace chunk."""
        if self._trace_started and not self._tracing:
            self._tracing = True
            await self.context.tracing.start_chunk()

    async def save_trace(self) -> None:
        """Write the last trace chunk and stop tracing (logged, not raised, on failure)."""
        if not self._trace_started:
            return
        self._trace_started = False
        try:
            await self.pause_trace()
            await self.context.tracing.stop()
        except PlaywrightError as exc:
            logger.warning("could not save the trace in {}: {}", self.folder, exc.message)

    async def close(self) -> None:
        """Save the trace and close the context; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self.save_trace()
        try:
            await self.context.close()
        except PlaywrightError as exc:
            logger.warning("closing a browser context failed: {}", exc.message)

    def url(self) -> str:
        """Return the page's current URL."""
        return self.page.url

    async def outline(self, limit: int = 4000) -> str:
        """Return a short text outline of the page (for the planner; secrets excluded)."""
        script = """(limit) => {
          const out = [];
          const wanted = 'a,button,input,select,textarea,h1,h2,label,[data-testid]';
          for (const el of document.querySelectorAll(wanted)) {
            if (el.closest('[data-secret="true"]') || el.type === 'password') continue;
            const id = el.getAttribute('data-testid');
            const label = el.innerText || el.getAttribute('aria-label') || el.name || '';
            const text = label.trim().slice(0, 60);
            out.push(`${el.tagName.toLowerCase()}${id ? `[data-testid="${id}"]` : ''} ${text}`);
          }
          return out.join('\\n').slice(0, limit);
        }"""
        try:
            return str(await self.page.evaluate(script, limit))
        except PlaywrightError:
            return ""

    # -- steps ----------------------------------------------------------------------------

    def absolute(self, target: str) -> str:
        """Return the URL a ``goto`` target points at (paths are relative to the site)."""
        if target.startswith(("http://", "https://")):
            return target
        return urljoin(self.base_url + "/", target.lstrip("/"))

    async def perform(
        self, step: Step, ready: Callable[[], Awaitable[None]] | None = None
    ) -> str | None:
        """Carry out one rendered step; return the extracted value for ``extract``.

        ``ready`` is awaited before a step that changes the page acts (for a
        click, once Playwright's actionability checks have passed; the click
        then acts without repeating them). What it raises is raised as is.

        :raises StepFailed: the step did not do what it should (``problem`` says how).
        """
        armed_before = self._armed
        try:
            extracted = await self._perform(step, ready or _at_once)
            if step.expect and step.action is not Action.EXPECT_TEXT:
                await expect(self.page.locator("body")).to_contain_text(
                    step.expect, timeout=self.timeout_ms
                )
            if armed_before is not None and step.action is not Action.ACCEPT_DIALOG:
                await self._await_dialog(armed_before)
        except StepFailed:
            raise
        except AssertionError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "assertion failed"
            raise StepFailed(StepProblem.EXPECTATION, first) from exc
        except PlaywrightTimeout as exc:
            raise await self._timeout_problem(step) from exc
        except PlaywrightError as exc:
            raise self._error_problem(step, exc) from exc
        if self._dialog_problem:
            problem, self._dialog_problem = self._dialog_problem, None
            raise StepFailed(StepProblem.DIALOG, problem)
        return extracted

    async def _await_dialog(self, armed: tuple[str, asyncio.Future[None]]) -> None:
        self._armed = None
        try:
            await asyncio.wait_for(asyncio.shield(armed[1]), self.settings.step_timeout_s)
        except TimeoutError:
            raise StepFailed(
                StepProblem.DIALOG,
                f"the dialog containing {armed[0]!r} never appeared "
                f"within {self.settings.step_timeout_s:g}s",
            ) from None

    def _locate(self, target: str) -> Locator:
        """Return the element a step's selector names (entering its iframes, if any)."""
        frames, inner = frame_parts(target)
        if not frames:
            return self.page.locator(inner)
        scope = self.page.frame_locator(frames[0])
        for frame in frames[1:]:
            scope = scope.frame_locator(frame)
        return scope.locator(inner)

    async def _perform(self, s: Step, ready: Callable[[], Awaitable[None]]) -> str | None:
        page = self.page
        locator = self._locate(s.target)
        if s.action is Action.CLICK:
            # Checked while the caller gets ready (its screenshot), then clicked as checked.
            await locator.click(trial=True)
            await ready()
            await locator.click(force=True)
            return None
        if s.action not in PASSIVE_ACTIONS:
            await ready()
        match s.action:
            case Action.GOTO:
                response = await page.goto(self.absolute(s.target))
                if response is None or response.status >= 400:
                    status = response.status if response else "no response"
                    raise StepFailed(StepProblem.NAVIGATION, f"goto {s.target} answered {status}")
            case Action.FILL:
                await locator.fill(s.value or "")
            case Action.SELECT_OPTION:
                await locator.select_option(s.value or "")
            case Action.CHECK:
                await locator.check()
            case Action.PRESS:
                await locator.press(s.value or "")
            case Action.WAIT_FOR:
                await locator.wait_for(state="visible")
            case Action.EXPECT_TEXT:
                await expect(locator).to_contain_text(s.expect or "", timeout=self.timeout_ms)
            case Action.EXPECT_URL:
                await page.wait_for_url(lambda url: urlsplit(url).path == s.target)
            case Action.EXTRACT:
                return await self._extract(s.target)
            case Action.ACCEPT_DIALOG:
                self._armed = (s.target, asyncio.get_running_loop().create_future())
        return None

    async def _extract(self, target: str) -> str:
        # One round trip: the locator waits for the element, the script reads it.
        found = await self._locate(target).evaluate(EXTRACT_SCRIPT)
        if found is None:
            # Secrets are shown once for a person; an agent never reads them back.
            raise StepFailed(
                StepProblem.REFUSED, f"refusing to extract {target}: it is a secret field"
            )
        return str(found)

    async def _timeout_problem(self, s: Step) -> StepFailed:
        limit = f"{self.settings.step_timeout_s:g}s"
        if s.action in SELECTOR_ACTIONS:
            try:
                count = await self._locate(s.target).count()
            except PlaywrightError:
                count = -1
            if count == 0:
                return StepFailed(
                    StepProblem.NOT_FOUND,
                    f"{s.action} target {s.target} matched nothing in {limit}",
                )
        return StepFailed(StepProblem.TIMEOUT, f"{s.action} {s.target} timed out after {limit}")

    def _error_problem(self, s: Step, exc: PlaywrightError) -> StepFailed:
        message = exc.message.strip().splitlines()[0] if exc.message else str(exc)
        if "ERR_BLOCKED_BY_CLIENT" in message:
            return StepFailed(
                StepProblem.NAVIGATION,
                f"{s.action} {s.target}: the host is not on the account's allowlist",
            )
        if s.action in SELECTOR_ACTIONS and ("selector" in message.lower()):
            return StepFailed(StepProblem.BAD_SELECTOR, f"unusable selector {s.target}: {message}")
        if "net::" in message or s.action is Action.GOTO:
            return StepFailed(StepProblem.NAVIGATION, f"{s.action} {s.target} failed: {message}")
        return StepFailed(StepProblem.TIMEOUT, f"{s.action} {s.target} failed: {message}")
