"""Governance decisions as values: levels, periods, approvals, candidates, the weekly report.

Pure: no I/O and no clock reads (``now`` is passed in). The services in
``agentd.services.governance`` and ``agentd.services.breakers`` turn these into
stored state, audit records and files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from agentd.core.escape import markdown_text
from agentd.core.metrics import Family, MetricCounts, Rates, family
from agentd.core.policy import AutonomyLevel
from agentd.core.readiness import ReadinessReport
from agentd.errors import Conflict, InvalidArgument

LEVELS: tuple[AutonomyLevel, ...] = tuple(AutonomyLevel)
_RELATIVE_RE = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")
_RELATIVE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class GovernanceEvent(StrEnum):
    """Audit events of governance beyond the shared ones (LEVEL_CHANGED, BREAKER_*, ...)."""

    ATTESTATION_RECORDED = "ATTESTATION_RECORDED"
    SCOPE_EXPANSION_PROPOSED = "SCOPE_EXPANSION_PROPOSED"
    SCOPE_EXPANSION_APPROVAL = "SCOPE_EXPANSION_APPROVAL"
    SCOPE_EXPANSION_APPLIED = "SCOPE_EXPANSION_APPLIED"
    SCOPE_EXPANSION_REJECTED = "SCOPE_EXPANSION_REJECTED"
    SCOPE_EXPANSION_EXPIRED = "SCOPE_EXPANSION_EXPIRED"
    ALLOWLIST_CHANGED = "ALLOWLIST_CHANGED"


def parse_level(text: object) -> AutonomyLevel:
    """Return the autonomy level named by ``text`` (``L3``, ``L3+``, ``L4``, ``L4+``).

    :raises InvalidArgument: any other name.
    """
    try:
        return AutonomyLevel(str(text).strip().upper())
    except ValueError:
        names = ", ".join(str(level) for level in LEVELS)
        raise InvalidArgument(
            f"unknown autonomy level {text!r} (one of {names})", details={"field": "level"}
        ) from None


def next_level(level: AutonomyLevel) -> AutonomyLevel | None:
    """Return the level one step up the ladder, or None at the top."""
    rank = level.rank
    return LEVELS[rank + 1] if rank + 1 < len(LEVELS) else None


def parse_moment(text: str, now: datetime, field: str) -> datetime:
    """Return the time an operator wrote.

    ISO date (midnight UTC) or date-time (UTC when it has no offset), ``now``,
    or a time ago: ``30m``, ``24h``, ``7d``, ``2w``.

    :raises InvalidArgument: anything else (naming ``field``).
    """
    value = text.strip()
    if value == "now":
        return now
    match = _RELATIVE_RE.match(value)
    if match:
        return now - timedelta(seconds=float(match[1]) * _RELATIVE_UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(
            f"{field}: {text!r} is not a time (YYYY-MM-DD, an ISO date-time, or 30m, 24h, 7d, 2w "
            "ago)",
            details={"field": field},
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_period(
    since: str | None, until: str | None, now: datetime, default: timedelta
) -> tuple[datetime, datetime]:
    """Return the half-open period ``[since, until)``.

    A missing ``until`` is ``now``; a missing ``since`` is ``until - default``.

    :raises InvalidArgument: a bad time, or ``since`` not before ``until``.
    """
    end = parse_moment(until, now, "until") if until else now
    start = parse_moment(since, now, "since") if since else end - default
    if start >= end:
        raise InvalidArgument(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()})",
            details={"field": "since"},
        )
    return start, end


@dataclass(frozen=True)
class Approval:
    """One signature on a scope expansion."""

    by: str
    at: datetime
    note: str = ""


def add_approval(approvals: Sequence[Approval], approval: Approval, required: int) -> bool:
    """Check that ``approval`` may be added; return whether it completes the proposal.

    :raises Conflict: the same user has already approved (a second approver
        must be someone else).
    """
    for earlier in approvals:
        if earlier.by == approval.by:
            raise Conflict(
                f"{approval.by} has already approved this scope expansion (at "
                f"{earlier.at.isoformat(timespec='seconds')}); it needs {required} approvals "
                "from distinct users",
                details={"field": "approver", "approver": approval.by},
            )
    return len(approvals) + 1 >= required


@dataclass(frozen=True)
class ActionStats:
    """What one action type did in a period: human-approved executions and their fate."""

    succeeded: int = 0
    failed: int = 0
    rolled_back: int = 0


def expansion_candidates(
    stats: Mapping[str, ActionStats],
    allowlist: Iterable[str],
    autonomous: Iterable[str],
    min_executions: int,
) -> tuple[str, ...]:
    """Return the action types to propose for the auto-execute allowlist, sorted.

    Only autonomous-tier types can ever auto-execute (the tier check comes
    first), so only those not yet allowlisted are considered, and only with a
    clean record: at least ``min_executions`` successes, no failure, no rollback.
    """
    allowed, tier = frozenset(allowlist), frozenset(autonomous)
    return tuple(
        sorted(
            name
            for name, s in stats.items()
            if name in tier
            and name not in allowed
            and s.succeeded >= min_executions
            and s.failed == 0
            and s.rolled_back == 0
        )
    )


def iso_week(moment: datetime) -> str:
    """Return the ISO week of ``moment`` (UTC) as ``YYYY-Www``."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def status_text(level: str, kill_switch: bool, tripped: Sequence[str]) -> str:
    """Return the governance part of the one-line service status."""
    parts = [f"autonomy {level}"]
    if kill_switch:
        parts.append("KILL SWITCH ON")
    if tripped:
        parts.append("breaker tripped: " + ", ".join(sorted(tripped)))
    return "; ".join(parts)


def governance_families(
    level: AutonomyLevel,
    kill_switch: bool,
    tripped: Sequence[str],
    paused: Sequence[str],
    labels: Mapping[str, str],
) -> list[Family]:
    """Return Prometheus gauges of the governance state (to follow the metric families)."""
    return [
        *family(
            "autonomy_level",
            "gauge",
            "Global autonomy level: 0 L3, 1 L3+, 2 L4, 3 L4+.",
            labels,
            [({}, level.rank)],
        ),
        *family(
            "kill_switch",
            "gauge",
            "1 while the kill switch stops all auto-execution.",
            labels,
            [({}, 1 if kill_switch else 0)],
        ),
        *family(
            "breakers_tripped",
            "gauge",
            "Circuit breakers tripped and not yet reset.",
            labels,
            [({}, len(tripped))],
        ),
        *family(
            "breaker_tripped",
            "gauge",
            "1 for each tripped breaker.",
            labels,
            [({"breaker": key}, 1) for key in sorted(tripped)],
        ),
        *family(
            "action_type_paused",
            "gauge",
            "1 for each action type a breaker paused.",
            labels,
            [({"action_type": name}, 1) for name in sorted(paused)],
        ),
    ]


# -- the weekly report --------------------------------------------------------------------


@dataclass(frozen=True)
class DayLine:
    """One day of the report's trend: executions and the two rates (None: no data)."""

    day: str
    succeeded: int
    failed: int
    rolled_back: int
    success_rate: float | None
    rollback_rate: float | None


@dataclass(frozen=True)
class TripLine:
    """A breaker trip in the period."""

    at: datetime
    key: str
    action: str
    severity: str
    alert_only: bool
    message: str
    reset_at: datetime | None
    reset_by: str | None


@dataclass(frozen=True)
class ProposalLine:
    """The scope expansion the cycle created or found waiting."""

    id: str
    current_level: str
    target_level: str
    action_types: tuple[str, ...]
    expires_at: datetime
    created: bool


@dataclass(frozen=True)
class ReportData:
    """Everything the weekly governance report shows."""

    week: str
    start: datetime
    end: datetime
    generated_at: datetime
    level: str
    configured_level: str
    kill_switch: bool
    paused_action_types: tuple[str, ...]
    counts: MetricCounts
    rates: Rates
    days: Sequence[DayLine]
    readiness: ReadinessReport
    trips: Sequence[TripLine]
    tripped_now: tuple[str, ...]
    proposal: ProposalLine | None
    proposal_note: str
    chart_file: str | None


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value * 100:.2f}%"


class _Markdown(str):
    """A cell already in Markdown: not escaped."""

    __slots__ = ()


def _cell(text: object) -> str:
    return text if isinstance(text, _Markdown) else markdown_text(text)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], empty: str) -> list[str]:
    if not rows:
        return [f"_{empty}_"]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def render_report(data: ReportData) -> str:
    """Render the weekly governance report as Markdown (the chart is linked, not embedded)."""
    r = data.readiness
    verdict = "**ready**" if r.ready else "**not ready**"
    tripped = ", ".join(markdown_text(t) for t in data.tripped_now) or "none"
    out = [
        f"# Governance report {data.week}",
        "",
        f"Period {_when(data.start)} to {_when(data.end)}; generated {_when(data.generated_at)}.",
        "",
        f"Readiness {r.score} / {r.max_score}: {verdict} (needs {r.threshold} with every "
        "required item met). "
        f"Autonomy level {data.level} (configured {data.configured_level}); kill switch "
        f"{'ON' if data.kill_switch else 'off'}; breakers tripped now: {tripped}.",
        *_trend_section(data),
        *_metrics_section(data),
        *_breakers_section(data),
        *_readiness_section(r),
        *_expansion_section(data),
    ]
    return "\n".join(out).rstrip("\n") + "\n"


def _trend_section(data: ReportData) -> list[str]:
    out = ["", "## Trend", ""]
    if data.chart_file:
        out += [f"![Daily success and rollback rates]({data.chart_file})", ""]
    return out + _table(
        ("Day", "Succeeded", "Failed", "Rolled back", "Success rate", "Rollback rate"),
        [
            (
                d.day,
                d.succeeded,
                d.failed,
                d.rolled_back,
                _pct(d.success_rate),
                _pct(d.rollback_rate),
            )
            for d in data.days
        ],
        "no days in the period",
    )


def _metrics_section(data: ReportData) -> list[str]:
    c, rates = data.counts, data.rates
    incidents = ", ".join(
        f"{severity} {count}" for severity, count in sorted(c.incidents_by_severity.items())
    )
    rows: list[tuple[str, object]] = [
        ("Intents", c.intents_total),
        ("Auto-executed", c.intents_auto_executed),
        ("Approved by a person", c.intents_approved),
        ("Rejected", c.intents_rejected),
        ("Expired", c.intents_expired),
        ("Blocked", c.intents_blocked),
        ("Executions succeeded", c.executions_succeeded),
        ("Executions failed", c.executions_failed),
        ("Executions rolled back", c.executions_rolled_back),
        ("Success rate", _pct(rates.success_rate)),
        ("Approval rate", _pct(rates.approval_rate)),
        ("Rollback rate", _pct(rates.rollback_rate)),
        ("Error rate (failed / finished executions)", _pct(rates.error_rate)),
        ("Intent failure rate (failed executions / intents)", _pct(rates.intent_failure_rate)),
        ("Incidents", f"{c.incidents_total} ({incidents or 'none'})"),
        ("Incidents from autonomous actions", c.incidents_from_autonomous),
        ("Constraint violations", c.constraint_violations),
        ("Emergency aborts", c.emergency_aborts),
        ("Safety-gate triggers", c.gate_triggers),
    ]
    return ["", "## Metrics", "", *_table(("Metric", "Value"), rows, "")]


def _breakers_section(data: ReportData) -> list[str]:
    out = [
        "",
        "## Circuit breakers",
        "",
        *_table(
            ("Tripped", "Breaker", "Action", "Severity", "What", "Reset"),
            [
                (
                    _when(t.at),
                    t.key,
                    f"{t.action} (alert only)" if t.alert_only else t.action,
                    t.severity,
                    t.message,
                    f"{_when(t.reset_at)} by {t.reset_by}" if t.reset_at else "not yet",
                )
                for t in data.trips
            ],
            "no breaker tripped in the period",
        ),
    ]
    if data.paused_action_types:
        paused = ", ".join(markdown_text(t) for t in data.paused_action_types)
        out += ["", f"Paused by breakers: {paused}."]
    return out


def _readiness_section(r: ReadinessReport) -> list[str]:
    out = ["", "## Readiness", ""]
    for checklist in r.checklists:
        title = checklist.checklist.value.title()
        out += [f"### {title}: {checklist.score} / {checklist.max_score}", ""]
        out += _table(
            ("Item", "Weight", "Required", "Met", "Why"),
            [
                (
                    _Markdown(f"{markdown_text(i.item.name)} (`{i.item.id}`)"),
                    i.item.weight,
                    "yes" if i.item.required else "no",
                    "yes" if i.met else _Markdown("**no**"),
                    i.why,
                )
                for i in checklist.items
            ],
            "",
        )
        out.append("")
    out += ["### Blockers", ""]
    out += [f"- `{b}`" for b in r.blockers] or ["_none_"]
    out += ["", "### Recommendations", ""]
    out += [f"- ({rec.priority}) {markdown_text(rec.text)}" for rec in r.recommendations] or [
        "_none_"
    ]
    return out


def _expansion_section(data: ReportData) -> list[str]:
    out = ["", "## Scope expansion", ""]
    p = data.proposal
    if p is None:
        return [*out, data.proposal_note]
    types = ", ".join(markdown_text(t) for t in p.action_types) or "none"
    verb = "Proposed" if p.created else "Still waiting"
    return [
        *out,
        f"{verb}: `{p.id}`: level {p.current_level} → {p.target_level}; allowlist additions: "
        f"{types}; expires {_when(p.expires_at)}.",
        "",
        f"It needs approvals from distinct users: `agentctl governance approve {p.id}` "
        f"(or `agentctl approve {p.id}`); `agentctl governance reject {p.id} --reason TEXT` "
        "changes nothing.",
    ]
