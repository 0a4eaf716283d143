"""The pattern scan as a service: read every active account, store new patterns.

The scan is the heaviest read in the daemon (every account, every recent
interaction), so it runs in a worker thread on a read-only connection of its
own: rows stream in account order in a compact shape, one account's history
is held at a time, :func:`agentd.core.patterns.detect` judges it, and only
patterns whose key is not stored yet are kept. They are then written with one
``executemany`` in one transaction, audited as one event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.interactions import CompactInteraction
from agentd.core.patterns import Pattern, PatternRules, detect
from agentd.core.timefmt import iso
from agentd.store.base import Store


@dataclass(frozen=True)
class ScanReport:
    """What one scan saw and stored."""

    accounts: int
    interactions: int
    detected: int
    new: int
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        """Return the protocol form."""
        return {
            "accounts": self.accounts,
            "interactions": self.interactions,
            "detected": self.detected,
            "new": self.new,
            "seconds": round(self.seconds, 3),
        }

    def describe(self) -> str:
        """Return a one-line summary for the task table."""
        return (
            f"{self.accounts} accounts, {self.interactions} interactions:"
            f" {self.new} new patterns ({self.detected} detected)"
        )


def horizon(rules: PatternRules) -> timedelta:
    """Return how far back any rule looks."""
    days = max(
        rules.silence_days + rules.silence_active_days,
        2 * rules.engagement_window_days,
        rules.buying_window_days,
        rules.medium_tickets_days,
        rules.critical_tickets_days,
        rules.sentiment_window_days,
    )
    return timedelta(days=days)


class PatternScanner:
    """Scan accounts for patterns and store the new ones."""

    def __init__(
        self,
        store: Store,
        rules: Callable[[], PatternRules],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.rules = rules
        self.clock = clock

    async def scan(self) -> ScanReport:
        """Run one full scan; return what it found.

        :raises StoreError: the database cannot be read or written.
        """
        now = self.clock()
        rules = self.rules()
        since = now - horizon(rules)
        # A key's period can start before the horizon; keys older than both are moot.
        keys_since = iso(since - timedelta(days=rules.key_period_days))
        started = anyio.current_time()

        def work(
            known: set[str], histories: Iterator[tuple[str, list[CompactInteraction]]]
        ) -> tuple[list[Pattern], int, int, int]:
            found: list[Pattern] = []
            accounts = interactions = detected = 0
            for account, items in histories:
                accounts += 1
                interactions += len(items)
                for pattern in detect(account, items, now, rules):
                    detected += 1
                    if pattern.key not in known:
                        known.add(pattern.key)
                        found.append(pattern)
            return found, accounts, interactions, detected

        found, accounts, interactions, detected = await self.store.proactive.scan_histories(
            since.timestamp(), keys_since, work
        )
        if found:
            async with self.store.write(now) as tx:
                await tx.proactive.insert_patterns(found)
                by_kind: dict[str, int] = {}
                for p in found:
                    qualifier = p.severity or p.direction
                    label = p.kind.value + (f"/{qualifier.value}" if qualifier else "")
                    by_kind[label] = by_kind.get(label, 0) + 1
                tx.audit(
                    AuditEvent(
                        AuditEventType.PATTERNS_DETECTED,
                        "agentd",
                        None,
                        {"new": len(found), "by_kind": by_kind, "accounts": accounts},
                    )
                )
        report = ScanReport(
            accounts, interactions, detected, len(found), anyio.current_time() - started
        )
        logger.info("pattern scan: {} in {:.2f}s", report.describe(), report.seconds)
        return report
