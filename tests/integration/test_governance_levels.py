"""Autonomy level, kill switch, attestations and scope expansion over the real socket.

Distinct approvers are distinct peers: the in-process client carries another
user's credentials through the same dispatcher and access rules as the socket.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentd.core.timefmt import iso
from agentd.errors import AgentdError, ErrorCode
from tests.integration.conftest import Daemon, StartDaemon
from tests.integration.gov_support import audit_events, configure
from tests.unit.test_metrics import parse_exposition


async def refused(call: Any, code: ErrorCode) -> str:
    with pytest.raises(AgentdError) as caught:
        await call
    assert caught.value.code is code, caught.value.message
    return caught.value.message


async def snapshot(d: Daemon) -> dict[str, Any]:
    """What must not move when a command is refused."""
    level = await d.ask("level")
    return {
        "level": level,
        "proposals": await d.ask("governance.proposals"),
        "attestations": await d.ask("governance.attestations"),
    }


async def test_kill_switch_stops_auto_execution_and_persists(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        assert (await d.check())["decision"] == "AUTO_EXECUTE"
        await refused(d.ask("kill_switch.on", {}), ErrorCode.INVALID_ARGUMENT)
        on = await d.ask("kill_switch.on", {"reason": "bad deploy"})
        assert on["kill_switch"] is True and on["changed"] is True
        held = await d.intent("while off")
        assert (held["decision"], held["reason"]) == ("REQUIRE_APPROVAL", "KILL_SWITCH")
        assert (await d.ask("status"))["governance"]["kill_switch"] is True
        assert "KILL SWITCH ON" in d.app.status_line()
        # Turning it off is an approver's decision.
        await refused(
            d.as_user("carol", approver=False).call("kill_switch.off", {"reason": "x"}),
            ErrorCode.PERMISSION_DENIED,
        )
    async with daemon(settings) as d:
        assert (await d.ask("level"))["kill_switch"] is True
        assert (await d.check())["reason"] == "KILL_SWITCH"
        off = await d.ask("kill_switch.off", {"reason": "fixed"})
        assert off["kill_switch"] is False
        assert (await d.check())["decision"] == "AUTO_EXECUTE"
        assert (await d.ask("level"))["kill_switch_tested_at"] is not None
        again = await d.ask("kill_switch.off", {"reason": "twice"})
        assert again["changed"] is False
        records = await audit_events(d.app, "KILL_SWITCH_CHANGED")
        assert [(r.data["on"], r.data["reason"]) for r in records] == [
            (True, "bad deploy"),
            (False, "fixed"),
        ]


async def test_level_lowering_is_immediate_and_bad_levels_change_nothing(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        before = await snapshot(d)
        message = await refused(
            d.ask("level.set", {"level": "L5", "reason": "x"}), ErrorCode.INVALID_ARGUMENT
        )
        assert "L3, L3+, L4, L4+" in message
        await refused(d.ask("level.set", {"level": "L3"}), ErrorCode.INVALID_ARGUMENT)
        assert await snapshot(d) == before

        lowered = await d.ask("level.set", {"level": "l3", "reason": "holiday freeze"})
        assert lowered["changed"] is True and lowered["level"] == "L3"
        assert (await d.check())["reason"] == "AUTONOMY_LEVEL_L3"
        same = await d.ask("level.set", {"level": "L3", "reason": "again"})
        assert same["changed"] is False
        (change,) = await audit_events(d.app, "LEVEL_CHANGED")
        assert change.data["reason"] == "holiday freeze" and change.actor == "root"


async def test_scope_expansion_needs_two_distinct_approvers(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        alice, bob = d.as_user("alice"), d.as_user("bob")
        medium = json.dumps({"items": [f"p{n}" for n in range(11)]})  # MEDIUM risk: 11 items
        held = await d.check("send_chat_message", diff=medium)
        assert (held["decision"], held["reason"]) == ("REQUIRE_APPROVAL", "RISK_ABOVE_LEVEL")
        raised = await d.ask("level.set", {"level": "L4", "reason": "quarter of clean runs"})
        proposal = raised["proposal"]["id"]
        assert raised["proposal"]["approvals_missing"] == 2
        assert (await d.ask("level"))["level"] == "L3+"
        pending = await d.ask("pending")
        assert [p["id"] for p in pending["scope_expansions"]] == [proposal]
        await refused(d.ask("level.set", {"level": "L4+", "reason": "more"}), ErrorCode.CONFLICT)
        await refused(
            d.as_user("carol", approver=False).call("governance.approve", {"id": proposal}),
            ErrorCode.PERMISSION_DENIED,
        )

        first = await alice.call("governance.approve", {"id": proposal, "note": "ok"})
        assert first["status"] == "pending" and first["approvals_missing"] == 1
        before = await snapshot(d)
        message = await refused(alice.call("approve", {"id": proposal}), ErrorCode.CONFLICT)
        assert "alice has already approved" in message
        assert await snapshot(d) == before
        assert [r.actor for r in await audit_events(d.app, "APPROVAL_REFUSED")][-1] == "alice"

        done = await bob.call("governance.approve", {"id": proposal})
        assert done["status"] == "approved" and done["applied"]["level"] == "L4"
        assert [a["by"] for a in done["approvals"]] == ["alice", "bob"]
        level = await d.ask("level")
        assert (level["level"], level["source"]) == ("L4", "governance")
        assert (await d.check("send_chat_message", diff=medium))["decision"] == "AUTO_EXECUTE"
        applied = await audit_events(d.app, "SCOPE_EXPANSION_APPLIED")
        assert applied[0].data["approvers"] == ["alice", "bob"]
        await refused(
            d.as_user("dave").call("governance.approve", {"id": proposal}),
            ErrorCode.INVALID_STATE,
        )


async def test_rejected_expired_or_unsafe_expansions_change_nothing(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        alice, bob = d.as_user("alice"), d.as_user("bob")
        await refused(alice.call("governance.approve", {"id": "scope_nope"}), ErrorCode.NOT_FOUND)

        # Rejected.
        first = (await d.ask("level.set", {"level": "L4", "reason": "try"}))["proposal"]["id"]
        await alice.call("governance.approve", {"id": first})
        await refused(bob.call("reject", {"id": first}), ErrorCode.INVALID_ARGUMENT)
        rejected = await bob.call("reject", {"id": first, "reason": "not this quarter"})
        assert rejected["scope_expansion"]["status"] == "rejected"
        await refused(
            d.as_user("erin").call("governance.approve", {"id": first}), ErrorCode.INVALID_STATE
        )
        assert (await d.ask("level"))["level"] == "L3+"

        # Expired: fail closed.
        second = (await d.ask("level.set", {"level": "L4", "reason": "try again"}))["proposal"][
            "id"
        ]
        await alice.call("governance.approve", {"id": second})
        past = datetime.now(UTC) - timedelta(seconds=1)
        async with d.app.store.write() as tx:
            await tx.gov.update_proposal(second, {"expires_at": iso(past)})
        await refused(bob.call("governance.approve", {"id": second}), ErrorCode.EXPIRED)
        assert (await d.ask("governance.show", {"id": second}))["status"] == "expired"
        assert (await d.ask("level"))["level"] == "L3+"
        assert len(await audit_events(d.app, "SCOPE_EXPANSION_EXPIRED")) == 1

        # The kill switch on: the last approval is refused and not recorded.
        third = (await d.ask("level.set", {"level": "L4", "reason": "third"}))["proposal"]["id"]
        await alice.call("governance.approve", {"id": third})
        await d.ask("kill_switch.on", {"reason": "incident"})
        message = await refused(
            bob.call("governance.approve", {"id": third}), ErrorCode.INVALID_STATE
        )
        assert "kill switch" in message
        shown = await d.ask("governance.show", {"id": third})
        assert shown["status"] == "pending" and [a["by"] for a in shown["approvals"]] == ["alice"]
        await d.ask("kill_switch.off", {"reason": "over"})
        assert (await bob.call("governance.approve", {"id": third}))["status"] == "approved"
        assert (await d.ask("level"))["level"] == "L4"
        statuses = [p["status"] for p in (await d.ask("governance.proposals"))["proposals"]]
        assert statuses == ["approved", "expired", "rejected"]


async def test_attestations_count_then_expire(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings) as d:
        before = await snapshot(d)
        message = await refused(
            d.ask("governance.attest", {"item": "vibes", "by": "Dana", "evidence": "trust me"}),
            ErrorCode.INVALID_ARGUMENT,
        )
        assert "unknown readiness item 'vibes'" in message and "incident_playbook" in message
        message = await refused(
            d.ask("governance.attest", {"item": "success_rate", "by": "Dana", "evidence": "x"}),
            ErrorCode.INVALID_ARGUMENT,
        )
        assert "measured" in message
        await refused(
            d.ask("governance.attest", {"item": "runbooks", "by": "Dana", "evidence": " "}),
            ErrorCode.INVALID_ARGUMENT,
        )
        await refused(
            d.ask("governance.attest", {"item": "runbooks", "evidence": "wiki"}),
            ErrorCode.INVALID_ARGUMENT,
        )
        assert await snapshot(d) == before

        def item(report: dict[str, Any], name: str) -> dict[str, Any]:
            return next(i for c in report["checklists"] for i in c["items"] if i["id"] == name)

        assert item(await d.ask("governance.readiness"), "runbooks")["met"] is False
        made = await d.ask(
            "governance.attest", {"item": "runbooks", "by": "Dana Ops", "evidence": "wiki/rb v2"}
        )
        at, expires = datetime.fromisoformat(made["at"]), datetime.fromisoformat(made["expires_at"])
        assert expires - at == timedelta(days=settings.governance.attestation_ttl_days)
        report = await d.ask("governance.readiness")
        assert (
            item(report, "runbooks")["met"] is True
            and "Dana Ops" in item(report, "runbooks")["why"]
        )
        assert "runbooks" not in report["blockers"]

        async with d.app.store.write() as tx:
            await tx.execute(
                "UPDATE attestations SET expires_at = ? WHERE id = ?",
                (iso(datetime.now(UTC) - timedelta(seconds=1)), made["id"]),
            )
        report = await d.ask("governance.readiness")
        assert (
            item(report, "runbooks")["met"] is False
            and "expired" in item(report, "runbooks")["why"]
        )
        assert (await d.ask("governance.attestations"))["attestations"][0]["valid"] is False


async def test_metrics_command_and_bad_periods(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(short_tmp, monkeypatch)
    async with daemon(settings, accounts=True) as d:
        from tests.integration.gov_support import record_outcomes

        await d.intent("one")
        await d.intent("two", action="commit_pricing")  # hard stop: blocked, a safety trigger
        await record_outcomes(d.app, [("succeeded", "send_chat_message")] * 4)
        await record_outcomes(d.app, [("failed", "send_chat_message")])
        m = await d.ask("metrics", {"since": "1h"})
        c, r = m["counts"], m["rates"]
        assert (c["intents_total"], c["intents_auto_executed"], c["intents_blocked"]) == (2, 1, 1)
        assert (c["executions_succeeded"], c["executions_failed"]) == (4, 1)
        assert c["gate_triggers"] == 1
        assert r["success_rate"] == pytest.approx(0.8) and r["error_rate"] == pytest.approx(0.2)
        assert r["intent_failure_rate"] == pytest.approx(0.5)  # 1 failure, 2 intents
        old = await d.ask("metrics", {"since": "2020-01-01", "until": "2020-02-01"})
        assert old["counts"]["intents_total"] == 0 and old["rates"]["success_rate"] is None
        for args in ({"since": "yesterday-ish"}, {"since": "1h", "until": "2h"}, {"until": 5}):
            await refused(d.ask("metrics", args), ErrorCode.INVALID_ARGUMENT)

        written = await d.ask("task.run", {"name": "metrics_textfile", "wait": True})
        assert written["ok"] is True
        text = (settings.state_dir / "metrics" / "agentd.prom").read_text()
        families = parse_exposition(text)
        assert ({"result": "failed"}, 1.0) in families["agentd_executions_total"]["samples"]  # type: ignore[operator]
        # One failure in five executions trips the day-long error-rate rule: back to L3.
        tripped = families["agentd_breaker_tripped"]["samples"]
        assert ({"breaker": "high_error_rate"}, 1.0) in tripped  # type: ignore[operator]
        assert families["agentd_autonomy_level"]["samples"] == [({}, 0.0)]
        assert families["agentd_kill_switch"]["samples"] == [({}, 0.0)]
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert all(line.startswith("agentd_") and len(line.split(" ")) == 2 for line in samples)
