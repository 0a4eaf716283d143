"""Turn the configuration's policy sections into the core's GatePolicy."""

from __future__ import annotations

from types import MappingProxyType

from agentd.config import AutonomyConfig, Settings, TenantAutonomyConfig
from agentd.core.guardrails import GuardrailPolicy
from agentd.core.policy import (
    AutonomyLevel,
    AutonomyMode,
    AutonomyModes,
    AutonomySettings,
    BudgetLimits,
    GatePolicy,
)
from agentd.core.risk import RiskPolicy


def _modes(manual_types: list[str], manual_accounts: list[str]) -> AutonomyModes:
    return AutonomyModes(
        accounts=MappingProxyType({a: AutonomyMode.MANUAL for a in manual_accounts}),
        action_types=MappingProxyType({t: AutonomyMode.MANUAL for t in manual_types}),
    )


def _autonomy(
    base: AutonomyConfig, override: TenantAutonomyConfig | None = None
) -> AutonomySettings:
    o = override or TenantAutonomyConfig()

    def pick(name: str):  # type: ignore[no-untyped-def]
        value = getattr(o, name)
        return getattr(base, name) if value is None else value

    return AutonomySettings(
        level=AutonomyLevel(pick("level")),
        allowlist=frozenset(pick("allowlist")),
        confidence_floor=float(pick("confidence_floor")),
        kill_switch=bool(pick("kill_switch")),
        modes=_modes(pick("manual_action_types"), pick("manual_accounts")),
    )


def gate_policy(settings: Settings) -> GatePolicy:
    """Build and validate the gate's policy from the settings.

    :raises ConfigInvalid: a table or value the core refuses (naming the key).
    """
    g = settings.guardrails
    budget = settings.budget
    base_limits = BudgetLimits(
        budget.per_tenant_daily, budget.per_account_daily, budget.per_action_type_daily
    )
    tenant_budgets = {}
    for name, tenant in settings.tenants.items():
        tb = tenant.budget
        tenant_budgets[name] = BudgetLimits(
            tb.per_tenant_daily
            if tb.per_tenant_daily is not None
            else base_limits.per_tenant_daily,
            tb.per_account_daily
            if tb.per_account_daily is not None
            else base_limits.per_account_daily,
            tb.per_action_type_daily
            if tb.per_action_type_daily is not None
            else base_limits.per_action_type_daily,
        )
    policy = GatePolicy(
        guardrails=GuardrailPolicy(
            autonomous=frozenset(g.autonomous),
            approval_required=frozenset(g.approval_required),
            hard_stop=frozenset(g.hard_stop),
            gated_stages=frozenset(g.gated_stages),
            forbidden=MappingProxyType(
                {domain: frozenset(types) for domain, types in settings.forbidden.items()}
            ),
        ),
        risk=RiskPolicy(
            high_change_types=frozenset(settings.risk.high_change_types),
            medium_min_items=settings.risk.medium_min_items,
        ),
        autonomy=_autonomy(settings.autonomy),
        budget=base_limits,
        tenant_autonomy=MappingProxyType(
            {name: _autonomy(settings.autonomy, t.autonomy) for name, t in settings.tenants.items()}
        ),
        tenant_budgets=MappingProxyType(tenant_budgets),
        executors=MappingProxyType(dict(settings.execution.executors)),
        default_executor=settings.execution.default_executor,
        custom_executors=frozenset(settings.execution.custom_executors),
        require_goal_alignment=settings.goals.require_alignment,
    )
    return policy.validate()
