"""``agentctl completion bash``, sourced into a real bash and asked to complete."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentd.ctl import execution, main
from agentd.ctl.tree import command_tree

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def _agentctl() -> list[str]:
    script = Path(sys.executable).with_name("agentctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agentd.ctl.main"]


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Printed by the real command; no daemon runs, and none is needed.
    env = {**os.environ, "AGENTD_SOCKET_PATH": "/nonexistent/agentd.sock"}
    done = subprocess.run(
        [*_agentctl(), "completion", "bash"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    path = tmp_path_factory.mktemp("completion") / "agentctl.bash"
    path.write_text(done.stdout, encoding="utf-8")
    return path


def complete(script: Path, line: str, cwd: Path | None = None) -> set[str]:
    """Return what bash offers for ``line`` (the cursor at its end)."""
    words = line.split(" ")
    program = (
        f"source {shlex.quote(str(script))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={shlex.quote(line)}\nCOMP_POINT=${{#COMP_LINE}}\n"
        "_agentctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        [BASH or "bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return {w for w in done.stdout.splitlines() if w}


def test_script_registers_the_function(script: Path) -> None:
    done = subprocess.run(
        [BASH or "bash", "--norc", "--noprofile", "-c", f"source {script}; complete -p agentctl"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "complete -F _agentctl agentctl"


def test_commands(script: Path) -> None:
    top = {c.path[0] for c in command_tree(main.build_parser()).children}
    assert complete(script, "agentctl ") == top
    assert complete(script, "agentctl acc") == {"accounts"}
    assert complete(script, "agentctl ex") == {"explain", "executions", "execution"}
    # Global options (and their values) before the command are skipped over.
    assert complete(script, "agentctl --json --socket /tmp/s --timeout 5 pe") == {"pending"}
    # ... even when a value looks like a command.
    assert complete(script, "agentctl --socket accounts a") == {"accounts", "approve", "audit"}
    assert complete(script, "agentctl accounts list --tenant set ") == set()


def test_subcommands(script: Path) -> None:
    assert complete(script, "agentctl accounts ") == {"import", "list", "show", "set"}
    assert complete(script, "agentctl audit v") == {"verify"}
    assert complete(script, "agentctl goals ") == {"add", "show"}


def test_options_per_command(script: Path) -> None:
    assert complete(script, "agentctl approve --") == {"--help", "--note"}
    assert complete(script, "agentctl rollback --") == {"--help", "--reason", "--until"}
    assert complete(script, "agentctl accounts import --") == {"--help", "--format", "--skip-bad"}
    assert complete(script, "agentctl --") == {
        "--help",
        "--version",
        "--socket",
        "--config",
        "--json",
        "--timeout",
    }


def test_choices(script: Path) -> None:
    statuses = {"pending", "approved", "blocked", "rejected", "expired"}
    assert complete(script, "agentctl intents --status ") == statuses
    assert complete(script, "agentctl intents --status p") == {"pending"}
    # bash splits --status=p into "--status", "=", "p".
    assert complete(script, "agentctl intents --status = p") == {"pending"}
    assert complete(script, "agentctl executions --limit 5 --status ") == set(execution.STATES)
    assert complete(script, "agentctl incidents --status ") == {"open", "resolved"}
    assert complete(script, "agentctl accounts set globex --trust A") == {"ACTIVE"}
    assert complete(script, "agentctl completion ") == {"bash"}


def test_files_where_a_file_is_expected(script: Path, tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("id\n")
    (tmp_path / "audit.jsonl").write_text("")
    assert complete(script, "agentctl accounts import ", cwd=tmp_path) == {
        "accounts.csv",
        "audit.jsonl",
    }
    assert complete(script, "agentctl --config acc", cwd=tmp_path) == {"accounts.csv"}
    # An intent id is not a file name: nothing is offered.
    assert complete(script, "agentctl approve ", cwd=tmp_path) == set()
    assert complete(script, "agentctl approve int_1 --note ", cwd=tmp_path) == set()


def test_verbs_that_are_words_not_subcommands(script: Path) -> None:
    # rollback TOKEN runs; rollback check|extend|tokens are its verbs.
    assert complete(script, "agentctl rollback ") == {"check", "extend", "tokens"}
    assert complete(script, "agentctl rollback ex") == {"extend"}
    assert complete(script, "agentctl rollback check ") == set()  # a token: not guessed
    assert complete(script, "agentctl incidents ") == {"open", "resolve"}
