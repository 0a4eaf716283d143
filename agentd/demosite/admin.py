"""Sign-in and the store admin: dashboard, products, REST API keys."""

from __future__ import annotations

import secrets

from agentd.demosite.html import (
    csrf_input,
    error_summary,
    esc,
    layout,
    notice,
    select_field,
    text_field,
    textarea_field,
)
from agentd.demosite.state import META_DESCRIPTION_MAX, Product
from agentd.demosite.web import (
    SESSION_COOKIE,
    Request,
    Response,
    Router,
    html,
    redirect,
    safe_next,
)
from agentd.errors import InvalidArgument

PERMISSION_OPTIONS = (("read", "Read"), ("write", "Write"), ("read_write", "Read/Write"))


def _login_form(req: Request, *, error: str = "", username: str = "", next_path: str = "") -> str:
    banner = notice(esc(error), "error", "login-error") if error else ""
    if req.query.get("signed_out"):
        banner = notice("You have been signed out.", "success")
    return (
        f'{banner}<form method="post" action="/login" data-testid="login-form">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        + text_field("username", "Username", username, "login-username", {}, extra="autofocus")
        + text_field("password", "Password", "", "login-password", {}, input_type="password")
        + '<div class="actions"><button type="submit" data-testid="login-submit">Sign in</button>'
        "</div></form>"
    )


def login_page(req: Request) -> Response:
    content = _login_form(req, next_path=req.query.get("next", ""))
    return html(layout("Sign in", content, session=None))


def login_submit(req: Request) -> Response:
    username, password = req.field("username"), req.field("password")
    app = req.app
    user_ok = secrets.compare_digest(username.encode(), app.admin_user.encode())
    password_ok = secrets.compare_digest(password.encode(), app.admin_password.encode())
    if not (user_ok and password_ok):
        content = _login_form(
            req,
            error="Unknown username or wrong password.",
            username=username,
            next_path=req.field("next"),
        )
        return html(layout("Sign in", content, session=None), status=401)
    session = app.sessions.create(username)
    cookie = f"{SESSION_COOKIE}={session.token}; Path=/; HttpOnly; SameSite=Lax"
    return redirect(safe_next(req.field("next")), headers=(("Set-Cookie", cookie),))


def logout(req: Request) -> Response:
    if req.session is not None:
        req.app.sessions.drop(req.session.token)
    expired = f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
    return redirect("/login?signed_out=1", headers=(("Set-Cookie", expired),))


def dashboard(req: Request) -> Response:
    state = req.app.state
    with state.lock:
        counts = (
            ("products", "Products", len(state.products), "/admin/products"),
            ("api-keys", "Active API keys", len(state.active_api_keys()), "/admin/settings/api"),
            ("accounts", "Accounts", len(state.accounts), "/crm/accounts"),
            ("messages", "Messages sent", len(state.messages), "/crm/outbox"),
        )
        missing_seo = [p for p in state.products.values() if not p.seo_title]
    cards = "".join(
        f'<a class="card" href="{href}" data-testid="card-{key}"><strong>{n}</strong>{label}</a>'
        for key, label, n, href in counts
    )
    todo = ""
    if missing_seo:
        items = "".join(
            f'<li><a href="/admin/products/{p.id}/edit">{esc(p.title)}</a></li>'
            for p in missing_seo
        )
        todo = f"<h2>Products without an SEO title</h2><ul data-testid='seo-todo'>{items}</ul>"
    return html(
        layout(
            "Dashboard",
            f'<div class="cards">{cards}</div>{todo}',
            session=req.session,
            active="dashboard",
        )
    )


def products(req: Request) -> Response:
    with req.app.state.lock:
        rows = sorted(req.app.state.products.values(), key=lambda p: p.id)
    body = "".join(
        f'<tr data-testid="product-row-{p.id}"><td>{p.id}</td><td>{esc(p.title)}</td>'
        f"<td>{esc(p.seo_title) or '<em>missing</em>'}</td>"
        f"<td>{len(p.meta_description)} / {META_DESCRIPTION_MAX}</td><td>${p.price}</td>"
        f'<td><a href="/admin/products/{p.id}/edit" data-testid="edit-product-{p.id}">Edit</a>'
        "</td></tr>"
        for p in rows
    )
    table = (
        '<table data-testid="product-table"><thead><tr><th>ID</th><th>Title</th>'
        "<th>SEO title</th><th>Meta description</th><th>Price</th><th></th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )
    return html(layout("Products", table, session=req.session, active="products"))


def _product_form(
    req: Request, product: Product, values: dict[str, str], errors: dict[str, str]
) -> str:
    banner = notice("Product updated.", "success") if req.query.get("saved") else ""
    return (
        f"{banner}{error_summary(errors)}"
        f'<form method="post" action="/admin/products/{product.id}/edit" novalidate '
        'data-testid="product-form">'
        f"{csrf_input(req.session)}"
        + text_field("title", "Title", values["title"], "product-title", errors)
        + text_field(
            "seo_title",
            "SEO title",
            values["seo_title"],
            "product-seo-title",
            errors,
            hint="Shown as the headline in search results; 70 characters at most.",
        )
        + textarea_field(
            "meta_description",
            "Meta description",
            values["meta_description"],
            "product-meta-description",
            errors,
            rows=3,
            counter_max=META_DESCRIPTION_MAX,
        )
        + text_field(
            "price",
            "Price (USD)",
            values["price"],
            "product-price",
            errors,
            extra='inputmode="decimal"',
        )
        + '<div class="actions"><button type="submit" data-testid="product-save">Save changes'
        '</button><a href="/admin/products" class="button secondary" data-testid="product-cancel">'
        "Cancel</a></div></form>"
    )


def _product_values(product: Product) -> dict[str, str]:
    return {
        "title": product.title,
        "seo_title": product.seo_title,
        "meta_description": product.meta_description,
        "price": str(product.price),
    }


def product_edit(req: Request) -> Response:
    product = req.app.state.product(int(req.args[0]))
    content = _product_form(req, product, _product_values(product), {})
    crumbs = (("/admin/products", "Products"),)
    return html(
        layout(
            f"Edit product #{product.id}",
            content,
            session=req.session,
            active="products",
            crumbs=crumbs,
        )
    )


def product_save(req: Request) -> Response:
    product = req.app.state.product(int(req.args[0]))
    values = {name: req.field(name) for name in _product_values(product)}
    try:
        req.app.state.update_product(product.id, **values)
    except InvalidArgument as exc:
        content = _product_form(req, product, values, exc.details.get("fields", {}))
        page = layout(
            f"Edit product #{product.id}", content, session=req.session, active="products"
        )
        return html(page, status=400)
    return redirect(f"/admin/products/{product.id}/edit?saved=1")


def api_keys(req: Request) -> Response:
    banner = ""
    if req.query.get("revoked"):
        banner = notice(f"API key {esc(req.query['revoked'])} revoked.", "success")
    keys = req.app.state.active_api_keys()
    rows = "".join(
        f'<tr data-testid="api-key-row-{k.id}"><td>{k.id}</td><td>{esc(k.description)}</td>'
        f"<td>{esc(k.permissions.value)}</td><td><code>…{esc(k.key_ending)}</code></td>"
        f"<td>{k.created_at:%Y-%m-%d %H:%M} UTC</td><td>"
        f'<form method="post" action="/admin/settings/api/{k.id}/revoke" '
        f'data-confirm="Revoke API key &quot;{esc(k.description)}&quot;? Applications using it '
        f'will stop working.">{csrf_input(req.session)}<button type="submit" class="danger" '
        f'data-testid="revoke-key-{k.id}">Revoke</button></form></td></tr>'
        for k in keys
    )
    table = (
        '<table data-testid="api-key-table"><thead><tr><th>ID</th><th>Description</th>'
        "<th>Permissions</th><th>Consumer key</th><th>Created</th><th></th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if keys
        else '<p data-testid="api-keys-empty">No API keys yet.</p>'
    )
    content = (
        f"{banner}<p>REST API keys let other applications read or change this store.</p>"
        '<p><a class="button" href="/admin/settings/api/new" data-testid="add-key">Add key</a></p>'
        f"{table}"
    )
    return html(
        layout(
            "REST API",
            content,
            session=req.session,
            active="api",
            crumbs=(("/admin", "Dashboard"),),
        )
    )


def _new_key_form(req: Request, values: dict[str, str], errors: dict[str, str]) -> str:
    return (
        f"{error_summary(errors)}"
        '<form method="post" action="/admin/settings/api/new" novalidate '
        'data-testid="api-key-form">'
        f"{csrf_input(req.session)}"
        + text_field(
            "description",
            "Description",
            values.get("description", ""),
            "key-description",
            errors,
            hint="Who or what will use this key.",
        )
        + select_field(
            "permissions",
            "Permissions",
            PERMISSION_OPTIONS,
            values.get("permissions", "read"),
            "key-permissions",
            errors,
        )
        + '<div class="actions"><button type="submit" data-testid="generate-key">Generate API key'
        '</button><a class="button secondary" href="/admin/settings/api">Cancel</a></div></form>'
    )


def api_key_new(req: Request) -> Response:
    crumbs = (("/admin/settings/api", "REST API"),)
    return html(
        layout(
            "Add API key",
            _new_key_form(req, {}, {}),
            session=req.session,
            active="api",
            crumbs=crumbs,
        )
    )


def api_key_create(req: Request) -> Response:
    values = {"description": req.field("description"), "permissions": req.field("permissions")}
    try:
        key, consumer_key, consumer_secret = req.app.state.create_api_key(**values)
    except InvalidArgument as exc:
        content = _new_key_form(req, values, exc.details.get("fields", {}))
        return html(layout("Add API key", content, session=req.session, active="api"), status=400)
    content = (
        notice("API key generated. Copy the consumer secret now: it will not be shown again.")
        + '<dl class="kv" data-testid="api-key-details">'
        f'<dt>Key ID</dt><dd data-testid="api-key-id">{key.id}</dd>'
        f'<dt>Description</dt><dd data-testid="api-key-description">{esc(key.description)}</dd>'
        f'<dt>Permissions</dt><dd data-testid="api-key-permissions">{key.permissions.value}</dd>'
        "</dl>"
        '<div class="field"><label for="consumer_key">Consumer key</label>'
        f'<input type="text" id="consumer_key" value="{esc(consumer_key)}" readonly '
        'data-secret="true" data-testid="consumer-key"></div>'
        '<div class="field"><label for="consumer_secret">Consumer secret</label>'
        f'<input type="text" id="consumer_secret" value="{esc(consumer_secret)}" readonly '
        'data-secret="true" data-testid="consumer-secret"></div>'
        '<p><a href="/admin/settings/api" data-testid="back-to-keys">Back to API keys</a></p>'
    )
    page = layout("Key details", content, session=req.session, active="api")
    # The secret is on this page only: keep it out of every cache.
    return html(page, headers=(("Cache-Control", "no-store"),))


def api_key_revoke(req: Request) -> Response:
    key = req.app.state.revoke_api_key(int(req.args[0]))
    return redirect(f"/admin/settings/api?revoked={key.id}")


def register(router: Router) -> None:
    """Add the sign-in and store admin routes."""
    router.add("GET", "/login", login_page, auth=False)
    router.add("POST", "/login", login_submit, auth=False)
    router.add("POST", "/logout", logout)
    router.add("GET", "/admin", dashboard)
    router.add("GET", "/admin/products", products)
    router.add("GET", r"/admin/products/(\d{1,9})/edit", product_edit)
    router.add("POST", r"/admin/products/(\d{1,9})/edit", product_save)
    router.add("GET", "/admin/settings/api", api_keys)
    router.add("GET", "/admin/settings/api/new", api_key_new)
    router.add("POST", "/admin/settings/api/new", api_key_create)
    router.add("POST", r"/admin/settings/api/(\d{1,9})/revoke", api_key_revoke)
