"""The demo CRM's sales records: contacts, quotes, tasks, qualification, plans, minutes.

:class:`DealRecords` is mixed into :class:`~agentd.demosite.state.SiteState`:
its methods share the state's lock, id counter and accounts. What reaches the
customer goes to the outbox (``messages``); what stays inside (tasks, the
manager's notifications) never does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from agentd.errors import InvalidArgument, InvalidState, NotFound

if TYPE_CHECKING:
    from agentd.demosite.state import Account, Meeting, Message, Note

STAGES = (
    "prospect",
    "qualification",
    "discovery",
    "evaluation",
    "negotiation",
    "closed_won",
    "closed_lost",
)
C_LEVEL_ROLES = ("CEO", "CFO", "COO", "CTO", "CMO", "CIO", "CRO")
QUALIFICATION_FIELDS = ("budget", "authority", "need", "timeline")
QUOTE_LINES = 3
VALIDITY_DAYS = (7, 14, 30, 60, 90)
PLAN_MAX = 4000
QUALIFICATION_MAX = 300


@dataclass(frozen=True)
class Contact:
    id: int
    account_id: str
    name: str
    email: str
    role: str

    @property
    def c_level(self) -> bool:
        return self.role.upper() in C_LEVEL_ROLES


@dataclass(frozen=True)
class QuoteLine:
    description: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Quote:
    id: int
    account_id: str
    lines: tuple[QuoteLine, ...]
    valid_until: date
    sent_to: str
    status: str  # sent | withdrawn
    created_at: datetime

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


@dataclass(frozen=True)
class Task:
    """An internal task: assigned to someone in the company, never sent to the customer."""

    id: int
    account_id: str
    assignee: str
    title: str
    details: str
    kind: str
    created_at: datetime


@dataclass(frozen=True)
class InternalNotification:
    """What the CRM tells a colleague (a task assigned to them)."""

    id: int
    to: str
    subject: str
    body: str
    sent_at: datetime


def _invalid(fields: dict[str, str]) -> InvalidArgument:
    summary = "; ".join(f"{name}: {msg}" for name, msg in fields.items())
    return InvalidArgument(f"invalid form input ({summary})", details={"fields": fields})


def _money(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        return None
    exponent = value.as_tuple().exponent
    if not value.is_finite() or value < 0 or value > 10_000_000:
        return None
    if isinstance(exponent, int) and exponent < -2:
        return None
    return value.quantize(Decimal("0.01"))


class DealRecords:
    """Sales records of the demo CRM (mixed into the site's state)."""

    lock: threading.RLock
    accounts: dict[str, Account]
    messages: list[Message]
    meetings: list[Meeting]
    notes: list[Note]

    def _init_deals(self) -> None:
        self.contacts: list[Contact] = []
        self.quotes: list[Quote] = []
        self.tasks: list[Task] = []
        self.internal_notifications: list[InternalNotification] = []

    if TYPE_CHECKING:
        # Provided by SiteState.
        def _new_id(self) -> int: ...
        def account(self, account_id: str) -> Account: ...
        def send_message(
            self,
            account_id: str,
            *,
            to: str,
            subject: str,
            body: str,
            template: str = "",
            attachment: str = "",
        ) -> Message: ...

    def _replace_account(self, account: Account) -> Account:
        with self.lock:
            self.accounts[account.id] = account
        return account

    # -- contacts ---------------------------------------------------------------------

    def add_contact(self, account_id: str, name: str, email: str, role: str) -> Contact:
        """Add a contact with a role (CEO, CFO, Buyer, …) to an account."""
        self.account(account_id)
        contact = Contact(self._new_id(), account_id, name.strip(), email.strip(), role.strip())
        with self.lock:
            self.contacts.append(contact)
        return contact

    def contacts_for(self, account_id: str) -> list[Contact]:
        with self.lock:
            return [c for c in self.contacts if c.account_id == account_id]

    def c_level_contact(self, account_id: str) -> Contact | None:
        """Return the account's first C-level contact, or None."""
        return next((c for c in self.contacts_for(account_id) if c.c_level), None)

    # -- stage, qualification, plan ---------------------------------------------------------

    def set_stage(self, account_id: str, stage: str) -> Account:
        """Move an account's deal to ``stage``.

        :raises InvalidArgument: unknown stage.
        """
        account = self.account(account_id)
        if stage not in STAGES:
            raise _invalid({"stage": "Choose one of the listed stages."})
        return self._replace_account(replace(account, stage=stage))

    def set_qualification(self, account_id: str, values: dict[str, str]) -> Account:
        """Record budget, authority, need and timeline (empty clears a field)."""
        account = self.account(account_id)
        clean = {f: values.get(f, "").strip() for f in QUALIFICATION_FIELDS}
        errors = {
            f: f"At most {QUALIFICATION_MAX} characters."
            for f, v in clean.items()
            if len(v) > QUALIFICATION_MAX
        }
        if errors:
            raise _invalid(errors)
        return self._replace_account(replace(account, **clean))

    def set_plan(self, account_id: str, text: str) -> Account:
        """Replace the account plan."""
        account = self.account(account_id)
        text = text.strip()
        if len(text) > PLAN_MAX:
            raise _invalid({"plan": f"The plan must be at most {PLAN_MAX} characters."})
        return self._replace_account(replace(account, plan=text))

    # -- quotes -------------------------------------------------------------------------

    def create_quote(
        self,
        account_id: str,
        lines: list[tuple[str, str, str]],
        valid_days: str,
        *,
        today: date | None = None,
    ) -> Quote:
        """Create a quote from up to three (description, quantity, unit price) rows and send it.

        Empty rows are ignored; the quote goes to the account's contact, whose
        outbox gets the message.

        :raises InvalidArgument: no line, a bad row or validity (``details["fields"]``).
        """
        account = self.account(account_id)
        errors: dict[str, str] = {}
        parsed: list[QuoteLine] = []
        for n, (description, quantity, price) in enumerate(lines, start=1):
            description, quantity, price = description.strip(), quantity.strip(), price.strip()
            if not (description or quantity or price):
                continue
            if not description or len(description) > 200:
                errors[f"description_{n}"] = "Describe the line (at most 200 characters)."
            if not quantity.isdigit() or not 1 <= int(quantity) <= 10_000:
                errors[f"quantity_{n}"] = "Quantity must be a whole number from 1 to 10000."
            amount = _money(price)
            if amount is None:
                errors[f"price_{n}"] = "Unit price must be a number with at most 2 decimals."
            if f"description_{n}" not in errors and f"quantity_{n}" not in errors and amount:
                parsed.append(QuoteLine(description, int(quantity), amount))
        if not parsed and not errors:
            errors["description_1"] = "A quote needs at least one line."
        if not valid_days.isdigit() or int(valid_days) not in VALIDITY_DAYS:
            errors["valid_days"] = "Choose one of the listed validity periods."
        if errors:
            raise _invalid(errors)
        start = today or datetime.now(UTC).date()
        quote = Quote(
            self._new_id(),
            account_id,
            tuple(parsed),
            start + timedelta(days=int(valid_days)),
            account.contact_email,
            "sent",
            datetime.now(UTC),
        )
        with self.lock:
            self.quotes.append(quote)
        body = "\n".join(
            [f"Please find our quote Q-{quote.id} below.", ""]
            + [
                f"- {ln.description}: {ln.quantity} x {ln.unit_price} = {ln.amount}"
                for ln in parsed
            ]
            + ["", f"Total: {quote.total}", f"Valid until {quote.valid_until.isoformat()}."]
        )
        self.send_message(
            account_id,
            to=account.contact_email,
            subject=f"Quote Q-{quote.id}",
            body=body,
            template="quote",
        )
        return quote

    def quote(self, quote_id: int) -> Quote:
        with self.lock:
            found = next((q for q in self.quotes if q.id == quote_id), None)
        if found is None:
            raise NotFound(f"no quote with id {quote_id}")
        return found

    def withdraw_quote(self, quote_id: int) -> Quote:
        """Withdraw a sent quote.

        :raises NotFound: no such quote.
        :raises InvalidState: already withdrawn.
        """
        quote = self.quote(quote_id)
        if quote.status != "sent":
            raise InvalidState(f"quote Q-{quote_id} is already {quote.status}")
        withdrawn = replace(quote, status="withdrawn")
        with self.lock:
            self.quotes = [withdrawn if q.id == quote_id else q for q in self.quotes]
        return withdrawn

    def quotes_for(self, account_id: str) -> list[Quote]:
        with self.lock:
            return [q for q in self.quotes if q.account_id == account_id]

    # -- internal tasks -----------------------------------------------------------------

    def create_task(self, account_id: str, *, title: str, details: str, kind: str) -> Task:
        """Assign an internal task to the account's manager and notify them (never the customer).

        :raises InvalidArgument: empty or overlong title or details.
        """
        account = self.account(account_id)
        title, details = title.strip(), details.strip()
        errors: dict[str, str] = {}
        if not title or len(title) > 200:
            errors["title"] = "Give the task a title (at most 200 characters)."
        if not details or len(details) > 4000:
            errors["details"] = "Say what is needed (at most 4000 characters)."
        if errors:
            raise _invalid(errors)
        task = Task(
            self._new_id(), account_id, account.manager, title, details, kind, datetime.now(UTC)
        )
        note = InternalNotification(
            self._new_id(),
            account.manager,
            f"New task for you: {title}",
            f"{account.name}: {details}",
            task.created_at,
        )
        with self.lock:
            self.tasks.append(task)
            self.internal_notifications.append(note)
        return task

    def tasks_for(self, account_id: str) -> list[Task]:
        with self.lock:
            return [t for t in self.tasks if t.account_id == account_id]

    # -- notes and meetings taken back ---------------------------------------------------------

    def delete_note(self, account_id: str, note_id: int) -> Note:
        """Delete one of an account's notes.

        :raises NotFound: no such note on the account.
        """
        with self.lock:
            found = next(
                (n for n in self.notes if n.id == note_id and n.account_id == account_id), None
            )
            if found is None:
                raise NotFound(f"no note {note_id} on account {account_id!r}")
            self.notes.remove(found)
        return found

    def cancel_meeting(self, account_id: str, meeting_id: int) -> Meeting:
        """Cancel a scheduled meeting.

        :raises NotFound: no such scheduled meeting on the account.
        """
        with self.lock:
            found = next(
                (
                    m
                    for m in self.meetings
                    if m.id == meeting_id and m.account_id == account_id and not m.cancelled
                ),
                None,
            )
            if found is None:
                raise NotFound(f"no scheduled meeting {meeting_id} on account {account_id!r}")
            cancelled = replace(found, cancelled=True)
            self.meetings = [cancelled if m.id == meeting_id else m for m in self.meetings]
        return cancelled

    def record_minutes(self, account_id: str, meeting_id: int, minutes: str) -> Meeting:
        """Record the minutes of a meeting.

        :raises NotFound: no such meeting on the account.
        :raises InvalidArgument: empty minutes.
        """
        if not minutes.strip():
            raise _invalid({"minutes": "Write the minutes."})
        with self.lock:
            found = next(
                (m for m in self.meetings if m.id == meeting_id and m.account_id == account_id),
                None,
            )
            if found is None:
                raise NotFound(f"no meeting {meeting_id} on account {account_id!r}")
            updated = replace(found, minutes=minutes.strip())
            self.meetings = [updated if m.id == meeting_id else m for m in self.meetings]
        return updated

    def latest_minutes(self, account_id: str) -> Meeting | None:
        """Return the account's most recent meeting with minutes, or None."""
        with self.lock:
            recorded = [m for m in self.meetings if m.account_id == account_id and m.minutes]
        return max(recorded, key=lambda m: (m.date, m.time, m.id), default=None)
