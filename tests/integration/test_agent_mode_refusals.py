"""Agent mode under attack: a model that leaves the allowed hosts, types a secret into
a text field, uses a method off the list, names an element that is not there,
loops forever, spends past its budget or answers garbage. Each is refused or
stopped, with a screenshot and an audit record (real Chromium, the real
``anthropic`` client against the stub).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.browser.task import AgentModeSettings
from agentd.core.agent_mode import Limits
from agentd.core.gate import AutonomyLevel
from agentd.demosite import DemoSite
from agentd.llm import AnthropicModel, LLMSettings
from agentd.ops_config import BrowserSettings, ServiceConfig
from agentd.services.consents import ConsentsService
from agentd.services.operations import OperationsService
from agentd.services.secrets import SecretsService
from agentd.store.sqlite import SqliteStore
from agentd.testing.anthropic_stub import AnthropicStub, Reply
from agentd.vault import SecretValue, Vault
from tests.integration import test_browser_agent as base
from tests.integration.test_browser_agent import ACCOUNT, SERVICE, add_account, workflow_kb

pytestmark = base.BROWSER_MARKS
anyio_backend = base.anyio_backend
shared_browser = base.shared_browser
site = base.site
tmp = base.tmp

LOGIN = Reply.tool_use("goto", value="/login", reason="open the sign-in page")


@dataclass
class Agent:
    svc: OperationsService
    store: SqliteStore
    stub: AnthropicStub

    async def task(self, text: str = "Look around", timeout: float = 60) -> Any:
        op = await self.svc.start_task(text, ACCOUNT, actor="tester")
        return await self.svc.wait(op.id, timeout)

    async def events(self, subject: str) -> list[Any]:
        return [r async for r in self.store.audit_records() if r.subject == subject]


@asynccontextmanager
async def agent(
    tmp: Path,
    site: DemoSite,
    browser: PlaywrightBrowser,
    stub: AnthropicStub,
    *,
    limits: Limits | None = None,
    level: AutonomyLevel = AutonomyLevel.L4,
    permissions: tuple[str, ...] = ("write",),
) -> AsyncIterator[Agent]:
    store = SqliteStore(tmp / "agentd.sqlite3")
    await store.open()
    settings = BrowserSettings(
        step_timeout_s=1.5,
        screenshots_dir=tmp / "operations",
        services={SERVICE: ServiceConfig(base_url=site.url)},
    )
    knowledge = workflow_kb()
    vault = Vault(os.urandom(32))
    model = AnthropicModel(LLMSettings(api_key="k", base_url=stub.url, max_retries=0, timeout_s=5))
    svc = OperationsService(
        store,
        settings,
        state_dir=tmp,
        knowledge_base=lambda: knowledge,
        vault=vault,
        model=model,
        browser=browser,
        agent_mode=AgentModeSettings(limits=limits or Limits(max_steps=8)),
        level=lambda: level,
    )
    try:
        await add_account(store, [f"127.0.0.1:{site.port}"])
        secret = SecretValue(site.admin_password)
        await SecretsService(store, vault).set_secret(
            ACCOUNT, SERVICE, "admin_password", secret, actor="tester"
        )
        await ConsentsService(store, svc, knowledge_base=lambda: knowledge).grant_consent(
            ACCOUNT, SERVICE, "task", permissions=list(permissions), actor="tester"
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(svc.run)
            yield Agent(svc, store, stub)
            tg.cancel_scope.cancel()
    finally:
        await model.aclose()
        await svc.close()
        await store.close()


@pytest.fixture
def stub() -> Iterator[AnthropicStub]:
    with AnthropicStub() as server:
        yield server


async def stopped_with_evidence(a: Agent, op: Any, reason: str, words: str) -> list[Any]:
    """The operation failed for ``reason`` with a final screenshot; return its audit."""
    assert (op.state, op.reason) == ("failed", reason), (op.state, op.reason, op.error)
    assert words in (op.error or ""), op.error
    final = [s for s in await a.svc.steps(op.id) if s.status == "final"]
    assert final and Path(final[0].screenshot or "").read_bytes().startswith(b"\x89PNG")
    events = await a.events(op.id)
    assert events[-1].event == "OPERATION_FAILED" and events[-1].data["reason"] == reason
    return events


def refused_command(events: list[Any]) -> dict[str, Any]:
    [refused] = [e.data for e in events if e.event == "OPERATION_REFUSED_COMMAND"]
    assert refused["source"] == "agent"
    return dict(refused)


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        pytest.param(
            Reply.tool_use("goto", value="http://127.0.0.1:9/steal"), "allowlist", id="off-host"
        ),
        pytest.param(
            Reply.tool_use("goto", value="data:text/html,<input type=password>"),
            "a path or an http(s) URL",
            id="goto-data-url",
        ),
        pytest.param(
            Reply.tool_use(
                "fill",
                tool_input={
                    "method": "fill",
                    "selector": '[data-testid="login-username"]',
                    "value": "{secret:admin_password}",
                    "reason": "type it",
                },
            ),
            "neither a password field",
            id="secret-into-text-field",
        ),
        pytest.param(
            Reply.tool_use("evaluate", selector="body", value="document.cookie"),
            "not allowed",
            id="method-off-the-list",
        ),
        pytest.param(
            Reply.tool_use("click", tool_input={"method": "click", "ref": "e999", "reason": "x"}),
            "unknown element",
            id="unknown-element",
        ),
        pytest.param(
            Reply.tool_use("fill", tool_input={"method": "fill", "selector": 5, "reason": "x"}),
            "non-text selector",
            id="malformed-command",
        ),
        pytest.param(Reply.unknown_tool(), "unknown tool", id="unknown-tool"),
    ],
)
async def test_a_bad_command_is_refused(
    tmp: Path,
    site: DemoSite,
    shared_browser: PlaywrightBrowser,
    stub: AnthropicStub,
    reply: Reply,
    words: str,
) -> None:
    stub.push(LOGIN, reply)
    async with agent(tmp, site, shared_browser, stub) as a:
        op = await a.task()
        events = await stopped_with_evidence(a, op, "refused_command", words)
        refused_command(events)
        assert op.spend.calls == 2
    sent = "".join(r.text for r in stub.requests)
    assert site.admin_password not in sent and "{secret:admin_password}" in sent


async def test_an_answer_that_is_not_json_stops_the_task(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser, stub: AnthropicStub
) -> None:
    stub.push(LOGIN, Reply.malformed_json())
    async with agent(tmp, site, shared_browser, stub) as a:
        op = await a.task()
        await stopped_with_evidence(a, op, "error", "not JSON")


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        pytest.param(Limits(max_steps=3), "step_budget", id="loop-forever"),
        pytest.param(Limits(max_tokens_per_operation=1500), "token_budget", id="tokens"),
        pytest.param(Limits(max_cost_per_operation_usd=0.004), "cost_budget", id="cost"),
        pytest.param(Limits(max_tokens_per_day=1500), "daily_token_budget", id="day-tokens"),
        pytest.param(Limits(max_wall_s=0.5), "wall_clock_limit", id="wall-clock"),
    ],
)
async def test_a_budget_stops_the_task(
    tmp: Path,
    site: DemoSite,
    shared_browser: PlaywrightBrowser,
    stub: AnthropicStub,
    limits: Limits,
    reason: str,
) -> None:
    # The model never says done: it opens the sign-in page again and again.
    stub.default = LOGIN
    async with agent(tmp, site, shared_browser, stub, limits=limits) as a:
        op = await a.task()
        events = await stopped_with_evidence(a, op, reason, "spent")
        [reached] = [e.data for e in events if e.event == "OPERATION_BUDGET_REACHED"]
        assert reached["reason"] == reason and reached["model_calls"] == op.spend.calls
        assert op.spend.calls == len(stub.requests) >= 1
        if reason == "step_budget":
            assert op.spend.calls == 3


async def test_a_rejected_step_ends_the_task_before_it_runs(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser, stub: AnthropicStub
) -> None:
    submit = {"method": "click", "selector": '[data-testid="login-submit"]', "reason": "sign in"}
    stub.push(LOGIN, Reply.tool_use("click", tool_input=submit))
    async with agent(tmp, site, shared_browser, stub, level=AutonomyLevel.L3_PLUS) as a:
        started = await a.svc.start_task("Sign in", ACCOUNT, actor="tester")
        with anyio.fail_after(30):
            while (await a.svc.get(started.id)).state != "awaiting_step_approval":
                await anyio.sleep(0.05)
        waiting = await a.svc.get(started.id)
        assert waiting.pending_step and waiting.pending_step["action"] == "click"
        await a.svc.decide_step(started.id, approved=False, actor="ann", reason="not now")
        op = await a.svc.wait(started.id, 30)
        assert (op.state, op.reason) == ("cancelled", "step_rejected")
        assert "rejected by ann: not now" in (op.error or "")
        events = [e.event for e in await a.events(op.id)]
        assert "OPERATION_STEP_AWAITING_APPROVAL" in events
        assert "OPERATION_STEP_REJECTED" in events
        assert not any(s.action == "click" for s in await a.svc.steps(op.id))


async def test_a_task_waiting_for_approval_when_the_daemon_died_is_interrupted(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser, stub: AnthropicStub
) -> None:
    async with agent(tmp, site, shared_browser, stub) as a:
        async with a.store.write() as tx:
            await tx.ops.insert_operation(
                {
                    "id": "op_orphan",
                    "account": ACCOUNT,
                    "service": SERVICE,
                    "workflow": "task",
                    "task": "Add a note",
                    "state": "awaiting_step_approval",
                    "total": 8,
                    "lease_owner": "agentd-gone",
                    "created_by": "tester",
                    "created_at": "2026-01-01T00:00:00+00:00",
                    "updated_at": "2026-01-01T00:00:00+00:00",
                },
            )
        [settled] = await a.svc.recover()
        assert (settled.state, settled.reason) == ("failed", "interrupted")


async def test_a_write_under_a_read_consent_is_refused(
    tmp: Path, site: DemoSite, shared_browser: PlaywrightBrowser, stub: AnthropicStub
) -> None:
    submit = {"method": "click", "selector": '[data-testid="login-submit"]', "reason": "sign in"}
    stub.push(LOGIN, Reply.tool_use("click", tool_input=submit))
    async with agent(tmp, site, shared_browser, stub, permissions=("read",)) as a:
        op = await a.task()
        events = await stopped_with_evidence(a, op, "refused_command", "does not grant write")
        refused_command(events)
