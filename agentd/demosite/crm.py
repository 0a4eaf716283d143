"""The CRM area: accounts, the message composer and outbox, meetings, notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
from agentd.demosite.state import MEETING_DURATIONS, Account
from agentd.demosite.web import Request, Response, Router, html, redirect
from agentd.errors import InvalidArgument, NotFound

_ACCOUNT = r"/crm/accounts/([a-z0-9][a-z0-9_-]{0,62})"
DURATION_OPTIONS = tuple((str(m), f"{m} minutes") for m in MEETING_DURATIONS)


def _crumbs(account: Account) -> tuple[tuple[str, str], ...]:
    return (("/crm/accounts", "Accounts"), (f"/crm/accounts/{account.id}", account.name))


def _page(
    req: Request,
    title: str,
    content: str,
    *,
    account: Account | None = None,
    status: int = 200,
    active: str = "accounts",
    detail: bool = False,
) -> Response:
    crumbs = _crumbs(account)[: 1 if detail else 2] if account else ()
    return html(
        layout(title, content, session=req.session, active=active, crumbs=crumbs), status=status
    )


def accounts(req: Request) -> Response:
    state = req.app.state
    with state.lock:
        rows = sorted(state.accounts.values(), key=lambda a: a.name.lower())
        body = "".join(
            f'<tr data-testid="account-row-{esc(a.id)}"><td><a href="/crm/accounts/{esc(a.id)}" '
            f'data-testid="open-account-{esc(a.id)}">{esc(a.name)}</a></td>'
            f"<td>{esc(a.stage)}</td><td>{esc(a.contact_email)}</td>"
            f"<td>{len(state.notes_for(a.id))}</td><td>{len(state.meetings_for(a.id))}</td></tr>"
            for a in rows
        )
    table = (
        '<table data-testid="account-table"><thead><tr><th>Account</th><th>Stage</th>'
        f"<th>Contact</th><th>Notes</th><th>Meetings</th></tr></thead><tbody>{body}</tbody></table>"
    )
    return _page(req, "Accounts", table)


def account_detail(req: Request) -> Response:
    state = req.app.state
    account = state.account(req.args[0])
    banner = ""
    if req.query.get("meeting"):
        banner = notice(
            f'Meeting scheduled (#<span data-testid="meeting-id">'
            f"{esc(req.query['meeting'])}</span>)."
        )
    elif req.query.get("note"):
        banner = notice(
            f'Note added (#<span data-testid="note-id">{esc(req.query["note"])}</span>).'
        )
    elif req.query.get("task"):
        banner = notice(
            f'Task #<span data-testid="task-id">{esc(req.query["task"])}</span> assigned to '
            f"{esc(account.manager)}."
        )
    elif req.query.get("saved") in _SAVED:
        banner = notice(_SAVED[req.query["saved"]])
    elif req.query.get("deleted_note"):
        banner = notice(f"Note {esc(req.query['deleted_note'])} deleted.")
    elif req.query.get("cancelled_meeting"):
        banner = notice(f"Meeting {esc(req.query['cancelled_meeting'])} cancelled.")
    notes = state.notes_for(account.id)
    meetings = state.meetings_for(account.id)
    messages = state.messages_for(account.id)
    note_items = (
        "".join(
            f'<li data-testid="note-{n.id}"><p>{esc(n.text)}</p>'
            f"<small>{n.created_at:%Y-%m-%d %H:%M} UTC</small> "
            f'<a href="/crm/accounts/{esc(account.id)}/notes/{n.id}/delete" '
            f'data-testid="delete-note-{n.id}">Delete</a></li>'
            for n in reversed(notes)
        )
        or "<li><em>No notes yet.</em></li>"
    )
    meeting_rows = "".join(
        f'<tr data-testid="meeting-row-{m.id}"><td>{esc(m.title)}</td><td>{m.date.isoformat()}</td>'
        f"<td>{m.time:%H:%M}</td><td>{m.duration_min} min</td>"
        f"<td>{'sent' if m.send_invite else '—'}</td>"
        f'<td><a href="/crm/accounts/{esc(account.id)}/meetings/{m.id}/cancel" '
        f'data-testid="cancel-meeting-{m.id}">Cancel</a></td></tr>'
        for m in meetings
    )
    message_rows = "".join(
        f'<tr data-testid="message-row-{m.id}"><td>{m.sent_at:%Y-%m-%d %H:%M}</td>'
        f"<td>{esc(m.to)}</td><td>{esc(m.subject)}</td></tr>"
        for m in reversed(messages)
    )
    content = (
        f"{banner}"
        '<dl class="kv" data-testid="account-details">'
        f'<dt>Account ID</dt><dd data-testid="account-id">{esc(account.id)}</dd>'
        f'<dt>Stage</dt><dd data-testid="account-stage">{esc(account.stage)}</dd>'
        f"<dt>Contact</dt><dd>{esc(account.contact_name)} "
        f'&lt;<span data-testid="account-email">{esc(account.contact_email)}</span>&gt;</dd></dl>'
        '<div class="actions">'
        f'<a class="button" href="/crm/accounts/{esc(account.id)}/compose" '
        'data-testid="compose-message">Compose message</a>'
        f'<a class="button secondary" href="/crm/accounts/{esc(account.id)}/meetings/new" '
        'data-testid="new-meeting">Schedule meeting</a>'
        f'<a class="button secondary" href="/crm/accounts/{esc(account.id)}/notes/new" '
        'data-testid="add-note">Add note</a></div>'
        f"{_sales_links(account)}"
        f'<h2>Notes (<span data-testid="note-count">{len(notes)}</span>)</h2>'
        f'<ul data-testid="note-list">{note_items}</ul>'
        f'<h2>Meetings (<span data-testid="meeting-count">{len(meetings)}</span>)</h2>'
        '<table data-testid="meeting-table"><thead><tr><th>Title</th><th>Date</th><th>Time</th>'
        f"<th>Duration</th><th>Invite</th></tr></thead><tbody>{meeting_rows}</tbody></table>"
        f'<h2>Sent messages (<span data-testid="message-count">{len(messages)}</span>)</h2>'
        '<table data-testid="message-table"><thead><tr><th>Sent</th><th>To</th><th>Subject</th>'
        f"</tr></thead><tbody>{message_rows}</tbody></table>"
        f"{_sales_sections(req, account)}"
    )
    return _page(req, account.name, content, account=account, detail=True)


_SAVED = {
    "stage": "Deal stage saved.",
    "qualification": "Qualification saved.",
    "plan": "Account plan saved.",
}


def _sales_links(account: Account) -> str:
    base = f"/crm/accounts/{esc(account.id)}"
    links = (
        ("record", "Account record", "open-record"),
        ("stage", "Change stage", "change-stage"),
        ("qualification", "Qualification", "edit-qualification"),
        ("plan", "Account plan", "edit-plan"),
        ("quotes/new", "New quote", "new-quote"),
        ("tasks/new", "New internal task", "new-task"),
    )
    return (
        '<div class="actions">'
        + "".join(
            f'<a class="button secondary" href="{base}/{path}" data-testid="{testid}">{text}</a>'
            for path, text, testid in links
        )
        + "</div>"
    )


def _sales_sections(req: Request, account: Account) -> str:
    state = req.app.state
    contacts = "".join(
        f"<tr><td>{esc(c.name)}</td><td>{esc(c.role)}</td><td>{esc(c.email)}</td></tr>"
        for c in state.contacts_for(account.id)
    )
    quotes = "".join(
        f'<tr data-testid="quote-row-{q.id}"><td><a href="/crm/quotes/{q.id}">Q-{q.id}</a></td>'
        f"<td>{q.total}</td><td>{q.valid_until}</td><td>{esc(q.status)}</td></tr>"
        for q in state.quotes_for(account.id)
    )
    tasks = "".join(
        f'<tr data-testid="task-row-{t.id}"><td>{esc(t.title)}</td><td>{esc(t.assignee)}</td>'
        f"<td>{esc(t.kind)}</td></tr>"
        for t in state.tasks_for(account.id)
    )
    return (
        f"<h2>Contacts</h2><table><thead><tr><th>Name</th><th>Role</th><th>Email</th></tr>"
        f"</thead><tbody>{contacts}</tbody></table>"
        "<h2>Quotes</h2><table><thead><tr><th>Quote</th><th>Total</th><th>Valid until</th>"
        f"<th>Status</th></tr></thead><tbody>{quotes}</tbody></table>"
        "<h2>Internal tasks</h2><table><thead><tr><th>Task</th><th>Assigned to</th>"
        f"<th>Kind</th></tr></thead><tbody>{tasks}</tbody></table>"
    )


def _compose_form(
    req: Request, account: Account, values: dict[str, str], errors: dict[str, str]
) -> str:
    template = values.get("template", req.query.get("template", ""))
    to = account.contact_email
    if req.query.get("to") == "c_suite":
        contact = req.app.state.c_level_contact(account.id)
        if contact is None:
            raise NotFound(f"account {account.id!r} has no C-level contact")
        to = contact.email
    label = (
        f'<p>Template: <span data-testid="compose-template">{esc(template)}</span></p>'
        if template
        else ""
    )
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/compose" novalidate '
        f'data-testid="compose-form">{csrf_input(req.session)}'
        f'<input type="hidden" name="template" value="{esc(template)}">{label}'
        + text_field(
            "to",
            "To",
            values.get("to", to),
            "compose-to",
            errors,
            input_type="email",
        )
        + text_field("subject", "Subject", values.get("subject", ""), "compose-subject", errors)
        + textarea_field("body", "Message", values.get("body", ""), "compose-body", errors, rows=8)
        + '<div class="actions"><button type="submit" data-testid="send-message">Send</button>'
        f'<a href="/crm/accounts/{esc(account.id)}" class="button secondary" '
        'data-discard-draft="#body" data-testid="discard-message">Discard</a></div></form>'
    )


def compose(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    return _page(
        req, f"Message to {account.name}", _compose_form(req, account, {}, {}), account=account
    )


def compose_send(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    values = {name: req.field(name) for name in ("to", "subject", "body", "template")}
    try:
        message = req.app.state.send_message(account.id, **values)
    except InvalidArgument as exc:
        content = _compose_form(req, account, values, exc.details.get("fields", {}))
        return _page(req, f"Message to {account.name}", content, account=account, status=400)
    return redirect(f"/crm/outbox?sent={message.id}")


def outbox(req: Request) -> Response:
    state = req.app.state
    with state.lock:
        messages = list(reversed(state.messages))
        names = {a.id: a.name for a in state.accounts.values()}
    banner = ""
    sent_id = req.query.get("sent", "")
    sent = next((m for m in messages if str(m.id) == sent_id), None)
    if sent is not None:
        banner = notice(
            f'Message sent to {esc(sent.to)} (#<span data-testid="message-id">{sent.id}</span>).'
        )
    rows = "".join(
        f'<tr data-testid="outbox-row-{m.id}"><td>{m.sent_at:%Y-%m-%d %H:%M} UTC</td>'
        f'<td><a href="/crm/accounts/{esc(m.account_id)}">'
        f"{esc(names.get(m.account_id, m.account_id))}</a></td>"
        f"<td>{esc(m.to)}</td><td>{esc(m.subject)}</td></tr>"
        for m in messages
    )
    table = (
        '<table data-testid="outbox-table"><thead><tr><th>Sent</th><th>Account</th><th>To</th>'
        f"<th>Subject</th></tr></thead><tbody>{rows}</tbody></table>"
        if messages
        else '<p data-testid="outbox-empty">Nothing sent yet.</p>'
    )
    return _page(req, "Outbox", banner + table, active="outbox")


def _meeting_form(
    req: Request, account: Account, values: dict[str, str], errors: dict[str, str]
) -> str:
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    invite = values.get("send_invite") == "on"
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/meetings/new" novalidate '
        f'data-testid="meeting-form">{csrf_input(req.session)}'
        + text_field("title", "Title", values.get("title", ""), "meeting-title", errors)
        + text_field(
            "date",
            "Date",
            values.get("date", ""),
            "meeting-date",
            errors,
            input_type="date",
            hint=f"For example {tomorrow}.",
        )
        + text_field(
            "time", "Start time", values.get("time", ""), "meeting-time", errors, input_type="time"
        )
        + select_field(
            "duration",
            "Duration",
            DURATION_OPTIONS,
            values.get("duration", "30"),
            "meeting-duration",
            errors,
        )
        + '<div class="field checkbox"><input type="checkbox" id="send_invite" name="send_invite" '
        f'data-testid="meeting-send-invite"{" checked" if invite else ""}> '
        f'<label for="send_invite">Send a calendar invite to {esc(account.contact_email)}</label>'
        "</div>"
        '<div class="actions"><button type="submit" data-testid="save-meeting">Schedule</button>'
        f'<a href="/crm/accounts/{esc(account.id)}" class="button secondary">Cancel</a>'
        "</div></form>"
    )


def meeting_new(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    return _page(req, "Schedule a meeting", _meeting_form(req, account, {}, {}), account=account)


def meeting_create(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    values = {n: req.field(n) for n in ("title", "date", "time", "duration", "send_invite")}
    try:
        meeting = req.app.state.schedule_meeting(
            account.id,
            title=values["title"],
            day=values["date"],
            at=values["time"],
            duration=values["duration"],
            send_invite=values["send_invite"] == "on",
        )
    except InvalidArgument as exc:
        content = _meeting_form(req, account, values, exc.details.get("fields", {}))
        return _page(req, "Schedule a meeting", content, account=account, status=400)
    return redirect(f"/crm/accounts/{account.id}?meeting={meeting.id}")


def _note_form(req: Request, account: Account, text: str, errors: dict[str, str]) -> str:
    return (
        f"{error_summary(errors)}"
        f'<form method="post" action="/crm/accounts/{esc(account.id)}/notes/new" novalidate '
        f'data-testid="note-form">{csrf_input(req.session)}'
        + textarea_field("text", "Note", text, "note-text", errors, rows=6, counter_max=2000)
        + '<div class="actions"><button type="submit" data-testid="save-note">Save note</button>'
        f'<a href="/crm/accounts/{esc(account.id)}" class="button secondary" '
        'data-discard-draft="#text" data-testid="discard-note">Discard</a></div></form>'
    )


def note_new(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    return _page(req, "Add a note", _note_form(req, account, "", {}), account=account)


def note_create(req: Request) -> Response:
    account = req.app.state.account(req.args[0])
    text = req.field("text")
    try:
        note = req.app.state.add_note(account.id, text)
    except InvalidArgument as exc:
        content = _note_form(req, account, text, exc.details.get("fields", {}))
        return _page(req, "Add a note", content, account=account, status=400)
    return redirect(f"/crm/accounts/{account.id}?note={note.id}")


def register(router: Router) -> None:
    """Add the CRM routes."""
    router.add("GET", "/crm/accounts", accounts)
    router.add("GET", _ACCOUNT, account_detail)
    router.add("GET", _ACCOUNT + "/compose", compose)
    router.add("POST", _ACCOUNT + "/compose", compose_send)
    router.add("GET", "/crm/outbox", outbox)
    router.add("GET", _ACCOUNT + "/meetings/new", meeting_new)
    router.add("POST", _ACCOUNT + "/meetings/new", meeting_create)
    router.add("GET", _ACCOUNT + "/notes/new", note_new)
    router.add("POST", _ACCOUNT + "/notes/new", note_create)
