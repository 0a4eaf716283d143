"""The interactions inbox: a folder under the state folder the daemon picks up.

Producers write a file elsewhere on the same file system and *rename* it into
the inbox when it is complete; a rename is atomic, so the daemon never reads a
half-written file. Files whose names start with ``.`` or end in ``.tmp``,
``.part`` or ``.partial`` are someone still writing and are left alone, as
are sub-folders. Each taken file is imported (CSV or JSONL, by its name) and
moved to ``done/`` or ``failed/``; a failed file gets ``NAME.reason.txt``
beside it saying why. A name already in ``done/`` or ``failed/`` is suffixed
with the time so nothing is overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anyio
from loguru import logger

from agentd.errors import AgentdError
from agentd.services import interactions
from agentd.services.accounts import detect_format
from agentd.store.base import Store

ACTOR = "inbox"
_IN_PROGRESS = (".tmp", ".part", ".partial", ".swp")


@dataclass
class InboxReport:
    """What one poll of the inbox did."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    imported: int = 0

    def describe(self) -> str:
        """Return a one-line summary for the task table."""
        return (
            f"{len(self.done)} files imported ({self.imported} interactions),"
            f" {len(self.failed)} failed"
        )


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    if not target.exists():
        return target
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return folder / f"{stamp}-{name}"


class Inbox:
    """Take files renamed into the inbox folder and import them."""

    def __init__(
        self,
        store: Store,
        directory: Callable[[], Path],
        *,
        skip_bad: Callable[[], bool] = lambda: False,
        max_file_bytes: Callable[[], int] = lambda: 1 << 30,
    ) -> None:
        self.store = store
        self.directory = directory
        self.skip_bad = skip_bad
        self.max_file_bytes = max_file_bytes

    def ensure(self) -> Path:
        """Create the inbox with its ``done/`` and ``failed/`` folders; return it."""
        root = self.directory()
        for folder in (root, root / "done", root / "failed"):
            folder.mkdir(parents=True, exist_ok=True, mode=0o770)
        return root

    def waiting(self) -> list[Path]:
        """Return the files ready to take, oldest first."""
        root = self.ensure()
        ready = []
        for entry in os.scandir(root):
            name = entry.name
            if name.startswith(".") or name.endswith(_IN_PROGRESS) or not entry.is_file():
                continue
            ready.append((entry.stat().st_mtime, name))
        return [root / name for _, name in sorted(ready)]

    async def poll(self) -> InboxReport:
        """Import every file waiting in the inbox (the inbox task)."""
        report = InboxReport()
        for path in await anyio.to_thread.run_sync(self.waiting):
            try:
                size = path.stat().st_size
                if size > self.max_file_bytes():
                    raise AgentdError(
                        f"{path.name}: {size} bytes is over the inbox limit of"
                        f" {self.max_file_bytes()} bytes"
                    )
                fmt = detect_format(path.name, None)
                result = await interactions.import_file(
                    self.store,
                    path,
                    source=path.name,
                    fmt=fmt,
                    skip_bad=self.skip_bad(),
                    actor=ACTOR,
                )
            except FileNotFoundError:
                continue  # taken away meanwhile
            except (AgentdError, OSError, ValueError) as exc:
                reason = exc.message if isinstance(exc, AgentdError) else str(exc)
                await anyio.to_thread.run_sync(self._move, path, "failed", reason)
                report.failed.append(path.name)
                logger.warning("inbox file {} failed: {}", path.name, reason)
                continue
            note = None
            if result.skipped:
                note = "\n".join(f"line {s['line']}: {s['error']}" for s in result.skipped)
            await anyio.to_thread.run_sync(self._move, path, "done", note)
            report.done.append(path.name)
            report.imported += result.imported
            logger.info(
                "inbox file {}: {} imported, {} duplicates, {} skipped",
                path.name,
                result.imported,
                result.duplicates,
                len(result.skipped),
            )
        return report

    def _move(self, path: Path, folder: str, reason: str | None) -> None:
        target = _free_name(path.parent / folder, path.name)
        os.replace(path, target)
        if reason:
            (target.parent / f"{target.name}.reason.txt").write_text(
                reason + "\n", encoding="utf-8"
            )
