"""What real pages need from the browser agent, each shown on the real store back-office.

The audited agent loop (:class:`~agentd.services.operations.OperationsService`
with real Chromium) runs steps on django-oscar's dashboard as it ships: a
form post and its redirect, the message shown after it, selects, checkboxes
and radio buttons, a confirmation page, the TinyMCE editor's iframe, and a
selector that no longer matches (as after an upgrade of the back-office),
which fails clearly with a screenshot.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.kb import Action, KnowledgeBase, Step, Workflow, build_knowledge_base
from agentd.ops_config import DEFAULT_CHROMIUM, BrowserSettings, ServiceConfig
from agentd.services.consents import ConsentsService
from agentd.services.operations import OperationsService
from agentd.services.secrets import SecretsService
from agentd.store.sqlite import SqliteStore
from agentd.vault import SecretValue, Vault
from tests.backoffice.store import Store, StoreTemplate
from tests.integration.test_browser_agent import png_pixels

pytestmark = [
    pytest.mark.slow(20),
    pytest.mark.browser,
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]

ACCOUNT, SERVICE = "brightside", "store"
REPO = Path(__file__).resolve().parents[2]
STORE_WORKFLOWS = REPO / "tests" / "backoffice" / "workflows"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def store(
    store_template: StoreTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    with Store(store_template, tmp_path_factory.mktemp("store")) as running:
        yield running


@pytest.fixture(scope="module")
def store_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The store's workflows, as `agentd kb build --workflows` extracts them."""
    folder = tmp_path_factory.mktemp("kb")
    return build_knowledge_base(
        REPO / "workflows", folder / "kb.json", extra_dirs=[STORE_WORKFLOWS]
    )


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[PlaywrightBrowser]:
    browser = PlaywrightBrowser(BrowserSettings())
    yield browser
    await browser.close()


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ar-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def flow(
    store_kb: KnowledgeBase, *extra: tuple[str, Action, str, str | None, str | None]
) -> KnowledgeBase:
    """A knowledge base of one workflow: the store's sign-in, then ``extra`` steps."""
    steps = list(store_kb.workflow("oscar_read_product_seo").steps[:5])
    for intent, action, target, value, expect in extra:
        steps.append(Step(len(steps) + 1, intent, action, target, value, expect))
    results = [s for s in steps if s.action is Action.EXTRACT]
    steps = [
        Step(
            s.index,
            s.intent,
            s.action,
            s.target,
            s.value,
            s.expect,
            f"r{s.index}" if s in results else None,
        )
        for s in steps
    ]
    wf = Workflow("probe", "probe", "test", (), ("staff_user", "staff_password"), tuple(steps))
    return KnowledgeBase("2026-01-01T00:00:00+00:00", {}, (wf,))


@dataclass
class Agent:
    svc: OperationsService

    async def run(self, workflow: str, params: dict[str, str] | None = None) -> Any:
        op = await self.svc.start_operation(
            workflow, ACCOUNT, params=params or {}, service=SERVICE, actor="t"
        )
        return await self.svc.wait(op.id, 120)


@asynccontextmanager
async def agent(
    tmp: Path,
    store: Store,
    browser: PlaywrightBrowser,
    kb: KnowledgeBase,
    step_timeout_s: float = 10.0,
) -> AsyncIterator[Agent]:
    import anyio

    db = SqliteStore(tmp / "agentd.sqlite3")
    await db.open()
    settings = BrowserSettings(
        step_timeout_s=step_timeout_s,
        screenshots_dir=tmp / "operations",
        services={SERVICE: ServiceConfig(base_url=store.url)},
    )
    vault = Vault(os.urandom(32))
    svc = OperationsService(
        db,
        settings,
        state_dir=tmp,
        knowledge_base=lambda: kb,
        vault=vault,
        browser=browser,
    )
    try:
        async with db.write() as tx:
            await tx.gate.upsert_accounts(
                [
                    {
                        "id": ACCOUNT,
                        "tenant": "t1",
                        "name": "Brightside Goods",
                        "stage": "discovery",
                        "trusted_mode": "ACTIVE",
                        "domains": ["SEO"],
                        "allowed_hosts": [f"127.0.0.1:{store.port}"],
                    }
                ],
                tx.now.isoformat(),
            )
        for name, value in store.secrets.items():
            await SecretsService(db, vault).set_secret(
                ACCOUNT, SERVICE, name, SecretValue(value), actor="t"
            )
        await ConsentsService(db, svc, knowledge_base=lambda: kb).grant_consent(
            ACCOUNT, SERVICE, "*", permissions=["write"], actor="t"
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(svc.run)
            yield Agent(svc)
            tg.cancel_scope.cancel()
    finally:
        await svc.close()
        await db.close()


def ok(op: Any) -> None:
    assert (op.state, op.error) == ("completed", None), (op.state, op.reason, op.error)


async def test_a_form_post_is_waited_for_and_its_message_read(
    tmp: Path, store: Store, chromium: PlaywrightBrowser, store_kb: KnowledgeBase
) -> None:
    product = store.product_id("BSG-DRIPPER")
    kb = flow(
        store_kb,
        ("Open the product", Action.GOTO, f"/dashboard/catalogue/products/{product}/", None, None),
        ("Show SEO", Action.CLICK, 'a.nav-link[href="#seo"]', None, None),
        ("New title", Action.FILL, "#id_meta_title", "Dripper 02 | Brightside", None),
        (
            "Save and stay",
            Action.CLICK,
            '#create_update_product_form button[value="continue"]',
            None,
            None,
        ),
        # Read at once: the click waited for the post, its redirect and the new page.
        ("Read the message", Action.EXTRACT, ".alert-success", None, None),
        ("Read the title again", Action.EXTRACT, "#id_meta_title", None, None),
    )
    async with agent(tmp, store, chromium, kb) as a:
        op = await a.run("probe")
    ok(op)
    assert "Updated product 'Ceramic Dripper'" in op.result["r10"]
    assert op.result["r11"] == "Dripper 02 | Brightside"
    assert store.product(product)["meta_title"] == "Dripper 02 | Brightside"


async def test_checkboxes_radios_and_selects(
    tmp: Path, store: Store, chromium: PlaywrightBrowser, store_kb: KnowledgeBase
) -> None:
    customer = store.template.customer_id
    kb = flow(
        store_kb,
        ("Open the customers", Action.GOTO, "/dashboard/users/", None, None),
        ("Tick the customer", Action.CHECK, f'input.selected_user[value="{customer}"]', None, None),
        ("Choose to deactivate", Action.CHECK, "#make_inactive_check", None, None),
        ("Apply", Action.CLICK, '#user_list_form input[type="submit"]', None, None),
        ("Confirm", Action.EXPECT_TEXT, ".alert", None, "status successfully changed"),
        # A select that the dashboard dresses up with select2 is still chosen by value.
        ("Open the products", Action.GOTO, "/dashboard/catalogue/", None, None),
        ("Pick a type", Action.SELECT_OPTION, "#id_product_class", "1", None),
        ("New product", Action.CLICK, "#create_product_with_class_form button", None, None),
        (
            "On its form",
            Action.EXPECT_URL,
            "/dashboard/catalogue/products/create/coffee-gear/",
            None,
            None,
        ),
    )
    async with agent(tmp, store, chromium, kb) as a:
        op = await a.run("probe")
    ok(op)
    rows = store.query("SELECT is_active FROM auth_user WHERE id = ?", (customer,))
    assert rows[0]["is_active"] == 0


async def test_a_confirmation_page(
    tmp: Path, store: Store, chromium: PlaywrightBrowser, store_kb: KnowledgeBase
) -> None:
    product = store.product_id("BSG-FILTERS")
    kb = flow(
        store_kb,
        (
            "Ask to delete",
            Action.GOTO,
            f"/dashboard/catalogue/products/{product}/delete/",
            None,
            None,
        ),
        ("See what it asks", Action.EXPECT_TEXT, "#delete_product_form", None, "Paper Filters"),
        ("Confirm", Action.CLICK, '#delete_product_form button[type="submit"]', None, None),
        ("Told so", Action.EXPECT_TEXT, ".alert-success", None, "Deleted product"),
    )
    async with agent(tmp, store, chromium, kb) as a:
        op = await a.run("probe")
    ok(op)
    assert not store.query("SELECT id FROM catalogue_product WHERE id = ?", (product,))


async def test_the_rich_text_editor_in_its_iframe(
    tmp: Path, store: Store, chromium: PlaywrightBrowser, store_kb: KnowledgeBase
) -> None:
    page_id = store.template.page_id
    text = "Orders before noon leave the same day."
    async with agent(tmp, store, chromium, store_kb) as a:
        op = await a.run("oscar_page_update", {"page_id": str(page_id), "text": text})
    ok(op)
    assert store.page(page_id)["content"] == f"<p>{text}</p>"
    assert op.result["after_content"] == f"<p>{text}</p>"


async def test_a_selector_gone_after_an_upgrade_fails_clearly_with_a_screenshot(
    tmp: Path, store: Store, chromium: PlaywrightBrowser, store_kb: KnowledgeBase
) -> None:
    # Written for an older dashboard: its save button had an id this one lacks.
    product = store.product_id("BSG-KETTLE-1L")
    kb = flow(
        store_kb,
        ("Open the product", Action.GOTO, f"/dashboard/catalogue/products/{product}/", None, None),
        ("Save", Action.CLICK, "#save_product_button", None, None),
    )
    async with agent(tmp, store, chromium, kb, step_timeout_s=3.0) as a:
        op = await a.run("probe")
        steps = await a.svc.steps(op.id)
    assert (op.state, op.reason) == ("failed", "step_failed")
    assert "step 7 (Save): click target #save_product_button matched nothing in 3s" in op.error
    assert "no model is configured to re-plan the step" in op.error
    final = [s for s in steps if s.status == "final"]
    shot = Path(final[0].screenshot or "").read_bytes()
    assert png_pixels(shot)[:2] == (1280, 900)  # the page where it stopped, full size
    failed = [s for s in steps if s.status == "failed"]
    assert [s.idx for s in failed] == [7]
