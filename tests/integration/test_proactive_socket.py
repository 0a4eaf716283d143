"""The proactive loop wired into the daemon, driven over the real socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentd.config import load_settings
from agentd.errors import AgentdError, ErrorCode
from tests.helpers import ask, serving

ACCOUNTS = """id,tenant,name,stage,trusted_mode
acme,t1,Acme,discovery,ACTIVE
tyrell,t1,Tyrell,qualification,ACTIVE
"""


def interactions(now: datetime) -> str:
    def at(days: float) -> str:
        return (now - timedelta(days=days)).isoformat()

    return (
        "\n".join(
            [
                "id,account,kind,direction,at,sentiment,summary",
                f"i1,acme,pricing_page_visit,in,{at(3)},,Viewed pricing",
                f"i2,acme,pricing_page_visit,in,{at(2)},,Viewed pricing again",
                f"i3,acme,email,in,{at(1)},0.6,Asked about the enterprise plan",
                f"i4,tyrell,support_ticket,in,{at(3)},-0.8,Outage",
                f"i5,tyrell,support_ticket,in,{at(2)},-0.9,Another outage",
                f"i6,tyrell,support_ticket,in,{at(1)},-0.7,Still broken",
            ]
        )
        + "\n"
    )


async def test_import_scan_plan_digest_over_the_socket(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = short_tmp / "agentd.toml"
    cfg.write_text('[autonomy]\nlevel = "L3+"\n[scheduler]\nenabled = false\n')
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    settings = load_settings(None)
    sock = settings.resolved_socket_path
    async with serving(settings):
        await ask(sock, "accounts.import", {"name": "a.csv"}, upload=ACCOUNTS.encode())
        now = datetime.now(UTC)
        imported = await ask(
            sock, "interactions.import", {"name": "i.csv"}, upload=interactions(now).encode()
        )
        assert imported["imported"] == 6
        again = await ask(
            sock, "interactions.import", {"name": "i.csv"}, upload=interactions(now).encode()
        )
        assert again["imported"] == 0  # duplicates by id are ignored
        names = {t["name"] for t in (await ask(sock, "tasks"))["tasks"]}
        assert {
            "pattern_scan",
            "proactive_outreach_check",
            "goal_progress_update",
            "daily_digest_generation",
            "context_summarization",
            "approval_expiry",
        } <= names

        scan = await ask(sock, "task.run", {"name": "pattern_scan", "wait": True})
        assert scan["ok"] is True and "2 new patterns" in scan["result"]
        kinds = {(p["account"], p["kind"]) for p in (await ask(sock, "patterns"))["patterns"]}
        assert ("acme", "buying_signal") in kinds and ("tyrell", "risk") in kinds
        await ask(sock, "task.run", {"name": "pattern_scan", "wait": True})
        assert len((await ask(sock, "patterns"))["patterns"]) == len(kinds)  # not raised again

        await ask(sock, "task.run", {"name": "proactive_outreach_check", "wait": True})
        await ask(sock, "task.run", {"name": "proactive_outreach_check", "wait": True})
        intents = (await ask(sock, "intents.list"))["intents"]
        by_account = {i["account"]: i for i in intents}
        assert len(intents) == 2  # re-running planned nothing new
        assert by_account["acme"]["action_type"] == "send_follow_up_email"
        assert by_account["acme"]["decision"] == "AUTO_EXECUTE"
        assert by_account["tyrell"]["action_type"] == "escalate_to_management"
        assert by_account["tyrell"]["decision"] == "REQUIRE_APPROVAL"
        explained = await ask(sock, "intents.show", {"id": by_account["acme"]["intent_id"]})
        assert explained["serves"].get("pattern")

        await ask(sock, "task.run", {"name": "daily_digest_generation", "wait": True})
        digest = await ask(sock, "digest", {"show": True})
        assert Path(digest["path"]).is_file()
        assert "escalate_to_management" in digest["content"]

        with pytest.raises(AgentdError) as info:
            await ask(sock, "task.run", {"name": "no_such_task"})
        assert info.value.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_ARGUMENT)


async def test_an_oversized_upload_is_refused_and_imports_nothing(
    daemon_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTD_CONTROL__MAX_UPLOAD_BYTES", "4096")
    monkeypatch.setenv("AGENTD_SCHEDULER__ENABLED", "false")
    settings = load_settings(None)
    sock = settings.resolved_socket_path
    async with serving(settings) as app:
        await ask(sock, "accounts.import", {"name": "a.csv"}, upload=ACCOUNTS.encode())
        now = datetime.now(UTC)
        lines = ["id,account,kind,direction,at,sentiment,summary"] + [
            f"big{i},acme,email,in,{(now - timedelta(hours=i)).isoformat()},,x" for i in range(500)
        ]
        with pytest.raises(AgentdError) as info:
            await ask(
                sock, "interactions.import", {"name": "big.csv"}, upload="\n".join(lines).encode()
            )
        assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE
        assert "nothing was imported" in info.value.message
        rows = await app.store.read_all("SELECT count(*) FROM interactions")
        assert rows[0][0] == 0
        assert (await ask(sock, "ping"))["pong"]  # the daemon goes on
