"""Execution and rollback in the daemon, over the real socket, with real Chromium.

The daemon runs in-process (its real control socket, store, operations and
execution engine); the demo back-office serves on loopback. Intents go in
through the gate; changes land on the site; rollbacks take them back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.config import load_settings
from agentd.daemon import App
from agentd.demosite import DemoSite
from agentd.errors import AgentdError, ErrorCode
from agentd.ops_config import DEFAULT_CHROMIUM
from agentd.vault import generate_key_file
from tests.helpers import ask
from tests.integration.conftest import StartDaemon

# The marks of every module that drives Chromium (the modules built on this one take them).
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]
pytestmark = [*BROWSER_MARKS, pytest.mark.slow(45)]

ACCOUNTS = """id,tenant,name,stage,trusted_mode,domains,allowed_hosts
acme,t1,Acme,discovery,ACTIVE,SALES;SEO,127.0.0.1
globex,t1,Globex,discovery,ACTIVE,SALES,127.0.0.1
stark,t1,Stark,discovery,PAUSED,SALES,127.0.0.1
"""


@pytest.fixture
def site() -> Iterator[DemoSite]:
    with DemoSite() as demo:
        yield demo


class Webhook:
    """A local HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


# ``async with execution_daemon(extra=..., webhook=...) as (app, sock)``: the daemon of
# conftest.py, configured with ``extra`` (TOML appended to the [execution] table).
ExecutionDaemon = Callable[..., AbstractAsyncContextManager[tuple[App, Path]]]


@pytest.fixture
def execution_daemon(
    daemon: StartDaemon,
    daemon_env: dict[str, str],
    short_tmp: Path,
    site: DemoSite,
    monkeypatch: pytest.MonkeyPatch,
) -> ExecutionDaemon:
    """Serve a daemon wired to ``site``, with accounts, secrets and consent in place."""

    @asynccontextmanager
    async def start(extra: str = "", webhook: str | None = None) -> AsyncIterator[tuple[App, Path]]:
        key = short_tmp / "vault.key"
        generate_key_file(key)
        cfg = short_tmp / "agentd.toml"
        cfg.write_text(
            '[autonomy]\nlevel = "L3+"\n'
            "[scheduler]\nenabled = false\n"
            f'[vault]\nkey_file = "{key}"\n'
            # Step captures at a quarter of the viewport: these tests check what the
            # back-office holds, not the images, and Chromium does half the work per capture.
            "[browser]\nstep_timeout_s = 5.0\ntrace = false\nscreenshot_scale = 0.25\n"
            f'[browser.services.backoffice]\nbase_url = "{site.url}"\n'
            + (f'[notify]\nwebhook_url = "{webhook}"\n' if webhook else "")
            + "[execution]\npoll_interval_s = 0.2\noperation_timeout_s = 60.0\n"
            + extra
        )
        monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
        async with daemon(load_settings(None)) as d:
            await d.ask("accounts.import", {"name": "a.csv"}, upload=ACCOUNTS.encode())
            for account in ("acme", "globex", "stark"):
                for name, value in (
                    ("admin_user", site.admin_user),
                    ("admin_password", site.admin_password),
                ):
                    await d.ask(
                        "secret.set",
                        {"account": account, "service": "backoffice", "name": name},
                        upload=value.encode(),
                    )
                await d.ask(
                    "consent.grant",
                    {"account": account, "service": "backoffice", "permissions": ["write"]},
                )
            yield d.app, d.sock

    return start


async def propose(sock: Path, **fields: Any) -> dict[str, Any]:
    args = {"tenant": "t1", "source": "operator", "rationale": "test", **fields}
    result: dict[str, Any] = await ask(sock, "propose", args)
    return result


async def finished(app: App, intent_id: str, timeout: float = 90) -> dict[str, Any]:
    """Wait until the intent's execution is finished; return `execution show`."""
    with anyio.fail_after(timeout):
        while True:
            row = await app.store.read_one(
                "SELECT id, state FROM executions WHERE intent_id = ? AND kind = 'change'",
                (intent_id,),
            )
            if row is not None and row[1] in ("succeeded", "failed", "refused"):
                return await app.execution_views.show(row[0])
            await anyio.sleep(0.1)


async def held(app: App, intent_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            row = await app.store.read_one(
                "SELECT id, state FROM executions WHERE intent_id = ?", (intent_id,)
            )
            if row is not None and row[1] == state:
                return await app.execution_views.show(row[0])
            await anyio.sleep(0.1)


async def audit_events(app: App, subject: str) -> list[str]:
    return [r.event async for r in app.store.audit_records() if r.subject == subject]


async def expect_error(code: ErrorCode, coro: Any) -> AgentdError:
    with pytest.raises(AgentdError) as info:
        await coro
    assert info.value.code is code, info.value
    return info.value


async def test_seo_change_runs_then_soft_undo_restores_it(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    product = site.state.product(101)
    old_title, old_meta = product.seo_title, product.meta_description
    async with execution_daemon() as (app, sock):
        decided = await propose(
            sock,
            account="acme",
            action_type="update_account_context",
            domain="SEO",
            change_type="meta_update",
            diff={"product_id": "101", "seo_title": "Widgets, delivered tomorrow"},
        )
        assert decided["decision"] == "AUTO_EXECUTE"
        exe = await finished(app, decided["intent_id"])
        assert exe["state"] == "succeeded", exe
        assert exe["executor"] == "product_seo" and exe["autonomous"] is True
        assert exe["before"] == {"seo_title": old_title, "meta_description": old_meta}
        assert exe["after"] == {
            "seo_title": "Widgets, delivered tomorrow",
            "meta_description": old_meta,
        }
        assert site.state.product(101).seo_title == "Widgets, delivered tomorrow"
        # Every check ran, in SPEC order, and passed.
        assert [c["check"] for c in exe["checks"]] == [
            "intent_approved",
            "kill_switch",
            "trusted_mode",
            "daily_limit",
            "execution_window",
            "consent",
            "before_snapshot",
        ]
        assert all(c["passed"] for c in exe["checks"])
        token = exe["rollback_token"]
        started = datetime.fromisoformat(exe["started_at"])
        assert datetime.fromisoformat(token["deadline"]) == started + timedelta(hours=72)
        phases = [op["phase"] for op in exe["operations"]]
        assert phases == ["snapshot", "change", "verify"]
        for op in exe["operations"]:
            assert op["screenshots"] and all(Path(p).is_file() for p in op["screenshots"])
        listed = await ask(sock, "executions.list", {"status": "succeeded"})
        assert [e["id"] for e in listed["executions"]] == [exe["id"]]

        check = await ask(sock, "rollback.check", {"token": token["token"]})
        assert (check["available"], check["type"]) == (True, "SOFT_UNDO")
        done = await ask(sock, "rollback.run", {"token": token["token"], "reason": "wrong title"})
        assert (done["state"], done["type"]) == ("rolled_back", "SOFT_UNDO")
        assert site.state.product(101).seo_title == old_title
        assert site.state.product(101).meta_description == old_meta

        # The token is spent; the rollback itself cannot be rolled back.
        err = await expect_error(
            ErrorCode.INVALID_STATE,
            ask(sock, "rollback.run", {"token": token["token"], "reason": "again"}),
        )
        assert err.details["reason"] == "ALREADY_USED"
        err = await expect_error(
            ErrorCode.INVALID_STATE,
            ask(sock, "rollback.run", {"token": done["rollback"], "reason": "undo the undo"}),
        )
        assert err.details["reason"] == "ROLLBACK_OF_ROLLBACK"
        events = await audit_events(app, exe["id"])
        assert events[:2] == ["EXECUTION_STARTED", "EXECUTION_COMPLETED"]
        assert events[2:] == ["EXECUTION_ROLLED_BACK", "ROLLBACK_FAILED"]
        assert await audit_events(app, done["rollback"]) == ["ROLLBACK_FAILED"]
        assert (await ask(sock, "audit.verify"))["intact"] is True
        # The digest lists the undo and the two refused attempts, newest first.
        day = datetime.fromisoformat(exe["finished_at"]).astimezone(UTC).date()
        path = await app.proactive.digest.write(day)
        text = path.read_text()
        undos = text.split("## Rollbacks\n\n")[1].split("\n## ")[0].splitlines()[2:]
        assert [row.split(" | ")[1:6:4] for row in undos] == [
            [done["rollback"], "refused"],
            [exe["id"], "refused"],
            [exe["id"], "rolled back"],
        ], undos
        assert "| update_account_context | acme | SOFT_UNDO | rolled back |" in undos[2]
        assert undos[2].endswith(" | wrong title |") and "ALREADY_USED" in undos[1]
        assert "1 autonomous action succeeded, 0 failed, 3 rollbacks," in text


async def test_a_change_someone_else_changed_since_escalates(
    short_tmp: Path,
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
    webhook: Webhook,
) -> None:
    async with execution_daemon(webhook=webhook.url) as (app, sock):
        decided = await propose(
            sock,
            account="acme",
            action_type="update_account_context",
            domain="SEO",
            change_type="meta_update",
            diff={"product_id": "102", "meta_description": "Fresh copy"},
        )
        exe = await finished(app, decided["intent_id"])
        assert exe["state"] == "succeeded", exe
        current = site.state.product(102)
        site.state.update_product(
            102,
            title=current.title,
            seo_title="Edited by a person",
            meta_description="x",
            price=str(current.price),
        )
        done = await ask(sock, "rollback.run", {"token": exe["id"], "reason": "undo"})
        assert done["state"] == "escalated" and done["type"] == "ESCALATED_RESTORE"
        assert site.state.product(102).seo_title == "Edited by a person"  # nothing changed
        incidents = (await ask(sock, "incidents.list", {"status": "open"}))["incidents"]
        assert [i["id"] for i in incidents] == [done["incident"]]
        assert incidents[0]["kind"] == "rollback_escalated"
        with anyio.fail_after(10):
            while not (await app.incidents.get(done["incident"])).notified:
                await anyio.sleep(0.05)
        notified = (await app.incidents.get(done["incident"])).notified
        assert any(n.startswith("file:") for n in notified) and "webhook" in " ".join(notified)
        assert webhook.bodies and webhook.bodies[0]["refs"]["incident"] == done["incident"]
        files = list((short_tmp / "state" / "notifications").glob("*.json"))
        assert files and done["incident"] in files[0].read_text()
        resolved = await ask(
            sock, "incidents.resolve", {"id": done["incident"], "note": "checked by hand"}
        )
        assert resolved["status"] == "resolved"
        await expect_error(
            ErrorCode.INVALID_STATE,
            ask(sock, "incidents.resolve", {"id": done["incident"], "note": "again"}),
        )
        await expect_error(
            ErrorCode.NOT_FOUND, ask(sock, "incidents.resolve", {"id": "inc_x", "note": "n"})
        )


async def test_a_sent_message_cannot_be_undone_and_a_half_way_failure_is_reported(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    async with execution_daemon() as (app, sock):
        sent = await propose(
            sock,
            account="acme",
            action_type="send_follow_up_email",
            diff={"subject": "Following up", "body": "Shall we talk on Tuesday?"},
        )
        exe = await finished(app, sent["intent_id"])
        assert exe["state"] == "succeeded", exe
        assert exe["after"]["message_count"] == exe["before"]["message_count"] + 1
        assert any(m.subject == "Following up" for m in site.state.messages_for("acme"))
        check = await ask(sock, "rollback.check", {"token": exe["rollback_token"]["token"]})
        assert check["type"] == "ESCALATED_RESTORE" and check["reason"] == "NO_UNDO"

        # The message is sent, then the outbox page fails: applied, with an incident.
        site.fail("/crm/outbox")
        broken = await propose(
            sock,
            account="globex",
            action_type="send_follow_up_email",
            diff={"subject": "Second", "body": "Body"},
        )
        exe = await finished(app, broken["intent_id"])
        assert (exe["state"], exe["target_state"]) == ("failed", "applied"), exe
        assert "changed as intended" in exe["detail"]
        incidents = (await ask(sock, "incidents.list", {}))["incidents"]
        assert [(i["kind"], i["ref"]) for i in incidents] == [("execution_failed", exe["id"])]
        err = await expect_error(
            ErrorCode.INVALID_STATE,
            ask(sock, "rollback.run", {"token": exe["rollback_token"]["token"], "reason": "x"}),
        )
        assert err.details["reason"] == "EXECUTION_FAILED"

        # The compose page fails: nothing was sent, and the engine says so.
        site.clear_failures()
        site.fail("/crm/accounts/globex/compose")
        clean = await propose(
            sock, account="globex", action_type="send_follow_up_email", diff={"body": "Third"}
        )
        exe = await finished(app, clean["intent_id"])
        assert (exe["state"], exe["target_state"]) == ("failed", "unchanged"), exe
        assert len((await ask(sock, "incidents.list", {}))["incidents"]) == 1


async def test_limits_windows_trust_and_missing_executors(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    # The engine's clock runs from noon of the day the test starts, so the day's
    # limit and the closed window below do not depend on the time of day, nor on
    # a midnight the run may cross (approval expiries, set by the real clock,
    # stay hours away from it).
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    started = time.monotonic()
    closed_start = (now + timedelta(hours=2)).strftime("%H:%M")
    closed_end = (now + timedelta(hours=3)).strftime("%H:%M")
    extra = (
        "daily_limit = 1\n"
        "[execution.windows.t2]\n"
        f'timezone = "UTC"\nstart = "{closed_start}"\nend = "{closed_end}"\n'
    )
    async with execution_daemon(extra=extra) as (app, sock):
        app.execution.clock = lambda: now + timedelta(seconds=time.monotonic() - started)
        await ask(
            sock,
            "accounts.import",
            {"name": "b.csv"},
            upload=b"id,tenant,name,stage,trusted_mode\nwayne,t2,Wayne,discovery,ACTIVE\n",
        )
        first = await propose(
            sock, account="acme", action_type="log_interaction", diff={"note": "Called"}
        )
        second = await propose(
            sock, account="globex", action_type="log_interaction", diff={"note": "Emailed"}
        )
        # Both run their checks at once; exactly one gets the day's single slot.
        states = {}
        with anyio.fail_after(60):
            while sorted(states.values()) != ["succeeded", "waiting"]:
                await anyio.sleep(0.1)
                for intent in (first, second):
                    row = await app.store.read_one(
                        "SELECT id, state FROM executions WHERE intent_id = ?",
                        (intent["intent_id"],),
                    )
                    if row is not None:
                        states[row[0]] = row[1]
        waiting = await app.execution_views.show(
            next(k for k, v in states.items() if v == "waiting")
        )
        assert waiting["reason"] == "DAILY_LIMIT_REACHED"
        assert datetime.fromisoformat(waiting["retry_at"]).date() > now.date()

        # Tenant t2's window is closed now: it waits for the opening, not dropped.
        outside = await propose(
            sock,
            tenant="t2",
            account="wayne",
            action_type="log_interaction",
            diff={"note": "Later"},
        )
        exe = await held(app, outside["intent_id"], "waiting")
        assert exe["reason"] == "OUTSIDE_WINDOW"
        assert datetime.fromisoformat(exe["retry_at"]).strftime("%H:%M") == closed_start

        # Consent that only allows reading does not cover a change: it waits for consent.
        await ask(
            sock,
            "accounts.import",
            {"name": "c.csv"},
            upload=b"id,tenant,name,stage,trusted_mode\nwonka,t3,Wonka,discovery,ACTIVE\n",
        )
        await ask(
            sock,
            "consent.grant",
            {"account": "wonka", "service": "backoffice", "permissions": ["read"]},
        )
        reading = await propose(
            sock, tenant="t3", account="wonka", action_type="log_interaction", diff={"note": "Hi"}
        )
        exe = await held(app, reading["intent_id"], "awaiting_consent")
        assert exe["reason"] == "CONSENT_MISSING"

        # An approved intent nothing can carry out is refused at approval time.
        pending = await propose(
            sock, account="acme", action_type="ship_samples", diff={"amount": 10}
        )
        assert (pending["decision"], pending["reason"]) == ("REQUIRE_APPROVAL", "NO_EXECUTOR")
        err = await expect_error(
            ErrorCode.NO_EXECUTOR, ask(sock, "approve", {"id": pending["intent_id"]})
        )
        assert "no executor carries out ship_samples" in err.message
        assert "APPROVAL_REFUSED" in await audit_events(app, pending["intent_id"])
        bad = await propose(
            sock,
            account="acme",
            action_type="schedule_meeting",
            diff={"duration": 25},
        )
        exe = await finished(app, bad["intent_id"])
        assert (exe["state"], exe["reason"]) == ("refused", "BAD_PARAMETERS")
        assert "duration" in exe["detail"]


async def test_rollback_bad_input(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    async with execution_daemon() as (app, sock):
        await expect_error(ErrorCode.NOT_FOUND, ask(sock, "rollback.check", {"token": "rbk_no"}))
        await expect_error(
            ErrorCode.NOT_FOUND, ask(sock, "rollback.run", {"token": "rbk_no", "reason": "r"})
        )
        await expect_error(ErrorCode.NOT_FOUND, ask(sock, "execution.show", {"id": "exe_missing"}))
        await expect_error(
            ErrorCode.INVALID_ARGUMENT, ask(sock, "executions.list", {"status": "exploded"})
        )
        decided = await propose(
            sock,
            account="acme",
            action_type="update_account_context",
            domain="SEO",
            change_type="meta_update",
            diff={"product_id": "103", "seo_title": "New"},
        )
        exe = await finished(app, decided["intent_id"])
        token = exe["rollback_token"]["token"]
        await expect_error(
            ErrorCode.INVALID_ARGUMENT, ask(sock, "rollback.run", {"token": token, "reason": " "})
        )
        await expect_error(
            ErrorCode.INVALID_ARGUMENT,
            ask(sock, "rollback.extend", {"token": token, "until": "yesterday", "reason": "r"}),
        )
        await expect_error(
            ErrorCode.INVALID_ARGUMENT,
            ask(
                sock,
                "rollback.extend",
                {"token": token, "until": "2000-01-01T00:00:00Z", "reason": "r"},
            ),
        )
        deadline = datetime.fromisoformat(exe["rollback_token"]["deadline"])
        until = (deadline + timedelta(days=5)).isoformat()
        extended = await ask(
            sock, "rollback.extend", {"token": token, "until": until, "reason": "audit"}
        )
        assert datetime.fromisoformat(extended["deadline"]) == deadline + timedelta(days=5)
        assert extended["extensions"][0]["by"]
        assert "ROLLBACK_DEADLINE_EXTENDED" in await audit_events(app, exe["id"])
        # A clock jump past the deadline: the token has expired, nothing runs.
        real_clock = app.execution.clock
        app.execution.clock = lambda: real_clock() + timedelta(days=40)
        err = await expect_error(
            ErrorCode.INVALID_STATE, ask(sock, "rollback.run", {"token": token, "reason": "late"})
        )
        assert err.details["reason"] == "TOKEN_EXPIRED"
        assert (await ask(sock, "rollback.check", {"token": token}))["reason"] == "TOKEN_EXPIRED"
        app.execution.clock = real_clock
        # The site is down: the current values cannot be read, so nothing changes.
        site.fail("/admin", mode="down")
        err = await expect_error(
            ErrorCode.INVALID_STATE, ask(sock, "rollback.run", {"token": token, "reason": "r"})
        )
        assert err.details["reason"] == "SNAPSHOT_FAILED"
        assert (await ask(sock, "rollback.check", {"token": token}))["state"] == "available"
        # Down for an execution's before snapshot: it waits and tries again, changing nothing.
        waiting = await propose(
            sock,
            account="acme",
            action_type="update_account_context",
            domain="SEO",
            change_type="meta_update",
            diff={"product_id": "104", "seo_title": "Later"},
        )
        exe = await held(app, waiting["intent_id"], "waiting")
        assert exe["reason"] == "SNAPSHOT_FAILED" and exe["attempts"] == 1
        assert "attempt 2 of 3" in exe["detail"]
        assert site.state.product(104).seo_title != "Later"


async def test_a_medium_risk_change_is_hard_undone(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    before = site.state.product(105)
    async with execution_daemon() as (app, sock):
        decided = await propose(
            sock,
            account="acme",
            action_type="update_account_context",
            domain="SEO",
            change_type="meta_update",
            diff={"product_id": "105", "meta_description": "Bulk copy refresh", "bulk": True},
        )
        # MEDIUM risk does not auto-execute at L3+: a person approves it.
        assert (decided["decision"], decided["risk_level"]) == ("REQUIRE_APPROVAL", "MEDIUM")
        await ask(sock, "approve", {"id": decided["intent_id"]})
        exe = await finished(app, decided["intent_id"])
        assert exe["state"] == "succeeded" and exe["autonomous"] is False, exe
        assert site.state.product(105).meta_description == "Bulk copy refresh"
        started = datetime.fromisoformat(exe["started_at"])
        deadline = datetime.fromisoformat(exe["rollback_token"]["deadline"])
        assert deadline == started + timedelta(days=7)
        check = await ask(sock, "rollback.check", {"token": exe["id"]})
        assert check["type"] == "HARD_UNDO"
        done = await ask(sock, "rollback.run", {"token": exe["id"], "reason": "too broad"})
        assert done["type"] == "HARD_UNDO"
        after = site.state.product(105)
        assert (after.seo_title, after.meta_description) == (
            before.seo_title,
            before.meta_description,
        )


BREAKER_RULES = """
[[breakers.rules]]
name = "high_error_rate"
metric = "error_rate"
threshold = 0.05
window = "5m"
action = "revert_to_l3"
severity = "critical"
min_events = 2
"""


async def test_failing_executions_trip_the_error_rate_breaker(
    site: DemoSite,
    execution_daemon: ExecutionDaemon,
) -> None:
    async with execution_daemon(extra=BREAKER_RULES) as (app, sock):
        ok = await propose(sock, account="acme", action_type="log_interaction", diff={"note": "a"})
        assert (await finished(app, ok["intent_id"]))["state"] == "succeeded"
        # The back-office's note form fails: the change fails, the rate goes over 5 %.
        site.fail("/crm/accounts/globex/notes", mode="down")
        bad = await propose(
            sock, account="globex", action_type="log_interaction", diff={"note": "b"}
        )
        exe = await finished(app, bad["intent_id"])
        assert exe["state"] == "failed" and exe["target_state"] == "unchanged", exe
        with anyio.fail_after(20):
            while not (await ask(sock, "breaker.status"))["tripped"]:
                await anyio.sleep(0.1)
        status = await ask(sock, "breaker.status")
        assert [t["key"] for t in status["tripped"]] == ["high_error_rate"]
        assert (await ask(sock, "level"))["level"] == "L3"
        incidents = (await ask(sock, "incidents.list", {}))["incidents"]
        assert any(
            i["kind"] == "breaker_tripped" and i["severity"] == "critical" for i in incidents
        )
        # Auto-execution has stopped: the same kind of intent now waits for a person.
        later = await propose(
            sock, account="acme", action_type="log_interaction", diff={"note": "c"}
        )
        assert later["decision"] == "REQUIRE_APPROVAL"
        (incident,) = [i for i in incidents if i["kind"] == "breaker_tripped"]
        assert incident["autonomous"] is True  # autonomous actions failed: it is theirs
        await ask(sock, "task.run", {"name": "daily_digest_generation", "wait": True})
        day = datetime.fromisoformat(exe["finished_at"]).astimezone(UTC).date().isoformat()
        digest = await ask(sock, "digest", {"date": day, "show": True})
        text = digest["content"]
        assert "high_error_rate" in text
        assert "1 autonomous action succeeded, 1 failed," in text
        # The failed operation: its account, workflow, failing step and that step's screenshot.
        (row,) = [
            line
            for line in text.splitlines()
            if line.startswith(f"| {day[:4]}") and f"| {exe['change_op']} |" in line
        ]
        cells = row.split(" | ")
        assert cells[2:5] == ["globex", "add_note", exe["id"]], row
        assert cells[5].startswith("step "), row
        link = row.rsplit("](<", 1)[1].split(">)", 1)[0]
        shot = Path(digest["path"]).parent / link
        assert shot.read_bytes().startswith(b"\x89PNG"), shot
        # A reset clears the breaker but never raises the level again.
        await ask(sock, "breaker.reset", {"name": "high_error_rate", "reason": "fixed the form"})
        assert (await ask(sock, "breaker.status"))["tripped"] == []
        assert (await ask(sock, "level"))["level"] == "L3"
