"""``policy check`` answers what ``propose`` then decides, and writes nothing.

Each case sets the store up through the socket, checks an intent, compares a
dump of the whole database and the audit head with those taken before the
check, then proposes the same intent and compares the two answers.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentd.errors import AgentdError
from tests.integration.test_gate import CONFIG, Gate, intent, start

# The gate's clock, pinned: the budget day of the setup, the check and the
# proposal must be one day whatever the wall clock says.
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)

# A change of twelve fields: MEDIUM risk, so the autonomy level decides it.
MEDIUM = intent(domain="SEO", change_type="meta_update", diff={f"f{i}": "x" for i in range(12)})

Setup = Callable[[Gate], Awaitable[None]]


@pytest.fixture
async def gate(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gate]:
    async for g in start(daemon_env, short_tmp, monkeypatch):
        g.app.gate.clock = lambda: NOW
        yield g


def proposed(*fields: dict[str, Any]) -> Setup:
    async def run(gate: Gate) -> None:
        for f in fields:
            await gate.call("propose", f)

    return run


def meta(key: str, value: str, then: Setup | None = None) -> Setup:
    async def run(gate: Gate) -> None:
        if then is not None:
            await then(gate)
        await gate.app.store.set_meta(key, value)

    return run


def level(name: str) -> Setup:
    async def run(gate: Gate) -> None:
        gate.config.write_text(CONFIG.format(ttl=72).replace('level = "L3+"', f'level = "{name}"'))
        await gate.call("reload")

    return run


def allowlist(*names: str) -> Setup:
    async def run(gate: Gate) -> None:
        await gate.call("accounts.set", {"id": "globex", "allowlist": list(names)})

    return run


async def nothing(gate: Gate) -> None:
    return None


def state(gate: Gate) -> tuple[str, tuple[int, str] | None]:
    """Return a digest of every row of the database file, and the audit head."""
    con = sqlite3.connect(gate.db)
    try:
        digest = hashlib.sha256("\n".join(con.iterdump()).encode()).hexdigest()
        head = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return digest, None if head is None else (head[0], head[1])


async def answer(gate: Gate, cmd: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Return the answer's verdict, or the error's code (the times of a new decision aside)."""
    try:
        r: dict[str, Any] = await gate.call(cmd, fields)
    except AgentdError as exc:
        return {"error": exc.code.name}
    skip = {"created_at", "expires_at", "dry_run", "known_intent"}
    return {k: v for k, v in r.items() if k not in skip}


# What the gate decided and why, in every answer shape ``policy check`` has had.
VERDICT = ("error", "intent_id", "decision", "reason", "message", "tier", "risk_level", "trace")

FIRST = intent(rationale="first")
OTHER = intent(intent_id="i-1", rationale="one thing")

CASES: list[tuple[str, Setup, dict[str, Any], str]] = [
    ("new, auto-approved", nothing, FIRST, "AUTO_EXECUTE AUTO_APPROVED"),
    (
        "over the account's budget",
        proposed(*(intent(rationale=f"r{i}") for i in range(3))),
        FIRST,
        "REQUIRE_APPROVAL BUDGET_EXHAUSTED",
    ),
    # A known id is answered from its stored decision, not evaluated again:
    # the idempotency check alone would say ALREADY_PUBLISHED.
    ("duplicate of a handed-off intent", proposed(FIRST), FIRST, "AUTO_EXECUTE AUTO_APPROVED"),
    (
        "duplicate once the budget ran out",
        proposed(FIRST, *(intent(rationale=f"r{i}") for i in range(2))),
        FIRST,
        "AUTO_EXECUTE AUTO_APPROVED",
    ),
    (
        "duplicate once the kill switch is on",
        meta("autonomy.kill_switch", "1", then=proposed(FIRST)),
        FIRST,
        "AUTO_EXECUTE AUTO_APPROVED",
    ),
    (
        "duplicate of a pending intent",
        proposed(intent(action="send_proposal")),
        intent(action="send_proposal"),
        "REQUIRE_APPROVAL APPROVAL_REQUIRED_TIER",
    ),
    (
        "an id reused for other content",
        proposed(OTHER),
        {**OTHER, "rationale": "another thing"},
        "CONFLICT",
    ),
    ("unknown account", nothing, intent("nobody"), "NOT_FOUND"),
    (
        "not on the account's allowlist",
        allowlist("send_chat_message"),
        FIRST,
        "REQUIRE_APPROVAL ACTION_TYPE_NOT_ALLOWLISTED",
    ),
    ("level L3", level("L3"), FIRST, "REQUIRE_APPROVAL AUTONOMY_LEVEL_L3"),
    ("level L3+", level("L3+"), MEDIUM, "REQUIRE_APPROVAL RISK_ABOVE_LEVEL"),
    ("level L4", level("L4"), MEDIUM, "AUTO_EXECUTE AUTO_APPROVED"),
    ("level L4+", level("L4+"), MEDIUM, "AUTO_EXECUTE AUTO_APPROVED"),
    ("kill switch on", meta("autonomy.kill_switch", "1"), FIRST, "REQUIRE_APPROVAL KILL_SWITCH"),
    (
        "action type paused by a breaker",
        meta("breakers.paused_action_types", '["send_follow_up_email"]'),
        FIRST,
        "REQUIRE_APPROVAL ACTION_TYPE_PAUSED",
    ),
    ("hard stop", nothing, intent(action="commit_pricing"), "BLOCKED HARD_STOP"),
]


@pytest.mark.parametrize(
    ("setup", "fields", "expected"),
    [pytest.param(s, f, e, id=name) for name, s, f, e in CASES],
)
async def test_check_answers_what_propose_decides_and_writes_nothing(
    gate: Gate, setup: Setup, fields: dict[str, Any], expected: str
) -> None:
    await setup(gate)
    before = state(gate)
    checked = await answer(gate, "policy.check", fields)
    assert state(gate) == before
    decided = await answer(gate, "propose", fields)
    assert {k: checked.get(k) for k in VERDICT} == {k: decided.get(k) for k in VERDICT}
    assert checked == decided  # the whole answer, the stored status and duplicate flag too
    verdict = decided.get("error") or f"{decided['decision']} {decided['reason']}"
    assert verdict == expected


async def test_check_says_it_is_a_dry_run(gate: Gate) -> None:
    await gate.call("propose", FIRST)
    again = await gate.call("policy.check", FIRST)
    fresh = await gate.call("policy.check", intent(rationale="fresh"))
    assert (again["dry_run"], again["known_intent"], again["duplicate"]) == (True, True, True)
    assert (fresh["dry_run"], fresh["known_intent"], fresh["duplicate"]) == (True, False, False)
