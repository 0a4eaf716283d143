"""Secrets in the browser: where a fill may type one, and what a screenshot may show.

Real Chromium against the demo back-office and against a small page that
echoes what is typed, over loopback; the planner is the real ``anthropic``
client against the local stub.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from agentd.browser import sign_in_fills
from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.demosite import DemoSite
from agentd.kb import Action, KnowledgeBase, Step, Workflow
from agentd.llm import AnthropicModel, LLMSettings
from agentd.testing.anthropic_stub import AnthropicStub, Reply
from agentd.vault import SecretValue
from tests.integration import test_browser_agent as base
from tests.integration.test_browser_agent import ACCOUNT, SERVICE, Harness, harness, workflow_kb

pytestmark = [*base.BROWSER_MARKS, pytest.mark.slow(15)]
anyio_backend = base.anyio_backend
shared_browser = base.shared_browser
site = base.site
tmp = base.tmp

LOGIN = workflow_kb().workflow("product_seo_update").steps[:5]
SIGN_IN_SECRETS = ("admin_user", "admin_password")
STEP_TIMEOUT_S = 2.0


@pytest.fixture
def stub() -> Iterator[AnthropicStub]:
    with AnthropicStub() as server:
        yield server


def one_workflow(
    steps: list[Step], params: tuple[str, ...] = (), secrets: tuple[str, ...] = SIGN_IN_SECRETS
) -> KnowledgeBase:
    numbered = [
        Step(i, s.intent, s.action, s.target, s.value, s.expect, s.result)
        for i, s in enumerate(steps, 1)
    ]
    wf = Workflow("w", "w", "t", params, secrets, tuple(numbered))
    return KnowledgeBase("t", {}, (wf,))


def magenta_bands(data: bytes) -> list[tuple[int, int]]:
    """Return the runs of image rows holding mask-coloured pixels (one per masked field)."""
    width, _, rows = base.png_pixels(data)
    needle = bytes(base.MAGENTA)
    hit = [any(row[3 * x : 3 * x + 3] == needle for x in range(width)) for row in rows]
    bands: list[tuple[int, int]] = []
    for y, on in enumerate(hit):
        if on and (not bands or bands[-1][1] != y - 1):
            bands.append((y, y))
        elif on:
            bands[-1] = (bands[-1][0], y)
    return bands


async def audited(h: Harness, op_id: str, event: str) -> list[dict[str, Any]]:
    return [r.data for r in await h.audit(op_id) if r.event == event]


# -- item: the planner may type a secret only into a secret field -------------------------------


@pytest.mark.parametrize(
    ("stale", "planned", "state"),
    [
        pytest.param(
            "Write the note",
            Reply.tool_use(
                "fill", selector='[data-testid="note-text"]', value="{secret:admin_password}"
            ),
            "failed",
            id="password-into-a-text-area",
        ),
        pytest.param(
            "Enter the admin username",
            Reply.tool_use(
                "fill", selector='[data-testid="login-username"]', value="{secret:admin_user}"
            ),
            "failed",
            id="sign-in-name-into-a-plain-field",
        ),
        pytest.param(
            "Enter the admin password",
            Reply.tool_use(
                "fill", selector='[data-testid="login-password"]', value="{secret:admin_password}"
            ),
            "completed",
            id="password-into-the-password-field",
        ),
    ],
)
async def test_the_planner_types_a_secret_only_into_a_password_or_data_secret_field(
    tmp: Path,
    site: DemoSite,
    shared_browser: PlaywrightBrowser,
    stub: AnthropicStub,
    stale: str,
    planned: Reply,
    state: str,
) -> None:
    site.add_account(ACCOUNT, "Brightside Goods")
    steps = [
        *LOGIN,
        Step(0, "Open the note form", Action.GOTO, "/crm/accounts/{account}/notes/new"),
        Step(0, "Write the note", Action.FILL, '[data-testid="note-text"]', "{note}"),
    ]
    # The step's recorded selector no longer matches: the planner is asked.
    steps = [
        s if s.intent != stale else Step(0, s.intent, s.action, "#gone", s.value) for s in steps
    ]
    kb = one_workflow(steps, ("account", "note"))
    stub.push(planned)
    settings = LLMSettings(api_key="k", base_url=stub.url, timeout_s=5, max_retries=0)
    async with AnthropicModel(settings) as model:
        async with harness(
            tmp, site, shared_browser, kb=kb, model=model, step_timeout_s=STEP_TIMEOUT_S
        ) as h:
            op = await h.svc.start_operation("w", ACCOUNT, params={"note": "hi"}, actor="t")
            op = await h.svc.wait(op.id, 60)
            rows = await h.svc.steps(op.id)
            refused = await audited(h, op.id, "OPERATION_REFUSED_COMMAND")
            trail = json.dumps([r.to_dict() for r in await h.audit()])
    index = [s.intent for s in steps].index(stale) + 1
    target = planned.content[0]["input"]["selector"]
    row = next(r for r in rows if r.idx == index)
    # The record names the command that ran (or was refused), not the recorded one.
    assert (row.source, row.action, row.target) == ("planner", "fill", target)
    assert op.state == state, op.error
    if state == "failed":
        assert op.reason == "refused_command"
        assert "neither a password field nor marked data-secret" in (op.error or "")
        assert row.status == "failed"
        assert [(r["source"], r["target"]) for r in refused] == [("planner", target)]
    else:
        assert row.status == "ok" and not refused
    assert site.admin_password not in trail
    assert [n.text for n in site.state.notes_for(ACCOUNT)] == []


# -- item: screenshots mask by value --------------------------------------------------------------


async def test_the_sign_in_name_is_masked_in_its_plain_field(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    async with harness(tmp, site, shared_browser, kb=one_workflow(list(LOGIN))) as h:
        op = await h.svc.start_operation("w", ACCOUNT, actor="t")
        op = await h.svc.wait(op.id, 60)
        assert (op.state, op.error) == ("completed", None)
        rows = {s.idx: s for s in await h.svc.steps(op.id)}
    # The page before "Sign in": the username (a vault value in a plain text field)
    # is painted over, as the password is: two masked fields, one above the other.
    before = Path(rows[4].screenshot or "").read_bytes()
    bands = magenta_bands(before)
    assert len(bands) == 2, bands
    assert all(b - a >= 5 for a, b in bands)
    # The dashboard says "Signed in as <username>": a sign-in name may be shown as text.
    assert rows[0].screenshot and site.admin_user == "admin"


async def test_a_field_the_page_fills_with_a_vault_value_is_masked(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser
) -> None:
    # A failed sign-in shows the form again with the username in the field's value
    # (<input value="admin">): a field the agent never typed into.
    steps = [
        *LOGIN[:3],
        Step(0, "Sign in", Action.CLICK, '[data-testid="login-submit"]'),
        Step(0, "See the error", Action.WAIT_FOR, '[data-testid="login-error"]'),
    ]
    async with harness(tmp, site, shared_browser, kb=one_workflow(steps)) as h:
        await h.secrets.set_secret(
            ACCOUNT, SERVICE, "admin_password", SecretValue("wrong-password"), actor="t"
        )
        op = await h.svc.start_operation("w", ACCOUNT, actor="t")
        op = await h.svc.wait(op.id, 60)
        assert (op.state, op.error) == ("completed", None)
        rows = {s.idx: s for s in await h.svc.steps(op.id)}
    after = Path(rows[5].screenshot or "").read_bytes()
    # The username field (new on this page, never typed into) and, as always, the password's.
    assert len(magenta_bands(after)) == 2


class EchoSite:
    """A page that shows what is typed into its token field: as text, or in another field."""

    def __init__(self) -> None:
        self.admin_user, self.admin_password = "unused-user", "unused-password"
        self.token = "tok_6f1c0d9e8b7a"
        page = b"""<!doctype html><html><body>
<label>Note <input id="note" type="text"></label>
<label>Token <input id="token" type="text"></label>
<p id="echo"></p><label>Copy <input id="copy" type="text"></label>
<button id="save" type="button">Save</button>
<script>
const mode = new URLSearchParams(location.search).get('echo');
document.getElementById('token').addEventListener('input', (e) => {
  if (mode === 'text') document.getElementById('echo').textContent = 'Saved ' + e.target.value;
  if (mode === 'input') document.getElementById('copy').value = e.target.value;
});
</script></body></html>"""

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/form" or parse_qs(parts.query).keys() - {"echo"}:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def echo() -> Iterator[EchoSite]:
    server = EchoSite()
    try:
        yield server
    finally:
        server.close()


def echo_workflow(mode: str) -> KnowledgeBase:
    """Type a vault token into a plain field (not a sign-in: a note is typed first), then save."""
    return one_workflow(
        [
            Step(0, "Open the form", Action.GOTO, f"/form?echo={mode}"),
            Step(0, "Write a note", Action.FILL, "#note", "hello"),
            Step(0, "Enter the token", Action.FILL, "#token", "{secret:api_token}"),
            Step(0, "Save", Action.CLICK, "#save"),
            Step(0, "Still there", Action.WAIT_FOR, "#save"),
        ],
        secrets=("api_token",),
    )


@pytest.mark.parametrize("mode", ["none", "input", "text"])
async def test_a_vault_value_typed_into_a_plain_field_is_masked_and_never_shown_as_text(
    tmp: Path, echo: EchoSite, shared_browser: PlaywrightBrowser, mode: str
) -> None:
    async with harness(
        tmp,
        cast(DemoSite, echo),  # only its url, port and sign-in secrets are used
        shared_browser,
        kb=echo_workflow(mode),
        secrets=False,
    ) as h:
        await h.secrets.set_secret(
            ACCOUNT, SERVICE, "api_token", SecretValue(echo.token), actor="t"
        )
        op = await h.svc.start_operation("w", ACCOUNT, actor="t")
        op = await h.svc.wait(op.id, 60)
        rows = {s.idx: s for s in await h.svc.steps(op.id)}
        refused = await audited(h, op.id, "OPERATION_CAPTURE_REFUSED")
        trail = json.dumps([r.to_dict() for r in await h.audit()])
        written = sorted(p.name for p in (h.folder / op.id).glob("*.png"))
    assert echo.token not in trail
    if mode == "text":
        # The page's text shows the token: the capture before "Save" is refused and
        # audited, the click never happens, and no file shows the page.
        assert (op.state, op.reason) == ("failed", "secret_visible"), op.error
        assert "the page's text shows the secret api_token" in (op.error or "")
        assert rows[4].status == "failed" and rows[4].screenshot is None
        assert 5 not in rows and 0 not in rows  # no final screenshot either
        # The step's capture, then the full-size final one.
        assert [(r["capture"], r["secrets"]) for r in refused] == [
            ("step", ["api_token"]),
            ("final", ["api_token"]),
        ]
        assert written == []
        return
    assert (op.state, op.error) == ("completed", None)
    assert not refused
    # The token's field is masked; so is the field the page copied it into.
    shot = Path(rows[4].screenshot or "").read_bytes()
    assert len(magenta_bands(shot)) == (2 if mode == "input" else 1)


async def test_the_planner_never_sees_a_page_whose_text_shows_a_secret(
    tmp: Path, echo: EchoSite, shared_browser: PlaywrightBrowser, stub: AnthropicStub
) -> None:
    steps = list(echo_workflow("text").workflow("w").steps[:3])
    steps.append(Step(4, "Wait for the receipt", Action.WAIT_FOR, "#gone"))
    kb = one_workflow(steps, secrets=("api_token",))
    stub.push(Reply.tool_use("wait_for", selector="#echo"))
    settings = LLMSettings(api_key="k", base_url=stub.url, timeout_s=5, max_retries=0)
    async with AnthropicModel(settings) as model:
        async with harness(
            tmp,
            cast(DemoSite, echo),  # only its url, port and sign-in secrets are used
            shared_browser,
            kb=kb,
            model=model,
            secrets=False,
            step_timeout_s=STEP_TIMEOUT_S,
        ) as h:
            await h.secrets.set_secret(
                ACCOUNT, SERVICE, "api_token", SecretValue(echo.token), actor="t"
            )
            op = await h.svc.start_operation("w", ACCOUNT, actor="t")
            op = await h.svc.wait(op.id, 60)
            refused = await audited(h, op.id, "OPERATION_CAPTURE_REFUSED")
    assert (op.state, op.reason) == ("failed", "secret_visible"), op.error
    assert (refused[0]["capture"], refused[0]["secrets"]) == ("planner", ["api_token"])
    assert echo.token not in refused[0]["error"]
    assert not stub.requests, "the model was sent a page showing a secret"


def test_the_sign_in_is_the_first_run_of_secret_fills_before_any_change() -> None:
    assert sign_in_fills(LOGIN) == {2, 3}
    steps = list(echo_workflow("none").workflow("w").steps)
    assert sign_in_fills(steps) == frozenset()  # a note is typed before the token
    unsubmitted = [*LOGIN[:3], Step(4, "Wait", Action.WAIT_FOR, "#x")]
    assert sign_in_fills(unsubmitted) == {2, 3}
    later = [*LOGIN, Step(6, "Key", Action.FILL, "#key", "{secret:api_key}")]
    assert sign_in_fills(later) == {2, 3}  # a secret typed after signing in is no sign-in name
