"""The consent rules (agentd.core.consent): one table, used by every consent check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agentd.core.consent import (
    UNKNOWN_WORKFLOW_NEEDS,
    Permission,
    Shortfall,
    ShortfallReason,
    consent_shortfall,
    workflow_needs,
)
from agentd.errors import NotFound
from agentd.kb import Action, KnowledgeBase, Step, load_knowledge_base
from agentd.services.consents import permission_lookup

R, W = Permission.READ, Permission.WRITE
KB_FILE = Path(__file__).resolve().parents[2] / "knowledge_base" / "AGENT_KNOWLEDGE_BASE.json"


@dataclass(frozen=True)
class Consent:
    operation: str
    permissions: tuple[str, ...]
    version: int = 3


READ_ONLY = Consent("*", ("read",))
WRITES = Consent("edit_product", ("write",))
EVERYTHING = Consent("*", ())
MISSING, SHORT = ShortfallReason.CONSENT_MISSING, ShortfallReason.PERMISSION_MISSING


@pytest.mark.parametrize(
    ("consent", "needs", "reason"),
    [
        (None, R, MISSING),
        (None, W, MISSING),
        (READ_ONLY, R, None),
        (READ_ONLY, W, SHORT),
        (WRITES, R, None),  # write includes read
        (WRITES, W, None),
        (EVERYTHING, W, None),  # no permissions: every permission
        (Consent("*", ("reports",)), R, SHORT),
        (READ_ONLY, workflow_needs(None), SHORT),  # an unknown workflow: fail closed
    ],
)
def test_consent_shortfall(
    consent: Consent | None, needs: Permission, reason: ShortfallReason | None
) -> None:
    shortfall = consent_shortfall(consent, "flow", needs)
    assert (shortfall and shortfall.reason) == reason


def test_a_shortfall_says_what_is_needed_and_what_is_granted() -> None:
    assert consent_shortfall(Consent("*", ("read",), 7), "edit_product", W) == Shortfall(
        SHORT,
        "edit_product needs permission 'write'; the consent in force (operation *, version 7) "
        "grants read",
    )
    assert consent_shortfall(None, "edit_product", R) == Shortfall(
        MISSING, "no consent in force for edit_product"
    )


def test_workflow_needs() -> None:
    reads = (Step(1, "open", Action.GOTO, "/x"), Step(2, "read", Action.EXTRACT, "#x"))
    assert workflow_needs(reads) is R
    assert workflow_needs((*reads, Step(3, "save", Action.CLICK, "#save"))) is W
    assert workflow_needs(None) is UNKNOWN_WORKFLOW_NEEDS is W


@pytest.mark.parametrize("kb_loads", [True, False])
def test_operations_need_write_for_a_workflow_they_cannot_tell(kb_loads: bool) -> None:
    """The operations' lookup (create, claim, grant, revoke) agrees with the
    executor's: a workflow not in the knowledge base, or no knowledge base, needs write."""
    kb = load_knowledge_base(KB_FILE)

    def knowledge_base() -> KnowledgeBase:
        if not kb_loads:
            raise NotFound("no knowledge base")
        return kb

    needs = permission_lookup(knowledge_base)
    assert needs("no_such_workflow") is W
    if kb_loads:
        assert needs("read_account_record") is R
