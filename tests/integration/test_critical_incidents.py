"""The critical-incident breaker can fire: a HIGH-risk change failing half-way, a HIGH-risk
rollback only a person can do, and an incident a person reports with agentctl.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from agentd.demosite import DemoSite
from agentd.errors import ErrorCode
from agentd.ops_config import DEFAULT_CHROMIUM
from tests.helpers import ask
from tests.integration.test_every_decision import AGENTCTL
from tests.integration.test_execution import (
    ExecutionDaemon,
    execution_daemon,
    expect_error,
    finished,
    propose,
    site,
)

__all__ = ["execution_daemon", "site"]  # the fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]

# A message about an ads budget: the budget change type makes it HIGH risk.
HIGH = {"domain": "ADS", "change_type": "budget_change"}


async def tripped(sock: Path) -> list[str]:
    with anyio.fail_after(20):
        while not (status := await ask(sock, "breaker.status"))["tripped"]:
            await anyio.sleep(0.1)
    return [t["key"] for t in status["tripped"]]


async def test_a_failing_high_risk_change_trips_the_critical_incident_breaker(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    async with execution_daemon() as (app, sock):
        # A HIGH-risk change that succeeds, for the rollback below.
        ok = await propose(
            sock,
            account="acme",
            action_type="send_follow_up_email",
            diff={"body": "Budget"},
            **HIGH,
        )
        assert (ok["decision"], ok["reason"], ok["risk_level"]) == (
            "REQUIRE_APPROVAL",
            "RISK_ABOVE_LEVEL",
            "HIGH",
        )
        await ask(sock, "approve", {"id": ok["intent_id"]})
        assert (await finished(app, ok["intent_id"]))["state"] == "succeeded"
        assert (await ask(sock, "breaker.status"))["tripped"] == []

        # The message goes out, then the back-office breaks: a HIGH-risk change half-done.
        site.fail("/crm/outbox")
        bad = await propose(
            sock, account="globex", action_type="send_follow_up_email", diff={"body": "B"}, **HIGH
        )
        await ask(sock, "approve", {"id": bad["intent_id"]})
        exe = await finished(app, bad["intent_id"])
        assert (exe["state"], exe["target_state"], exe["risk"]) == ("failed", "applied", "HIGH")
        assert await tripped(sock) == ["critical_incident"]
        incidents = (await ask(sock, "incidents.list", {}))["incidents"]
        assert [(i["kind"], i["severity"], i["ref"]) for i in incidents] == [
            ("breaker_tripped", "critical", "critical_incident"),
            ("execution_failed", "critical", exe["id"]),
        ]
        assert (await ask(sock, "level"))["level"] == "L3"
        site.clear_failures()

        # Only a person can take a sent HIGH-risk message back: a critical incident too.
        await ask(sock, "breaker.reset", {"name": "critical_incident", "reason": "site fixed"})
        sent = (await app.execution_views.show((await finished(app, ok["intent_id"]))["id"]))["id"]
        escalated = await ask(sock, "rollback.run", {"token": sent, "reason": "wrong budget"})
        assert escalated["state"] == "escalated"
        assert (await app.incidents.get(escalated["incident"])).severity == "critical"
        assert await tripped(sock) == ["critical_incident"]


async def test_a_person_reports_a_critical_incident_with_agentctl(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    async with execution_daemon() as (_app, sock):
        await expect_error(
            ErrorCode.INVALID_ARGUMENT,
            ask(sock, "incidents.open", {"severity": "urgent", "reason": "x"}),
        )
        await expect_error(
            ErrorCode.INVALID_ARGUMENT,
            ask(sock, "incidents.open", {"severity": "critical", "reason": "  "}),
        )
        usage = await anyio.run_process(
            [str(AGENTCTL), "incidents", "open", "--severity", "critical"], check=False
        )
        assert usage.returncode == 2 and b"needs --severity and --reason" in usage.stderr
        assert (await ask(sock, "incidents.list", {}))["incidents"] == []
        assert (await ask(sock, "breaker.status"))["tripped"] == []

        done = await anyio.run_process(
            [
                str(AGENTCTL),
                "--json",
                "incidents",
                "open",
                "--severity",
                "critical",
                "--reason",
                "The agent emailed a competitor's price list",
            ],
            check=False,
        )
        assert done.returncode == 0, done.stderr
        reported = json.loads(done.stdout)
        assert (reported["severity"], reported["kind"]) == ("critical", "reported")
        assert "competitor's price list" in reported["title"]
        assert await tripped(sock) == ["critical_incident"]
        assert (await ask(sock, "level"))["level"] == "L3"
