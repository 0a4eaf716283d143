"""The audited browser agent with real Chromium against the demo back-office.

Every workflow of the knowledge base runs end to end through the operations
service; screenshots are real PNGs with secret fields painted over; requests
off the account's host allowlist never leave the browser.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.demosite import DemoSite
from agentd.kb import KnowledgeBase, load_knowledge_base
from agentd.ops_config import DEFAULT_CHROMIUM, BrowserSettings, ServiceConfig
from agentd.services.consents import ConsentsService
from agentd.services.operations import OperationsService
from agentd.services.secrets import SecretsService
from agentd.store.sqlite import SqliteStore
from agentd.vault import SecretValue, Vault

REPO = Path(__file__).resolve().parents[2]
KB_PATH = REPO / "knowledge_base" / "AGENT_KNOWLEDGE_BASE.json"
ACCOUNT = "brightside"
SERVICE = "backoffice"
MAGENTA = (255, 0, 255)

# The marks of every module that drives Chromium (the modules built on this one take them).
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]
pytestmark = [*BROWSER_MARKS, pytest.mark.slow(20)]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def shared_browser() -> AsyncIterator[PlaywrightBrowser]:
    """One Chromium for the whole module: each operation still gets a fresh context."""
    browser = PlaywrightBrowser(BrowserSettings())
    yield browser
    await browser.close()


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with DemoSite() as demo:
        yield demo


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ab-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def workflow_kb() -> KnowledgeBase:
    return load_knowledge_base(KB_PATH)


@dataclass
class Harness:
    """The operations service on a real store, wired to one demo site."""

    svc: OperationsService
    store: SqliteStore
    site: DemoSite
    folder: Path
    consents: ConsentsService
    secrets: SecretsService

    async def run(
        self, workflow: str, params: dict[str, str] | None = None, timeout: float = 60
    ) -> Any:
        op = await self.svc.start_operation(workflow, ACCOUNT, params=params or {}, actor="tester")
        return await self.svc.wait(op.id, timeout)

    async def audit(self, subject: str | None = None) -> list[Any]:
        records = [r async for r in self.store.audit_records()]
        return [r for r in records if subject is None or r.subject == subject]


async def add_account(store: SqliteStore, hosts: list[str]) -> None:
    async with store.write() as tx:
        await tx.gate.upsert_accounts(
            [
                {
                    "id": ACCOUNT,
                    "tenant": "t1",
                    "name": "Brightside Goods",
                    "stage": "discovery",
                    "trusted_mode": "ACTIVE",
                    "domains": ["SEO"],
                    "allowed_hosts": hosts,
                }
            ],
            tx.now.isoformat(),
        )


@asynccontextmanager
async def harness(
    tmp: Path,
    site: DemoSite,
    browser: PlaywrightBrowser,
    *,
    kb: KnowledgeBase | None = None,
    consent: bool = True,
    secrets: bool = True,
    vault: bool = True,
    model: Any = None,
    step_timeout_s: float = 5.0,
    hosts: list[str] | None = None,
    running: bool = True,
    max_browsers: int = 2,
    viewport: tuple[int, int] = (1280, 900),
) -> AsyncIterator[Harness]:
    """Open a store, seed account, secrets and consent, and run the service."""
    store = SqliteStore(tmp / "agentd.sqlite3")
    await store.open()
    settings = BrowserSettings(
        step_timeout_s=step_timeout_s,
        max_browsers=max_browsers,
        viewport_width=viewport[0],
        viewport_height=viewport[1],
        screenshots_dir=tmp / "operations",
        services={SERVICE: ServiceConfig(base_url=site.url)},
    )
    knowledge = kb or workflow_kb()
    sealer = Vault(os.urandom(32)) if vault else None
    svc = OperationsService(
        store,
        settings,
        state_dir=tmp,
        knowledge_base=lambda: knowledge,
        vault=sealer,
        model=model,
        browser=browser,
    )
    consents = ConsentsService(store, svc, knowledge_base=lambda: knowledge)
    vaulted = SecretsService(store, sealer)
    try:
        await add_account(store, hosts if hosts is not None else [f"127.0.0.1:{site.port}"])
        if secrets:
            for name, value in (
                ("admin_user", site.admin_user),
                ("admin_password", site.admin_password),
            ):
                await vaulted.set_secret(ACCOUNT, SERVICE, name, SecretValue(value), actor="tester")
        if consent:
            await consents.grant_consent(
                ACCOUNT, SERVICE, "*", permissions=["write"], actor="tester"
            )
        async with anyio.create_task_group() as tg:
            if running:
                tg.start_soon(svc.run)
            yield Harness(svc, store, site, tmp / "operations", consents, vaulted)
            tg.cancel_scope.cancel()
    finally:
        await svc.close()
        await store.close()


# -- PNG reading (no imaging library needed) ----------------------------------------------


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG; return width, height and rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        filt = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride if filt else 0):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(
            bytes(line) if channels == 3 else bytes(line[j] for j in range(stride) if j % 4 < 3)
        )
        prev = line
    return width, height, rows


def magenta_box(data: bytes) -> tuple[int, tuple[int, int, int, int] | None]:
    """Return how many pixels are exactly the mask colour, and their bounding box."""
    width, _, rows = png_pixels(data)
    count, box = 0, None
    needle = bytes(MAGENTA)
    for y, row in enumerate(rows):
        for x in range(width):
            if row[3 * x : 3 * x + 3] == needle:
                count += 1
                box = (
                    (x, y, x, y)
                    if box is None
                    else (min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y))
                )
    return count, box


# -- every workflow end to end ------------------------------------------------------------


def workflow_params(site: DemoSite) -> dict[str, dict[str, str]]:
    """Each workflow's parameters; ``{account}`` is the operation's (on the site as well)."""
    site.add_account(ACCOUNT, "Brightside Goods")
    _, _, _ = site.create_api_key("Storefront search", "read")
    revoke, _, _ = site.create_api_key("Old reporting export", "read_write")
    state = site.state
    ceo = "ceo@brightside.example"
    state.add_contact(ACCOUNT, "Ada Brightside", ceo, "CEO")
    cancelled = state.schedule_meeting(
        ACCOUNT, title="Old review", day="2099-06-29", at="10:00", duration="30", send_invite=False
    )
    kickoff = state.schedule_meeting(
        ACCOUNT, title="Kick-off", day="2099-06-28", at="09:00", duration="30", send_invite=False
    )
    state.record_minutes(ACCOUNT, kickoff.id, "Agreed: a pilot in two shops.")
    mistake = state.add_note(ACCOUNT, "Added by mistake.")
    quote = state.create_quote(ACCOUNT, [("Grinder", "2", "129.00")], "14")
    return {
        "add_note": {"note": "Asked for a pilot in Q3."},
        "cancel_meeting": {"meeting_id": str(cancelled.id)},
        "change_deal_stage": {"stage": "qualification"},
        "delete_note": {"note_id": str(mistake.id)},
        "edit_account_plan": {"plan": "Land the cafe chain first.\nThen the roastery."},
        "escalate_to_manager": {
            "title": "Renewal at risk",
            "details": "Two complaints this week.",
        },
        "read_account_record": {},
        "record_qualification": {
            "budget": "10k",
            "authority": "Owner",
            "need": "Stock sync",
            "timeline": "This quarter",
        },
        "send_quote": {
            "description_1": "Burr grinder",
            "quantity_1": "2",
            "price_1": "129.00",
            "description_2": "",
            "quantity_2": "",
            "price_2": "",
            "description_3": "",
            "quantity_3": "",
            "price_3": "",
            "valid_days": "30",
        },
        "send_templated_message": {
            "template": "pricing_discussion",
            "to": ceo,
            "subject": "Pricing for next year",
            "body": "Hello,\n\nCould we go through next year's pricing together?\n",
        },
        "share_meeting_minutes": {
            "meeting_id": str(kickoff.id),
            "to": ceo,
            "subject": "Minutes of our kick-off",
            "body": "Hello,\n\nThe minutes of our kick-off are attached.\n",
        },
        "withdraw_quote": {"quote_id": str(quote.id)},
        "api_key_generation": {"description": "Inventory sync", "permissions": "read_write"},
        "api_key_revocation": {"key_id": str(revoke.id)},
        "product_seo_update": {
            "product_id": "103",
            "seo_title": "Gooseneck Kettle | Brightside",
            "meta_description": "Pour-over precision.",
        },
        "read_account_activity": {},
        "read_product_seo": {"product_id": "102"},
        "schedule_meeting": {
            "title": "Quarterly review",
            "date": "2099-06-30",  # the site refuses past days only
            "time": "14:30",
            "duration": "45",
        },
        "send_follow_up_message": {
            "subject": "Following up",
            "body": "Thanks for the call.",
        },
    }


async def test_every_workflow_runs_end_to_end_audited(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    params = workflow_params(site)
    assert sorted(params) == sorted(workflow_kb().names), "a workflow has no test parameters"
    async with harness(tmp, site, shared_browser, max_browsers=4) as h:
        ops = {
            name: await h.svc.start_operation(name, ACCOUNT, params=p, actor="tester")
            for name, p in params.items()
        }
        done = {name: await h.svc.wait(op.id, 90) for name, op in ops.items()}
        for name, op in done.items():
            assert (op.state, op.error) == ("completed", None), name
            assert op.step == op.total and op.attempts == 1
            steps = await h.svc.steps(op.id)
            assert [s.idx for s in steps if s.status == "ok"] == list(range(1, op.total + 1))
            for s in steps:
                shot = Path(s.screenshot or "")
                data = shot.read_bytes()
                assert data.startswith(b"\x89PNG\r\n\x1a\n"), shot
                assert hashlib.sha256(data).hexdigest() == s.sha256
            assert list((h.folder / op.id).glob("trace-*.zip")), "no trace kept"
            events = [r.event for r in await h.audit(op.id)]
            assert events.count("OPERATION_STEP") == op.total
            assert events[-1] == "OPERATION_COMPLETED"
        # One capture serves several steps, each with its own file: a click is shown
        # on the page before it, which also shows the navigation and fills before
        # it; a run of reading steps shares the page as the first of them left it,
        # and after a last run of them that is the final screenshot.
        seo = {s.idx: s for s in await h.svc.steps(done["product_seo_update"].id)}
        actions = "goto fill fill click expect_url click click expect_url extract extract"
        actions += " fill fill click expect_text extract extract"
        assert [seo[i].action for i in range(1, 17)] == actions.split()
        shared = [[1, 2, 3, 4], [5, 6], [7], [8, 9, 10], [11, 12, 13], [14, 15, 16, 0]]
        assert [sorted({seo[i].sha256 for i in group}) for group in shared] == [
            [seo[group[0]].sha256] for group in shared
        ]
        assert len({seo[group[0]].sha256 for group in shared}) == len(shared)
        assert len({s.screenshot for s in seo.values()}) == len(seo)  # a file per step
        assert seo[0].status == "final"
        product = site.state.product(103)
        assert product.seo_title == "Gooseneck Kettle | Brightside"
        assert done["product_seo_update"].result["after_meta_description"] == "Pour-over precision."
        assert done["read_product_seo"].result["seo_title"] == site.state.product(102).seo_title
        key_id = int(done["api_key_generation"].result["key_id"])
        assert site.state.api_keys[key_id].active
        revoked = int(params["api_key_revocation"]["key_id"])
        assert not site.state.api_keys[revoked].active
        # Secret values never reach the audit trail or the step rows.
        trail = json.dumps([r.to_dict() for r in await h.audit()])
        assert site.admin_password not in trail
        assert "SECRET_ACCESSED" in trail
        assert (await h.store.verify_audit()).intact


async def test_screenshots_mask_secret_fields(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    async with harness(tmp, site, shared_browser, viewport=(800, 600)) as h:
        op = await h.run("api_key_generation", {"description": "Mask me", "permissions": "read"})
        assert op.state == "completed"
        steps = {s.idx: s for s in await h.svc.steps(op.id)}
    # The final page shows the consumer key and secret in data-secret inputs. It ends
    # with reading steps, whose screenshot (at the step scale) is the final one.
    final = Path(steps[0].screenshot or "").read_bytes()
    assert png_pixels(final)[:2] == (400, 300)
    assert steps[0].sha256 == steps[max(steps)].sha256
    count, box = magenta_box(final)
    assert count > 500 and box is not None
    assert box[2] - box[0] > 50, "the mask should cover the whole input"
    # The password field is masked once typed (screenshot before "Sign in"), in a step
    # screenshot taken at half the viewport's size.
    sign_in = next(i for i, s in steps.items() if s.intent == "Sign in")
    before_sign_in = Path(steps[sign_in].screenshot or "").read_bytes()
    assert png_pixels(before_sign_in)[:2] == (400, 300)
    count, box = magenta_box(before_sign_in)
    assert count > 200 and box is not None and box[2] - box[0] > 50
    # The dashboard has no secret field: nothing is painted over.
    dashboard = next(i for i, s in steps.items() if s.intent == "Open the REST API settings")
    assert magenta_box(Path(steps[dashboard].screenshot or "").read_bytes())[0] == 0


async def test_the_operations_account_fills_the_workflows_account_parameter(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    site.add_account(ACCOUNT, "Brightside Goods")
    async with harness(tmp, site, shared_browser) as h:
        op = await h.run("add_note", {"note": "Called about pricing"})
        assert (op.state, op.error) == ("completed", None)
        assert op.params["account"] == ACCOUNT
        assert [n.text for n in site.state.notes_for(ACCOUNT)][-1] == "Called about pricing"
