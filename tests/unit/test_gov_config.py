"""[breakers] and [governance] configuration, and the governance overlay of the gate's policy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentd.config import load_settings
from agentd.core.breakers import DEFAULT_RULES
from agentd.core.policy import AutonomyLevel
from agentd.core.readiness import ReadinessPolicy
from agentd.errors import ConfigInvalid
from agentd.policy import gate_policy
from agentd.services.autonomy import AutonomySnapshot, AutonomyState, snapshot_from
from agentd.services.gate_batch import batch_reads
from agentd.store.records import GateBatchRows

RULE = (
    '[[breakers.rules]]\nname = "r"\nmetric = "error_rate"\nthreshold = 0.1\nwindow = "5m"\n'
    'action = "alert_only"\nseverity = "low"\n'
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AGENTD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AGENTD_STATE_DIR", str(tmp_path / "state"))


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "agentd.toml"
    path.write_text(text)
    return load_settings(path)


def test_defaults_are_the_spec_rules() -> None:
    settings = load_settings(None)
    assert settings.breakers.parsed_rules() == DEFAULT_RULES
    assert settings.governance.readiness.policy() == ReadinessPolicy()
    assert settings.scheduler.interval("governance_cycle") == timedelta(days=7)
    assert settings.scheduler.interval("metrics_textfile") == timedelta(minutes=1)


def test_disabled_breakers_watch_nothing(tmp_path: Path) -> None:
    assert load(tmp_path, "[breakers]\nenabled = false\n").breakers.parsed_rules() == ()


def test_custom_rules_replace_the_defaults(tmp_path: Path) -> None:
    (rule,) = load(tmp_path, RULE).breakers.parsed_rules()
    assert (rule.name, rule.window, rule.alerts_only) == ("r", timedelta(minutes=5), True)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("error_rate", "latency"), ["breaker rule 'r'", "metric", "latency"]),
        (('"5m"', '"5 minutes"'), ["breaker rule 'r'", "window", "5 minutes"]),
        (('"5m"', '"0s"'), ["breaker rule 'r'", "window"]),
        (('"5m"', '"2d"'), ["breaker rule 'r'", "window"]),
        (("0.1", "1.5"), ["breaker rule 'r'", "threshold"]),
        (('"alert_only"', '"reboot"'), ["breaker rule 'r'", "action"]),
        (('"low"', '"urgent"'), ["breaker rule 'r'", "severity"]),
    ],
)
def test_bad_rules_name_the_rule_and_the_field(
    tmp_path: Path, change: tuple[str, str], words: list[str]
) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, RULE.replace(*change))
    message = caught.value.message
    assert "breakers.rules" in message and str(tmp_path / "agentd.toml") in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "text",
    [
        "[governance]\nexpansion_approvals = 1\n",
        "[governance]\nattestation_ttl_days = 0\n",
        "[governance.readiness]\nmin_success_rate = 1.5\n",
        "[governance]\nreport_days = 7\n",
    ],
)
def test_bad_governance_settings(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigInvalid):
        load(tmp_path, text)


def _state(snapshot: AutonomySnapshot, settings: Any) -> AutonomyState:
    state = AutonomyState(None, lambda: settings)  # type: ignore[arg-type]  # no I/O here
    state._snapshot = snapshot
    return state


def test_overlay_applies_the_governance_level_and_allowlist(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[autonomy]\nallowlist = ["send_chat_message"]\n'
        '[tenants.own.autonomy]\nlevel = "L3+"\nallowlist = ["log_interaction"]\n'
        "[tenants.inherits.budget]\nper_tenant_daily = 5\n",
    )
    base = gate_policy(settings)
    untouched = _state(AutonomySnapshot(), settings).overlay(base, settings)
    assert untouched is base

    snapshot = AutonomySnapshot(
        level_override=AutonomyLevel.L4,
        allowlist_additions=("create_briefing", "commit_pricing"),  # a hard stop never gets in
    )
    policy = _state(snapshot, settings).overlay(base, settings)
    assert policy.autonomy.level is AutonomyLevel.L4
    assert policy.autonomy.allowlist == {"send_chat_message", "create_briefing"}
    inherits = policy.for_tenant("inherits").autonomy
    assert inherits.level is AutonomyLevel.L4 and "create_briefing" in inherits.allowlist
    own = policy.for_tenant("own").autonomy
    assert own.level is AutonomyLevel.L3_PLUS  # its own level stays its ceiling
    assert own.allowlist == {"log_interaction"}
    assert _state(snapshot, settings).overlay(policy, settings) == policy  # idempotent
    policy.validate()


def test_the_gate_reads_the_state_governance_reads() -> None:
    # Both parse the same meta rows with snapshot_from: a breaker's pause, the
    # kill switch and a governance level mean the same to the gate.
    values = {
        "autonomy.level": "L4",
        "autonomy.kill_switch": "1",
        "breakers.paused_action_types": '["send_chat_message"]',
        "governance.allowlist_additions": '["create_briefing"]',
    }
    rows = GateBatchRows(meta=values, stored={}, idempotency={}, accounts={}, counters={}, goals={})
    state = batch_reads(rows).state
    assert state == snapshot_from(values)
    assert (state.level_override, state.kill_switch, state.paused) == (
        AutonomyLevel.L4,
        True,
        ("send_chat_message",),
    )
