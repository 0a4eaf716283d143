"""Circuit breakers wired into the daemon, driven over the real socket.

Outcomes are stored and published the way the execution engine does it; the
breakers hear them on the app's event hub and act at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentd.errors import AgentdError, ErrorCode
from tests.integration.conftest import StartDaemon
from tests.integration.gov_support import (
    audit_events,
    configure,
    record_outcomes,
)

CHAT, EMAIL = "send_chat_message", "send_follow_up_email"


async def error_code(call: object) -> ErrorCode:
    with pytest.raises(AgentdError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code


async def test_error_rate_trip_demotes_to_l3_until_people_approve(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        assert (await d.intent("before"))["decision"] == "AUTO_EXECUTE"
        await record_outcomes(d.app, [("succeeded", EMAIL)] * 9)
        assert (await d.ask("breaker.status"))["tripped"] == []
        d.statuses()

        # The tenth execution fails: 1 of 10 is 10 % > 5 %.
        await record_outcomes(d.app, [("failed", CHAT)])

        status = await d.ask("status")
        assert status["governance"]["breakers_tripped"] == ["high_error_rate"]
        assert status["governance"]["level"] == "L3"
        assert any("breaker tripped: high_error_rate" in s for s in d.statuses())
        level = await d.ask("level")
        assert (level["level"], level["source"]) == ("L3", "governance")
        after = await d.intent("after")
        assert (after["decision"], after["reason"]) == ("REQUIRE_APPROVAL", "AUTONOMY_LEVEL_L3")

        (incident,) = [
            i for i in await d.app.store.execution.list_incidents() if i.kind == "breaker_tripped"
        ]
        assert (incident.severity, incident.ref, incident.status) == (
            "critical",
            "high_error_rate",
            "open",
        )
        assert incident.notified, "the emergency contact was told"
        # Autonomous actions failed: the breaker's incident is counted as theirs.
        assert incident.autonomous is True
        metrics = await d.ask("metrics", {"since": "1h"})
        assert metrics["counts"]["incidents_from_autonomous"] == 1
        await d.ask("task.run", {"name": "governance_cycle", "wait": True})
        (report,) = (settings.state_dir / "reports").glob("governance-*.md")
        text = report.read_text()
        assert "| Incidents | 1 (critical 1) |" in text
        assert "| Incidents from autonomous actions | 1 |" in text
        assert "| Error rate (failed / finished executions) | 10.00% |" in text
        (tripped,) = await audit_events(d.app, "BREAKER_TRIPPED")
        assert tripped.data["rule"] == "high_error_rate" and tripped.data["incident"] == incident.id
        changed = await audit_events(d.app, "LEVEL_CHANGED")
        assert [(r.data["from"], r.data["to"], r.data["source"]) for r in changed] == [
            ("L3+", "L3", "breaker")
        ]
        notes = [
            json.loads(p.read_text()) for p in (settings.state_dir / "notifications").iterdir()
        ]
        assert any(n["kind"] == "breaker" and "high_error_rate" in n["title"] for n in notes)

        await d.ask("task.run", {"name": "daily_digest_generation", "wait": True})
        digest = (await d.ask("digest", {"show": True}))["content"]
        assert "## Breaker events" in digest
        assert "high_error_rate" in digest and "revert_to_l3" in digest

        # Bad resets change nothing.
        assert await error_code(d.ask("breaker.reset", {"name": "high_error_rate"})) is (
            ErrorCode.INVALID_ARGUMENT
        )
        assert await error_code(d.ask("breaker.reset", {"name": "nope", "reason": "x"})) is (
            ErrorCode.NOT_FOUND
        )
        assert (
            await error_code(d.ask("breaker.reset", {"name": "high_rollback_rate", "reason": "x"}))
            is ErrorCode.INVALID_STATE
        )
        assert (await d.ask("breaker.status"))["tripped"][0]["key"] == "high_error_rate"

        # A reset restores the breaker and nothing else: the level stays L3.
        reset = await d.ask("breaker.reset", {"name": "high_error_rate", "reason": "site fixed"})
        assert reset["reset"] == ["high_error_rate"] and reset["level"] == "L3"
        assert (await d.ask("status"))["governance"]["breakers_tripped"] == []
        assert (await d.ask("level"))["level"] == "L3"
        assert (await d.intent("after reset"))["reason"] == "AUTONOMY_LEVEL_L3"
        assert (
            await error_code(d.ask("breaker.reset", {"name": "high_error_rate", "reason": "again"}))
            is ErrorCode.INVALID_STATE
        )
        assert [r.data["reason"] for r in await audit_events(d.app, "BREAKER_RESET")] == [
            "site fixed"
        ]

        # Raising the level back takes two distinct approvers.
        raised = await d.ask("level.set", {"level": "L3+", "reason": "breaker dealt with"})
        assert raised["changed"] is False and raised["level"] == "L3"
        proposal = raised["proposal"]["id"]
        await d.as_user("alice").call("governance.approve", {"id": proposal})
        assert (await d.ask("level"))["level"] == "L3"
        done = await d.as_user("bob").call("approve", {"id": proposal, "note": "read the report"})
        assert done["scope_expansion"]["status"] == "approved"
        assert (await d.ask("level"))["level"] == "L3+"
        assert (await d.intent("after approval"))["decision"] == "AUTO_EXECUTE"


async def test_repeated_failures_pause_one_action_type(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        # 57 successes and 3 failures: an error rate of exactly 5 %, which does not trip.
        await record_outcomes(d.app, [("succeeded", EMAIL)] * 57)
        await record_outcomes(d.app, [("failed", CHAT)] * 2)
        assert (await d.ask("breaker.status"))["tripped"] == []
        await record_outcomes(d.app, [("failed", CHAT)])

        status = await d.ask("breaker.status")
        assert [t["key"] for t in status["tripped"]] == [f"repeated_command_failures:{CHAT}"]
        assert status["paused_action_types"] == [CHAT] and status["level"] == "L3+"
        paused = await d.check(CHAT)
        assert (paused["decision"], paused["reason"]) == ("REQUIRE_APPROVAL", "ACTION_TYPE_PAUSED")
        assert (await d.check(EMAIL))["decision"] == "AUTO_EXECUTE"
        (incident,) = await d.app.store.execution.list_incidents()
        assert incident.severity == "high"

        reset = await d.ask(
            "breaker.reset", {"name": "repeated_command_failures", "reason": "selector fixed"}
        )
        assert reset["unpaused"] == [CHAT]
        assert (await d.check(CHAT))["decision"] == "AUTO_EXECUTE"
        assert (await d.ask("level"))["paused_action_types"] == []


async def test_alert_only_mode_changes_nothing_but_says_so(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch, "[breakers]\nalert_only = true\n")
    async with daemon(settings, accounts=True) as d:
        await record_outcomes(d.app, [("succeeded", EMAIL)] * 9 + [("failed", CHAT)] * 3)
        status = await d.ask("breaker.status")
        keys = sorted(t["key"] for t in status["tripped"])
        assert keys == ["high_error_rate", f"repeated_command_failures:{CHAT}"]
        assert all(t["alert_only"] and t["effects"] == [] for t in status["tripped"])
        assert status["level"] == "L3+" and status["paused_action_types"] == []
        assert (await d.check(CHAT))["decision"] == "AUTO_EXECUTE"
        assert len(await d.app.store.execution.list_incidents()) == 2
        assert (await d.ask("status"))["governance"]["breakers_tripped"] == keys


async def test_critical_incident_trips_and_rollback_rate_only_alerts(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        done = await record_outcomes(d.app, [("succeeded", EMAIL)] * 10)
        await record_outcomes(
            d.app, [("succeeded", EMAIL)] * 2, kind="rollback", rollback_of=done[0]
        )
        status = await d.ask("breaker.status")
        (rollback,) = status["tripped"]
        assert rollback["key"] == "high_rollback_rate" and rollback["action"] == "alert_only"
        assert status["level"] == "L3+", "the rollback rule only alerts"

        await d.app.incidents.open(severity="high", kind="manual", title="A customer complained")
        assert len((await d.ask("breaker.status"))["tripped"]) == 1
        await d.app.incidents.open(severity="critical", kind="manual", title="Wrong prices live")
        status = await d.ask("breaker.status")
        assert sorted(t["key"] for t in status["tripped"]) == [
            "critical_incident",
            "high_rollback_rate",
        ]
        assert status["level"] == "L3"
        # The breaker's own critical incident did not trip anything else.
        assert len(await audit_events(d.app, "BREAKER_TRIPPED")) == 2


async def test_trips_survive_a_restart_and_windows_are_rebuilt(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        await record_outcomes(d.app, [("succeeded", EMAIL)] * 9 + [("failed", CHAT)])
        assert (await d.ask("status"))["governance"]["breakers_tripped"] == ["high_error_rate"]
    async with daemon(settings) as d:
        assert (await d.ask("status"))["governance"]["breakers_tripped"] == ["high_error_rate"]
        assert (await d.ask("level"))["level"] == "L3"
        assert "breaker tripped: high_error_rate" in d.app.status_line()
        await d.ask("breaker.reset", {"name": "high_error_rate", "reason": "fixed"})
        # Outcomes stored while nobody listened (a crash before they were published).
        await record_outcomes(d.app, [("failed", CHAT)] * 3, publish=False)
    async with daemon(settings) as d:
        tripped = (await d.ask("status"))["governance"]["breakers_tripped"]
        # Rebuilt from the store: the failures after the reset trip again; those before do not.
        assert tripped == [f"repeated_command_failures:{CHAT}"]
        assert len(await audit_events(d.app, "BREAKER_TRIPPED")) == 2


async def test_bad_rules_stop_start_up_and_reload(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings) as d:
        cfg = short_tmp / "agentd.toml"
        good = cfg.read_text()
        cfg.write_text(
            good + '[[breakers.rules]]\nname = "x"\nmetric = "latency"\nthreshold = 1\n'
            'window = "5m"\naction = "alert_only"\nseverity = "low"\n'
        )
        with pytest.raises(AgentdError) as caught:
            await d.ask("reload")
        assert caught.value.code is ErrorCode.CONFIG_INVALID
        assert "breaker rule 'x'" in caught.value.message and "metric" in caught.value.message
        rules = [r["name"] for r in (await d.ask("breaker.status"))["rules"]]
        assert rules == [
            "high_error_rate",
            "repeated_command_failures",
            "critical_incident",
            "high_rollback_rate",
        ]
