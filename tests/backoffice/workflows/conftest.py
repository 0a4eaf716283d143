"""Fixtures of the store workflows: one Chromium and one store per module.

These workflow tests are written as an operator writes their own (a plain
folder, ``step()`` from the installed package, helpers in ``store_steps``);
``agentd kb build --workflows tests/backoffice/workflows`` builds them into a
knowledge base beside the bundled ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from agentd.ops_config import DEFAULT_CHROMIUM
from agentd.workflow_steps import WorkflowRun
from tests.backoffice.store import Store, StoreTemplate

CHROMIUM = DEFAULT_CHROMIUM  # the agents' browser
STEP_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for this module's tests (not longer: Playwright's sync API runs an event
    loop while it is open, and the async tests of the suite need theirs)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def store(
    store_template: StoreTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A running store of this module's own (a copy of the seeded database)."""
    with Store(store_template, tmp_path_factory.mktemp("store")) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def run(page: Page, store: Store) -> WorkflowRun:
    """A workflow run whose secrets are the staff user's sign-in, as the vault gives them."""
    return WorkflowRun(page, store.url, store.secrets, timeout_ms=STEP_TIMEOUT_MS)
