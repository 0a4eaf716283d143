"""The demo back-office HTTP server: a ThreadingHTTPServer in a background thread.

``DemoSite`` is what the demo, the tests and the benchmarks start. Its state is
an in-process object they can read; failures can be injected in-process, or
over ``POST /__control/fail`` with the control token printed at start.
"""

from __future__ import annotations

import secrets
import sys
import threading
import traceback
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from agentd.demosite.app import build_router, dispatch, error, server_error_page
from agentd.demosite.failures import (
    FailureInjector,
    FailureMode,
    FailureRule,
    handle_control,
    make_rule,
)
from agentd.demosite.seed import seed
from agentd.demosite.state import Account, ApiKey, SiteState
from agentd.demosite.web import (
    SESSION_COOKIE,
    App,
    Response,
    Sessions,
    json_response,
)
from agentd.errors import ExternalError, InvalidState

MAX_BODY_BYTES = 256 * 1024
CONTROL_PREFIX = "/__control/"


@dataclass(frozen=True)
class AccessRecord:
    """One served request, for tests that check what a browser agent really did."""

    method: str
    path: str
    status: int


class DemoSite:
    """The demo back-office, served on loopback from a background thread.

    :param port: 0 picks a free port.
    :param admin_password: generated with :mod:`secrets` when not given.
    :param accounts: extra CRM accounts, as ids or (id, name) pairs.
    :param control_token: guards ``/__control/*``; generated when not given.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_user: str = "admin",
        admin_password: str | None = None,
        *,
        accounts: Iterable[str | tuple[str, str]] | None = None,
        control_token: str | None = None,
        seed_data: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.admin_user = admin_user
        self.admin_password = admin_password or secrets.token_urlsafe(12)
        self.control_token = control_token or secrets.token_urlsafe(18)
        self.state = SiteState()
        if seed_data:
            seed(self.state)
        for entry in accounts or ():
            account_id, name = (
                (entry, entry.replace("-", " ").title()) if isinstance(entry, str) else entry
            )
            self.add_account(account_id, name)
        self.failures = FailureInjector()
        self.sessions = Sessions()
        self.router = build_router()
        self.app = App(self.state, self.sessions, self.admin_user, self.admin_password)
        self._access: deque[AccessRecord] = deque(maxlen=2000)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> DemoSite:
        """Bind and serve in a background thread; return at once.

        :raises ExternalError: the address cannot be bound.
        """
        if self._server is not None:
            return self
        try:
            server = _Server((self.host, self.port), self)
        except OSError as exc:
            raise ExternalError(
                f"cannot serve the demo site on {self.host}:{self.port}: {exc}"
            ) from exc
        self._server = server
        self.port = int(server.server_address[1])
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="demosite", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent); slow responses are cut short."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DemoSite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """Return the base URL, without a trailing slash.

        :raises InvalidState: the site is not started.
        """
        if self._server is None:
            raise InvalidState("the demo site is not started")
        return f"http://{self.host}:{self.port}"

    # -- conveniences for the daemon and the tests -------------------------------------

    def add_account(
        self, account_id: str, name: str, *, contact_email: str | None = None
    ) -> Account:
        """Register a CRM account (idempotent).

        :raises InvalidArgument: the id is not a simple slug.
        """
        return self.state.add_account(account_id, name, contact_email=contact_email)

    def create_api_key(
        self, description: str, permissions: str = "read_write"
    ) -> tuple[ApiKey, str, str]:
        """Create an API key as if through the UI; return (key, consumer key, consumer secret)."""
        return self.state.create_api_key(description, permissions)

    def fail(
        self,
        path_prefix: str,
        mode: str = "error",
        *,
        delay_s: float = 2.0,
        status: int = 500,
        times: int | None = None,
    ) -> FailureRule:
        """Make requests under ``path_prefix`` fail (``times`` times, or until cleared).

        :raises InvalidArgument: bad prefix, mode, delay, status or count.
        """
        return self.failures.add(
            make_rule(path_prefix, mode, delay_s=delay_s, status=status, times=times)
        )

    def clear_failures(self) -> None:
        """Remove every injected failure."""
        self.failures.clear()

    @property
    def access_log(self) -> list[AccessRecord]:
        """Return the most recent requests served, oldest first."""
        return list(self._access)

    # -- request handling (called from server threads) ---------------------------------

    def _record(self, method: str, path: str, status: int) -> None:
        self._access.append(AccessRecord(method, path, status))

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A slow request must not hold up stop(): don't join handler threads on close.
    block_on_close = False

    def __init__(self, address: tuple[str, int], site: DemoSite) -> None:
        self.site = site
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client went away; nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "BrightsideBackOffice/1.4"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the access log lives on the DemoSite object

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        site = self.server.site
        parts = urlsplit(self.path)
        path = parts.path or "/"
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._send(method, path, error(413, "Too Large", "That request is too large.", None))
            return
        body = self.rfile.read(length) if length > 0 else b""
        if path.startswith(CONTROL_PREFIX):
            token = self.headers.get("X-Control-Token", "")
            auth = self.headers.get("Authorization", "")
            if not token and auth.startswith("Bearer "):
                token = auth[len("Bearer ") :]
            action = path[len(CONTROL_PREFIX) :]
            status, data = handle_control(
                site.failures, site.control_token, method, action, token.strip(), body
            )
            self._send(method, path, json_response(data, status))
            return
        rule = site.failures.take(path)
        if rule is not None:
            if rule.mode is FailureMode.DOWN:
                site._record(method, path, 0)
                self.close_connection = True
                return  # nothing written: the client sees the connection drop
            if rule.mode is FailureMode.ERROR:
                self._send(method, path, server_error_page(rule.status))
                return
            site._sleep(rule.delay_s)
        query = dict(parse_qsl(parts.query))
        form: dict[str, str] = {}
        if method == "POST":
            # Browsers submit textareas with CRLF line ends; store what the person typed.
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            form = {k: v.replace("\r\n", "\n") for k, v in pairs}
        session = site.sessions.get(self._cookie(SESSION_COOKIE))
        try:
            response = dispatch(site.router, site.app, method, path, query, form, session)
        except Exception:  # a bug in a page must look like a real server's 500
            traceback.print_exc(file=sys.stderr)
            response = server_error_page(500)
        self._send(method, path, response)

    def _cookie(self, name: str) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel else None

    def _send(self, method: str, path: str, response: Response) -> None:
        self.server.site._record(method, path, response.status)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)
