"""SIGKILL the daemon during a stream of submissions, restart, resubmit."""

from __future__ import annotations

import io
import itertools
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agentd.ctl.client import Unreachable, call
from agentd.errors import AgentdError
from agentd.supervise import DaemonProcess

CONFIG = """
[autonomy]
level = "L3+"
[budget]
per_tenant_daily = 40
per_account_daily = 4
per_action_type_daily = 30
"""
ACTIONS = (
    "send_follow_up_email",
    "send_chat_message",
    "schedule_meeting",
    "log_interaction",
    "send_proposal",
    "create_briefing",
)
ACCOUNTS = [f"acct{i:02d}" for i in range(15)]


def intents() -> list[dict[str, Any]]:
    out = []
    for account, action in itertools.product(ACCOUNTS, ACTIONS):
        out.append(
            {
                "tenant": "t1",
                "account": account,
                "action_type": action,
                "rationale": f"{action} for {account}",
            }
        )
    # Every intent is submitted two or three times, interleaved.
    return out + out[::2] + out


def test_sigkill_mid_stream_then_resubmit(daemon_env: dict[str, str], short_tmp: Path) -> None:
    cfg = short_tmp / "agentd.toml"
    cfg.write_text(CONFIG)
    env = {**daemon_env, "AGENTD_CONFIG": str(cfg)}
    sock = Path(env["AGENTD_SOCKET_PATH"])
    db = Path(env["AGENTD_STATE_DIR"]) / "agentd.sqlite3"
    csv = "id,tenant,name,stage,trusted_mode\n" + "".join(
        f"{a},t1,{a},prospect,ACTIVE\n" for a in ACCOUNTS
    )

    first = DaemonProcess(env, log_path=short_tmp / "d1.log")
    first.wait_ready(30)
    call(sock, "accounts.import", {"name": "a.csv"}, upload=io.BytesIO(csv.encode()))

    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    stream = intents()
    cursor = iter(range(len(stream)))

    def worker() -> None:
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            try:
                r = call(sock, "propose", stream[index], timeout=10)
            except (Unreachable, AgentdError, OSError):
                return
            with lock:
                acknowledged[r["intent_id"]] = r["decision"]

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 25 and time.monotonic() < deadline:
        time.sleep(0.005)
    first.kill()  # mid-stream: submissions are in flight
    for t in threads:
        t.join(30)
    first.close()
    assert 25 <= len(acknowledged) < len({tuple(sorted(i.items())) for i in stream})

    second = DaemonProcess(env, log_path=short_tmp / "d2.log")
    try:
        second.wait_ready(30)
        final: dict[str, dict[str, Any]] = {}
        for fields in stream:
            r = call(sock, "propose", fields, timeout=10)
            final[r["intent_id"]] = r
        verify = subprocess.run(
            [
                str(Path(sys.executable).parent / "agentctl"),
                "--socket",
                str(sock),
                "audit",
                "verify",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        assert second.stop() == 0
        second.close()

    # Every decision acknowledged before the crash survived it, unchanged.
    for intent_id, decision in acknowledged.items():
        assert final[intent_id]["decision"] == decision
    con = sqlite3.connect(db)
    q = lambda sql, *p: con.execute(sql, p).fetchall()  # noqa: E731
    auto = {row[0] for row in q("SELECT id FROM intents WHERE decision = 'AUTO_EXECUTE'")}
    consumed = [row[0] for row in q("SELECT intent_id FROM budget_consumption")]
    assert len(consumed) == len(set(consumed)) == len(auto)
    assert set(consumed) == auto
    # Counters agree with the consumptions and never exceed a limit.
    (tenant_used,) = q("SELECT used FROM budget_usage WHERE scope = 'tenant' AND key = 't1'")[0]
    assert tenant_used == len(consumed) <= 40
    for key, used in q("SELECT key, used FROM budget_usage WHERE scope = 'account'"):
        account = key.split("/")[1]
        (n,) = q(
            "SELECT count(*) FROM budget_consumption c JOIN intents i ON i.id = c.intent_id "
            "WHERE i.account = ?",
            account,
        )[0]
        assert used == n <= 4
    # No approved intent lost: each has exactly one hand-off row.
    approved = {row[0] for row in q("SELECT id FROM intents WHERE status = 'approved'")}
    queued = [row[0] for row in q("SELECT intent_id FROM execution_queue")]
    assert len(queued) == len(set(queued))
    assert set(queued) == approved == auto
    assert len(final) == len(ACCOUNTS) * len(ACTIONS)
    con.close()
