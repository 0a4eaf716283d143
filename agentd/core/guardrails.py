"""Guardrail tiers, stage gating and forbidden web changes (SPEC §3.1, §3.2).

Every action type falls in one tier: ``autonomous`` (may auto-execute if every
later check passes), ``approval_required`` (waits for a person) or
``hard_stop`` (never executes, not even with approval). The tables here are
the shipped defaults; configuration may replace them and is checked with
:meth:`GuardrailPolicy.validate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from agentd.errors import ConfigInvalid

STAGES: tuple[str, ...] = (
    "prospect",
    "qualification",
    "discovery",
    "evaluation",
    "negotiation",
    "closed_won",
    "closed_lost",
)

DEFAULT_AUTONOMOUS: frozenset[str] = frozenset(
    {
        "send_follow_up_email",
        "send_routine_response",
        "send_chat_message",
        "schedule_meeting",
        "qualify_conversation",
        "progress_early_stage",
        "update_account_context",
        "create_briefing",
        "log_interaction",
    }
)
DEFAULT_APPROVAL_REQUIRED: frozenset[str] = frozenset(
    {
        "send_proposal",
        "discuss_pricing",
        "negotiate_terms",
        "progress_past_evaluation",
        "contact_c_suite",
        "share_minutes_externally",
        "modify_account_plan",
        "escalate_to_management",
    }
)
DEFAULT_HARD_STOP: frozenset[str] = frozenset(
    {
        "commit_pricing",
        "modify_contract",
        "approve_discount",
        "strategic_decision",
        "initiate_executive_relationship",
        "legal_commitment",
        "market_positioning_change",
    }
)
# Deal progression past evaluation needs a person, so evaluation is gated too.
DEFAULT_GATED_STAGES: frozenset[str] = frozenset(
    {"evaluation", "negotiation", "closed_won", "closed_lost"}
)
DEFAULT_FORBIDDEN: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "SEO": frozenset({"domain_redirect", "robots_txt_disallow_all"}),
        "CONTENT": frozenset({"mass_content_delete", "author_impersonation"}),
        "ADS": frozenset({"budget_increase", "campaign_launch"}),
        "CRO": frozenset({"variant_mass_delete", "forced_winner"}),
    }
)

_ACTION_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CHANGE_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
_DOMAIN_RE = re.compile(r"^[A-Z0-9][A-Z0-9_.:-]{0,63}$")


class Tier(StrEnum):
    """How far an action type may go on its own."""

    AUTONOMOUS = "autonomous"
    APPROVAL_REQUIRED = "approval_required"
    HARD_STOP = "hard_stop"


@dataclass(frozen=True)
class GuardrailPolicy:
    """The tier tables, gated stages and forbidden change types per domain."""

    autonomous: frozenset[str] = DEFAULT_AUTONOMOUS
    approval_required: frozenset[str] = DEFAULT_APPROVAL_REQUIRED
    hard_stop: frozenset[str] = DEFAULT_HARD_STOP
    gated_stages: frozenset[str] = DEFAULT_GATED_STAGES
    forbidden: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: DEFAULT_FORBIDDEN, hash=False
    )

    def tier_of(self, action_type: str) -> Tier | None:
        """Return the configured tier of ``action_type``, or None if it is unknown."""
        if action_type in self.hard_stop:
            return Tier.HARD_STOP
        if action_type in self.approval_required:
            return Tier.APPROVAL_REQUIRED
        if action_type in self.autonomous:
            return Tier.AUTONOMOUS
        return None

    def validate(self) -> GuardrailPolicy:
        """Check the tables and return the policy unchanged.

        :raises ConfigInvalid: an action type listed in two tiers (naming
            both), a malformed name, an unknown stage, or a domain that is
            not upper-case.
        """
        tiers = (
            (Tier.AUTONOMOUS, self.autonomous),
            (Tier.APPROVAL_REQUIRED, self.approval_required),
            (Tier.HARD_STOP, self.hard_stop),
        )
        seen: dict[str, Tier] = {}
        for tier, names in tiers:
            for name in sorted(names):
                if not _ACTION_TYPE_RE.fullmatch(name):
                    raise ConfigInvalid(
                        f"guardrails.{tier}: {name!r} is not a valid action type",
                        details={"field": f"guardrails.{tier}", "value": name},
                    )
                if name in seen:
                    raise ConfigInvalid(
                        f"guardrails: {name!r} is listed in both {seen[name]} and {tier}",
                        details={
                            "field": f"guardrails.{tier}",
                            "value": name,
                            "tiers": [str(seen[name]), str(tier)],
                        },
                    )
                seen[name] = tier
        for stage in sorted(self.gated_stages):
            if stage not in STAGES:
                raise ConfigInvalid(
                    f"guardrails.gated_stages: unknown stage {stage!r} "
                    f"(stages are {', '.join(STAGES)})",
                    details={"field": "guardrails.gated_stages", "value": stage},
                )
        for domain, change_types in self.forbidden.items():
            if not _DOMAIN_RE.fullmatch(domain):
                raise ConfigInvalid(
                    f"guardrails.forbidden: domain {domain!r} must be upper-case, like SEO",
                    details={"field": "guardrails.forbidden", "value": domain},
                )
            for change_type in sorted(change_types):
                if not _CHANGE_TYPE_RE.fullmatch(change_type):
                    raise ConfigInvalid(
                        f"guardrails.forbidden.{domain}: {change_type!r} is not a valid "
                        "change type",
                        details={"field": f"guardrails.forbidden.{domain}", "value": change_type},
                    )
        return self


@dataclass(frozen=True)
class Classification:
    """The tier an action gets on an account at a given stage.

    ``base_tier`` is the configured one (approval_required when unknown);
    ``tier`` is what applies after stage gating. ``stage_gated`` is true only
    when the stage turned an autonomous action into an approval_required one.
    """

    tier: Tier
    base_tier: Tier
    stage_gated: bool
    known: bool


def classify(policy: GuardrailPolicy, action_type: str, stage: str) -> Classification:
    """Return the tier of ``action_type`` for an account at ``stage``.

    An unknown action type is approval_required: a person may still approve
    it. A stage that is not one of :data:`STAGES` counts as gated, so bad data
    can only make the agent more careful.
    """
    configured = policy.tier_of(action_type)
    base = configured if configured is not None else Tier.APPROVAL_REQUIRED
    gated = stage in policy.gated_stages or stage not in STAGES
    if base is Tier.AUTONOMOUS and gated:
        return Classification(Tier.APPROVAL_REQUIRED, base, True, True)
    return Classification(base, base, False, configured is not None)


def is_forbidden(policy: GuardrailPolicy, domain: str | None, change_type: str | None) -> bool:
    """Return True when ``change_type`` is forbidden in ``domain`` (any case)."""
    if domain is None or change_type is None:
        return False
    return change_type in policy.forbidden.get(domain.upper(), frozenset())
