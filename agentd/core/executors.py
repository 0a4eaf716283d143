"""Executors: how an approved intent becomes browser operations, and how it is undone.

An executor turns an intent into a :class:`ChangePlan` — the workflow that
makes the change, the read-only workflow that snapshots what it will change,
and the fields meant to change — and knows how to undo its change from the
snapshots. Pure: the execution engine runs the operations.

Shipped executors (workflows of the demo back-office):

=============  =========================  =====================  ==========================
executor       change workflow            snapshot workflow      undo
=============  =========================  =====================  ==========================
message        send_follow_up_message     read_account_activity  none: a sent message stays sent
meeting        schedule_meeting           read_account_activity  cancel_meeting
note           add_note                   read_account_activity  delete_note
product_seo    product_seo_update         read_product_seo       product_seo_update (old values)
api_key        api_key_generation         none (nothing to read) api_key_revocation
handoff        none: a person does it     none                   none
=============  =========================  =====================  ==========================

The sales decisions' executors (quote, templated_message, minutes,
deal_stage, qualification, account_plan, escalation, briefing) are in
:mod:`agentd.core.sales_executors`, with their table. :data:`DEFAULT_EXECUTORS`
maps every action type that is not a hard stop to one of them.

``handoff`` is the executor for what the agent should not or cannot do itself:
the execution engine delivers exactly what was approved to a person (or
another system) by notification, and that person closes it as done or failed.
An operator maps action types to it, and may name it the default for action
types nothing else is mapped to.

A change without an undo workflow can still be "rolled back" in the sense of
SPEC §6: the rollback escalates (an incident, a notification, nothing changed
automatically), because only a person can take back a sent message.

Another back-office: :func:`derive` makes an executor that works like a
shipped one on that back-office's own workflows (same parameters and results,
other names) and browser service, e.g. ``product_seo`` on a real store's
dashboard (``[execution.custom_executors.NAME]``). Every shipped executor but
``handoff`` can be derived from (:data:`WORKFLOWS` lists the workflows each
runs); a derived executor is reversible exactly when the one it is like is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any

from agentd.core.change import (
    MAX_TEXT,
    ChangePlan,
    Executor,
    IntentView,
    Step,
    counter,
    no_undo,
    restored_fields,
    snapshot_count,
    undo_by_result,
)
from agentd.core.change import bump as _bump
from agentd.core.change import diff_text as _text
from agentd.core.sales_executors import (
    SALES_DEFAULTS,
    SALES_EXECUTORS,
    SALES_WORKFLOWS,
    meeting_undo,
    note_undo,
)
from agentd.errors import InvalidArgument

__all__ = [
    "DEFAULT_EXECUTORS",
    "EXECUTORS",
    "HANDOFF",
    "MAX_TEXT",
    "REVERSIBLE",
    "WORKFLOWS",
    "ChangePlan",
    "Executor",
    "IntentView",
    "Step",
    "derive",
    "executor_for",
    "matches",
    "next_business_day",
    "plan_change",
    "resolve_executor",
    "snapshot_count",
    "target_state",
]
_activity = counter
_no_undo = no_undo


# -- message, meeting, note ----------------------------------------------------------------


def _message(intent: IntentView, now: datetime) -> ChangePlan:
    subject = _text(intent.diff, "subject", "Following up")
    body = _text(intent.diff, "body", intent.rationale or None)
    params = {"account": intent.account, "subject": subject, "body": body}
    snapshot = Step("read_account_activity", {"account": intent.account})
    return ChangePlan(
        "message", Step("send_follow_up_message", params), snapshot, {"message_count": "+1"}
    )


MEETING_DURATIONS = ("15", "30", "45", "60", "90")


def next_business_day(now: datetime) -> date:
    """Return the first Monday-to-Friday day after ``now``'s date."""
    day = now.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _meeting(intent: IntentView, now: datetime) -> ChangePlan:
    title = _text(intent.diff, "title", "Follow-up meeting")
    day = _text(intent.diff, "date", next_business_day(now).isoformat())
    try:
        if date.fromisoformat(day) < now.date():
            raise InvalidArgument(f"meeting date {day} is in the past", details={"field": "date"})
    except ValueError:
        raise InvalidArgument(
            f"meeting date {day!r} is not YYYY-MM-DD", details={"field": "date"}
        ) from None
    at = _text(intent.diff, "time", "10:00")
    duration = _text(intent.diff, "duration", "30")
    if duration not in MEETING_DURATIONS:
        raise InvalidArgument(
            f"meeting duration {duration!r} is not one of {', '.join(MEETING_DURATIONS)} minutes",
            details={"field": "duration"},
        )
    params = {
        "account": intent.account,
        "title": title,
        "date": day,
        "time": at,
        "duration": duration,
    }
    snapshot = Step("read_account_activity", {"account": intent.account})
    return ChangePlan(
        "meeting", Step("schedule_meeting", params), snapshot, {"meeting_count": "+1"}
    )


def _note(intent: IntentView, now: datetime) -> ChangePlan:
    note = _text(intent.diff, "note", intent.rationale or None)
    snapshot = Step("read_account_activity", {"account": intent.account})
    params = {"account": intent.account, "note": note}
    return ChangePlan("note", Step("add_note", params), snapshot, {"note_count": "+1"})


# -- product SEO ---------------------------------------------------------------------------

SEO_FIELDS = ("seo_title", "meta_description")


def _seo(intent: IntentView, now: datetime) -> ChangePlan:
    product = _text(intent.diff, "product_id")
    if not product.isdigit():
        raise InvalidArgument(
            f"product_id {product!r} is not a number", details={"field": "product_id"}
        )
    diff = {f: _text(intent.diff, f) for f in SEO_FIELDS if f in intent.diff}
    if not diff:
        raise InvalidArgument(
            "an SEO change needs seo_title or meta_description in its diff",
            details={"field": "seo_title"},
        )
    # The unchanged field is filled from the before snapshot by ``_seo_finish``.
    change = Step("product_seo_update", {"product_id": product, **diff})
    return ChangePlan(
        "product_seo", change, Step("read_product_seo", {"product_id": product}), diff
    )


def _seo_finish(plan: ChangePlan, before: Mapping[str, Any]) -> ChangePlan:
    params = dict(plan.change.params)
    for f in SEO_FIELDS:
        params.setdefault(f, str(before.get(f, "")))
    return replace(plan, change=Step(plan.change.workflow, params))


def _seo_read(values: Mapping[str, str]) -> dict[str, Any]:
    missing = [f for f in SEO_FIELDS if f not in values]
    if missing:
        raise InvalidArgument(f"the snapshot lacks {missing[0]!r}", details={"field": missing[0]})
    return {f: values[f] for f in SEO_FIELDS}


def _seo_expected(before: Mapping[str, Any], plan: ChangePlan) -> dict[str, Any]:
    return {**{f: before.get(f) for f in SEO_FIELDS}, **plan.diff}


def _seo_undo(
    plan: ChangePlan,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    result: Mapping[str, str],
    hard: bool,
) -> Step | None:
    params = restored_fields(SEO_FIELDS, plan, before, after, hard)
    return Step("product_seo_update", {"product_id": plan.change.params["product_id"], **params})


# -- API keys ------------------------------------------------------------------------------

KEY_PERMISSIONS = ("read", "write", "read_write")


def _api_key(intent: IntentView, now: datetime) -> ChangePlan:
    description = _text(intent.diff, "description", f"agentd {intent.intent_id}")
    permissions = _text(intent.diff, "permissions", "read")
    if permissions not in KEY_PERMISSIONS:
        raise InvalidArgument(
            f"permissions {permissions!r} is not one of {', '.join(KEY_PERMISSIONS)}",
            details={"field": "permissions"},
        )
    change = Step("api_key_generation", {"description": description, "permissions": permissions})
    return ChangePlan("api_key", change, None, {"key_id": "new"})


_api_key_undo = undo_by_result("api_key_revocation", "key_id", account=False)


# -- hand-off ------------------------------------------------------------------------------

HANDOFF = "handoff"


def _handoff(intent: IntentView, now: datetime) -> ChangePlan:
    # Nothing to validate: the person who takes it over reads the approved content.
    return ChangePlan(HANDOFF, Step(HANDOFF, {"account": intent.account}), None, {})


EXECUTORS: dict[str, Executor] = {
    "message": Executor(
        "message", _message, _activity("message_count"), _bump("message_count"), _no_undo
    ),
    "meeting": Executor(
        "meeting",
        _meeting,
        _activity("meeting_count"),
        _bump("meeting_count"),
        meeting_undo,
        reversible=True,
    ),
    "note": Executor(
        "note", _note, _activity("note_count"), _bump("note_count"), note_undo, reversible=True
    ),
    "product_seo": Executor(
        "product_seo",
        _seo,
        _seo_read,
        _seo_expected,
        _seo_undo,
        finish=_seo_finish,
        reversible=True,
    ),
    "api_key": Executor(
        "api_key", _api_key, lambda _v: {}, lambda _b, _p: {}, _api_key_undo, reversible=True
    ),
    HANDOFF: Executor(HANDOFF, _handoff, lambda _v: {}, lambda _b, _p: {}, _no_undo),
    **SALES_EXECUTORS,
}
REVERSIBLE = frozenset(name for name, executor in EXECUTORS.items() if executor.reversible)

#: What carries out each kind of change, by action type or by "DOMAIN.change_type"
#: (the domain/change-type key wins when an intent has both): ``[execution.executors]``.
DEFAULT_EXECUTORS: Mapping[str, str] = MappingProxyType(
    {
        "send_follow_up_email": "message",
        "send_routine_response": "message",
        "send_chat_message": "message",
        "schedule_meeting": "meeting",
        "update_account_context": "note",
        "log_interaction": "note",
        **SALES_DEFAULTS,
        "SEO.meta_update": "product_seo",
        "API.api_key_setup": "api_key",
        # The planner's proposals for a revenue goal name no prices: a person drafts
        # the quote from what was approved (see agentd.core.planning).
        "SALES.proposal_request": HANDOFF,
    }
)

#: The workflows each shipped executor runs (change, snapshot, undo): what
#: :func:`derive` may rename. Every executor but ``handoff`` (which runs none).
WORKFLOWS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "message": ("send_follow_up_message", "read_account_activity"),
        "meeting": ("schedule_meeting", "read_account_activity", "cancel_meeting"),
        "note": ("add_note", "read_account_activity", "delete_note"),
        "product_seo": ("product_seo_update", "read_product_seo"),
        "api_key": ("api_key_generation", "api_key_revocation"),
        **SALES_WORKFLOWS,
    }
)


def derive(
    name: str, like: str, workflows: Mapping[str, str], service: str | None = None
) -> Executor:
    """Return an executor that works like the shipped ``like`` on other workflows.

    ``workflows`` maps the shipped executor's workflow names to the ones to run
    instead (those not named keep theirs); they take the same parameters and
    extract the same results. ``service``: the browser service they run on.
    The derived executor is reversible exactly when ``like`` is.

    :raises InvalidArgument: ``like`` is not a shipped executor with workflows
        (``handoff`` has none), or a name in ``workflows`` is not one of its workflows.
    """
    base = EXECUTORS.get(like)
    if base is None or like not in WORKFLOWS:
        known = ", ".join(sorted(WORKFLOWS))
        raise InvalidArgument(f"executor {name!r}: like {like!r} is unknown (known: {known})")
    unknown = sorted(set(workflows) - set(WORKFLOWS[like]))
    if unknown:
        raise InvalidArgument(
            f"executor {name!r}: {', '.join(unknown)} is not a workflow of {like} "
            f"(its workflows: {', '.join(WORKFLOWS[like])})"
        )

    def rename(step: Step | None) -> Step | None:
        if step is None:
            return None
        return Step(workflows.get(step.workflow, step.workflow), step.params)

    def plan(intent: IntentView, now: datetime) -> ChangePlan:
        made = base.plan(intent, now)
        change = rename(made.change)
        assert change is not None
        return replace(
            made, executor=name, change=change, snapshot=rename(made.snapshot), service=service
        )

    def undo(
        plan: ChangePlan,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        result: Mapping[str, str],
        hard: bool,
    ) -> Step | None:
        return rename(base.undo(plan, before, after, result, hard))

    base_finish = base.finish

    def finish(plan: ChangePlan, before: Mapping[str, Any]) -> ChangePlan:
        assert base_finish is not None
        # The finished plan keeps this executor's name and service (its steps are
        # already renamed: a finish changes parameters, not workflows).
        return replace(base_finish(plan, before), executor=name, service=service)

    return replace(
        base,
        name=name,
        plan=plan,
        undo=undo,
        finish=None if base_finish is None else finish,
        like=like,
    )


def resolve_executor(
    mapping: Mapping[str, str],
    action_type: str,
    domain: str | None,
    change_type: str | None,
    default: str | None = None,
) -> tuple[str | None, str | None]:
    """Return the executor's name for an intent and the mapping key that chose it.

    ``DOMAIN.change_type`` first, then the action type, then ``default`` (key
    ``"*"``); ``(None, None)`` when nothing carries the intent out.
    """
    keys = [f"{domain.upper()}.{change_type}"] if domain and change_type else []
    for key in (*keys, action_type):
        name = mapping.get(key)
        if name is not None:
            return name, key
    if default is not None:
        return default, "*"
    return None, None


def executor_for(
    mapping: Mapping[str, str],
    action_type: str,
    domain: str | None,
    change_type: str | None,
    registry: Mapping[str, Executor] = EXECUTORS,
    *,
    default: str | None = None,
) -> Executor | None:
    """Return the executor configured for an intent (DOMAIN.change_type first), or None.

    ``registry``: every executor by name (the shipped ones and the custom ones,
    ``ExecutionConfig.registry()``); ``default``: the executor of unmapped types.
    """
    name, _ = resolve_executor(mapping, action_type, domain, change_type, default)
    return None if name is None else registry[name]


def plan_change(
    mapping: Mapping[str, str],
    intent: IntentView,
    now: datetime,
    registry: Mapping[str, Executor] = EXECUTORS,
    *,
    default: str | None = None,
) -> ChangePlan:
    """Return the plan for ``intent`` (``default``: the executor of unmapped types).

    :raises InvalidArgument: no executor for it (code ``NO_EXECUTOR`` in details)
        or a bad or missing diff field.
    """
    executor = executor_for(
        mapping, intent.action_type, intent.domain, intent.change_type, registry, default=default
    )
    if executor is None:
        what = intent.action_type
        if intent.domain and intent.change_type:
            what += f" ({intent.domain.upper()}.{intent.change_type})"
        raise InvalidArgument(
            f"no executor carries out {what}; map it under [execution.executors] "
            '(an executor, or "handoff" to hand it to a person)',
            details={"reason": "NO_EXECUTOR", "action_type": intent.action_type},
        )
    return executor.plan(intent, now)


def matches(current: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """Return whether every expected field has its expected value in ``current``."""
    return all(current.get(k) == v for k, v in expected.items())


def target_state(
    current: Mapping[str, Any], before: Mapping[str, Any], expected_after: Mapping[str, Any]
) -> str:
    """Say what state a target is in after a failed change: unchanged, applied, partial, unknown."""
    if not expected_after:
        return "unknown"
    if matches(current, expected_after):
        return "applied"
    changed = [k for k in expected_after if current.get(k) != before.get(k)]
    if not changed:
        return "unchanged"
    return "partial"
