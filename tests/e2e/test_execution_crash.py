"""SIGKILL the daemon while it carries out changes in real Chromium; restart; check.

Nothing may run twice: every note on the demo site belongs to exactly one
execution that says the change was applied, no execution is left mid-way,
and the audit trail verifies.
"""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path

import pytest

from agentd.ctl.client import call
from agentd.demosite import DemoSite
from agentd.ops_config import DEFAULT_CHROMIUM
from agentd.supervise import DaemonProcess
from agentd.vault import generate_key_file

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not DEFAULT_CHROMIUM.is_file(), reason="Chromium is not installed"),
]
NOTES = 3


def test_sigkill_mid_execution_then_restart(daemon_env: dict[str, str], short_tmp: Path) -> None:
    key = short_tmp / "vault.key"
    generate_key_file(key)
    with DemoSite() as site:
        cfg = short_tmp / "agentd.toml"
        cfg.write_text(
            '[autonomy]\nlevel = "L3+"\n[scheduler]\nenabled = false\n'
            f'[vault]\nkey_file = "{key}"\n'
            "[browser]\ntrace = false\nlease_s = 5.0\n"
            f'[browser.services.backoffice]\nbase_url = "{site.url}"\n'
            "[execution]\npoll_interval_s = 0.2\n"
        )
        env = {**daemon_env, "AGENTD_CONFIG": str(cfg)}
        sock = Path(env["AGENTD_SOCKET_PATH"])
        db = Path(env["AGENTD_STATE_DIR"]) / "agentd.sqlite3"
        first = DaemonProcess(env, log_path=short_tmp / "d1.log")
        try:
            first.wait_ready(30)
            csv = (
                "id,tenant,name,stage,trusted_mode,allowed_hosts\n"
                "wonka,t1,Wonka,discovery,ACTIVE,127.0.0.1\n"
            )
            call(sock, "accounts.import", {"name": "a.csv"}, upload=io.BytesIO(csv.encode()))
            for name, value in (
                ("admin_user", site.admin_user),
                ("admin_password", site.admin_password),
            ):
                call(
                    sock,
                    "secret.set",
                    {"account": "wonka", "service": "backoffice", "name": name},
                    upload=io.BytesIO(value.encode()),
                )
            call(sock, "consent.grant", {"account": "wonka", "service": "backoffice"})
            intents = []
            for i in range(NOTES):
                r = call(
                    sock,
                    "propose",
                    {
                        "tenant": "t1",
                        "account": "wonka",
                        "action_type": "log_interaction",
                        "rationale": f"note {i}",
                        "diff": {"note": f"Crash-test note {i}"},
                    },
                )
                assert r["decision"] == "AUTO_EXECUTE"
                intents.append(r["intent_id"])
            # Kill it while a change operation is under way.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                running = call(sock, "executions.list", {"status": "running"})["executions"]
                if running and running[0]["change_op"]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("no execution reached its change step")
            time.sleep(0.3)
        finally:
            first.kill()
            first.close()

        second = DaemonProcess(env, log_path=short_tmp / "d2.log")
        try:
            second.wait_ready(30)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                rows = call(sock, "executions.list", {})["executions"]
                if len(rows) == NOTES and all(
                    r["state"] in ("succeeded", "failed", "refused") for r in rows
                ):
                    break
                time.sleep(0.2)
            else:
                pytest.fail(f"executions did not finish: {[r['state'] for r in rows]}")
            verify = call(sock, "audit.verify", {})
            assert verify["intact"], verify
        finally:
            assert second.stop() == 0
            second.close()

        con = sqlite3.connect(db)
        rows = con.execute(
            "SELECT intent_id, state, target_state, reason FROM executions WHERE kind = 'change'"
        ).fetchall()
        assert sorted(r[0] for r in rows) == sorted(intents)  # one execution per intent
        applied = [r for r in rows if r[2] == "applied"]
        texts = [n.text for n in site.state.notes_for("wonka")]
        # Each note on the site was written exactly once, by an execution that says so.
        assert len(texts) == len(set(texts)) == len(applied)
        assert any(r[1] == "succeeded" for r in rows)
        # The killed one is accounted for: resumed to success, or failed with what it did.
        for _, state, target, reason in rows:
            assert state in ("succeeded", "failed"), (state, reason)
            if state == "failed":
                assert target in ("applied", "unchanged", "partial", "unknown")
