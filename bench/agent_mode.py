"""Agent mode, planned versus replayed: the demo task "add a note to an account".

Run: .venv/bin/python bench/agent_mode.py

The real OperationsService on a real SqliteStore drives Debian's Chromium
against the local demo back-office. First the scripted model (the real
``anthropic`` client against the local Messages-API stub, answering from the
page digest it is shown) plans the task at L4, so no step waits for a person;
then ``agentd kb learn``'s code writes the workflow, the knowledge base is
built with it, and the same task runs again from the recorded workflow.
Printed side by side: steps run, model calls, tokens (as the stub counts
them: about a quarter of the bytes; a real model's differ) and wall time from
the task's start until it is reported ended. The model's own latency is
not in these figures (the stub answers at once).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from agentd.browser.playwright_browser import PlaywrightBrowser
from agentd.browser.task import AgentModeSettings
from agentd.core.gate import AutonomyLevel
from agentd.demosite import DemoSite
from agentd.kb import DEFAULT_WORKFLOWS_DIR, build_knowledge_base, load_knowledge_base
from agentd.learn import learn
from agentd.llm import AnthropicModel, LLMSettings
from agentd.ops_config import BrowserSettings, ServiceConfig
from agentd.services.consents import ConsentsService
from agentd.services.operations import OperationsService
from agentd.services.secrets import SecretsService
from agentd.store.sqlite import SqliteStore
from agentd.testing.task_model import ScriptedTaskModel, add_note_script
from agentd.vault import SecretValue, Vault

ACCOUNT, SERVICE = "acme", "backoffice"
NOTE = "Asked for a volume discount; call back after their budget review."
TASK = f"Sign in as admin and add the note '{NOTE}' to account acme"


async def measure(svc: OperationsService, stub: ScriptedTaskModel) -> dict[str, Any]:
    calls = len(stub.requests)
    began = time.perf_counter()
    op = await svc.start_task(TASK, ACCOUNT, actor="bench")
    op = await svc.wait(op.id, 120)
    wall = time.perf_counter() - began
    assert op.state == "completed", (op.state, op.error)
    steps = [s for s in await svc.steps(op.id) if s.idx > 0 and s.status == "ok"]
    return {
        "op": op.id,
        "workflow": op.workflow,
        "steps": len(steps),
        "model calls": len(stub.requests) - calls,
        "tokens": op.spend.tokens,
        "wall time (s)": round(wall, 2),
    }


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="am-", dir="/tmp"))
    workflows = folder / "workflows"
    workflows.mkdir()
    kb_path = folder / "kb.json"
    build_knowledge_base(DEFAULT_WORKFLOWS_DIR, kb_path, extra_dirs=[workflows])
    try:
        with DemoSite() as site, ScriptedTaskModel(add_note_script("admin", NOTE, ACCOUNT)) as stub:
            store = SqliteStore(folder / "agentd.sqlite3")
            await store.open()
            settings = BrowserSettings(
                screenshots_dir=folder / "operations",
                services={SERVICE: ServiceConfig(base_url=site.url)},
            )
            vault = Vault(os.urandom(32))
            browser = PlaywrightBrowser(settings)
            model = AnthropicModel(LLMSettings(api_key="k", base_url=stub.url, max_retries=0))
            svc = OperationsService(
                store,
                settings,
                state_dir=folder,
                knowledge_base=lambda: load_knowledge_base(kb_path, None),
                vault=vault,
                model=model,
                browser=browser,
                close_browser=True,
                agent_mode=AgentModeSettings(),
                level=lambda: AutonomyLevel.L4,
            )
            async with store.write() as tx:
                row = {"id": ACCOUNT, "tenant": "t1", "name": "Acme", "stage": "discovery"}
                row |= {"trusted_mode": "ACTIVE", "domains": ["SALES"]}
                row["allowed_hosts"] = [f"127.0.0.1:{site.port}"]
                await tx.gate.upsert_accounts([row], tx.now.isoformat())
            secret = SecretValue(site.admin_password)
            await SecretsService(store, vault).set_secret(
                ACCOUNT, SERVICE, "admin_password", secret, actor="bench"
            )
            kb = lambda: load_knowledge_base(kb_path, None)  # noqa: E731
            await ConsentsService(store, svc, knowledge_base=kb).grant_consent(
                ACCOUNT, SERVICE, "*", permissions=["write"], actor="bench"
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(svc.run)
                planned = await measure(svc, stub)
                params = {"note": NOTE, "account": ACCOUNT}
                learn(folder / "agentd.sqlite3", planned["op"], "add_note_task", workflows, params)
                build_knowledge_base(DEFAULT_WORKFLOWS_DIR, kb_path, extra_dirs=[workflows])
                replayed = await measure(svc, stub)
                tg.cancel_scope.cancel()
            await model.aclose()
            await svc.close()
            await store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{'':16}{'planned':>12}{'replayed':>16}")
    for key in ("workflow", "steps", "model calls", "tokens", "wall time (s)"):
        print(f"{key:16}{planned[key]!s:>12}{replayed[key]!s:>16}")


if __name__ == "__main__":
    anyio.run(main)
