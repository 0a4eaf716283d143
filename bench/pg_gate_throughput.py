"""Durable gate decisions per second on PostgreSQL (one daemon, two) and on SQLite.

Run: .venv/bin/python bench/pg_gate_throughput.py [--rounds K] [--decisions N]
    [--submitters N] [--raw N]

Starts its own throwaway PostgreSQL cluster (``agentd.testing.pgcluster``,
default durability: ``fsync`` and ``synchronous_commit`` on) in a folder on
the same disk as the SQLite files, and measures, side by side in each round:

- raw PostgreSQL: single-row INSERT transactions, one after the other on one
  connection (``psycopg``, autocommit): the server's own commit rate;
- the gate on PostgreSQL, one daemon: the real GateService on the real
  PostgresStore, every decision AUTO_EXECUTE (budget consumed, counters,
  idempotency, hand-off row, intent with its trace, two audit records),
  concurrent decisions sharing a transaction (group commit);
- the gate on PostgreSQL, two daemons: two GateServices on two PostgresStores
  (two pools, as two ``agentd serve`` would have) on the one database, the
  submitters split between them, one tenant's budgets shared, so their
  batches take the gate's advisory lock in turn; both in this process (one
  event loop: the figure includes that the two share a core);
- raw SQLite: single-row commits, WAL, synchronous FULL (``sqlite3``);
- the gate on SQLite (synchronous FULL), one daemon.

Each gate figure comes with its ratio to its engine's raw commit rate in the
same round (the disk's speed drifts on a shared machine), and latency p50 and
p99 over all rounds. The closed loop: each submitter sends its next intent
as soon as the last is answered.
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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.config import load_settings
from agentd.core.intents import ActionIntent, make_intent
from agentd.daemon import App, build_app, settle_after_startup
from agentd.services.accounts import import_accounts
from agentd.testing.pgcluster import PgCluster

CONFIG = """
[autonomy]
level = "L3+"
[budget]
per_tenant_daily = 100000000
per_account_daily = 100000000
per_action_type_daily = 100000000
[store]
{store}
"""
ACCOUNTS = [f"acct{i:03d}" for i in range(200)]
SIDES = ("pg raw", "pg gate x1", "pg gate x2", "sqlite raw", "sqlite gate")


@dataclass
class Side:
    """One side's figures over the rounds."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    per_tx: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, int(len(ordered) * q) - 1)] * 1000 if ordered else 0.0


def pg_raw(url: str, n: int) -> float:
    """Commit ``n`` single-row transactions on PostgreSQL; return commits per second."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS raw_t (id BIGSERIAL PRIMARY KEY, v TEXT)")
        started = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO raw_t(v) VALUES (%s)", (f"row {i}",))
        return n / (time.perf_counter() - started)


def sqlite_raw(path: Path, n: int) -> float:
    """Commit ``n`` single-row transactions on SQLite (WAL, FULL); return commits per second."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    started = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN")
        con.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
        con.execute("COMMIT")
    rate = n / (time.perf_counter() - started)
    con.close()
    return rate


async def open_app(folder: Path, name: str, store: str) -> App:
    """Build and open a daemon's app (gate, store) on ``store`` settings."""
    cfg = folder / f"{name}.toml"
    cfg.write_text(CONFIG.format(store=store))
    os.environ["AGENTD_STATE_DIR"] = str(folder / name)
    app = build_app(load_settings(cfg))
    await app.store.open()
    return app


async def import_into(app: App) -> None:
    csv = "id,tenant,name,stage,trusted_mode\n" + "".join(
        f"{a},t1,{a},prospect,ACTIVE\n" for a in ACCOUNTS
    )

    async def lines() -> AsyncIterator[bytes]:
        for line in io.BytesIO(csv.encode()):
            yield line.rstrip(b"\n")

    await import_accounts(
        app.store, lines(), source="bench.csv", fmt="csv", skip_bad=False, actor="bench"
    )


def build(tag: str, submitters: int, per: int) -> list[list[ActionIntent]]:
    """Intents for each submitter, built before the clock starts (the client's work)."""
    return [
        [
            make_intent(
                tenant="t1",
                account=ACCOUNTS[(k * per + j) % len(ACCOUNTS)],
                action_type="send_follow_up_email",
                rationale=f"bench {tag} {k}/{j}",
                source="operator",
            )
            for j in range(per)
        ]
        for k in range(submitters)
    ]


async def saturate(apps: list[App], intents: list[list[ActionIntent]], side: Side) -> None:
    """Submit each submitter's intents to its app (round robin), next when answered."""
    batches = [a.gate.batches for a in apps]
    latencies: list[float] = []

    async def closed(k: int) -> None:
        gate = apps[k % len(apps)].gate
        for intent in intents[k]:
            t0 = time.perf_counter()
            r = await gate.submit(intent, "bench")
            latencies.append(time.perf_counter() - t0)
            if r["decision"] != "AUTO_EXECUTE":
                raise SystemExit(f"unexpected decision {r['decision']}")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for k in range(len(intents)):
            tg.start_soon(closed, k)
    elapsed = time.perf_counter() - started
    made = sum(a.gate.batches - b for a, b in zip(apps, batches, strict=True))
    side.rates.append(len(latencies) / elapsed)
    side.latencies.extend(latencies)
    side.per_tx.append(len(latencies) / max(1, made))


async def run(folder: Path, rounds: int, n: int, submitters: int, raw_n: int) -> dict[str, Side]:
    sides = {name: Side() for name in SIDES}
    with PgCluster(settings={"fsync": "on", "synchronous_commit": "on"}) as pg:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
            conn.execute("CREATE DATABASE raw")
        url = pg.url_for("bench")
        pg_one = await open_app(folder, "pg1", f'url = "{url}"\ndaemon_id = "one"')
        pg_two = await open_app(folder, "pg2", f'url = "{url}"\ndaemon_id = "two"')
        lite = await open_app(folder, "lite", 'synchronous = "FULL"')
        apps = [pg_one, pg_two, lite]
        await import_into(pg_one)
        await import_into(lite)
        per = n // submitters
        work = {
            (r, s): build(f"{r} {s}", submitters, per)
            for r in range(rounds + 1)
            for s in ("pg1", "pg2", "lite")
        }
        settle_after_startup()
        async with anyio.create_task_group() as tg:
            for app in apps:
                tg.start_soon(app.gate.run)
            for r in range(rounds + 1):
                into = sides if r else {name: Side() for name in SIDES}  # round 0 warms up
                into["pg raw"].rates.append(pg_raw(pg.url_for("raw"), raw_n))
                await saturate([pg_one], work[(r, "pg1")], into["pg gate x1"])
                await saturate([pg_one, pg_two], work[(r, "pg2")], into["pg gate x2"])
                into["sqlite raw"].rates.append(sqlite_raw(folder / "raw.sqlite3", raw_n))
                await saturate([lite], work[(r, "lite")], into["sqlite gate"])
            tg.cancel_scope.cancel()
        for app in apps:
            app.gate.close()
            verdict = await app.store.verify_audit()
            if not verdict.intact:
                raise SystemExit(f"audit broken on {app.store!r}")
            await app.store.close()
    return sides


def report(sides: dict[str, Side], ns: argparse.Namespace) -> None:
    print(
        f"{ns.rounds} rounds (after one warm-up), each: {ns.raw} raw single-row commits per "
        f"engine, {ns.decisions} gate decisions (AUTO_EXECUTE) per gate side from "
        f"{ns.submitters} submitters, each sending the next when answered"
    )
    raw_of = {"pg gate x1": "pg raw", "pg gate x2": "pg raw", "sqlite gate": "sqlite raw"}
    print(f"{'':14}{'median /s':>11}{'x raw':>9}{'p50 ms':>9}{'p99 ms':>9}{'per tx':>8}")
    for name in SIDES:
        side = sides[name]
        rate = statistics.median(side.rates)
        if name in raw_of:
            ratios = [g / r for g, r in zip(side.rates, sides[raw_of[name]].rates, strict=True)]
            ratio = f"{statistics.median(ratios):8.2f}x"
            lat = f"{side.percentile(0.5):9.2f}{side.percentile(0.99):9.2f}"
            per_tx = f"{statistics.median(side.per_tx):8.1f}"
        else:
            ratio, lat, per_tx = f"{'':9}", f"{'':18}", ""
        print(f"{name:14}{rate:11.0f}{ratio}{lat}{per_tx}")
    print("(x raw: median of the round ratios to the same engine's raw commits in that round)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=2000, help="per gate side per round")
    parser.add_argument("--submitters", type=int, default=100)
    parser.add_argument("--raw", type=int, default=2000, help="raw commits per engine per round")
    parser.add_argument("--dir", help="folder to use (default: a new one under the current folder)")
    ns = parser.parse_args()
    if ns.rounds < 1 or ns.decisions < ns.submitters or ns.raw < 1:
        parser.error("need --rounds >= 1, --decisions >= --submitters, --raw >= 1")
    folder = Path(tempfile.mkdtemp(prefix="pg-bench-", dir=ns.dir or "."))
    try:
        sides = anyio.run(run, folder, ns.rounds, ns.decisions, ns.submitters, ns.raw)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"disk folder: {Path(ns.dir or '.').resolve()}")
    report(sides, ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
