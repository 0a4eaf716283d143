"""``agentd demo``: the product doing its job on an embedded default.

It starts the daemon on a demo state folder (SQLite inside), talks to it over
the control socket as an operator would, shows what happened, and stops it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from agentd.config import MAX_SOCKET_PATH
from agentd.ctl import render
from agentd.ctl.client import call
from agentd.supervise import DaemonFailed, DaemonProcess

MARKER = ".agentd-demo"


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
    _say(f"agentd demo: state folder {root}")
    _say("[1/3] starting the daemon (agentd serve) ...")
    daemon = DaemonProcess(env, log_path=root / "daemon.log", detach=keep_running)
    try:
        daemon.wait_ready(60)
    except DaemonFailed as exc:
        daemon.stop()
        daemon.close()
        _say(f"agentd demo: the daemon did not start: {exc}; see {root / 'daemon.log'}")
        return 1
    _say(f"      ready: pid {daemon.pid}, socket {sock}")
    _say("[2/3] asking it for its status over the control socket (agentctl status) ...")
    status = call(sock, "status")
    _say(
        render.kv(
            {
                "version": status["version"],
                "state": status["state"],
                "schema version": status["schema_version"],
                "database": status["store"]["location"],
                "log file": status["log_file"],
            }
        )
    )
    if keep_running:
        daemon.close()
        _say("[3/3] leaving the daemon running. Explore it with:")
        _say(f"      export AGENTD_SOCKET_PATH={sock}")
        _say("      agentctl status")
        _say(f"      kill {daemon.pid}   # to stop it")
        return 0
    _say("[3/3] stopping the daemon (SIGTERM) ...")
    code = daemon.stop()
    stopping = daemon.saw("STOPPING", "1")
    daemon.close()
    verdict = "cleanly" if code == 0 and stopping else f"with status {code}"
    _say(f"      stopped {verdict}.")
    _say("")
    _say("Summary")
    _say(
        render.kv(
            {
                "state folder": str(root),
                "database": status["store"]["location"],
                "daemon log": str(root / "daemon.log"),
                "json log": status["log_file"],
            }
        )
    )
    _say("Next: agentd demo --keep-running, then agentctl status / agentctl --help")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(run_demo())
