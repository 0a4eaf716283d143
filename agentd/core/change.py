"""The shapes every executor shares: a step, a change plan, the intent it reads.

Pure. :mod:`agentd.core.executors` holds the registry; the executors of the
sales decisions live in :mod:`agentd.core.sales_executors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentd.errors import InvalidArgument

MAX_TEXT = 2000


@dataclass(frozen=True)
class Step:
    """One browser operation: a workflow and its parameters."""

    workflow: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangePlan:
    """What an executor will do for one intent.

    ``diff`` holds the snapshot fields the change sets and their new values;
    for a change that adds something (a note) it is the counter it bumps.
    """

    executor: str
    change: Step
    snapshot: Step | None
    diff: Mapping[str, Any]
    service: str | None = None  # the browser service its operations run on (None: the default)


@dataclass(frozen=True)
class IntentView:
    """The parts of an intent an executor reads."""

    intent_id: str
    account: str
    action_type: str
    diff: Mapping[str, Any]
    rationale: str = ""
    domain: str | None = None
    change_type: str | None = None


def diff_text(diff: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = diff.get(key, default)
    if value is None:
        raise InvalidArgument(f"the intent's diff needs {key!r}", details={"field": key})
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidArgument(f"diff field {key!r} must be text", details={"field": key})
    text = str(value).strip()
    if not text:
        raise InvalidArgument(f"diff field {key!r} must not be empty", details={"field": key})
    if len(text) > MAX_TEXT:
        raise InvalidArgument(f"diff field {key!r} is too long", details={"field": key})
    return text


def snapshot_count(values: Mapping[str, str], key: str) -> int:
    raw = values.get(key)
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"the snapshot's {key!r} is not a number: {raw!r}", details={"field": key}
        ) from None


def counter(name: str) -> Callable[[Mapping[str, str]], dict[str, Any]]:
    """Return a snapshot reader of one counter."""

    def read(values: Mapping[str, str]) -> dict[str, Any]:
        return {name: snapshot_count(values, name)}

    return read


#: ``undo(plan, before, after, result, hard)``: the operation that takes a change back.
Undo = Callable[
    [ChangePlan, Mapping[str, Any], Mapping[str, Any], Mapping[str, str], bool], Step | None
]


@dataclass(frozen=True)
class Executor:
    """One kind of change (see the module table).

    ``plan`` validates the intent (raising :class:`InvalidArgument` with the
    missing or bad field) and returns the plan; ``finish`` completes it from
    the before snapshot (raising :class:`InvalidArgument` with a ``reason``
    when there is nothing to do it with: the execution is refused); ``read`` turns a snapshot
    operation's extracted values into the snapshot; ``expected`` says what the
    snapshot should look like after the change; ``undo`` returns the operation
    that takes the change back (``hard``: restore the whole before snapshot,
    else only the diffed fields), or None when there is none.
    """

    name: str
    plan: Callable[[IntentView, datetime], ChangePlan]
    read: Callable[[Mapping[str, str]], dict[str, Any]]
    expected: Callable[[Mapping[str, Any], ChangePlan], dict[str, Any]]
    undo: Undo
    finish: Callable[[ChangePlan, Mapping[str, Any]], ChangePlan] | None = None
    # An undo workflow takes the change back (else a rollback escalates to a person).
    reversible: bool = False
    # The after snapshot's "stage" is the account's deal stage: agentd keeps it.
    syncs_stage: bool = False
    like: str | None = None  # the shipped executor it was derived from (a custom one)


def bump(name: str) -> Callable[[Mapping[str, Any], ChangePlan], dict[str, Any]]:
    """Return the expectation that one counter went up by one."""

    def expected(before: Mapping[str, Any], plan: ChangePlan) -> dict[str, Any]:
        return {name: int(before[name]) + 1}

    return expected


def restored_fields(
    fields: tuple[str, ...],
    plan: ChangePlan,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    hard: bool,
) -> dict[str, str]:
    """Return the values an undo writes back to a form of ``fields``.

    Every field keeps its value after the change, except those taken back to
    the before snapshot: all of them when ``hard``, else only those the change set.
    """
    restored = fields if hard else tuple(f for f in fields if f in plan.diff)
    values = {f: str(after.get(f, "")) for f in fields}
    values.update({f: str(before.get(f, "")) for f in restored})
    return values


def undo_by_result(workflow: str, key: str, *, account: bool = True) -> Undo:
    """Return the undo that takes back what the change made, named by ``key`` in its result.

    The undo workflow gets that id (and the account, unless ``account`` is
    false); a change whose result lacks the id has nothing to take back.
    """

    def undo(
        plan: ChangePlan,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        result: Mapping[str, str],
        hard: bool,
    ) -> Step | None:
        made = result.get(key)
        if not made:
            return None
        params = {"account": plan.change.params["account"]} if account else {}
        return Step(workflow, {**params, key: made})

    return undo


def no_undo(*_: Any) -> Step | None:
    """Return no undo step: the change cannot be taken back by a workflow."""
    return None
