"""The CRM's sales pages: account record, stage, qualification, plan, quotes, tasks, minutes.

Also the pages that take a note or a meeting back (delete, cancel), each behind
a confirmation page as a real CRM has them.
"""

from __future__ import annotations

from agentd.demosite.deals import QUALIFICATION_FIELDS, QUOTE_LINES, STAGES, VALIDITY_DAYS
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
from agentd.demosite.state import Account
from agentd.demosite.web import Request, Response, Router, html, redirect
from agentd.errors import InvalidArgument, InvalidState, NotFound

_ACCOUNT = r"/crm/accounts/([a-z0-9][a-z0-9_-]{0,62})"
_ID = r"([0-9]{1,9})"
STAGE_OPTIONS = tuple((s, s.replace("_", " ").capitalize()) for s in STAGES)
VALIDITY_OPTIONS = tuple((str(d), f"{d} days") for d in VALIDITY_DAYS)


def _page(req: Request, title: str, content: str, account: Account, status: int = 200) -> Response:
    crumbs = (("/crm/accounts", "Accounts"), (f"/crm/accounts/{account.id}", account.name))
    return html(
        layout(title, content, session=req.session, active="accounts", crumbs=crumbs),
        status=status,
    )


def _span(testid: str, value: object) -> str:
    return f'<span data-testid="{testid}">{esc(value)}</span>'


# -- the account record (what a read-only snapshot reads) ---------------------------------


def record(req: Request) -> Response:
    state = req.app.state
    account = state.account(req.args[0])
    c_suite = state.c_level_contact(account.id)
    minutes = state.latest_minutes(account.id)
    open_quotes = [q for q in state.quotes_for(account.id) if q.status == "sent"]
    rows = [
        ("Stage", _span("record-stage", account.stage)),
        ("Account manager", _span("record-manager", account.manager)),
        ("Contact", _span("record-contact-email", account.contact_email)),
        ("C-level contact", _span("record-c-suite-email", c_suite.email if c_suite else "")),
        ("Sent messages", _span("record-message-count", len(state.messages_for(account.id)))),
        ("Notes", _span("record-note-count", len(state.notes_for(account.id)))),
        ("Scheduled meetings", _span("record-meeting-count", len(state.meetings_for(account.id)))),
        ("Latest minutes", _span("record-latest-minutes", minutes.id if minutes else "")),
        ("Open quotes", _span("record-open-quotes", len(open_quotes))),
        ("Internal tasks", _span("record-task-count", len(state.tasks_for(account.id)))),
    ]
    rows += [
        (f.capitalize(), _span(f"record-{f}", getattr(account, f))) for f in QUALIFICATION_FIELDS
    ]
    items = "".join(f"<dt>{esc(label)}</dt><dd>{value}</dd>" for label, value in rows)
    content = (
        f'<dl class="kv" data-testid="account-record">{items}</dl>'
        '<h2>Account plan</h2><textarea readonly rows="8" data-testid="record-plan">'
        f"{esc(account.plan)}</textarea>"
    )
    return _page(req, f"{account.name}: record", content, account)


# -- stage ------------------------------------------------------------------------------


def _stage_form(req: Request, account: Account, stage: str, errors: dict[str, str]) -> str:
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/stage" novalidate '
        f'data-testid="stage-form">{csrf_input(req.session)}'
        + select_field("stage", "Deal stage", STAGE_OPTIONS, stage, "stage-select", errors)
        + '<div class="actions"><button type="submit" data-testid="save-stage">Save stage'
        f'</button><a href="/crm/accounts/{esc(account.id)}" class="button secondary">Cancel</a>'
        "</div></form>"
    )


def stage_edit(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    return _page(
        req, "Change the deal stage", _stage_form(req, account, account.stage, {}), account
    )


def stage_save(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    stage = req.field("stage")
    try:
        req.app.state.set_stage(account.id, stage)
    except InvalidArgument as exc:
        content = _stage_form(req, account, stage, exc.details.get("fields", {}))
        return _page(req, "Change the deal stage", content, account, status=400)
    return redirect(f"/crm/accounts/{account.id}?saved=stage")


# -- qualification ---------------------------------------------------------------------------


_QUALIFICATION_LABELS = {
    "budget": "Budget",
    "authority": "Authority (who decides)",
    "need": "Need",
    "timeline": "Timeline",
}


def _qualification_form(
    req: Request, account: Account, values: dict[str, str], errors: dict[str, str]
) -> str:
    fields = "".join(
        text_field(f, _QUALIFICATION_LABELS[f], values.get(f, ""), f"qual-{f}", errors)
        for f in QUALIFICATION_FIELDS
    )
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/qualification" novalidate '
        f'data-testid="qualification-form">{csrf_input(req.session)}{fields}'
        '<div class="actions"><button type="submit" data-testid="save-qualification">'
        f'Save qualification</button><a href="/crm/accounts/{esc(account.id)}" '
        'class="button secondary">Cancel</a></div></form>'
    )


def qualification_edit(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    values = {f: getattr(account, f) for f in QUALIFICATION_FIELDS}
    return _page(req, "Qualification", _qualification_form(req, account, values, {}), account)


def qualification_save(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    values = {f: req.field(f) for f in QUALIFICATION_FIELDS}
    try:
        req.app.state.set_qualification(account.id, values)
    except InvalidArgument as exc:
        content = _qualification_form(req, account, values, exc.details.get("fields", {}))
        return _page(req, "Qualification", content, account, status=400)
    return redirect(f"/crm/accounts/{account.id}?saved=qualification")


# -- account plan ---------------------------------------------------------------------------


def _plan_form(req: Request, account: Account, text: str, errors: dict[str, str]) -> str:
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/plan" novalidate '
        f'data-testid="plan-form">{csrf_input(req.session)}'
        + textarea_field("plan", "Account plan", text, "plan-text", errors, rows=10)
        + '<div class="actions"><button type="submit" data-testid="save-plan">Save plan</button>'
        f'<a href="/crm/accounts/{esc(account.id)}" class="button secondary">Cancel</a>'
        "</div></form>"
    )


def plan_edit(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    return _page(req, "Account plan", _plan_form(req, account, account.plan, {}), account)


def plan_save(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    text = req.field("plan")
    try:
        req.app.state.set_plan(account.id, text)
    except InvalidArgument as exc:
        content = _plan_form(req, account, text, exc.details.get("fields", {}))
        return _page(req, "Account plan", content, account, status=400)
    return redirect(f"/crm/accounts/{account.id}?saved=plan")


# -- quotes ---------------------------------------------------------------------------------


def _quote_form(
    req: Request, account: Account, values: dict[str, str], errors: dict[str, str]
) -> str:
    lines = "".join(
        '<fieldset class="quote-line">'
        f"<legend>Line {n}</legend>"
        + text_field(
            f"description_{n}",
            "Description",
            values.get(f"description_{n}", ""),
            f"quote-description-{n}",
            errors,
        )
        + text_field(
            f"quantity_{n}",
            "Quantity",
            values.get(f"quantity_{n}", ""),
            f"quote-quantity-{n}",
            errors,
        )
        + text_field(
            f"price_{n}",
            "Unit price",
            values.get(f"price_{n}", ""),
            f"quote-price-{n}",
            errors,
        )
        + "</fieldset>"
        for n in range(1, QUOTE_LINES + 1)
    )
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/quotes/new" novalidate '
        f'data-testid="quote-form">{csrf_input(req.session)}'
        f"<p>The quote is sent to {esc(account.contact_email)}.</p>{lines}"
        + select_field(
            "valid_days",
            "Valid for",
            VALIDITY_OPTIONS,
            values.get("valid_days", "30"),
            "quote-validity",
            errors,
        )
        + '<div class="actions"><button type="submit" data-testid="send-quote">Create and send'
        f'</button><a href="/crm/accounts/{esc(account.id)}" class="button secondary">Cancel</a>'
        "</div></form>"
    )


def quote_new(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    return _page(req, "New quote", _quote_form(req, account, {}, {}), account)


def quote_create(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    values = dict(req.form)
    lines = [
        (req.field(f"description_{n}"), req.field(f"quantity_{n}"), req.field(f"price_{n}"))
        for n in range(1, QUOTE_LINES + 1)
    ]
    try:
        quote = req.app.state.create_quote(account.id, lines, req.field("valid_days"))
    except InvalidArgument as exc:
        content = _quote_form(req, account, values, exc.details.get("fields", {}))
        return _page(req, "New quote", content, account, status=400)
    return redirect(f"/crm/quotes/{quote.id}?sent=1")


def quote_show(req: Request) -> Response:
    state = req.app.state
    quote = state.quote(int(req.args[0]))
    account = state.account(quote.account_id)
    banner = ""
    if req.query.get("sent"):
        banner = notice(
            f'Quote Q-<span data-testid="quote-id">{quote.id}</span> sent to {esc(quote.sent_to)}.'
        )
    elif req.query.get("withdrawn"):
        banner = notice(f"Quote Q-{quote.id} withdrawn.")
    rows = "".join(
        f"<tr><td>{esc(ln.description)}</td><td>{ln.quantity}</td><td>{ln.unit_price}</td>"
        f"<td>{ln.amount}</td></tr>"
        for ln in quote.lines
    )
    withdraw = (
        f'<form method="post" action="/crm/quotes/{quote.id}/withdraw" '
        f'data-confirm="Withdraw quote Q-{quote.id}? The customer can no longer accept it.">'
        f'{csrf_input(req.session)}<button type="submit" class="danger" '
        f'data-testid="withdraw-quote">Withdraw quote</button></form>'
        if quote.status == "sent"
        else ""
    )
    content = (
        f"{banner}"
        '<dl class="kv">'
        f'<dt>Status</dt><dd data-testid="quote-status">{esc(quote.status)}</dd>'
        f"<dt>Sent to</dt><dd>{esc(quote.sent_to)}</dd>"
        f'<dt>Valid until</dt><dd data-testid="quote-valid-until">{quote.valid_until}</dd>'
        f'<dt>Total</dt><dd data-testid="quote-total">{quote.total}</dd></dl>'
        '<table data-testid="quote-lines"><thead><tr><th>Description</th><th>Quantity</th>'
        f"<th>Unit price</th><th>Amount</th></tr></thead><tbody>{rows}</tbody></table>{withdraw}"
    )
    return _page(req, f"Quote Q-{quote.id}", content, account)


def quote_withdraw(req: Request) -> Response:
    quote_id = int(req.args[0])
    try:
        req.app.state.withdraw_quote(quote_id)
    except InvalidState as exc:
        raise InvalidArgument(exc.message) from None
    return redirect(f"/crm/quotes/{quote_id}?withdrawn=1")


# -- internal tasks ---------------------------------------------------------------------------


def _task_form(
    req: Request, account: Account, values: dict[str, str], errors: dict[str, str]
) -> str:
    kind = values.get("kind") or req.query.get("kind", "follow_up")
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/tasks/new" novalidate '
        f'data-testid="task-form">{csrf_input(req.session)}'
        f'<input type="hidden" name="kind" value="{esc(kind)}">'
        f'<p>Assigned to the account manager, <span data-testid="task-assignee">'
        f"{esc(account.manager)}</span>, who is notified. Nothing is sent to the customer.</p>"
        + text_field("title", "Title", values.get("title", ""), "task-title", errors)
        + textarea_field("details", "Details", values.get("details", ""), "task-details", errors)
        + '<div class="actions"><button type="submit" data-testid="save-task">Assign task'
        f'</button><a href="/crm/accounts/{esc(account.id)}" class="button secondary">Cancel</a>'
        "</div></form>"
    )


def task_new(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    return _page(req, "New internal task", _task_form(req, account, {}, {}), account)


def task_create(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    values = {n: req.field(n) for n in ("title", "details", "kind")}
    try:
        task = req.app.state.create_task(
            account.id,
            title=values["title"],
            details=values["details"],
            kind=values["kind"] or "follow_up",
        )
    except InvalidArgument as exc:
        content = _task_form(req, account, values, exc.details.get("fields", {}))
        return _page(req, "New internal task", content, account, status=400)
    return redirect(f"/crm/accounts/{account.id}?task={task.id}")


# -- meeting minutes shared with the customer -----------------------------------------------------


def _minutes_meeting(req: Request, account: Account) -> int:
    raw = req.args[1]
    if raw == "latest":
        latest = req.app.state.latest_minutes(account.id)
        if latest is None:
            raise NotFound(f"account {account.id!r} has no meeting with recorded minutes")
        return latest.id
    return int(raw)


def _share_form(
    req: Request, account: Account, meeting_id: int, values: dict[str, str], errors: dict[str, str]
) -> str:
    meeting = next(
        (m for m in req.app.state.meetings if m.id == meeting_id and m.account_id == account.id),
        None,
    )
    if meeting is None or not meeting.minutes:
        raise NotFound(f"meeting {meeting_id} of {account.id!r} has no recorded minutes")
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/meetings/{meeting_id}/share" '
        f'novalidate data-testid="share-form">{csrf_input(req.session)}'
        f'<p>Minutes of <span data-testid="share-meeting">{esc(meeting.title)}</span> '
        f"({meeting.date}) are attached:</p>"
        f'<pre data-testid="share-minutes-text">{esc(meeting.minutes)}</pre>'
        + text_field(
            "to",
            "To",
            values.get("to", account.contact_email),
            "share-to",
            errors,
            input_type="email",
        )
        + text_field("subject", "Subject", values.get("subject", ""), "share-subject", errors)
        + textarea_field("body", "Message", values.get("body", ""), "share-body", errors)
        + '<div class="actions"><button type="submit" data-testid="share-minutes">Send with '
        f'minutes</button><a href="/crm/accounts/{esc(account.id)}" class="button secondary">'
        "Cancel</a></div></form>"
    )


def share_minutes(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    meeting_id = _minutes_meeting(req, account)
    content = _share_form(req, account, meeting_id, {}, {})
    return _page(req, "Share meeting minutes", content, account)


def share_minutes_send(req: Request) -> Response:
    state = req.app.state
    account = state.account(req.args[0])
    meeting_id = _minutes_meeting(req, account)
    values = {n: req.field(n) for n in ("to", "subject", "body")}
    content = _share_form(req, account, meeting_id, values, {})  # raises when no minutes
    minutes = next(m.minutes for m in state.meetings if m.id == meeting_id)
    try:
        message = state.send_message(
            account.id, **values, template="meeting_minutes", attachment=minutes
        )
    except InvalidArgument as exc:
        content = _share_form(req, account, meeting_id, values, exc.details.get("fields", {}))
        return _page(req, "Share meeting minutes", content, account, status=400)
    return redirect(f"/crm/outbox?sent={message.id}")


# -- taking a note or a meeting back -------------------------------------------------------------


def _confirm(
    req: Request, account: Account, title: str, action: str, what: str, testid: str
) -> Response:
    content = (
        f"<p>{what}</p>"
        f'<form method="post" action="{esc(action)}">{csrf_input(req.session)}'
        f'<div class="actions"><button type="submit" class="danger" data-testid="{testid}">'
        f'{esc(title)}</button><a href="/crm/accounts/{esc(account.id)}" class="button '
        'secondary">Keep it</a></div></form>'
    )
    return _page(req, title, content, account)


def note_delete_confirm(req: Request) -> Response:
    state = req.app.state
    account = state.account(req.args[0])
    note_id = int(req.args[1])
    note = next((n for n in state.notes_for(account.id) if n.id == note_id), None)
    if note is None:
        raise NotFound(f"no note {note_id} on account {account.id!r}")
    what = f'Delete this note? <q data-testid="delete-note-text">{esc(note.text)}</q>'
    action = f"/crm/accounts/{account.id}/notes/{note_id}/delete"
    return _confirm(req, account, "Delete note", action, what, "confirm-delete-note")


def note_delete(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    note_id = int(req.args[1])
    req.app.state.delete_note(account.id, note_id)
    return redirect(f"/crm/accounts/{account.id}?deleted_note={note_id}")


def meeting_cancel_confirm(req: Request) -> Response:
    state = req.app.state
    account = state.account(req.args[0])
    meeting_id = int(req.args[1])
    meeting = next((m for m in state.meetings_for(account.id) if m.id == meeting_id), None)
    if meeting is None:
        raise NotFound(f"no scheduled meeting {meeting_id} on account {account.id!r}")
    what = (
        f'Cancel <q data-testid="cancel-meeting-title">{esc(meeting.title)}</q> on '
        f"{meeting.date} at {meeting.time:%H:%M}?"
    )
    action = f"/crm/accounts/{account.id}/meetings/{meeting_id}/cancel"
    return _confirm(req, account, "Cancel meeting", action, what, "confirm-cancel-meeting")


def meeting_cancel(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    meeting_id = int(req.args[1])
    req.app.state.cancel_meeting(account.id, meeting_id)
    return redirect(f"/crm/accounts/{account.id}?cancelled_meeting={meeting_id}")


def register(router: Router) -> None:
    """Add the sales routes."""
    router.add("GET", _ACCOUNT + "/record", record)
    router.add("GET", _ACCOUNT + "/stage", stage_edit)
    router.add("POST", _ACCOUNT + "/stage", stage_save)
    router.add("GET", _ACCOUNT + "/qualification", qualification_edit)
    router.add("POST", _ACCOUNT + "/qualification", qualification_save)
    router.add("GET", _ACCOUNT + "/plan", plan_edit)
    router.add("POST", _ACCOUNT + "/plan", plan_save)
    router.add("GET", _ACCOUNT + "/quotes/new", quote_new)
    router.add("POST", _ACCOUNT + "/quotes/new", quote_create)
    router.add("GET", "/crm/quotes/" + _ID, quote_show)
    router.add("POST", "/crm/quotes/" + _ID + "/withdraw", quote_withdraw)
    router.add("GET", _ACCOUNT + "/tasks/new", task_new)
    router.add("POST", _ACCOUNT + "/tasks/new", task_create)
    router.add("GET", _ACCOUNT + "/meetings/(latest|[0-9]{1,9})/share", share_minutes)
    router.add("POST", _ACCOUNT + "/meetings/([0-9]{1,9})/share", share_minutes_send)
    router.add("GET", _ACCOUNT + "/notes/" + _ID + "/delete", note_delete_confirm)
    router.add("POST", _ACCOUNT + "/notes/" + _ID + "/delete", note_delete)
    router.add("GET", _ACCOUNT + "/meetings/" + _ID + "/cancel", meeting_cancel_confirm)
    router.add("POST", _ACCOUNT + "/meetings/" + _ID + "/cancel", meeting_cancel)
