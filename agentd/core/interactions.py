"""Interaction records: parse CSV and JSONL exports into validated values.

An interaction is one thing that happened with an account: an email, a
meeting, a page visit... Exports arrive as CSV (header row first) or JSONL
(one JSON object per line). Reading is streaming: the ``iter_*`` generators
take any iterable of text lines (an open file works) and yield one record at a
time, so a large export is never held whole.

Errors name the file (when the caller gives ``source``), the line and the
field, in the message and in ``details``, so an operator can fix the export.
Whether the account exists is the store's business: the caller checks it with
:func:`require_known_account` against whatever it knows.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any

from agentd.errors import InvalidArgument

#: Columns every record must have; ``sentiment`` and ``summary`` are optional.
REQUIRED_FIELDS: tuple[str, ...] = ("id", "account", "kind", "direction", "at")
OPTIONAL_FIELDS: tuple[str, ...] = ("sentiment", "summary")

#: Clocks disagree a little; an ``at`` up to this far ahead of ``now`` is accepted.
DEFAULT_FUTURE_SKEW = timedelta(minutes=5)


class InteractionKind(StrEnum):
    """What kind of contact an interaction was."""

    EMAIL = "email"
    MEETING = "meeting"
    CHAT = "chat"
    PAGE_VISIT = "page_visit"
    PRICING_PAGE_VISIT = "pricing_page_visit"
    SUPPORT_TICKET = "support_ticket"


class Direction(StrEnum):
    """Who initiated the interaction: the customer (``in``) or the tenant (``out``)."""

    IN = "in"
    OUT = "out"


class KindCode(IntEnum):
    """Small integer codes for :class:`InteractionKind` in the compact scan form."""

    EMAIL = 0
    MEETING = 1
    CHAT = 2
    PAGE_VISIT = 3
    PRICING_PAGE_VISIT = 4
    SUPPORT_TICKET = 5


#: Kind name (as stored) to its compact code, for building scan input from rows.
KIND_CODE: Mapping[str, int] = {kind.value: int(KindCode[kind.name]) for kind in InteractionKind}

#: ``(id, kind_code, is_inbound, at_epoch_seconds, sentiment)``, the pattern scan's input.
CompactInteraction = tuple[str, int, bool, float, float | None]


@dataclass(frozen=True, slots=True)
class Interaction:
    """One validated interaction; ``at`` is timezone-aware and in UTC."""

    id: str
    account: str
    kind: InteractionKind
    direction: Direction
    at: datetime
    sentiment: float | None = None
    summary: str | None = None

    @property
    def inbound(self) -> bool:
        """Return whether the customer initiated it."""
        return self.direction is Direction.IN

    def compact(self) -> CompactInteraction:
        """Return the compact tuple the pattern scan consumes."""
        return (self.id, KIND_CODE[self.kind], self.inbound, self.at.timestamp(), self.sentiment)


def _fail(message: str, *, line: int, field: str, source: str | None) -> InvalidArgument:
    where = f"{source}:{line}" if source else f"line {line}"
    details: dict[str, Any] = {"line": line, "field": field}
    if source:
        details["file"] = source
    return InvalidArgument(f"{where}: {field}: {message}", details=details)


def _text(record: Mapping[str, Any], field: str, *, line: int, source: str | None) -> str:
    value = record.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _fail("missing value", line=line, field=field, source=source)
    # JSON exports sometimes carry numeric ids; a bool is never an id.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _fail(
            f"expected text, got {type(value).__name__}", line=line, field=field, source=source
        )
    return value.strip()


def _timestamp(
    record: Mapping[str, Any],
    *,
    now: datetime,
    skew: timedelta,
    line: int,
    source: str | None,
) -> datetime:
    raw = _text(record, "at", line=line, source=source)
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise _fail(
            f"not an ISO 8601 date-time: {raw!r}", line=line, field="at", source=source
        ) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise _fail(
            f"no UTC offset in {raw!r} (write e.g. 2024-05-01T09:30:00+00:00)",
            line=line,
            field="at",
            source=source,
        )
    at = at.astimezone(UTC)
    if at > now + skew:
        raise _fail(
            f"{raw!r} is in the future (now is {now.astimezone(UTC).isoformat()})",
            line=line,
            field="at",
            source=source,
        )
    return at


def _sentiment(record: Mapping[str, Any], *, line: int, source: str | None) -> float | None:
    raw = record.get("sentiment")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _fail("not a number", line=line, field="sentiment", source=source)
    try:
        value = float(raw)
    except ValueError:
        raise _fail(f"not a number: {raw!r}", line=line, field="sentiment", source=source) from None
    if math.isnan(value) or not -1.0 <= value <= 1.0:
        raise _fail(f"{raw!r} is outside -1..1", line=line, field="sentiment", source=source)
    return value


def parse_interaction(
    record: Mapping[str, Any],
    *,
    now: datetime,
    line: int,
    source: str | None = None,
    max_future_skew: timedelta = DEFAULT_FUTURE_SKEW,
) -> Interaction:
    """Validate one raw record (a CSV row or a JSON object) into an :class:`Interaction`.

    :param now: the current time (aware); ``at`` may not be later than ``now + max_future_skew``.
    :param line: the record's line number in its file, for error messages.
    :param source: the file name, for error messages.
    :raises InvalidArgument: a field is missing, unparsable or out of range;
        ``details`` holds ``line``, ``field`` and, when given, ``file``.
    """
    if now.tzinfo is None:
        raise InvalidArgument("now must be timezone-aware", details={"field": "now"})
    ident = _text(record, "id", line=line, source=source)
    account = _text(record, "account", line=line, source=source)
    kind_raw = _text(record, "kind", line=line, source=source)
    try:
        kind = InteractionKind(kind_raw)
    except ValueError:
        allowed = ", ".join(k.value for k in InteractionKind)
        raise _fail(
            f"unknown kind {kind_raw!r} (one of {allowed})", line=line, field="kind", source=source
        ) from None
    direction_raw = _text(record, "direction", line=line, source=source)
    try:
        direction = Direction(direction_raw)
    except ValueError:
        raise _fail(
            f"unknown direction {direction_raw!r} (in or out)",
            line=line,
            field="direction",
            source=source,
        ) from None
    at = _timestamp(record, now=now, skew=max_future_skew, line=line, source=source)
    sentiment = _sentiment(record, line=line, source=source)
    summary_raw = record.get("summary")
    if summary_raw is not None and not isinstance(summary_raw, str):
        raise _fail("expected text", line=line, field="summary", source=source)
    summary = summary_raw.strip() if summary_raw and summary_raw.strip() else None
    return Interaction(ident, account, kind, direction, at, sentiment, summary)


def require_known_account(
    interaction: Interaction,
    known_accounts: Container[str],
    *,
    line: int,
    source: str | None = None,
) -> None:
    """Check that the interaction's account is one the caller knows.

    :raises InvalidArgument: the account is unknown (``details["field"] == "account"``).
    """
    if interaction.account not in known_accounts:
        raise _fail(
            f"unknown account {interaction.account!r}", line=line, field="account", source=source
        )


def iter_csv_records(
    lines: Iterable[str], *, source: str | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` for each data row of a CSV export.

    The first row is the header; columns are matched by name, extra columns
    are ignored. Blank lines are skipped; an empty file yields nothing.

    :raises InvalidArgument: a required column is missing from the header
        (reported at line 1), or a row has more values than the header.
    """
    reader = csv.reader(iter(lines))
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1  # a quoted field may span lines: report where the row begins
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _fail(f"malformed CSV ({exc})", line=start, field="csv", source=source) from None
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lstrip("\ufeff") for cell in row]
            for field in REQUIRED_FIELDS:
                if field not in header:
                    raise _fail("missing column in header", line=start, field=field, source=source)
            continue
        if len(row) > len(header):
            raise _fail(
                f"{len(row)} values for {len(header)} columns",
                line=start,
                field="csv",
                source=source,
            )
        # Short rows leave trailing columns absent; parse_interaction names the missing one.
        yield start, dict(zip(header, row, strict=False))


def iter_jsonl_records(
    lines: Iterable[str], *, source: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL export.

    :raises InvalidArgument: a line is not JSON, or is JSON but not an object.
    """
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(
                f"not valid JSON ({exc.msg} at column {exc.colno})",
                line=number,
                field="json",
                source=source,
            ) from None
        if not isinstance(value, dict):
            raise _fail(
                f"expected a JSON object, got {type(value).__name__}",
                line=number,
                field="json",
                source=source,
            )
        yield number, value
