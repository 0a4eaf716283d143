"""The weekly governance cycle: metrics, readiness, a report with a chart, maybe a proposal.

``governance_cycle`` (a scheduled task, weekly by default; ``agentctl run-task
governance_cycle --wait`` runs it now) verifies the audit chain, collects the
period's metrics and a daily trend, assesses readiness, and writes
``REPORTS_DIR/governance-YYYY-Www.md`` with the chart
``governance-YYYY-Www.svg`` beside it (success and rollback rate per day).
When the assessment says ready, nothing waits already, and the kill switch is
off with no breaker tripped, it proposes a scope expansion: the next level
up, and the autonomous-tier action types whose human-approved executions
were all clean; the proposal then waits for distinct approvers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
from loguru import logger

from agentd.atomic import write_atomically
from agentd.config import Settings
from agentd.core.governance import (
    DayLine,
    ProposalLine,
    ReportData,
    TripLine,
    expansion_candidates,
    iso_week,
    next_level,
    render_report,
)
from agentd.core.metrics import MetricCounts, compute_rates
from agentd.core.readiness import ReadinessReport
from agentd.policy import gate_policy
from agentd.report_chart import line_chart_svg
from agentd.services.autonomy import AutonomySnapshot
from agentd.services.governance import GovernanceService, readiness_summary
from agentd.services.scope import ACTOR
from agentd.store.records import ProposalRow, TripRow


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _line(row: ProposalRow, created: bool) -> ProposalLine:
    return ProposalLine(
        row.id,
        row.current_level,
        row.target_level,
        tuple(row.action_types),
        datetime.fromisoformat(row.expires_at),
        created,
    )


class GovernanceCycle:
    """Run the weekly cycle over a governance service."""

    def __init__(
        self,
        governance: GovernanceService,
        settings: Callable[[], Settings],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.gov = governance
        self.settings = settings
        self.clock = clock

    def reports_dir(self) -> Path:
        """Return the folder the reports go to."""
        s = self.settings()
        return s.governance.resolve(s.state_dir, s.governance.reports_dir)

    async def _days(self, start: datetime, end: datetime) -> list[DayLine]:
        lines = []
        for index in range(math.ceil((end - start) / timedelta(days=1))):
            lo = start + timedelta(days=index)
            hi = min(lo + timedelta(days=1), end)
            counts = await self.gov.metrics.counts(lo, hi)
            rates = compute_rates(counts)
            label = (hi - timedelta(microseconds=1)).strftime("%m-%d")
            lines.append(
                DayLine(
                    label,
                    counts.executions_succeeded,
                    counts.executions_failed,
                    counts.executions_rolled_back,
                    rates.success_rate,
                    rates.rollback_rate,
                )
            )
        return lines

    async def _proposal(
        self,
        now: datetime,
        start: datetime,
        counts: MetricCounts,
        readiness: ReadinessReport,
        state: AutonomySnapshot,
        tripped: list[str],
        report_path: Path,
    ) -> tuple[ProposalLine | None, str]:
        """Return the proposal waiting or made now, or the note saying why there is none."""
        settings = self.settings()
        gov, read = self.gov, self.gov.store
        waiting = await read.gov.pending_proposal()
        if waiting is not None:
            return _line(waiting, created=False), ""
        if not readiness.ready:
            return None, (
                f"Not proposed: readiness is {readiness.score} / {readiness.max_score}"
                + (f" with blockers {', '.join(readiness.blockers)}" if readiness.blockers else "")
                + f"; it needs {readiness.threshold} with every required item met."
            )
        if state.kill_switch or tripped:
            return None, "Not proposed: " + (
                "the kill switch is on." if state.kill_switch else f"breakers tripped: {tripped}."
            )
        period = timedelta(days=settings.governance.readiness.period_days)
        stats = await read.gov.human_action_stats(now - period, now)
        allowlist = gov.autonomy.overlay(gate_policy(settings), settings).autonomy.allowlist
        candidates = expansion_candidates(
            stats,
            allowlist,
            settings.guardrails.autonomous,
            settings.governance.expansion_min_executions,
        )
        target = next_level(state.level)
        if target is None and not candidates:
            return None, (
                f"Not proposed: already at {state.level} with every action type that "
                "qualifies on the allowlist."
            )
        rates = compute_rates(counts)
        row = await gov.scope.propose(
            now,
            source="governance",
            requested_by=ACTOR,
            current=state.level,
            target=target or state.level,
            action_types=candidates,
            rationale=(
                f"Readiness {readiness.score} / {readiness.max_score} with every required "
                f"item met. Over the last {settings.governance.report_period_days:g} days: "
                f"{counts.executions_succeeded} executions succeeded, "
                f"{counts.executions_failed} failed, {counts.executions_rolled_back} "
                f"rolled back; success rate {_pct(rates.success_rate)}, rollback rate "
                f"{_pct(rates.rollback_rate)}."
            ),
            evidence={
                "metrics": {
                    "since": start.isoformat(),
                    "until": now.isoformat(),
                    "counts": {
                        "executions_succeeded": counts.executions_succeeded,
                        "executions_failed": counts.executions_failed,
                        "executions_rolled_back": counts.executions_rolled_back,
                        "intents_total": counts.intents_total,
                        "incidents_total": counts.incidents_total,
                    },
                    "rates": rates.__dict__,
                },
                "readiness": readiness_summary(readiness),
            },
            report=str(report_path),
        )
        return _line(row, created=True), ""

    async def run(self) -> str:
        """Run the cycle once; return a one-line result (for ``agentctl tasks``)."""
        now = self.clock()
        start = now - timedelta(days=self.settings().governance.report_period_days)
        gov, read = self.gov, self.gov.store
        await gov.scope.expire_due()
        await gov.verify_audit()
        counts = await gov.metrics.counts(start, now)
        days = await self._days(start, now)
        readiness = await gov.assess(now)
        state = await gov.autonomy.load()
        week = iso_week(now)
        folder = self.reports_dir()
        report_path = folder / f"governance-{week}.md"
        chart_path = folder / f"governance-{week}.svg"
        tripped = gov.breakers.tripped_keys()
        proposal, note = await self._proposal(
            now, start, counts, readiness, state, tripped, report_path
        )
        trips = [_trip(t) for t in await read.gov.trips_between(start, now)]
        chart = _chart(week, days)
        text = render_report(
            ReportData(
                week=week,
                start=start,
                end=now,
                generated_at=now,
                level=str(state.level),
                configured_level=str(state.configured_level),
                kill_switch=state.kill_switch,
                paused_action_types=state.paused,
                counts=counts,
                rates=compute_rates(counts),
                days=days,
                readiness=readiness,
                trips=trips,
                tripped_now=tuple(tripped),
                proposal=proposal,
                proposal_note=note,
                chart_file=chart_path.name,
            )
        )

        def write() -> None:
            # The chart first, so the report never links a missing chart.
            write_atomically(chart_path, chart, mode=0o640, folder_mode=0o750)
            write_atomically(report_path, text, mode=0o640, folder_mode=0o750)

        # A report changes nothing, so it is not audited; the task table keeps its result.
        await anyio.to_thread.run_sync(write)
        logger.info("governance report {} written (readiness {})", report_path, readiness.score)
        return (
            f"wrote {report_path.name}: readiness {readiness.score}/{readiness.max_score} "
            f"({'ready' if readiness.ready else 'not ready'}); proposal "
            f"{proposal.id if proposal else 'none'}"
        )


def _trip(t: TripRow) -> TripLine:
    return TripLine(
        datetime.fromisoformat(t.tripped_at),
        t.key,
        t.action,
        t.severity,
        t.alert_only,
        t.message,
        _time(t.reset_at),
        t.reset_by,
    )


def _chart(week: str, days: list[DayLine]) -> str:
    """Return the report's SVG chart: success and rollback rate per day, in percent."""
    series = {
        "success rate %": [
            (d.day, None if d.success_rate is None else d.success_rate * 100) for d in days
        ],
        "rollback rate %": [
            (d.day, None if d.rollback_rate is None else d.rollback_rate * 100) for d in days
        ],
    }
    return line_chart_svg(series, f"agentd {week}: daily rates", "percent", y_max=100)
