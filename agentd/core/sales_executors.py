"""Executors of the sales decisions, as workflows of the demo back-office's CRM.

Registered into :data:`agentd.core.executors.EXECUTORS` (see that module's
table for the shared ones), with :func:`note_undo` and :func:`meeting_undo`
that make notes and meetings undoable. Each reads the account record
(``read_account_record``) before and after its change:

====================  ===========================  ===============================
executor              change workflow              undo
====================  ===========================  ===============================
quote                 send_quote                   withdraw_quote
templated_message     send_templated_message       none: a sent message stays sent
minutes               share_meeting_minutes        none: a sent message stays sent
deal_stage            change_deal_stage            change_deal_stage (old stage)
qualification         record_qualification         record_qualification (old values)
account_plan          edit_account_plan            edit_account_plan (old plan)
escalation            escalate_to_manager          none: the manager was told
briefing              add_note (the briefing)      delete_note
====================  ===========================  ===============================

Some plans are finished from the before snapshot (``finish``): the message's
recipient, the stage to move to, the meeting whose minutes are shared. A
finish that finds nothing to do it with (no C-level contact, no recorded
meeting, a stage move the action type does not allow) raises
:class:`InvalidArgument` with a reason code: the execution is refused and
nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from agentd.core.change import (
    ChangePlan,
    Executor,
    IntentView,
    Step,
    no_undo,
    restored_fields,
    undo_by_result,
)
from agentd.core.change import bump as _bump
from agentd.core.change import counter as _counter
from agentd.core.change import diff_text as _text
from agentd.core.change import snapshot_count as _count
from agentd.errors import InvalidArgument

RECORD = "read_account_record"
STAGES = (
    "prospect",
    "qualification",
    "discovery",
    "evaluation",
    "negotiation",
    "closed_won",
    "closed_lost",
)
#: Where each stage-moving action type may take a deal: (from stages, to stages).
STAGE_MOVES: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    "progress_early_stage": (
        frozenset({"prospect", "qualification", "discovery"}),
        frozenset({"qualification", "discovery", "evaluation"}),
    ),
    "progress_past_evaluation": (
        frozenset({"evaluation", "negotiation"}),
        frozenset({"negotiation", "closed_won", "closed_lost"}),
    ),
}
QUALIFICATION_FIELDS = ("budget", "authority", "need", "timeline")
QUOTE_LINES = 3
VALIDITY_DAYS = ("7", "14", "30", "60", "90")

#: Each message action type's own template: (CRM template, subject, body, recipient).
TEMPLATES: Mapping[str, tuple[str, str, str, str]] = {
    "discuss_pricing": (
        "pricing_discussion",
        "Pricing options",
        "Hello,\n\nCould we find half an hour to go through the pricing options that fit"
        " your plans? I am happy to prepare them for you.\n",
        "contact",
    ),
    "negotiate_terms": (
        "terms_negotiation",
        "Terms",
        "Hello,\n\nThank you for your comments on the terms. Could we discuss them this"
        " week to agree on a version that works for both of us?\n",
        "contact",
    ),
    "contact_c_suite": (
        "executive_introduction",
        "An introduction",
        "Hello,\n\nYour team has been working with us for a while. Would you have a few"
        " minutes to hear how it is going from our side, and what we could do better?\n",
        "c_suite",
    ),
}
_GENERAL = ("general", "A message from us", "", "contact")


def _record(values: Mapping[str, str], *names: str) -> dict[str, Any]:
    missing = [n for n in names if n not in values]
    if missing:
        raise InvalidArgument(f"the snapshot lacks {missing[0]!r}", details={"field": missing[0]})
    return {n: values[n] for n in names}


def _snapshot(intent: IntentView) -> Step:
    return Step(RECORD, {"account": intent.account})


def _refuse(reason: str, message: str, field: str) -> InvalidArgument:
    return InvalidArgument(message, details={"reason": reason, "field": field})


def _with(plan: ChangePlan, diff: Mapping[str, Any] | None = None, **params: str) -> ChangePlan:
    merged = {**plan.change.params, **params}
    return replace(
        plan, change=Step(plan.change.workflow, merged), diff=plan.diff if diff is None else diff
    )


# -- quote: send_proposal ---------------------------------------------------------------------


def _quote(intent: IntentView, now: datetime) -> ChangePlan:
    lines = intent.diff.get("lines")
    if lines is None and "amount" in intent.diff:
        lines = [
            {
                "description": intent.diff.get("description", "Proposal as discussed"),
                "quantity": 1,
                "unit_price": intent.diff["amount"],
            }
        ]
    if not isinstance(lines, list) or not 1 <= len(lines) <= QUOTE_LINES:
        raise InvalidArgument(
            f"a proposal needs 'lines': 1 to {QUOTE_LINES} of description, quantity, "
            "unit_price (or an 'amount')",
            details={"field": "lines"},
        )
    params = {"account": intent.account}
    for n in range(1, QUOTE_LINES + 1):
        line = lines[n - 1] if n <= len(lines) else None
        if line is None:
            params.update({f"description_{n}": "", f"quantity_{n}": "", f"price_{n}": ""})
            continue
        if not isinstance(line, Mapping):
            raise InvalidArgument(f"lines[{n - 1}] must be an object", details={"field": "lines"})
        params[f"description_{n}"] = _text(line, "description")
        quantity = _text(line, "quantity", "1")
        if not quantity.isdigit() or int(quantity) < 1:
            raise InvalidArgument(
                f"lines[{n - 1}].quantity {quantity!r} is not a whole number of at least 1",
                details={"field": "lines"},
            )
        price = _text(line, "unit_price")
        try:
            float(price)
        except ValueError:
            raise InvalidArgument(
                f"lines[{n - 1}].unit_price {price!r} is not a number", details={"field": "lines"}
            ) from None
        params[f"quantity_{n}"], params[f"price_{n}"] = quantity, price
    valid = _text(intent.diff, "valid_days", "30")
    if valid not in VALIDITY_DAYS:
        raise InvalidArgument(
            f"valid_days {valid!r} is not one of {', '.join(VALIDITY_DAYS)}",
            details={"field": "valid_days"},
        )
    params["valid_days"] = valid
    return ChangePlan("quote", Step("send_quote", params), _snapshot(intent), {"open_quotes": "+1"})


_quote_undo = undo_by_result("withdraw_quote", "quote_id", account=False)


# -- messages from their own templates ------------------------------------------------------------


def _templated(intent: IntentView, now: datetime) -> ChangePlan:
    template, subject, body, recipient = TEMPLATES.get(intent.action_type, _GENERAL)
    params = {
        "account": intent.account,
        "template": template,
        "subject": _text(intent.diff, "subject", subject),
        "body": _text(intent.diff, "body", body or intent.rationale or None),
        "recipient": recipient,
    }
    return ChangePlan(
        "templated_message",
        Step("send_templated_message", params),
        _snapshot(intent),
        {"message_count": "+1"},
    )


def _recipient_finish(plan: ChangePlan, before: Mapping[str, Any]) -> ChangePlan:
    params = dict(plan.change.params)
    # Parameters stay (a workflow ignores those it does not use): finishing twice,
    # as after a crash, gives the same plan.
    if params.get("recipient", "contact") == "c_suite":
        to = str(before.get("c_suite_email") or "")
        if not to:
            raise _refuse(
                "NO_C_LEVEL_CONTACT",
                f"account {params['account']} has no contact with a C-level role",
                "to",
            )
    else:
        to = str(before.get("contact_email") or "")
    return replace(plan, change=Step(plan.change.workflow, {**params, "to": to}))


def _message_read(values: Mapping[str, str]) -> dict[str, Any]:
    out = _record(values, "contact_email", "c_suite_email")
    out["message_count"] = _count(values, "message_count")
    return out


def _minutes(intent: IntentView, now: datetime) -> ChangePlan:
    meeting = intent.diff.get("meeting_id")
    params = {
        "account": intent.account,
        "meeting_id": "" if meeting is None else _text(intent.diff, "meeting_id"),
        "subject": _text(intent.diff, "subject", "Minutes of our meeting"),
        "body": _text(
            intent.diff,
            "body",
            "Hello,\n\nThank you for your time. The minutes of our meeting are attached.\n",
        ),
        "recipient": "contact",
    }
    return ChangePlan(
        "minutes",
        Step("share_meeting_minutes", params),
        _snapshot(intent),
        {"message_count": "+1"},
    )


def _minutes_read(values: Mapping[str, str]) -> dict[str, Any]:
    return {**_message_read(values), **_record(values, "latest_minutes")}


def _minutes_finish(plan: ChangePlan, before: Mapping[str, Any]) -> ChangePlan:
    finished = _recipient_finish(plan, before)
    meeting = finished.change.params.get("meeting_id") or str(before.get("latest_minutes") or "")
    if not meeting:
        raise _refuse(
            "NO_RECORDED_MEETING",
            f"account {plan.change.params['account']} has no meeting with recorded minutes",
            "meeting_id",
        )
    return _with(finished, meeting_id=meeting)


# -- deal stage ----------------------------------------------------------------------------------


def _stage(intent: IntentView, now: datetime) -> ChangePlan:
    target = intent.diff.get("stage")
    if target is not None and target not in STAGES:
        raise InvalidArgument(
            f"stage {target!r} is not one of {', '.join(STAGES)}", details={"field": "stage"}
        )
    params = {"account": intent.account, "stage": target or "", "moved_by": intent.action_type}
    # The stage to reach is known once the current one is read (finish).
    return ChangePlan("deal_stage", Step("change_deal_stage", params), _snapshot(intent), {})


def _stage_finish(plan: ChangePlan, before: Mapping[str, Any]) -> ChangePlan:
    params = dict(plan.change.params)
    action = params.get("moved_by", "")
    current = str(before.get("stage", ""))
    target = params.get("stage") or ""
    if not target and current in STAGES[:-2]:
        target = STAGES[STAGES.index(current) + 1]
    sources, targets = STAGE_MOVES.get(action, (frozenset(STAGES), frozenset(STAGES)))
    allowed = (
        target in STAGES
        and target != current
        and current in sources
        and target in targets
        and (
            target in ("closed_won", "closed_lost") or STAGES.index(target) > STAGES.index(current)
        )
    )
    if not allowed:
        raise _refuse(
            "STAGE_NOT_ALLOWED",
            f"{action or 'a stage change'} cannot move {params['account']} from {current!r}"
            f" to {target or 'a next stage'!r}",
            "stage",
        )
    params["stage"] = target
    return replace(plan, change=Step(plan.change.workflow, params), diff={"stage": target})


def _stage_expected(before: Mapping[str, Any], plan: ChangePlan) -> dict[str, Any]:
    return {"stage": plan.diff.get("stage")}


def _stage_undo(
    plan: ChangePlan,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    result: Mapping[str, str],
    hard: bool,
) -> Step | None:
    stage = before.get("stage")
    account = plan.change.params["account"]
    return Step("change_deal_stage", {"account": account, "stage": stage}) if stage else None


# -- qualification and account plan -----------------------------------------------------------


def _qualification(intent: IntentView, now: datetime) -> ChangePlan:
    diff = {f: _text(intent.diff, f) for f in QUALIFICATION_FIELDS if f in intent.diff}
    if not diff:
        if not intent.rationale:
            raise InvalidArgument(
                "a qualification needs budget, authority, need or timeline in its diff",
                details={"field": "need"},
            )
        diff = {"need": _text({"need": intent.rationale}, "need")[:300]}
    params = {"account": intent.account, **diff}
    return ChangePlan(
        "qualification", Step("record_qualification", params), _snapshot(intent), diff
    )


def _fill_from(fields: tuple[str, ...]) -> Any:
    def finish(plan: ChangePlan, before: Mapping[str, Any]) -> ChangePlan:
        params = dict(plan.change.params)
        for f in fields:
            params.setdefault(f, str(before.get(f, "")))
        return replace(plan, change=Step(plan.change.workflow, params))

    return finish


def _fields_expected(fields: tuple[str, ...]) -> Any:
    def expected(before: Mapping[str, Any], plan: ChangePlan) -> dict[str, Any]:
        return {**{f: before.get(f) for f in fields}, **plan.diff}

    return expected


def _restore(workflow: str, fields: tuple[str, ...]) -> Any:
    def undo(
        plan: ChangePlan,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        result: Mapping[str, str],
        hard: bool,
    ) -> Step | None:
        params = restored_fields(fields, plan, before, after, hard)
        return Step(workflow, {"account": plan.change.params["account"], **params})

    return undo


def _account_plan(intent: IntentView, now: datetime) -> ChangePlan:
    text = _text(intent.diff, "plan")
    params = {"account": intent.account, "plan": text}
    return ChangePlan(
        "account_plan", Step("edit_account_plan", params), _snapshot(intent), {"plan": text}
    )


# -- escalation and briefing -------------------------------------------------------------------


def _escalation(intent: IntentView, now: datetime) -> ChangePlan:
    params = {
        "account": intent.account,
        "title": _text(intent.diff, "subject", f"Escalation: account {intent.account}")[:200],
        "details": _text(intent.diff, "body", intent.rationale or None),
    }
    return ChangePlan(
        "escalation", Step("escalate_to_manager", params), _snapshot(intent), {"task_count": "+1"}
    )


#: The note text until the engine writes the briefing (see the execution engine).
BRIEFING_PENDING = "(briefing being written)"


def _briefing(intent: IntentView, now: datetime) -> ChangePlan:
    params = {"account": intent.account, "note": BRIEFING_PENDING}
    return ChangePlan("briefing", Step("add_note", params), _snapshot(intent), {"note_count": "+1"})


#: Deletes the note the change added.
note_undo = undo_by_result("delete_note", "note_id")


#: Cancels the meeting the change booked.
meeting_undo = undo_by_result("cancel_meeting", "meeting_id")


SALES_EXECUTORS: dict[str, Executor] = {
    "quote": Executor(
        "quote",
        _quote,
        _counter("open_quotes"),
        _bump("open_quotes"),
        _quote_undo,
        reversible=True,
    ),
    "templated_message": Executor(
        "templated_message",
        _templated,
        _message_read,
        _bump("message_count"),
        no_undo,
        finish=_recipient_finish,
    ),
    "minutes": Executor(
        "minutes", _minutes, _minutes_read, _bump("message_count"), no_undo, finish=_minutes_finish
    ),
    "deal_stage": Executor(
        "deal_stage",
        _stage,
        lambda values: _record(values, "stage"),
        _stage_expected,
        _stage_undo,
        finish=_stage_finish,
        reversible=True,
        syncs_stage=True,
    ),
    "qualification": Executor(
        "qualification",
        _qualification,
        lambda values: _record(values, *QUALIFICATION_FIELDS),
        _fields_expected(QUALIFICATION_FIELDS),
        _restore("record_qualification", QUALIFICATION_FIELDS),
        finish=_fill_from(QUALIFICATION_FIELDS),
        reversible=True,
    ),
    "account_plan": Executor(
        "account_plan",
        _account_plan,
        lambda values: _record(values, "plan"),
        _fields_expected(("plan",)),
        _restore("edit_account_plan", ("plan",)),
        reversible=True,
    ),
    "escalation": Executor(
        "escalation", _escalation, _counter("task_count"), _bump("task_count"), no_undo
    ),
    "briefing": Executor(
        "briefing",
        _briefing,
        _counter("note_count"),
        _bump("note_count"),
        note_undo,
        reversible=True,
    ),
}
#: The workflows each runs (change, snapshot, undo): what a custom executor may rename.
SALES_WORKFLOWS: Mapping[str, tuple[str, ...]] = {
    "quote": ("send_quote", RECORD, "withdraw_quote"),
    "templated_message": ("send_templated_message", RECORD),
    "minutes": ("share_meeting_minutes", RECORD),
    "deal_stage": ("change_deal_stage", RECORD),
    "qualification": ("record_qualification", RECORD),
    "account_plan": ("edit_account_plan", RECORD),
    "escalation": ("escalate_to_manager", RECORD),
    "briefing": ("add_note", RECORD, "delete_note"),
}
#: The shipped mapping of the sales action types.
SALES_DEFAULTS: Mapping[str, str] = {
    "send_proposal": "quote",
    "discuss_pricing": "templated_message",
    "negotiate_terms": "templated_message",
    "contact_c_suite": "templated_message",
    "share_minutes_externally": "minutes",
    "progress_early_stage": "deal_stage",
    "progress_past_evaluation": "deal_stage",
    "qualify_conversation": "qualification",
    "modify_account_plan": "account_plan",
    "escalate_to_management": "escalation",
    "create_briefing": "briefing",
}
