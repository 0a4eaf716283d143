"""Durable gate decisions per second vs raw single-row SQLite commits.

Run: .venv/bin/python bench/gate_throughput.py [--decisions N] [--submitters N]
    [--offered R] [--sync FULL|NORMAL]

Both sides use the same folder (same disk), WAL and the same ``synchronous``
setting. The raw side commits one small row per transaction with the
standard ``sqlite3`` module, once before the gate runs and once after (the
disk's speed drifts; the ratio is taken against the faster round). The gate
side runs the real GateService on the real SqliteStore: every decision is
AUTO_EXECUTE (budget consumed, counters, idempotency, hand-off row, intent
with its trace, three audit records); concurrent decisions share a
transaction (group commit). Intents are built before the clock starts (that
is the client's work). Two phases, N submitters each:

- saturated: each submitter sends its next intent as soon as the last is
  answered. Gives the decision rate (and the ratio), and the latency at
  that rate, which is N / rate by Little's law.
- offered load: each submitter sends on its own Poisson clock, answered or
  not, R decisions per second in all. Gives the latency below saturation.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.config import load_settings
from agentd.core.intents import ActionIntent, make_intent
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


def raw_commits(folder: Path, name: str, n: int, sync: str) -> float:
    path = folder / f"raw-{name}.sqlite3"
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


@dataclass
class Phase:
    """What one load phase measured."""

    rate: float  # decisions per second
    latencies: list[float]
    batches: int

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, int(len(ordered) * q) - 1)] * 1000


async def gate_decisions(
    folder: Path, n: int, submitters: int, sync: str, offered: float
) -> tuple[Phase, Phase]:
    """Run the closed-loop phase, then the open-loop one (at ``offered`` per second)."""
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

    async def lines() -> AsyncIterator[bytes]:
        for line in io.BytesIO(csv.encode()):
            yield line.rstrip(b"\n")

    await import_accounts(
        app.store, lines(), source="bench.csv", fmt="csv", skip_bad=False, actor="bench"
    )
    per = n // submitters
    decisions: list[str] = []

    def build(phase: str) -> list[list[ActionIntent]]:
        # Built before the clock starts: building an intent is the client's work
        # (agentctl's, the planner's), not the gate's.
        return [
            [
                make_intent(
                    tenant="t1",
                    account=accounts[(k * per + j) % len(accounts)],
                    action_type="send_follow_up_email",
                    rationale=f"bench {phase} {k}/{j}",
                    source="operator",
                )
                for j in range(per)
            ]
            for k in range(submitters)
        ]

    async def submit(intent: ActionIntent, latencies: list[float]) -> None:
        t0 = time.perf_counter()
        r = await app.gate.submit(intent, "bench")
        latencies.append(time.perf_counter() - t0)
        decisions.append(r["decision"])

    async def closed(k: int, intents: list[ActionIntent], latencies: list[float]) -> None:
        for intent in intents:  # the next as soon as the last is answered
            await submit(intent, latencies)

    async def opened(k: int, intents: list[ActionIntent], latencies: list[float]) -> None:
        # Each submitter sends on its own Poisson clock, answered or not.
        rng = random.Random(k)
        mean_gap = submitters / offered
        due = time.perf_counter() + rng.expovariate(1) * mean_gap
        async with anyio.create_task_group() as tg:
            for intent in intents:
                await anyio.sleep(max(0.0, due - time.perf_counter()))
                tg.start_soon(submit, intent, latencies)
                due += rng.expovariate(1) * mean_gap

    async def phase(run: Any, intents: list[list[ActionIntent]]) -> Phase:
        latencies: list[float] = []
        batches = app.gate.batches
        started = time.perf_counter()
        async with anyio.create_task_group() as subs:
            for k in range(submitters):
                subs.start_soon(run, k, intents[k], latencies)
        elapsed = time.perf_counter() - started
        return Phase(len(latencies) / elapsed, latencies, app.gate.batches - batches)

    closed_intents, open_intents = build("closed"), build("open")
    # As run_daemon does once started: what start-up built leaves the garbage
    # collector's rounds (without it, full collections pause the loop ~100 ms).
    # Here that includes the intents built above: in the daemon they live in
    # the clients' processes, not in the gate's heap.
    settle_after_startup()
    async with anyio.create_task_group() as tg:
        tg.start_soon(app.gate.run)
        saturated = await phase(closed, closed_intents)
        steady = await phase(opened, open_intents)
        tg.cancel_scope.cancel()
    app.gate.close()
    verdict = await app.store.verify_audit()
    await app.store.close()
    if set(decisions) != {"AUTO_EXECUTE"} or not verdict.intact:
        raise SystemExit(f"unexpected: {set(decisions)}, audit intact={verdict.intact}")
    return saturated, steady


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20000, help="per phase")
    parser.add_argument("--submitters", type=int, default=100)
    parser.add_argument("--raw", type=int, default=5000, help="raw commits to time, per round")
    parser.add_argument(
        "--offered", type=float, default=2000, help="open-loop load, decisions per second"
    )
    parser.add_argument("--sync", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--dir", help="folder to use (default: a new one under the current folder)")
    ns = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gate-bench-", dir=ns.dir or "."))
    try:
        # Raw commits before and after the gate (the disk's speed drifts); the
        # ratio is taken against the faster round.
        raw_before = raw_commits(folder, "before", ns.raw, ns.sync)
        saturated, steady = anyio.run(
            gate_decisions, folder, ns.decisions, ns.submitters, ns.sync, ns.offered
        )
        raw_after = raw_commits(folder, "after", ns.raw, ns.sync)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raw = max(raw_before, raw_after)
    n = len(saturated.latencies)
    print(f"disk folder: {Path(ns.dir or '.').resolve()}   synchronous={ns.sync}, WAL")
    print(
        f"raw sqlite3 single-row commits:  {raw_before:10.0f} /s before, {raw_after:.0f} /s after"
    )
    print(
        f"gate decisions (AUTO_EXECUTE):   {saturated.rate:10.0f} /s   "
        f"({n} decisions, {ns.submitters} submitters each sending the next when answered, "
        f"{saturated.batches} transactions, {n / saturated.batches:.1f} per transaction)"
    )
    print(
        f"ratio gate / raw commits:        {saturated.rate / raw:10.2f}x (against the faster round)"
    )
    print(
        f"latency, saturated:              p50 {saturated.percentile(0.5):.2f} ms   "
        f"p99 {saturated.percentile(0.99):.2f} ms   (aim: p99 < 5 ms)"
    )
    m = len(steady.latencies)
    print(
        f"latency at {ns.offered:.0f}/s offered:       p50 {steady.percentile(0.5):.2f} ms   "
        f"p99 {steady.percentile(0.99):.2f} ms   ({m} decisions from {ns.submitters} "
        f"submitters on Poisson clocks, {m / steady.batches:.1f} "
        "per transaction)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
