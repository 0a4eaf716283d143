"""Interaction import and full pattern scan at 10k and 100k accounts.

Run: .venv/bin/python bench/pattern_scan.py [--sizes 10000:100000,100000:1000000]

Each size (accounts:interactions) runs in a fresh process, so its peak memory
is its own: the daemon's services (accounts import, interactions import, the
pattern scanner) on a real SQLite file, with generated data over the last 60
days. Prints import time, scan time, peak RSS, and how time and memory grow
from the first size to the last against the growth in data (1.0 = linear).
Aim: the full scan of 100,000 accounts and 1,000,000 interactions under 10 s
and 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("email", "meeting", "chat", "page_visit", "pricing_page_visit", "support_ticket")


def generate(folder: Path, accounts: int, interactions: int, now: datetime) -> tuple[Path, Path]:
    rng = random.Random(42)
    acc = folder / "accounts.csv"
    with acc.open("w") as fh:
        fh.write("id,tenant,name,stage,trusted_mode\n")
        for i in range(accounts):
            fh.write(f"a{i:06d},t1,Account {i},prospect,ACTIVE\n")
    inter = folder / "interactions.csv"
    with inter.open("w") as fh:
        fh.write("id,account,kind,direction,at,sentiment,summary\n")
        for i in range(interactions):
            account = rng.randrange(accounts)
            kind = KINDS[rng.randrange(len(KINDS))]
            direction = "in" if rng.random() < 0.6 else "out"
            at = now - timedelta(seconds=rng.randrange(60 * 86400))
            sentiment = f"{rng.uniform(-1, 1):.2f}" if rng.random() < 0.5 else ""
            fh.write(f"x{i:08d},a{account:06d},{kind},{direction},{at.isoformat()},{sentiment},\n")
    return acc, inter


async def measure(folder: Path, accounts: int, interactions: int) -> dict[str, float]:
    from agentd.core.patterns import DEFAULT_RULES
    from agentd.services.accounts import import_accounts
    from agentd.services.interactions import import_file
    from agentd.services.patterns import PatternScanner
    from agentd.store.sqlite import SqliteStore

    now = datetime.now(UTC)
    acc, inter = generate(folder, accounts, interactions, now)
    store = SqliteStore(folder / "agentd.sqlite3")
    await store.open()
    try:

        async def lines():  # type: ignore[no-untyped-def]
            with acc.open("rb") as fh:
                for line in fh:
                    yield line.rstrip(b"\n")

        t0 = time.perf_counter()
        await import_accounts(
            store, lines(), source="accounts.csv", fmt="csv", skip_bad=False, actor="bench"
        )
        t1 = time.perf_counter()
        report = await import_file(
            store, inter, source="interactions.csv", fmt="csv", skip_bad=False, actor="bench"
        )
        t2 = time.perf_counter()
        scan = await PatternScanner(store, lambda: DEFAULT_RULES).scan()
        t3 = time.perf_counter()
    finally:
        await store.close()
    return {
        "accounts": accounts,
        "interactions": interactions,
        "imported": report.imported,
        "accounts_import_s": t1 - t0,
        "interactions_import_s": t2 - t1,
        "scan_s": t3 - t2,
        "patterns": scan.new,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def worker(accounts: int, interactions: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="scan-bench-", dir="."))
    try:
        result = asyncio.run(measure(folder, accounts, interactions))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000:100000,100000:1000000")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.worker:
        a, i = (int(x) for x in ns.worker.split(":"))
        worker(a, i)
        return 0
    results = []
    for size in ns.sizes.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--worker", size], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{r['accounts']:>7} accounts {r['interactions']:>8} interactions: "
            f"import {r['interactions_import_s']:6.2f} s "
            f"({r['interactions'] / r['interactions_import_s']:8.0f}/s), "
            f"scan {r['scan_s']:5.2f} s, {r['patterns']} patterns, "
            f"peak RSS {r['peak_rss_mb']:6.1f} MB",
            flush=True,
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        data = last["interactions"] / first["interactions"]
        print(
            f"growth x{data:.0f} data: import time x{last['interactions_import_s'] / first['interactions_import_s']:.1f}, "
            f"scan time x{last['scan_s'] / first['scan_s']:.1f}, "
            f"peak RSS x{last['peak_rss_mb'] / first['peak_rss_mb']:.1f} "
            f"(linear would be x{data:.0f} for time)"
        )
        big = last
        verdict = "meets" if big["scan_s"] < 10 and big["peak_rss_mb"] < 300 else "misses"
        print(f"aim (scan < 10 s and < 300 MB at the largest size): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
