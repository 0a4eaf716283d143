"""An approved intent that cannot be carried out is never silent: refused at approval
where that can be told, else logged, notified and shown on the intent.

The daemon runs in-process on its real socket and store with no browser service
configured, which is what makes the executions impossible.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from loguru import logger

from agentd.config import load_settings
from agentd.daemon import App
from agentd.errors import AgentdError, ErrorCode
from tests.helpers import ask, serving

ACCOUNTS = """id,tenant,name,stage,trusted_mode,domains,allowed_hosts
acme,t1,Acme,discovery,ACTIVE,SALES,127.0.0.1
initech,t1,Initech,negotiation,ACTIVE,SALES,127.0.0.1
"""


@pytest.fixture
def errors_logged() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, level="ERROR", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


async def _execution(app: App, intent_id: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            row = await app.store.read_one(
                "SELECT id, state FROM executions WHERE intent_id = ?", (intent_id,)
            )
            if row is not None and row[1] in ("refused", "failed", "succeeded"):
                return await app.execution_views.show(row[0])
            await anyio.sleep(0.05)


async def test_unconfigured_service_is_refused_at_approval_and_loud_at_execution(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, errors_logged: list[str]
) -> None:
    cfg = short_tmp / "agentd.toml"
    cfg.write_text(
        '[autonomy]\nlevel = "L3+"\n[scheduler]\nenabled = false\n'
        "[execution]\npoll_interval_s = 0.2\n"
    )
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    monkeypatch.setenv("AGENTD_STATE_DIR", str(short_tmp / "state"))
    monkeypatch.setenv("AGENTD_SOCKET_PATH", str(short_tmp / "s.sock"))
    settings = load_settings(None)
    sock = settings.resolved_socket_path
    async with serving(settings) as app:
        await ask(sock, "accounts.import", {"name": "a.csv"}, upload=ACCOUNTS.encode())
        base = {"tenant": "t1", "source": "operator", "rationale": "follow-up"}

        # Needs a person (a gated stage): approval says at once why it cannot run.
        pending = await ask(
            sock,
            "propose",
            {**base, "account": "initech", "action_type": "log_interaction", "diff": {"note": "x"}},
        )
        assert pending["decision"] == "REQUIRE_APPROVAL"
        with pytest.raises(AgentdError) as refused:
            await ask(sock, "approve", {"id": pending["intent_id"]})
        assert refused.value.code is ErrorCode.NO_EXECUTOR
        assert "browser service 'backoffice'" in refused.value.message
        assert "not configured" in refused.value.message
        shown = await ask(sock, "intents.show", {"id": pending["intent_id"]})
        assert shown["status"] == "pending"
        # The use case is the approval service's, whoever calls it: refused and audited.
        with pytest.raises(AgentdError) as again:
            await app.approvals.approve(pending["intent_id"], "alice", None)
        assert again.value.code is ErrorCode.NO_EXECUTOR
        refusals = await app.store.read_all(
            "SELECT actor FROM audit WHERE event = 'APPROVAL_REFUSED' AND subject = ?",
            (pending["intent_id"],),
        )
        assert [r[0] for r in refusals][-1] == "alice" and len(refusals) == 2

        # Approved by policy: the execution is refused at once, and says so everywhere.
        auto = await ask(
            sock,
            "propose",
            {**base, "account": "acme", "action_type": "log_interaction", "diff": {"note": "y"}},
        )
        assert auto["decision"] == "AUTO_EXECUTE"
        exe = await _execution(app, auto["intent_id"])
        assert (exe["state"], exe["reason"]) == ("refused", "SERVICE_NOT_CONFIGURED")

        shown = await ask(sock, "intents.show", {"id": auto["intent_id"]})
        assert shown["status"] == "approved"
        assert shown["execution"]["id"] == exe["id"]
        assert (shown["execution"]["state"], shown["execution"]["reason"]) == (
            "refused",
            "SERVICE_NOT_CONFIGURED",
        )
        listed = await ask(sock, "intents.list", {"status": "approved"})
        row = next(i for i in listed["intents"] if i["intent_id"] == auto["intent_id"])
        assert row["execution"]["state"] == "refused"

        assert any(
            exe["id"] in line and "refused SERVICE_NOT_CONFIGURED" in line for line in errors_logged
        ), errors_logged
        folder = settings.notify.resolved_folder(settings.state_dir)
        notes = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        about = [n for n in notes if exe["id"] in n["title"]]
        assert len(about) == 1, notes
        assert about[0]["kind"] == "execution"
        assert "refused" in about[0]["title"] and "not configured" in about[0]["body"]
