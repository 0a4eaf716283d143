"""The demo back-office over real HTTP: sign-in, pages, bad input, failure injection, CLI."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright

from agentd.demosite import DemoSite
from agentd.errors import InvalidArgument, InvalidState
from agentd.ops_config import DEFAULT_CHROMIUM

pytestmark = pytest.mark.slow(10)

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A cookie-keeping HTTP client that does not follow redirects."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        send_headers = dict(headers or {})
        if self.cookies:
            send_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urlencode(form).encode()
            send_headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=send_headers)
            response = conn.getresponse()
            text = response.read().decode()
            for cookie in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = cookie.partition("=")
                value = rest.split(";")[0]
                if "Max-Age=0" in cookie:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return Reply(response.status, dict(response.headers.items()), text)
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: Any) -> Reply:
        return self.request("POST", path, form=form, **kw)

    def login(self, user: str = "admin", password: str = PASSWORD) -> Reply:
        return self.post("/login", {"username": user, "password": password})

    def submit(self, form_page: str, action: str, fields: dict[str, str]) -> Reply:
        """Load a form page for its anti-forgery token, then post the fields."""
        page = self.get(form_page)
        token = re.search(r'name="_csrf" value="([^"]+)"', page.body)
        assert token, f"no form on {form_page}"
        return self.post(action, {"_csrf": token.group(1), **fields})


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with DemoSite(admin_password=PASSWORD) as demo:
        yield demo


@pytest.fixture
def client(site: DemoSite) -> Client:
    return Client(site.url)


@pytest.fixture
def admin(client: Client) -> Client:
    assert client.login().status == 303
    return client


# -- sign-in ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/products/101/edit", "/admin/settings/api", "/crm/accounts/acme"]
)
def test_protected_pages_redirect_to_login(client: Client, path: str) -> None:
    reply = client.get(path)
    assert reply.status == 303
    assert reply.headers["Location"] == f"/login?next={path}"


@pytest.mark.parametrize(
    ("user", "password"), [("admin", "wrong"), ("root", PASSWORD), ("", ""), ("admin", "")]
)
def test_wrong_login_shows_an_error_and_no_session(
    client: Client, user: str, password: str
) -> None:
    reply = client.login(user, password)
    assert reply.status == 401
    assert 'data-testid="login-error"' in reply.body
    assert "Unknown username or wrong password." in reply.body
    assert client.cookies == {}
    assert client.get("/admin").status == 303


def test_login_goes_where_the_visitor_was_going(client: Client) -> None:
    reply = client.post(
        "/login", {"username": "admin", "password": PASSWORD, "next": "/crm/accounts/acme"}
    )
    assert (reply.status, reply.headers["Location"]) == (303, "/crm/accounts/acme")
    page = client.get("/crm/accounts/acme")
    assert page.status == 200
    assert "Acme Corporation" in page.body
    assert "Signed in as admin" in page.body


@pytest.mark.parametrize("target", ["//evil.example/x", "http://evil.example/", "admin"])
def test_login_never_redirects_off_site(client: Client, target: str) -> None:
    reply = client.post("/login", {"username": "admin", "password": PASSWORD, "next": target})
    assert reply.headers["Location"] == "/admin"


def test_logout_ends_the_session(admin: Client) -> None:
    reply = admin.submit("/admin", "/logout", {})
    assert reply.headers["Location"] == "/login?signed_out=1"
    assert admin.get("/admin").status == 303


# -- pages, 404s and bad requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/crm/accounts/nobody", 404, "no account with id &#x27;nobody&#x27;"),
        ("/crm/accounts/nobody/compose", 404, "no account with id"),
        ("/crm/accounts/nobody/notes/new", 404, "no account with id"),
        ("/admin/products/999/edit", 404, "no product with id 999"),
        ("/no/such/page", 404, "There is no page at this address."),
        ("/CRM/accounts/acme", 404, "There is no page at this address."),
        ("/admin/settings/api/1/revoke", 405, "Method Not Allowed"),
    ],
)
def test_unknown_pages_say_so(admin: Client, path: str, status: int, text: str) -> None:
    reply = admin.get(path)
    assert reply.status == status
    assert 'data-testid="error-page"' in reply.body
    assert text in reply.body


def test_accounts_registered_at_runtime_have_pages(site: DemoSite, admin: Client) -> None:
    assert admin.get("/crm/accounts/northwind").status == 404
    site.add_account("northwind", "Northwind Traders")
    page = admin.get("/crm/accounts/northwind")
    assert page.status == 200
    assert "Northwind Traders" in page.body
    with pytest.raises(InvalidArgument, match="lowercase"):
        site.add_account("Not A Slug", "Bad")


def test_accounts_given_at_construction_exist() -> None:
    with DemoSite(accounts=["zeta-labs", ("eta", "Eta Inc")], seed_data=False) as demo:
        assert sorted(demo.state.accounts) == ["eta", "zeta-labs"]
        assert demo.state.account("eta").name == "Eta Inc"
        assert demo.state.products == {}


def test_json_views_need_a_session(site: DemoSite, client: Client) -> None:
    assert client.get("/api/products/101").status == 401
    client.login()
    site.state.add_note("acme", "Prefers email.")
    product = client.get("/api/products/101").json()
    assert (product["id"], product["price"]) == (101, "24.00")
    account = client.get("/api/accounts/acme").json()
    assert account["counts"] == {"notes": 1, "meetings": 0, "messages": 0}
    assert client.get("/api/accounts/nobody").status == 404


def test_forms_label_every_field(admin: Client) -> None:
    for path in ("/admin/products/101/edit", "/crm/accounts/acme/meetings/new", "/login"):
        body = admin.get(path).body
        ids = re.findall(r'<(?:input|textarea|select) [^>]*\sid="([^"]+)"', body)
        assert ids, path
        for field_id in ids:
            assert f'<label for="{field_id}">' in body, (path, field_id)


# A day the site always takes as in the future (it refuses past days only),
# whatever the date is when the suite runs.
FUTURE_DAY = "2099-06-30"


PRODUCT_OK = {
    "title": "Kettle",
    "seo_title": "Kettle",
    "meta_description": "A kettle.",
    "price": "10.00",
}
MEETING_OK = {"title": "Review", "date": FUTURE_DAY, "time": "10:00", "duration": "30"}
MESSAGE_OK = {"to": "buyer@acme.example", "subject": "Hello", "body": "Hi there"}


@pytest.mark.parametrize(
    ("form_page", "action", "fields", "field", "message"),
    [
        (
            "/admin/products/103/edit",
            "/admin/products/103/edit",
            {**PRODUCT_OK, "title": "  "},
            "title",
            "Title is required.",
        ),
        (
            "/admin/products/103/edit",
            "/admin/products/103/edit",
            {**PRODUCT_OK, "meta_description": "x" * 161},
            "meta_description",
            "at most 160 characters (it has 161)",
        ),
        (
            "/admin/products/103/edit",
            "/admin/products/103/edit",
            {**PRODUCT_OK, "price": "ten"},
            "price",
            "Price must be a number",
        ),
        (
            "/admin/products/103/edit",
            "/admin/products/103/edit",
            {**PRODUCT_OK, "price": "1.999"},
            "price",
            "at most 2 decimals",
        ),
        (
            "/admin/settings/api/new",
            "/admin/settings/api/new",
            {"description": "", "permissions": "read"},
            "description",
            "Description is required.",
        ),
        (
            "/admin/settings/api/new",
            "/admin/settings/api/new",
            {"description": "x", "permissions": "admin"},
            "permissions",
            "Choose read, write",
        ),
        (
            "/crm/accounts/acme/meetings/new",
            "/crm/accounts/acme/meetings/new",
            {**MEETING_OK, "date": "2031-02-30"},
            "date",
            "Enter a real date as YYYY-MM-DD.",
        ),
        (
            "/crm/accounts/acme/meetings/new",
            "/crm/accounts/acme/meetings/new",
            {**MEETING_OK, "date": "2001-01-01"},
            "date",
            "cannot be scheduled in the past",
        ),
        (
            "/crm/accounts/acme/meetings/new",
            "/crm/accounts/acme/meetings/new",
            {**MEETING_OK, "time": "25:00"},
            "time",
            "Enter a time as HH:MM.",
        ),
        (
            "/crm/accounts/acme/meetings/new",
            "/crm/accounts/acme/meetings/new",
            {**MEETING_OK, "duration": "600"},
            "duration",
            "Choose one of the listed durations.",
        ),
        (
            "/crm/accounts/acme/compose",
            "/crm/accounts/acme/compose",
            {**MESSAGE_OK, "to": "not-an-address"},
            "to",
            "Enter a valid email address.",
        ),
        (
            "/crm/accounts/acme/compose",
            "/crm/accounts/acme/compose",
            {**MESSAGE_OK, "subject": ""},
            "subject",
            "Subject is required.",
        ),
        (
            "/crm/accounts/acme/notes/new",
            "/crm/accounts/acme/notes/new",
            {"text": " \n "},
            "text",
            "Note text is required.",
        ),
    ],
)
def test_bad_form_input_is_shown_inline_and_changes_nothing(
    site: DemoSite,
    admin: Client,
    form_page: str,
    action: str,
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    before = repr(site.state.__dict__)
    reply = admin.submit(form_page, action, fields)
    assert reply.status == 400
    assert f'data-testid="error-{field}"' in reply.body
    assert message in reply.body
    assert 'data-testid="form-errors"' in reply.body
    assert repr(site.state.__dict__) == before


def test_posts_without_the_form_token_are_refused(site: DemoSite, admin: Client) -> None:
    key, _, _ = site.create_api_key("Keep me")
    reply = admin.post(f"/admin/settings/api/{key.id}/revoke", {})
    assert reply.status == 403
    assert "This form has expired" in reply.body
    assert site.state.api_keys[key.id].active


def test_product_save_redirects_and_shows_a_notice(site: DemoSite, admin: Client) -> None:
    reply = admin.submit("/admin/products/106/edit", "/admin/products/106/edit", PRODUCT_OK)
    assert (reply.status, reply.headers["Location"]) == (303, "/admin/products/106/edit?saved=1")
    assert "Product updated." in admin.get(reply.headers["Location"]).body
    assert site.state.product(106).title == "Kettle"


def test_api_key_secret_is_shown_once_and_never_listed(site: DemoSite, admin: Client) -> None:
    reply = admin.submit(
        "/admin/settings/api/new",
        "/admin/settings/api/new",
        {"description": "Sync", "permissions": "read"},
    )
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"
    secret = re.search(r'value="(cs_[0-9a-f]+)" readonly data-secret="true"', reply.body)
    consumer_key = re.search(r'value="(ck_[0-9a-f]+)" readonly data-secret="true"', reply.body)
    assert secret and consumer_key
    listing = admin.get("/admin/settings/api").body
    assert secret.group(1) not in listing
    assert consumer_key.group(1) not in listing
    assert f"…{consumer_key.group(1)[-7:]}" in listing
    assert admin.submit("/admin/settings/api", "/admin/settings/api/999/revoke", {}).status == 404


# -- failure injection --------------------------------------------------------------------------


def test_error_failure_serves_a_realistic_500_then_recovers(site: DemoSite, admin: Client) -> None:
    site.fail("/admin/products", times=1)
    failed = admin.get("/admin/products/101/edit")
    assert failed.status == 500
    assert "500 Internal Server Error" in failed.body
    assert "Something went wrong on our side" in failed.body
    assert admin.get("/admin/products/101/edit").status == 200
    assert admin.get("/admin").status == 200


def test_error_failure_uses_the_chosen_status_until_cleared(site: DemoSite, admin: Client) -> None:
    site.fail("/crm", status=503)
    assert [admin.get("/crm/outbox").status for _ in range(3)] == [503, 503, 503]
    assert admin.get("/admin").status == 200  # other paths are unaffected
    site.clear_failures()
    assert admin.get("/crm/outbox").status == 200


def test_slow_failure_delays_the_response(site: DemoSite, client: Client) -> None:
    site.fail("/login", "slow", delay_s=0.6, times=1)
    started = time.monotonic()
    assert client.get("/login").status == 200
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    client.get("/login")
    assert time.monotonic() - started < 0.5


def test_down_failure_drops_the_connection(site: DemoSite, client: Client) -> None:
    site.fail("/login", "down", times=1)
    with pytest.raises(ConnectionError):
        client.get("/login")
    assert client.get("/login").status == 200


def test_stop_does_not_wait_for_a_slow_response() -> None:
    demo = DemoSite().start()
    demo.fail("/", "slow", delay_s=30)
    done = threading.Event()

    def slow_request() -> None:
        try:
            Client(demo.url).get("/login", timeout=10)
        except OSError:
            pass
        done.set()

    threading.Thread(target=slow_request, daemon=True).start()
    time.sleep(0.2)
    started = time.monotonic()
    demo.stop()
    assert time.monotonic() - started < 3
    assert done.wait(3)
    with pytest.raises(InvalidState):
        _ = demo.url


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path_prefix": "admin"}, "must start with '/'"),
        ({"path_prefix": "/admin", "mode": "explode"}, "mode must be one of"),
        ({"path_prefix": "/admin", "delay_s": -1}, "delay must be between"),
        ({"path_prefix": "/admin", "status": 200}, "HTTP error status"),
        ({"path_prefix": "/admin", "times": 0}, "positive integer"),
        ({"path_prefix": "/__control/fail"}, "control endpoint"),
    ],
)
def test_bad_failure_rules_are_refused(
    site: DemoSite, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        site.fail(**kwargs)
    assert site.failures.rules() == []


def _control(site: DemoSite, action: str, spec: object = None, token: str | None = "") -> Reply:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Control-Token"] = token or site.control_token
    body = json.dumps(spec).encode() if spec is not None else b""
    return Client(site.url).request("POST", f"/__control/{action}", body=body, headers=headers)


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong-token", 403)])
def test_control_endpoint_needs_the_token(
    site: DemoSite, client: Client, token: str | None, status: int
) -> None:
    reply = _control(site, "fail", {"path": "/login"}, token=token)
    assert reply.status == status
    assert site.failures.rules() == []
    assert client.get("/login").status == 200


def test_control_endpoint_sets_and_clears_failures(site: DemoSite, client: Client) -> None:
    reply = _control(site, "fail", {"path": "/login", "mode": "error", "status": 502, "times": 2})
    assert reply.status == 200
    assert reply.json()["rule"] == {
        "path": "/login",
        "mode": "error",
        "delay_s": 2.0,
        "status": 502,
        "times": 2,
    }
    assert client.get("/login").status == 502
    listed = Client(site.url).get(
        "/__control/failures", headers={"X-Control-Token": site.control_token}
    )
    assert listed.json()["failures"][0]["times"] == 1
    assert _control(site, "clear").json() == {"ok": True, "cleared": 1}
    assert client.get("/login").status == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([1, 2], "JSON object"),
        ({"path": "/x", "colour": "red"}, "unknown fields: colour"),
        ({"path": "/x", "mode": "slow", "delay_s": "soon"}, "number of seconds"),
    ],
)
def test_control_endpoint_refuses_bad_rules(site: DemoSite, spec: object, message: str) -> None:
    reply = _control(site, "fail", spec)
    assert reply.status == 400
    assert message in reply.json()["error"]
    assert site.failures.rules() == []


def test_control_endpoint_refuses_malformed_json(site: DemoSite) -> None:
    reply = Client(site.url).request(
        "POST", "/__control/fail", body=b"{nope", headers={"X-Control-Token": site.control_token}
    )
    assert reply.status == 400
    assert "bad JSON" in reply.json()["error"]


# -- in a real browser ---------------------------------------------------------------------------

CHROMIUM = os.environ.get("AGENTD_CHROMIUM", str(DEFAULT_CHROMIUM))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            chromium_sandbox=False,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, site: DemoSite) -> Iterator[Page]:
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(5000)
    page = context.new_page()
    page.goto("/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click('[data-testid="login-submit"]')
    page.wait_for_url("**/admin")
    yield page
    context.close()


def _answer_dialogs(page: Page, accept: bool) -> list[str]:
    seen: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


@pytest.mark.browser
def test_revoking_a_key_asks_first(site: DemoSite, page: Page) -> None:
    key, _, _ = site.create_api_key("Nightly export")
    seen = _answer_dialogs(page, accept=False)
    page.goto("/admin/settings/api")
    page.click(f'[data-testid="revoke-key-{key.id}"]')
    assert seen == ['Revoke API key "Nightly export"? Applications using it will stop working.']
    assert page.url.endswith("/admin/settings/api")
    assert site.state.api_keys[key.id].active


@pytest.mark.browser
def test_discarding_a_note_draft_asks_first(site: DemoSite, page: Page) -> None:
    seen = _answer_dialogs(page, accept=False)
    page.goto("/crm/accounts/acme/notes/new")
    page.fill('[data-testid="note-text"]', "Half-written thought")
    page.click('[data-testid="discard-note"]')
    assert seen == ["Discard this draft? The text you typed will be lost."]
    assert page.url.endswith("/crm/accounts/acme/notes/new")
    page.fill('[data-testid="note-text"]', "")
    page.click('[data-testid="discard-note"]')
    page.wait_for_url("**/crm/accounts/acme")
    assert len(seen) == 1
    assert site.state.notes_for("acme") == []


@pytest.mark.browser
def test_browser_sees_inline_errors_and_injected_failures(site: DemoSite, page: Page) -> None:
    page.goto("/admin/products/101/edit")
    page.fill('[data-testid="product-meta-description"]', "m" * 170)
    assert page.inner_text(".counter") == "170 / 160"
    page.click('[data-testid="product-save"]')
    assert "at most 160 characters" in page.inner_text('[data-testid="error-meta_description"]')
    assert len(site.state.product(101).meta_description) < 160
    assert _control(site, "fail", {"path": "/crm", "times": 1}).status == 200
    response = page.goto("/crm/accounts")
    assert response is not None and response.status == 500
    assert "Something went wrong on our side" in page.inner_text('[data-testid="error-page"]')


# -- foreground command -------------------------------------------------------------------------


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentd.demosite", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info: dict[str, str] = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("Demo back-office serving at "):
            info["url"] = line.split()[-1]
        elif ":" in line and line.startswith("  "):
            key, _, value = line.strip().partition(":")
            info[key] = value.strip()
        if line.startswith("Press Ctrl+C"):
            return proc, info
    proc.kill()
    proc.communicate()
    pytest.fail(f"demo-site did not start: {info}")


def test_cli_serves_prints_login_and_stops_on_sigterm() -> None:
    proc, info = _start_cli("--admin-password", "s3cret", "--fail", "/crm", "--fail-status", "503")
    try:
        assert info["admin user"] == "admin"
        assert info["admin password"] == "s3cret"
        assert len(info["control token"]) >= 16
        client = Client(info["url"])
        assert client.get("/login").status == 200
        assert client.get("/crm/accounts").status == 503
        assert client.login("admin", "s3cret").status == 303
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Demo back-office stopped." in out


def test_cli_refuses_a_bad_failure_path() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentd.demosite", "--port", "0", "--fail", "crm"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2
    assert "failure path must start with '/'" in proc.stderr
