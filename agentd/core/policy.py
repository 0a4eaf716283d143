"""The gate's policy: what the configuration says the gate applies, checked.

:class:`GatePolicy` is the model of the policy sections of the configuration
(guardrail and risk tables, autonomy, budgets, executors, per-tenant
overrides), built by :func:`agentd.policy.gate_policy` from the settings;
:meth:`GatePolicy.validate` holds the rules a policy must meet, naming the
bad key. :meth:`GatePolicy.for_tenant` resolves one tenant's overrides. The
decision that applies a policy to an intent is :mod:`agentd.core.gate`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from agentd.core.executors import DEFAULT_EXECUTORS, EXECUTORS, HANDOFF
from agentd.core.guardrails import GuardrailPolicy
from agentd.core.intents import ACTION_TYPE_RE, IDENTIFIER_RE
from agentd.core.risk import RiskLevel, RiskPolicy
from agentd.errors import ConfigInvalid


class AutonomyMode(StrEnum):
    """Whether auto-execution is on for a tenant, account or action type."""

    AUTO = "AUTO"
    MANUAL = "MANUAL"


class AutonomyLevel(StrEnum):
    """The ladder of risk appetite for auto-execution (SPEC §2)."""

    L3 = "L3"
    L3_PLUS = "L3+"
    L4 = "L4"
    L4_PLUS = "L4+"

    @property
    def rank(self) -> int:
        """Return the position on the ladder, 0 for L3."""
        return _LEVELS.index(self)

    def allows(self, risk: RiskLevel) -> bool:
        """Return True when intents of ``risk`` may auto-execute at this level."""
        return risk in _LEVEL_ALLOWS[self]

    def stricter(self, other: AutonomyLevel) -> AutonomyLevel:
        """Return the lower of this level and ``other``."""
        return self if self.rank <= other.rank else other


_LEVELS = tuple(AutonomyLevel)
_LEVEL_ALLOWS: Mapping[AutonomyLevel, frozenset[RiskLevel]] = MappingProxyType(
    {
        AutonomyLevel.L3: frozenset(),
        AutonomyLevel.L3_PLUS: frozenset({RiskLevel.LOW}),
        AutonomyLevel.L4: frozenset({RiskLevel.LOW, RiskLevel.MEDIUM}),
        AutonomyLevel.L4_PLUS: frozenset(RiskLevel),
    }
)


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class AutonomyModes:
    """Autonomy modes of one tenant, by account, action type, or both.

    The most specific setting wins: an (account, action type) pair, then the
    account and the action type (MANUAL if either says MANUAL), then
    ``default``. AUTO only means the mode does not stand in the way; the
    allowlist and the level still do.
    """

    default: AutonomyMode = AutonomyMode.AUTO
    accounts: Mapping[str, AutonomyMode] = field(default_factory=_empty, hash=False)
    action_types: Mapping[str, AutonomyMode] = field(default_factory=_empty, hash=False)
    account_action_types: Mapping[tuple[str, str], AutonomyMode] = field(
        default_factory=_empty, hash=False
    )

    def resolve(self, account: str, action_type: str) -> tuple[AutonomyMode, str]:
        """Return the mode for ``account`` and ``action_type`` and the scope it came from."""
        pair = self.account_action_types.get((account, action_type))
        if pair is not None:
            return pair, "account+action_type"
        found = [
            (mode, scope)
            for mode, scope in (
                (self.accounts.get(account), "account"),
                (self.action_types.get(action_type), "action_type"),
            )
            if mode is not None
        ]
        for mode, scope in found:
            if mode is AutonomyMode.MANUAL:
                return mode, scope
        if found:
            return found[0]
        return self.default, "tenant"


@dataclass(frozen=True)
class AutonomySettings:
    """One tenant's autonomy: level, auto-execute allowlist, floor, kill switch, modes."""

    level: AutonomyLevel = AutonomyLevel.L3
    allowlist: frozenset[str] = frozenset()
    confidence_floor: float = 0.7
    kill_switch: bool = False
    modes: AutonomyModes = field(default_factory=AutonomyModes)


@dataclass(frozen=True)
class BudgetLimits:
    """Daily auto-execution limits; a limit of 0 disables auto-execution."""

    per_tenant_daily: int = 50
    per_account_daily: int = 10
    per_action_type_daily: int = 25


@dataclass(frozen=True)
class TenantPolicy:
    """Everything the gate applies to one tenant, overrides resolved."""

    tenant: str
    guardrails: GuardrailPolicy
    risk: RiskPolicy
    autonomy: AutonomySettings
    budget: BudgetLimits
    executors: Mapping[str, str] = field(default_factory=lambda: DEFAULT_EXECUTORS, hash=False)
    default_executor: str | None = None
    require_goal_alignment: bool = False


@dataclass(frozen=True)
class GatePolicy:
    """The gate's configuration: shared tables, defaults, per-tenant overrides."""

    guardrails: GuardrailPolicy = field(default_factory=GuardrailPolicy)
    risk: RiskPolicy = field(default_factory=RiskPolicy)
    autonomy: AutonomySettings = field(default_factory=AutonomySettings)
    budget: BudgetLimits = field(default_factory=BudgetLimits)
    tenant_autonomy: Mapping[str, AutonomySettings] = field(default_factory=_empty, hash=False)
    tenant_budgets: Mapping[str, BudgetLimits] = field(default_factory=_empty, hash=False)
    # What carries out each action type (``[execution.executors]``), and the
    # executor of the types it leaves out (None: nothing; or "handoff").
    executors: Mapping[str, str] = field(default_factory=lambda: DEFAULT_EXECUTORS, hash=False)
    default_executor: str | None = None
    # The names of ``[execution.custom_executors]``: known executors besides the shipped ones.
    custom_executors: frozenset[str] = frozenset()
    # ``[goals] require_alignment``: an autonomous intent serving no active goal waits.
    require_goal_alignment: bool = False

    def for_tenant(self, tenant: str) -> TenantPolicy:
        """Return the policy for ``tenant``: its overrides, else the defaults."""
        return TenantPolicy(
            tenant=tenant,
            guardrails=self.guardrails,
            risk=self.risk,
            autonomy=self.tenant_autonomy.get(tenant, self.autonomy),
            budget=self.tenant_budgets.get(tenant, self.budget),
            executors=self.executors,
            default_executor=self.default_executor,
            require_goal_alignment=self.require_goal_alignment,
        )

    def validate(self) -> GatePolicy:
        """Check every table and setting and return the policy unchanged.

        :raises ConfigInvalid: naming the bad key in ``details["field"]``.
        """
        self.guardrails.validate()
        self.risk.validate()
        _check_autonomy(self.autonomy, "autonomy", self.guardrails)
        _check_budget(self.budget, "budget")
        for where, table in (("tenants", self.tenant_autonomy), ("tenants", self.tenant_budgets)):
            for tenant in table:
                if not isinstance(tenant, str) or not IDENTIFIER_RE.fullmatch(tenant):
                    raise _config(where, f"{tenant!r} is not a valid tenant id", tenant)
        for tenant, settings in self.tenant_autonomy.items():
            _check_autonomy(settings, f"tenants.{tenant}.autonomy", self.guardrails)
        for tenant, limits in self.tenant_budgets.items():
            _check_budget(limits, f"tenants.{tenant}.budget")
        for key, name in self.executors.items():
            if name not in EXECUTORS and name not in self.custom_executors:
                raise _config(f"execution.executors.{key}", f"unknown executor {name!r}", name)
        if not isinstance(self.require_goal_alignment, bool):
            raise _config(
                "goals.require_alignment", "must be true or false", self.require_goal_alignment
            )
        if self.default_executor not in (None, HANDOFF):
            raise _config(
                "execution.default_executor", 'must be "handoff" or unset', self.default_executor
            )
        return self


def _config(where: str, message: str, value: Any) -> ConfigInvalid:
    return ConfigInvalid(f"{where}: {message}", details={"field": where, "value": value})


def _check_autonomy(settings: AutonomySettings, where: str, guardrails: GuardrailPolicy) -> None:
    if not isinstance(settings.level, AutonomyLevel):
        raise _config(f"{where}.level", "must be one of L3, L3+, L4, L4+", settings.level)
    floor = settings.confidence_floor
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0.0 <= floor <= 1.0:
        raise _config(f"{where}.confidence_floor", "must be a number between 0 and 1", floor)
    if not isinstance(settings.kill_switch, bool):
        raise _config(f"{where}.kill_switch", "must be true or false", settings.kill_switch)
    for name in sorted(settings.allowlist):
        if not ACTION_TYPE_RE.fullmatch(name):
            raise _config(f"{where}.allowlist", f"{name!r} is not a valid action type", name)
        if name in guardrails.hard_stop:
            raise _config(f"{where}.allowlist", f"{name} is a hard-stop action type", name)
    modes = settings.modes
    entries = [("default", modes.default)]
    entries += [(f"accounts.{k}", v) for k, v in modes.accounts.items()]
    entries += [(f"action_types.{k}", v) for k, v in modes.action_types.items()]
    entries += [
        (f"account_action_types.{a}.{t}", v) for (a, t), v in modes.account_action_types.items()
    ]
    for key, mode in entries:
        if not isinstance(mode, AutonomyMode):
            raise _config(f"{where}.modes.{key}", "must be AUTO or MANUAL", mode)


def _check_budget(limits: BudgetLimits, where: str) -> None:
    for name in ("per_tenant_daily", "per_account_daily", "per_action_type_daily"):
        value = getattr(limits, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _config(f"{where}.{name}", "must be a whole number of at least 0", value)
