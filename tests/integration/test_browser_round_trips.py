"""A browser session's commands take the round trips to Chromium they need, and no more.

Each round trip (Python to Playwright's driver to Chromium and back) is on the
agent's critical path, and under load one costs tens of milliseconds: reading
or checking an element already on the page is one, a step screenshot of a page
checked for secrets is two (the check, which also says where the viewport is,
and the capture). The messages are counted where Playwright's client sends
them (its ``Connection``).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright._impl.connection import Connection

from agentd.browser.playwright_browser import BrowserSession, PlaywrightBrowser
from agentd.demosite import DemoSite
from agentd.kb import Action, Step
from agentd.ops_config import DEFAULT_CHROMIUM, BrowserSettings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]

USERNAME = '[data-testid="login-username"]'
PASSWORD = '[data-testid="login-password"]'
SUBMIT = '[data-testid="login-submit"]'


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with DemoSite() as demo:
        yield demo


@pytest.fixture
async def session(site: DemoSite, short_tmp: Path) -> AsyncIterator[BrowserSession]:
    settings = BrowserSettings(trace=False, screenshot_scale=0.5, step_timeout_s=5.0)
    browser = PlaywrightBrowser(settings)
    try:
        opened = await browser.new_session([f"127.0.0.1:{site.port}"], short_tmp, base_url=site.url)
        try:
            opened.protect({"admin_password": site.admin_password})
            await opened.perform(Step(1, "Open the sign-in page", Action.GOTO, "/login"))
            yield opened
        finally:
            await opened.close()
    finally:
        await browser.close()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The messages Playwright's client sends from now on (a CDP command by its name)."""
    out: list[str] = []
    original = Connection.send_message_to_server

    def send(self: Connection, obj: Any, method: str, params: Any, options: Any) -> Any:
        if method != "__waitInfo__":  # fire-and-forget progress notes, never waited for
            out.append(f"cdp:{params['method']}" if method == "send" else method)
        return original(self, obj, method, params, options)

    monkeypatch.setattr(Connection, "send_message_to_server", send)
    return out


async def test_reading_or_checking_an_element_on_the_page_is_one_round_trip(
    session: BrowserSession, site: DemoSite, sent: list[str]
) -> None:
    read = await session.perform(Step(2, "Read", Action.EXTRACT, SUBMIT))
    assert read == "Sign in"
    assert sent == ["evalOnSelector"]
    sent.clear()
    # A fill checks the host of the document it types into, then types.
    await session.perform(Step(3, "Type the name", Action.FILL, USERNAME, site.admin_user))
    assert sent == ["evalOnSelector", "fill"]
    sent.clear()
    # A secret's fill also checks (and marks) the field first.
    await session.perform(
        Step(4, "Type the password", Action.FILL, PASSWORD, site.admin_password),
        secrets=["admin_password"],
    )
    assert sent == ["evalOnSelector", "evalOnSelector", "fill"]
    assert await session.page.locator(PASSWORD).get_attribute("data-agentd-secret") == ""


async def test_an_element_not_there_yet_is_still_waited_for(
    session: BrowserSession, sent: list[str]
) -> None:
    await session.page.evaluate(
        """() => setTimeout(() => {
            const p = document.createElement('p');
            p.id = 'late';
            p.textContent = 'arrived';
            document.body.appendChild(p);
        }, 300)"""
    )
    sent.clear()
    assert await session.perform(Step(2, "Read", Action.EXTRACT, "#late")) == "arrived"
    # Tried at once, then waited for as a locator waits.
    assert sent[0] == "evalOnSelector" and "waitForSelector" in sent


async def test_a_checked_scaled_capture_is_two_round_trips(
    session: BrowserSession, sent: list[str]
) -> None:
    await session.page.evaluate("() => window.scrollTo(0, 40)")
    sent.clear()
    png = await session.screenshot(scale=0.5)
    # The secrets check (which says where the viewport is), then the capture.
    assert sent == ["evaluateExpression", "cdp:Page.captureScreenshot"]
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (640, 450)  # the 1280 x 900 viewport, at half size
