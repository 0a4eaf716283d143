"""The weekly governance cycle over a seeded history: report, chart, readiness, and a
scope expansion that two distinct approvers turn into a wider allowlist and level."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentd.core.governance import iso_week
from agentd.core.readiness import ATTESTABLE_IDS
from agentd.core.timefmt import iso
from agentd.services.autonomy import LEVEL_SINCE
from tests.integration.conftest import StartDaemon
from tests.integration.gov_support import audit_events, configure, record_outcomes
from tests.unit.test_report_chart import series_points

CHAT, BRIEFING = "send_chat_message", "create_briefing"
# Everything autonomous but create_briefing may auto-execute; people approve briefings.
ALLOWLIST = [
    "log_interaction",
    "progress_early_stage",
    "qualify_conversation",
    "schedule_meeting",
    "send_chat_message",
    "send_follow_up_email",
    "send_routine_response",
    "update_account_context",
]


async def test_weekly_cycle_reports_and_proposes_when_ready(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(
        short_tmp,
        monkeypatch,
        base=f'[autonomy]\nlevel = "L3"\nallowlist = {json.dumps(ALLOWLIST)}\n'
        "[scheduler]\nenabled = false\n"
        # The history is recorded by hand; approved intents stay in the hand-off queue.
        "[execution]\nenabled = false\n",
    )
    now = datetime.now(UTC)
    async with daemon(settings, accounts=True) as d:
        app = d.app
        # A week of history: executions every day, one failure on day 3, one rollback on day 5.
        ids: list[str] = []
        for day in range(7):
            at = now - timedelta(days=6 - day, hours=1)
            outcomes = [("succeeded", CHAT)] * 40 + [("succeeded", BRIEFING)] * 2
            if day == 2:
                outcomes.append(("failed", CHAT))
            ids += await record_outcomes(app, outcomes, at=at, autonomous=False, publish=False)
        await record_outcomes(
            app,
            [("succeeded", CHAT)],
            kind="rollback",
            at=now - timedelta(days=2, hours=1),
            rollback_of=ids[0],
            publish=False,
        )
        # People reviewed intents: five approved, one rejected (83 %).
        for n in range(6):
            intent = await d.intent(f"reviewed {n}")
            assert intent["decision"] == "REQUIRE_APPROVAL"
            if n < 5:
                await d.ask("approve", {"id": intent["intent_id"], "note": "fine"})
            else:
                await d.ask("reject", {"id": intent["intent_id"], "reason": "not now"})

        # Not ready yet: the report says why and nothing is proposed.
        first = await d.ask("task.run", {"name": "governance_cycle", "wait": True})
        assert first["ok"] is True and "not ready" in first["result"]
        # The report is named after the cycle's week (found, not computed from the
        # wall clock: the run may cross into a new week).
        (report,) = (settings.state_dir / "reports").glob("governance-*.md")
        text = report.read_text()
        assert "Not proposed: readiness is" in text and "days_at_l3" in text
        assert (await d.ask("governance.proposals"))["proposals"] == []

        # The rest of the evidence: six months at L3, the kill switch and the metrics file
        # exercised, every attestation recorded.
        async with app.store.write() as tx:
            since = iso(now - timedelta(days=200))
            await tx.gov.set_meta(LEVEL_SINCE, json.dumps({"level": "L3", "since": since}))
        await d.ask("kill_switch.on", {"reason": "quarterly test"})
        await d.ask("kill_switch.off", {"reason": "test done"})
        await d.ask("task.run", {"name": "metrics_textfile", "wait": True})
        for item in sorted(ATTESTABLE_IDS):
            await d.ask(
                "governance.attest", {"item": item, "by": "Dana Ops", "evidence": f"{item} doc"}
            )
        blocked = await d.check(BRIEFING)
        assert blocked["reason"] == "ACTION_TYPE_NOT_ALLOWLISTED"

        second = await d.ask("task.run", {"name": "governance_cycle", "wait": True})
        assert second["ok"] is True and "readiness 80/80 (ready)" in second["result"], second
        (proposal,) = (await d.ask("governance.proposals", {"status": "pending"}))["proposals"]
        report = Path(proposal["report"])
        assert report.parent == settings.state_dir / "reports"
        week = report.stem.removeprefix("governance-")
        assert week == iso_week(datetime.fromisoformat(proposal["created_at"]))
        text = report.read_text()
        assert (proposal["current_level"], proposal["target_level"]) == ("L3", "L3+")
        assert proposal["action_types"] == [BRIEFING]  # clean record, not yet allowlisted
        assert proposal["source"] == "governance" and proposal["report"] == str(report)
        shown = await d.ask("governance.show", {"id": proposal["id"]})
        assert shown["evidence"]["readiness"]["score"] == 80
        assert shown["evidence"]["metrics"]["counts"]["executions_failed"] == 1

        # The report: headline, trend with its chart, metrics, readiness, the proposal.
        assert text.startswith(f"# Governance report {week}\n")
        assert "Readiness 80 / 80: **ready**" in text
        chart_name = f"governance-{week}.svg"
        assert f"]({chart_name})" in text
        day_rows = [line for line in text.splitlines() if re.match(r"^\| \d\d-\d\d \|", line)]
        assert len(day_rows) == 7
        assert [row.split(" | ")[2] for row in day_rows] == ["0", "0", "1", "0", "0", "0", "0"]
        assert "| Executions succeeded | 294 |" in text
        assert "| Executions failed | 1 |" in text and "| Executions rolled back | 1 |" in text
        assert f"Proposed: `{proposal['id']}`: level L3 → L3+" in text and BRIEFING in text
        chart = series_points((report.parent / chart_name).read_text())
        # both lines drawn, one point a day (the rollback rate has no data on days without
        # a succeeded execution)
        assert sum(len(run) for run in chart["success rate %"]) == 7
        assert chart["rollback rate %"]
        tasks = {t["name"]: t for t in (await d.ask("tasks"))["tasks"]}
        assert tasks["governance_cycle"]["runs"] == 2

        # Two distinct approvers widen the scope; the change is audited.
        await d.as_user("alice").call("approve", {"id": proposal["id"]})
        assert (await d.check(BRIEFING))["reason"] == "ACTION_TYPE_NOT_ALLOWLISTED"
        done = await d.as_user("bob").call("governance.approve", {"id": proposal["id"]})
        assert done["applied"] == {"from": "L3", "level": "L3+", "added": [BRIEFING]}
        level = await d.ask("level")
        assert level["level"] == "L3+" and level["allowlist_additions"] == [BRIEFING]
        assert (await d.check(BRIEFING))["decision"] == "AUTO_EXECUTE"
        (allowlisted,) = await audit_events(app, "ALLOWLIST_CHANGED")
        assert allowlisted.data == {"added": [BRIEFING], "proposal": proposal["id"]}

        # A new level starts its clock again: the next cycle does not propose more.
        third = await d.ask("task.run", {"name": "governance_cycle", "wait": True})
        assert "not ready" in third["result"] and "proposal none" in third["result"]
