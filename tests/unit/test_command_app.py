"""Command handlers see the daemon through the ``App`` protocol, not the daemon module."""

from __future__ import annotations

import ast
from pathlib import Path

import agentd.commands

COMMANDS = sorted(Path(agentd.commands.__file__).parent.glob("*.py"))


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.module if isinstance(node, ast.ImportFrom) and node.module else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }


def test_no_command_module_imports_the_daemon() -> None:
    # The daemon imports the commands; importing it back, even for types, is a cycle.
    assert len(COMMANDS) > 5
    assert {p.name: "agentd.daemon" in _imported(p) for p in COMMANDS} == {
        p.name: False for p in COMMANDS
    }


def test_handlers_name_the_services_they_use() -> None:
    # Every service is part of the App protocol: no handler guesses with getattr.
    found = [p.name for p in COMMANDS if "getattr(ctx.app" in p.read_text()]
    assert found == []
