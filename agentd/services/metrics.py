"""Governance metrics from the store, and the Prometheus text file.

:meth:`MetricsCollector.collect` answers ``agentctl metrics`` for any period.
:meth:`MetricsCollector.write_textfile` writes the file node_exporter's
textfile collector reads (a scheduled task, every minute by default): counters
are totals since the store began, the rates cover the last
``governance.metrics_rate_window_hours``, and gauges tell the governance state
(level, kill switch, tripped breakers, paused action types).

The text is prometheus_client's: each write registers the families computed
in :mod:`agentd.core.metrics` in a fresh ``CollectorRegistry`` and hands it to
``write_to_textfile``, which replaces the file through a temporary file and a
rename, so the collector never reads half of it. prometheus_client is imported
by the first write, not when the daemon starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from agentd.config import Settings
from agentd.core.governance import governance_families
from agentd.core.metrics import Family, MetricCounts, compute_rates, metric_families
from agentd.services.autonomy import AutonomyState
from agentd.store.base import Store

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def counts_dict(counts: MetricCounts) -> dict[str, Any]:
    """Return counts as JSON, with the incident total."""
    out = asdict(counts)
    out["incidents_by_severity"] = dict(counts.incidents_by_severity)
    out["incidents_total"] = counts.incidents_total
    return out


def registry(families: Iterable[Family]) -> CollectorRegistry:
    """Return a fresh registry holding ``families`` (and nothing else: no process metrics)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector

    fixed = list(families)

    class _Families(Collector):
        def collect(self) -> Iterator[Metric]:
            for fam in fixed:
                kind = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
                names = list(fam.samples[0][0]) if fam.samples else []
                metric = kind(fam.name, fam.help, labels=names)
                for labels, value in fam.samples:
                    metric.add_metric([labels[n] for n in names], value)
                yield metric

    out = CollectorRegistry(auto_describe=False)
    out.register(_Families())
    return out


def exposition(families: Iterable[Family]) -> str:
    """Return ``families`` in the Prometheus text format (what the metrics file holds)."""
    from prometheus_client import generate_latest

    return generate_latest(registry(families)).decode("utf-8")


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
        return await self.store.gov.metric_counts(start, end)

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

    async def families(self) -> list[Family]:
        """Return the metric families: totals, recent rates, governance gauges."""
        now = self.clock()
        cfg = self.settings().governance
        totals = await self.counts(None, None)
        recent = await self.counts(now - timedelta(hours=cfg.metrics_rate_window_hours), now)
        state = self.autonomy.snapshot
        return [
            *metric_families(totals, compute_rates(recent), cfg.metrics_labels, now),
            *governance_families(
                state.level, state.kill_switch, self.tripped(), state.paused, cfg.metrics_labels
            ),
        ]

    async def write_textfile(self) -> str:
        """Write the metrics file (the scheduled task); return a one-line result."""
        path = self.path
        families = await self.families()

        def write() -> None:
            from prometheus_client import write_to_textfile

            path.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(path), registry(families))

        await anyio.to_thread.run_sync(write)
        return f"wrote {path}"

    def written_at(self) -> datetime | None:
        """Return when the metrics file was last written, or None."""
        try:
            return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        except OSError:
            return None
