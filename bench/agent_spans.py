"""Where the audited agent's time goes, beside a plain Playwright script: timed spans.

Run: .venv/bin/python bench/agent_spans.py [--runs N]

The same set-up as ``bench/agent_vs_plain.py`` (the product SEO update on the
demo back-office, the real OperationsService on a real SqliteStore, the
daemon's default settings). The agent's browser session, egress proxy and
operation log are wrapped in timers: for each span the median number of calls
per run and the median time per run spent in it (spans overlap: a capture runs
while the next step is under way, a store write while the browser works), and
the time from start_operation to the run's first step, through the steps, and
from the last step to the operation reported ended.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import agent_vs_plain

from agentd.browser import agent as agent_module
from agentd.browser.egress import EgressProxy
from agentd.browser.playwright_browser import BrowserSession, PlaywrightBrowser
from agentd.services.operation_log import StoredOperationLog

SPANS: dict[str, list[float]] = defaultdict(list)
MARKS: dict[str, float] = {}
WRAPPED = {
    PlaywrightBrowser: ("new_session",),
    BrowserSession: (
        "open",
        "screenshot",
        "_guard",
        "perform",
        "_secret_field",
        "hide_from_trace",
        "save_trace",
        "close",
    ),
    EgressProxy: ("start", "close"),
    StoredOperationLog: (
        "operation",
        "active_consent",
        "allowed_hosts",
        "secret_blobs",
        "audit",
        "write_steps",
        "record_end",
    ),
    agent_module.BrowserAgent: ("_prepare", "_steps", "_finish", "_save"),
}


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kw)
        finally:
            now = time.perf_counter()
            SPANS[name].append(now - started)
            MARKS[f"{name}:start"] = MARKS.get(f"{name}:start", started)
            MARKS[f"{name}:end"] = now

    return wrapper


def instrument() -> None:
    for cls, names in WRAPPED.items():
        for name in names:
            setattr(cls, name, timed(f"{cls.__name__}.{name}", getattr(cls, name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    instrument()
    per_run: list[dict[str, tuple[int, float]]] = []
    phases: list[dict[str, float]] = []
    original = agent_vs_plain.plain_run

    async def plain_then_reset(*a: Any, **kw: Any) -> None:
        # Each agent run follows a plain one: what was recorded before belongs to the last.
        if SPANS:
            per_run.append({k: (len(v), sum(v)) for k, v in SPANS.items()})
            phases.append(dict(MARKS))
        SPANS.clear()
        MARKS.clear()
        await original(*a, **kw)
        SPANS.clear()
        MARKS.clear()
        MARKS["plain:end"] = time.perf_counter()

    agent_vs_plain.plain_run = plain_then_reset
    code = anyio.run(agent_vs_plain.main, args.runs, "png", None, "1280x900", None, None)
    per_run.append({k: (len(v), sum(v)) for k, v in SPANS.items()})
    phases.append(dict(MARKS))
    per_run, phases = per_run[1:], phases[1:]  # run 0 warms up
    print(f"\nspans over {len(per_run)} agent runs (median calls and ms per run):")
    for name in sorted({k for r in per_run for k in r}):
        calls = statistics.median(r.get(name, (0, 0.0))[0] for r in per_run)
        ms = statistics.median(r.get(name, (0, 0.0))[1] for r in per_run) * 1000
        print(f"  {name:40s} {calls:5.0f} {ms:8.1f} ms")
    print("phases (median ms): from start_operation (the plain run's end) to ...")
    points = [
        ("claimed (_prepare starts)", "BrowserAgent._prepare:start"),
        ("prepared (session open)", "BrowserAgent._prepare:end"),
        ("steps done", "BrowserAgent._steps:end"),
        ("end recorded (_finish ends)", "BrowserAgent._finish:end"),
    ]
    for label, key in points:
        ms = statistics.median((p[key] - p["plain:end"]) * 1000 for p in phases if key in p)
        print(f"  {label:40s} {ms:8.1f} ms")
    return code


if __name__ == "__main__":
    sys.exit(main())
