"""``agentd serve`` writes its metrics file one last time when SIGTERM stops it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agentd.supervise import DaemonProcess
from tests.unit.test_metrics import parse_exposition

BIN = Path(sys.executable).parent
ACCOUNTS = "id,tenant,name,stage,trusted_mode\nacme,t1,Acme,discovery,ACTIVE\n"


def agentctl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentctl"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )


def test_sigterm_writes_the_final_metrics(daemon_env: dict[str, str], short_tmp: Path) -> None:
    # No scheduled runs: the minute's metrics task never writes the file here.
    cfg = short_tmp / "agentd.toml"
    cfg.write_text(
        '[autonomy]\nlevel = "L3+"\n[scheduler]\nenabled = false\n[execution]\nenabled = false\n'
    )
    env = {**daemon_env, "AGENTD_CONFIG": str(cfg)}
    prom = Path(daemon_env["AGENTD_STATE_DIR"]) / "metrics" / "agentd.prom"
    proc = DaemonProcess(env, log_path=short_tmp / "daemon.log")
    try:
        proc.wait_ready(30)
        accounts = short_tmp / "accounts.csv"
        accounts.write_text(ACCOUNTS)
        assert agentctl("accounts", "import", str(accounts), env=env).returncode == 0
        for n in range(3):
            done = agentctl(
                "propose",
                "--tenant",
                "t1",
                "--account",
                "acme",
                "--action",
                "send_chat_message",
                "--rationale",
                f"check-in {n}",
                env=env,
            )
            assert done.returncode == 0, done.stderr
        assert not prom.exists()
        before_stop = time.time()
        assert proc.stop(timeout=10) == 0
    finally:
        proc.stop()
        proc.close()

    families = parse_exposition(prom.read_text())  # each family's HELP and TYPE once
    assert families["agentd_intents_total"]["samples"] == [({}, 3.0)]
    (stamp,) = families["agentd_metrics_generated_timestamp_seconds"]["samples"]  # type: ignore[misc]
    assert stamp[1] >= before_stop
    assert families["agentd_autonomy_level"]["samples"] == [({}, 1.0)]
