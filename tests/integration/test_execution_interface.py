"""What the execution commands say matches what the daemon will do (real daemon, Chromium)."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import anyio
import pytest

from agentd.ctl.main import main as agentctl
from agentd.demosite import DemoSite
from tests.helpers import ask
from tests.integration import test_execution as base
from tests.integration.test_execution import ExecutionDaemon, finished, held, propose

pytestmark = [*base.BROWSER_MARKS, pytest.mark.slow(10)]
site = base.site
execution_daemon = base.execution_daemon


async def run_agentctl(*args: str) -> tuple[int, str]:
    """Run agentctl's main in a worker thread; return its exit status and stdout."""

    def run() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = agentctl(list(args))
        return code, out.getvalue()

    return await anyio.to_thread.run_sync(run)


async def test_a_failed_execution_token_is_not_listed_as_available(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    async with execution_daemon() as (app, sock):
        site.fail("/crm/accounts/globex/compose")
        broken = await propose(
            sock, account="globex", action_type="send_follow_up_email", diff={"body": "Hi"}
        )
        exe = await finished(app, broken["intent_id"])
        assert exe["state"] == "failed", exe
        token = exe["rollback_token"]
        assert token["state"] == "void"  # kept for the record, never usable
        (listed,) = (await ask(sock, "rollback.tokens"))["tokens"]
        assert (listed["token"], listed["state"]) == (token["token"], "void")
        check = await ask(sock, "rollback.check", {"token": token["token"]})
        assert check["available"] is False and check["reason"] == "EXECUTION_FAILED"

        # agentctl says so and exits 1; a token that can be rolled back exits 0.
        code, out = await run_agentctl("--socket", str(sock), "rollback", "check", token["token"])
        assert code == 1 and out.startswith("not available (EXECUTION_FAILED)")
        code, out = await run_agentctl(
            "--socket", str(sock), "--json", "rollback", "check", token["token"]
        )
        assert code == 1 and json.loads(out)["available"] is False
        site.clear_failures()
        sent = await propose(
            sock, account="globex", action_type="send_follow_up_email", diff={"body": "Again"}
        )
        good = await finished(app, sent["intent_id"])
        assert good["state"] == "succeeded", good
        code, out = await run_agentctl(
            "--socket", str(sock), "rollback", "check", good["rollback_token"]["token"]
        )
        assert code == 0 and out.startswith("available: ESCALATED_RESTORE")

        # An operation an execution started names the execution, as "execution".
        op_id = next(o["id"] for o in good["operations"] if o["phase"] == "change")
        op = await ask(sock, "ops.show", {"id": op_id})
        assert op["execution"] == good["id"] and "intent_id" not in op


async def test_a_failed_snapshot_is_shown_as_failed_in_the_checks(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    async with execution_daemon() as (app, sock):
        site.fail("/admin", mode="down")
        waiting = await propose(
            sock,
            account="acme",
            action_type="update_account_context",
            domain="SEO",
            change_type="meta_update",
            diff={"product_id": "104", "seo_title": "Later"},
        )
        exe = await held(app, waiting["intent_id"], "waiting")
        assert exe["reason"] == "SNAPSHOT_FAILED"
        checks: list[dict[str, Any]] = exe["checks"]
        snapshot = [c for c in checks if c["check"] == "before_snapshot"]
        assert len(snapshot) == 1 and snapshot[0]["passed"] is False, checks
        assert "could not be read" in snapshot[0]["said"]
        assert not any("captured" in c["said"] for c in checks if c["passed"])
        code, out = await run_agentctl("--socket", str(sock), "execution", "show", exe["id"])
        assert code == 0
        assert "STOP before_snapshot: the before snapshot could not be read" in out
        assert "before snapshot captured" not in out
