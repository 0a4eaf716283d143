"""Durable gate decisions per second vs raw single-row SQLite commits.

Run: .venv/bin/python bench/gate_throughput.py [--rounds K] [--decisions N]
    [--submitters N] [--offered R[,R...]] [--sync FULL|NORMAL]

Both sides use the same folder (same disk), WAL and the same ``synchronous``
setting. The raw side commits one small row per transaction with the
standard ``sqlite3`` module. The gate side runs the real GateService on the
real SqliteStore: every decision is AUTO_EXECUTE (budget consumed, counters,
idempotency, hand-off row, intent with its trace, two audit records);
concurrent decisions share a transaction (group commit). Intents are built
before the clock starts (that is the client's work). Two phases, N
submitters each:

- saturated: each submitter sends its next intent as soon as the last is
  answered. Gives the decision rate (and the ratio), and the latency at
  that rate, which is N / rate by Little's law. It runs in K rounds, each
  just after a round of raw commits: the disk's speed drifts from one
  second to the next on a shared machine, so each gate round is compared
  with the raw round beside it and the ratio printed is the median of the
  K round ratios (each round's figures are printed too). A first gate
  round, not counted, warms up.
- offered load: each submitter sends on its own Poisson clock, answered or
  not, R decisions per second in all, for each R given in turn (10 s each).
  Gives the latency below saturation.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sqlite3
import statistics
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


def raw_database(folder: Path, sync: str) -> sqlite3.Connection:
    """Open the raw side's database: WAL, ``sync``, one small table."""
    con = sqlite3.connect(folder / "raw.sqlite3", isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(f"PRAGMA synchronous = {sync}")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    return con


def raw_commits(con: sqlite3.Connection, n: int) -> float:
    """Commit ``n`` single-row transactions; return commits per second."""
    started = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
        con.execute("COMMIT")
    return n / (time.perf_counter() - started)


@dataclass
class Phase:
    """What one load phase measured."""

    rate: float  # decisions per second
    latencies: list[float]
    batches: int

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, int(len(ordered) * q) - 1)] * 1000


@dataclass
class Results:
    """Both phases: the saturated rounds beside their raw rounds, then the offered loads."""

    raw: list[float]  # raw commits per second, one per round
    rounds: list[Phase]  # the saturated gate rounds
    steady: list[Phase]  # one per offered load

    def ratios(self) -> list[float]:
        return [g.rate / r for g, r in zip(self.rounds, self.raw, strict=True)]


async def gate_decisions(
    folder: Path,
    n: int,
    rounds: int,
    raw_n: int,
    submitters: int,
    sync: str,
    offered: list[float],
) -> Results:
    """Run ``rounds`` raw and closed-loop rounds of ``n`` decisions, then an open-loop
    phase of 10 s at each load in ``offered`` (decisions per second)."""
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

    def build(phase: str, per: int) -> list[list[ActionIntent]]:
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

    async def opened(
        k: int, intents: list[ActionIntent], latencies: list[float], rate: float
    ) -> None:
        # Each submitter sends on its own Poisson clock, answered or not.
        rng = random.Random(k)
        mean_gap = submitters / rate
        due = time.perf_counter() + rng.expovariate(1) * mean_gap
        async with anyio.create_task_group() as tg:
            for intent in intents:
                await anyio.sleep(max(0.0, due - time.perf_counter()))
                tg.start_soon(submit, intent, latencies)
                due += rng.expovariate(1) * mean_gap

    async def phase(run: Any, intents: list[list[ActionIntent]], *args: Any) -> Phase:
        latencies: list[float] = []
        batches = app.gate.batches
        started = time.perf_counter()
        async with anyio.create_task_group() as subs:
            for k in range(submitters):
                subs.start_soon(run, k, intents[k], latencies, *args)
        elapsed = time.perf_counter() - started
        return Phase(len(latencies) / elapsed, latencies, app.gate.batches - batches)

    closed_intents = [build(f"closed {r}", per) for r in range(rounds + 1)]
    open_intents = [
        build(f"open {rate}", max(1, round(rate * 10 / submitters))) for rate in offered
    ]
    # As run_daemon does once started: what start-up built leaves the garbage
    # collector's rounds (without it, full collections pause the loop ~100 ms).
    # Here that includes the intents built above: in the daemon they live in
    # the clients' processes, not in the gate's heap.
    settle_after_startup()
    raw_con = raw_database(folder, sync)
    raw: list[float] = []
    saturated: list[Phase] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(app.gate.run)
        await phase(closed, closed_intents[0])  # warm-up, not counted
        for intents in closed_intents[1:]:
            # The raw round blocks the event loop: the gate is idle meanwhile.
            raw.append(raw_commits(raw_con, raw_n))
            saturated.append(await phase(closed, intents))
        steady = [
            await phase(opened, intents, rate)
            for rate, intents in zip(offered, open_intents, strict=True)
        ]
        tg.cancel_scope.cancel()
    raw_con.close()
    app.gate.close()
    verdict = await app.store.verify_audit()
    await app.store.close()
    if set(decisions) != {"AUTO_EXECUTE"} or not verdict.intact:
        raise SystemExit(f"unexpected: {set(decisions)}, audit intact={verdict.intact}")
    return Results(raw, saturated, steady)


def rates(text: str) -> list[float]:
    """Parse ``--offered``: positive rates, comma-separated."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"rates must be > 0: {text!r}")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="saturated rounds beside raw ones")
    parser.add_argument("--decisions", type=int, default=4000, help="per saturated round")
    parser.add_argument("--submitters", type=int, default=100)
    parser.add_argument("--raw", type=int, default=3000, help="raw commits per round")
    parser.add_argument(
        "--offered",
        type=rates,
        default=[1000.0, 2000.0],
        help="open-loop loads, decisions per second, comma-separated (default: 1000,2000)",
    )
    parser.add_argument("--sync", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--dir", help="folder to use (default: a new one under the current folder)")
    ns = parser.parse_args()
    if ns.rounds < 1 or ns.decisions < ns.submitters or ns.raw < 1:
        parser.error("need --rounds >= 1, --decisions >= --submitters, --raw >= 1")
    folder = Path(tempfile.mkdtemp(prefix="gate-bench-", dir=ns.dir or "."))
    try:
        results = anyio.run(
            gate_decisions,
            folder,
            ns.decisions,
            ns.rounds,
            ns.raw,
            ns.submitters,
            ns.sync,
            ns.offered,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"disk folder: {Path(ns.dir or '.').resolve()}   synchronous={ns.sync}, WAL")
    print(
        f"{ns.rounds} rounds, each {ns.raw} raw sqlite3 single-row commits then "
        f"{ns.decisions} gate decisions (AUTO_EXECUTE) from {ns.submitters} submitters, "
        "each sending the next when answered:"
    )
    for i, (raw, gate, ratio) in enumerate(
        zip(results.raw, results.rounds, results.ratios(), strict=True), 1
    ):
        print(
            f"  round {i}: raw {raw:7.0f} /s   gate {gate.rate:7.0f} /s   {ratio:5.2f}x   "
            f"({len(gate.latencies) / gate.batches:.1f} decisions per transaction)"
        )
    saturated = Phase(
        statistics.median(g.rate for g in results.rounds),
        [t for g in results.rounds for t in g.latencies],
        sum(g.batches for g in results.rounds),
    )
    ratios = sorted(results.ratios())
    print(
        f"raw sqlite3 single-row commits:  {statistics.median(results.raw):10.0f} /s (median round)"
    )
    print(f"gate decisions (AUTO_EXECUTE):   {saturated.rate:10.0f} /s (median round)")
    print(
        f"ratio gate / raw commits:        {statistics.median(ratios):10.2f}x "
        f"(median of the round ratios; {ratios[0]:.2f}-{ratios[-1]:.2f}x)"
    )
    print(
        f"latency, saturated:              p50 {saturated.percentile(0.5):.2f} ms   "
        f"p99 {saturated.percentile(0.99):.2f} ms   (aim: p99 < 5 ms)"
    )
    for rate, steady in zip(ns.offered, results.steady, strict=True):
        m = len(steady.latencies)
        print(
            f"latency at {rate:5.0f}/s offered:     p50 {steady.percentile(0.5):.2f} ms   "
            f"p99 {steady.percentile(0.99):.2f} ms   ({m} decisions from {ns.submitters} "
            f"submitters on Poisson clocks, {m / steady.batches:.1f} per transaction)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
