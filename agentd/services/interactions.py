"""Interaction imports from CSV (header first) or JSONL files.

A file is read as a stream, a batch of records at a time, parsed in a worker
thread (so the event loop keeps serving) and inserted with ``executemany``
inside one write transaction: either the whole file is imported or, at its
first bad record, nothing is and the error names the file, the line and the
field. With ``skip_bad`` the good records are imported and the bad ones
reported. A record whose ``id`` is already stored (or repeated in the file)
is a duplicate and is ignored.

Uploads over the control socket are spooled to a temporary file first, so
an upload and an inbox file take the same path.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.interactions import (
    REQUIRED_FIELDS,
    Interaction,
    parse_interaction,
    require_known_account,
)
from agentd.core.timefmt import iso
from agentd.errors import InvalidArgument
from agentd.store.base import Store

MAX_REPORTED = 50
BATCH = 5000

# (line, record) or (line, the error that line raised)
_Item = tuple[int, dict[str, Any] | InvalidArgument]


@dataclass
class InteractionImportReport:
    """What an interactions import did."""

    source: str
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        return {
            "source": self.source,
            "read": self.read,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "skipped": len(self.skipped),
            "skipped_rows": self.skipped[:MAX_REPORTED],
        }


def _bad(source: str, line: int, field_name: str, message: str) -> InvalidArgument:
    return InvalidArgument(
        f"{source}:{line}: {field_name}: {message}",
        details={"file": source, "line": line, "field": field_name},
    )


def _csv_items(fh: Any, source: str) -> Iterator[_Item]:
    reader = csv.reader(fh)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader cannot resynchronise after broken quoting: stop here.
            raise _bad(source, start, "csv", f"malformed CSV ({exc})") from None
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lstrip("\ufeff") for cell in row]
            for name in REQUIRED_FIELDS:
                if name not in header:
                    raise _bad(source, start, name, "missing column in header")
            continue
        if len(row) > len(header):
            yield start, _bad(source, start, "csv", f"{len(row)} values for {len(header)} columns")
            continue
        yield start, dict(zip(header, row, strict=False))


def _jsonl_items(fh: Any, source: str) -> Iterator[_Item]:
    for number, text in enumerate(fh, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, _bad(source, number, "json", f"not valid JSON ({exc.msg})")
            continue
        if not isinstance(value, dict):
            yield number, _bad(source, number, "json", "expected a JSON object")
            continue
        yield number, value


def _take(
    items: Iterator[_Item],
    n: int,
    *,
    known: set[str],
    now: datetime,
    source: str,
) -> tuple[list[Interaction], list[InvalidArgument], int, bool]:
    """Parse up to ``n`` records; return (interactions, errors, records read, finished)."""
    rows: list[Interaction] = []
    errors: list[InvalidArgument] = []
    count = 0
    for _ in range(n):
        try:
            line, record = next(items)
        except StopIteration:
            return rows, errors, count, True
        except UnicodeDecodeError:
            raise InvalidArgument(
                f"{source}: not UTF-8 text (after {count} records of this batch)",
                details={"file": source, "field": "encoding"},
            ) from None
        count += 1
        try:
            if isinstance(record, InvalidArgument):
                raise record
            item = parse_interaction(record, now=now, line=line, source=source)
            require_known_account(item, known, line=line, source=source)
        except InvalidArgument as exc:
            errors.append(exc)
            continue
        rows.append(item)
    return rows, errors, count, False


async def import_file(
    store: Store,
    path: Path,
    *,
    source: str,
    fmt: str,
    skip_bad: bool,
    actor: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    batch: int = BATCH,
) -> InteractionImportReport:
    """Import one CSV or JSONL file of interactions.

    :raises InvalidArgument: a bad record and ``skip_bad`` is off (nothing is
        imported), a bad header, malformed CSV, text that is not UTF-8, or no
        record at all; ``details`` names ``file``, ``line`` and ``field``.
    """
    report = InteractionImportReport(source=source)
    known = await store.proactive.account_ids()
    now = clock()
    at = iso(now)
    with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as fh:
        items = _csv_items(fh, source) if fmt == "csv" else _jsonl_items(fh, source)
        async with store.write(now) as tx:
            finished = False
            while not finished:
                rows, errors, count, finished = await anyio.to_thread.run_sync(
                    lambda: _take(items, batch, known=known, now=now, source=source)
                )
                report.read += count
                if errors and not skip_bad:
                    first = errors[0]
                    raise InvalidArgument(
                        f"{first.message}; nothing was imported "
                        "(use --skip-bad to import the good records)",
                        details=dict(first.details),
                    )
                for exc in errors:
                    report.skipped.append(
                        {
                            "line": exc.details.get("line"),
                            "field": exc.details.get("field"),
                            "error": exc.message,
                        }
                    )
                if rows:
                    report.imported += await tx.proactive.insert_interactions(rows, at)
            if report.read == 0:
                raise InvalidArgument(
                    f"{source}: no interactions in the file", details={"file": source}
                )
            report.duplicates = report.read - len(report.skipped) - report.imported
            tx.audit(
                AuditEvent(
                    AuditEventType.INTERACTIONS_IMPORTED,
                    actor,
                    None,
                    {
                        "source": source,
                        "read": report.read,
                        "imported": report.imported,
                        "duplicates": report.duplicates,
                        "skipped": len(report.skipped),
                    },
                )
            )
    return report


async def import_upload(
    store: Store,
    lines: AsyncIterator[bytes],
    *,
    spool_dir: Path,
    source: str,
    fmt: str,
    skip_bad: bool,
    actor: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> InteractionImportReport:
    """Spool an upload to a temporary file, then import it like a file.

    :raises InvalidArgument: as :func:`import_file`.
    """
    await anyio.Path(spool_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=f".{fmt}", dir=spool_dir)
    path = Path(name)
    try:
        async with await anyio.open_file(fd, "wb", closefd=True) as out:
            async for line in lines:
                await out.write(line.rstrip(b"\r\n") + b"\n")
        return await import_file(
            store, path, source=source, fmt=fmt, skip_bad=skip_bad, actor=actor, clock=clock
        )
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lambda: os.unlink(path) if path.exists() else None)
