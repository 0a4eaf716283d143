"""The gate through the real socket and a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.commands.registry import InProcessClient, Peer
from agentd.config import load_settings
from agentd.daemon import App, build_dispatcher
from agentd.errors import AgentdError, ErrorCode
from tests.helpers import ask, serving

CONFIG = """
[autonomy]
level = "L3+"
approval_ttl_hours = {ttl}

[budget]
per_tenant_daily = 8
per_account_daily = 3
per_action_type_daily = 6

[control]
approvers_group = "agentd-approvers-test"

# These tests read the hand-off queue and write the file directly; the
# execution engine (tested on its own) leaves the queue alone here.
[execution]
enabled = false
"""

ACCOUNTS = """id,tenant,name,stage,trusted_mode,domains
globex,t1,Globex,discovery,ACTIVE,SALES;SEO
initech,t1,Initech,prospect,ACTIVE,SALES
hooli,t1,Hooli,qualification,ACTIVE,SALES
acme,t1,Acme,negotiation,ACTIVE,SALES
wayne,t1,Wayne,prospect,NONE,SALES
umbrella,t2,Umbrella,discovery,ACTIVE,SEO
"""


@dataclass
class Gate:
    app: App
    socket: Path
    config: Path
    db: Path

    async def call(self, cmd: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
        return await ask(self.socket, cmd, args, **kw)

    async def tamper(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Write to the file behind the daemon's back, on a worker thread.

        The daemon serves in this process: a write made on the event loop
        would freeze it, and a transaction it has under way, until SQLite's
        busy timeout gives up ("database is locked").
        """

        def run() -> None:
            con = sqlite3.connect(self.db)
            try:
                con.execute(sql, params)
                con.commit()
            finally:
                con.close()

        await anyio.to_thread.run_sync(run)

    def count(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        con = sqlite3.connect(self.db)
        try:
            return int(con.execute(sql, params).fetchone()[0])
        finally:
            con.close()


async def start(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch, ttl: float = 72
) -> AsyncIterator[Gate]:
    cfg = short_tmp / "agentd.toml"
    cfg.write_text(CONFIG.format(ttl=ttl))
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    settings = load_settings(None)
    async with serving(settings) as app:
        gate = Gate(app, settings.resolved_socket_path, cfg, settings.database_path)
        await gate.call("accounts.import", {"name": "accounts.csv"}, upload=ACCOUNTS.encode())
        yield gate


@pytest.fixture
async def gate(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gate]:
    async for g in start(daemon_env, short_tmp, monkeypatch):
        yield g


def intent(
    account: str = "globex", action: str = "send_follow_up_email", **kw: Any
) -> dict[str, Any]:
    return {"tenant": "t1", "account": account, "action_type": action, **kw}


async def expect_error(coro: Any, code: ErrorCode) -> AgentdError:
    with pytest.raises(AgentdError) as info:
        await coro
    assert info.value.code == code, info.value.message
    return info.value


# -- accounts ------------------------------------------------------------------------


async def test_accounts_imported_and_listed(gate: Gate) -> None:
    listed = await gate.call("accounts.list", {"tenant": "t1"})
    assert [a["id"] for a in listed["accounts"]] == ["acme", "globex", "hooli", "initech", "wayne"]
    shown = await gate.call("accounts.show", {"id": "globex"})
    assert shown["domains"] == ["SALES", "SEO"] and shown["trusted_mode"] == "ACTIVE"


@pytest.mark.parametrize(
    ("name", "body", "fragment"),
    [
        ("a.csv", "id,tenant,name\nx,t1,X\n", "line 1: stage: column missing"),
        ("a.csv", "id,tenant,name,stage\nx,t1,X,prospect\ny,t1,Y,limbo\n", "line 3: stage"),
        ("a.csv", "id,tenant,name,stage\nx,t1,X,prospect\nx,t1,X,prospect\n", "appears twice"),
        ("a.jsonl", '{"id":"x","tenant":"t1","name":"X","stage":"prospect"}\nnot json\n', "line 2"),
        (
            "a.jsonl",
            '{"id":"x","tenant":"t1","name":"X","stage":"prospect","colour":"red"}\n',
            "colour: unknown field",
        ),
        ("a.jsonl", '{"id":"Bad Id!","tenant":"t1","name":"X","stage":"prospect"}\n', "id:"),
        ("a.csv", "", "no accounts"),
        ("a.txt", "x", "cannot tell the format"),
    ],
)
async def test_bad_account_files_import_nothing(
    gate: Gate, name: str, body: str, fragment: str
) -> None:
    before = gate.count("SELECT count(*) FROM accounts")
    err = await expect_error(
        gate.call("accounts.import", {"name": name}, upload=body.encode()),
        ErrorCode.INVALID_ARGUMENT,
    )
    assert fragment in err.message
    assert gate.count("SELECT count(*) FROM accounts") == before


async def test_skip_bad_reports_what_it_skipped(gate: Gate) -> None:
    body = "id,tenant,name,stage\nnew1,t1,N,prospect\nnew2,t1,N,limbo\n"
    r = await gate.call(
        "accounts.import", {"name": "a.csv", "skip_bad": True}, upload=body.encode()
    )
    assert r["imported"] == 1 and r["skipped"] == 1
    assert r["skipped_rows"][0]["line"] == 3


async def test_account_set_stage_and_trust(gate: Gate) -> None:
    r = await gate.call("accounts.set", {"id": "wayne", "stage": "discovery", "trust": "ACTIVE"})
    assert r["stage"] == "discovery" and r["trusted_mode"] == "ACTIVE"
    await expect_error(
        gate.call("accounts.set", {"id": "wayne", "stage": "limbo"}), ErrorCode.INVALID_ARGUMENT
    )
    await expect_error(
        gate.call("accounts.set", {"id": "nobody", "stage": "prospect"}), ErrorCode.NOT_FOUND
    )


# -- decisions ---------------------------------------------------------------------------


async def test_auto_execute_consumes_once_and_hands_off(gate: Gate) -> None:
    first = await gate.call("propose", intent(rationale="buying signal"))
    assert first["decision"] == "AUTO_EXECUTE"
    assert first["approval_source"] == "POLICY" and first["auto_executed"] is True
    assert [t["check"] for t in first["trace"]][-1] == "budget"
    again = await gate.call("propose", intent(rationale="buying signal"))
    assert again["duplicate"] is True and again["intent_id"] == first["intent_id"]
    assert gate.count("SELECT count(*) FROM budget_consumption") == 1
    assert (
        gate.count("SELECT used FROM budget_usage WHERE scope='account' AND key='t1/globex'") == 1
    )
    assert gate.count("SELECT count(*) FROM execution_queue") == 1
    events = [r["event"] for r in (await gate.call("audit.tail", {"n": 2}))["records"]]
    assert events[-2:] == ["PROPOSAL_CREATED", "PROPOSAL_AUTO_APPROVED"]
    last = (await gate.call("audit.tail", {"n": 1}))["records"][0]
    assert last["data"] == {"approval_source": "POLICY", "auto_executed": True, "handed_off": True}
    assert gate.count("SELECT count(*) FROM idempotency WHERE state = 'PUBLISHED'") == 1


@pytest.mark.parametrize(
    ("fields", "decision", "reason"),
    [
        (intent("acme"), "REQUIRE_APPROVAL", "STAGE_GATED"),
        (intent("wayne"), "REQUIRE_APPROVAL", "TRUST_NOT_ACTIVE"),
        (intent(action="send_proposal"), "REQUIRE_APPROVAL", "APPROVAL_REQUIRED_TIER"),
        (intent(action="commit_pricing"), "BLOCKED", "HARD_STOP"),
        (intent(action="made_up_action"), "REQUIRE_APPROVAL", "NO_EXECUTOR"),
        (intent(domain="SEO", change_type="domain_redirect"), "BLOCKED", "FORBIDDEN_CHANGE_TYPE"),
        (intent(confidence=0.5), "REQUIRE_APPROVAL", "LOW_CONFIDENCE"),
        (
            intent(
                domain="SEO", change_type="meta_update", diff={f"field{i}": "x" for i in range(12)}
            ),
            "REQUIRE_APPROVAL",
            "RISK_ABOVE_LEVEL",
        ),
    ],
)
async def test_decisions_without_budget(
    gate: Gate, fields: dict[str, Any], decision: str, reason: str
) -> None:
    r = await gate.call("propose", fields)
    assert (r["decision"], r["reason"]) == (decision, reason)
    assert gate.count("SELECT count(*) FROM budget_consumption") == 0
    assert gate.count("SELECT count(*) FROM execution_queue") == 0
    shown = await gate.call("intents.show", {"id": r["intent_id"]})
    assert shown["trace"] == r["trace"]


async def test_kill_switch_in_state_stops_auto_execution(gate: Gate) -> None:
    await gate.app.store.set_meta("autonomy.kill_switch", "1")
    r = await gate.call("propose", intent())
    assert (r["decision"], r["reason"]) == ("REQUIRE_APPROVAL", "KILL_SWITCH")


async def test_budget_exhausted_routes_to_approval(gate: Gate) -> None:
    results = [await gate.call("propose", intent(rationale=f"r{i}")) for i in range(5)]
    decisions = [(r["decision"], r["reason"]) for r in results]
    assert decisions[:3] == [("AUTO_EXECUTE", "AUTO_APPROVED")] * 3
    assert decisions[3:] == [("REQUIRE_APPROVAL", "BUDGET_EXHAUSTED")] * 2
    assert gate.count("SELECT count(*) FROM budget_consumption") == 3


async def test_policy_check_writes_nothing(gate: Gate) -> None:
    tables = (
        "intents",
        "budget_usage",
        "budget_consumption",
        "idempotency",
        "execution_queue",
        "audit",
    )
    before = {t: gate.count(f"SELECT count(*) FROM {t}") for t in tables}
    r = await gate.call("policy.check", intent())
    assert r["decision"] == "AUTO_EXECUTE" and r["dry_run"] is True
    assert {t: gate.count(f"SELECT count(*) FROM {t}") for t in tables} == before


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (intent("nobody"), ErrorCode.NOT_FOUND),
        ({**intent(), "tenant": "t2"}, ErrorCode.INVALID_ARGUMENT),
        (intent(diff="{not json"), ErrorCode.INVALID_ARGUMENT),
        (intent(confidence=1.5), ErrorCode.INVALID_ARGUMENT),
        (intent(action="Send Email!"), ErrorCode.INVALID_ARGUMENT),
        ({"tenant": "t1", "account": "globex"}, ErrorCode.INVALID_ARGUMENT),
    ],
)
async def test_bad_intents_are_refused_and_nothing_written(
    gate: Gate, fields: dict[str, Any], code: ErrorCode
) -> None:
    await expect_error(gate.call("propose", fields), code)
    assert gate.count("SELECT count(*) FROM intents") == 0


async def test_reused_id_with_other_content_is_refused(gate: Gate) -> None:
    first = await gate.call("propose", intent(intent_id="int_mine"))
    assert first["intent_id"] == "int_mine"
    await expect_error(
        gate.call("propose", intent(action="send_chat_message", intent_id="int_mine")),
        ErrorCode.CONFLICT,
    )


async def test_batch_file_reports_each_line(gate: Gate) -> None:
    lines = [
        json.dumps(intent(rationale="a")),
        "not json",
        json.dumps(intent(action="commit_pricing")),
        json.dumps(intent(rationale="a")),
        json.dumps(intent("nobody")),
    ]
    r = await gate.call("propose.batch", {"name": "d.jsonl"}, upload="\n".join(lines).encode())
    by_line = {x["line"]: x for x in r["results"]}
    assert by_line[1]["decision"] == "AUTO_EXECUTE"
    assert by_line[2]["error"]["name"] == "INVALID_ARGUMENT"
    assert by_line[3]["decision"] == "BLOCKED"
    assert by_line[4]["intent_id"] == by_line[1]["intent_id"]
    assert by_line[5]["error"]["name"] == "NOT_FOUND"
    assert gate.count("SELECT count(*) FROM budget_consumption") == 1


# -- concurrency ------------------------------------------------------------------------


async def test_concurrent_submissions_consume_once_and_respect_limits(gate: Gate) -> None:
    same = intent("initech", rationale="same")
    distinct = [
        intent(acct, rationale=f"d{i}")
        for i in range(10)
        for acct in ("globex", "hooli", "initech")
    ]
    results: list[dict[str, Any]] = []

    async def go(fields: dict[str, Any]) -> None:
        results.append(await gate.call("propose", fields))

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(go, same)
        for fields in distinct:
            tg.start_soon(go, fields)
    auto = {r["intent_id"] for r in results if r["decision"] == "AUTO_EXECUTE"}
    same_ids = {
        r["intent_id"] for r in results if r["account"] == "initech" and r["rationale"] == "same"
    }
    assert len(same_ids) == 1
    consumed = gate.count("SELECT count(*) FROM budget_consumption")
    assert consumed == len(auto)
    # Never over a limit: tenant 8, account 3, action type 6.
    assert consumed <= 6
    for acct in ("globex", "hooli", "initech"):
        used = gate.count(
            "SELECT count(*) FROM budget_consumption c JOIN intents i "
            "ON i.id = c.intent_id WHERE i.account = ?",
            (acct,),
        )
        assert used <= 3
        assert (
            gate.count(
                "SELECT coalesce(max(used), 0) FROM budget_usage WHERE key = ?", (f"t1/{acct}",)
            )
            == used
        )
    assert gate.count("SELECT count(*) FROM execution_queue") == len(auto)
    assert any(r["reason"] == "BUDGET_EXHAUSTED" for r in results)
    assert gate.app.gate.batches < len(results)  # decisions were grouped
    assert (await gate.call("audit.verify"))["intact"]


# -- approvals ---------------------------------------------------------------------------


async def test_approve_records_human_and_hands_off(gate: Gate) -> None:
    r = await gate.call("propose", intent(account="acme", rationale="Checking in"))
    assert (await gate.call("intents.show", {"id": r["intent_id"]}))["handoff"] is None
    approved = await gate.call("approve", {"id": r["intent_id"], "note": "ok"})
    shown = await gate.call("intents.show", {"id": r["intent_id"]})
    assert shown["handoff"] == {"enqueued_at": shown["decided_at"], "state": "queued"}
    assert approved["status"] == "approved" and approved["approval_source"] == "HUMAN"
    assert approved["auto_executed"] is False and approved["decided_by"] == "root"
    assert gate.count("SELECT count(*) FROM execution_queue WHERE approval_source='HUMAN'") == 1
    assert gate.count("SELECT count(*) FROM budget_consumption") == 0
    await expect_error(gate.call("approve", {"id": r["intent_id"]}), ErrorCode.INVALID_STATE)
    await expect_error(
        gate.call("reject", {"id": r["intent_id"], "reason": "late"}), ErrorCode.INVALID_STATE
    )
    with pytest.raises(sqlite3.IntegrityError, match="written once"):
        await gate.tamper(
            "UPDATE intents SET approval_source='POLICY' WHERE id=?", (r["intent_id"],)
        )


async def test_blocked_cannot_be_approved_and_refusal_is_audited(gate: Gate) -> None:
    r = await gate.call("propose", intent(action="approve_discount"))
    await expect_error(gate.call("approve", {"id": r["intent_id"]}), ErrorCode.BLOCKED_INTENT)
    last = (await gate.call("audit.tail", {"n": 1}))["records"][0]
    assert last["event"] == "APPROVAL_REFUSED" and last["subject"] == r["intent_id"]


async def test_reject_needs_reason_and_unknown_id(gate: Gate) -> None:
    r = await gate.call("propose", intent(action="send_proposal"))
    await expect_error(
        gate.call("reject", {"id": r["intent_id"], "reason": " "}), ErrorCode.INVALID_ARGUMENT
    )
    rejected = await gate.call("reject", {"id": r["intent_id"], "reason": "wrong account"})
    assert rejected["status"] == "rejected"
    await expect_error(gate.call("approve", {"id": "int_nope"}), ErrorCode.NOT_FOUND)


async def test_non_approver_may_read_but_not_approve(gate: Gate) -> None:
    r = await gate.call("propose", intent(account="acme", rationale="Checking in"))
    reader = InProcessClient(
        build_dispatcher(gate.app), Peer(1, 4321, 4321, "rita", frozenset({"rita"}))
    )
    # Not in any configured group: not even reading.
    with pytest.raises(AgentdError) as info:
        await reader.call("pending")
    assert info.value.code == ErrorCode.PERMISSION_DENIED
    approver = InProcessClient(
        build_dispatcher(gate.app),
        Peer(1, 4322, 4322, "alan", frozenset({"agentd-approvers-test"})),
    )
    done = await approver.call("approve", {"id": r["intent_id"]})
    assert done["decided_by"] == "alan"
    refused = [
        x
        for x in (await gate.call("audit.tail", {"n": 10}))["records"]
        if x["event"] == "ACCESS_REFUSED"
    ]
    assert refused and refused[-1]["actor"] == "rita"


async def test_pending_approvals_expire_fail_closed(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async for g in start(daemon_env, short_tmp, monkeypatch, ttl=0.0002):  # under a second
        r = await g.call("propose", intent(account="acme", rationale="Checking in"))
        await anyio.sleep(1.0)
        await expect_error(g.call("approve", {"id": r["intent_id"]}), ErrorCode.EXPIRED)
        shown = await g.call("intents.show", {"id": r["intent_id"]})
        assert shown["status"] == "expired"
        r2 = await g.call("propose", intent(account="acme", rationale="2"))
        await anyio.sleep(1.0)
        assert await g.app.gate.expire_due() == 1
        events = [x["event"] for x in (await g.call("audit.tail", {"n": 30}))["records"]]
        assert events.count("PROPOSAL_EXPIRED") == 2
        assert (await g.call("intents.show", {"id": r2["intent_id"]}))["status"] == "expired"


async def test_crash_between_reserve_and_publish_is_finished(gate: Gate) -> None:
    r = await gate.call("propose", intent(action="send_proposal"))
    await gate.tamper(
        "INSERT INTO idempotency(intent_id, state, updated_at, intent_seq) "
        "SELECT id, 'RESERVED', '2026-01-01T00:00:00+00:00', seq FROM intents WHERE id = ?",
        (r["intent_id"],),
    )
    assert await gate.app.gate.recover() == 1
    assert (
        gate.count("SELECT count(*) FROM execution_queue WHERE intent_id = ?", (r["intent_id"],))
        == 1
    )
    assert gate.count("SELECT count(*) FROM idempotency WHERE state = 'PUBLISHED'") == 1


# -- configuration and audit -------------------------------------------------------------


async def test_reload_keeps_old_policy_on_a_bad_file(gate: Gate) -> None:
    gate.config.write_text(gate.config.read_text().replace('level = "L3+"', 'level = "L9"'))
    err = await expect_error(gate.call("reload"), ErrorCode.CONFIG_INVALID)
    assert "autonomy.level" in err.message
    assert (await gate.call("propose", intent(rationale="x")))["decision"] == "AUTO_EXECUTE"
    gate.config.write_text(gate.config.read_text().replace('level = "L9"', 'level = "L3"'))
    assert (await gate.call("reload"))["reloaded"] is True
    r = await gate.call("propose", intent(rationale="y"))
    assert (r["decision"], r["reason"]) == ("REQUIRE_APPROVAL", "AUTONOMY_LEVEL_L3")
    events = [x["event"] for x in (await gate.call("audit.tail", {"n": 10}))["records"]]
    assert "CONFIG_RELOAD_FAILED" in events and "CONFIG_RELOADED" in events


async def test_reload_rejects_a_policy_the_core_refuses(gate: Gate) -> None:
    gate.config.write_text(
        gate.config.read_text() + '\n[guardrails]\nhard_stop = ["send_follow_up_email"]\n'
    )
    err = await expect_error(gate.call("reload"), ErrorCode.CONFIG_INVALID)
    assert "send_follow_up_email" in err.message


async def test_audit_export_streams_every_record(gate: Gate) -> None:
    await gate.call("propose", intent())
    seen: list[dict[str, Any]] = []
    from agentd.ctl.client import call

    result = await anyio.to_thread.run_sync(
        lambda: call(gate.socket, "audit.export", {}, on_event=seen.append)
    )
    verdict = await gate.call("audit.verify")
    assert result["count"] == len(seen) == verdict["count"]
    assert [r["seq"] for r in seen] == list(range(1, len(seen) + 1))


async def test_idempotency_records_pruned_after_retention(gate: Gate) -> None:
    from datetime import timedelta

    r = await gate.call("propose", intent(rationale="old"))
    await gate.tamper("UPDATE idempotency SET updated_at = '2020-01-01T00:00:00+00:00'")
    await gate.call("propose", intent(rationale="fresh"))
    assert await gate.app.gate.prune_idempotency(timedelta(days=90)) == 1
    assert gate.count("SELECT count(*) FROM idempotency") == 1
    # The intent itself stays: resubmitting it still answers from the stored decision.
    again = await gate.call("propose", intent(rationale="old"))
    assert again["duplicate"] is True and again["intent_id"] == r["intent_id"]
    assert gate.count("SELECT count(*) FROM budget_consumption") == 2


async def test_reader_group_may_read_but_not_propose(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__GROUP", "agentd-readers-test")
    async for g in start(daemon_env, short_tmp, monkeypatch):
        reader = InProcessClient(
            build_dispatcher(g.app), Peer(1, 4400, 4400, "rita", frozenset({"agentd-readers-test"}))
        )
        assert (await reader.call("pending"))["pending"] == []
        with pytest.raises(AgentdError) as info:
            await reader.call("propose", intent())
        assert info.value.code == ErrorCode.PERMISSION_DENIED
        assert "operator" in info.value.message
        assert g.count("SELECT count(*) FROM intents") == 0
