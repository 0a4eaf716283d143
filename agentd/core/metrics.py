"""Governance metrics: counts, the rates, and their Prometheus metric families.

Rates (seed 003), each ``None`` when its denominator is zero — "no data", not
a perfect or a failing score, so a fresh install never reads as 100 % success
and a readiness check on it never passes by accident. Each name has one
meaning wherever it appears (``agentctl metrics``, the weekly report, the
metrics file, the circuit breakers):

=======================  ========================================================
``success_rate``         executions succeeded / (succeeded + failed)
``approval_rate``        approved / (approved + rejected + expired): of the intents
                         put before a person, the share approved (an expired
                         approval is a rejection, SPEC §3.4); auto-executed and
                         blocked intents never reach a person and are left out
``rollback_rate``        executions rolled back / executions succeeded
``error_rate``           executions failed / (succeeded + failed): the share of
                         finished executions that failed — the ratio the
                         ``error_rate`` breaker rule watches over its window
``intent_failure_rate``  executions failed / intents submitted: failures against
                         all the work the agent took on (blocked, rejected and
                         waiting intents included)
=======================  ========================================================

``executions_succeeded`` counts every execution that completed, including
those later rolled back (``executions_rolled_back`` is a subset of it). A
hand-off to a person counts as an execution once it is closed (done:
succeeded, failed: failed); ``handoffs_*`` count them apart as well, by when
they were handed off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Literal

from agentd.errors import InvalidArgument

PREFIX = "agentd_"
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
INCIDENT_SEVERITIES = ("critical", "high", "medium", "low")
# Labels the metric families (and the governance gauges) use themselves; a caller's label
# of the same name would clash.
_RESERVED_LABELS = frozenset(
    {"outcome", "result", "severity", "kind", "state", "breaker", "action_type"}
)


@dataclass(frozen=True)
class MetricCounts:
    """Counts of what the agent did over a period (or since the store began).

    ``intents_approved`` counts human approvals; policy approvals are
    ``intents_auto_executed``. ``incidents_by_severity`` maps a severity
    (critical, high, medium, low) to a count.
    """

    intents_total: int = 0
    intents_auto_executed: int = 0
    intents_approved: int = 0
    intents_rejected: int = 0
    intents_blocked: int = 0
    intents_expired: int = 0
    executions_succeeded: int = 0
    executions_failed: int = 0
    executions_rolled_back: int = 0
    handoffs_open: int = 0
    handoffs_done: int = 0
    handoffs_failed: int = 0
    incidents_by_severity: Mapping[str, int] = field(default_factory=dict, hash=False)
    incidents_from_autonomous: int = 0
    constraint_violations: int = 0
    emergency_aborts: int = 0
    gate_triggers: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and value < 0:
                raise InvalidArgument(f"{f.name} must not be negative", details={"field": f.name})
        for severity, count in self.incidents_by_severity.items():
            if count < 0:
                raise InvalidArgument(
                    f"incident count for {severity!r} must not be negative",
                    details={"field": "incidents_by_severity"},
                )

    @property
    def incidents_total(self) -> int:
        """Return the number of incidents of every severity."""
        return sum(self.incidents_by_severity.values())

    @property
    def critical_incidents(self) -> int:
        """Return the number of critical incidents."""
        return self.incidents_by_severity.get("critical", 0)


@dataclass(frozen=True)
class Rates:
    """The governance rates as fractions in [0, 1], ``None`` when undefined."""

    success_rate: float | None
    approval_rate: float | None
    rollback_rate: float | None
    error_rate: float | None
    intent_failure_rate: float | None


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def compute_rates(counts: MetricCounts) -> Rates:
    """Compute the rates (see the module notes for definitions and ``None``)."""
    finished = counts.executions_succeeded + counts.executions_failed
    reviewed = counts.intents_approved + counts.intents_rejected + counts.intents_expired
    return Rates(
        success_rate=_ratio(counts.executions_succeeded, finished),
        approval_rate=_ratio(counts.intents_approved, reviewed),
        rollback_rate=_ratio(counts.executions_rolled_back, counts.executions_succeeded),
        error_rate=_ratio(counts.executions_failed, finished),
        intent_failure_rate=_ratio(counts.executions_failed, counts.intents_total),
    )


@dataclass(frozen=True)
class Family:
    """One Prometheus metric family, as data: the exposition is written elsewhere.

    ``name`` is the full name (``agentd_intents_total``); each sample is its
    labels (the caller's base labels first, then the family's own) and its value.
    """

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    samples: tuple[tuple[Mapping[str, str], float], ...]


def check_labels(labels: Mapping[str, str]) -> None:
    """Refuse label names Prometheus would reject or that a family uses itself.

    :raises InvalidArgument: a bad or reserved name, or a value that is not a string.
    """
    for name, label_value in labels.items():
        if not _LABEL_NAME_RE.match(name) or name.startswith("__") or name in _RESERVED_LABELS:
            raise InvalidArgument(f"bad metric label name {name!r}", details={"field": name})
        if not isinstance(label_value, str):
            raise InvalidArgument(f"label {name!r} must be a string", details={"field": name})


def family(
    name: str,
    kind: Literal["counter", "gauge"],
    help_text: str,
    labels: Mapping[str, str],
    samples: list[tuple[dict[str, str], float]],
) -> list[Family]:
    """Return ``[Family]`` with ``labels`` on every sample, or ``[]`` without samples."""
    if not samples:
        return []
    base = dict(sorted(labels.items()))
    return [Family(PREFIX + name, kind, help_text, tuple(({**base, **x}, v) for x, v in samples))]


def metric_families(
    counts: MetricCounts, rates: Rates, labels: Mapping[str, str], now: datetime
) -> list[Family]:
    """Return counts and rates as Prometheus metric families.

    Meant for node_exporter's textfile collector, which refuses sample
    timestamps: ``now`` is exported as the gauge
    ``agentd_metrics_generated_timestamp_seconds`` instead. Counts are exposed
    as counters, so they should be totals since the store began; ``rates`` may
    be computed over any period (they are gauges). An undefined rate is left
    out rather than written as 0. ``labels`` (``tenant="acme"``) go on every
    sample.

    :raises InvalidArgument: a label name that Prometheus would reject or that a
        family already uses (outcome, result, severity, kind), or a naive ``now``.
    """
    check_labels(labels)
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgument("now must be timezone-aware", details={"field": "now"})
    return [
        *(
            f
            for name, text, samples in _counters(counts)
            for f in family(name, "counter", text, labels, samples)
        ),
        *(
            f
            for name, text, value in _gauges(rates, now)
            for f in family(name, "gauge", text, labels, [] if value is None else [({}, value)])
        ),
    ]


_Samples = list[tuple[dict[str, str], float]]


def _counters(counts: MetricCounts) -> list[tuple[str, str, _Samples]]:
    severities = list(INCIDENT_SEVERITIES) + sorted(
        s for s in counts.incidents_by_severity if s not in INCIDENT_SEVERITIES
    )
    return [
        ("intents_total", "Action intents submitted to the gate.", [({}, counts.intents_total)]),
        (
            "intent_outcomes_total",
            "Action intents by how they ended.",
            [
                ({"outcome": "auto_executed"}, counts.intents_auto_executed),
                ({"outcome": "approved"}, counts.intents_approved),
                ({"outcome": "rejected"}, counts.intents_rejected),
                ({"outcome": "blocked"}, counts.intents_blocked),
                ({"outcome": "expired"}, counts.intents_expired),
            ],
        ),
        (
            "executions_total",
            "Executions by result (rolled_back counts succeeded executions later undone).",
            [
                ({"result": "succeeded"}, counts.executions_succeeded),
                ({"result": "failed"}, counts.executions_failed),
                ({"result": "rolled_back"}, counts.executions_rolled_back),
            ],
        ),
        (
            "handoffs_total",
            "Hand-offs to a person by state (done and failed also count as executions).",
            [
                ({"state": "open"}, counts.handoffs_open),
                ({"state": "done"}, counts.handoffs_done),
                ({"state": "failed"}, counts.handoffs_failed),
            ],
        ),
        (
            "incidents_total",
            "Incidents by severity.",
            [({"severity": s}, counts.incidents_by_severity.get(s, 0)) for s in severities],
        ),
        (
            "incidents_from_autonomous_actions_total",
            "Incidents attributed to autonomously executed actions.",
            [({}, counts.incidents_from_autonomous)],
        ),
        (
            "safety_events_total",
            "Safety events by kind.",
            [
                ({"kind": "constraint_violation"}, counts.constraint_violations),
                ({"kind": "emergency_abort"}, counts.emergency_aborts),
                ({"kind": "gate_trigger"}, counts.gate_triggers),
            ],
        ),
    ]


def _gauges(rates: Rates, now: datetime) -> list[tuple[str, str, float | None]]:
    return [
        ("success_ratio", "Executions succeeded / finished.", rates.success_rate),
        ("approval_ratio", "Intents approved / put before a person.", rates.approval_rate),
        ("rollback_ratio", "Executions rolled back / succeeded.", rates.rollback_rate),
        ("error_ratio", "Executions failed / finished (succeeded + failed).", rates.error_rate),
        (
            "intent_failure_ratio",
            "Executions failed / intents submitted.",
            rates.intent_failure_rate,
        ),
        (
            "metrics_generated_timestamp_seconds",
            "Unix time at which these metrics were written.",
            now.timestamp(),
        ),
    ]
