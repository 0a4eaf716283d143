"""Guardrail tiers, stage gating, forbidden changes and policy validation."""

from __future__ import annotations

import pytest

from agentd.core.guardrails import (
    STAGES,
    Classification,
    GuardrailPolicy,
    Tier,
    classify,
    is_forbidden,
)
from agentd.errors import ConfigInvalid

POLICY = GuardrailPolicy()

AUTONOMOUS = [
    "send_follow_up_email",
    "send_routine_response",
    "send_chat_message",
    "schedule_meeting",
    "qualify_conversation",
    "progress_early_stage",
    "update_account_context",
    "create_briefing",
    "log_interaction",
]
APPROVAL_REQUIRED = [
    "send_proposal",
    "discuss_pricing",
    "negotiate_terms",
    "progress_past_evaluation",
    "contact_c_suite",
    "share_minutes_externally",
    "modify_account_plan",
    "escalate_to_management",
]
HARD_STOP = [
    "commit_pricing",
    "modify_contract",
    "approve_discount",
    "strategic_decision",
    "initiate_executive_relationship",
    "legal_commitment",
    "market_positioning_change",
]
GATED = ["evaluation", "negotiation", "closed_won", "closed_lost"]
OPEN = ["prospect", "qualification", "discovery"]
FORBIDDEN = [
    ("SEO", "domain_redirect"),
    ("SEO", "robots_txt_disallow_all"),
    ("CONTENT", "mass_content_delete"),
    ("CONTENT", "author_impersonation"),
    ("ADS", "budget_increase"),
    ("ADS", "campaign_launch"),
    ("CRO", "variant_mass_delete"),
    ("CRO", "forced_winner"),
]


def test_default_tables_have_the_spec_sizes() -> None:
    assert (len(POLICY.autonomous), len(POLICY.approval_required), len(POLICY.hard_stop)) == (
        9,
        8,
        7,
    )
    assert STAGES == (
        "prospect",
        "qualification",
        "discovery",
        "evaluation",
        "negotiation",
        "closed_won",
        "closed_lost",
    )


@pytest.mark.parametrize("stage", OPEN)
@pytest.mark.parametrize(
    ("action_type", "tier"),
    [(a, Tier.AUTONOMOUS) for a in AUTONOMOUS]
    + [(a, Tier.APPROVAL_REQUIRED) for a in APPROVAL_REQUIRED]
    + [(a, Tier.HARD_STOP) for a in HARD_STOP],
)
def test_every_action_type_keeps_its_tier_on_open_stages(
    action_type: str, tier: Tier, stage: str
) -> None:
    assert classify(POLICY, action_type, stage) == Classification(tier, tier, False, True)


@pytest.mark.parametrize("stage", GATED)
@pytest.mark.parametrize("action_type", AUTONOMOUS)
def test_autonomous_actions_need_approval_on_gated_stages(action_type: str, stage: str) -> None:
    assert classify(POLICY, action_type, stage) == Classification(
        Tier.APPROVAL_REQUIRED, Tier.AUTONOMOUS, True, True
    )


@pytest.mark.parametrize("stage", GATED)
@pytest.mark.parametrize(
    ("action_type", "tier"),
    [(a, Tier.APPROVAL_REQUIRED) for a in APPROVAL_REQUIRED]
    + [(a, Tier.HARD_STOP) for a in HARD_STOP],
)
def test_gated_stages_do_not_soften_other_tiers(action_type: str, tier: Tier, stage: str) -> None:
    result = classify(POLICY, action_type, stage)
    assert (result.tier, result.stage_gated) == (tier, False)


@pytest.mark.parametrize("stage", [*STAGES])
def test_unknown_action_type_fails_safe_to_approval_required(stage: str) -> None:
    assert classify(POLICY, "launch_rockets", stage) == Classification(
        Tier.APPROVAL_REQUIRED, Tier.APPROVAL_REQUIRED, False, False
    )


@pytest.mark.parametrize("stage", ["", "won", "EVALUATION"])
def test_unknown_stage_counts_as_gated(stage: str) -> None:
    assert classify(POLICY, "send_chat_message", stage).tier is Tier.APPROVAL_REQUIRED


def test_custom_gated_stages_are_honoured() -> None:
    policy = GuardrailPolicy(gated_stages=frozenset({"prospect"}))
    assert classify(policy, "send_chat_message", "prospect").stage_gated
    assert classify(policy, "send_chat_message", "negotiation").tier is Tier.AUTONOMOUS


@pytest.mark.parametrize(("domain", "change_type"), FORBIDDEN)
def test_forbidden_change_types_per_domain(domain: str, change_type: str) -> None:
    assert is_forbidden(POLICY, domain, change_type)
    assert is_forbidden(POLICY, domain.lower(), change_type)


@pytest.mark.parametrize(
    ("domain", "change_type"),
    [
        ("SEO", "meta_update"),
        ("SEO", "budget_increase"),  # forbidden in ADS, not in SEO
        ("ADS", "domain_redirect"),
        ("SALES", "campaign_launch"),
        (None, "campaign_launch"),
        ("ADS", None),
        (None, None),
    ],
)
def test_allowed_change_types(domain: str | None, change_type: str | None) -> None:
    assert not is_forbidden(POLICY, domain, change_type)


def test_default_policy_is_valid() -> None:
    assert POLICY.validate() is POLICY


def test_action_type_in_two_tiers_is_an_error_naming_both() -> None:
    policy = GuardrailPolicy(hard_stop=POLICY.hard_stop | {"send_chat_message"})
    with pytest.raises(ConfigInvalid) as err:
        policy.validate()
    assert "send_chat_message" in err.value.message
    assert set(err.value.details["tiers"]) == {"autonomous", "hard_stop"}
    assert "autonomous" in err.value.message and "hard_stop" in err.value.message


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (GuardrailPolicy(gated_stages=frozenset({"evaluation", "won"})), "guardrails.gated_stages"),
        (GuardrailPolicy(autonomous=frozenset({"Send-Email"})), "guardrails.autonomous"),
        (GuardrailPolicy(forbidden={"seo": frozenset({"x"})}), "guardrails.forbidden"),
        (GuardrailPolicy(forbidden={"SEO": frozenset({"Bad Type"})}), "guardrails.forbidden.SEO"),
    ],
)
def test_invalid_policies_name_the_field(policy: GuardrailPolicy, field: str) -> None:
    with pytest.raises(ConfigInvalid) as err:
        policy.validate()
    assert err.value.details["field"] == field


def test_tier_of_prefers_the_strictest_tier_for_unvalidated_tables() -> None:
    # Defence in depth: a table that skipped validation still errs on the safe side.
    policy = GuardrailPolicy(autonomous=POLICY.autonomous | {"commit_pricing"})
    assert policy.tier_of("commit_pricing") is Tier.HARD_STOP
