"""The four state machines are named once (agentd.core.states), and agentctl offers them.

agentctl's ``--status`` choices used to be copies of the daemon's lists; they
are now read from the same enums, so a state added to one is offered by the
other. A member is its stored string: the database, the protocol and the
audit trail read exactly as before.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentd.core import states
from agentd.core.states import ExecutionState, IntentStatus, OperationState, TokenState
from agentd.ctl.main import build_parser


def status_choices(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from status_choices(sub, (*path, name))
        elif action.dest == "status" and action.choices:
            yield path, list(action.choices)


@pytest.mark.parametrize(
    ("command", "enum"),
    [("executions", ExecutionState), ("ops", OperationState), ("intents", IntentStatus)],
)
def test_agentctl_offers_the_states_the_daemon_knows(command: str, enum: type) -> None:
    found = dict(status_choices(build_parser()))
    choices = found[(command,)]
    assert choices == [m.value for m in enum]
    # Plain strings: argparse quotes them with repr() in its "invalid choice" error.
    assert all(type(c) is str for c in choices)


def test_a_bad_status_is_refused_naming_plain_strings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["executions", "--status", "sucess"])
    err = capsys.readouterr().err
    assert "'succeeded'" in err and "ExecutionState" not in err


def test_members_are_their_stored_strings() -> None:
    assert ExecutionState.HANDED_OFF == "handed_off"
    assert TokenState.IN_PROGRESS == "in_progress"
    row = {"state": ExecutionState.SUCCEEDED, "token": TokenState.VOID}
    assert json.loads(json.dumps(row)) == {"state": "succeeded", "token": "void"}
    assert f"{OperationState.CANCELLED}" == "cancelled"


def test_open_and_ended_execution_states_split_the_driven_ones() -> None:
    driven = set(states.OPEN_EXECUTION_STATES) | states.ENDED_EXECUTION_STATES
    assert driven | {ExecutionState.HANDED_OFF} == set(ExecutionState)
    assert not set(states.OPEN_EXECUTION_STATES) & states.ENDED_EXECUTION_STATES
    assert states.ENDED_OPERATION_STATES < set(OperationState)


def test_the_module_imports_only_enum() -> None:
    # agentctl loads it at start: it must stay free of I/O and heavy imports.
    tree = ast.parse(Path(states.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"__future__", "enum"}
