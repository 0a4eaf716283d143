"""Time ``agentd serve`` from process start to ``READY=1``, and its idle RSS.

Run: .venv/bin/python bench/startup.py [--runs N] [--idle SECONDS] [--against CHECKOUT]

Each round starts a real ``agentd serve`` on an empty state folder with a
``NOTIFY_SOCKET`` (as systemd does), times process start to ``READY=1``, and
then, in the first round only, waits ``--idle`` seconds (30 by default) and
reads the daemon's resident set size from ``/proc``. Beside it, in the same
run and alternating with it, the floor any such daemon pays:
``python -c "import anyio, pydantic_settings"``. Prints medians, ranges and
the ratio, the aims (READY under 1 s, idle RSS under 80 MiB), and which heavy
packages (anthropic, playwright) importing the daemon's modules pulls in (none
is the aim: they load only when a model call or a browser operation needs
them).

``--against`` names another checkout of agentd (an older commit, say, made
with ``git worktree add``): its daemon is started in the same rounds, through
the same interpreter and packages, so the two are compared side by side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentd.supervise import DaemonProcess

HEAVY = ("anthropic", "playwright")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for pid {pid}")


def heavy_imported(env: dict[str, str]) -> list[str]:
    """Return the heavy packages that importing the daemon's modules pulls in."""
    code = (
        "import sys, agentd.daemon, agentd.cli;"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def start_daemon(
    tmp: Path, n: int, code: Path | None = None
) -> tuple[DaemonProcess, float, dict[str, str]]:
    env = {
        **os.environ,
        "AGENTD_STATE_DIR": str(tmp / f"state{n}"),
        "AGENTD_SOCKET_PATH": str(tmp / f"s{n}.sock"),
        "AGENTD_LOG_DIR": str(tmp / f"logs{n}"),
    }
    env.pop("AGENTD_CONFIG", None)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    started = time.perf_counter()
    daemon = DaemonProcess(env, log_path=tmp / f"daemon{n}.log")
    daemon.wait_ready(60)
    return daemon, time.perf_counter() - started, env


def floor_once() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import anyio, pydantic_settings"], check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds of each side (default 7)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds before the RSS reading")
    parser.add_argument(
        "--against", type=Path, help="another agentd checkout to start in the same rounds"
    )
    ns = parser.parse_args()
    if ns.runs < 1 or ns.idle < 0:
        parser.error("--runs must be at least 1 and --idle not negative")
    if ns.against is not None and not (ns.against / "agentd" / "daemon.py").is_file():
        parser.error(f"--against {ns.against}: no agentd checkout there")
    tmp = Path(tempfile.mkdtemp(prefix="ad-start-", dir="/tmp"))
    # ``python -m agentd`` looks in the working folder first: run from an empty
    # one, so each side runs the code it was given.
    os.chdir(tmp)
    ready: list[float] = []
    floor: list[float] = []
    other: list[float] = []
    rss = other_rss = 0.0
    imported: list[str] = []
    try:
        floor_once()  # warm the page cache for both sides
        for n in range(ns.runs):
            floor.append(floor_once())
            daemon, took, env = start_daemon(tmp, n)
            ready.append(took)
            try:
                if n == 0:
                    time.sleep(ns.idle)
                    rss = rss_mib(daemon.pid)
                    imported = heavy_imported(env)
            finally:
                daemon.stop()
                daemon.close()
            line = f"round {n + 1}: READY {took * 1000:7.1f} ms   floor {floor[-1] * 1000:6.1f} ms"
            if ns.against is not None:
                daemon, took, env = start_daemon(tmp, n + 1000, ns.against)
                other.append(took)
                try:
                    if n == 0:
                        time.sleep(ns.idle)
                        other_rss = rss_mib(daemon.pid)
                finally:
                    daemon.stop()
                    daemon.close()
                line += f"   --against READY {took * 1000:7.1f} ms"
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r, f = statistics.median(ready), statistics.median(floor)
    print()
    print(
        f"time to READY   median {r * 1000:7.1f} ms  (min {min(ready) * 1000:.1f}, max {max(ready) * 1000:.1f})"
    )
    print(
        f"floor           median {f * 1000:7.1f} ms  (min {min(floor) * 1000:.1f}, max {max(floor) * 1000:.1f})"
    )
    print(f"ratio READY / floor: {r / f:.2f}x")
    print(f"idle RSS after {ns.idle:g} s: {rss:.1f} MiB")
    if other:
        o = statistics.median(other)
        print(
            f"--against {ns.against}: READY median {o * 1000:7.1f} ms"
            f"  (min {min(other) * 1000:.1f}, max {max(other) * 1000:.1f});"
            f" READY / against {r / o:.2f}x; its idle RSS {other_rss:.1f} MiB"
        )
    print(f"heavy modules imported by agentd.daemon + agentd.cli: {', '.join(imported) or 'none'}")
    print(
        f"aims: READY < 1000 ms: {'met' if r < 1.0 else 'NOT met'}; "
        f"idle RSS < 80 MiB: {'met' if rss < 80 else 'NOT met'}"
    )
    try:
        print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
