"""Account imports (CSV with a header, or JSONL) and account changes.

A file is read as a stream and checked whole before anything is written:
either every row is imported in one transaction, or none is and the errors
name their lines. ``skip_bad`` imports the good rows and reports the others.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.gate import TrustedMode
from agentd.core.guardrails import STAGES
from agentd.core.intents import IDENTIFIER_RE
from agentd.core.timefmt import iso
from agentd.errors import InvalidArgument, NotFound
from agentd.store.base import Store
from agentd.store.records import AccountRow

DOMAINS = ("SEO", "CONTENT", "ADS", "CRO", "SALES")
REQUIRED = ("id", "tenant", "name", "stage")
OPTIONAL = ("trusted_mode", "domains", "allowed_hosts")
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?$"
)
MAX_REPORTED = 50


@dataclass
class ImportReport:
    """What an import did (or would have done)."""

    source: str
    imported: int = 0
    created: int = 0
    updated: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        return {
            "source": self.source,
            "imported": self.imported,
            "created": self.created,
            "updated": self.updated,
            "skipped": len(self.skipped),
            "skipped_rows": self.skipped[:MAX_REPORTED],
        }


def _listing(value: Any, field_name: str, line: int, *, upper: bool = False) -> list[str]:
    if value is None or value == "":
        return []
    items = [v.strip() for v in value.split(";")] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise _bad(line, field_name, "must be a list of strings (';'-separated in CSV)")
    out = [v.upper() if upper else v.lower() for v in items if v]
    return sorted(dict.fromkeys(out))


def _bad(line: int, field_name: str, message: str) -> InvalidArgument:
    return InvalidArgument(
        f"line {line}: {field_name}: {message}", details={"line": line, "field": field_name}
    )


def validate_account(record: dict[str, Any], line: int) -> dict[str, Any]:
    """Check one account record and return it normalised.

    :raises InvalidArgument: naming the line and the field.
    """
    unknown = set(record) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise _bad(line, sorted(unknown)[0], "unknown field")
    for name in REQUIRED:
        if record.get(name) in (None, ""):
            raise _bad(line, name, "missing")
    out: dict[str, Any] = {}
    for name in ("id", "tenant"):
        value = record[name]
        if not isinstance(value, str) or not IDENTIFIER_RE.fullmatch(value):
            raise _bad(line, name, f"{value!r} is not a valid id (a-z, 0-9, _ . : -; up to 64)")
        out[name] = value
    name = record["name"]
    if not isinstance(name, str) or len(name.strip()) == 0 or len(name) > 200:
        raise _bad(line, "name", "must be text of 1 to 200 characters")
    out["name"] = name.strip()
    stage = record["stage"]
    if stage not in STAGES:
        raise _bad(line, "stage", f"{stage!r} is not one of {', '.join(STAGES)}")
    out["stage"] = stage
    trust = record.get("trusted_mode") or "NONE"
    if trust not in {m.value for m in TrustedMode}:
        raise _bad(line, "trusted_mode", f"{trust!r} is not one of NONE, ACTIVE, PAUSED, REVOKED")
    out["trusted_mode"] = trust
    domains = _listing(record.get("domains"), "domains", line, upper=True)
    for d in domains:
        if d not in DOMAINS:
            raise _bad(line, "domains", f"{d!r} is not one of {', '.join(DOMAINS)}")
    out["domains"] = domains
    hosts = _listing(record.get("allowed_hosts"), "allowed_hosts", line)
    for h in hosts:
        if not _HOST_RE.fullmatch(h):
            raise _bad(line, "allowed_hosts", f"{h!r} is not a host name")
    out["allowed_hosts"] = hosts
    return out


async def _records(lines: AsyncIterator[bytes], fmt: str) -> AsyncIterator[tuple[int, Any]]:
    """Yield (line number, record or error) from a CSV or JSONL stream."""
    number = 0
    header: list[str] | None = None
    async for raw in lines:
        number += 1
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r")
        except UnicodeDecodeError:
            yield number, _bad(number, "line", "not UTF-8 text")
            continue
        if not text.strip():
            continue
        if fmt == "jsonl":
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, _bad(number, "line", f"not JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                yield number, _bad(number, "line", "must be a JSON object")
                continue
            yield number, obj
            continue
        row = next(csv.reader(io.StringIO(text)))
        if header is None:
            header = [h.strip() for h in row]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise _bad(
                    number,
                    missing[0],
                    f"column missing from the header (need {', '.join(REQUIRED)})",
                )
            continue
        if len(row) != len(header):
            yield (
                number,
                _bad(number, "line", f"has {len(row)} fields, the header has {len(header)}"),
            )
            continue
        yield (
            number,
            {
                k: v.strip()
                for k, v in zip(header, row, strict=True)
                if v.strip() != "" or k in REQUIRED
            },
        )


def detect_format(name: str, fmt: str | None) -> str:
    """Return "csv" or "jsonl" from an explicit format or the file name.

    :raises InvalidArgument: neither says.
    """
    if fmt:
        if fmt not in ("csv", "jsonl"):
            raise InvalidArgument(
                f"format must be csv or jsonl, not {fmt!r}", details={"field": "format"}
            )
        return fmt
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise InvalidArgument(
        f"cannot tell the format of {name!r}; use --format csv|jsonl", details={"field": "format"}
    )


async def import_accounts(
    store: Store,
    lines: AsyncIterator[bytes],
    *,
    source: str,
    fmt: str,
    skip_bad: bool,
    actor: str,
) -> ImportReport:
    """Import accounts all-or-nothing (or skipping bad rows when asked).

    :raises InvalidArgument: a bad row and ``skip_bad`` is off (nothing written), or an empty file.
    """
    report = ImportReport(source=source)
    rows: dict[str, dict[str, Any]] = {}
    errors: list[InvalidArgument] = []
    async for line, rec in _records(lines, fmt):
        try:
            if isinstance(rec, InvalidArgument):
                raise rec
            row = validate_account(rec, line)
            if row["id"] in rows:
                raise _bad(line, "id", f"{row['id']!r} appears twice in this file")
            rows[row["id"]] = row
        except InvalidArgument as exc:
            errors.append(exc)
            report.skipped.append(
                {
                    "line": exc.details.get("line"),
                    "field": exc.details.get("field"),
                    "error": exc.message,
                }
            )
    if errors and not skip_bad:
        first = errors[0]
        more = f" (and {len(errors) - 1} more bad rows)" if len(errors) > 1 else ""
        raise InvalidArgument(
            f"{source}: {first.message}{more}; nothing was imported "
            "(use --skip-bad to import the rest)",
            details={
                "file": source,
                "line": first.details.get("line"),
                "field": first.details.get("field"),
                "errors": report.skipped[:MAX_REPORTED],
            },
        )
    if not rows and not errors:
        raise InvalidArgument(f"{source}: no accounts in the file", details={"file": source})
    now = datetime.now(UTC)
    async with store.write(now) as tx:
        existing = await tx.gate.accounts_by_id(list(rows))
        await tx.gate.upsert_accounts(rows.values(), iso(now))
        report.imported = len(rows)
        report.updated = len(existing)
        report.created = len(rows) - len(existing)
        tx.audit(
            AuditEvent(
                AuditEventType.ACCOUNTS_IMPORTED,
                actor,
                None,
                {
                    "source": source,
                    "imported": report.imported,
                    "created": report.created,
                    "updated": report.updated,
                    "skipped": len(report.skipped),
                },
            )
        )
    return report


async def set_account(
    store: Store,
    account_id: str,
    *,
    stage: str | None,
    trust: str | None,
    allowlist: list[str] | None,
    actor: str,
) -> AccountRow:
    """Change an account's stage, trusted mode or own allowlist.

    :raises NotFound, InvalidArgument: with the field named.
    """
    changes: dict[str, Any] = {}
    if stage is not None:
        if stage not in STAGES:
            raise InvalidArgument(
                f"stage {stage!r} is not one of {', '.join(STAGES)}", details={"field": "stage"}
            )
        changes["stage"] = stage
    if trust is not None:
        if trust not in {m.value for m in TrustedMode}:
            raise InvalidArgument(
                f"trusted mode {trust!r} is not one of NONE, ACTIVE, PAUSED, REVOKED",
                details={"field": "trust"},
            )
        changes["trusted_mode"] = trust
    if allowlist is not None:
        changes["allowlist"] = json.dumps(sorted(set(allowlist)))
    if not changes:
        raise InvalidArgument(
            "nothing to change: give --stage, --trust or --allowlist", details={"field": "stage"}
        )
    now = datetime.now(UTC)
    async with store.write(now) as tx:
        found = await tx.gate.accounts_by_id([account_id])
        if account_id not in found:
            raise NotFound(f"unknown account {account_id!r}", details={"account": account_id})
        before = found[account_id]
        await tx.gate.update_account(account_id, changes, iso(now))
        tx.audit(
            AuditEvent(
                AuditEventType.ACCOUNT_UPDATED,
                actor,
                account_id,
                {
                    "before": {"stage": before.stage, "trusted_mode": before.trusted_mode},
                    "changes": {
                        k: (json.loads(v) if k == "allowlist" else v) for k, v in changes.items()
                    },
                },
            )
        )
    account = await store.gate.get_account(account_id)
    assert account is not None
    return account
