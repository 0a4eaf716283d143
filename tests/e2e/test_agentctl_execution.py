"""agentctl's execution, rollback and incident commands against a real daemon process."""

from __future__ import annotations

import json

from tests.e2e import test_daemon_process as base
from tests.e2e.test_daemon_process import agentctl

daemon = base.daemon  # the fixture: a real `agentd serve` process


def test_execution_commands_and_their_bad_input(daemon: object) -> None:
    listed = agentctl("--json", "executions")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"executions": []}
    assert agentctl("executions").stdout.strip() == "(none)"
    assert json.loads(agentctl("--json", "incidents").stdout) == {"incidents": []}
    assert json.loads(agentctl("--json", "rollback", "tokens").stdout) == {"tokens": []}

    missing = agentctl("rollback", "rbk_nope", "--reason", "undo it")
    assert missing.returncode == 1 and "unknown rollback token" in missing.stderr
    as_json = agentctl("--json", "rollback", "check", "rbk_nope")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["name"] == "NOT_FOUND"
    shown = agentctl("execution", "show", "exe_nope")
    assert shown.returncode == 1 and "unknown execution" in shown.stderr
    resolved = agentctl("incidents", "resolve", "inc_nope", "--note", "done")
    assert resolved.returncode == 1 and "unknown incident" in resolved.stderr

    # Usage errors are caught before the daemon is asked: exit 2 with a reason.
    for args, says in (
        (("rollback", "rbk_1"), "needs --reason"),
        (("rollback", "check"), "exactly one TOKEN"),
        (("rollback", "extend", "rbk_1", "--reason", "r"), "needs --until"),
        (("rollback", "tokens", "extra"), "takes no argument"),
        (("incidents", "resolve", "inc_1"), "needs --note"),
        (("incidents", "close", "inc_1"), "resolve ID"),
        (("executions", "--status", "exploded"), "invalid choice"),
    ):
        result = agentctl(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert says in result.stderr, (args, result.stderr)


def test_a_closed_pipe_ends_agentctl_quietly(daemon: object) -> None:
    import subprocess

    from tests.e2e.test_daemon_process import BIN

    # `agentctl ... | true`: the reader is gone before agentctl writes its output.
    result = subprocess.run(
        ["bash", "-c", f"{BIN / 'agentctl'} --json status | true; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
