"""``agentd demo``: the product doing its job on an embedded default.

It starts the demo back-office and the daemon on a demo state folder (SQLite
inside), talks to the daemon over the control socket as an operator would —
accounts, vault, consent, intents through the gate, an approval, executions
in real Chromium with screenshots, a rollback — shows what happened, and
stops both (or leaves them running with ``--keep-running``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from agentd.config import MAX_SOCKET_PATH
from agentd.core.executors import DEFAULT_EXECUTORS
from agentd.ctl import render
from agentd.ctl.client import call
from agentd.demosite.seed import ACCOUNTS as SEEDED_ACCOUNTS
from agentd.supervise import DaemonFailed, DaemonProcess
from agentd.vault import generate_key_file

MARKER = ".agentd-demo"
DEMO_CONFIG = """# Written by agentd demo: the shipped defaults, with autonomy raised to L3+
# so that LOW-risk allowlisted actions auto-execute, the vault key in the demo
# folder and the demo back-office as the browser agents' target.
[autonomy]
level = "L3+"

[vault]
key_file = "{key}"

[browser]
step_timeout_s = 4.0

[browser.services.backoffice]
base_url = "{site}"

[execution]
poll_interval_s = 0.5

# Every action type's executor, as shipped, except that negotiating terms is
# handed to a person (agentctl handoffs; agentctl handoff done ID --note TEXT).
[execution.executors]
{executors}
"""
HANDED_OFF_TYPES = ("negotiate_terms",)
STEPS = 10
# Pending intents the demo operator leaves for later: a weak signal, an untrusted account.
LEFT_FOR_LATER = ("LOW_CONFIDENCE", "TRUST_NOT_ACTIVE", "NO_EXECUTOR")
BREAKER_ACCOUNT = "cyberdyne"
SITE_TIMEOUT_S = 20.0
EXECUTION_TIMEOUT_S = 240.0


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


def _csv(name: str) -> list[dict[str, str]]:
    text = resources.files("agentd.demo_data").joinpath(name).read_text()
    return list(csv.DictReader(io.StringIO(text)))


def _interactions(now: datetime) -> bytes:
    """Return the shipped interactions with ``days_ago`` turned into times before ``now``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "account", "kind", "direction", "at", "sentiment", "summary"])
    for row in _csv("interactions.csv"):
        at = now - timedelta(days=float(row["days_ago"]), hours=1)
        writer.writerow(
            [
                row["id"],
                row["account"],
                row["kind"],
                row["direction"],
                at.isoformat(),
                row["sentiment"],
                row["summary"],
            ]
        )
    return out.getvalue().encode()


def _goals(now: datetime) -> list[dict[str, Any]]:
    """Two goals for the demo tenant: one comfortably on track, one behind its pace."""
    start = (now - timedelta(days=7)).date().isoformat()
    end = (now + timedelta(days=21)).date().isoformat()
    return [
        {
            "tenant": "northwind",
            "type": "pipeline",
            "target": 10,
            "start": start,
            "end": end,
            "name": "Ten accounts in the open pipeline",
        },
        {
            "tenant": "northwind",
            "type": "activity",
            "target": 400,
            "start": start,
            "end": end,
            "name": "400 outbound touches this month",
        },
    ]


def _executors() -> str:
    """Return the demo's ``[execution.executors]`` lines: the shipped table, some handed off."""
    lines = []
    for key, name in DEFAULT_EXECUTORS.items():
        quoted = f'"{key}"' if "." in key else key
        lines.append(f'{quoted} = "{"handoff" if key in HANDED_OFF_TYPES else name}"')
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def site_args(port: int, password: str, token: str, extra_accounts: list[str]) -> list[str]:
    """Return the ``agentd demo-site`` arguments; each secret is one ``--opt=value`` word,
    since a generated secret may begin with ``-`` and would otherwise read as an option."""
    return [
        "--port",
        str(port),
        f"--admin-password={password}",
        f"--control-token={token}",
        *extra_accounts,
    ]


class _Site:
    """The demo back-office, served by ``agentd demo-site`` in a child process."""

    def __init__(self, root: Path, keep_running: bool) -> None:
        known = {account for account, _, _ in SEEDED_ACCOUNTS}
        extra_accounts = [
            f"--account={row['id']}={row['name']}"
            for row in _csv("accounts.csv")
            if row["id"] not in known
        ]
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        self.token = secrets.token_urlsafe(18)
        self.log = open(root / "demo-site.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentd",
                "demo-site",
                *site_args(self.port, self.password, self.token, extra_accounts),
            ],
            stdout=self.log,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            start_new_session=keep_running,
        )
        deadline = time.monotonic() + SITE_TIMEOUT_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(
                        f"agentd demo: the demo back-office did not start; see {root}/demo-site.log"
                    ) from None
                time.sleep(0.1)

    def control(self, action: str, body: dict[str, Any] | None = None) -> None:
        """Tell the site to fail (or stop failing) on purpose."""
        request = urllib.request.Request(
            f"{self.url}/__control/{action}",
            data=json.dumps(body or {}).encode(),
            headers={"X-Control-Token": self.token, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


FINISHED = ("succeeded", "failed", "refused")
# Where an execution rests until something happens: finished, or waiting for a person.
SETTLED = (*FINISHED, "handed_off")


def _watch_executions(sock: Path, expected: int) -> list[dict[str, Any]]:
    """Show each execution's progress until ``expected`` have finished; return them."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + EXECUTION_TIMEOUT_S
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = [r for r in call(sock, "executions.list")["executions"] if r["kind"] == "change"]
        for r in sorted(rows, key=lambda r: r["created_at"]):
            label = r["state"] + (f" ({r['reason']})" if r.get("reason") else "")
            if seen.get(r["id"]) != label:
                seen[r["id"]] = label
                done = sum(1 for x in rows if x["state"] in SETTLED)
                _say(f"      [{done}/{expected}] {r['action_type']:<24} {r['account']:<10} {label}")
        if len(rows) >= expected and all(r["state"] in SETTLED for r in rows):
            break
        time.sleep(0.3)
    return rows


def _explain_goal(sock: Path, decided: list[dict[str, Any]]) -> None:
    """Show the goal check of one intent, as ``agentctl explain`` prints it."""
    for r in decided:
        shown = call(sock, "intents.show", {"id": r["intent_id"]})
        goal = next((c for c in shown["trace"] if c["check"] == "goal"), None)
        if goal is not None and goal["saw"].get("goal"):
            _say(
                f"      agentctl explain {shown['intent_id']} ({shown['action_type']} for "
                f"{shown['account']}): goal check: {goal['said']}"
            )
            return


def _screenshots(root: Path) -> list[Path]:
    folder = root / "operations"
    return [p for p in folder.rglob("*") if p.suffix in (".png", ".jpg", ".jpeg")]


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
    _say(f"[1/{STEPS}] starting the demo back-office and the daemon (agentd serve) ...")
    site = _Site(root, keep_running)
    _say(f"      back-office: {site.url} (login admin / {site.password})")
    key = root / "vault.key"
    generate_key_file(key)
    config = root / "agentd.toml"
    config.write_text(DEMO_CONFIG.format(key=key, site=site.url, executors=_executors()))
    env["AGENTD_CONFIG"] = str(config)
    daemon = DaemonProcess(env, log_path=root / "daemon.log", detach=keep_running)
    try:
        daemon.wait_ready(60)
    except DaemonFailed as exc:
        daemon.stop()
        daemon.close()
        site.stop()
        _say(f"agentd demo: the daemon did not start: {exc}; see {root / 'daemon.log'}")
        return 1
    try:
        return _run(root, sock, daemon, site, keep_running)
    except BaseException:
        if not keep_running:
            daemon.stop()
            daemon.close()
            site.stop()
        raise


def _run(root: Path, sock: Path, daemon: DaemonProcess, site: _Site, keep_running: bool) -> int:  # noqa: C901, PLR0915
    _say(f"      ready: pid {daemon.pid}, socket {sock}")
    status = call(sock, "status")
    _say(f"      schema version {status['schema_version']}, database {status['store']['location']}")
    data = resources.files("agentd.demo_data")
    _say(
        f"[2/{STEPS}] importing the demo accounts; their back-office login goes into the vault "
        "and their consent is recorded ..."
    )
    imported = call(
        sock,
        "accounts.import",
        {"name": "accounts.csv"},
        upload=io.BytesIO(data.joinpath("accounts.csv").read_bytes()),
    )
    accounts = [a["id"] for a in call(sock, "accounts.list")["accounts"]]
    for account in accounts:
        for name, value in (("admin_user", "admin"), ("admin_password", site.password)):
            call(
                sock,
                "secret.set",
                {"account": account, "service": "backoffice", "name": name},
                upload=io.BytesIO(value.encode()),
            )
        call(
            sock,
            "consent.grant",
            {"account": account, "service": "backoffice", "permissions": ["read", "write"]},
        )
    _say(
        f"      {imported['imported']} accounts, {2 * len(accounts)} secrets, "
        f"{len(accounts)} consents"
    )
    _say(
        f"[3/{STEPS}] importing interactions and goals; the pattern scan and the outreach "
        "planner run (agentctl run-task) ..."
    )
    now = datetime.now(UTC)
    seen = call(
        sock,
        "interactions.import",
        {"name": "interactions.csv"},
        upload=io.BytesIO(_interactions(now)),
    )
    for goal in _goals(now):
        call(sock, "goals.add", goal)
    for task in ("pattern_scan", "goal_progress_update", "proactive_outreach_check"):
        ran = call(sock, "task.run", {"name": task, "wait": True}, timeout=120)
        _say(f"      {task}: {ran.get('result')}")
    patterns = call(sock, "patterns", {})["patterns"]
    _say(
        render.table(
            patterns,
            ("account", "kind", "severity", "direction", "summary"),
        )
    )
    goals = call(sock, "goals.list", {"all": True})["goals"]
    for goal in goals:
        _say(f"      goal {goal.get('name')!r}: {goal.get('verdict') or goal.get('status')}")
    _say(
        f"[4/{STEPS}] proposing more actions through the gate "
        "(agentctl propose --file intents.jsonl) ..."
    )
    batch = call(
        sock,
        "propose.batch",
        {"name": "intents.jsonl"},
        upload=io.BytesIO(data.joinpath("intents.jsonl").read_bytes()),
    )
    decided = [r for r in batch["results"] if "decision" in r]
    intents = {r["intent_id"]: r for r in call(sock, "intents.list", {"limit": 1000})["intents"]}
    rows = [
        {
            **r,
            "account": intents[r["intent_id"]]["account"],
            "action": intents[r["intent_id"]]["action_type"],
        }
        for r in decided
    ]
    _say(render.table(rows, ("decision", "reason", "account", "action", "risk_level")))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(batch["counts"].items()))
    _say(f"      {counts}")
    _say(
        f"[5/{STEPS}] a person approves what waits for approval on trusted accounts "
        "(agentctl pending; agentctl approve) ..."
    )
    trusted = {
        a["id"] for a in call(sock, "accounts.list")["accounts"] if a["trusted_mode"] == "ACTIVE"
    }
    approvals: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    for item in call(sock, "pending")["pending"]:
        if item["account"] not in trusted or item["reason"] in LEFT_FOR_LATER:
            left.append(item)
            continue
        approvals.append(
            call(sock, "approve", {"id": item["intent_id"], "note": "checked by the demo operator"})
        )
    for a in approvals:
        _say(f"      approved {a['intent_id']}: {a['action_type']} for {a['account']}")
    for item in left:
        _say(
            f"      left waiting {item['intent_id']}: {item['action_type']} for {item['account']}"
            f" ({item['reason']})"
        )
    _explain_goal(sock, decided)
    queue = call(sock, "queue")["queue"]
    _say(
        f"[6/{STEPS}] executing the approved intents in Chromium against the back-office "
        "(agentctl executions) ..."
    )
    executions = _watch_executions(sock, len(queue))
    handoffs = call(sock, "handoffs.list", {"status": "open"})["handoffs"]
    for h in handoffs:
        approved = h["approved"]
        _say(
            f"      handed to a person: {h['id']} ({h['action_type']} for {h['account']}), "
            f"notified by {', '.join(h['notified']) or 'nobody'}; approved diff "
            f"{json.dumps(approved.get('diff', {}))}"
        )
        closed = call(
            sock,
            "handoff.done",
            {"id": h["id"], "note": "terms agreed with their legal team by phone"},
        )
        _say(f"      agentctl handoff done {closed['id']}: {closed['state']} ({closed['note']})")
    executions = [r for r in call(sock, "executions.list")["executions"] if r["kind"] == "change"]
    succeeded = [r for r in executions if r["state"] == "succeeded"]
    _say(
        f"      {len(succeeded)} of {len(executions)} succeeded; "
        f"{len(_screenshots(root))} screenshots so far"
    )
    _say(f"[7/{STEPS}] rolling back one executed change (agentctl rollback TOKEN) ...")
    rolled: dict[str, Any] | None = None
    # The SEO change first: nothing else touched that product since.
    for r in sorted(succeeded, key=lambda r: r["executor"] != "product_seo"):
        token = call(sock, "execution.show", {"id": r["id"]})["rollback_token"]
        check = call(sock, "rollback.check", {"token": token["token"]})
        if check["available"] and check["type"] in ("SOFT_UNDO", "HARD_UNDO"):
            rolled = call(
                sock,
                "rollback.run",
                {"token": token["token"], "reason": "the demo operator changed their mind"},
                timeout=300,
            )
            _say(
                f"      {r['action_type']} on {r['account']}: {rolled['type']} by "
                f"{rolled['rollback']}; restored {rolled['restored']}"
            )
            break
    if rolled is None:
        _say("      no change could be undone automatically")
    _say(
        f"[8/{STEPS}] the back-office starts failing; the circuit breakers trip "
        "(agentctl breaker status) ..."
    )
    site.control("fail", {"path": f"/crm/accounts/{BREAKER_ACCOUNT}/notes", "mode": "error"})
    failing = [
        call(
            sock,
            "propose",
            {
                "tenant": "northwind",
                "account": BREAKER_ACCOUNT,
                "action_type": "log_interaction",
                "rationale": f"Record call {n} (the back-office is failing now)",
                "diff": {"note": f"Call {n} summary"},
                "source": "operator",
            },
        )
        for n in range(1, 4)
    ]
    auto = [f for f in failing if f["decision"] == "AUTO_EXECUTE"]
    before = {r["id"] for r in executions}
    failed = [
        r
        for r in _watch_executions(sock, len(executions) + len(auto))
        if r["id"] not in before and r["state"] != "succeeded"
    ]
    _say(f"      {len(failed)} executions failed while the back-office was failing")
    site.control("clear")
    breakers = call(sock, "breaker.status")
    for trip in breakers["tripped"]:
        _say(
            f"      TRIPPED {trip['key']} ({trip['severity']}): {trip['action']}; {trip['message']}"
        )
    level = call(sock, "level")
    _say(
        f"      autonomy level now {level.get('level')}; paused action types: "
        f"{', '.join(level.get('paused_action_types') or []) or 'none'}"
    )
    _say(
        "      (they stay tripped until an operator resets them: "
        "agentctl breaker reset NAME --reason TEXT)"
    )
    _say(
        f"[9/{STEPS}] writing the daily digest and the governance report "
        "(agentctl run-task daily_digest_generation / governance_cycle) ..."
    )
    call(sock, "task.run", {"name": "daily_digest_generation", "wait": True}, timeout=120)
    digest = call(sock, "digest", {})
    _say(f"      digest: {digest.get('path')}")
    cycle = call(sock, "task.run", {"name": "governance_cycle", "wait": True}, timeout=120)
    reports = sorted((root / "reports").glob("governance-*.md"))
    report = str(reports[-1]) if reports else None
    _say(f"      governance report: {report} ({cycle.get('result')})")
    verdict = call(sock, "audit.verify")
    _say(f"      audit trail intact: {verdict['intact']} ({verdict['count']} records)")
    # The counts are read back at the end, so they match the store exactly.
    intents = {r["intent_id"]: r for r in call(sock, "intents.list", {"limit": 1000})["intents"]}
    every = [r for r in call(sock, "executions.list")["executions"] if r["kind"] == "change"]
    summary = {
        "accounts": imported["imported"],
        "interactions": seen["imported"],
        "patterns found": len(patterns),
        "goals": len(goals),
        "intents decided": len(intents),
        "auto-executed": sum(1 for i in intents.values() if i["decision"] == "AUTO_EXECUTE"),
        "waiting for approval": len(call(sock, "pending")["pending"]),
        "approved by a person": len(approvals),
        "handed off to a person": len(handoffs),
        "blocked": sum(1 for i in intents.values() if i["status"] == "blocked"),
        "handed to execution": len(call(sock, "queue")["queue"]),
        "executions succeeded": sum(1 for r in every if r["state"] == "succeeded"),
        "executions failed": sum(1 for r in every if r["state"] != "succeeded"),
        "rolled back": 1 if rolled else 0,
        "breakers tripped": len(breakers["tripped"]),
        "screenshots": len(_screenshots(root)),
        "audit records": verdict["count"],
    }
    paths = {
        "state folder": str(root),
        "database": status["store"]["location"],
        "digest": str(digest.get("path")),
        "governance report": str(report),
        "screenshots folder": str(root / "operations"),
        "daemon log": str(root / "daemon.log"),
        "json log": status["log_file"],
    }
    if keep_running:
        daemon.close()
        _say(f"[10/{STEPS}] leaving the daemon and the back-office running. Explore with:")
        _say(f"      export AGENTD_SOCKET_PATH={sock}")
        _say("      agentctl status; agentctl executions; agentctl pending; agentctl incidents")
        _say(f"      kill {daemon.pid} {site.proc.pid}   # to stop them")
        code = 0
    else:
        _say(f"[10/{STEPS}] stopping the daemon (SIGTERM) and the back-office ...")
        code = daemon.stop()
        stopping = daemon.saw("STOPPING", "1")
        daemon.close()
        site.stop()
        how = "cleanly" if code == 0 and stopping else f"with status {code}"
        _say(f"      stopped {how}.")
    _say("")
    _say("Summary")
    _say(render.kv(summary))
    _say(render.kv(paths))
    _say(
        "Next: agentd demo --keep-running, then agentctl executions / execution show ID / "
        "rollback check TOKEN / pending / explain INTENT / audit tail"
    )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(run_demo())
