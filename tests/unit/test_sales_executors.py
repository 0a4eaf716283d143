"""The sales decisions' executors: plans, finishing from the before snapshot, undo."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentd.core.executors import DEFAULT_EXECUTORS, EXECUTORS, IntentView, plan_change
from agentd.errors import InvalidArgument

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
RECORD = {
    "stage": "discovery",
    "contact_email": "contact@acme.example",
    "c_suite_email": "ceo@acme.example",
    "message_count": "2",
    "note_count": "1",
    "meeting_count": "0",
    "latest_minutes": "17",
    "open_quotes": "0",
    "task_count": "0",
    "budget": "10k",
    "authority": "",
    "need": "",
    "timeline": "",
    "plan": "Old plan",
}


def planned(action: str, diff: dict[str, Any], rationale: str = "because") -> Any:
    plan = plan_change(DEFAULT_EXECUTORS, IntentView("int_1", "acme", action, diff, rationale), NOW)
    executor = EXECUTORS[plan.executor]
    before = executor.read(RECORD)
    if executor.finish is not None:
        plan = executor.finish(plan, before)
    return executor, plan, before


def test_a_proposal_is_a_quote_of_up_to_three_lines() -> None:
    lines = [
        {"description": "Grinder", "quantity": 4, "unit_price": "129.00"},
        {"description": "Kettle", "quantity": "2", "unit_price": 59.5},
    ]
    quote, plan, before = planned("send_proposal", {"lines": lines, "valid_days": 14})
    assert plan.change.workflow == "send_quote" and before == {"open_quotes": 0}
    assert dict(plan.change.params) == {
        "account": "acme",
        "description_1": "Grinder",
        "quantity_1": "4",
        "price_1": "129.00",
        "description_2": "Kettle",
        "quantity_2": "2",
        "price_2": "59.5",
        "description_3": "",
        "quantity_3": "",
        "price_3": "",
        "valid_days": "14",
    }
    assert quote.expected(before, plan) == {"open_quotes": 1} and quote.reversible
    undo = quote.undo(plan, before, {"open_quotes": 1}, {"quote_id": "8"}, False)
    assert undo is not None and (undo.workflow, dict(undo.params)) == (
        "withdraw_quote",
        {"quote_id": "8"},
    )
    _, one, _ = planned("send_proposal", {"amount": "900"})
    assert one.change.params["description_1"] == "Proposal as discussed"


@pytest.mark.parametrize(
    ("diff", "field"),
    [
        ({}, "lines"),
        ({"lines": []}, "lines"),
        ({"lines": [{"description": "x", "unit_price": "1"}] * 4}, "lines"),
        ({"lines": [{"description": "x", "quantity": 0, "unit_price": "1"}]}, "lines"),
        ({"lines": [{"description": "x", "unit_price": "cheap"}]}, "lines"),
        ({"lines": [{"unit_price": "1"}]}, "description"),
        ({"lines": ["a line"]}, "lines"),
        ({"amount": 1, "valid_days": 45}, "valid_days"),
    ],
)
def test_a_bad_proposal_names_the_field(diff: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        planned("send_proposal", diff)
    assert info.value.details["field"] == field


@pytest.mark.parametrize(
    ("action", "template", "to"),
    [
        ("discuss_pricing", "pricing_discussion", "contact@acme.example"),
        ("negotiate_terms", "terms_negotiation", "contact@acme.example"),
        ("contact_c_suite", "executive_introduction", "ceo@acme.example"),
    ],
)
def test_messages_use_their_own_template_and_recipient(action: str, template: str, to: str) -> None:
    executor, plan, before = planned(action, {})
    params = dict(plan.change.params)
    assert (plan.change.workflow, params["template"], params["to"]) == (
        "send_templated_message",
        template,
        to,
    )
    assert params["subject"] and params["body"]
    assert executor.finish is not None and executor.finish(plan, before) == plan  # idempotent
    assert executor.expected(before, plan) == {"message_count": 3} and not executor.reversible


def test_no_c_level_contact_refuses_and_no_minutes_refuse() -> None:
    executor = EXECUTORS["templated_message"]
    plan = plan_change(
        DEFAULT_EXECUTORS, IntentView("i", "acme", "contact_c_suite", {}, "why"), NOW
    )
    assert executor.finish is not None
    with pytest.raises(InvalidArgument) as info:
        executor.finish(plan, executor.read({**RECORD, "c_suite_email": ""}))
    assert info.value.details["reason"] == "NO_C_LEVEL_CONTACT"
    minutes = EXECUTORS["minutes"]
    plan = plan_change(
        DEFAULT_EXECUTORS, IntentView("i", "acme", "share_minutes_externally", {}, "why"), NOW
    )
    assert minutes.finish is not None
    finished = minutes.finish(plan, minutes.read(RECORD))
    assert finished.change.params["meeting_id"] == "17"  # the latest recorded meeting
    with pytest.raises(InvalidArgument) as info:
        minutes.finish(plan, minutes.read({**RECORD, "latest_minutes": ""}))
    assert info.value.details["reason"] == "NO_RECORDED_MEETING"


@pytest.mark.parametrize(
    ("action", "current", "asked", "reached"),
    [
        ("progress_early_stage", "prospect", None, "qualification"),
        ("progress_early_stage", "discovery", None, "evaluation"),
        ("progress_early_stage", "qualification", "evaluation", "evaluation"),
        ("progress_early_stage", "evaluation", None, None),  # past the early stages
        ("progress_early_stage", "discovery", "negotiation", None),
        ("progress_early_stage", "discovery", "prospect", None),  # never backwards
        ("progress_past_evaluation", "evaluation", None, "negotiation"),
        ("progress_past_evaluation", "negotiation", "closed_won", "closed_won"),
        ("progress_past_evaluation", "discovery", None, None),
        ("progress_past_evaluation", "negotiation", "negotiation", None),
    ],
)
def test_stage_moves(action: str, current: str, asked: str | None, reached: str | None) -> None:
    stage = EXECUTORS["deal_stage"]
    diff = {"stage": asked} if asked else {}
    plan = plan_change(DEFAULT_EXECUTORS, IntentView("i", "acme", action, diff, "why"), NOW)
    before = stage.read({**RECORD, "stage": current})
    assert stage.finish is not None
    if reached is None:
        with pytest.raises(InvalidArgument) as info:
            stage.finish(plan, before)
        assert info.value.details["reason"] == "STAGE_NOT_ALLOWED"
        return
    plan = stage.finish(plan, before)
    assert (plan.change.params["stage"], plan.change.params["moved_by"]) == (reached, action)
    assert stage.finish(plan, before) == plan
    assert plan.diff == {"stage": reached} and stage.expected(before, plan) == {"stage": reached}
    undo = stage.undo(plan, before, {"stage": reached}, {}, False)
    assert undo is not None and dict(undo.params) == {"account": "acme", "stage": current}
    assert stage.syncs_stage and stage.reversible


def test_qualification_fills_and_restores_the_other_fields() -> None:
    qual, plan, before = planned("qualify_conversation", {"need": "Replace spreadsheets"})
    assert dict(plan.change.params) == {
        "account": "acme",
        "need": "Replace spreadsheets",
        "budget": "10k",
        "authority": "",
        "timeline": "",
    }
    after = {**before, "need": "Replace spreadsheets", "budget": "12k"}
    soft = qual.undo(plan, before, after, {}, False)
    hard = qual.undo(plan, before, after, {}, True)
    assert soft is not None and hard is not None
    assert (soft.params["need"], soft.params["budget"]) == ("", "12k")
    assert (hard.params["need"], hard.params["budget"]) == ("", "10k")
    _, from_rationale, _ = planned("qualify_conversation", {}, rationale="asked for a pilot")
    assert from_rationale.diff == {"need": "asked for a pilot"}


def test_plan_escalation_and_briefing() -> None:
    plan_exe, plan, before = planned("modify_account_plan", {"plan": "New plan"})
    assert plan_exe.expected(before, plan) == {"plan": "New plan"}
    undo = plan_exe.undo(plan, before, {"plan": "New plan"}, {}, False)
    assert undo is not None and dict(undo.params) == {"account": "acme", "plan": "Old plan"}
    with pytest.raises(InvalidArgument):
        planned("modify_account_plan", {})
    esc, plan, before = planned("escalate_to_management", {"subject": "Critical risk"})
    assert (plan.change.workflow, plan.change.params["title"]) == (
        "escalate_to_manager",
        "Critical risk",
    )
    assert plan.change.params["details"] == "because" and esc.expected(before, plan) == {
        "task_count": 1
    }
    brief, plan, before = planned("create_briefing", {})
    assert (plan.change.workflow, brief.expected(before, plan)) == ("add_note", {"note_count": 2})
    assert brief.reversible
