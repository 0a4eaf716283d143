"""Context summarisation: condense each stale account's recent interactions.

With a model configured (an Anthropic API key), the model writes the summary
from the interactions; without one, or when the model fails (timeout, HTTP
error, no network, a refusal), the deterministic extractive summary of
:func:`agentd.core.summary.extractive_summary` is stored instead and the
failure is logged. The task never fails because of the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger

from agentd.core.interactions import Interaction
from agentd.core.summary import extractive_summary
from agentd.core.timefmt import iso
from agentd.errors import AgentdError, NotFound
from agentd.llm import Summarizer
from agentd.store.base import Store

#: Interactions handed to the model per account, newest kept.
MAX_PROMPT_INTERACTIONS = 200


@dataclass(frozen=True)
class SummaryOptions:
    """How summaries are made (from ``[llm]``)."""

    period_days: float = 30.0
    refresh_days: float = 7.0
    max_sentences: int = 5
    max_accounts: int = 200


@dataclass(frozen=True)
class SummaryReport:
    """What one summarisation run did."""

    accounts: int
    by_model: int
    extractive: int
    fallbacks: int

    def describe(self) -> str:
        """Return a one-line summary for the task table."""
        return (
            f"{self.accounts} accounts summarised: {self.by_model} by the model,"
            f" {self.extractive} extractive ({self.fallbacks} after a model failure)"
        )


def interactions_text(items: list[Interaction]) -> str:
    """Return the prompt lines for the model, one interaction per line."""
    lines = []
    for i in items[-MAX_PROMPT_INTERACTIONS:]:
        tone = "" if i.sentiment is None else f" sentiment {i.sentiment:+.2f}"
        what = f": {i.summary}" if i.summary else ""
        lines.append(
            f"- {i.at.isoformat(timespec='minutes')} {i.kind.value} {i.direction.value}{tone}{what}"
        )
    return "\n".join(lines)


class SummaryService:
    """Summarise stale accounts, with the model when there is one."""

    def __init__(
        self,
        store: Store,
        model: Callable[[], Summarizer | None],
        options: Callable[[], SummaryOptions],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.model = model
        self.options = options
        self.clock = clock

    async def summarize_account(self, account: str, now: datetime | None = None) -> dict[str, Any]:
        """Summarise one account now, store and return the summary."""
        now = now or self.clock()
        opts = self.options()
        since = (now - timedelta(days=opts.period_days)).timestamp()
        items = await self.store.proactive.recent_interactions(account, since)
        model = self.model()
        method, reason, text = "extractive", None, None
        if model is not None and items:
            try:
                text = await model.summarize(account, interactions_text(items))
                method = "model"
            except AgentdError as exc:
                reason = exc.message
                logger.warning(
                    "model summary of {} failed, using the extractive summary: {}", account, reason
                )
        if text is None:
            text = extractive_summary(
                account,
                items,
                now=now,
                max_sentences=opts.max_sentences,
                period_days=opts.period_days,
            )
        async with self.store.write(now) as tx:
            await tx.proactive.upsert_summary(
                account,
                text,
                method=method,
                count=len(items),
                last_at=items[-1].at.timestamp() if items else None,
                fallback_reason=reason,
            )
        return {"account": account, "method": method, "summary": text, "fallback_reason": reason}

    async def run(self) -> SummaryReport:
        """Summarise the stale accounts (the daily task)."""
        now = self.clock()
        opts = self.options()
        accounts = await self.store.proactive.stale_accounts(
            since=(now - timedelta(days=opts.period_days)).timestamp(),
            refresh_before=iso(now - timedelta(days=opts.refresh_days)),
            limit=opts.max_accounts,
        )
        by_model = extractive = fallbacks = 0
        for account in accounts:
            result = await self.summarize_account(account, now)
            if result["method"] == "model":
                by_model += 1
            else:
                extractive += 1
                fallbacks += result["fallback_reason"] is not None
        return SummaryReport(len(accounts), by_model, extractive, fallbacks)

    async def show(self, account: str) -> dict[str, Any]:
        """Return an account's stored summary.

        :raises NotFound: none was made yet.
        """
        found = await self.store.proactive.get_summary(account)
        if found is None:
            raise NotFound(f"no summary for account {account!r} yet", details={"account": account})
        return found
