from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentd.core.readiness import (
    ATTESTABLE_IDS,
    ITEM_IDS,
    ITEMS,
    MAX_SCORE,
    READY_SCORE,
    Attestation,
    Checklist,
    ItemKind,
    ItemResult,
    ReadinessFacts,
    ReadinessReport,
    assess,
    validate_attestation,
)
from agentd.errors import InvalidArgument

NOW = datetime(2025, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

GOOD_FACTS = ReadinessFacts(
    days_at_l3=200,
    success_rate=0.998,
    approval_rate=0.9,
    rollback_rate=0.01,
    critical_incidents=0,
    breaker_rules_enabled=4,
    breaker_rules_enforcing=2,
    kill_switch_tested_at=NOW - 10 * DAY,
    metrics_written_at=NOW - timedelta(minutes=5),
    rollback_succeeded_at=NOW - 20 * DAY,
    audit_verified_at=NOW - 2 * DAY,
    audit_chain_intact=True,
)


def attest_all(**overrides: Attestation | None) -> list[Attestation]:
    """Attest every attested item, replacing (or, with None, leaving out) some."""
    out: list[Attestation] = []
    for item_id in sorted(ATTESTABLE_IDS):
        replacement = overrides.get(item_id)
        if item_id not in overrides:
            replacement = Attestation(
                item_id, "ops-lead", f"https://wiki/{item_id}", NOW - 30 * DAY
            )
        if replacement is not None:
            out.append(replacement)
    return out


def item(report: ReadinessReport, item_id: str) -> ItemResult:
    return next(r for r in report.items if r.item.id == item_id)


def test_checklists_are_the_seed_verbatim() -> None:
    totals = {c: sum(i.weight for i in ITEMS if i.checklist is c) for c in Checklist}
    assert totals == {Checklist.TECHNICAL: 35, Checklist.PROCESS: 25, Checklist.ORGANISATIONAL: 20}
    assert sum(i.weight for i in ITEMS) == MAX_SCORE == 80
    assert READY_SCORE == 76
    assert len(ITEMS) == 24
    assert len(ITEM_IDS) == 24
    assert [i.id for i in ITEMS if not i.required] == [
        "approval_rate",
        "rollback_rate",
        "chaos_tests",
        "compliance_validated",
        "coverage_24_7",
        "customer_communication_plan",
    ]
    measured = {i.id for i in ITEMS if i.kind is ItemKind.MEASURED}
    assert measured.isdisjoint(ATTESTABLE_IDS)


def test_everything_met_scores_80_and_is_ready() -> None:
    report = assess(GOOD_FACTS, attest_all(), NOW)
    assert report.score == 80
    assert report.max_score == 80
    assert report.ready
    assert report.blockers == ()
    assert report.recommendations == ()
    assert [(c.checklist, c.score, c.max_score) for c in report.checklists] == [
        (Checklist.TECHNICAL, 35, 35),
        (Checklist.PROCESS, 25, 25),
        (Checklist.ORGANISATIONAL, 20, 20),
    ]


def test_required_item_unmet_is_not_ready_even_at_76() -> None:
    # kill switch (2 points, required) untested: 78 points, still not ready
    report = assess(replace(GOOD_FACTS, kill_switch_tested_at=None), attest_all(), NOW)
    assert report.score == 78
    assert report.score >= READY_SCORE
    assert not report.ready
    assert report.blockers == ("kill_switch_tested",)
    (rec,) = report.recommendations
    assert rec.item_id == "kill_switch_tested" and rec.priority == "high"
    assert "kill switch" in rec.text


@pytest.mark.parametrize(
    ("facts_change", "drop", "score", "ready"),
    [
        # optional items missing: 80 - 3 (approval) = 77, ready
        ({"approval_rate": 0.5}, [], 77, True),
        # 80 - 3 - 2 = 75 < 76: not ready though nothing required is missing
        ({"approval_rate": 0.5, "rollback_rate": 0.05}, [], 75, False),
        ({"approval_rate": 0.5}, ["chaos_tests"], 75, False),
        ({}, ["customer_communication_plan", "chaos_tests"], 75, False),
        # exactly 76
        ({}, ["coverage_24_7", "chaos_tests"], 76, True),
    ],
)
def test_threshold(facts_change: dict[str, Any], drop: list[str], score: int, ready: bool) -> None:
    report = assess(replace(GOOD_FACTS, **facts_change), attest_all(**dict.fromkeys(drop)), NOW)
    assert (report.score, report.ready, report.blockers) == (score, ready, ())


@pytest.mark.parametrize(
    ("change", "item_id", "met"),
    [
        ({"days_at_l3": 179}, "days_at_l3", False),
        ({"days_at_l3": 180}, "days_at_l3", True),
        ({"success_rate": 0.995}, "success_rate", False),  # must be greater than 99.5 %
        ({"success_rate": 0.9951}, "success_rate", True),
        ({"success_rate": None}, "success_rate", False),  # nothing measured yet
        ({"approval_rate": 0.80}, "approval_rate", False),
        ({"rollback_rate": 0.02}, "rollback_rate", False),  # must be below 2 %
        ({"rollback_rate": 0.0199}, "rollback_rate", True),
        ({"rollback_rate": None}, "rollback_rate", False),
        ({"critical_incidents": 1}, "zero_critical_incidents", False),
        ({"breaker_rules_enforcing": 0}, "circuit_breakers", False),
        ({"metrics_written_at": NOW - timedelta(minutes=61)}, "realtime_monitoring", False),
        ({"metrics_written_at": None}, "realtime_monitoring", False),
        ({"kill_switch_tested_at": NOW - 90 * DAY}, "kill_switch_tested", True),
        ({"kill_switch_tested_at": NOW - 91 * DAY}, "kill_switch_tested", False),
        ({"rollback_succeeded_at": None}, "rollback_procedures_tested", False),
        ({"audit_chain_intact": False}, "audit_trail", False),
        ({"audit_verified_at": NOW - 9 * DAY}, "audit_trail", False),
    ],
)
def test_measured_items(change: dict[str, Any], item_id: str, met: bool) -> None:
    report = assess(replace(GOOD_FACTS, **change), attest_all(), NOW)
    result = item(report, item_id)
    assert result.met is met
    assert (item_id in {r.item_id for r in report.recommendations}) is (not met)


def test_expired_attestation_counts_as_unmet() -> None:
    expired = Attestation("team_trained", "ops-lead", "training log", NOW - 400 * DAY, NOW - DAY)
    report = assess(GOOD_FACTS, attest_all(team_trained=expired), NOW)
    result = item(report, "team_trained")
    assert not result.met
    assert "expired" in result.why
    assert report.blockers == ("team_trained",)
    assert report.score == 75
    assert "agentctl governance attest team_trained" in report.recommendations[0].text


def test_attestation_boundaries() -> None:
    expires_now = Attestation("team_trained", "a", "e", NOW - DAY, NOW)
    assert not item(
        assess(GOOD_FACTS, attest_all(team_trained=expires_now), NOW), "team_trained"
    ).met
    future = Attestation("team_trained", "a", "e", NOW + DAY)
    result = item(assess(GOOD_FACTS, attest_all(team_trained=future), NOW), "team_trained")
    assert not result.met and "future" in result.why
    # a fresh attestation next to an expired one counts
    both = [
        *attest_all(team_trained=expires_now),
        Attestation("team_trained", "b", "e2", NOW - DAY),
    ]
    assert item(assess(GOOD_FACTS, both, NOW), "team_trained").met


def test_nothing_attested_lists_every_unmet_item() -> None:
    report = assess(GOOD_FACTS, [], NOW)
    assert report.score == sum(i.weight for i in ITEMS if i.kind is ItemKind.MEASURED)
    assert not report.ready
    assert {r.item_id for r in report.recommendations} == ATTESTABLE_IDS
    # required first
    priorities = [r.priority for r in report.recommendations]
    assert priorities == sorted(priorities, key=lambda p: p != "high")


def test_unknown_or_measured_attestations_are_rejected() -> None:
    with pytest.raises(InvalidArgument):
        assess(GOOD_FACTS, [Attestation("vibes", "a", "e", NOW)], NOW)
    with pytest.raises(InvalidArgument):
        assess(GOOD_FACTS, [Attestation("success_rate", "a", "e", NOW)], NOW)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("vibes", "a", "e", NOW), "item"),
        (("success_rate", "a", "e", NOW), "item"),
        (("team_trained", " ", "e", NOW), "by"),
        (("team_trained", "a", "", NOW), "evidence"),
        (("team_trained", "a", "e", datetime(2025, 1, 1)), "at"),
        (("team_trained", "a", "e", NOW, NOW - DAY), "expires_at"),
    ],
)
def test_validate_attestation(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_attestation(*args)
    assert info.value.details["field"] == field


def test_validate_attestation_accepts() -> None:
    got = validate_attestation("chaos_tests", " sre ", "run #42", NOW, NOW + 90 * DAY)
    assert got == Attestation("chaos_tests", "sre", "run #42", NOW, NOW + 90 * DAY)
