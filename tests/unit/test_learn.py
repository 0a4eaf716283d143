"""agentd kb learn: a completed task becomes a reviewable workflow test in the step() form."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agentd.errors import InvalidArgument, InvalidState
from agentd.kb import extract_workflows
from agentd.learn import learned_steps, lift, render_test
from agentd.store.records import OperationRow, StepRow

OP = OperationRow(
    id="op_1",
    account="acme",
    service="backoffice",
    workflow="task",
    params={},
    state="completed",
    step=4,
    total=30,
    attempts=1,
    lease_owner=None,
    lease_until=None,
    reason=None,
    error=None,
    result={},
    folder=None,
    execution_id=None,
    created_by="t",
    created_at="t",
    updated_at="t",
    started_at=None,
    finished_at=None,
    task="Add the note 'Call back' to acme",
)


def row(idx: int, action: str, target: str, status: str = "ok", **detail: Any) -> StepRow:
    return StepRow("op_1", idx, 1, idx, f"reason {idx}", action, target, "agent", status,
                   None, None, None, 1.0, "t", {"reason": f"reason {idx}", **detail})  # fmt: skip


STEPS = [
    row(1, "goto", "http://127.0.0.1:8123/crm/accounts/acme?tab=notes"),
    row(2, "fill", '[data-testid="login-password"]', value="{secret:admin_password}"),
    row(3, "click", '[data-testid="gone"]', status="failed"),  # the model tried again
    row(4, "fill", '[data-testid="note-text"]', value="Call back"),
    row(5, "expect_text", '[data-testid="notice"]', expect="Note added"),
    row(6, "extract", '[data-testid="note-id"]', result="note_id"),
    replace(row(0, "screenshot", ""), status="final"),
]


def test_a_learned_workflow_is_a_valid_step_file(tmp_path: Path) -> None:
    params = {"note": "Call back", "account": "acme"}
    steps = learned_steps(OP, STEPS, params)
    assert [s["action"] for s in steps] == ["goto", "fill", "fill", "expect_text", "extract"]
    assert steps[0]["target"] == "/crm/accounts/{account}?tab=notes"
    path = tmp_path / "test_add_note_task.py"
    path.write_text(render_test("add_note_task", OP, steps, params))
    [wf], problems = extract_workflows(path, path.name)
    assert problems == []
    assert wf.description == "Task: Add the note '{note}' to {account}"
    assert wf.parameters == ("account", "note") and wf.secrets == ("admin_password",)
    assert wf.results == ("note_id",)
    assert wf.steps[2].value == "{note}" and wf.steps[3].expect == "Note added"


@pytest.mark.parametrize(
    ("op", "words"),
    [
        (replace(OP, state="failed"), "only a completed task"),
        (replace(OP, workflow="add_note", task=None), "not a task"),
    ],
)
def test_only_a_completed_task_is_learned(op: OperationRow, words: str) -> None:
    with pytest.raises(InvalidState, match=words):
        learned_steps(op, STEPS, {})


def test_lift_replaces_the_longest_value_first() -> None:
    assert lift("acme-east and acme", {"a": "acme", "b": "acme-east"}) == "{b} and {a}"
    assert lift(None, {"a": "x"}) is None


def test_learn_refuses_bad_names_and_an_existing_file(tmp_path: Path) -> None:
    from agentd.learn import learn

    with pytest.raises(InvalidArgument):
        learn(tmp_path / "none.sqlite3", "op_1", "task", tmp_path, {})
    with pytest.raises(InvalidArgument):
        learn(tmp_path / "none.sqlite3", "op_1", "Bad-Name", tmp_path, {})
