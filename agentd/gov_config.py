"""Configuration of governance ([breakers], [governance], [governance.readiness]).

Breaker rules are data: a list of tables validated by
:func:`agentd.core.breakers.parse_rules`, so an unknown metric or a malformed
window stops start-up (and a reload) with the rule and the field named.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from agentd.core.breakers import DEFAULT_RULES, BreakerRule, format_window, parse_rules
from agentd.core.readiness import ReadinessPolicy
from agentd.errors import InvalidArgument
from agentd.sections import Section


def _default_rules() -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "metric": str(r.metric),
            "threshold": r.threshold,
            "window": format_window(r.window),
            "action": str(r.action),
            "severity": str(r.severity),
            "min_events": r.min_events,
            "alert_only": r.alert_only,
            "enabled": r.enabled,
        }
        for r in DEFAULT_RULES
    ]


class BreakersConfig(Section):
    """Circuit breakers (SPEC §7): rules over sliding windows, evaluated as events arrive."""

    enabled: bool = Field(True, description="False: no breaker watches anything.")
    alert_only: bool = Field(
        False,
        description="True: every rule only alerts (audit, incident, status), changing nothing; "
        "for tuning thresholds before enforcing them.",
    )
    rules: list[dict[str, Any]] = Field(
        default_factory=_default_rules,
        description="[[breakers.rules]] tables: name, metric (error_rate, command_failures, "
        "critical_incident, rollback_rate), threshold, window (30s, 5m, 1h), action "
        "(revert_to_l3, pause_command_type, alert_only), severity, min_events, alert_only, "
        "enabled.",
    )

    @field_validator("rules")
    @classmethod
    def _valid_rules(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            parse_rules(value)
        except InvalidArgument as exc:
            raise ValueError(exc.message) from None
        return value

    def parsed_rules(self) -> tuple[BreakerRule, ...]:
        """Return the validated rules (none when breakers are disabled)."""
        return parse_rules(self.rules) if self.enabled else ()


class ReadinessConfig(Section):
    """Thresholds of the measured readiness items (seed 003)."""

    period_days: float = Field(
        30, gt=0, le=3650, description="Rates and incidents are measured over this many days."
    )
    min_days_at_level: int = Field(
        180, ge=0, le=3650, description="Days at the current level before asking for more."
    )
    min_success_rate: float = Field(
        0.995, ge=0, le=1, description="Executions that succeeded, at least (a fraction)."
    )
    min_approval_rate: float = Field(
        0.80, ge=0, le=1, description="Intents put before a person that were approved, at least."
    )
    max_rollback_rate: float = Field(
        0.02, ge=0, le=1, description="Succeeded executions later rolled back, at most."
    )
    monitoring_max_age_hours: float = Field(
        1, gt=0, le=24 * 30, description="The metrics file must be younger than this."
    )
    kill_switch_test_max_age_days: float = Field(
        90, gt=0, le=3650, description="The kill switch must have been tried within this."
    )
    rollback_test_max_age_days: float = Field(
        90, gt=0, le=3650, description="A rollback must have succeeded within this."
    )
    audit_verify_max_age_days: float = Field(
        8, gt=0, le=3650, description="The audit trail must have been verified within this."
    )

    def policy(self) -> ReadinessPolicy:
        """Return the thresholds as the pure core takes them."""
        return ReadinessPolicy(
            min_days_at_l3=self.min_days_at_level,
            min_success_rate=self.min_success_rate,
            min_approval_rate=self.min_approval_rate,
            max_rollback_rate=self.max_rollback_rate,
            monitoring_max_age=timedelta(hours=self.monitoring_max_age_hours),
            kill_switch_test_max_age=timedelta(days=self.kill_switch_test_max_age_days),
            rollback_test_max_age=timedelta(days=self.rollback_test_max_age_days),
            audit_verify_max_age=timedelta(days=self.audit_verify_max_age_days),
        )


class GovernanceConfig(Section):
    """Metrics file, readiness, the weekly report and scope expansion."""

    reports_dir: Path = Field(
        Path("reports"), description="Weekly governance reports (relative: STATE_DIR/…)."
    )
    report_period_days: float = Field(
        7, gt=0, le=366, description="The period a weekly report covers, ending at its run."
    )
    metrics_file: Path = Field(
        Path("metrics/agentd.prom"),
        description="Prometheus text file for node_exporter's textfile collector "
        "(relative: STATE_DIR/…); written every scheduler.metrics_textfile_interval_s.",
    )
    metrics_rate_window_hours: float = Field(
        24, gt=0, le=24 * 366, description="The rates in the metrics file cover this period."
    )
    metrics_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels put on every exported sample (host, site)."
    )
    attestation_ttl_days: float = Field(
        90, gt=0, le=3650, description="An attestation counts for this long."
    )
    expansion_approvals: int = Field(
        2, ge=2, le=10, description="Distinct approvers a scope expansion needs."
    )
    expansion_ttl_hours: float = Field(
        168, gt=0, le=24 * 366, description="A scope expansion not approved by then expires."
    )
    expansion_min_executions: int = Field(
        10,
        ge=1,
        description="An autonomous-tier action type is proposed for the allowlist after this "
        "many human-approved successful executions in the readiness period, none failed or "
        "rolled back.",
    )
    readiness: ReadinessConfig = ReadinessConfig()

    def resolve(self, state_dir: Path, path: Path) -> Path:
        """Return ``path`` made absolute under ``state_dir`` when relative."""
        return path if path.is_absolute() else state_dir / path
