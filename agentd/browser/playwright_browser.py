"""Chromium through Playwright's async API: one browser, a fresh context per operation.

Every connection a context opens goes through its own
:class:`~agentd.browser.egress.EgressProxy`, which opens it only to a host on
the account's allowlist: each hop of a redirect chain, WebSockets, prefetches,
popups, beacons. The route handler (:meth:`BrowserSession._route`) refuses
the first request to an off-list host before it reaches the proxy, so such a
navigation fails with a clear error. A step that leaves the page on an
off-list host fails (``HOST_NOT_ALLOWED``), and a ``fill`` first checks the
host of the document it types into. Screenshots mask secret fields
(``data-secret`` elements, password inputs, and every field a vault value was
typed into or shows) with a solid colour, and a capture of a page whose text
shows a credential is refused (:meth:`BrowserSession.protect` says which
values). A trace per operation is kept beside its screenshots; steps that type
a secret are left out of it, because a trace records the values a ``fill``
typed.

Playwright takes most of a second to import, so it is imported when the
browser is first launched (:func:`_load_playwright`), not with this module:
the daemon starts, and the CLI runs, without it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urljoin, urlsplit

from loguru import logger

from agentd.browser import (
    PASSIVE_ACTIONS,
    CaptureRefused,
    StepFailed,
    StepProblem,
    certainly_allowed_pattern,
    chromium_sandbox,
    host_allowed,
    host_of,
)
from agentd.browser.egress import EgressProxy
from agentd.errors import ConfigInvalid, ExternalError
from agentd.kb import Action, Step, frame_parts
from agentd.llm import redact
from agentd.ops_config import HEADLESS_SHELL, BrowserSettings

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        CDPSession,
        Dialog,
        Frame,
        Locator,
        Page,
        Playwright,
        Request,
        Response,
        Route,
        async_playwright,
        expect,
    )
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout


def _load_playwright() -> None:
    """Bind the Playwright names this module uses at run time (once; cheap after).

    Called before a browser is launched and when a session is made, so every
    ``except PlaywrightError`` below runs with the name bound.
    """
    global PlaywrightError, PlaywrightTimeout, async_playwright, expect
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright, expect


CHROMIUM_ARGS = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Ways out that would not go through a context's proxy: the browser resolving
# host names itself (a DNS prefetch names a host to whoever answers for its
# domain; through SOCKS5 the proxy resolves them), and WebRTC over UDP. The
# headless shell ignores the WebRTC preference switch (a STUN packet got out);
# it honours the content layer's forced policy, which full Chromium takes too.
CONFINED_ARGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--disable-quic",
)
# Set by the agent on a field a vault value was typed into or shows: masked like a secret field.
TYPED_MARK = "data-agentd-secret"
SECRET_SELECTOR = f'[data-secret="true"], input[type="password"], [{TYPED_MARK}]'
MASK_COLOR = "#FF00FF"
# Installed in every page before its own scripts run, so each capture is masked
# without a per-screenshot round trip: secret fields become solid blocks.
MASK_STYLE = (
    f"{SECRET_SELECTOR} {{ background: {MASK_COLOR} !important;"
    f" border-color: {MASK_COLOR} !important; color: transparent !important;"
    " -webkit-text-fill-color: transparent !important; text-shadow: none !important;"
    " caret-color: transparent !important; }"
    f' [data-secret="true"]::placeholder, input[type="password"]::placeholder,'
    f" [{TYPED_MARK}]::placeholder,"
    f' [data-secret="true"] *, [{TYPED_MARK}] * {{ color: transparent !important;'
    " -webkit-text-fill-color: transparent !important; text-shadow: none !important; }"
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
EXTRACT_SCRIPT = f"""el => {{
  const secret = el.getAttribute('data-secret') === 'true' || el.hasAttribute('{TYPED_MARK}');
  if (secret || (el.tagName === 'INPUT' && el.type === 'password')) return null;
  if (['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName)) return el.value;
  return el.innerText.trim();
}}"""
# Before a fill that types a secret: find the field Playwright will fill (a label's
# control for a label), tell whether it is a secret field, and mark it (masked from
# now on) when it is one or when ``anyField`` lets a secret go into any field.
SECRET_FIELD_SCRIPT = f"""(el, anyField) => {{
  let field = el;
  if (!field.matches('input, textarea, select') && !field.isContentEditable) {{
    const label = field.closest('label');
    if (label && label.control) field = label.control;
  }}
  const secret = (field.tagName === 'INPUT' && field.type === 'password')
    || field.closest('[data-secret="true"]') !== null;
  if (secret || anyField) field.setAttribute('{TYPED_MARK}', '');
  return secret;
}}"""
# Before a capture, in one round trip: the text the page shows outside masked
# elements, the values of the form fields not masked yet (``[index, value]``),
# and where the viewport is (what a scaled capture clips to, as CDP's
# ``cssVisualViewport`` says it), as one JSON text (Playwright passes a string
# back ten times faster than arrays).
PAGE_TEXT_SCRIPT = f"""() => {{
  const masked = '{SECRET_SELECTOR}';
  const vv = window.visualViewport;
  const view = vv
    ? {{ pageX: vv.pageLeft, pageY: vv.pageTop, clientWidth: vv.width, clientHeight: vv.height }}
    : {{ pageX: window.scrollX, pageY: window.scrollY,
        clientWidth: document.documentElement.clientWidth,
        clientHeight: document.documentElement.clientHeight }};
  const root = document.body || document.documentElement;
  if (!root) return JSON.stringify({{ text: '', fields: [], view }});
  const hidden = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE']);
  const parts = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
    const el = node.parentElement;
    if (el && !hidden.has(el.tagName) && el.closest(masked) === null) parts.push(node.data);
  }}
  const fields = [];
  document.querySelectorAll('input, textarea, select').forEach((el, i) => {{
    if (el.value && !el.matches(masked)) fields.push([i, el.value]);
  }});
  return JSON.stringify({{ text: parts.join(''), fields, view }});
}}"""
MARK_FIELDS_SCRIPT = f"""(indexes) => {{
  const all = document.querySelectorAll('input, textarea, select');
  for (const i of indexes) if (all[i]) all[i].setAttribute('{TYPED_MARK}', '');
}}"""
_VIEW = ("pageX", "pageY", "clientWidth", "clientHeight")
# The HTTP status the shown document was answered with (0 when the browser does
# not say), once the document has loaded.
DOCUMENT_STATUS_SCRIPT = """() => new Promise((resolve) => {
  const answer = () => {
    const nav = performance.getEntriesByType('navigation')[0];
    resolve(nav && nav.responseStatus ? nav.responseStatus : 0);
  };
  if (document.readyState !== 'complete') {
    window.addEventListener('load', answer, { once: true });
  } else answer();
})"""
# A document answered with a server error: its page is the server's apology.
# (A 4xx page may be an application that renders itself, such as a single-page
# app's fallback served as a 404: its steps wait as usual.)
SERVER_ERROR = 500
_T = TypeVar("_T")
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

    def describe(self) -> dict[str, Any]:
        """Return the browser's state for ``status``: its binary, whether it runs, and
        whether it runs (or will run, once launched) in its sandbox, and why."""
        running = self._browser is not None and self._browser.is_connected()
        out: dict[str, Any] = {
            "executable": str(self.settings.executable_path),
            "running": running,
        }
        try:
            choice = chromium_sandbox(self.settings.sandbox, os.geteuid())
        except ConfigInvalid as exc:
            out.update(sandbox=None, sandbox_reason=exc.message)
        else:
            out.update(sandbox=choice.enabled, sandbox_reason=choice.reason)
        return out

    async def _ensure(self) -> Browser:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            path = self.settings.executable_path
            try:
                sandbox = chromium_sandbox(self.settings.sandbox, os.geteuid())
            except ConfigInvalid as exc:
                raise ExternalError(exc.message, details=exc.details) from exc
            if not path.is_file():
                raise ExternalError(
                    f"Chromium not found at {path}; install it (apt install "
                    f"{HEADLESS_SHELL if path.name == HEADLESS_SHELL else 'chromium'}) or set "
                    "[browser] executable_path",
                    details={"path": str(path)},
                )
            _load_playwright()
            try:
                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=str(path),
                    headless=self.settings.headless,
                    chromium_sandbox=sandbox.enabled,
                    args=[*CHROMIUM_ARGS, *CONFINED_ARGS],
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
        proxy = EgressProxy(allowed_hosts)
        try:
            await proxy.start()
        except OSError as exc:
            raise ExternalError(f"cannot open the browser's proxy: {exc}") from exc
        try:
            context = await browser.new_context(
                viewport={"width": settings.viewport_width, "height": settings.viewport_height},
                service_workers="block",  # a worker's fetches would bypass route interception
                # Loopback too: Chromium would otherwise connect to it directly.
                proxy={"server": proxy.server, "bypass": "<-loopback>"},
            )
        except PlaywrightError as exc:
            await proxy.close()
            raise ExternalError(f"cannot open a browser context: {exc.message}") from exc
        session = BrowserSession(context, allowed_hosts, folder, settings, base_url, proxy)
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
        proxy: EgressProxy | None = None,
    ) -> None:
        _load_playwright()
        self.context = context
        self.proxy = proxy
        self.allowed_hosts = tuple(allowed_hosts)
        self.folder = folder
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.timeout_ms = settings.step_timeout_s * 1000
        self.blocked: list[str] = []  # hosts of requests the route handler refused
        # Hosts off the allowlist the page's main frame set out for (each hop of a
        # redirect chain is a request of its own); ``_left_seen`` of them reported.
        self.left_for: list[str] = []
        self._left_seen = 0
        # Whether the site answered the main frame's last document with a server error
        # (the shown document's own status is read when it matters).
        self._server_error = False
        # The path and the reason of the main frame's last navigation that failed.
        self._failed_load: tuple[str, str] | None = None
        self._committed = asyncio.Event()  # set when the main frame shows a new document
        self._page: Page | None = None
        self._armed: tuple[str, asyncio.Future[None]] | None = None
        self._dialog_problem: str | None = None
        self._tracing = False
        self._chunks = 0
        self._cdp: CDPSession | None = None
        self._closed = False
        self._trace_started = False
        self._vault: dict[str, str] = {}  # name: value of every vault value the run holds
        self._shown: set[str] = set()  # sign-in names (see perform)

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
        self._page.on("request", self._on_request)
        self._page.on("response", self._on_response)
        self._page.on("requestfailed", self._on_request_failed)
        self._page.on("framenavigated", self._on_navigated)
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
        # The host only: a page could put what it wants to send out in the URL.
        host = _host(request.url)
        self.blocked.append(host)
        logger.warning("blocked a request off the allowlist, to {}", host)
        await route.abort("blockedbyclient")

    def refused_hosts(self) -> list[str]:
        """Return every host (``host:port``) the context was kept from reaching so far."""
        refused = self.proxy.refused if self.proxy is not None else []
        return sorted({*self.blocked, *self.left_for, *refused})

    def _on_request(self, request: Request) -> None:
        if self._main_navigation(request) and not host_allowed(request.url, self.allowed_hosts):
            self.left_for.append(_host(request.url))

    def _main_navigation(self, request: Request) -> bool:
        return (
            request.is_navigation_request()
            and self._page is not None
            and request.frame == self._page.main_frame
        )

    def _on_response(self, response: Response) -> None:
        if self._main_navigation(response.request):
            self._server_error = response.status >= SERVER_ERROR

    def _on_request_failed(self, request: Request) -> None:
        if self._main_navigation(request) and request.failure != "net::ERR_ABORTED":
            self._failed_load = (urlsplit(request.url).path or "/", request.failure or "failed")

    def _on_navigated(self, frame: Frame) -> None:
        if self._page is not None and frame == self._page.main_frame:
            self._committed.set()

    async def _check_document(self, s: Step) -> None:
        """Fail at once a step that waits for what a broken page will not show.

        When the page could not be loaded (Chromium shows its own error page),
        or the site answered it with a server error (a 500 after a click, say)
        and the step's target is not on it, waiting out the step timeout would
        change nothing. A target the error page does show is acted on as usual.
        The status is the shown document's own (read once it has loaded), so a
        page still on its way is not judged by the one before it. Costs nothing
        until a navigation went wrong.
        """
        if s.action not in SELECTOR_ACTIONS and s.action is not Action.EXPECT_URL:
            return
        page = self.page
        if page.url.startswith("chrome-error:"):
            path, why = self._failed_load or ("the page", "failed")
            raise StepFailed(
                StepProblem.NAVIGATION,
                f"{path} could not be loaded ({why}): {s.action} {s.target} cannot run",
            )
        if not self._server_error:
            return
        try:
            status = int(
                await asyncio.wait_for(
                    page.evaluate(DOCUMENT_STATUS_SCRIPT), self.settings.step_timeout_s
                )
            )
            if status < SERVER_ERROR:
                return
            path = urlsplit(page.url).path or "/"
            if s.action is Action.EXPECT_URL:
                present = path == s.target
            else:
                present = bool(await self._locate(s.target).count())
        except (PlaywrightError, ValueError, TypeError, TimeoutError):
            return  # between documents: the step waits, as any step does
        if not present:
            raise StepFailed(
                StepProblem.NAVIGATION,
                f"{path} answered {status}: {s.action} target {s.target} is not on the page",
            )

    async def _unless_broken(self, s: Step, waiting: Awaitable[_T]) -> _T:
        """Await ``waiting`` (a step waiting for its target or its page), failing
        the step as soon as the main frame shows a broken page instead (see
        :meth:`_check_document`); the pages shown before it were checked already."""
        work = asyncio.ensure_future(waiting)
        watch = asyncio.ensure_future(self._watch_documents(s))
        try:
            await asyncio.wait((work, watch), return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                watch.result()  # the StepFailed it ended with
            return work.result()
        finally:
            for task in (work, watch):
                task.cancel()
            await asyncio.gather(work, watch, return_exceptions=True)

    async def _watch_documents(self, s: Step) -> None:
        while True:
            await self._committed.wait()
            self._committed.clear()
            await self._check_document(s)

    def _left(self) -> StepFailed | None:
        """Return the failure for the page setting out off the allowlist since the last one."""
        hosts = self.left_for[self._left_seen :]
        if not hosts:
            url = self.page.url
            if url.startswith("chrome-error:") or host_allowed(url, self.allowed_hosts):
                return None
            hosts = [_host(url)]
        self._left_seen = len(self.left_for)
        return StepFailed(
            StepProblem.HOST_NOT_ALLOWED,
            f"the page went to {', '.join(dict.fromkeys(hosts))}, off the account's host allowlist",
        )

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
        Chromium scales the copy of the frame before encoding it. That makes a
        smaller file and less CPU, not a faster capture: measured on the demo
        back-office, a capture at 0.5 or 0.25 takes as long as one at full size
        (about 33 ms, png or jpeg alike), the time being Chromium producing the
        frame, while Chromium's CPU per capture is about 28 ms at full size,
        17 ms at 0.5 and 10 ms at 0.25 (``bench/agent_vs_plain.py`` prints the
        capture time).

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
                view = await self._guard()
                if self._cdp is None:
                    self._cdp = await self.context.new_cdp_session(self.page)
                if scale < 1:
                    # A clip is in page coordinates: the viewport is where it is scrolled to
                    # (the guard read it, when it ran).
                    if view is None:
                        metrics = await self._cdp.send("Page.getLayoutMetrics")
                        view = metrics["cssVisualViewport"]
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

    def protect(self, secrets: Mapping[str, str]) -> None:
        """Name the vault values this session's captures must not show.

        Before every capture (:meth:`screenshot`, :meth:`masked_screenshot`), one
        script reads the page: a form field whose value holds any of them is
        masked from then on, and a capture of a page whose text (outside masked
        elements) shows one is refused with :class:`CaptureRefused` — except a
        sign-in name, a value the workflow's sign-in typed into a plain field
        (sites show who is signed in).
        """
        self._vault = {name: value for name, value in secrets.items() if value}

    async def _guard(self) -> dict[str, float] | None:
        """Mask the fields that hold a vault value; refuse a page whose text shows one.

        Return where the viewport is (``pageX``, ``pageY``, ``clientWidth``,
        ``clientHeight``, CSS pixels), read in the same round trip; None when
        the session holds no vault value (nothing is checked or read).

        :raises CaptureRefused: the page's text shows a credential.
        :raises PlaywrightError: the page could not be read (a navigation in flight).
        """
        if not self._vault:
            return None
        page = self.page
        try:
            found = json.loads(await page.evaluate(PAGE_TEXT_SCRIPT))
            text, fields = str(found["text"]), [(int(i), str(v)) for i, v in found["fields"]]
            view = {k: float(found["view"][k]) for k in _VIEW}
        except (TypeError, KeyError, ValueError) as exc:
            raise ExternalError("cannot read the page to check it for secrets") from exc
        values = tuple(self._vault.values())
        holding = [i for i, v in fields if any(s in v for s in values)]
        if holding:
            await page.evaluate(MARK_FIELDS_SCRIPT, holding)
        hidden = {n: v for n, v in self._vault.items() if n not in self._shown}
        visible = sorted(n for n, v in hidden.items() if v in text)
        if visible:
            raise CaptureRefused(
                f"refusing to capture {redact(page.url, hidden.values())}: the page's text "
                f"shows the secret {', '.join(visible)}",
                names=visible,
            )
        return view

    async def masked_screenshot(self, kind: Literal["png", "jpeg"] = "png") -> bytes:
        """Return a screenshot through Playwright with its ``mask`` over secret fields.

        :raises CaptureRefused: the page's text shows a credential (see :meth:`protect`).
        :raises ExternalError: the page could not be checked or captured.
        """
        page = self.page
        try:
            await self._guard()
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
        finally:
            if self.proxy is not None:
                await self.proxy.close()

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

    async def digest(self, limit: int = 80) -> list[dict[str, str]]:
        """Return the page's visible elements a command may name (agent mode), at most
        ``limit``: tag, type, role, text, test id, id, name, link, the form's method, and
        a plain field's value (never a password's or a ``data-secret`` field's).
        """
        try:
            found = await self.page.evaluate(DIGEST_SCRIPT, limit)
        except PlaywrightError:
            return []
        return [{str(k): str(v) for k, v in item.items()} for item in found]

    # -- steps ----------------------------------------------------------------------------

    def absolute(self, target: str) -> str:
        """Return the URL a ``goto`` target points at (paths are relative to the site)."""
        if target.startswith(("http://", "https://")):
            return target
        return urljoin(self.base_url + "/", target.lstrip("/"))

    async def perform(
        self,
        step: Step,
        ready: Callable[[], Awaitable[None]] | None = None,
        *,
        secrets: Sequence[str] = (),
        secret_field_only: bool = True,
        sign_in: bool = False,
    ) -> str | None:
        """Carry out one rendered step; return the extracted value for ``extract``.

        ``ready`` is awaited before a step that changes the page acts (for a
        click, once Playwright's actionability checks have passed; the click
        then acts without repeating them). What it raises is raised as is.

        ``secrets`` names the vault values a ``fill`` types (see :meth:`protect`).
        Such a fill goes into a password field or one marked ``data-secret``;
        with ``secret_field_only`` False (a recorded workflow's own step) it may
        go into a plain field too, and with ``sign_in`` (the workflow's sign-in,
        see :func:`~agentd.browser.sign_in_fills`) the values it types there
        become sign-in names. Either way the field is masked before anything is
        typed into it.

        :raises StepFailed: the step did not do what it should (``problem`` says how).
        """
        armed_before = self._armed
        if left := self._left():
            raise left  # since the previous step ended
        try:
            self._committed.clear()
            await self._check_document(step)
            if secrets and step.action is Action.FILL:
                await self._unless_broken(
                    step, self._secret_field(step.target, secrets, secret_field_only, sign_in)
                )
            extracted = await self._perform(step, ready or _at_once)
            if step.expect and step.action is not Action.EXPECT_TEXT:
                await expect(self.page.locator("body")).to_contain_text(
                    step.expect, timeout=self.timeout_ms
                )
            if armed_before is not None and step.action is not Action.ACCEPT_DIALOG:
                await self._await_dialog(armed_before)
        except StepFailed as exc:
            if left := self._left():
                raise left from exc
            raise
        except AssertionError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "assertion failed"
            raise self._left() or StepFailed(StepProblem.EXPECTATION, first) from exc
        except PlaywrightTimeout as exc:
            raise self._left() or await self._timeout_problem(step) from exc
        except PlaywrightError as exc:
            raise self._left() or self._error_problem(step, exc) from exc
        if left := self._left():
            raise left
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

    async def _evaluate(self, target: str, script: str, arg: Any = None) -> Any:
        """Run ``script`` on the one element ``target`` names, as ``Locator.evaluate`` does.

        One round trip when the element is there already (a locator's evaluate
        takes three: wait for it, evaluate, let go of the handle); when it is
        not (or the page is between documents), the locator's, which waits for
        it up to the step timeout and fails as before. The selector is resolved
        the same way (strict: more than one match is an error; frames entered).
        """
        frames, inner = frame_parts(target)
        if not frames:
            try:
                return await self.page.main_frame.eval_on_selector(inner, script, arg, strict=True)
            except PlaywrightError as exc:
                logger.debug("evaluating on {} at once failed: {}", target, exc.message)
        return await self._locate(target).evaluate(script, arg)

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
            await self._unless_broken(s, locator.click(trial=True))
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
                # Typed only into a document from an allowed host, checked just before.
                where = await self._unless_broken(
                    s, self._evaluate(s.target, "el => el.ownerDocument.location.href")
                )
                left = self._left()
                if left or not host_allowed(str(where), self.allowed_hosts):
                    raise left or StepFailed(
                        StepProblem.HOST_NOT_ALLOWED,
                        f"refusing to type into a page from {_host(str(where))}, "
                        "off the account's host allowlist",
                    )
                await locator.fill(s.value or "")
            case Action.SELECT_OPTION:
                await locator.select_option(s.value or "")
            case Action.CHECK:
                await locator.check()
            case Action.PRESS:
                await locator.press(s.value or "")
            case Action.WAIT_FOR:
                await self._unless_broken(s, locator.wait_for(state="visible"))
            case Action.EXPECT_TEXT:
                await self._unless_broken(
                    s, expect(locator).to_contain_text(s.expect or "", timeout=self.timeout_ms)
                )
            case Action.EXPECT_URL:
                await self._unless_broken(
                    s, page.wait_for_url(lambda url: urlsplit(url).path == s.target)
                )
            case Action.EXTRACT:
                return await self._unless_broken(s, self._extract(s.target))
            case Action.ACCEPT_DIALOG:
                self._armed = (s.target, asyncio.get_running_loop().create_future())
        return None

    async def _secret_field(
        self, target: str, names: Sequence[str], only: bool, sign_in: bool
    ) -> None:
        secret = await self._evaluate(target, SECRET_FIELD_SCRIPT, not only)
        if secret:
            return
        if only:
            raise StepFailed(
                StepProblem.REFUSED,
                f"refusing to type the secret {', '.join(names)} into {target}: it is "
                "neither a password field nor marked data-secret",
            )
        if sign_in:
            self._shown.update(names)

    async def _extract(self, target: str) -> str:
        # The script reads the element (see _evaluate).
        found = await self._evaluate(target, EXTRACT_SCRIPT)
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
                StepProblem.HOST_NOT_ALLOWED,
                f"{s.action} {s.target}: the host is not on the account's allowlist",
            )
        if s.action in SELECTOR_ACTIONS and ("selector" in message.lower()):
            return StepFailed(StepProblem.BAD_SELECTOR, f"unusable selector {s.target}: {message}")
        if "net::" in message or s.action is Action.GOTO:
            return StepFailed(StepProblem.NAVIGATION, f"{s.action} {s.target} failed: {message}")
        return StepFailed(StepProblem.TIMEOUT, f"{s.action} {s.target} failed: {message}")


DIGEST_SCRIPT = """(limit) => {
  const wanted = 'a,button,input,select,textarea,h1,h2,[role=button],[data-testid]';
  const out = [];
  for (const el of document.querySelectorAll(wanted)) {
    if (out.length >= limit) break;
    const box = el.getBoundingClientRect();
    if (el.type !== 'hidden' && box.width === 0 && box.height === 0) continue;
    if (el.type === 'hidden') continue;
    const secret = el.type === 'password' || el.closest('[data-secret="true"]') !== null;
    const form = el.form || el.closest('form');
    const label = (el.labels && el.labels[0] && el.labels[0].innerText) || '';
    const text = (el.getAttribute('aria-label') || label || el.placeholder ||
      (['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) ? '' : el.innerText) || '');
    const item = {
      tag: el.tagName.toLowerCase(),
      type: el.getAttribute('type') || '',
      role: el.getAttribute('role') || '',
      text: text.trim().replace(/\\s+/g, ' ').slice(0, 80),
      testid: el.getAttribute('data-testid') || '',
      id: el.id || '',
      name: el.getAttribute('name') || '',
      href: el.tagName === 'A' ? (el.getAttribute('href') || '') : '',
      form_method: form ? (form.getAttribute('method') || 'get').toLowerCase() : '',
    };
    if (secret) item.secret = 'true';
    else if ('value' in el && el.tagName !== 'BUTTON' && el.value) {
      item.value = String(el.value).slice(0, 80);
    }
    out.push(item);
  }
  return out;
}"""


def _host(url: str) -> str:
    """Return a URL's ``host[:port]`` for a message or a log (never its path or query)."""
    try:
        return host_of(url) or urlsplit(url).scheme + ":"
    except ValueError:
        return urlsplit(url).scheme + ":"
