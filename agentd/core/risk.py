"""Risk of a change and how long it can be undone (SPEC §3.2, seed 000).

| Level  | Criteria                                   | Rollback window |
|--------|--------------------------------------------|-----------------|
| HIGH   | change type on the configured list         | 30 days         |
| MEDIUM | ``medium_min_items`` items or more, or bulk | 7 days          |
| LOW    | everything else                            | 72 hours        |

**Items** of a diff: the number of its top-level keys, except that the
``bulk`` marker does not count and a key ``items`` or ``changes`` holding a
list counts as the length of that list. So ``{"title": …, "description": …}``
is 2 items and ``{"items": [11 entries]}`` is 11.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from agentd.errors import ConfigInvalid

DEFAULT_HIGH_CHANGE_TYPES: frozenset[str] = frozenset(
    {
        "robots_txt_update",
        "robots_txt_disallow_all",
        "campaign_launch",
        "budget_change",
        "budget_increase",
        "budget_decrease",
    }
)
# "More than 10 items" in the tables: 11 is the first MEDIUM count.
DEFAULT_MEDIUM_MIN_ITEMS = 11
BULK_PREFIX = "bulk_"
_LIST_KEYS = ("items", "changes")
_CHANGE_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


class RiskLevel(StrEnum):
    """How much damage a change could do."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class RiskReason(StrEnum):
    """Why a change got its risk level."""

    HIGH_CHANGE_TYPE = "HIGH_CHANGE_TYPE"
    BULK = "BULK"
    LARGE_DIFF = "LARGE_DIFF"
    SIMPLE_CHANGE = "SIMPLE_CHANGE"


ROLLBACK_WINDOWS: Mapping[RiskLevel, timedelta] = MappingProxyType(
    {
        RiskLevel.LOW: timedelta(hours=72),
        RiskLevel.MEDIUM: timedelta(days=7),
        RiskLevel.HIGH: timedelta(days=30),
    }
)


def rollback_window(level: RiskLevel) -> timedelta:
    """Return how long after execution a change of ``level`` may be rolled back."""
    return ROLLBACK_WINDOWS[level]


@dataclass(frozen=True)
class RiskPolicy:
    """Which change types are HIGH and how many items make a diff MEDIUM."""

    high_change_types: frozenset[str] = DEFAULT_HIGH_CHANGE_TYPES
    medium_min_items: int = DEFAULT_MEDIUM_MIN_ITEMS

    def validate(self) -> RiskPolicy:
        """Check the policy and return it unchanged.

        :raises ConfigInvalid: a malformed change type or a threshold below 1.
        """
        for change_type in sorted(self.high_change_types):
            if not _CHANGE_TYPE_RE.fullmatch(change_type):
                raise ConfigInvalid(
                    f"risk.high_change_types: {change_type!r} is not a valid change type",
                    details={"field": "risk.high_change_types", "value": change_type},
                )
        items = self.medium_min_items
        if isinstance(items, bool) or not isinstance(items, int) or items < 1:
            raise ConfigInvalid(
                f"risk.medium_min_items: must be a whole number of at least 1, got {items!r}",
                details={"field": "risk.medium_min_items", "value": items},
            )
        return self


@dataclass(frozen=True)
class RiskAssessment:
    """A risk level, the reason for it, and the item count it was based on."""

    level: RiskLevel
    reason: RiskReason
    items: int

    @property
    def rollback_window(self) -> timedelta:
        """Return the rollback window that follows from the level."""
        return rollback_window(self.level)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"level": str(self.level), "reason": str(self.reason), "items": self.items}


def count_items(diff: Mapping[str, Any] | None) -> int:
    """Return the number of items a diff touches (see the module docstring)."""
    if not diff:
        return 0
    total = 0
    for key, value in diff.items():
        if key == "bulk":
            continue
        if key in _LIST_KEYS and isinstance(value, list | tuple):
            total += len(value)
        else:
            total += 1
    return total


def is_bulk(change_type: str | None, diff: Mapping[str, Any] | None) -> bool:
    """Return True when the change is marked bulk, by its type or its diff."""
    if change_type is not None and change_type.startswith(BULK_PREFIX):
        return True
    return diff is not None and diff.get("bulk") is True


def assess_risk(
    policy: RiskPolicy, change_type: str | None, diff: Mapping[str, Any] | None
) -> RiskAssessment:
    """Return the risk of a change: HIGH by type, MEDIUM if large or bulk, else LOW.

    An intent without a diff is LOW unless its change type is on the HIGH list.
    """
    items = count_items(diff)
    if change_type is not None and change_type in policy.high_change_types:
        return RiskAssessment(RiskLevel.HIGH, RiskReason.HIGH_CHANGE_TYPE, items)
    if is_bulk(change_type, diff):
        return RiskAssessment(RiskLevel.MEDIUM, RiskReason.BULK, items)
    if items >= policy.medium_min_items:
        return RiskAssessment(RiskLevel.MEDIUM, RiskReason.LARGE_DIFF, items)
    return RiskAssessment(RiskLevel.LOW, RiskReason.SIMPLE_CHANGE, items)
