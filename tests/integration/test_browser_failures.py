"""Bad input for the browser agent: each case ends in a clear, audited state with a screenshot."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.demosite import DemoSite
from agentd.kb import Action, KnowledgeBase, Step, Workflow
from agentd.llm import AnthropicModel, LLMSettings
from agentd.services.operations import Recovery, recovery_decision
from agentd.testing.anthropic_stub import AnthropicStub, Reply
from tests.integration import test_browser_agent as base
from tests.integration.test_browser_agent import (
    ACCOUNT,
    SERVICE,
    Harness,
    harness,
    workflow_kb,
)

# The shared fixtures (one Chromium per module).
pytestmark = [*base.BROWSER_MARKS, pytest.mark.slow(55)]
anyio_backend = base.anyio_backend
shared_browser = base.shared_browser
site = base.site
tmp = base.tmp

LOGIN = workflow_kb().workflow("product_seo_update").steps[:5]
# Short, so a bad step fails fast; long enough for a loaded machine to sign in.
STEP_TIMEOUT_S = 2.0


def flow(name: str, *extra: tuple[str, Action, str, str | None, str | None]) -> KnowledgeBase:
    """Return a knowledge base of one workflow: sign in, then ``extra`` steps."""
    steps = list(LOGIN)
    for intent, action, target, value, expect in extra:
        steps.append(Step(len(steps) + 1, intent, action, target, value, expect))
    wf = Workflow(name, name, "test", (), ("admin_user", "admin_password"), tuple(steps))
    return KnowledgeBase("2026-01-01T00:00:00+00:00", {}, (wf,))


async def assert_failed_with_evidence(h: Harness, op: Any, reason: str, words: str) -> None:
    """The operation failed for ``reason``, said ``words``, and left an audited screenshot."""
    assert op.state == "failed", (op.state, op.reason, op.error)
    assert op.reason == reason, op.error
    assert words in (op.error or ""), op.error
    steps = await h.svc.steps(op.id)
    final = [s for s in steps if s.status == "final"]
    assert final and Path(final[0].screenshot or "").read_bytes().startswith(b"\x89PNG")
    if final[0].screenshot:  # none when the browser never opened
        shot = Path(final[0].screenshot).read_bytes()
        assert base.png_pixels(shot)[:2] == (1280, 900), "a failure's final screenshot is full size"
    events = [r for r in await h.audit(op.id)]
    assert events[-1].event == "OPERATION_FAILED"
    assert events[-1].data["reason"] == reason and events[-1].data["sha256"] == final[0].sha256


@pytest.mark.parametrize(
    ("step", "reason", "words"),
    [
        pytest.param(
            ("Press a button that is gone", Action.CLICK, '[data-testid="gone"]', None, None),
            "step_failed",
            "matched nothing",
            id="missing-target",
        ),
        pytest.param(
            ("Wait for a field", Action.WAIT_FOR, 'input[name="_csrf"]', None, None),
            "step_failed",
            "timed out",
            id="selector-times-out",
        ),
        pytest.param(
            ("Expect a message", Action.EXPECT_TEXT, "h1", None, "Never shown"),
            "step_failed",
            "Never shown",
            id="expectation-unmet",
        ),
        pytest.param(
            ("Leave the site", Action.GOTO, "http://127.0.0.1:9/x", None, None),
            "refused_command",
            "allowlist",
            id="navigation-off-allowlist",
        ),
    ],
)
async def test_bad_step_fails_clearly(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser, step: Any, reason: str, words: str
) -> None:
    kb = flow("bad", step)
    async with harness(tmp, site, shared_browser, kb=kb, step_timeout_s=STEP_TIMEOUT_S) as h:
        op = await h.run("bad")
        await assert_failed_with_evidence(h, op, reason, words)
        assert op.step == len(LOGIN)  # signing in worked; the bad step did not
        if reason == "refused_command":
            refused = [r for r in await h.audit(op.id) if r.event == "OPERATION_REFUSED_COMMAND"]
            assert refused and "allowlist" in refused[0].data["problem"]


async def test_dialog_that_never_appears(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    kb = flow(
        "dialog",
        ("Accept the confirmation", Action.ACCEPT_DIALOG, "Revoke API key", None, None),
        ("Click something harmless", Action.CLICK, '[data-testid="nav-products"]', None, None),
    )
    async with harness(tmp, site, shared_browser, kb=kb, step_timeout_s=STEP_TIMEOUT_S) as h:
        op = await h.run("dialog")
        await assert_failed_with_evidence(h, op, "step_failed", "never appeared")


async def test_page_that_never_loads(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    site.fail("/admin/products", mode="slow", delay_s=3)
    kb = flow("slow", ("Open the products", Action.GOTO, "/admin/products", None, None))
    async with harness(tmp, site, shared_browser, kb=kb, step_timeout_s=STEP_TIMEOUT_S) as h:
        op = await h.run("slow")
        await assert_failed_with_evidence(h, op, "step_failed", "goto /admin/products")


async def test_site_down(tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser) -> None:
    site.fail("/login", mode="down")
    async with harness(tmp, site, shared_browser, step_timeout_s=STEP_TIMEOUT_S) as h:
        op = await h.run("read_product_seo", {"product_id": "102"})
        await assert_failed_with_evidence(h, op, "step_failed", "goto /login")
        assert op.step == 0
        # The service goes on: the next operation runs once the site is back.
        site.clear_failures()
        again = await h.run("read_product_seo", {"product_id": "102"})
        assert (again.state, again.error) == ("completed", None)


# Longer than the site needs: a step that waited it out would show in its duration.
PATIENT_TIMEOUT_S = 10.0
# Two clicks after signing in: the products list, then a product's form.
INTO_A_PRODUCT = (
    ("Open the products", Action.CLICK, '[data-testid="nav-products"]', None, None),
    ("Edit a product", Action.CLICK, '[data-testid="edit-product-101"]', None, None),
)


@pytest.mark.parametrize(
    ("path", "mode", "words", "failing"),
    [
        ("/admin/products", "error", "/admin/products answered 500", len(LOGIN) + 2),
        ("/admin/products", "down", "/admin/products could not be loaded", len(LOGIN) + 2),
        # The sign-in form's answer redirects to a dashboard that drops the connection:
        # the click returns before the browser gives up, the step after it waits.
        ("/admin", "down", "/admin could not be loaded", len(LOGIN)),
    ],
    ids=["error-page", "connection-dropped", "redirect-to-a-dropped-connection"],
)
async def test_a_click_onto_a_broken_page_fails_the_next_step_at_once(
    tmp: Path,
    site: DemoSite,
    shared_browser: PlaywrightBrowser,
    path: str,
    mode: str,
    words: str,
    failing: int,
) -> None:
    site.fail(path, mode=mode)
    kb = flow("broken", *INTO_A_PRODUCT)
    async with harness(tmp, site, shared_browser, kb=kb, step_timeout_s=PATIENT_TIMEOUT_S) as h:
        op = await h.run("broken")
        await assert_failed_with_evidence(h, op, "step_failed", words)
        assert op.step == failing - 1  # the click went through; the step after it failed
        (failed,) = [s for s in await h.svc.steps(op.id) if s.status == "failed"]
        assert failed.idx == failing
        assert failed.duration_ms < PATIENT_TIMEOUT_S * 1000 / 2, "it waited out the timeout"


async def test_a_client_error_page_is_waited_on_as_any_page(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    # A 4xx page may be an application that renders itself (a single-page app's
    # fallback served as a 404): only a server error fails a step at once.
    site.fail("/admin/products", status=404)
    kb = flow("missing", *INTO_A_PRODUCT)
    async with harness(tmp, site, shared_browser, kb=kb, step_timeout_s=STEP_TIMEOUT_S) as h:
        op = await h.run("missing")
        await assert_failed_with_evidence(h, op, "step_failed", "matched nothing in 2s")


async def test_an_error_page_that_shows_the_target_is_acted_on(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    site.fail("/admin/products", status=503)
    kb = flow(
        "apology",
        ("Open the products", Action.CLICK, '[data-testid="nav-products"]', None, None),
        ("Read the apology", Action.EXPECT_TEXT, '[data-testid="error-page"]', None, "Reference"),
        ("Go back", Action.CLICK, '[data-testid="back-home"]', None, None),
        ("Back home", Action.EXPECT_URL, "/admin", None, None),
    )
    async with harness(tmp, site, shared_browser, kb=kb, step_timeout_s=STEP_TIMEOUT_S) as h:
        op = await h.run("apology")
        assert (op.state, op.error) == ("completed", None)


@pytest.mark.parametrize(
    ("vault", "reason", "words"),
    [
        (True, "missing_secret", "agentctl secret set brightside backoffice admin_user"),
        (False, "vault", "no vault key is configured"),
    ],
    ids=["missing-secret", "no-vault-key"],
)
async def test_unavailable_secret_stops_where_it_is_needed(
    tmp: Path,
    site: DemoSite,
    shared_browser: PlaywrightBrowser,
    vault: bool,
    reason: str,
    words: str,
) -> None:
    async with harness(tmp, site, shared_browser, secrets=False, vault=vault) as h:
        op = await h.run("read_product_seo", {"product_id": "102"})
        await assert_failed_with_evidence(h, op, reason, words)
        assert "stopped before step 2" in (op.error or "")
        # The sign-in page was opened (step 1) and photographed where it stopped.
        steps = await h.svc.steps(op.id)
        assert [(s.idx, s.status) for s in steps] == [(1, "ok"), (2, "failed"), (0, "final")]
        shot = Path(steps[1].screenshot or "").read_bytes()
        assert shot.startswith(b"\x89PNG") and hashlib.sha256(shot).hexdigest() == steps[1].sha256
        assert op.step == 1
        # Nothing was typed or submitted, and no secret was opened.
        assert site.access_log and all(r.method == "GET" for r in site.access_log)
        assert "SECRET_ACCESSED" not in [r.event for r in await h.audit()]


async def test_waits_for_consent_then_starts(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    async with harness(tmp, site, shared_browser, consent=False) as h:
        op = await h.svc.start_operation(
            "read_product_seo", ACCOUNT, params={"product_id": "102"}, actor="t"
        )
        assert op.state == "awaiting_consent"
        await anyio.sleep(0.3)
        assert (await h.svc.get(op.id)).state == "awaiting_consent"
        await h.consents.grant_consent(ACCOUNT, SERVICE, "read_product_seo", actor="t")
        done = await h.svc.wait(op.id, 30)
        assert done.state == "completed" and done.result["seo_title"]


async def test_consent_revoked_mid_run_stops_the_next_step(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    params = {"product_id": "103", "seo_title": "Changed", "meta_description": "Changed too"}
    before = site.state.product(103).seo_title
    async with harness(tmp, site, shared_browser) as h:
        op = await h.svc.start_operation("product_seo_update", ACCOUNT, params=params, actor="t")
        async for event in h.svc.follow(op.id):
            if event["type"] == "step" and event["index"] == 2:
                await h.consents.revoke_consent(ACCOUNT, SERVICE, "*", actor="customer")
        done = await h.svc.get(op.id)
        assert (done.state, done.reason) == ("cancelled", "consent_revoked")
        assert done.step < 6, "the revoke must stop the operation at the next boundary"
        assert site.state.product(103).seo_title == before
        events = [r.event for r in await h.audit()]
        assert "CONSENT_REVOKED" in events and events[-1] == "OPERATION_CANCELLED"
        final = [s for s in await h.svc.steps(op.id) if s.status == "final"]
        assert final and Path(final[0].screenshot or "").is_file()


async def test_cancel(tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser) -> None:
    async with harness(tmp, site, shared_browser, consent=False) as h:
        op = await h.svc.start_operation(
            "read_product_seo", ACCOUNT, params={"product_id": "102"}, actor="t"
        )
        cancelled = await h.svc.cancel(op.id, "operator")
        assert (cancelled.state, cancelled.reason) == ("cancelled", "cancelled")


# -- every request the page makes goes through the allowlist ----------------------------------


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]
    page: bytes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = self.page
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if body.startswith(b"<") else "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def servers() -> Iterator[tuple[Any, Any]]:
    """An allowed page that loads an image and a script from an off-allowlist loopback port."""
    made = []
    for _ in range(2):
        handler = type("H", (_Recorder,), {"hits": [], "page": b"\x89PNG\r\n\x1a\n"})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        made.append(server)
    page, other = made
    port = other.server_address[1]
    page.RequestHandlerClass.page = (  # type: ignore[attr-defined]
        f'<html><body><h1>Welcome</h1><img src="http://127.0.0.1:{port}/track.png">'
        f'<script src="http://127.0.0.1:{port}/x.js"></script>'
        f"<script>fetch('http://127.0.0.1:{port}/beacon').catch(() => {{}})</script>"
        "</body></html>"
    ).encode()
    try:
        yield page, other
    finally:
        for server in made:
            server.shutdown()
            server.server_close()


async def test_requests_off_the_allowlist_are_blocked(
    tmp: Path, shared_browser: PlaywrightBrowser, servers: tuple[Any, Any]
) -> None:
    page, other = servers
    fake_site = DemoSite()
    fake_site.host, fake_site.port = "127.0.0.1", page.server_address[1]
    fake_site._server = page  # only .url and .port are read
    steps = (
        Step(1, "Open the page", Action.GOTO, "/", None, "Welcome"),
        Step(2, "See it", Action.EXPECT_TEXT, "h1", None, "Welcome"),
    )
    kb = KnowledgeBase("t", {}, (Workflow("visit", "visit", "t", (), (), steps),))
    try:
        async with harness(tmp, fake_site, shared_browser, kb=kb, secrets=False) as h:
            op = await h.run("visit")
            assert op.state == "completed", op.error
            await anyio.sleep(0.3)
    finally:
        fake_site._server = None
    assert page.RequestHandlerClass.hits == ["/"]
    assert other.RequestHandlerClass.hits == [], "a request left for a host off the allowlist"


# -- the LLM planner ----------------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[AnthropicStub]:
    with AnthropicStub() as server:
        yield server


def renamed_login() -> KnowledgeBase:
    """Sign in, but the submit button's recorded selector no longer matches."""
    steps = [
        s if s.intent != "Sign in" else Step(s.index, s.intent, s.action, "#old-submit")
        for s in LOGIN
    ]
    wf = Workflow("login", "login", "t", (), ("admin_user", "admin_password"), tuple(steps))
    return KnowledgeBase("t", {}, (wf,))


@pytest.mark.parametrize(
    ("reply", "state", "reason", "words"),
    [
        pytest.param(
            Reply.tool_use("click", selector='[data-testid="login-submit"]'),
            "completed",
            None,
            "",
            id="recovers",
        ),
        pytest.param(
            Reply.unknown_tool(), "failed", "refused_command", "unknown tool", id="unknown-tool"
        ),
        pytest.param(
            Reply.tool_use("evaluate", selector="body", value="document.cookie"),
            "failed",
            "refused_command",
            "evaluate",
            id="forbidden-method",
        ),
        pytest.param(
            Reply.tool_use("goto", value="http://127.0.0.1:9/steal"),
            "failed",
            "refused_command",
            "allowlist",
            id="goto-off-allowlist",
        ),
        pytest.param(Reply.refusal(), "failed", "refused_command", "declined", id="refusal"),
        pytest.param(Reply.hang(), "failed", "step_failed", "did not answer", id="timeout"),
    ],
)
async def test_planner(
    tmp: Path,
    site: DemoSite,
    shared_browser: PlaywrightBrowser,
    stub: AnthropicStub,
    reply: Reply,
    state: str,
    reason: str | None,
    words: str,
) -> None:
    stub.push(reply)
    settings = LLMSettings(api_key="k", base_url=stub.url, timeout_s=1.5, max_retries=0)
    async with AnthropicModel(settings) as model:
        kb = renamed_login()
        async with harness(
            tmp, site, shared_browser, kb=kb, model=model, step_timeout_s=STEP_TIMEOUT_S
        ) as h:
            op = await h.run("login")
            if state == "completed":
                assert op.state == "completed", op.error
                steps = await h.svc.steps(op.id)
                assert [s.source for s in steps if s.idx == 4] == ["planner"]
            else:
                await assert_failed_with_evidence(h, op, reason or "", words)
            if reason == "refused_command" and words != "declined":
                refused = [
                    r for r in await h.audit(op.id) if r.event == "OPERATION_REFUSED_COMMAND"
                ]
                assert refused and refused[0].data["source"] == "planner"
    sent = "".join(r.text for r in stub.requests)
    assert stub.requests, "the model was not asked"
    assert site.admin_password not in sent, "a secret entered a prompt"
    assert "{secret:admin_password}" in sent


async def test_a_step_the_planner_turns_into_a_click_is_recorded_before_it_runs(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser, stub: AnthropicStub
) -> None:
    # "Sign in" recorded as waiting for a button that no longer exists: the model clicks.
    steps = [
        s
        if s.intent != "Sign in"
        else Step(s.index, s.intent, Action.WAIT_FOR, "#old-submit", None, None)
        for s in LOGIN
    ]
    login = Workflow("login", "login", "t", (), ("admin_user", "admin_password"), tuple(steps))
    kb = KnowledgeBase("t", {}, (login,))
    stub.push(Reply.tool_use("click", selector='[data-testid="login-submit"]'))
    settings = LLMSettings(api_key="k", base_url=stub.url, timeout_s=5, max_retries=0)
    async with AnthropicModel(settings) as model:
        async with harness(
            tmp, site, shared_browser, kb=kb, model=model, step_timeout_s=STEP_TIMEOUT_S
        ) as h:
            op = await h.run("login")
            assert op.state == "completed", op.error
            rows = [(s.idx, s.status, s.action, s.source) for s in await h.svc.steps(op.id)]
            targets = [s.target for s in await h.svc.steps(op.id) if s.idx == 4]
            audited = [r.data for r in await h.audit(op.id) if r.event == "OPERATION_STEP"]
    # The click was on record (and every step before it) before it ran, so a crash
    # during it would end the operation as interrupted, not restart it.
    assert rows[3:5] == [(4, "planned", "click", "planner"), (4, "ok", "click", "planner")]
    assert [r[0] for r in rows[:3]] == [1, 2, 3]
    # Each record names the command that ran; the audit also names the workflow's.
    assert targets == ['[data-testid="login-submit"]'] * 2
    step4 = [d for d in audited if d["idx"] == 4]
    assert [(d["action"], d["target"]) for d in step4] == [
        ("click", '[data-testid="login-submit"]')
    ] * 2
    assert [d["recorded"] for d in step4] == [{"action": "wait_for", "target": "#old-submit"}] * 2
    assert recovery_decision(tuple(steps), 3, [4]) is Recovery.INTERRUPTED
