"""Durable gate decisions per second vs raw single-row SQLite commits.

Run: .venv/bin/python bench/gate_throughput.py [--decisions N] [--submitters N] [--sync FULL|NORMAL]

Both sides use the same folder (same disk), WAL and the same ``synchronous``
setting. The raw side commits one small row per transaction with the
standard ``sqlite3`` module. The gate side runs the real GateService on the
real SqliteStore: every decision is AUTO_EXECUTE (budget consumed, counters,
idempotency, hand-off row, intent with its trace, three audit records), with
N concurrent submitters; concurrent decisions share a transaction (group
commit). Prints both rates, their ratio, and the gate's p50/p99 latency.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.config import load_settings
from agentd.core.intents import make_intent
from agentd.daemon import build_app, settle_after_startup
from agentd.services.accounts import import_accounts

CONFIG = """
[autonomy]
level = "L3+"
[budget]
per_tenant_daily = 100000000
per_account_daily = 100000000
per_action_type_daily = 100000000
[store]
synchronous = "{sync}"
"""


def raw_commits(folder: Path, n: int, sync: str) -> float:
    path = folder / "raw.sqlite3"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(f"PRAGMA synchronous = {sync}")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    started = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
        con.execute("COMMIT")
    elapsed = time.perf_counter() - started
    con.close()
    return n / elapsed


async def gate_decisions(
    folder: Path, n: int, submitters: int, sync: str
) -> tuple[float, list[float], int]:
    cfg = folder / "agentd.toml"
    cfg.write_text(CONFIG.format(sync=sync))
    os.environ["AGENTD_STATE_DIR"] = str(folder / "state")
    settings = load_settings(cfg)
    app = build_app(settings)
    await app.store.open()
    accounts = [f"acct{i:03d}" for i in range(200)]
    csv = "id,tenant,name,stage,trusted_mode\n" + "".join(
        f"{a},t1,{a},prospect,ACTIVE\n" for a in accounts
    )

    async def lines():  # type: ignore[no-untyped-def]
        for line in io.BytesIO(csv.encode()):
            yield line.rstrip(b"\n")

    await import_accounts(
        app.store, lines(), source="bench.csv", fmt="csv", skip_bad=False, actor="bench"
    )
    # As run_daemon does once started: what start-up built leaves the garbage
    # collector's rounds (without it, full collections pause the loop ~100 ms).
    settle_after_startup()
    per = n // submitters
    latencies: list[float] = []
    decisions: list[str] = []

    async def submitter(k: int) -> None:
        for j in range(per):
            intent = make_intent(
                tenant="t1",
                account=accounts[(k * per + j) % len(accounts)],
                action_type="send_follow_up_email",
                rationale=f"bench {k}/{j}",
                source="operator",
            )
            t0 = time.perf_counter()
            r = await app.gate.submit(intent, "bench")
            latencies.append(time.perf_counter() - t0)
            decisions.append(r["decision"])

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(app.gate.run)
        async with anyio.create_task_group() as subs:
            for k in range(submitters):
                subs.start_soon(submitter, k)
        tg.cancel_scope.cancel()
    elapsed = time.perf_counter() - started
    batches = app.gate.batches
    app.gate.close()
    verdict = await app.store.verify_audit()
    await app.store.close()
    if set(decisions) != {"AUTO_EXECUTE"} or not verdict.intact:
        raise SystemExit(f"unexpected: {set(decisions)}, audit intact={verdict.intact}")
    return len(decisions) / elapsed, latencies, batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--submitters", type=int, default=100)
    parser.add_argument("--raw", type=int, default=3000, help="raw commits to time")
    parser.add_argument("--sync", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--dir", help="folder to use (default: a new one under the current folder)")
    ns = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gate-bench-", dir=ns.dir or "."))
    try:
        raw = raw_commits(folder, ns.raw, ns.sync)
        rate, lat, batches = anyio.run(gate_decisions, folder, ns.decisions, ns.submitters, ns.sync)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lat.sort()
    p50 = statistics.median(lat) * 1000
    p99 = lat[int(len(lat) * 0.99) - 1] * 1000
    print(f"disk folder: {Path(ns.dir or '.').resolve()}   synchronous={ns.sync}, WAL")
    print(f"raw sqlite3 single-row commits:  {raw:10.0f} /s")
    print(
        f"gate decisions (AUTO_EXECUTE):   {rate:10.0f} /s   "
        f"({len(lat)} decisions, {ns.submitters} submitters, {batches} transactions, "
        f"{len(lat) / batches:.1f} per transaction)"
    )
    print(f"ratio gate / raw commits:        {rate / raw:10.2f}x")
    print(f"gate decision latency:           p50 {p50:.2f} ms   p99 {p99:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
