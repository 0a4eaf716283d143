"""Every audit event agentd writes is named by the event enum, and the names stay."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import agentd
from agentd.browser import journal
from agentd.core.audit import AuditEventType
from agentd.services import operations

# The names once spelt as bare strings where they were written: the audit trail
# holds them, so they are a contract.
FOLDED = (
    "OPERATION_STARTED",
    "OPERATION_COMPLETED",
    "OPERATION_FAILED",
    "OPERATION_CANCELLED",
    "OPERATION_CAPTURE_REFUSED",
    "OPERATION_RESUMED",
    "OPERATION_AWAITING_CONSENT",
    "PATTERNS_DETECTED",
    "GOAL_CREATED",
    "GOAL_STATUS_CHANGED",
    "INTERACTIONS_IMPORTED",
)


@pytest.mark.parametrize("name", FOLDED)
def test_the_folded_names_are_members_with_their_stored_text(name: str) -> None:
    assert AuditEventType[name].value == name


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (journal, "OPERATION_STARTED"),
        (journal, "OPERATION_COMPLETED"),
        (journal, "OPERATION_FAILED"),
        (journal, "OPERATION_CANCELLED"),
        (journal, "OPERATION_CAPTURE_REFUSED"),
        (operations, "OPERATION_RESUMED"),
        (operations, "OPERATION_AWAITING_CONSENT"),
    ],
)
def test_the_agents_names_for_events_are_the_enums(module: object, name: str) -> None:
    assert getattr(module, name) is AuditEventType[name]


def test_no_module_spells_an_event_name_as_a_bare_string() -> None:
    # ``NAME = "NAME"`` at module level is how the bare event names were kept.
    found = []
    for path in sorted(Path(agentd.__file__).parent.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                found += [
                    f"{path.name}: {t.id}"
                    for t in node.targets
                    if isinstance(t, ast.Name) and t.id == node.value.value
                ]
    assert found == []
