"""``agentd demo``: the product doing its job on an embedded default.

It starts the daemon on a demo state folder (SQLite inside), talks to it over
the control socket as an operator would, shows what happened, and stops it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from agentd.config import MAX_SOCKET_PATH
from agentd.ctl import render
from agentd.ctl.client import call
from agentd.errors import AgentdError
from agentd.supervise import DaemonFailed, DaemonProcess

MARKER = ".agentd-demo"
DEMO_CONFIG = """# Written by agentd demo: the shipped defaults, with autonomy raised to L3+
# so that LOW-risk allowlisted actions auto-execute.
[autonomy]
level = "L3+"
"""
STEPS = 5


def _say(text: str) -> None:
    print(text, flush=True)


def _prepare(state_dir: Path) -> None:
    if state_dir.exists() and any(state_dir.iterdir()) and not (state_dir / MARKER).exists():
        raise SystemExit(
            f"agentd demo: {state_dir} exists and is not a demo folder; choose another with --dir"
        )
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, mode=0o700)
    (state_dir / MARKER).write_text("created by agentd demo; wiped by the next run\n")


def _socket_path(state_dir: Path) -> Path:
    path = state_dir / "agentd.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(state_dir)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"agentd-demo-{digest}.sock"


def run_demo(state_dir: str | os.PathLike[str] = "demo-state", keep_running: bool = False) -> int:
    """Run the demo; return the exit status."""
    root = Path(state_dir).absolute()
    _prepare(root)
    sock = _socket_path(root)
    env = {
        "AGENTD_STATE_DIR": str(root),
        "AGENTD_SOCKET_PATH": str(sock),
        "AGENTD_LOG_DIR": str(root / "logs"),
    }
    config = root / "agentd.toml"
    config.write_text(DEMO_CONFIG)
    env["AGENTD_CONFIG"] = str(config)
    _say(f"agentd demo: state folder {root}")
    _say(f"[1/{STEPS}] starting the daemon (agentd serve) ...")
    daemon = DaemonProcess(env, log_path=root / "daemon.log", detach=keep_running)
    try:
        daemon.wait_ready(60)
    except DaemonFailed as exc:
        daemon.stop()
        daemon.close()
        _say(f"agentd demo: the daemon did not start: {exc}; see {root / 'daemon.log'}")
        return 1
    _say(f"      ready: pid {daemon.pid}, socket {sock}")
    status = call(sock, "status")
    _say(f"      schema version {status['schema_version']}, database {status['store']['location']}")
    data = resources.files("agentd.demo_data")
    _say(f"[2/{STEPS}] importing the demo accounts (agentctl accounts import accounts.csv) ...")
    imported = call(
        sock,
        "accounts.import",
        {"name": "accounts.csv"},
        upload=io.BytesIO(data.joinpath("accounts.csv").read_bytes()),
    )
    _say(f"      {imported['imported']} accounts")
    _say(
        f"[3/{STEPS}] proposing actions through the gate "
        "(agentctl propose --file intents.jsonl) ..."
    )
    batch = call(
        sock,
        "propose.batch",
        {"name": "intents.jsonl"},
        upload=io.BytesIO(data.joinpath("intents.jsonl").read_bytes()),
    )
    decided = [r for r in batch["results"] if "decision" in r]
    accounts = {r["intent_id"]: r for r in call(sock, "intents.list", {"limit": 100})["intents"]}
    rows = [
        {
            **r,
            "account": accounts[r["intent_id"]]["account"],
            "action": accounts[r["intent_id"]]["action_type"],
        }
        for r in decided
    ]
    _say(render.table(rows, ("decision", "reason", "account", "action", "risk_level")))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(batch["counts"].items()))
    _say(f"      {counts}")
    _say(f"[4/{STEPS}] a person approves one pending intent (agentctl approve) ...")
    pending = call(sock, "pending")["pending"]
    approved: dict[str, Any] | None = None
    for item in pending:
        if item["reason"] in ("APPROVAL_REQUIRED_TIER", "STAGE_GATED"):
            try:
                approved = call(
                    sock,
                    "approve",
                    {"id": item["intent_id"], "note": "checked by the demo operator"},
                )
            except AgentdError as exc:  # e.g. nothing can carry it out: say so, try the next
                _say(f"      {item['intent_id']}: {exc.message}")
                continue
            break
    if approved:
        _say(
            f"      {approved['intent_id']} ({approved['action_type']} for {approved['account']}) "
            f"approved by {approved['decided_by']}, handed to execution"
        )
    queue = call(sock, "queue")["queue"]
    verdict = call(sock, "audit.verify")
    _say(
        f"      hand-off queue: {len(queue)} intents; audit trail intact: {verdict['intact']} "
        f"({verdict['count']} records)"
    )
    if keep_running:
        daemon.close()
        _say(f"[5/{STEPS}] leaving the daemon running. Explore it with:")
        _say(f"      export AGENTD_SOCKET_PATH={sock}")
        _say("      agentctl status; agentctl pending; agentctl explain INTENT")
        _say(f"      kill {daemon.pid}   # to stop it")
        return 0
    _say(f"[5/{STEPS}] stopping the daemon (SIGTERM) ...")
    code = daemon.stop()
    stopping = daemon.saw("STOPPING", "1")
    daemon.close()
    how = "cleanly" if code == 0 and stopping else f"with status {code}"
    _say(f"      stopped {how}.")
    _say("")
    _say("Summary")
    summary = {
        "accounts": imported["imported"],
        "intents decided": len(decided),
        "auto-executed": batch["counts"].get("AUTO_EXECUTE", 0),
        "waiting for approval": len(pending) - (1 if approved else 0),
        "approved by a person": 1 if approved else 0,
        "blocked": batch["counts"].get("BLOCKED", 0),
        "handed to execution": len(queue),
        "audit records": verdict["count"],
        "state folder": str(root),
        "database": status["store"]["location"],
        "daemon log": str(root / "daemon.log"),
        "json log": status["log_file"],
    }
    _say(render.kv(summary))
    _say("Next: agentd demo --keep-running, then agentctl pending / explain INTENT / audit tail")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(run_demo())
