"""Briefing documents for ``create_briefing``: written, saved under the state folder, noted.

The summary is the model's when one is configured (the same summariser as
context summarisation), else the deterministic extractive summary; a model
that fails falls back to it, logged. The document is saved as
``STATE_DIR/briefings/ACCOUNT/EXECUTION.md`` and attached to the account as
an internal note by the ``briefing`` executor.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import anyio
from loguru import logger

from agentd.core.briefing import briefing_note, render_briefing
from agentd.core.summary import extractive_summary
from agentd.errors import AgentdError
from agentd.llm import Summarizer
from agentd.services.summaries import interactions_text
from agentd.store.base import Store

PERIOD_DAYS = 90.0


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class BriefingWriter:
    """Write an account's briefing and return the note that attaches it."""

    def __init__(
        self,
        store: Store,
        folder: Callable[[], Path],
        model: Callable[[], Summarizer | None],
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.folder = folder
        self.model = model
        self.clock = clock

    async def write(self, account: str, name: str) -> tuple[str, Path]:
        """Write the briefing of ``account`` as ``name``.md; return (note text, file)."""
        now = self.clock()
        since = (now - timedelta(days=PERIOD_DAYS)).timestamp()
        items = await self.store.proactive.recent_interactions(account, since)
        patterns = await self.store.proactive.recent_patterns(account, 20)
        model = self.model()
        summary, method = "", "extractive"
        if model is not None and items:
            try:
                summary = await model.summarize(account, interactions_text(items))
                method = "model"
            except AgentdError as exc:
                logger.warning("model briefing of {} failed, extractive instead: {}", account, exc)
        if method == "extractive":
            summary = extractive_summary(account, items, now=now, period_days=PERIOD_DAYS)
        document = render_briefing(
            account,
            now=now,
            summary=summary,
            method=method,
            interactions=items,
            patterns=patterns,
        )
        path = self.folder() / account / f"{name}.md"
        await anyio.to_thread.run_sync(_write, path, document)
        return briefing_note(document, str(path)), path
