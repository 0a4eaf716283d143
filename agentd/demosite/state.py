"""The demo back-office's data: records, validation and the shared state object.

Everything the pages change goes through :class:`SiteState`, under one lock,
so tests (and the daemon's benchmarks) can read exactly what a person would
see. Validation failures raise :class:`~agentd.errors.InvalidArgument` whose
``details["fields"]`` maps form field names to messages shown inline.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from agentd.demosite.deals import DealRecords
from agentd.errors import InvalidArgument, NotFound

ACCOUNT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TITLE_MAX = 120
SEO_TITLE_MAX = 70
META_DESCRIPTION_MAX = 160
MEETING_DURATIONS = (15, 30, 45, 60, 90)


class Permission(StrEnum):
    """What a REST API key may do."""

    READ = "read"
    WRITE = "write"
    READ_WRITE = "read_write"


@dataclass(frozen=True)
class Product:
    id: int
    title: str
    seo_title: str
    meta_description: str
    price: Decimal


@dataclass(frozen=True)
class ApiKey:
    """A REST API key; only digests of the key and secret are kept, as a real store does."""

    id: int
    description: str
    permissions: Permission
    key_ending: str
    consumer_key_sha256: str
    consumer_secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    contact_name: str
    contact_email: str
    stage: str = "discovery"
    manager: str = "dana.whitfield@brightside.example"
    plan: str = ""
    budget: str = ""
    authority: str = ""
    need: str = ""
    timeline: str = ""


@dataclass(frozen=True)
class Message:
    id: int
    account_id: str
    to: str
    subject: str
    body: str
    sent_at: datetime
    template: str = ""
    attachment: str = ""  # the text of an attached document (meeting minutes)


@dataclass(frozen=True)
class Meeting:
    id: int
    account_id: str
    title: str
    date: date
    time: time
    duration_min: int
    send_invite: bool
    created_at: datetime
    cancelled: bool = False
    minutes: str = ""


@dataclass(frozen=True)
class Note:
    id: int
    account_id: str
    text: str
    created_at: datetime


def sha256_hex(text: str) -> str:
    """Return the hex SHA-256 digest of a string."""
    return hashlib.sha256(text.encode()).hexdigest()


def _invalid(fields: dict[str, str]) -> InvalidArgument:
    summary = "; ".join(f"{name}: {msg}" for name, msg in fields.items())
    return InvalidArgument(f"invalid form input ({summary})", details={"fields": fields})


def _parse_price(raw: str) -> Decimal | None:
    try:
        price = Decimal(raw.strip())
    except InvalidOperation:
        return None
    exponent = price.as_tuple().exponent
    if not price.is_finite() or price < 0 or price > 1_000_000:
        return None
    if isinstance(exponent, int) and exponent < -2:
        return None
    return price.quantize(Decimal("0.01"))


class SiteState(DealRecords):
    """Everything the demo back-office knows; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.products: dict[int, Product] = {}
        self.api_keys: dict[int, ApiKey] = {}
        self.accounts: dict[str, Account] = {}
        self.messages: list[Message] = []
        self.meetings: list[Meeting] = []
        self.notes: list[Note] = []
        self._init_deals()
        self._next_id = 1

    def _new_id(self) -> int:
        with self.lock:
            value = self._next_id
            self._next_id += 1
            return value

    # -- store admin ---------------------------------------------------------------

    def product(self, product_id: int) -> Product:
        """Return one product.

        :raises NotFound: no such product.
        """
        with self.lock:
            found = self.products.get(product_id)
        if found is None:
            raise NotFound(f"no product with id {product_id}")
        return found

    def add_product(self, product: Product) -> Product:
        """Add or replace a product (seed data and tests)."""
        with self.lock:
            self.products[product.id] = product
        return product

    def update_product(
        self, product_id: int, *, title: str, seo_title: str, meta_description: str, price: str
    ) -> Product:
        """Validate and save a product's editable fields.

        :raises NotFound: no such product.
        :raises InvalidArgument: a field is invalid (``details["fields"]``).
        """
        current = self.product(product_id)
        title, seo_title, meta_description = (
            title.strip(),
            seo_title.strip(),
            meta_description.strip(),
        )
        errors: dict[str, str] = {}
        if not title:
            errors["title"] = "Title is required."
        elif len(title) > TITLE_MAX:
            errors["title"] = f"Title must be at most {TITLE_MAX} characters."
        if len(seo_title) > SEO_TITLE_MAX:
            errors["seo_title"] = f"SEO title must be at most {SEO_TITLE_MAX} characters."
        if len(meta_description) > META_DESCRIPTION_MAX:
            errors["meta_description"] = (
                f"Meta description must be at most {META_DESCRIPTION_MAX} characters"
                f" (it has {len(meta_description)})."
            )
        parsed = _parse_price(price)
        if parsed is None:
            errors["price"] = (
                "Price must be a number between 0 and 1000000 with at most 2 decimals."
            )
        if errors:
            raise _invalid(errors)
        assert parsed is not None
        updated = replace(
            current,
            title=title,
            seo_title=seo_title,
            meta_description=meta_description,
            price=parsed,
        )
        with self.lock:
            self.products[product_id] = updated
        return updated

    def create_api_key(self, description: str, permissions: str) -> tuple[ApiKey, str, str]:
        """Create a REST API key; return it with the consumer key and secret (shown once).

        :raises InvalidArgument: empty description or unknown permissions.
        """
        description = description.strip()
        errors: dict[str, str] = {}
        if not description:
            errors["description"] = "Description is required."
        elif len(description) > 200:
            errors["description"] = "Description must be at most 200 characters."
        if permissions not in {p.value for p in Permission}:
            errors["permissions"] = "Choose read, write or read/write."
        if errors:
            raise _invalid(errors)
        consumer_key = "ck_" + secrets.token_hex(20)
        consumer_secret = "cs_" + secrets.token_hex(20)
        key = ApiKey(
            id=self._new_id(),
            description=description,
            permissions=Permission(permissions),
            key_ending=consumer_key[-7:],
            consumer_key_sha256=sha256_hex(consumer_key),
            consumer_secret_sha256=sha256_hex(consumer_secret),
            created_at=datetime.now(UTC),
        )
        with self.lock:
            self.api_keys[key.id] = key
        return key, consumer_key, consumer_secret

    def revoke_api_key(self, key_id: int) -> ApiKey:
        """Revoke an active API key.

        :raises NotFound: no such key, or already revoked.
        """
        with self.lock:
            key = self.api_keys.get(key_id)
            if key is None or not key.active:
                raise NotFound(f"no active API key with id {key_id}")
            revoked = replace(key, revoked_at=datetime.now(UTC))
            self.api_keys[key_id] = revoked
        return revoked

    def active_api_keys(self) -> list[ApiKey]:
        """Return the keys not revoked, oldest first."""
        with self.lock:
            return [k for k in self.api_keys.values() if k.active]

    # -- CRM -------------------------------------------------------------------------

    def account(self, account_id: str) -> Account:
        """Return one account.

        :raises NotFound: no such account.
        """
        with self.lock:
            found = self.accounts.get(account_id)
        if found is None:
            raise NotFound(f"no account with id {account_id!r}")
        return found

    def add_account(
        self, account_id: str, name: str, *, contact_email: str | None = None, stage: str = ""
    ) -> Account:
        """Register an account (idempotent: an existing id keeps its activity, takes the name).

        :raises InvalidArgument: the id is not a simple slug or the name is empty.
        """
        if not ACCOUNT_ID_RE.match(account_id):
            raise InvalidArgument(
                f"account id {account_id!r} must be lowercase letters, digits, '-' or '_'"
            )
        if not name.strip():
            raise InvalidArgument(f"account {account_id!r} needs a name")
        email = contact_email or f"contact@{account_id.replace('_', '-')}.example"
        account = Account(
            id=account_id,
            name=name.strip(),
            contact_name=f"{name.strip()} buying team",
            contact_email=email,
            stage=stage or "discovery",
        )
        with self.lock:
            self.accounts[account_id] = account
        return account

    def send_message(
        self,
        account_id: str,
        *,
        to: str,
        subject: str,
        body: str,
        template: str = "",
        attachment: str = "",
    ) -> Message:
        """Send a message to an account's contact; it lands in the outbox.

        :raises NotFound: no such account.
        :raises InvalidArgument: a field is invalid.
        """
        self.account(account_id)
        to, subject, body = to.strip(), subject.strip(), body.strip()
        errors: dict[str, str] = {}
        if not _EMAIL_RE.match(to):
            errors["to"] = "Enter a valid email address."
        if not subject:
            errors["subject"] = "Subject is required."
        elif len(subject) > 200:
            errors["subject"] = "Subject must be at most 200 characters."
        if not body:
            errors["body"] = "Message body is required."
        elif len(body) > 5000:
            errors["body"] = "Message body must be at most 5000 characters."
        if errors:
            raise _invalid(errors)
        message = Message(
            self._new_id(),
            account_id,
            to,
            subject,
            body,
            datetime.now(UTC),
            template.strip(),
            attachment,
        )
        with self.lock:
            self.messages.append(message)
        return message

    def schedule_meeting(
        self,
        account_id: str,
        *,
        title: str,
        day: str,
        at: str,
        duration: str,
        send_invite: bool,
        today: date | None = None,
    ) -> Meeting:
        """Validate and schedule a meeting with an account.

        :raises NotFound: no such account.
        :raises InvalidArgument: a field is invalid (bad or past date, unknown duration).
        """
        self.account(account_id)
        title = title.strip()
        errors: dict[str, str] = {}
        if not title:
            errors["title"] = "Title is required."
        parsed_day: date | None = None
        try:
            parsed_day = date.fromisoformat(day.strip())
        except ValueError:
            errors["date"] = "Enter a real date as YYYY-MM-DD."
        if parsed_day is not None and parsed_day < (today or datetime.now(UTC).date()):
            errors["date"] = "Meetings cannot be scheduled in the past."
        parsed_at: time | None = None
        try:
            parsed_at = time.fromisoformat(at.strip())
        except ValueError:
            errors["time"] = "Enter a time as HH:MM."
        if not duration.isdigit() or int(duration) not in MEETING_DURATIONS:
            errors["duration"] = "Choose one of the listed durations."
        if errors:
            raise _invalid(errors)
        assert parsed_day is not None and parsed_at is not None
        meeting = Meeting(
            self._new_id(),
            account_id,
            title,
            parsed_day,
            parsed_at.replace(second=0, microsecond=0),
            int(duration),
            send_invite,
            datetime.now(UTC),
        )
        with self.lock:
            self.meetings.append(meeting)
        return meeting

    def add_note(self, account_id: str, text: str) -> Note:
        """Add a note to an account.

        :raises NotFound: no such account.
        :raises InvalidArgument: empty or overlong note.
        """
        self.account(account_id)
        text = text.strip()
        if not text:
            raise _invalid({"text": "Note text is required."})
        if len(text) > 2000:
            raise _invalid({"text": "Note must be at most 2000 characters."})
        note = Note(self._new_id(), account_id, text, datetime.now(UTC))
        with self.lock:
            self.notes.append(note)
        return note

    def notes_for(self, account_id: str) -> list[Note]:
        with self.lock:
            return [n for n in self.notes if n.account_id == account_id]

    def meetings_for(self, account_id: str) -> list[Meeting]:
        """Return the account's scheduled meetings (cancelled ones left out)."""
        with self.lock:
            return [m for m in self.meetings if m.account_id == account_id and not m.cancelled]

    def messages_for(self, account_id: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.account_id == account_id]
