"""Readiness for L4: the three weighted checklists of seed 003, scored.

Technical (35 points), process (25) and organisational (20): 80 in all. Ready
means a score of at least 76 (95 %) *and* every required item met — a high
score never buys out a missing required item.

Which items are measured here, from :class:`ReadinessFacts` (the rest are
attestations an operator records with ``agentctl governance attest ITEM``):

=============================  ===============================================
``days_at_l3``                 days running at L3 ≥ 180 ("6+ months")
``success_rate``               execution success rate > 99.5 %
``approval_rate``              approval rate > 80 %
``rollback_rate``              rollback rate < 2 %
``zero_critical_incidents``    no critical incident from autonomous actions
``circuit_breakers``           a breaker rule is enabled that reverts to L3
                               and is not alert-only
``realtime_monitoring``        the metrics file was written in the last hour
``kill_switch_tested``         a kill-switch test recorded in the last 90 days
``rollback_procedures_tested`` a rollback succeeded in the last 90 days
``audit_trail``                the audit chain verified intact in the last 8 days
=============================  ===============================================

A rate that is undefined (``None``: nothing to measure yet) is unmet. An
attestation counts from its ``at`` until its ``expires_at`` (exclusive); an
expired or future-dated one counts as unmet. Thresholds live in
:class:`ReadinessPolicy`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from agentd.errors import InvalidArgument

MAX_SCORE = 80
READY_SCORE = 76


class Checklist(StrEnum):
    """The three readiness checklists."""

    TECHNICAL = "technical"
    PROCESS = "process"
    ORGANISATIONAL = "organisational"


class ItemKind(StrEnum):
    """Whether an item is measured by the daemon or attested by an operator."""

    MEASURED = "measured"
    ATTESTED = "attested"


@dataclass(frozen=True)
class ChecklistItem:
    """One checklist item: a stable id, the seed's wording, its weight."""

    id: str
    name: str
    checklist: Checklist
    weight: int
    required: bool
    kind: ItemKind


def _item(
    checklist: Checklist, kind: ItemKind, id_: str, name: str, weight: int, required: bool
) -> ChecklistItem:
    return ChecklistItem(id_, name, checklist, weight, required, kind)


_T, _P, _O = Checklist.TECHNICAL, Checklist.PROCESS, Checklist.ORGANISATIONAL
_M, _A = ItemKind.MEASURED, ItemKind.ATTESTED

ITEMS: tuple[ChecklistItem, ...] = (
    # technical: command performance (15)
    _item(_T, _M, "days_at_l3", "6+ months running at L3", 5, True),
    _item(_T, _M, "success_rate", "Command success rate >99.5%", 5, True),
    _item(_T, _M, "approval_rate", "Command approval rate >80%", 3, False),
    _item(_T, _M, "rollback_rate", "Rollback rate <2%", 2, False),
    # technical: safety and testing (10)
    _item(_T, _A, "eval_coverage", "Eval coverage >90%", 5, True),
    _item(_T, _M, "zero_critical_incidents", "Zero critical incidents from commands", 5, True),
    # technical: infrastructure (10)
    _item(_T, _M, "circuit_breakers", "Circuit breakers implemented", 3, True),
    _item(_T, _M, "realtime_monitoring", "Real-time monitoring operational", 3, True),
    _item(_T, _M, "kill_switch_tested", "Kill switch tested", 2, True),
    _item(_T, _A, "chaos_tests", "Chaos engineering tests passing", 2, False),
    # process: documentation (10)
    _item(_P, _A, "incident_playbook", "Incident response playbook complete", 5, True),
    _item(_P, _A, "runbooks", "Runbooks for autonomous actions", 3, True),
    _item(_P, _A, "accountability_framework", "Accountability framework documented", 2, True),
    # process: approvals (10)
    _item(_P, _A, "approval_workflow", "Approval workflow defined", 5, True),
    _item(_P, _A, "escalation_paths", "Escalation paths established", 3, True),
    _item(_P, _M, "rollback_procedures_tested", "Rollback procedures tested", 2, True),
    # process: compliance (5)
    _item(_P, _A, "compliance_validated", "Compliance requirements validated", 3, False),
    _item(_P, _M, "audit_trail", "Audit trail comprehensive", 2, True),
    # organisational: team (10)
    _item(_O, _A, "team_trained", "Team trained on monitoring", 5, True),
    _item(_O, _A, "on_call_rotation", "On-call rotation established", 3, True),
    _item(_O, _A, "coverage_24_7", "24/7 coverage available", 2, False),
    # organisational: stakeholders (10)
    _item(_O, _A, "leadership_approval", "Leadership approval obtained", 5, True),
    _item(_O, _A, "customer_communication_plan", "Customer communication plan ready", 3, False),
    _item(_O, _A, "design_partner_validation", "Design partner validation complete", 2, True),
)

ITEMS_BY_ID: Mapping[str, ChecklistItem] = {item.id: item for item in ITEMS}
ITEM_IDS: frozenset[str] = frozenset(ITEMS_BY_ID)
ATTESTABLE_IDS: frozenset[str] = frozenset(i.id for i in ITEMS if i.kind is ItemKind.ATTESTED)


@dataclass(frozen=True)
class ReadinessFacts:
    """What the daemon measured, for the measured items.

    Rates are fractions (``None`` when undefined); ``critical_incidents``
    counts critical incidents from autonomous actions in the assessed period;
    ``breaker_rules_enforcing`` counts enabled rules that revert to L3 and are
    not alert-only.
    """

    days_at_l3: float
    success_rate: float | None
    approval_rate: float | None
    rollback_rate: float | None
    critical_incidents: int
    breaker_rules_enabled: int
    breaker_rules_enforcing: int
    kill_switch_tested_at: datetime | None
    metrics_written_at: datetime | None
    rollback_succeeded_at: datetime | None
    audit_verified_at: datetime | None
    audit_chain_intact: bool


@dataclass(frozen=True)
class ReadinessPolicy:
    """Thresholds of the measured items."""

    min_days_at_l3: int = 180
    min_success_rate: float = 0.995
    min_approval_rate: float = 0.80
    max_rollback_rate: float = 0.02
    monitoring_max_age: timedelta = timedelta(hours=1)
    kill_switch_test_max_age: timedelta = timedelta(days=90)
    rollback_test_max_age: timedelta = timedelta(days=90)
    audit_verify_max_age: timedelta = timedelta(days=8)


@dataclass(frozen=True)
class Attestation:
    """An operator's statement that an attested item is met."""

    item_id: str
    by: str
    evidence: str
    at: datetime
    expires_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        """Return whether the attestation counts at ``now``."""
        return self.at <= now and (self.expires_at is None or now < self.expires_at)


def validate_attestation(
    item_id: str, by: str, evidence: str, at: datetime, expires_at: datetime | None = None
) -> Attestation:
    """Validate and build an attestation.

    :raises InvalidArgument: unknown or measured item, empty ``by`` or
        ``evidence``, naive times, or ``expires_at`` not after ``at``.
    """
    if item_id not in ITEM_IDS:
        raise InvalidArgument(
            f"unknown readiness item {item_id!r}",
            details={"field": "item", "known": sorted(ATTESTABLE_IDS)},
        )
    if item_id not in ATTESTABLE_IDS:
        raise InvalidArgument(
            f"readiness item {item_id!r} is measured by the daemon and cannot be attested",
            details={"field": "item"},
        )
    for field_name, text in (("by", by), ("evidence", evidence)):
        if not text or not text.strip():
            raise InvalidArgument(
                f"an attestation needs {field_name}", details={"field": field_name}
            )
    for field_name, value in (("at", at), ("expires_at", expires_at)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise InvalidArgument(
                f"{field_name} must be timezone-aware", details={"field": field_name}
            )
    if expires_at is not None and expires_at <= at:
        raise InvalidArgument("expires_at must be after at", details={"field": "expires_at"})
    return Attestation(item_id, by.strip(), evidence.strip(), at, expires_at)


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome, and why."""

    item: ChecklistItem
    met: bool
    why: str


@dataclass(frozen=True)
class ChecklistScore:
    """One checklist's points."""

    checklist: Checklist
    score: int
    max_score: int
    items: tuple[ItemResult, ...]


@dataclass(frozen=True)
class Recommendation:
    """A concrete next step for an unmet item."""

    item_id: str
    priority: str
    text: str


@dataclass(frozen=True)
class ReadinessReport:
    """The outcome of :func:`assess`."""

    score: int
    max_score: int
    threshold: int
    ready: bool
    checklists: tuple[ChecklistScore, ...]
    items: tuple[ItemResult, ...]
    blockers: tuple[str, ...]
    recommendations: tuple[Recommendation, ...]

    @property
    def fraction(self) -> float:
        """Return the score as a fraction of the maximum."""
        return self.score / self.max_score


_Outcome = tuple[bool, str, str]  # met, why, what to do if unmet


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _span(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{seconds // 60} minutes"


def _recent(
    at: datetime | None, now: datetime, max_age: timedelta, what: str, todo: str
) -> _Outcome:
    if at is None:
        return False, f"{what}: never", f"{todo} (never done so far)."
    age = now - at
    if age > max_age:
        return (
            False,
            f"{what}: {at.isoformat()}, more than {_span(max_age)} ago",
            f"{todo} (last on {at.isoformat()}; it must be within {_span(max_age)}).",
        )
    return True, f"{what}: {at.isoformat()}", ""


def _days_at_l3(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    met = f.days_at_l3 >= p.min_days_at_l3
    left = max(p.min_days_at_l3 - f.days_at_l3, 0)
    return (
        met,
        f"{f.days_at_l3:.0f} days at L3 (need {p.min_days_at_l3})",
        f"Keep running at L3 for {left:.0f} more days before asking for L4.",
    )


def _success(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    if f.success_rate is None:
        return (
            False,
            "no finished executions yet",
            "Run approved executions at L3 so the success rate can be measured.",
        )
    return (
        f.success_rate > p.min_success_rate,
        f"success rate {_pct(f.success_rate)} (need > {_pct(p.min_success_rate)})",
        f"Raise the execution success rate above {_pct(p.min_success_rate)} (now "
        f"{_pct(f.success_rate)}): review the failed executions in the daily digest "
        "and fix their causes.",
    )


def _approval(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    if f.approval_rate is None:
        return (
            False,
            "no reviewed intents yet",
            "Review pending intents so the approval rate can be measured.",
        )
    return (
        f.approval_rate > p.min_approval_rate,
        f"approval rate {_pct(f.approval_rate)} (need > {_pct(p.min_approval_rate)})",
        f"Raise the approval rate above {_pct(p.min_approval_rate)} (now {_pct(f.approval_rate)}): "
        "read the reasons given for rejected intents and tune the planner or the allowlist.",
    )


def _rollback(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    if f.rollback_rate is None:
        return (
            False,
            "no successful executions yet",
            "Run approved executions at L3 so the rollback rate can be measured.",
        )
    return (
        f.rollback_rate < p.max_rollback_rate,
        f"rollback rate {_pct(f.rollback_rate)} (need < {_pct(p.max_rollback_rate)})",
        f"Bring the rollback rate below {_pct(p.max_rollback_rate)} (now {_pct(f.rollback_rate)}): "
        "find out why rolled-back changes were wrong and fix the plans that made them.",
    )


def _incidents(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    return (
        f.critical_incidents == 0,
        f"{f.critical_incidents} critical incident(s) from autonomous actions",
        f"Resolve the {f.critical_incidents} critical incident(s) caused by autonomous actions "
        "and complete a period without any.",
    )


def _breakers(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    return (
        f.breaker_rules_enforcing >= 1,
        f"{f.breaker_rules_enabled} breaker rule(s) enabled, {f.breaker_rules_enforcing} enforcing",
        "Enable at least one circuit-breaker rule that reverts to L3 and is not alert-only "
        "(the default high_error_rate or critical_incident rule).",
    )


def _monitoring(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    return _recent(
        f.metrics_written_at,
        now,
        p.monitoring_max_age,
        "metrics file last written",
        "Check that the daemon writes its metrics file and that the textfile collector reads it",
    )


def _kill_switch(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    return _recent(
        f.kill_switch_tested_at,
        now,
        p.kill_switch_test_max_age,
        "kill switch last tested",
        "Test the kill switch with agentctl (turn it on, check that nothing runs, turn it off)",
    )


def _rollback_tested(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    return _recent(
        f.rollback_succeeded_at,
        now,
        p.rollback_test_max_age,
        "last successful rollback",
        "Roll back an executed change with agentctl to exercise the rollback procedure",
    )


def _audit(f: ReadinessFacts, p: ReadinessPolicy, now: datetime) -> _Outcome:
    if not f.audit_chain_intact:
        return (
            False,
            "the audit chain failed verification",
            (
                "Investigate the broken audit chain: verify it with agentctl, "
                "which names the first bad record."
            ),
        )
    return _recent(
        f.audit_verified_at,
        now,
        p.audit_verify_max_age,
        "audit chain last verified intact",
        "Verify the audit chain with agentctl",
    )


_MEASURES: Mapping[str, Callable[[ReadinessFacts, ReadinessPolicy, datetime], _Outcome]] = {
    "days_at_l3": _days_at_l3,
    "success_rate": _success,
    "approval_rate": _approval,
    "rollback_rate": _rollback,
    "zero_critical_incidents": _incidents,
    "circuit_breakers": _breakers,
    "realtime_monitoring": _monitoring,
    "kill_switch_tested": _kill_switch,
    "rollback_procedures_tested": _rollback_tested,
    "audit_trail": _audit,
}


def _attested(item: ChecklistItem, found: list[Attestation], now: datetime) -> _Outcome:
    todo = f"agentctl governance attest {item.id}"
    valid = [a for a in found if a.valid_at(now)]
    if valid:
        best = max(valid, key=lambda a: a.at)
        until = f", valid until {best.expires_at.isoformat()}" if best.expires_at else ""
        return True, f"attested by {best.by} on {best.at.isoformat()}{until}: {best.evidence}", ""
    if not found:
        return False, "not attested", f"Do it, then record it with evidence: {todo} ({item.name})."
    latest = max(found, key=lambda a: a.at)
    if latest.expires_at is not None and latest.expires_at <= now:
        why = f"attestation by {latest.by} expired on {latest.expires_at.isoformat()}"
    else:
        why = f"attestation by {latest.by} is dated in the future ({latest.at.isoformat()})"
    return (
        False,
        why,
        f"Check it still holds and attest again with fresh evidence: {todo} ({item.name}).",
    )


def assess(
    facts: ReadinessFacts,
    attestations: Iterable[Attestation],
    now: datetime,
    policy: ReadinessPolicy | None = None,
) -> ReadinessReport:
    """Score the readiness checklists.

    :raises InvalidArgument: an attestation for an unknown or measured item, or a naive ``now``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgument("now must be timezone-aware", details={"field": "now"})
    rules = policy or ReadinessPolicy()
    by_item: dict[str, list[Attestation]] = {}
    for attestation in attestations:
        if attestation.item_id not in ATTESTABLE_IDS:
            raise InvalidArgument(
                f"attestation for {attestation.item_id!r}, which is not an attested item",
                details={"field": "item"},
            )
        by_item.setdefault(attestation.item_id, []).append(attestation)

    results: list[ItemResult] = []
    recommendations: list[Recommendation] = []
    for item in ITEMS:
        if item.kind is ItemKind.MEASURED:
            met, why, todo = _MEASURES[item.id](facts, rules, now)
        else:
            met, why, todo = _attested(item, by_item.get(item.id, []), now)
        results.append(ItemResult(item, met, why))
        if not met:
            recommendations.append(
                Recommendation(item.id, "high" if item.required else "medium", todo)
            )

    checklists = tuple(
        ChecklistScore(
            checklist,
            sum(r.item.weight for r in results if r.item.checklist is checklist and r.met),
            sum(i.weight for i in ITEMS if i.checklist is checklist),
            tuple(r for r in results if r.item.checklist is checklist),
        )
        for checklist in Checklist
    )
    score = sum(c.score for c in checklists)
    blockers = tuple(r.item.id for r in results if r.item.required and not r.met)
    return ReadinessReport(
        score=score,
        max_score=MAX_SCORE,
        threshold=READY_SCORE,
        ready=score >= READY_SCORE and not blockers,
        checklists=checklists,
        items=tuple(results),
        blockers=blockers,
        # Required items first: they block readiness whatever the score.
        recommendations=tuple(sorted(recommendations, key=lambda r: r.priority != "high")),
    )
