"""Agent mode's pure rules: a task the model plans step by step.

An operation started with ``agentctl op run --task TEXT`` has no recorded
workflow: at each step the model answers with one command from
:data:`AGENT_METHODS`. What is decided here, without I/O:

- the task text a person may give (:func:`check_task_text`);
- which command may change something on the site (:func:`is_write`), and
  whether it waits for a person first at an autonomy level
  (:func:`needs_step_approval`: every write, below L4);
- the budgets: steps, tokens and cost per operation and per day, wall-clock
  time (:func:`budget_stop`), and what a model call costs (:func:`call_cost`);
- the stable selector a learned workflow records for an element of the page
  digest (:func:`stable_selector`);
- how a later task finds the workflow learned from an earlier one
  (:func:`match_task`): a learned workflow's docstring is ``Task: TEXT``, with
  ``{name}`` where the operator marked a parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from agentd.core.policy import AutonomyLevel
from agentd.errors import InvalidArgument

# The pseudo-workflow a task operation runs under: consents for it (or "*") cover tasks.
TASK_WORKFLOW = "task"
MAX_TASK_CHARS = 2000
# A learned workflow's docstring starts with this, then the task text (a template).
TASK_PREFIX = "Task: "


class AgentMethod(StrEnum):
    """The commands the model may answer with in agent mode: its method allowlist."""

    GOTO = "goto"
    CLICK = "click"
    FILL = "fill"
    SELECT = "select"
    EXPECT_TEXT = "expect_text"
    EXTRACT = "extract"
    DONE = "done"
    GIVE_UP = "give_up"


AGENT_METHODS: tuple[str, ...] = tuple(m.value for m in AgentMethod)
# The browser action (agentd.kb.Action value) each page command runs as.
BROWSER_ACTIONS: Mapping[AgentMethod, str] = {
    AgentMethod.GOTO: "goto",
    AgentMethod.CLICK: "click",
    AgentMethod.FILL: "fill",
    AgentMethod.SELECT: "select_option",
    AgentMethod.EXPECT_TEXT: "expect_text",
    AgentMethod.EXTRACT: "extract",
}
ENDING_METHODS = frozenset({AgentMethod.DONE, AgentMethod.GIVE_UP})


def check_task_text(text: object) -> str:
    """Return a task's text, stripped.

    :raises InvalidArgument: not text, empty, longer than :data:`MAX_TASK_CHARS`,
        or holding control characters (other than newlines and tabs).
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument("the task must be a non-empty text", details={"field": "task"})
    task = text.strip()
    if len(task) > MAX_TASK_CHARS:
        raise InvalidArgument(
            f"the task is {len(task)} characters; at most {MAX_TASK_CHARS} are allowed",
            details={"field": "task", "limit": MAX_TASK_CHARS},
        )
    if any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in task):
        raise InvalidArgument("the task may not hold control characters", details={"field": "task"})
    return task


@dataclass(frozen=True)
class Element:
    """One element of the page digest, as the agent saw it (never a secret's value)."""

    ref: str
    tag: str
    type: str = ""
    role: str = ""
    text: str = ""
    testid: str = ""
    id: str = ""
    name: str = ""
    href: str = ""
    form_method: str = ""  # the method of the form it belongs to ("" outside a form)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Element:
        """Build one from the digest's JSON (unknown keys ignored, values as text)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: str(v) for k, v in data.items() if k in fields and v is not None})


_CSS_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _quoted(value: str) -> str:
    return json.dumps(value)


def stable_selector(element: Element) -> str:
    """Return the most stable selector for an element: its ``data-testid``, its id,
    its form field name, a link's address, else its tag and visible text.
    """
    if element.testid:
        return f"[data-testid={_quoted(element.testid)}]"
    if element.id and _CSS_IDENT.fullmatch(element.id):
        return f"#{element.id}"
    if element.name and element.tag in ("input", "select", "textarea", "button"):
        return f"{element.tag}[name={_quoted(element.name)}]"
    if element.tag == "a" and element.href:
        return f"a[href={_quoted(element.href)}]"
    if element.text:
        return f"{element.tag or '*'}:has-text({_quoted(element.text[:60])})"
    return element.tag or "body"


def is_write(method: str, element: Element | None) -> bool:
    """Return whether a command may change something on the site.

    Only a click can (goto opens a page, fill and select change the form in
    the browser, expect_text and extract read). A click is a read only when it
    follows a plain link or is a button declared ``type="button"`` outside any
    form; a click on anything the agent cannot tell (``element`` None) is a write.
    """
    if method != AgentMethod.CLICK:
        return False
    if element is None:
        return True
    if element.tag == "a" and element.href and not element.form_method:
        return False
    return not (element.tag == "button" and element.type == "button" and not element.form_method)


def needs_step_approval(level: AutonomyLevel, write: bool) -> bool:
    """Return whether a model-planned step waits for a person: every write below L4."""
    return write and level.rank < AutonomyLevel.L4.rank


@dataclass(frozen=True)
class Spend:
    """What model calls cost: calls, tokens in and out, US dollars."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        """Return the tokens in and out together."""
        return self.input_tokens + self.output_tokens

    def plus(self, other: Spend) -> Spend:
        """Return the sum of two spends."""
        return Spend(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            round(self.cost_usd + other.cost_usd, 6),
        )

    def to_dict(self) -> dict[str, float | int]:
        """Return the JSON form ``op show`` gives."""
        return {
            "model_calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


def call_cost(
    input_tokens: int, output_tokens: int, input_usd_per_mtok: float, output_usd_per_mtok: float
) -> Spend:
    """Return one model call's spend at the configured prices (per million tokens)."""
    cost = (input_tokens * input_usd_per_mtok + output_tokens * output_usd_per_mtok) / 1e6
    return Spend(1, input_tokens, output_tokens, round(cost, 6))


@dataclass(frozen=True)
class Limits:
    """Agent mode's budgets (``[llm] agent_*``)."""

    max_steps: int = 30
    max_tokens_per_operation: int = 200_000
    max_cost_per_operation_usd: float = 2.0
    max_tokens_per_day: int = 2_000_000
    max_cost_per_day_usd: float = 20.0
    max_wall_s: float = 600.0


class BudgetReason(StrEnum):
    """Which budget ended an operation (its end reason)."""

    STEPS = "step_budget"
    TOKENS = "token_budget"
    COST = "cost_budget"
    DAY_TOKENS = "daily_token_budget"
    DAY_COST = "daily_cost_budget"
    WALL_CLOCK = "wall_clock_limit"


@dataclass(frozen=True)
class BudgetStop:
    """A budget reached: the reason and a sentence for a person."""

    reason: BudgetReason
    message: str


def budget_stop(
    limits: Limits, *, steps: int, spent: Spend, day: Spend, elapsed_s: float
) -> BudgetStop | None:
    """Return the budget that forbids another model call, if one does.

    ``steps``: the commands planned so far; ``spent``: this operation's spend;
    ``day``: today's spend of every operation (this one's included).
    """
    checks = (
        (steps >= limits.max_steps, BudgetReason.STEPS, f"{steps} steps of {limits.max_steps}"),
        (
            spent.tokens >= limits.max_tokens_per_operation,
            BudgetReason.TOKENS,
            f"{spent.tokens} tokens of {limits.max_tokens_per_operation} for the operation",
        ),
        (
            spent.cost_usd >= limits.max_cost_per_operation_usd,
            BudgetReason.COST,
            f"${spent.cost_usd:.4f} of ${limits.max_cost_per_operation_usd:g} for the operation",
        ),
        (
            day.tokens >= limits.max_tokens_per_day,
            BudgetReason.DAY_TOKENS,
            f"{day.tokens} tokens of {limits.max_tokens_per_day} today",
        ),
        (
            day.cost_usd >= limits.max_cost_per_day_usd,
            BudgetReason.DAY_COST,
            f"${day.cost_usd:.4f} of ${limits.max_cost_per_day_usd:g} today",
        ),
        (
            elapsed_s >= limits.max_wall_s,
            BudgetReason.WALL_CLOCK,
            f"{elapsed_s:.0f}s of {limits.max_wall_s:g}s",
        ),
    )
    for reached, reason, used in checks:
        if reached:
            return BudgetStop(reason, f"the {reason.value.replace('_', ' ')} is spent ({used})")
    return None


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _normalised(text: str) -> str:
    return " ".join(text.split())


def task_template(description: str) -> str | None:
    """Return the task a learned workflow does (its docstring after ``Task:``), or None."""
    first = description.strip()
    if not first.startswith(TASK_PREFIX):
        return None
    return _normalised(first.removeprefix(TASK_PREFIX))


def match_task(template: str, task: str) -> dict[str, str] | None:
    """Return the parameters that make ``template`` read as ``task``, or None.

    Whitespace runs count as one space; each ``{name}`` matches a non-empty
    text (the same text wherever the name repeats).
    """
    pattern, names, pos = "", [], 0
    template = _normalised(template)
    for m in _PARAM.finditer(template):
        pattern += re.escape(template[pos : m.start()])
        name = m.group(1)
        pattern += f"(?P={name})" if name in names else f"(?P<{name}>.+?)"
        names.append(name)
        pos = m.end()
    pattern += re.escape(template[pos:])
    found = re.fullmatch(pattern, _normalised(task), flags=re.DOTALL)
    return None if found is None else {k: v for k, v in found.groupdict().items()}
