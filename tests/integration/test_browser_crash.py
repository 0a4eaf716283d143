"""SIGKILL of a process mid-operation, then recovery on the same database: a defined end."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentd.demosite import DemoSite
from agentd.ops_config import BrowserSettings, ServiceConfig
from agentd.services.operations import OperationsService
from agentd.store.sqlite import SqliteStore
from agentd.vault import Vault
from tests.integration import test_browser_agent as base
from tests.integration.test_browser_agent import (
    REPO,
    SERVICE,
    workflow_kb,
)

# The shared fixtures (one Chromium per module).
pytestmark = base.BROWSER_MARKS
anyio_backend = base.anyio_backend
shared_browser = base.shared_browser
site = base.site
tmp = base.tmp

PARAMS = {"product_id": "103", "seo_title": "After crash", "meta_description": "Recovered."}

SCRIPT = """
import os, sys, anyio
from pathlib import Path
from agentd.demosite import DemoSite
from agentd.vault import SecretValue
from tests.integration.test_browser_agent import ACCOUNT, harness
from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.ops_config import BrowserSettings

async def main() -> None:
    site = DemoSite(admin_password=os.environ["SITE_PASSWORD"])
    site.port = int(os.environ["SITE_PORT"])
    site._server = object()  # only .url and .port are used: the real site runs in the test
    browser = PlaywrightBrowser(BrowserSettings())
    async with harness(Path(sys.argv[1]), site, browser) as h:
        op = await h.svc.start_operation(
            "product_seo_update", ACCOUNT, params=%(params)r, actor="script"
        )
        print(op.id, flush=True)
        await h.svc.wait(op.id, 120)

anyio.run(main)
"""


def _poll(db: Path, until: Callable[[str, int], bool], timeout: float = 30) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                row = conn.execute("SELECT state, step FROM operations").fetchone()
        except sqlite3.Error:
            row = None
        if row is not None:
            state, step = str(row[0]), int(row[1])
            if until(state, step):
                return state, step
        time.sleep(0.01)
    raise AssertionError(f"operation never reached {until}")


@pytest.mark.parametrize(
    ("kill_when", "slow_login", "expected_state", "expected_reason"),
    [
        # Still loading the sign-in page: nothing can have changed, so it starts again.
        (lambda state, step: state == "in_progress" and step == 0, True, "pending", None),
        # Past "Sign in" and into the edit form: it may have saved, so it is not re-run.
        (lambda state, step: step >= 8, False, "failed", "interrupted"),
    ],
    ids=["before-any-change", "after-sign-in"],
)
async def test_sigkill_mid_operation_then_recovery(
    tmp: Path,
    site: DemoSite,
    shared_browser: object,
    kill_when: Callable[[str, int], bool],
    slow_login: bool,
    expected_state: str,
    expected_reason: str | None,
) -> None:
    if slow_login:
        site.fail("/login", mode="slow", delay_s=20, times=1)
    script = tmp / "run_op.py"
    script.write_text(SCRIPT % {"params": PARAMS})
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SITE_PORT": str(site.port),
        "SITE_PASSWORD": site.admin_password,
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: Chromium dies with it
    )
    try:
        _poll(tmp / "agentd.sqlite3", kill_when)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    store = SqliteStore(tmp / "agentd.sqlite3")
    await store.open()
    kb = workflow_kb()
    settings = BrowserSettings(
        step_timeout_s=5,
        screenshots_dir=tmp / "operations",
        services={SERVICE: ServiceConfig(base_url=site.url)},
    )
    svc = OperationsService(
        store,
        settings,
        state_dir=tmp,
        knowledge_base=lambda: kb,
        vault=Vault(os.urandom(32)),  # a new key: the old secrets cannot be opened
        browser=shared_browser,  # type: ignore[arg-type]
    )
    try:
        settled = await svc.recover()
        assert len(settled) == 1
        op = settled[0]
        if expected_state == "failed":
            assert (op.state, op.reason) == ("failed", "interrupted")
            assert "not re-run" in (op.error or "")
            assert site.state.product(103).seo_title in (PARAMS["seo_title"], _seeded_title())
        else:
            assert op.state == "pending" and op.step == 0
            events = [r.event async for r in store.audit_records() if r.subject == op.id]
            assert "OPERATION_RESUMED" in events
        assert not await svc.list_operations(state="in_progress")
        assert (await store.verify_audit()).intact
    finally:
        await svc.close()
        await store.close()


def _seeded_title() -> str:
    with DemoSite() as fresh:
        return fresh.state.product(103).seo_title
