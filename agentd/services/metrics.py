"""Governance metrics from the store, and the Prometheus text file.

:meth:`MetricsCollector.collect` answers ``agentctl metrics`` for any period.
:meth:`MetricsCollector.write_textfile` writes the file node_exporter's
textfile collector reads (a scheduled task, every minute by default): counters
are totals since the store began, the rates cover the last
``governance.metrics_rate_window_hours``, and gauges tell the governance state
(level, kill switch, tripped breakers, paused action types). The file is
replaced atomically, so the collector never reads half of it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from agentd.config import Settings
from agentd.core.governance import governance_gauges
from agentd.core.metrics import MetricCounts, compute_rates, render_prometheus
from agentd.services.autonomy import AutonomyState
from agentd.store import gov_sql
from agentd.store.base import Store


def counts_dict(counts: MetricCounts) -> dict[str, Any]:
    """Return counts as JSON, with the incident total."""
    out = asdict(counts)
    out["incidents_by_severity"] = dict(counts.incidents_by_severity)
    out["incidents_total"] = counts.incidents_total
    return out


def write_file_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class MetricsCollector:
    """Count what the agent did, and export it."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        autonomy: AutonomyState,
        tripped: Callable[[], list[str]],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.autonomy = autonomy
        self.tripped = tripped
        self.clock = clock

    async def counts(self, start: datetime | None, end: datetime | None) -> MetricCounts:
        """Return the counts of ``[start, end)`` (None: unbounded)."""
        return await gov_sql.metric_counts(self.store.read_all, start, end)

    async def collect(self, start: datetime, end: datetime) -> dict[str, Any]:
        """Return counts and rates of ``[start, end)`` as ``agentctl metrics`` shows them."""
        counts = await self.counts(start, end)
        return {
            "since": start.isoformat(),
            "until": end.isoformat(),
            "counts": counts_dict(counts),
            "rates": asdict(compute_rates(counts)),
        }

    @property
    def path(self) -> Path:
        """Return the metrics file's path."""
        s = self.settings()
        return s.governance.resolve(s.state_dir, s.governance.metrics_file)

    async def render(self) -> str:
        """Return the Prometheus text: totals, recent rates, governance gauges."""
        now = self.clock()
        cfg = self.settings().governance
        totals = await self.counts(None, None)
        recent = await self.counts(now - timedelta(hours=cfg.metrics_rate_window_hours), now)
        state = self.autonomy.snapshot
        text = render_prometheus(totals, compute_rates(recent), cfg.metrics_labels, now)
        return text + governance_gauges(
            state.level, state.kill_switch, self.tripped(), state.paused, cfg.metrics_labels
        )

    async def write_textfile(self) -> str:
        """Write the metrics file (the scheduled task); return a one-line result."""
        path = self.path
        text = await self.render()
        await anyio.to_thread.run_sync(write_file_atomically, path, text)
        return f"wrote {path}"

    def written_at(self) -> datetime | None:
        """Return when the metrics file was last written, or None."""
        try:
            return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        except OSError:
            return None
