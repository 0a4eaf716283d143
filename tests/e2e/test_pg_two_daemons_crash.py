"""Two daemons on one PostgreSQL: SIGKILL one mid-stream, restart it, resubmit everything.

A stream of submissions, each intent two or three times, spread over two
real ``agentd serve`` processes sharing one database; daemon A is killed
while batches are in flight, restarted with the same daemon id, and every
submission is made again on both. Then: each intent consumed budget at most
once, the counters agree with the consumptions, no approved intent lost (one
hand-off row each), each approved intent carried out by exactly one
execution (handed off to a person once: no browser needed), and ``agentctl
audit verify`` passes on both daemons.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentd.ctl.client import Unreachable, call
from agentd.errors import AgentdError
from agentd.supervise import DaemonProcess
from agentd.testing.pgcluster import PgCluster
from tests.e2e.test_gate_crash import ACCOUNTS, ACTIONS, intents

pytestmark = pytest.mark.slow(10)

CONFIG = """
[store]
url = "{url}"
[autonomy]
level = "L3+"
[budget]
per_tenant_daily = 40
per_account_daily = 4
per_action_type_daily = 30
[execution]
poll_interval_s = 0.3
[execution.executors]
{handoffs}
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with PgCluster() as pg:
        yield pg


def _env(base: Path, name: str, cfg: Path) -> dict[str, str]:
    return {
        "AGENTD_STATE_DIR": str(base / name / "state"),
        "AGENTD_SOCKET_PATH": str(base / f"{name}.sock"),
        "AGENTD_LOG_DIR": str(base / name / "logs"),
        "AGENTD_CONFIG": str(cfg),
        "AGENTD_STORE__DAEMON_ID": name,
    }


def _verify(sock: Path) -> None:
    ctl = str(Path(sys.executable).parent / "agentctl")
    done = subprocess.run(
        [ctl, "--socket", str(sock), "audit", "verify"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _submit_stream(
    socks: list[Path], stream: list[dict[str, Any]]
) -> tuple[dict[str, str], list[threading.Thread]]:
    """Submit ``stream`` from 12 threads, alternating daemons.

    Return what is acknowledged (filled in as answers come) and the threads.
    """
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    cursor = iter(range(len(stream)))

    def worker() -> None:
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            try:
                r = call(socks[index % 2], "propose", stream[index], timeout=10)
            except (Unreachable, AgentdError, OSError):
                continue  # that daemon is gone: the others go on
            with lock:
                acknowledged[r["intent_id"]] = r["decision"]

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    return acknowledged, threads


def test_two_daemons_one_killed_mid_stream_then_everything_resubmitted(
    cluster: PgCluster, short_tmp: Path
) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE crash")
    url = cluster.url_for("crash")
    cfg = short_tmp / "agentd.toml"
    handoffs = "\n".join(f'{action} = "handoff"' for action in ACTIONS)
    cfg.write_text(CONFIG.format(url=url, handoffs=handoffs))
    env_a, env_b = _env(short_tmp, "a", cfg), _env(short_tmp, "b", cfg)
    socks = [Path(env_a["AGENTD_SOCKET_PATH"]), Path(env_b["AGENTD_SOCKET_PATH"])]
    csv = "id,tenant,name,stage,trusted_mode\n" + "".join(
        f"{a},t1,{a},prospect,ACTIVE\n" for a in ACCOUNTS
    )
    a = DaemonProcess(env_a, log_path=short_tmp / "a1.log")
    b = DaemonProcess(env_b, log_path=short_tmp / "b.log")
    restarted: DaemonProcess | None = None
    try:
        a.wait_ready(60)
        b.wait_ready(60)
        call(socks[0], "accounts.import", {"name": "a.csv"}, upload=io.BytesIO(csv.encode()))
        stream = intents()
        acknowledged, threads = _submit_stream(socks, stream)
        deadline = time.monotonic() + 30
        while len(acknowledged) < 25 and time.monotonic() < deadline:
            time.sleep(0.005)
        a.kill()  # mid-stream: batches of both daemons are in flight
        for t in threads:
            t.join(60)
        a.close()
        assert len(acknowledged) >= 25
        before_restart = dict(acknowledged)

        restarted = DaemonProcess(env_a, log_path=short_tmp / "a2.log")
        restarted.wait_ready(60)
        final: dict[str, dict[str, Any]] = {}
        for index, fields in enumerate(stream):
            r = call(socks[index % 2], "propose", fields, timeout=10)
            final[r["intent_id"]] = r
        _wait_for_handoffs(url)
        for sock in socks:
            _verify(sock)
    finally:
        for proc in (b, restarted):
            if proc is not None:
                assert proc.stop() == 0
                proc.close()
        if a.proc.poll() is None:
            a.kill()
            a.close()

    for intent_id, decision in before_restart.items():
        assert final[intent_id]["decision"] == decision
    assert len(final) == len(ACCOUNTS) * len(ACTIONS)
    _check_the_database(url)


def _wait_for_handoffs(url: str) -> None:
    """Wait until every approved intent's execution is handed off (or 60 s pass)."""
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            (left,) = conn.execute(
                "SELECT count(*) FROM intents i WHERE i.status = 'approved' AND NOT EXISTS "
                "(SELECT 1 FROM executions e WHERE e.intent_id = i.id AND e.state = 'handed_off')"
            ).fetchone()  # type: ignore[misc]
            if left == 0:
                return
            time.sleep(0.2)
    raise AssertionError(f"{left} approved intents not handed off")


def _check_the_database(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:

        def q(sql: str, *p: Any) -> list[Any]:
            return conn.execute(sql, p).fetchall()

        auto = {r[0] for r in q("SELECT id FROM intents WHERE decision = 'AUTO_EXECUTE'")}
        consumed = [r[0] for r in q("SELECT intent_id FROM budget_consumption")]
        # Budget consumed once per auto-executed intent, whichever daemon decided.
        assert len(consumed) == len(set(consumed)) == len(auto) > 0
        assert set(consumed) == auto
        (tenant_used,) = q("SELECT used FROM budget_usage WHERE scope = 'tenant' AND key = 't1'")[0]
        assert tenant_used == len(consumed) <= 40
        for key, used in q("SELECT key, used FROM budget_usage WHERE scope = 'account'"):
            account = key.split("/")[1]
            (n,) = q(
                "SELECT count(*) FROM budget_consumption c JOIN intents i ON i.id = c.intent_id "
                "WHERE i.account = %s",
                account,
            )[0]
            assert used == n <= 4
        # No approved intent lost: one hand-off row each.
        approved = {r[0] for r in q("SELECT id FROM intents WHERE status = 'approved'")}
        queued = [r[0] for r in q("SELECT intent_id FROM execution_queue")]
        assert len(queued) == len(set(queued))
        assert set(queued) == approved == auto
        # Each approved intent carried out once: one execution, handed off once.
        runs = q("SELECT intent_id, id, lease_owner FROM executions WHERE kind = 'change'")
        assert sorted(r[0] for r in runs) == sorted(approved)
        handed = [r[0] for r in q("SELECT subject FROM audit WHERE event = 'EXECUTION_HANDED_OFF'")]
        assert len(handed) == len(set(handed)) == len(runs)
        starts = q("SELECT data FROM audit WHERE event = 'DAEMON_STARTED' ORDER BY seq")
        assert len(starts) == 3  # a, b, a again
        print(
            f"\nintents {len(q('SELECT id FROM intents'))}, auto-executed and consumed "
            f"{len(consumed)}, approved {len(approved)}, executions {len(runs)} "
            f"(by runner prefix: {_by_daemon(runs)})"
        )


def _by_daemon(runs: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in runs:
        who = str(r[2] or "none").split("/")[0]
        out[who] = out.get(who, 0) + 1
    return out
