"""Consent permissions: a workflow runs only under a consent that grants what it needs."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.demosite import DemoSite
from agentd.errors import InvalidArgument
from tests.integration import test_browser_agent as base
from tests.integration.test_browser_agent import ACCOUNT, SERVICE, Harness, harness

pytestmark = base.BROWSER_MARKS
anyio_backend = base.anyio_backend
shared_browser = base.shared_browser
site = base.site
tmp = base.tmp

SEO = {"product_id": "103", "seo_title": "Consented", "meta_description": "Written."}


async def created(h: Harness, op_id: str) -> dict[str, str]:
    return next(r.data for r in await h.audit(op_id) if r.event == "OPERATION_CREATED")


async def test_a_read_consent_runs_reads_and_holds_writes_until_write_is_granted(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    before = site.state.product(103).seo_title
    async with harness(tmp, site, shared_browser, consent=False) as h:
        await h.consents.grant_consent(
            ACCOUNT, SERVICE, "*", permissions=["read"], actor="customer"
        )
        read = await h.run("read_product_seo", {"product_id": "102"})
        assert (read.state, read.error) == ("completed", None)

        write = await h.svc.start_operation("product_seo_update", ACCOUNT, params=SEO, actor="t")
        assert write.state == "awaiting_consent"
        data = await created(h, write.id)
        assert data["needs"] == "write" and "needs permission 'write'" in data["waiting_for"]
        await anyio.sleep(0.3)
        assert (await h.svc.get(write.id)).state == "awaiting_consent"
        assert site.state.product(103).seo_title == before

        await h.consents.grant_consent(
            ACCOUNT, SERVICE, "*", permissions=["write"], actor="customer"
        )
        done = await h.svc.wait(write.id, 60)
        assert (done.state, done.error) == ("completed", None)
        assert site.state.product(103).seo_title == "Consented"


async def test_a_workflows_own_consent_decides_over_the_accounts(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    async with harness(tmp, site, shared_browser) as h:  # "*" with write
        await h.consents.grant_consent(
            ACCOUNT, SERVICE, "product_seo_update", permissions=["read"], actor="customer"
        )
        op = await h.svc.start_operation("product_seo_update", ACCOUNT, params=SEO, actor="t")
        assert op.state == "awaiting_consent"
        # No permissions at all: every permission (consents from before they were enforced).
        await h.consents.grant_consent(ACCOUNT, SERVICE, "product_seo_update", actor="customer")
        done = await h.svc.wait(op.id, 60)
        assert (done.state, done.error) == ("completed", None)


async def test_a_narrowed_consent_stops_a_running_write_at_the_next_step(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    before = site.state.product(103).seo_title
    async with harness(tmp, site, shared_browser) as h:
        op = await h.svc.start_operation("product_seo_update", ACCOUNT, params=SEO, actor="t")
        async for event in h.svc.follow(op.id, poll_s=0.05):
            if event["type"] == "step" and event["index"] == 1:
                await h.consents.grant_consent(
                    ACCOUNT, SERVICE, "*", permissions=["read"], actor="customer"
                )
        done = await h.svc.get(op.id)
        assert (done.state, done.reason) == ("cancelled", "permission_revoked")
        assert "needs permission 'write'" in (done.error or "")
        assert site.state.product(103).seo_title == before
        final = [s for s in await h.svc.steps(op.id) if s.status == "final"]
        assert final and Path(final[0].screenshot or "").read_bytes().startswith(b"\x89PNG")
        events = [r.event for r in await h.audit(op.id)]
        assert events[-1] == "OPERATION_CANCELLED"


async def test_an_operation_claimed_under_a_narrowed_consent_waits_again(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    async with harness(tmp, site, shared_browser, running=False) as h:
        op = await h.svc.start_operation("product_seo_update", ACCOUNT, params=SEO, actor="t")
        assert op.state == "pending"
        await h.consents.grant_consent(
            ACCOUNT, SERVICE, "*", permissions=["read"], actor="customer"
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(h.svc.run)
            with anyio.fail_after(10):
                while (await h.svc.get(op.id)).state != "awaiting_consent":
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        waiting = [r for r in await h.audit(op.id) if r.event == "OPERATION_AWAITING_CONSENT"]
        assert waiting and waiting[0].data["reason"] == "permission_missing"
        assert not await h.svc.steps(op.id)


async def test_unknown_permissions_are_refused(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    async with harness(tmp, site, shared_browser, consent=False, running=False) as h:
        with pytest.raises(InvalidArgument, match="unknown permission admin"):
            await h.consents.grant_consent(
                ACCOUNT, SERVICE, permissions=["read", "admin"], actor="t"
            )
        assert await h.consents.list_consents() == []


# -- an operation acts for its own account only ---------------------------------------------------


async def test_an_account_parameter_cannot_point_an_operation_at_another_account(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    before = [n.text for n in site.state.notes_for("globex")]
    async with harness(tmp, site, shared_browser) as h:
        with pytest.raises(InvalidArgument, match="differs from the operation's account") as err:
            await h.svc.start_operation(
                "add_note", ACCOUNT, params={"account": "globex", "note": "hijack"}, actor="t"
            )
        assert err.value.details == {"field": "params", "parameter": "account"}
        assert await h.svc.list_operations() == []
        assert not [r for r in await h.audit() if r.event == "OPERATION_CREATED"]
    assert [n.text for n in site.state.notes_for("globex")] == before


async def test_an_operation_stored_with_another_accounts_parameter_never_opens_a_page(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    # An operation created before the account was bound (or written by another tool).
    before = [n.text for n in site.state.notes_for("globex")]
    async with harness(tmp, site, shared_browser, running=False) as h:
        op = await h.svc.start_operation("add_note", ACCOUNT, params={"note": "hijack"}, actor="t")
        async with h.store.write() as tx:
            params = json.dumps({"account": "globex", "note": "hijack"})
            await tx.ops.update_operation(op.id, {"params": params})
        async with anyio.create_task_group() as tg:
            tg.start_soon(h.svc.run)
            done = await h.svc.wait(op.id, 60)
            tg.cancel_scope.cancel()
        assert (done.state, done.reason) == ("failed", "invalid_params")
        assert "differs from the operation's account" in (done.error or "")
        assert not [s for s in await h.svc.steps(op.id) if s.status != "final"]
    assert [n.text for n in site.state.notes_for("globex")] == before
    assert not [r for r in site.access_log if r.path.startswith("/crm/accounts/globex")]


async def test_a_parameter_cannot_walk_a_url_to_another_page(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    # Unencoded, this product id would open /crm/accounts/globex/notes/new.
    sneaky = "../../crm/accounts/globex/notes/new?x="
    async with harness(tmp, site, shared_browser) as h:
        with pytest.raises(InvalidArgument, match="goes into a URL path"):
            await h.svc.start_operation(
                "read_product_seo", ACCOUNT, params={"product_id": ".."}, actor="t"
            )
        with pytest.raises(InvalidArgument, match="goes into a selector"):
            await h.svc.start_operation(
                "api_key_revocation",
                ACCOUNT,
                params={"key_id": '1"], [data-testid^="'},
                actor="t",
            )
        op = await h.run("read_product_seo", {"product_id": sneaky})
        assert (op.state, op.reason) == ("failed", "step_failed")
        steps = {s.idx: s for s in await h.svc.steps(op.id)}
    assert "answered 404" in (steps[6].error or "")
    # The record names the URL the step really opened.
    opened = "/admin/products/..%2F..%2Fcrm%2Faccounts%2Fglobex%2Fnotes%2Fnew%3Fx%3D/edit"
    assert steps[6].target == opened
    assert not [r for r in site.access_log if r.path.startswith("/crm/accounts/globex")]
