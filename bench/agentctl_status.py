"""Time the whole ``agentctl status`` process against a running daemon.

Run: .venv/bin/python bench/agentctl_status.py [--runs N]

Prints the median and p90 wall time of ``agentctl status`` (process start to
exit, answer included), the same for a bare ``python -c pass`` (the floor any
Python client pays), their ratio, and the modules agentctl imports from
outside the standard library (there should be none but agentd's own).
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

BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{cmd} failed: {result.stderr.decode()}")
    return times


def p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    ns = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ad-bench-", dir="/tmp"))
    env = {
        **os.environ,
        "AGENTD_STATE_DIR": str(tmp / "state"),
        "AGENTD_SOCKET_PATH": str(tmp / "s.sock"),
        "AGENTD_LOG_DIR": str(tmp / "logs"),
    }
    env.pop("AGENTD_CONFIG", None)
    daemon = DaemonProcess(env, log_path=tmp / "daemon.log")
    try:
        daemon.wait_ready(30)
        timed([str(BIN / "agentctl"), "status"], env, 3)  # warm the page cache
        client = timed([str(BIN / "agentctl"), "status"], env, ns.runs)
        floor = timed([sys.executable, "-c", "pass"], env, ns.runs)
        probe = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "agentd.ctl.main", "status"],
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        daemon.stop()
        daemon.close()
        shutil.rmtree(tmp, ignore_errors=True)

    stdlib = set(sys.stdlib_module_names)
    foreign = sorted(
        {
            line.split("|")[-1].strip().split(".")[0]
            for line in probe.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        }
        - stdlib
        - {"agentd", "package", "_distutils_hack"}
    )
    med_c, med_f = statistics.median(client), statistics.median(floor)
    print(
        f"agentctl status   median {med_c * 1000:7.1f} ms   p90 {p90(client) * 1000:7.1f} ms   ({ns.runs} runs)"
    )
    print(
        f"python -c pass    median {med_f * 1000:7.1f} ms   p90 {p90(floor) * 1000:7.1f} ms   (baseline)"
    )
    print(
        f"ratio agentctl / bare interpreter: {med_c / med_f:.2f}x   (client's own cost {1000 * (med_c - med_f):.1f} ms)"
    )
    print(f"non-stdlib modules imported by agentctl: {', '.join(foreign) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
