"""Every command of agentctl and agentd says what it does in one line and shows an example."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from agentd import cli, docgen
from agentd.ctl import main as ctl_main
from agentd.ctl.tree import Command, command_tree

AGENTCTL = list(command_tree(ctl_main.build_parser()).walk())
AGENTD = docgen.agentd_commands()


def _check(cmd: Command, program: str) -> None:
    title = f"{program} {cmd.name}".strip()
    assert cmd.summary, f"`{title}` has no one-line help"
    assert "\n" not in cmd.summary and len(cmd.summary) <= 200, f"`{title}`: help is not one line"
    assert cmd.parser.description, f"`{title}` has no description for --help"
    assert cmd.example, f"`{title}` has no 'Example:' in its epilog"
    assert cmd.example.startswith(f"{program} ") or f"| {program} " in cmd.example, (
        f"`{title}`: the example does not run {program}: {cmd.example!r}"
    )


@pytest.mark.parametrize("cmd", AGENTCTL, ids=lambda c: c.name or "agentctl")
def test_agentctl_command_has_help_and_example(cmd: Command) -> None:
    _check(cmd, "agentctl")
    # An example must at least parse: it runs this command with valid arguments.
    words = shlex.split(cmd.example)
    words = words[words.index("agentctl") + 1 :]
    for stop in ("|", ">"):
        words = words[: words.index(stop)] if stop in words else words
    ns = ctl_main.build_parser().parse_args(words)
    assert ns.run is not None
    assert [w for w in words if not w.startswith("-")][: len(cmd.path)] == list(cmd.path)


@pytest.mark.parametrize("cmd", AGENTD, ids=lambda c: c.name)
def test_agentd_command_has_help_and_example(cmd: Command) -> None:
    _check(cmd, "agentd")


def test_the_walk_finds_every_command() -> None:
    names = {c.name for c in AGENTCTL}
    assert {"status", "accounts import", "goals add", "rollback", "completion"} <= names
    assert len(AGENTCTL) > 40
    assert {c.name for c in AGENTD} >= {"serve", "docs", "kb build", "kb check", "vault init-key"}


def test_every_tool_with_its_own_parser_is_walked() -> None:
    # agentd hands these commands' arguments to the tool; docgen must know its parser.
    assert set(docgen.TOOL_PARSERS) == set(cli.PASSTHROUGH)


@pytest.mark.parametrize("cmd", AGENTCTL[1:], ids=lambda c: c.name)
def test_agentctl_help_shows_summary_and_example(
    cmd: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        ctl_main.main([*cmd.path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert " ".join(cmd.parser.description.split()) in " ".join(out.split())  # type: ignore[union-attr]
    assert f"Example: {cmd.example}" in " ".join(out.split())


@pytest.mark.parametrize("cmd", AGENTD, ids=lambda c: c.name)
def test_agentd_help_shows_summary_and_example(
    cmd: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*cmd.path, "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"Example: {cmd.example}" in out


def test_agentctl_stays_light_to_import() -> None:
    # agentctl starts on every call; completion and the tree walk load only when asked for.
    code = (
        "import sys; from agentd.ctl import main; main.build_parser(); "
        "print(sorted(m for m in ('typing', 'dataclasses', 'pathlib', 'pydantic', "
        "'agentd.ctl.completion', 'agentd.ctl.tree') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("program", "commands"),
    [("agentctl", AGENTCTL), ("agentd", AGENTD)],
    ids=["agentctl", "agentd"],
)
def test_every_argument_says_what_it_is(program: str, commands: list[Command]) -> None:
    # The references (docs/agentctl.md, docs/agentd.md) show this text in their tables.
    bare = [
        f"{program} {cmd.name}: {action.dest}"
        for cmd in commands
        for action in cmd.arguments()
        if not (action.help or "").strip()
    ]
    assert bare == []


@pytest.mark.parametrize("program", ["agentctl", "agentd"])
def test_version(program: str) -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [str(Path(sys.executable).with_name(program)), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"{program} {version('agentd')}\n"), done.stderr


def test_interaction_kinds_and_directions_are_documented() -> None:
    from agentd.core.interactions import Direction, InteractionKind
    from agentd.ctl import proactive

    assert proactive.INTERACTION_KINDS == tuple(k.value for k in InteractionKind)
    assert proactive.INTERACTION_DIRECTIONS == tuple(d.value for d in Direction)
    reference = (docgen.DOCS_DIR / "agentctl.md").read_text()
    section = reference.split("### agentctl interactions import", 1)[1].split("\n## ", 1)[0]
    for word in (*proactive.INTERACTION_KINDS, "direction is in", "or out"):
        assert word in section, word
