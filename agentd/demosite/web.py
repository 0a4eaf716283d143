"""Tiny web framework for the demo back-office: requests, responses, routes, sessions.

Kept free of sockets so route handlers are plain functions of a
:class:`Request`; ``server.py`` does the HTTP.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from agentd.demosite.state import SiteState

SESSION_COOKIE = "bo_session"


@dataclass(frozen=True)
class Session:
    """A signed-in user; ``csrf`` is echoed by every form as ``_csrf``."""

    token: str
    user: str
    csrf: str


class Sessions:
    """In-memory session store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def create(self, user: str) -> Session:
        session = Session(secrets.token_urlsafe(24), user, secrets.token_urlsafe(16))
        with self._lock:
            self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            return self._by_token.get(token)

    def drop(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)


@dataclass(frozen=True)
class App:
    """What route handlers may use."""

    state: SiteState
    sessions: Sessions
    admin_user: str
    admin_password: str


@dataclass(frozen=True)
class Request:
    app: App
    method: str
    path: str
    query: Mapping[str, str]
    form: Mapping[str, str]
    session: Session | None
    args: tuple[str, ...] = ()

    def field(self, name: str) -> str:
        """Return a submitted form field ('' when absent)."""
        return self.form.get(name, "")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())


def html(body: str, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Return an HTML response."""
    return Response(status, body.encode(), headers=headers)


def json_response(data: Any, status: int = 200) -> Response:
    """Return a JSON response."""
    return Response(status, json.dumps(data, indent=2).encode(), "application/json")


def redirect(location: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Return a 303 See Other (the post/redirect/get pattern)."""
    return Response(303, b"", headers=(("Location", location), *headers))


def login_redirect(path: str) -> Response:
    """Send an anonymous visitor to the login page, remembering where they were going."""
    return redirect("/login?next=" + quote(path, safe="/"))


def safe_next(target: str | None) -> str:
    """Return a local path to go to after login; anything else goes to the dashboard."""
    if not target:
        return "/admin"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/admin"
    return target


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool


class Router:
    """Match a method and path to a handler; captured groups become ``Request.args``."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, auth: bool = True) -> None:
        self.routes.append(Route(method, re.compile(f"^{pattern}$"), handler, auth))

    def match(self, method: str, path: str) -> tuple[Route | None, tuple[str, ...], bool]:
        """Return (route, args, path_known); path_known without a route means 405."""
        path_known = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m is None:
                continue
            path_known = True
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, m.groups(), True
        return None, (), path_known
