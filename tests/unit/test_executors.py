"""The executor registry: plans, validation, snapshots and undo steps, as plain tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentd.core.executors import (
    EXECUTORS,
    WORKFLOWS,
    IntentView,
    derive,
    next_business_day,
    plan_change,
    target_state,
)
from agentd.core.guardrails import GuardrailPolicy
from agentd.errors import InvalidArgument
from agentd.exec_config import DEFAULT_EXECUTORS, ExecutionConfig

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # a Friday


def intent(
    action: str, diff: dict, domain: str | None = None, change: str | None = None
) -> IntentView:
    return IntentView("int_1", "acme", action, diff, "because", domain, change)


@pytest.mark.parametrize(
    ("action", "domain", "change", "executor", "workflow"),
    [
        ("send_follow_up_email", None, None, "message", "send_follow_up_message"),
        ("schedule_meeting", None, None, "meeting", "schedule_meeting"),
        ("log_interaction", None, None, "note", "add_note"),
        ("update_account_context", None, None, "note", "add_note"),
        ("update_account_context", "seo", "meta_update", "product_seo", "product_seo_update"),
        ("anything", "API", "api_key_setup", "api_key", "api_key_generation"),
    ],
)
def test_default_mapping(
    action: str, domain: str | None, change: str | None, executor: str, workflow: str
) -> None:
    diff = {"product_id": "101", "seo_title": "T", "note": "n"}
    plan = plan_change(DEFAULT_EXECUTORS, intent(action, diff, domain, change), NOW)
    assert (plan.executor, plan.change.workflow) == (executor, workflow)


def test_defaults_fill_what_the_diff_leaves_out() -> None:
    plan = plan_change(DEFAULT_EXECUTORS, intent("schedule_meeting", {}), NOW)
    assert dict(plan.change.params) == {
        "account": "acme",
        "title": "Follow-up meeting",
        "date": "2026-11-30",  # the next business day after a Friday
        "time": "10:00",
        "duration": "30",
    }
    message = plan_change(DEFAULT_EXECUTORS, intent("send_follow_up_email", {}), NOW)
    assert message.change.params["body"] == "because"  # the rationale
    assert next_business_day(datetime(2026, 11, 23, tzinfo=UTC)).isoformat() == "2026-11-24"


@pytest.mark.parametrize(
    ("action", "diff", "domain", "change", "field"),
    [
        ("schedule_meeting", {"duration": 25}, None, None, "duration"),
        ("schedule_meeting", {"date": "tomorrow"}, None, None, "date"),
        ("schedule_meeting", {"date": "2020-01-01"}, None, None, "date"),
        ("send_follow_up_email", {"subject": ""}, None, None, "subject"),
        ("send_follow_up_email", {"subject": ["a"]}, None, None, "subject"),
        ("send_follow_up_email", {"body": "x" * 5000}, None, None, "body"),
        ("update_account_context", {"seo_title": "T"}, "SEO", "meta_update", "product_id"),
        ("update_account_context", {"product_id": "abc"}, "SEO", "meta_update", "product_id"),
        ("update_account_context", {"product_id": "1"}, "SEO", "meta_update", "seo_title"),
        ("x", {"permissions": "admin"}, "API", "api_key_setup", "permissions"),
    ],
)
def test_bad_diffs_name_the_field(
    action: str, diff: dict, domain: str | None, change: str | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        plan_change(DEFAULT_EXECUTORS, intent(action, diff, domain, change), NOW)
    assert info.value.details["field"] == field


def test_no_executor_is_a_clear_error() -> None:
    with pytest.raises(InvalidArgument) as info:
        plan_change(DEFAULT_EXECUTORS, intent("launch_rockets", {}), NOW)
    assert info.value.details["reason"] == "NO_EXECUTOR"
    assert "launch_rockets" in info.value.message
    # Unless unmapped types are handed to a person.
    plan = plan_change(DEFAULT_EXECUTORS, intent("launch_rockets", {}), NOW, default="handoff")
    assert (plan.executor, plan.snapshot) == ("handoff", None)


def test_config_refuses_an_unknown_executor() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ExecutionConfig(executors={"send_follow_up_email": "carrier_pigeon"})


def test_seo_undo_soft_writes_back_only_the_diffed_field_hard_restores_all() -> None:
    seo = EXECUTORS["product_seo"]
    plan = seo.plan(intent("u", {"product_id": "7", "seo_title": "New"}, "SEO", "meta_update"), NOW)
    before = {"seo_title": "Old", "meta_description": "Old meta"}
    assert seo.finish is not None
    plan = seo.finish(plan, before)
    assert plan.change.params["meta_description"] == "Old meta"
    assert seo.expected(before, plan) == {"seo_title": "New", "meta_description": "Old meta"}
    after = {"seo_title": "New", "meta_description": "Edited meanwhile"}
    soft = seo.undo(plan, before, after, {}, False)
    hard = seo.undo(plan, before, after, {}, True)
    assert soft is not None and hard is not None
    assert dict(soft.params) == {
        "product_id": "7",
        "seo_title": "Old",
        "meta_description": "Edited meanwhile",
    }
    assert dict(hard.params) == {
        "product_id": "7",
        "seo_title": "Old",
        "meta_description": "Old meta",
    }


def test_counters_and_irreversible_executors() -> None:
    note = EXECUTORS["note"]
    plan = note.plan(intent("log_interaction", {"note": "hi"}), NOW)
    assert note.read({"note_count": " 3 ", "meeting_count": "1"}) == {"note_count": 3}
    with pytest.raises(InvalidArgument):
        note.read({"note_count": "three"})
    assert note.expected({"note_count": 3}, plan) == {"note_count": 4}
    # A note is taken back by deleting it (the change's result names it).
    assert note.undo(plan, {}, {}, {}, True) is None and note.reversible
    undo_note = note.undo(plan, {}, {}, {"note_id": "9"}, False)
    assert undo_note is not None and (undo_note.workflow, dict(undo_note.params)) == (
        "delete_note",
        {"account": "acme", "note_id": "9"},
    )
    assert not EXECUTORS["message"].reversible and not EXECUTORS["escalation"].reversible
    key = EXECUTORS["api_key"]
    key_plan = key.plan(intent("x", {}, "API", "api_key_setup"), NOW)
    assert key_plan.snapshot is None and key.reversible
    undo = key.undo(key_plan, {}, {}, {"key_id": "12"}, False)
    assert undo is not None and (undo.workflow, dict(undo.params)) == (
        "api_key_revocation",
        {"key_id": "12"},
    )


@pytest.mark.parametrize(
    ("current", "state"),
    [
        ({"a": 1, "b": 1}, "unchanged"),
        ({"a": 2, "b": 2}, "applied"),
        ({"a": 2, "b": 1}, "partial"),
    ],
)
def test_target_state_after_a_failure(current: dict, state: str) -> None:
    assert target_state(current, {"a": 1, "b": 1}, {"a": 2, "b": 2}) == state
    assert target_state(current, {}, {}) == "unknown"


def test_every_action_type_that_is_not_a_hard_stop_has_an_executor() -> None:
    policy = GuardrailPolicy()
    for action in sorted(policy.autonomous | policy.approval_required):
        plan = plan_change(DEFAULT_EXECUTORS, intent(action, SAMPLE_DIFFS.get(action, {})), NOW)
        assert plan.executor in EXECUTORS and plan.executor != "handoff", action
    assert len(policy.autonomous | policy.approval_required) == 17


SAMPLE_DIFFS: dict[str, dict] = {
    "send_proposal": {"lines": [{"description": "Grinder", "quantity": 2, "unit_price": "129"}]},
    "modify_account_plan": {"plan": "Land the R&D team first."},
}


STORE_SEO = {
    "like": "product_seo",
    "service": "store",
    "workflows": {
        "product_seo_update": "store_product_seo_update",
        "read_product_seo": "store_read_product_seo",
    },
}


def test_a_custom_executor_runs_a_shipped_kind_on_other_workflows_and_service() -> None:
    config = ExecutionConfig.model_validate(
        {
            "executors": {"SEO.meta_update": "store_seo"},
            "custom_executors": {"store_seo": STORE_SEO},
        }
    )
    registry = config.registry()
    seo = intent("x", {"product_id": "4", "seo_title": "New"}, "SEO", "meta_update")
    plan = plan_change(config.executors, seo, NOW, registry)
    assert (plan.executor, plan.service) == ("store_seo", "store")
    assert plan.change.workflow == "store_product_seo_update"
    assert plan.snapshot is not None and plan.snapshot.workflow == "store_read_product_seo"
    executor = registry["store_seo"]
    before = {"seo_title": "Old", "meta_description": "M"}
    finished = executor.finish(plan, before) if executor.finish else plan
    assert finished.service == "store" and finished.change.params["meta_description"] == "M"
    undo = executor.undo(finished, before, {"seo_title": "New", "meta_description": "M"}, {}, False)
    assert undo is not None and undo.workflow == "store_product_seo_update"
    assert undo.params["seo_title"] == "Old"
    assert executor.reversible and executor.read({"seo_title": "a", "meta_description": "b"})
    # Without the registry, the name means nothing.
    with pytest.raises(KeyError):
        plan_change(config.executors, seo, NOW)


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ({"product_seo": STORE_SEO}, "has the name of a shipped one"),
        ({"store_seo": {**STORE_SEO, "like": "teleport"}}, "like 'teleport' is unknown"),
        (
            {"store_seo": {**STORE_SEO, "workflows": {"add_note": "x"}}},
            "add_note is not a workflow of product_seo",
        ),
        ({"other": STORE_SEO}, "executor 'store_seo' for 'SEO.meta_update' is unknown"),
    ],
)
def test_config_refuses_a_bad_custom_executor(custom: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExecutionConfig.model_validate(
            {"executors": {"SEO.meta_update": "store_seo"}, "custom_executors": custom}
        )


def _renamed(step_workflow: str | None) -> bool:
    return step_workflow is None or step_workflow.startswith("crm2_")


def test_every_shipped_executor_but_handoff_can_be_derived_and_stays_what_it_was() -> None:
    # Every workflow a shipped executor runs (change, snapshot, undo) is in WORKFLOWS:
    # a derived executor runs none of the demo back-office's, keeps its service through
    # finish (which the engine calls after the before snapshot), and is reversible
    # exactly when the one it is like is.
    policy = GuardrailPolicy()
    result = {"note_id": "7", "meeting_id": "8", "quote_id": "9", "key_id": "10"}
    derived = {
        f"crm2_{like}": derive(f"crm2_{like}", like, {w: f"crm2_{w}" for w in flows}, "crm2")
        for like, flows in WORKFLOWS.items()
    }
    registry = {**EXECUTORS, **derived}
    mapping = {key: f"crm2_{name}" for key, name in DEFAULT_EXECUTORS.items()}
    assert set(WORKFLOWS) == set(EXECUTORS) - {"handoff"}
    for action in sorted(policy.autonomous | policy.approval_required):
        plan = plan_change(mapping, intent(action, SAMPLE_DIFFS.get(action, {})), NOW, registry)
        executor = registry[plan.executor]
        base = EXECUTORS[executor.like or ""]
        assert (plan.service, executor.reversible) == ("crm2", base.reversible), action
        assert _renamed(plan.change.workflow), action
        assert _renamed(plan.snapshot.workflow if plan.snapshot else None), action
        stage = "evaluation" if action == "progress_past_evaluation" else "prospect"
        before = {
            "stage": stage,
            "contact_email": "a@example.com",
            "c_suite_email": "ceo@example.com",
            "latest_minutes": "m_1",
            **{f: "x" for f in ("budget", "authority", "need", "timeline", "plan")},
            "seo_title": "Old",
            "meta_description": "Old",
        }
        if executor.finish is not None:
            plan = executor.finish(plan, before)
        assert (plan.executor, plan.service) == (f"crm2_{base.name}", "crm2"), action
        assert _renamed(plan.change.workflow), action
        undo = executor.undo(plan, before, before, result, True)
        assert (undo is not None) == base.reversible, action
        assert _renamed(undo.workflow if undo else None), action


def test_handoff_cannot_be_derived() -> None:
    with pytest.raises(InvalidArgument, match="like 'handoff' is unknown"):
        derive("person", "handoff", {})
    with pytest.raises(ValueError, match="like 'handoff' is unknown"):
        ExecutionConfig.model_validate({"custom_executors": {"person": {"like": "handoff"}}})
