"""The kill switch stops a running browser operation at its next step (real Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.config import load_settings
from agentd.demosite import DemoSite
from agentd.notifiers import LogNotifier
from agentd.services.governor import Governance
from agentd.services.incidents import EventHub, IncidentService
from tests.integration import test_browser_agent as base
from tests.integration.test_browser_agent import ACCOUNT, harness

pytestmark = base.BROWSER_MARKS
anyio_backend = base.anyio_backend
shared_browser = base.shared_browser
site = base.site
tmp = base.tmp


async def test_kill_switch_cancels_a_running_operation_at_the_next_step(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_STATE_DIR", str(tmp))
    monkeypatch.delenv("AGENTD_CONFIG", raising=False)
    settings = load_settings(None)
    params = {"product_id": "104", "seo_title": "Changed", "meta_description": "Changed too"}
    before = site.state.product(104).seo_title
    async with harness(tmp, site, shared_browser) as h:
        notifier = LogNotifier()
        governance = Governance(
            h.store,
            lambda: settings,
            incidents=IncidentService(h.store, notifier, EventHub()),
            notifier=notifier,
            operations=h.svc,
        )
        await governance.start()
        op = await h.svc.start_operation("product_seo_update", ACCOUNT, params=params, actor="t")
        stopped = None
        async for event in h.svc.follow(op.id):
            if event["type"] == "step" and event["index"] == 2 and stopped is None:
                result = await governance.service.kill_switch(True, "operator", "runaway agent")
                stopped = result["operations_stopped"]
        assert stopped == 1
        done = await h.svc.get(op.id)
        assert (done.state, done.reason) == ("cancelled", "kill_switch")
        assert "runaway agent" in (done.error or "")
        assert done.step < 6, "the kill switch must stop the operation at the next boundary"
        assert site.state.product(104).seo_title == before
        events = [r.event for r in await h.audit()]
        assert events.index("KILL_SWITCH_CHANGED") < len(events) - 1
        assert events[-1] == "OPERATION_CANCELLED"
        assert (await governance.service.level())["kill_switch"] is True
