"""Consent rules: what a workflow needs from its consent, and whether a consent grants it.

Every consent check (creating an operation, claiming it, releasing it on a
grant, stopping it on a revoke, the agent before the first step and at each
step boundary, the executor before a change) decides with these functions, so
they cannot disagree. Pure: workflow steps and consents come in as values
(anything with the attributes the protocols below name), decisions go out as
values.

A workflow that cannot be told (not in the knowledge base, or the knowledge
base does not load) needs WRITE: the check fails closed, and a read-only
consent never lets an unknown workflow run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Permission(StrEnum):
    """What a consent lets operations do on a back-office."""

    READ = "read"  # open and read pages (and sign in)
    WRITE = "write"  # anything else: type, choose, tick, confirm, click


# Steps (by action name) that only open and read pages: all a workflow may do
# without its secrets, and all it may do under a consent that grants "read".
READ_ACTIONS: frozenset[str] = frozenset(
    {"goto", "wait_for", "expect_text", "expect_url", "extract"}
)
# Steps that submit what was typed: the end of a sign-in.
SUBMIT_ACTIONS: frozenset[str] = frozenset({"click", "press"})
# What an unknown workflow needs: fail closed.
UNKNOWN_WORKFLOW_NEEDS = Permission.WRITE

_SECRET_VALUE = re.compile(r"(?:\{secret:[A-Za-z_][A-Za-z0-9_]*\})+")


class StepLike(Protocol):
    """What the rules read of a workflow step (``agentd.kb.Step`` has it)."""

    @property
    def action(self) -> str: ...

    @property
    def value(self) -> str | None: ...


class ConsentLike(Protocol):
    """What the rules read of a consent in force (``ConsentRow`` has it)."""

    @property
    def operation(self) -> str: ...

    @property
    def permissions(self) -> tuple[str, ...]: ...

    @property
    def version(self) -> int: ...


def types_only_secrets(step: StepLike) -> bool:
    """Return whether a step is a fill that types nothing but vault secrets."""
    return step.action == "fill" and bool(_SECRET_VALUE.fullmatch(step.value or ""))


def required_permission(steps: Iterable[StepLike]) -> Permission:
    """Return the permission a workflow needs from its consent.

    READ when every step only opens or reads pages (``READ_ACTIONS``), apart
    from signing in: the workflow's first run of fills that type nothing but
    vault secrets, with the click or press right after it, when no other
    change came before. Every operation starts in a fresh, signed-out browser
    context, so that run is its sign-in. Anything else needs WRITE: another
    fill, ``select_option``, ``check``, ``accept_dialog``, any other click or
    press, and credentials typed but not submitted by the very next step.
    """
    signing_in: bool | None = None  # None: not yet; True: typing credentials; False: over
    for step in steps:
        if types_only_secrets(step) and signing_in is not False:
            signing_in = True
            continue
        if signing_in and step.action in SUBMIT_ACTIONS:
            signing_in = False
            continue
        if signing_in:
            return Permission.WRITE  # typed without being submitted at once
        if step.action not in READ_ACTIONS:
            return Permission.WRITE
    return Permission.WRITE if signing_in else Permission.READ


def workflow_needs(steps: Iterable[StepLike] | None) -> Permission:
    """Return what a workflow needs: its steps' permission, or
    ``UNKNOWN_WORKFLOW_NEEDS`` when the workflow cannot be told (``None``)."""
    return UNKNOWN_WORKFLOW_NEEDS if steps is None else required_permission(steps)


def consent_permits(granted: Sequence[str], needed: Permission) -> bool:
    """Return whether a consent's permissions cover what a workflow needs.

    No permissions at all means every permission (consents granted before
    permissions were enforced keep working); WRITE includes READ.
    """
    if not granted:
        return True
    return needed in granted or (needed is Permission.READ and Permission.WRITE in granted)


class ShortfallReason(StrEnum):
    """Why a consent does not let a workflow run."""

    CONSENT_MISSING = "consent_missing"  # no consent in force
    PERMISSION_MISSING = "permission_missing"  # one in force, not granting enough


@dataclass(frozen=True)
class Shortfall:
    """A consent check's refusal: the reason (an operation's end or wait reason) and why."""

    reason: ShortfallReason
    message: str


def consent_shortfall(
    consent: ConsentLike | None, workflow: str, needs: Permission
) -> Shortfall | None:
    """Return why a consent does not let a workflow run, or None if it does.

    ``needs`` is the workflow's :func:`workflow_needs`.
    """
    if consent is None:
        return Shortfall(ShortfallReason.CONSENT_MISSING, f"no consent in force for {workflow}")
    if not consent_permits(consent.permissions, needs):
        return Shortfall(
            ShortfallReason.PERMISSION_MISSING,
            f"{workflow} needs permission {needs.value!r}; the consent in force "
            f"(operation {consent.operation}, version {consent.version}) grants "
            f"{', '.join(consent.permissions)}",
        )
    return None


__all__ = [
    "READ_ACTIONS",
    "SUBMIT_ACTIONS",
    "UNKNOWN_WORKFLOW_NEEDS",
    "ConsentLike",
    "Permission",
    "Shortfall",
    "ShortfallReason",
    "StepLike",
    "consent_permits",
    "consent_shortfall",
    "required_permission",
    "types_only_secrets",
    "workflow_needs",
]
