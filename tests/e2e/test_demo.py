"""``agentd demo`` in a temporary folder: what it claims is what the store holds."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow(75)


# The whole loop with real Chromium: about a minute on a quiet machine.
@pytest.mark.timeout(900)
def test_demo_runs_and_its_summary_matches_the_store(short_tmp: Path) -> None:
    folder = short_tmp / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}
    # Step captures at a quarter of the viewport (the environment overrides the demo's
    # configuration file): Chromium does half the work per capture, and this test
    # counts the screenshots and reads the store, not the images.
    env["AGENTD_BROWSER__SCREENSHOT_SCALE"] = "0.25"
    result = subprocess.run(
        [sys.executable, "-m", "agentd", "demo", "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=850,
        env=env,
        cwd=short_tmp,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "stopped cleanly" in out

    def claimed(label: str) -> int:
        match = re.search(rf"^{label}:\s+(\d+)$", out, re.M)
        assert match, f"{label} missing from the summary:\n{out}"
        return int(match.group(1))

    db = sqlite3.connect(folder / "agentd.sqlite3")
    q = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert claimed("accounts") == q("SELECT count(*) FROM accounts")
    assert claimed("intents decided") == q("SELECT count(*) FROM intents")
    assert claimed("auto-executed") == q(
        "SELECT count(*) FROM intents WHERE decision='AUTO_EXECUTE'"
    )
    assert claimed("blocked") == q("SELECT count(*) FROM intents WHERE status='blocked'")
    assert claimed("waiting for approval") == q(
        "SELECT count(*) FROM intents WHERE status='pending'"
    )
    assert claimed("approved by a person") == q(
        "SELECT count(*) FROM intents WHERE approval_source='HUMAN'"
    )
    assert claimed("handed to execution") == q("SELECT count(*) FROM execution_queue")
    assert claimed("executions succeeded") == q(
        "SELECT count(*) FROM executions WHERE kind='change' AND state='succeeded'"
    )
    assert claimed("executions succeeded") >= 3
    assert claimed("rolled back") == q("SELECT count(*) FROM rollback_tokens WHERE state='used'")
    assert claimed("rolled back") == 1
    shots = [p for p in (folder / "operations").rglob("*") if p.suffix in (".png", ".jpg")]
    assert claimed("screenshots") == len(shots) > 0
    digest = re.search(r"^digest:\s+(\S+\.md)$", out, re.M)
    assert digest and Path(digest.group(1)).is_file()
    events = re.search(r"(\d+) breaker events", Path(digest.group(1)).read_text())
    assert events and int(events.group(1)) >= 1  # the trips are in the digest
    report = re.search(r"^governance report:\s+(\S+\.md)$", out, re.M)
    assert report and Path(report.group(1)).is_file()
    assert claimed("breakers tripped") == q(
        "SELECT count(*) FROM breaker_trips WHERE reset_at IS NULL"
    )
    assert claimed("breakers tripped") >= 1
    assert claimed("executions failed") == q(
        "SELECT count(*) FROM executions WHERE kind='change' AND state != 'succeeded'"
    )
    assert (
        claimed("audit records") == q("SELECT count(*) FROM audit") - 1
    )  # DAEMON_STOPPED came after
    assert (
        claimed("blocked") >= 1
        and claimed("auto-executed") >= 1
        and claimed("waiting for approval") >= 1
    )
    # Every decision has a way to happen: every action type that is not a hard stop is
    # proposed, approvals are shown, a hand-off is closed, and the happy path (up to the
    # breaker step) shows no refusal.
    from agentd.core.guardrails import GuardrailPolicy

    policy = GuardrailPolicy()
    proposed = {r[0] for r in db.execute("SELECT DISTINCT action_type FROM intents")}
    assert policy.autonomous | policy.approval_required <= proposed
    assert claimed("approved by a person") >= 8
    assert claimed("handed off to a person") == q(
        "SELECT count(*) FROM executions WHERE executor = 'handoff' AND state = 'succeeded'"
    )
    assert claimed("handed off to a person") == 1
    assert re.search(r"^\s+agentctl handoff done exe_\w+: succeeded", out, re.M)
    assert re.search(r"agentctl explain \S+ .*goal check: serves \w+ goal goal_\w+", out)
    happy = out.split("the back-office starts failing")[0]
    assert "refused" not in happy.lower() and "NO_EXECUTOR" not in happy, happy
    assert q("SELECT count(*) FROM executions WHERE state = 'refused'") == 0
    db.close()
    # The trail verifies and nothing is left running.
    from agentd.core.audit import verify_chain

    db = sqlite3.connect(folder / "agentd.sqlite3")
    rows = db.execute(
        "SELECT seq, at, event, actor, subject, data, prev_hash, hash FROM audit ORDER BY seq"
    ).fetchall()
    db.close()
    assert verify_chain(rows).intact
    pid = int(re.search(r"ready: pid (\d+)", out).group(1))  # type: ignore[union-attr]
    assert not Path(f"/proc/{pid}").exists()
    assert not (folder / "agentd.sock").exists()
    port = int(re.search(r"back-office: http://127.0.0.1:(\d+)", out).group(1))  # type: ignore[union-attr]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_demo_refuses_a_folder_it_did_not_create(short_tmp: Path) -> None:
    folder = short_tmp / "precious"
    folder.mkdir()
    (folder / "data.txt").write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "agentd", "demo", "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "not a demo folder" in result.stderr + result.stdout
    assert (folder / "data.txt").read_text() == "keep me"
