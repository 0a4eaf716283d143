"""Agent mode end to end: a task the scripted model plans on the demo back-office,
through the daemon, its writes approved with ``op approve-step``; ``kb learn``
writes the workflow, ``kb build`` adds it, and the same task replays it with no
model call (the real ``anthropic`` client against the local stub).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.commands import Dispatcher, InProcessClient, Peer
from agentd.commands.registry import AccessPolicy
from agentd.config import load_settings
from agentd.daemon import App
from agentd.demosite import DemoSite
from agentd.errors import AgentdError, ErrorCode, PermissionDenied
from agentd.kb import DEFAULT_WORKFLOWS_DIR, build_knowledge_base
from agentd.kb import main as kb_main
from agentd.testing.anthropic_stub import AnthropicStub
from agentd.testing.task_model import ScriptedTaskModel, add_note_script
from agentd.vault import generate_key_file
from tests.helpers import ask, serving
from tests.integration import test_browser_agent as base

pytestmark = base.BROWSER_MARKS

ACCOUNTS = """id,tenant,name,stage,trusted_mode,domains,allowed_hosts
acme,t1,Acme,discovery,ACTIVE,SALES;SEO,127.0.0.1
"""
NOTE = "Asked for a volume discount; call back after their budget review."
TASK = f"Sign in as admin and add the note '{NOTE}' to account acme"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with DemoSite() as demo:
        yield demo


@asynccontextmanager
async def agent_daemon(
    folder: Path,
    site: DemoSite,
    stub: AnthropicStub,
    monkeypatch: pytest.MonkeyPatch,
    *,
    key: bool = True,
) -> AsyncIterator[tuple[App, Path]]:
    """A daemon with the model at the stub, a workflows folder, acme's password and consent."""
    vault_key = folder / "vault.key"
    generate_key_file(vault_key)
    workflows = folder / "workflows"
    workflows.mkdir()
    kb = folder / "kb.json"
    build_knowledge_base(DEFAULT_WORKFLOWS_DIR, kb, extra_dirs=[workflows])
    cfg = folder / "agentd.toml"
    cfg.write_text(
        '[autonomy]\nlevel = "L3"\n'
        "[scheduler]\nenabled = false\n"
        f'[vault]\nkey_file = "{vault_key}"\n'
        + (f'[llm]\napi_key = "k"\nbase_url = "{stub.url}"\n' if key else "[llm]\n")
        + "max_retries = 0\ntimeout_s = 10\n"
        + f'[browser]\nstep_timeout_s = 3.0\ntrace = false\nknowledge_base = "{kb}"\n'
        + f'workflow_dirs = ["{workflows}"]\n'
        + f'[browser.services.backoffice]\nbase_url = "{site.url}"\n'
    )
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    monkeypatch.setenv("AGENTD_STATE_DIR", str(folder / "state"))
    monkeypatch.setenv("AGENTD_SOCKET_PATH", str(folder / "s.sock"))
    monkeypatch.setenv("AGENTD_LOG_DIR", str(folder / "logs"))
    settings = load_settings(None)
    sock = settings.resolved_socket_path
    async with serving(settings) as app:
        await ask(sock, "accounts.import", {"name": "a.csv"}, upload=ACCOUNTS.encode())
        secret = {"account": "acme", "service": "backoffice", "name": "admin_password"}
        await ask(sock, "secret.set", secret, upload=site.admin_password.encode())
        grant = {"account": "acme", "service": "backoffice", "permissions": ["write"]}
        await ask(sock, "consent.grant", grant)
        yield app, sock


async def until(sock: Path, op_id: str, states: set[str], timeout: float = 60) -> Any:
    with anyio.fail_after(timeout):
        while True:
            op = await ask(sock, "ops.show", {"id": op_id})
            if op["state"] in states:
                return op
            await anyio.sleep(0.1)


async def test_a_planned_task_is_approved_learned_and_replayed_without_the_model(
    short_tmp: Path, site: DemoSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedTaskModel(add_note_script(site.admin_user, NOTE, "acme")) as stub:
        async with agent_daemon(short_tmp, site, stub, monkeypatch) as (app, sock):
            op = await ask(sock, "ops.run", {"task": TASK, "account": "acme"})
            assert (op["workflow"], op["task"]) == ("task", TASK)
            # The sign-in's submit posts a form: it waits for a person (L3).
            waiting = await until(sock, op["id"], {"awaiting_step_approval", "failed"})
            assert waiting["state"] == "awaiting_step_approval", waiting["error"]
            pending = waiting["pending_step"]
            assert pending["action"] == "click"
            assert pending["target"] == '[data-testid="login-submit"]'
            assert Path(pending["screenshot"]).read_bytes().startswith(b"\x89PNG")
            # Only an approver may let it go on.
            with pytest.raises(PermissionDenied):
                await as_user(app, "rita", approver=False).call(
                    "ops.approve_step", {"id": op["id"]}
                )
            with pytest.raises(PermissionDenied):
                await as_user(app, "rita", approver=False).call(
                    "ops.reject_step", {"id": op["id"], "reason": "no"}
                )
            approved = await as_user(app, "ann").call("ops.approve_step", {"id": op["id"]})
            assert approved["state"] == "in_progress"
            waiting = await until(sock, op["id"], {"awaiting_step_approval", "failed"})
            assert waiting["state"] == "awaiting_step_approval", waiting["error"]
            assert waiting["pending_step"]["target"] == '[data-testid="save-note"]'
            assert site.state.notes_for("acme") == [], "the note was saved before approval"
            await ask(sock, "ops.approve_step", {"id": op["id"]})
            done = await until(sock, op["id"], {"completed", "failed", "cancelled"})
            assert done["state"] == "completed", done["error"]
            [note] = site.state.notes_for("acme")
            assert (note.text, str(note.id)) == (NOTE, done["result"]["note_id"])
            planned_calls = len(stub.requests)
            assert planned_calls == 11
            assert done["spend"]["model_calls"] == 11 and done["spend"]["input_tokens"] > 0
            sent = "".join(r.text for r in stub.requests)
            assert site.admin_password not in sent, "a secret entered a prompt"
            agent_steps = [s for s in done["steps"] if s["source"] == "agent" and s["index"]]
            assert all(s["detail"]["reason"] and s["screenshot"] for s in agent_steps)
            events = [r.event async for r in app.store.audit_records() if r.subject == op["id"]]
            assert events.count("OPERATION_STEP_APPROVED") == 2

            # Learn it (the note and the account as parameters), build, and replay.
            args = ["learn", op["id"], "--name", "add_note_task"]
            args += ["--param", f"note={NOTE}", "--param", "account=acme"]
            assert kb_main(args) == 0
            learned = short_tmp / "workflows" / "test_add_note_task.py"
            text = learned.read_text()
            assert "Task: Sign in as admin and add the note '{note}' to account {account}" in text
            assert site.admin_password not in text and "{secret:admin_password}" in text
            assert kb_main(args) == 1, "kb learn overwrote a workflow file"
            assert kb_main(["build"]) == 0
            again = await ask(sock, "ops.run", {"task": TASK, "account": "acme"})
            assert again["workflow"] == "add_note_task"
            assert again["params"] == {"account": "acme", "note": NOTE}
            replayed = await until(sock, again["id"], {"completed", "failed", "cancelled"})
            assert replayed["state"] == "completed", replayed["error"]
            assert len(stub.requests) == planned_calls, "the replay called the model"
            notes = site.state.notes_for("acme")
            assert [n.text for n in notes] == [NOTE, NOTE]
            assert replayed["result"]["note_id"] == str(notes[1].id)


async def test_a_task_without_a_key_is_refused(
    short_tmp: Path, site: DemoSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AnthropicStub() as stub:
        async with agent_daemon(short_tmp, site, stub, monkeypatch, key=False) as (_, sock):
            with pytest.raises(AgentdError) as refused:
                await ask(sock, "ops.run", {"task": "Do it", "account": "acme"})
            assert refused.value.code == ErrorCode.EXTERNAL_ERROR
            assert "no Anthropic API key" in refused.value.message
            assert refused.value.details["reason"] == "no_model"
            with pytest.raises(AgentdError) as too_long:
                await ask(sock, "ops.run", {"task": "x" * 3000, "account": "acme"})
            assert too_long.value.code == ErrorCode.INVALID_ARGUMENT
            assert await ask(sock, "ops.list", {}) == {"operations": []}
            assert stub.requests == []


def as_user(app: App, name: str, *, approver: bool = True) -> InProcessClient:
    """Return a client calling as another user (an approver, or a reader)."""
    policy = AccessPolicy(daemon_uid=os.getuid(), group="readers", approvers_group="approvers")
    groups = frozenset({"approvers" if approver else "readers"})
    peer = Peer(pid=os.getpid(), uid=60000 + len(name), gid=60000, user=name, groups=groups)
    return InProcessClient(Dispatcher(app, policy), peer)
