"""Fixtures for the workflow tests: one Chromium per module, a fresh site and context per test.

Playwright's own browser download is not used: the tests drive Debian's
Chromium (``AGENTD_CHROMIUM`` overrides the path) with the sync API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from agentd.demosite import DemoSite
from agentd.ops_config import DEFAULT_CHROMIUM
from workflows.steps import WorkflowRun

# The daemon's default browser (Debian's chromium-headless-shell): the one the agents use.
CHROMIUM = os.environ.get("AGENTD_CHROMIUM", str(DEFAULT_CHROMIUM))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STEP_TIMEOUT_MS = 5000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Launch headless Chromium once per test module.

    Not once per session: while Playwright's sync API is open its event loop is
    the thread's running loop, so another module's sync Playwright (the demo
    site's browser tests) or async test run later in the same session would
    fail with "Playwright Sync API inside the asyncio loop".
    """
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (set AGENTD_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            chromium_sandbox=False,
            args=CHROMIUM_ARGS,
        )
        yield chromium
        chromium.close()


@pytest.fixture
def site() -> Iterator[DemoSite]:
    """Serve a freshly seeded demo back-office on a free loopback port."""
    with DemoSite() as demo:
        yield demo


@pytest.fixture
def page(browser: Browser, site: DemoSite) -> Iterator[Page]:
    """Open a page in a fresh browser context (no cookies shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def run(page: Page, site: DemoSite) -> WorkflowRun:
    """Start a workflow run whose secrets come from the site, as the vault would give them."""
    secrets = {"admin_user": site.admin_user, "admin_password": site.admin_password}
    return WorkflowRun(page, site.url, secrets, timeout_ms=STEP_TIMEOUT_MS)
