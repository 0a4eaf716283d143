"""Page layout, form helpers, the stylesheet and the small script of the demo back-office.

Everything a workflow touches carries a stable ``data-testid``; secret values
are shown in ``<input readonly data-secret="true">`` so screenshots can mask them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from agentd.demosite.web import Session

BRAND = "Brightside Goods"


def esc(value: object) -> str:
    """Escape a value for HTML text or a quoted attribute."""
    return escape(str(value), quote=True)


def csrf_input(session: Session | None) -> str:
    """Return the hidden anti-forgery field every signed-in form carries."""
    token = session.csrf if session else ""
    return f'<input type="hidden" name="_csrf" value="{esc(token)}">'


def notice(text: str, kind: str = "success", testid: str = "notice") -> str:
    """Return a dismissable status banner."""
    role = "alert" if kind == "error" else "status"
    return (
        f'<div class="notice notice-{esc(kind)}" role="{role}" data-testid="{esc(testid)}">'
        f"{text}</div>"
    )


def error_summary(errors: Mapping[str, str]) -> str:
    """Return the box listing every invalid field, shown above a form."""
    if not errors:
        return ""
    items = "".join(f"<li>{esc(msg)}</li>" for msg in errors.values())
    return (
        '<div class="notice notice-error" role="alert" data-testid="form-errors">'
        f"<p>Please fix the following:</p><ul>{items}</ul></div>"
    )


def _field_error(name: str, errors: Mapping[str, str]) -> str:
    if name not in errors:
        return ""
    return (
        f'<p class="field-error" id="{esc(name)}-error" data-testid="error-{esc(name)}">'
        f"{esc(errors[name])}</p>"
    )


def _described(name: str, errors: Mapping[str, str]) -> str:
    if name not in errors:
        return ""
    return f' aria-invalid="true" aria-describedby="{esc(name)}-error"'


def text_field(
    name: str,
    label: str,
    value: str,
    testid: str,
    errors: Mapping[str, str],
    *,
    input_type: str = "text",
    hint: str = "",
    counter_max: int | None = None,
    extra: str = "",
) -> str:
    """Return a labelled input with its inline error."""
    counter = ""
    if counter_max is not None:
        counter = (
            f'<span class="counter" data-counter-for="{esc(name)}" data-max="{counter_max}">'
            f"{len(value)} / {counter_max}</span>"
        )
    hint_html = f'<p class="hint">{esc(hint)}</p>' if hint else ""
    return (
        f'<div class="field"><label for="{esc(name)}">{esc(label)}</label>'
        f'<input type="{esc(input_type)}" id="{esc(name)}" name="{esc(name)}" value="{esc(value)}"'
        f' data-testid="{esc(testid)}"{_described(name, errors)} {extra}>'
        f"{counter}{hint_html}{_field_error(name, errors)}</div>"
    )


def textarea_field(
    name: str,
    label: str,
    value: str,
    testid: str,
    errors: Mapping[str, str],
    *,
    rows: int = 4,
    counter_max: int | None = None,
) -> str:
    """Return a labelled textarea with its inline error."""
    counter = ""
    if counter_max is not None:
        counter = (
            f'<span class="counter" data-counter-for="{esc(name)}" data-max="{counter_max}">'
            f"{len(value)} / {counter_max}</span>"
        )
    return (
        f'<div class="field"><label for="{esc(name)}">{esc(label)}</label>'
        f'<textarea id="{esc(name)}" name="{esc(name)}" rows="{rows}" data-testid="{esc(testid)}"'
        f"{_described(name, errors)}>{esc(value)}</textarea>"
        f"{counter}{_field_error(name, errors)}</div>"
    )


def select_field(
    name: str,
    label: str,
    options: Sequence[tuple[str, str]],
    selected: str,
    testid: str,
    errors: Mapping[str, str],
) -> str:
    """Return a labelled select with its inline error."""
    opts = "".join(
        f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(text)}</option>'
        for v, text in options
    )
    return (
        f'<div class="field"><label for="{esc(name)}">{esc(label)}</label>'
        f'<select id="{esc(name)}" name="{esc(name)}" data-testid="{esc(testid)}"'
        f"{_described(name, errors)}>{opts}</select>{_field_error(name, errors)}</div>"
    )


_NAV = (
    ("dashboard", "/admin", "Dashboard"),
    ("products", "/admin/products", "Products"),
    ("api", "/admin/settings/api", "REST API"),
    ("accounts", "/crm/accounts", "Accounts"),
    ("outbox", "/crm/outbox", "Outbox"),
)


def _nav(session: Session | None, active: str) -> str:
    if session is None:
        return f'<header class="topbar"><span class="brand">{BRAND}</span></header>'
    links = "".join(
        f'<a href="{href}" data-testid="nav-{key}"'
        f"{' aria-current=page class=active' if key == active else ''}>{text}</a>"
        for key, href, text in _NAV
    )
    return (
        f'<header class="topbar"><a class="brand" href="/admin">{BRAND}</a>'
        f'<nav aria-label="Main">{links}</nav>'
        f'<form class="signout" method="post" action="/logout">{csrf_input(session)}'
        f'<span data-testid="current-user">Signed in as {esc(session.user)}</span>'
        f'<button type="submit" class="link" data-testid="logout">Sign out</button></form>'
        "</header>"
    )


def layout(
    title: str,
    content: str,
    *,
    session: Session | None,
    active: str = "",
    crumbs: Sequence[tuple[str, str]] = (),
) -> str:
    """Return a full page: head, navigation bar, breadcrumbs and content."""
    trail = ""
    if crumbs:
        parts = [f'<a href="{esc(href)}">{esc(text)}</a>' for href, text in crumbs]
        trail = f'<nav class="crumbs" aria-label="Breadcrumb">{" / ".join(parts)}</nav>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · {BRAND} back office</title>"
        '<link rel="stylesheet" href="/static/site.css">'
        '<script src="/static/site.js" defer></script></head>'
        f"<body>{_nav(session, active)}<main>{trail}"
        f'<h1 data-testid="page-title">{esc(title)}</h1>{content}</main>'
        f"<footer>{BRAND} back office · demo data only</footer></body></html>"
    )


def error_page(status: int, title: str, message: str, session: Session | None) -> str:
    """Return a full error page."""
    body = (
        f'<div class="error-page" data-testid="error-page" data-status="{status}">'
        f"<p>{esc(message)}</p>"
        '<p><a href="/admin" data-testid="back-home">Back to the dashboard</a></p></div>'
    )
    return layout(f"{status} {title}", body, session=session)


STYLESHEET = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1d2327;background:#f0f0f1}
a{color:#2271b1}
.topbar{display:flex;align-items:center;gap:1.5rem;background:#1d2327;color:#f0f0f1;
padding:.6rem 1.2rem}
.topbar a{color:#f0f0f1;text-decoration:none}
.topbar .brand{font-weight:700}
.topbar nav{display:flex;gap:1rem;flex:1}
.topbar nav a.active{border-bottom:2px solid #72aee6}
.signout{display:flex;gap:.6rem;align-items:center;font-size:.9rem}
main{max-width:960px;margin:1.5rem auto;background:#fff;padding:1.5rem 2rem;
border:1px solid #dcdcde;border-radius:4px}
footer{text-align:center;color:#787c82;font-size:.8rem;margin:1rem}
.crumbs{font-size:.85rem;color:#787c82}
table{width:100%;border-collapse:collapse;margin:1rem 0}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #dcdcde;vertical-align:top}
th{background:#f6f7f7}
.field{margin:0 0 1rem}
.field label{display:block;font-weight:600;margin-bottom:.25rem}
input[type=text],input[type=password],input[type=email],input[type=date],input[type=time],
input[type=number],select,textarea{width:100%;padding:.45rem;border:1px solid #8c8f94;
border-radius:3px;font:inherit}
input[readonly]{background:#f6f7f7;font-family:ui-monospace,monospace}
[aria-invalid=true]{border-color:#d63638}
.field-error{color:#d63638;margin:.25rem 0 0;font-size:.9rem}
.hint,.counter{color:#646970;font-size:.85rem}
.notice{padding:.6rem 1rem;margin:0 0 1rem;border-left:4px solid #00a32a;background:#edfaef}
.notice-error{border-color:#d63638;background:#fcf0f1}
.notice-warning{border-color:#dba617;background:#fcf9e8}
button,.button{display:inline-block;background:#2271b1;color:#fff;border:0;border-radius:3px;
padding:.45rem 1rem;font:inherit;cursor:pointer;text-decoration:none}
button.secondary,.button.secondary{background:#f6f7f7;color:#2271b1;border:1px solid #2271b1}
button.danger{background:#d63638}
button.link{background:none;color:#72aee6;padding:0;text-decoration:underline}
.actions{display:flex;gap:.6rem;align-items:center;margin-top:1rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:1rem}
.card{border:1px solid #dcdcde;border-radius:4px;padding:1rem}
.card strong{display:block;font-size:1.6rem}
.checkbox label{display:inline;font-weight:400}
.error-page{padding:2rem 0}
dl.kv{display:grid;grid-template-columns:12rem 1fr;gap:.3rem 1rem}
dl.kv dt{font-weight:600}
"""

SCRIPT = """
document.addEventListener("DOMContentLoaded", function () {
  // Destructive forms ask first; cancelling the dialog cancels the submit.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
  // Leaving a form with a non-empty draft asks before throwing the text away.
  document.querySelectorAll("a[data-discard-draft]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      var draft = document.querySelector(link.dataset.discardDraft);
      if (draft && draft.value.trim() !== "" &&
          !window.confirm("Discard this draft? The text you typed will be lost.")) {
        event.preventDefault();
      }
    });
  });
  document.querySelectorAll("[data-counter-for]").forEach(function (counter) {
    var input = document.getElementById(counter.dataset.counterFor);
    var max = Number(counter.dataset.max);
    var update = function () {
      counter.textContent = input.value.length + " / " + max;
      counter.style.color = input.value.length > max ? "#d63638" : "";
    };
    input.addEventListener("input", update);
    update();
  });
});
"""
