"""Risk levels, item counting and rollback windows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agentd.core.risk import (
    RiskAssessment,
    RiskLevel,
    RiskPolicy,
    RiskReason,
    assess_risk,
    count_items,
    rollback_window,
)
from agentd.errors import ConfigInvalid

POLICY = RiskPolicy()


def keys(n: int) -> dict[str, Any]:
    return {f"field_{i}": i for i in range(n)}


@pytest.mark.parametrize(
    ("level", "window"),
    [
        (RiskLevel.LOW, timedelta(hours=72)),
        (RiskLevel.MEDIUM, timedelta(days=7)),
        (RiskLevel.HIGH, timedelta(days=30)),
    ],
)
def test_rollback_windows(level: RiskLevel, window: timedelta) -> None:
    assert rollback_window(level) == window
    assert RiskAssessment(level, RiskReason.SIMPLE_CHANGE, 0).rollback_window == window


@pytest.mark.parametrize(
    ("diff", "items"),
    [
        (None, 0),
        ({}, 0),
        ({"title": "New"}, 1),
        ({"title": "New", "description": "Better"}, 2),
        (keys(11), 11),
        ({"items": [1, 2, 3]}, 3),
        ({"changes": [{"id": i} for i in range(12)]}, 12),
        ({"items": [1, 2], "changes": [3, 4, 5], "note": "x"}, 6),
        ({"items": "not a list"}, 1),
        ({"bulk": True, "title": "x"}, 1),
        ({"nested": {"a": 1, "b": 2, "c": 3}}, 1),
    ],
)
def test_count_items(diff: dict[str, Any] | None, items: int) -> None:
    assert count_items(diff) == items


@pytest.mark.parametrize(
    ("change_type", "diff", "level", "reason"),
    [
        # HIGH by change type, whatever the diff.
        (
            "robots_txt_update",
            {"line": "Disallow: /tmp"},
            RiskLevel.HIGH,
            RiskReason.HIGH_CHANGE_TYPE,
        ),
        ("robots_txt_disallow_all", None, RiskLevel.HIGH, RiskReason.HIGH_CHANGE_TYPE),
        ("campaign_launch", {}, RiskLevel.HIGH, RiskReason.HIGH_CHANGE_TYPE),
        ("budget_change", {"daily": 10}, RiskLevel.HIGH, RiskReason.HIGH_CHANGE_TYPE),
        ("budget_increase", {"daily": 10}, RiskLevel.HIGH, RiskReason.HIGH_CHANGE_TYPE),
        ("budget_decrease", keys(20), RiskLevel.HIGH, RiskReason.HIGH_CHANGE_TYPE),
        # MEDIUM: bulk, by marker or by prefix.
        ("meta_update", {"bulk": True, "title": "x"}, RiskLevel.MEDIUM, RiskReason.BULK),
        ("bulk_meta_update", {"title": "x"}, RiskLevel.MEDIUM, RiskReason.BULK),
        ("bulk_meta_update", None, RiskLevel.MEDIUM, RiskReason.BULK),
        # MEDIUM: more than 10 items.
        ("meta_update", keys(11), RiskLevel.MEDIUM, RiskReason.LARGE_DIFF),
        ("content_edit", {"items": list(range(50))}, RiskLevel.MEDIUM, RiskReason.LARGE_DIFF),
        # LOW.
        ("meta_update", keys(10), RiskLevel.LOW, RiskReason.SIMPLE_CHANGE),
        ("meta_update", {"title": "x"}, RiskLevel.LOW, RiskReason.SIMPLE_CHANGE),
        ("meta_update", {"bulk": False, "title": "x"}, RiskLevel.LOW, RiskReason.SIMPLE_CHANGE),
        ("meta_update", {"bulk": "yes"}, RiskLevel.LOW, RiskReason.SIMPLE_CHANGE),
        (None, None, RiskLevel.LOW, RiskReason.SIMPLE_CHANGE),
        (None, {"subject": "Hi", "body": "..."}, RiskLevel.LOW, RiskReason.SIMPLE_CHANGE),
        ("robots_txt", {"x": 1}, RiskLevel.LOW, RiskReason.SIMPLE_CHANGE),  # not on the list
    ],
)
def test_assess_risk(
    change_type: str | None,
    diff: dict[str, Any] | None,
    level: RiskLevel,
    reason: RiskReason,
) -> None:
    result = assess_risk(POLICY, change_type, diff)
    assert (result.level, result.reason) == (level, reason)
    assert result.items == count_items(diff)


def test_threshold_and_high_list_are_configurable() -> None:
    policy = RiskPolicy(high_change_types=frozenset({"meta_update"}), medium_min_items=3)
    assert assess_risk(policy, "meta_update", {"a": 1}).level is RiskLevel.HIGH
    assert assess_risk(policy, "campaign_launch", {"a": 1}).level is RiskLevel.LOW
    assert assess_risk(policy, "content_edit", keys(3)).level is RiskLevel.MEDIUM
    assert assess_risk(policy, "content_edit", keys(2)).level is RiskLevel.LOW


def test_assessment_json_form() -> None:
    assert assess_risk(POLICY, "bulk_edit", {"a": 1}).to_dict() == {
        "level": "MEDIUM",
        "reason": "BULK",
        "items": 1,
    }


def test_default_policy_is_valid() -> None:
    assert POLICY.validate() is POLICY


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (RiskPolicy(medium_min_items=0), "risk.medium_min_items"),
        (RiskPolicy(medium_min_items=True), "risk.medium_min_items"),
        (RiskPolicy(high_change_types=frozenset({"Budget Change"})), "risk.high_change_types"),
    ],
)
def test_invalid_policies_name_the_field(policy: RiskPolicy, field: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        policy.validate()
    assert err.value.details["field"] == field
