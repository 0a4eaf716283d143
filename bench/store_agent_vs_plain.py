"""The audited agent vs a plain Playwright script on a real store back-office.

Run: .venv/bin/python bench/store_agent_vs_plain.py [--runs N]

The store is django-oscar's dashboard (the tests' store: ``.venv-oscar``,
seeded once and cached; ``./scripts/install`` makes it), served by Django on
loopback. Both sides drive the same Chromium and do the same steps of the
``oscar_product_seo_update`` workflow (``tests/backoffice/workflows``): sign
in, open the product, read its SEO fields, show the SEO tab, fill and save
them, see Oscar's message on the product list, open the product again and
read them back. The plain side is a straight Playwright script in a fresh
context per run; the agent side is the real OperationsService on a real
SqliteStore, with the knowledge base built from the bundled and the store's
workflows (consent, vault, host allowlist, a masked screenshot per step, every
step audited, a final screenshot and a trace, the daemon's default settings).
Oscar's pages ask a CDN for jQuery first (then fall back to their own copy):
the agent's host allowlist refuses that request, and the plain script aborts
it too, so both sides load the same page. Runs alternate between the sides
in one process; the medians, their ratio and the median of the run-by-run
ratios are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from playwright.async_api import Page, async_playwright, expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.browser.playwright_browser import CHROMIUM_ARGS, PlaywrightBrowser
from agentd.kb import build_knowledge_base
from agentd.ops_config import BrowserSettings, ServiceConfig
from agentd.services.consents import ConsentsService
from agentd.services.operations import OperationsService
from agentd.services.secrets import SecretsService
from agentd.store.sqlite import SqliteStore
from agentd.vault import SecretValue, Vault
from tests.backoffice.store import Store, StoreTemplate

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = "oscar_product_seo_update"
CDN = "https://ajax.googleapis.com/**"


def params(product: int, i: int) -> dict[str, str]:
    return {
        "product_id": str(product),
        "seo_title": f"Burr Grinder {i} | Brightside",
        "meta_description": f"Conical burrs, run {i}.",
    }


async def plain_run(page: Page, store: Store, p: dict[str, str]) -> None:
    """The same update written as an ordinary Playwright script."""
    url = store.url
    await page.goto(f"{url}/dashboard/login/")
    await page.locator("#id_username").fill(store.secrets["staff_user"])
    await page.locator("#id_password").fill(store.password)
    await page.locator('#dashboard_login_form input[type="submit"]').click()
    await page.wait_for_url(f"{url}/dashboard/")
    product = f"{url}/dashboard/catalogue/products/{p['product_id']}/"
    await page.goto(product)
    seo, meta = page.locator("#id_meta_title"), page.locator("#id_meta_description")
    before = (await seo.input_value(), await meta.input_value())
    await page.locator('a.nav-link[href="#seo"]').click()
    await seo.fill(p["seo_title"])
    await meta.fill(p["meta_description"])
    await page.locator('#create_update_product_form button[name="action"][value="save"]').click()
    await page.wait_for_url(f"{url}/dashboard/catalogue/")
    await expect(page.locator(".alert-success")).to_contain_text("Updated product")
    await page.goto(product)
    after = (await seo.input_value(), await meta.input_value())
    assert after == (p["seo_title"], p["meta_description"]) and before


async def main(runs: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    template = StoreTemplate.create(tmp)
    (tmp / "store").mkdir()
    store = Store(template, tmp / "store").start()
    product = store.product_id("BSG-GRINDER")
    settings = BrowserSettings(
        screenshots_dir=tmp / "operations",
        services={"store": ServiceConfig(base_url=store.url)},
    )
    kb = build_knowledge_base(
        REPO / "workflows", tmp / "kb.json", extra_dirs=[REPO / "tests/backoffice/workflows"]
    )
    db = SqliteStore(tmp / "agentd.sqlite3")
    await db.open()
    browser = PlaywrightBrowser(settings)
    vault = Vault(os.urandom(32))
    svc = OperationsService(
        db,
        settings,
        state_dir=tmp,
        knowledge_base=lambda: kb,
        vault=vault,
        browser=browser,
        owner="bench",
    )
    plain_times: list[float] = []
    agent_times: list[float] = []
    try:
        async with db.write() as tx:
            await tx.gate.upsert_accounts(
                [
                    {
                        "id": "brightside",
                        "tenant": "t1",
                        "name": "Brightside",
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
                "brightside", "store", name, SecretValue(value), actor="bench"
            )
        await ConsentsService(db, svc, knowledge_base=lambda: kb).grant_consent(
            "brightside", "store", actor="bench"
        )
        async with async_playwright() as pw:
            chromium = await pw.chromium.launch(
                executable_path=str(settings.executable_path),
                headless=True,
                chromium_sandbox=False,
                args=list(CHROMIUM_ARGS),
            )
            size = {"width": settings.viewport_width, "height": settings.viewport_height}
            async with anyio.create_task_group() as tg:
                tg.start_soon(svc.run)
                for i in range(runs + 1):  # run 0 warms both sides up
                    started = time.perf_counter()
                    context = await chromium.new_context(viewport=size)  # type: ignore[arg-type]
                    await context.route(CDN, lambda route: route.abort("blockedbyclient"))
                    await plain_run(await context.new_page(), store, params(product, i))
                    await context.close()
                    plain = time.perf_counter() - started
                    started = time.perf_counter()
                    op = await svc.start_operation(
                        WORKFLOW,
                        "brightside",
                        params=params(product, i),
                        service="store",
                        actor="bench",
                    )
                    done = await svc.wait(op.id, 120)
                    agent = time.perf_counter() - started
                    if done.state != "completed":
                        print(f"agent run failed: {done.reason}: {done.error}", file=sys.stderr)
                        return 1
                    if i:
                        plain_times.append(plain)
                        agent_times.append(agent)
                tg.cancel_scope.cancel()
            await chromium.close()
    finally:
        await svc.close()
        await db.close()
        store.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    plain_ms = statistics.median(plain_times) * 1000
    agent_ms = statistics.median(agent_times) * 1000
    steps = len(kb.workflow(WORKFLOW).steps)
    print(f"{WORKFLOW} on django-oscar's dashboard, {steps} steps, {runs} runs each")
    print(f"plain Playwright script: {plain_ms:8.1f} ms (median; {spread(plain_times)})")
    print(f"audited agent:           {agent_ms:8.1f} ms (median; {spread(agent_times)})")
    print(f"ratio agent/plain:       {agent_ms / plain_ms:8.2f}x")
    pairs = sorted(a / p for a, p in zip(agent_times, plain_times, strict=True))
    print(
        f"ratio, run by run:       {statistics.median(pairs):8.2f}x "
        f"(median; {pairs[0]:.2f}-{pairs[-1]:.2f}x)"
    )
    return 0


def spread(times: list[float]) -> str:
    return f"{min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sys.exit(anyio.run(main, args.runs))
