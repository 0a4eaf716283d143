"""Agent mode's pure rules: writes, approval by level, budgets, selectors, task matching."""

from __future__ import annotations

import pytest

from agentd.core.agent_mode import (
    MAX_TASK_CHARS,
    BudgetReason,
    Element,
    Limits,
    Spend,
    budget_stop,
    call_cost,
    check_task_text,
    is_write,
    match_task,
    needs_step_approval,
    stable_selector,
    task_template,
)
from agentd.core.gate import AutonomyLevel
from agentd.errors import InvalidArgument

LINK = Element("e1", "a", href="/crm/accounts/acme", text="Acme")
SUBMIT = Element("e2", "button", type="submit", form_method="post", text="Save")
PLAIN_BUTTON = Element("e3", "button", type="button", text="Show more")
BUTTON_IN_FORM = Element("e4", "button", type="button", form_method="post", text="Add row")
LINK_IN_FORM = Element("e5", "a", href="/x", form_method="post")


@pytest.mark.parametrize(
    ("method", "element", "write"),
    [
        ("click", SUBMIT, True),
        ("click", None, True),  # an element the agent cannot tell: a write
        ("click", LINK, False),
        ("click", PLAIN_BUTTON, False),
        ("click", BUTTON_IN_FORM, True),
        ("click", LINK_IN_FORM, True),
        ("click", Element("e6", "div", text="Delete"), True),
        ("goto", None, False),
        ("fill", SUBMIT, False),
        ("select", None, False),
        ("expect_text", None, False),
        ("extract", None, False),
        ("done", None, False),
    ],
)
def test_which_commands_are_writes(method: str, element: Element | None, write: bool) -> None:
    assert is_write(method, element) is write


@pytest.mark.parametrize(
    ("level", "write", "pause"),
    [
        (AutonomyLevel.L3, True, True),
        (AutonomyLevel.L3_PLUS, True, True),
        (AutonomyLevel.L4, True, False),
        (AutonomyLevel.L4_PLUS, True, False),
        (AutonomyLevel.L3, False, False),
    ],
)
def test_a_write_waits_for_a_person_below_l4(
    level: AutonomyLevel, write: bool, pause: bool
) -> None:
    assert needs_step_approval(level, write) is pause


def test_call_cost_and_spend_arithmetic() -> None:
    one = call_cost(1_000_000, 100_000, 3.0, 15.0)
    assert one == Spend(1, 1_000_000, 100_000, 4.5)
    two = one.plus(call_cost(1000, 0, 3.0, 15.0))
    assert (two.calls, two.tokens, two.cost_usd) == (2, 1_101_000, 4.503)
    assert two.to_dict() == {
        "model_calls": 2,
        "input_tokens": 1_001_000,
        "output_tokens": 100_000,
        "cost_usd": 4.503,
    }


LIMITS = Limits(
    max_steps=5,
    max_tokens_per_operation=1000,
    max_cost_per_operation_usd=1.0,
    max_tokens_per_day=5000,
    max_cost_per_day_usd=3.0,
    max_wall_s=60,
)


@pytest.mark.parametrize(
    ("steps", "spent", "day", "elapsed", "reason"),
    [
        (0, Spend(), Spend(), 0.0, None),
        (4, Spend(4, 900, 99, 0.99), Spend(4, 4000, 999, 2.99), 59.9, None),
        (5, Spend(), Spend(), 0.0, BudgetReason.STEPS),
        (0, Spend(1, 900, 100, 0.0), Spend(), 0.0, BudgetReason.TOKENS),
        (0, Spend(1, 1, 1, 1.0), Spend(), 0.0, BudgetReason.COST),
        (0, Spend(), Spend(9, 5000, 0, 0.0), 0.0, BudgetReason.DAY_TOKENS),
        (0, Spend(), Spend(9, 1, 1, 3.0), 0.0, BudgetReason.DAY_COST),
        (0, Spend(), Spend(), 60.0, BudgetReason.WALL_CLOCK),
        # Several reached: the first in this order is reported.
        (9, Spend(1, 5000, 0, 9.0), Spend(), 99.0, BudgetReason.STEPS),
    ],
)
def test_budget_stop(
    steps: int, spent: Spend, day: Spend, elapsed: float, reason: BudgetReason | None
) -> None:
    stop = budget_stop(LIMITS, steps=steps, spent=spent, day=day, elapsed_s=elapsed)
    assert (stop.reason if stop else None) is reason
    if stop:
        assert "spent" in stop.message


@pytest.mark.parametrize(
    ("element", "selector"),
    [
        (Element("e1", "input", testid="note-text", id="x", name="n"), '[data-testid="note-text"]'),
        (Element("e1", "input", id="id_title", name="title"), "#id_title"),
        (Element("e1", "input", id="1bad", name="title"), 'input[name="title"]'),
        (
            Element("e1", "a", href="/crm/accounts/acme", text="Acme"),
            'a[href="/crm/accounts/acme"]',
        ),
        (Element("e1", "button", text='Say "hi"'), 'button:has-text("Say \\"hi\\"")'),
        (Element("e1", "div"), "div"),
    ],
)
def test_stable_selector(element: Element, selector: str) -> None:
    assert stable_selector(element) == selector


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Add a note", True),
        ("  two\nlines\tand a tab ", True),
        ("", False),
        ("   ", False),
        ("x" * (MAX_TASK_CHARS + 1), False),
        ("bell\x07", False),
        ("del\x7f", False),
        (42, False),
    ],
)
def test_task_text(text: object, ok: bool) -> None:
    if ok:
        assert check_task_text(text) == str(text).strip()
    else:
        with pytest.raises(InvalidArgument):
            check_task_text(text)


@pytest.mark.parametrize(
    ("template", "task", "params"),
    [
        (
            "Add the note '{note}' to {account}",
            "Add the note 'Hi there' to acme",
            {"note": "Hi there", "account": "acme"},
        ),
        (
            "Add the note '{note}' to {account}",
            "Add  the note 'x'\nto acme",
            {"note": "x", "account": "acme"},
        ),
        ("Open {a} then {a}", "Open p then p", {"a": "p"}),
        ("Open {a} then {a}", "Open p then q", None),
        ("Read the account", "Read the account", {}),
        ("Read the account", "Read the accounts", None),
        ("Price (USD) of {sku}?", "Price (USD) of 12?", {"sku": "12"}),
        ("Note {note}", "Note ", None),
    ],
)
def test_match_task(template: str, task: str, params: dict[str, str] | None) -> None:
    assert match_task(template, task) == params


def test_task_template_reads_learned_docstrings_only() -> None:
    assert task_template("Task: Add  the note {note}") == "Add the note {note}"
    assert task_template("Add the note {note} to account {account}.") is None
