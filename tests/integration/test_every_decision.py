"""Every decision has a way to happen: the 17 action types that are not hard stops.

Each goes through the gate (approved by a person where the gate asks for one),
is carried out by its executor in real Chromium against the demo back-office,
and is checked in the back-office's own state: it took effect exactly once.
Each reversible one is then rolled back with ``agentctl rollback`` (the real
command line, over the real socket), newest first, and checked again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.daemon import App
from agentd.demosite import DemoSite
from agentd.ops_config import DEFAULT_CHROMIUM
from tests.helpers import ask
from tests.integration.test_execution import (
    ExecutionDaemon,
    execution_daemon,
    finished,
    propose,
    site,
)

__all__ = ["execution_daemon", "site"]  # the fixtures

pytestmark = [
    pytest.mark.slow(90),
    pytest.mark.browser,
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]
AGENTCTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "agentctl"


async def carry_out(
    app: App, sock: Path, account: str, action: str, diff: dict[str, Any]
) -> dict[str, Any]:
    """Propose, approve when the gate asks for it, and wait for the execution."""
    decided = await propose(sock, account=account, action_type=action, diff=diff)
    assert decided["decision"] != "BLOCKED", decided
    executor = next(e for e in decided["trace"] if e["check"] == "executor")
    assert executor["passed"] and executor["saw"]["executor"] not in (None, "handoff")
    if decided["decision"] == "REQUIRE_APPROVAL":
        await ask(sock, "approve", {"id": decided["intent_id"], "note": "checked"})
    exe = await finished(app, decided["intent_id"])
    assert exe["state"] == "succeeded", exe
    return exe


async def agentctl_rollback(exe: dict[str, Any]) -> dict[str, Any]:
    """Roll an execution back with the agentctl command line."""
    token = exe["rollback_token"]["token"]
    with anyio.fail_after(240):
        done = await anyio.run_process(
            [str(AGENTCTL), "--json", "rollback", token, "--reason", "integration check"],
            check=False,
        )
    assert done.returncode == 0, (done.stdout, done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["state"] == "rolled_back", result
    return result


async def test_every_autonomous_action_type_takes_effect_once_and_undoes(
    short_tmp: Path,
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    state = site.state
    assert state.account("globex").stage == "discovery"
    async with execution_daemon() as (app, sock):
        await ask(
            sock,
            "interactions.import",
            {"name": "i.jsonl"},
            upload=json.dumps(
                {
                    "id": "g1",
                    "account": "globex",
                    "kind": "email",
                    "direction": "in",
                    "at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
                    "summary": "Asked how the pilot could start in March.",
                }
            ).encode()
            + b"\n",
        )
        done: list[tuple[str, dict[str, Any], Callable[[], None]]] = []

        def messages() -> list[Any]:
            return state.messages_for("globex")

        exe = await carry_out(
            app, sock, "globex", "send_follow_up_email", {"subject": "Next steps", "body": "Hi"}
        )
        assert [m.subject for m in messages()] == ["Next steps"]
        await carry_out(
            app, sock, "globex", "send_routine_response", {"subject": "Re: invoice", "body": "Done"}
        )
        await carry_out(app, sock, "globex", "send_chat_message", {"body": "Anything we can do?"})
        assert [m.subject for m in messages()] == [
            "Next steps",
            "Re: invoice",
            "Following up",  # the message executor's default subject
        ]

        day = (date.today() + timedelta(days=3)).isoformat()
        exe = await carry_out(
            app, sock, "globex", "schedule_meeting", {"title": "Pilot kick-off", "date": day}
        )
        assert [m.title for m in state.meetings_for("globex")] == ["Pilot kick-off"]
        done.append(("meeting", exe, lambda: _check(state.meetings_for("globex") == [])))

        exe = await carry_out(
            app, sock, "globex", "qualify_conversation", {"budget": "20k", "need": "Pilot"}
        )
        account = state.account("globex")
        assert (account.budget, account.need, account.authority) == ("20k", "Pilot", "")
        done.append(
            (
                "qualification",
                exe,
                lambda: _check(
                    (state.account("globex").budget, state.account("globex").need) == ("", "")
                ),
            )
        )

        exe = await carry_out(app, sock, "globex", "progress_early_stage", {})
        assert state.account("globex").stage == "evaluation"
        assert await _agentd_stage(app, "globex") == "evaluation"
        done.append(("stage", exe, lambda: _check(state.account("globex").stage == "discovery")))

        notes: list[str] = []
        for action, diff in (
            ("update_account_context", {"note": "Champion moved to the platform team."}),
            ("create_briefing", {}),
            ("log_interaction", {"note": "Called about the pilot."}),
        ):
            exe = await carry_out(app, sock, "globex", action, diff)
            notes.append(exe["id"])
            count = len(notes)
            done.append(
                (action, exe, lambda n=count: _check(len(state.notes_for("globex")) == n - 1))
            )
        texts = [n.text for n in state.notes_for("globex")]
        assert len(texts) == 3 and texts[0] == "Champion moved to the platform team."
        assert texts[1].startswith("# Briefing: globex") and "pilot could start" in texts[1]
        briefing = texts[1].rsplit("Full briefing: ", 1)[1]
        assert Path(briefing).is_file() and Path(briefing).is_relative_to(short_tmp / "state")
        assert texts[2] == "Called about the pilot."
        # Each took effect exactly once: nothing else reached the back-office.
        assert (len(messages()), len(state.quotes), len(state.tasks)) == (3, 0, 0)

        for name, exe, restored in reversed(done):
            result = await agentctl_rollback(exe)
            assert result["type"] == "SOFT_UNDO", (name, result)
            restored()
        assert await _agentd_stage(app, "globex") == "discovery"
        assert len(messages()) == 3  # a sent message stays sent


async def test_every_approval_action_type_takes_effect_once_and_undoes(
    short_tmp: Path,
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    state = site.state
    state.add_contact("acme", "Wile E. Coyote", "ceo@acme.example", "CEO")
    meeting = state.schedule_meeting(
        "acme",
        title="Requirements workshop",
        day=(date.today() + timedelta(days=1)).isoformat(),
        at="09:00",
        duration="60",
        send_invite=False,
    )
    state.record_minutes("acme", meeting.id, "Agreed: three teams in the pilot.")
    state.set_plan("acme", "Win the pilot.")
    assert state.account("acme").stage == "evaluation"
    async with execution_daemon() as (app, sock):
        done: list[tuple[str, dict[str, Any], Callable[[], None]]] = []
        lines = [
            {"description": "Burr grinder", "quantity": 4, "unit_price": "129.00"},
            {"description": "Gooseneck kettle", "quantity": 4, "unit_price": "59.50"},
        ]
        exe = await carry_out(app, sock, "acme", "send_proposal", {"lines": lines})
        [quote] = state.quotes_for("acme")
        assert (str(quote.total), quote.status, quote.sent_to) == (
            "754.00",
            "sent",
            "contact@acme.example",
        )
        done.append(("quote", exe, lambda: _check(state.quotes[0].status == "withdrawn")))

        await carry_out(app, sock, "acme", "discuss_pricing", {})
        await carry_out(app, sock, "acme", "negotiate_terms", {"subject": "Our terms"})
        await carry_out(app, sock, "acme", "contact_c_suite", {})
        await carry_out(app, sock, "acme", "share_minutes_externally", {})
        sent = [(m.template, m.to, m.attachment) for m in state.messages_for("acme")]
        assert sent == [
            ("quote", "contact@acme.example", ""),
            ("pricing_discussion", "contact@acme.example", ""),
            ("terms_negotiation", "contact@acme.example", ""),
            ("executive_introduction", "ceo@acme.example", ""),
            ("meeting_minutes", "contact@acme.example", "Agreed: three teams in the pilot."),
        ]

        exe = await carry_out(app, sock, "acme", "progress_past_evaluation", {})
        assert state.account("acme").stage == "negotiation"
        assert await _agentd_stage(app, "acme") == "negotiation"
        done.append(("stage", exe, lambda: _check(state.account("acme").stage == "evaluation")))

        exe = await carry_out(
            app, sock, "acme", "modify_account_plan", {"plan": "Win the pilot.\nThen expand."}
        )
        assert state.account("acme").plan == "Win the pilot.\nThen expand."
        done.append(("plan", exe, lambda: _check(state.account("acme").plan == "Win the pilot.")))

        # The escalation goes to the account's manager, never to the customer.
        outbound = list(state.messages)
        await carry_out(
            app,
            sock,
            "acme",
            "escalate_to_management",
            {"subject": "Critical risk on Acme", "body": "Three tickets in a week."},
        )
        assert state.messages == outbound
        [task] = state.tasks_for("acme")
        assert (task.assignee, task.title) == (
            state.account("acme").manager,
            "Critical risk on Acme",
        )
        [told] = state.internal_notifications
        assert told.to == task.assignee and "Critical risk on Acme" in told.subject
        assert len(state.quotes) == 1 and len(state.messages) == 5

        for name, exe, restored in reversed(done):
            result = await agentctl_rollback(exe)
            assert result["type"] == "SOFT_UNDO", (name, result)
            restored()
        assert await _agentd_stage(app, "acme") == "evaluation"


async def test_nothing_to_do_it_with_is_refused_unchanged(
    short_tmp: Path,
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    async with execution_daemon() as (app, sock):
        for action, reason in (
            ("contact_c_suite", "NO_C_LEVEL_CONTACT"),
            ("share_minutes_externally", "NO_RECORDED_MEETING"),
        ):
            decided = await propose(sock, account="globex", action_type=action, diff={})
            await ask(sock, "approve", {"id": decided["intent_id"]})
            exe = await finished(app, decided["intent_id"])
            assert (exe["state"], exe["reason"], exe["target_state"]) == (
                "refused",
                reason,
                "unchanged",
            ), exe
            assert [op["phase"] for op in exe["operations"]] == ["snapshot"]
        assert site.state.messages_for("globex") == []


def _check(ok: bool) -> None:
    assert ok


async def _agentd_stage(app: App, account: str) -> str:
    row = await app.store.read_one("SELECT stage FROM accounts WHERE id = ?", (account,))
    assert row is not None
    return str(row[0])
