"""Hand-offs to a person, and intents nothing can carry out, in the daemon over its socket.

An intent mapped to the ``handoff`` executor (here: every unmapped action type,
``[execution] default_executor = "handoff"``) is approved as usual; its
execution notifies exactly what was approved, waits for a person, and is closed
with ``handoff done`` or ``handoff failed``. Without a mapping, the gate holds
the intent (``NO_EXECUTOR``) without consuming budget.
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
from tests.integration.test_execution import (
    BREAKER_RULES,
    ExecutionDaemon,
    Webhook,
    audit_events,
    execution_daemon,
    expect_error,
    finished,
    held,
    propose,
    site,
    webhook,
)

__all__ = ["execution_daemon", "site", "webhook"]  # fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]

SAMPLES = {"product": "grinder", "quantity": 2, "address": "Acme HQ, dock 4"}


async def test_an_approved_handoff_notifies_what_was_approved_and_is_closed_by_a_person(
    short_tmp: Path,
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
    webhook: Webhook,
) -> None:
    extra = 'default_executor = "handoff"\n'
    async with execution_daemon(extra=extra, webhook=webhook.url) as (
        app,
        sock,
    ):
        decided = await propose(
            sock, account="acme", action_type="ship_samples", diff=SAMPLES, rationale="trial"
        )
        # An unknown type waits for a person, and the trace says who would carry it out.
        assert (decided["decision"], decided["reason"]) == (
            "REQUIRE_APPROVAL",
            "UNKNOWN_ACTION_TYPE",
        )
        explained = await ask(sock, "intents.show", {"id": decided["intent_id"]})
        executor = next(e for e in explained["trace"] if e["check"] == "executor")
        assert executor["passed"] and executor["saw"]["executor"] == "handoff"
        assert "handed off to a person" in executor["said"]

        await ask(sock, "approve", {"id": decided["intent_id"], "note": "samples are fine"})
        exe = await held(app, decided["intent_id"], "handed_off")
        assert exe["executor"] == "handoff" and exe["operations"] == []
        # The notification carries exactly what was approved, on every channel.
        with anyio.fail_after(10):
            while not (await app.execution.get(exe["id"])).result["notified"]:
                await anyio.sleep(0.05)
        [body] = [b for b in webhook.bodies if b["kind"] == "handoff"]
        approved = body["data"]["approved"]
        assert approved["diff"] == SAMPLES and approved["action_type"] == "ship_samples"
        assert approved["approval"]["note"] == "samples are fine"
        assert approved["approval"]["source"] == "HUMAN"
        files = [
            json.loads(p.read_text())
            for p in (short_tmp / "state" / "notifications").glob("*.json")
        ]
        assert [f["data"]["approved"]["diff"] for f in files if f["kind"] == "handoff"] == [SAMPLES]
        listed = await ask(sock, "handoffs.list", {"status": "open"})
        assert [h["id"] for h in listed["handoffs"]] == [exe["id"]]
        assert listed["handoffs"][0]["state"] == "open"

        # Bad input loses nothing.
        await expect_error(
            ErrorCode.INVALID_ARGUMENT, ask(sock, "handoff.done", {"id": exe["id"], "note": " "})
        )
        await expect_error(
            ErrorCode.NOT_FOUND, ask(sock, "handoff.done", {"id": "exe_nope", "note": "x"})
        )
        await expect_error(
            ErrorCode.INVALID_ARGUMENT,
            ask(sock, "handoffs.list", {"status": "closed"}),
        )
        done = await ask(sock, "handoff.done", {"id": exe["id"], "note": "sent by courier"})
        assert (done["state"], done["note"]) == ("succeeded", "sent by courier")
        assert done["closed_by"] and done["closed_at"]
        again = await expect_error(
            ErrorCode.INVALID_STATE, ask(sock, "handoff.failed", {"id": exe["id"], "reason": "x"})
        )
        assert again.details["reason"] == "HANDOFF_CLOSED"
        shown = await app.execution_views.show(exe["id"])
        assert shown["state"] == "succeeded" and shown["rollback_token"] is not None
        # Only a person can take a person's work back: the rollback escalates.
        check = await ask(sock, "rollback.check", {"token": exe["id"]})
        assert check["type"] == "ESCALATED_RESTORE"
        assert await audit_events(app, exe["id"]) == [
            "EXECUTION_HANDED_OFF",
            "EXECUTION_COMPLETED",
        ]

        # A change executed by a browser is not a hand-off: a person cannot close it.
        note = await propose(
            sock, account="globex", action_type="log_interaction", diff={"note": "Called"}
        )
        ran = await finished(app, note["intent_id"])
        assert ran["state"] == "succeeded", ran
        err = await expect_error(
            ErrorCode.INVALID_STATE, ask(sock, "handoff.done", {"id": ran["id"], "note": "x"})
        )
        assert err.details["reason"] == "NOT_A_HANDOFF"

        metrics = await ask(sock, "metrics", {})
        counts = metrics["counts"]
        assert (counts["handoffs_done"], counts["handoffs_open"]) == (1, 0)
        assert site.state.messages == []  # nothing went to a customer
        assert (await ask(sock, "audit.verify"))["intact"] is True


async def test_a_failed_handoff_counts_for_the_breakers(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    extra = 'default_executor = "handoff"\n' + BREAKER_RULES
    async with execution_daemon(extra=extra) as (app, sock):
        ok = await propose(sock, account="acme", action_type="log_interaction", diff={"note": "a"})
        assert (await finished(app, ok["intent_id"]))["state"] == "succeeded"
        decided = await propose(sock, account="acme", action_type="ship_samples", diff=SAMPLES)
        await ask(sock, "approve", {"id": decided["intent_id"]})
        exe = await held(app, decided["intent_id"], "handed_off")
        await expect_error(
            ErrorCode.INVALID_ARGUMENT,
            ask(sock, "handoff.failed", {"id": exe["id"], "reason": ""}),
        )
        assert (await ask(sock, "breaker.status"))["tripped"] == []
        failed = await ask(
            sock, "handoff.failed", {"id": exe["id"], "reason": "warehouse is out of stock"}
        )
        assert failed["state"] == "failed" and failed["note"] == "warehouse is out of stock"
        with anyio.fail_after(20):
            while not (await ask(sock, "breaker.status"))["tripped"]:
                await anyio.sleep(0.1)
        tripped = (await ask(sock, "breaker.status"))["tripped"]
        assert [t["key"] for t in tripped] == ["high_error_rate"]
        assert await audit_events(app, exe["id"]) == ["EXECUTION_HANDED_OFF", "EXECUTION_FAILED"]
        await ask(sock, "task.run", {"name": "daily_digest_generation", "wait": True})
        digest = json.dumps(await ask(sock, "digest", {"show": True}))
        assert exe["id"] in digest and "warehouse is out of stock" in digest


async def test_what_nothing_carries_out_waits_and_consumes_no_budget(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    # Only messages are mapped: a note has no executor here.
    extra = '[execution.executors]\nsend_follow_up_email = "message"\n'
    async with execution_daemon(extra=extra) as (app, sock):
        decided = await propose(
            sock, account="acme", action_type="log_interaction", diff={"note": "Called"}
        )
        assert (decided["decision"], decided["reason"]) == ("REQUIRE_APPROVAL", "NO_EXECUTOR")
        explained = await ask(sock, "intents.show", {"id": decided["intent_id"]})
        assert explained["trace"][-1]["check"] == "executor"
        assert "nothing carries out log_interaction" in explained["trace"][-1]["said"]
        used = await app.store.read_one("SELECT COALESCE(SUM(used), 0) FROM budget_usage")
        assert used is not None and used[0] == 0
        assert await app.store.read_one("SELECT 1 FROM execution_queue") is None
        # A person cannot approve it into a dead end either.
        err = await expect_error(
            ErrorCode.NO_EXECUTOR, ask(sock, "approve", {"id": decided["intent_id"]})
        )
        assert "no executor carries out log_interaction" in err.message
        # A mapped type still runs.
        sent = await propose(
            sock, account="acme", action_type="send_follow_up_email", diff={"body": "Hi"}
        )
        assert sent["decision"] == "AUTO_EXECUTE"
