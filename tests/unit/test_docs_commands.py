"""Every agentctl and agentd command the README and the operator guide show exists.

Shell blocks are parsed with the real parsers (so an option or argument that
does not exist fails); inline mentions must name real commands and
subcommands.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from agentd import cli, docgen
from agentd.ctl import main as ctl_main
from agentd.ctl.tree import command_tree

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "operator-guide.md"]
PROGRAMS = ("agentctl", "agentd")
# Governance's commands (SPEC §7) are documented ahead of their merge; once a
# build has them, they are checked like the rest.
GOVERNANCE = {"metrics", "breaker", "level", "kill-switch", "governance"}

AGENTCTL = command_tree(ctl_main.build_parser())
AGENTD_TOP = {c.path[0] for c in command_tree(cli.build_parser()).children}


def _shell_lines(text: str) -> list[str]:
    lines, block = [], False
    heredoc: str | None = None  # the word that ends the here-document being skipped
    for line in text.splitlines():
        if line.startswith("```"):
            block = line.strip() in ("```sh", "```bash")
            heredoc = None
            continue
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if block:
            lines.append(line)
            found = re.search(r"<<-?\s*'?([A-Za-z_]+)'?", line)
            heredoc = found.group(1) if found else None
    joined = "\n".join(lines).replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip()]


def _invocations(line: str) -> list[tuple[str, list[str]]]:
    """Return each ``agentctl``/``agentd`` run in a shell line, with its arguments."""
    line = re.sub(r"\$\([^)]*\)", "X", line)  # $(date +%F) is one word
    words = shlex.split(line, comments=True)
    found = []
    i, at_command = 0, True
    while i < len(words):
        word = words[i]
        if word in ("|", "&&", ";", "||"):
            at_command = True
        elif at_command and word in ("sudo", "env", "exec"):
            pass
        elif at_command and word == "-u":
            i += 1  # the user to run as
        elif at_command and re.fullmatch(r"[A-Z_]+=.*", word):
            pass
        elif at_command:
            at_command = False
            program = word.rsplit("/", 1)[-1]
            if program in PROGRAMS:
                args = []
                for arg in words[i + 1 :]:
                    if arg in ("|", "&&", ";", "||", ">", ">>"):
                        break
                    args.append(arg)
                found.append((program, args))
        i += 1
    return found


def _shell_cases() -> list[tuple[str, str, list[str]]]:
    cases = []
    for doc in DOCUMENTS:
        for line in _shell_lines(doc.read_text(encoding="utf-8")):
            for program, args in _invocations(line):
                cases.append((doc.name, program, args))
    return cases


SHELL_CASES = _shell_cases()


def test_the_documents_show_commands() -> None:
    assert len([c for c in SHELL_CASES if c[1] == "agentctl"]) > 20
    assert len([c for c in SHELL_CASES if c[1] == "agentd"]) > 5


def _command_word(args: list[str]) -> str | None:
    skip_value = {"--socket", "--config", "--timeout"}
    it = iter(args)
    for arg in it:
        if arg in skip_value:
            next(it, None)
        elif not arg.startswith("-"):
            return arg
    return None


@pytest.mark.parametrize(
    ("doc", "program", "args"),
    SHELL_CASES,
    ids=[f"{d}:{p} {' '.join(a)}"[:80] for d, p, a in SHELL_CASES],
)
def test_shell_examples_parse(doc: str, program: str, args: list[str]) -> None:
    if program == "agentctl":
        command = _command_word(args)
        registered = {c.path[0] for c in AGENTCTL.children}
        if command in GOVERNANCE and command not in registered:
            pytest.skip(f"{command} comes with governance")
        ns = ctl_main.build_parser().parse_args(args)
        assert ns.run is not None
    elif args and args[0] in docgen.TOOL_PARSERS:
        docgen.tool_parser(args[0]).parse_args(args[1:])
    else:
        cli.build_parser().parse_args(args)


def _inline_mentions() -> list[tuple[str, str]]:
    out = []
    for doc in DOCUMENTS:
        for span in re.findall(r"`((?:agentctl|agentd) [^`]+)`", doc.read_text(encoding="utf-8")):
            out.append((doc.name, span))
    return out


@pytest.mark.parametrize(("doc", "span"), _inline_mentions())
def test_inline_mentions_name_real_commands(doc: str, span: str) -> None:
    program, *words = span.split()
    plain = [w for w in words if re.fullmatch(r"[a-z][a-z0-9_|-]*", w)]
    if not plain or any(w.startswith("-") or "[" in w for w in words[: words.index(plain[0])]):
        return  # `agentctl [--socket PATH] ... COMMAND`: no command named
    first = plain[0]
    if program == "agentd":
        assert first in AGENTD_TOP, f"{doc}: `{span}`: agentd has no command {first!r}"
        return
    children = {c.path[0]: c for c in AGENTCTL.children}
    if first in GOVERNANCE and first not in children:
        return
    assert first in children, f"{doc}: `{span}`: agentctl has no command {first!r}"
    cmd = children[first]
    following = words[words.index(first) + 1 :]
    if cmd.children and following and re.fullmatch(r"[a-z][a-z0-9_|-]*", following[0]):
        names = {c.path[-1] for c in cmd.children}
        for alternative in following[0].split("|"):
            assert alternative in names, (
                f"{doc}: `{span}`: `agentctl {first}` has no subcommand {alternative!r}"
            )
