"""The site as a function of requests: every route, dispatch, sign-in and form-token checks.

No sockets here: ``server.py`` turns HTTP into calls of :func:`dispatch`.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from agentd.demosite import admin, api, crm, sales
from agentd.demosite.html import SCRIPT, STYLESHEET, error_page
from agentd.demosite.web import (
    App,
    Handler,
    Request,
    Response,
    Router,
    Session,
    html,
    json_response,
    login_redirect,
)
from agentd.errors import InvalidArgument, NotFound


def _static(body: str, content_type: str) -> Handler:
    payload = body.encode()
    return lambda _req: Response(200, payload, content_type, (("Cache-Control", "max-age=300"),))


def build_router() -> Router:
    """Return the router with every page of the site."""
    router = Router()
    router.add("GET", "/", lambda _req: Response(303, b"", headers=(("Location", "/admin"),)))
    router.add("GET", "/static/site.css", _static(STYLESHEET, "text/css"), auth=False)
    router.add("GET", "/static/site.js", _static(SCRIPT, "text/javascript"), auth=False)
    admin.register(router)
    crm.register(router)
    sales.register(router)
    api.register(router)
    return router


def dispatch(
    router: Router,
    app: App,
    method: str,
    path: str,
    query: dict[str, str],
    form: dict[str, str],
    session: Session | None,
) -> Response:
    """Answer one request: route it, check sign-in and the form token, map errors to pages."""
    route, args, path_known = router.match(method, path)
    if route is None:
        if path_known:
            return error(405, "Method Not Allowed", "That action is not available here.", session)
        return not_found(path, "There is no page at this address.", session)
    if route.auth and session is None:
        if path.startswith("/api/"):
            return json_response({"error": "sign in first"}, status=401)
        return login_redirect(path + ("?" + urlencode(query) if query else ""))
    if route.auth and method == "POST":
        assert session is not None
        if not secrets.compare_digest(form.get("_csrf", "").encode(), session.csrf.encode()):
            message = "This form has expired. Go back, reload the page and try again."
            return error(403, "Forbidden", message, session)
    request = Request(app, method, path, query, form, session, args)
    try:
        return route.handler(request)
    except NotFound as exc:
        return not_found(path, exc.message, session)
    except InvalidArgument as exc:
        if path.startswith("/api/"):
            return json_response({"error": exc.message}, status=400)
        return error(400, "Bad Request", exc.message, session)


def error(status: int, title: str, message: str, session: Session | None) -> Response:
    """Return a full error page with this status."""
    return html(error_page(status, title, message, session), status=status)


def not_found(path: str, message: str, session: Session | None) -> Response:
    if path.startswith("/api/"):
        return json_response({"error": message}, status=404)
    return error(404, "Not Found", message, session)


def server_error_page(status: int) -> Response:
    """Return the page a real store shows when it breaks: apologetic, with a reference."""
    reference = secrets.token_hex(4)
    body = error_page(
        status,
        "Internal Server Error" if status == 500 else "Server Error",
        "Something went wrong on our side and your request could not be completed. "
        f"Please try again in a few minutes. Reference: {reference}.",
        None,
    )
    return html(body, status=status)
