"""Intent validation, content-derived ids and parsing of JSON input."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from agentd.core.intents import (
    ActionIntent,
    IntentSource,
    content_fingerprint,
    derive_intent_id,
    make_intent,
    parse_intent,
    validate_intent_fields,
)
from agentd.errors import InvalidArgument

BASE: dict[str, Any] = {
    "tenant": "acme",
    "account": "acct-42",
    "action_type": "update_seo_meta",
    "domain": "SEO",
    "change_type": "meta_update",
    "diff": {"title": "New title", "tags": ["a", "b"]},
    "rationale": "Improve CTR",
    "confidence": 0.8,
    "source": "planner",
    "serves": {"pattern": "pat_1"},
}


def intent(**changes: Any) -> ActionIntent:
    return make_intent(**{**BASE, **changes})


def test_make_intent_normalises_and_derives_an_id() -> None:
    made = intent(domain="seo", source="operator")
    assert re.fullmatch(r"int_[0-9a-f]{24}", made.intent_id)
    assert made.domain == "SEO"
    assert made.source is IntentSource.OPERATOR
    assert made.diff == {"title": "New title", "tags": ["a", "b"]}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tenant": "Acme"}, "tenant"),
        ({"tenant": ""}, "tenant"),
        ({"tenant": "a" * 65}, "tenant"),
        ({"tenant": 42}, "tenant"),
        ({"account": "acct 42"}, "account"),
        ({"account": "-acct"}, "account"),
        ({"action_type": "Send"}, "action_type"),
        ({"action_type": "1send"}, "action_type"),
        ({"action_type": "send-email"}, "action_type"),
        ({"domain": "S E O"}, "domain"),
        ({"domain": None}, "domain"),  # a change type needs a domain
        ({"change_type": "Meta_Update"}, "change_type"),
        ({"change_type": "meta update"}, "change_type"),
        ({"confidence": 1.01}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"confidence": "0.9"}, "confidence"),
        ({"rationale": "x" * 2001}, "rationale"),
        ({"rationale": 7}, "rationale"),
        ({"source": "robot"}, "source"),
        ({"diff": [1, 2]}, "diff"),
        ({"diff": "title=x"}, "diff"),
        ({"diff": {1: "x"}}, "diff"),
        ({"diff": {"x": float("inf")}}, "diff"),
        ({"diff": {"x": {1, 2}}}, "diff"),
        ({"diff": {"blob": "x" * 70_000}}, "diff"),
        ({"serves": ["goal"]}, "serves"),
        ({"serves": {"note": "x" * 9000}}, "serves"),
        ({"intent_id": ""}, "intent_id"),
        ({"intent_id": "has space"}, "intent_id"),
    ],
)
def test_invalid_fields_are_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        intent(**changes)
    assert err.value.details == {"field": field}
    assert err.value.message.startswith(f"{field}:")


def test_deeply_nested_diff_is_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidArgument) as err:
        intent(diff=deep)
    assert err.value.details["field"] == "diff"


@pytest.mark.parametrize(
    "changes",
    [
        {"confidence": 0.0},
        {"confidence": 1},
        {"confidence": None},
        {"domain": None, "change_type": None},
        {"domain": "SALES", "change_type": None},
        {"rationale": "x" * 2000},
        {"diff": {}},
        {"serves": {}},
        {"tenant": "t.1:prod-eu_2"},
    ],
)
def test_valid_edge_values_are_accepted(changes: dict[str, Any]) -> None:
    intent(**changes)


def test_id_is_stable_across_key_order_domain_case_and_confidence() -> None:
    first = intent()
    reordered = intent(diff={"tags": ["a", "b"], "title": "New title"}, domain="seo")
    other_confidence = intent(confidence=0.2)
    assert first.intent_id == reordered.intent_id == other_confidence.intent_id
    assert derive_intent_id(first) == first.intent_id


@pytest.mark.parametrize(
    "changes",
    [
        {"tenant": "globex"},
        {"account": "acct-43"},
        {"action_type": "update_seo_title"},
        {"domain": "CONTENT"},
        {"change_type": "title_update"},
        {"diff": {"title": "New title!", "tags": ["a", "b"]}},
        {"diff": {"title": "New title", "tags": ["b", "a"]}},  # list order matters
        {"rationale": "Improve CTR."},
        {"source": "operator"},
        {"serves": {"pattern": "pat_2"}},
        {"serves": {}},
    ],
)
def test_id_changes_with_every_content_field(changes: dict[str, Any]) -> None:
    assert intent(**changes).intent_id != intent().intent_id
    assert content_fingerprint(intent(**changes)) != content_fingerprint(intent())


def test_explicit_id_is_kept_and_fingerprint_catches_reuse() -> None:
    first = intent(intent_id="ops-2024-001")
    reused = intent(intent_id="ops-2024-001", rationale="something else")
    assert first.intent_id == reused.intent_id == "ops-2024-001"
    assert content_fingerprint(first) != content_fingerprint(reused)
    assert content_fingerprint(first) == content_fingerprint(intent(confidence=0.1))
    assert re.fullmatch(r"[0-9a-f]{64}", content_fingerprint(first))


def test_id_is_pinned() -> None:
    # Ids are stored and compared across releases: changing the scheme is a migration.
    made = make_intent(tenant="acme", account="a1", action_type="send_chat_message")
    content = (
        '{"account":"a1","action_type":"send_chat_message","change_type":null,"diff":{},'
        '"domain":null,"rationale":"","scheme":"agentd.intent.v1","serves":{},'
        '"source":"planner","tenant":"acme"}'
    )
    assert content_fingerprint(made) == hashlib.sha256(content.encode()).hexdigest()
    assert made.intent_id == "int_3ef979d879feb005184b7c03"


def test_fingerprint_kept_from_validation_is_the_one_computed_afresh() -> None:
    made = intent(diff={"title": "x", "items": [1, 2]}, serves={"goal": "g1"})
    fresh = ActionIntent(**{k: v for k, v in vars(made).items() if k != "_fingerprint"})
    assert fresh == made and repr(fresh) == repr(made)
    assert content_fingerprint(fresh) == content_fingerprint(made)
    assert made.intent_id == derive_intent_id(fresh)


def test_validate_intent_fields_returns_a_normalised_copy() -> None:
    raw = ActionIntent(
        intent_id="",
        tenant="acme",
        account="a1",
        action_type="send_chat_message",
        domain="sales",
        diff={"t": (1, 2)},
        confidence=1,
        source="governance",  # type: ignore[arg-type]
    )
    valid = validate_intent_fields(raw)
    assert valid.domain == "SALES"
    assert valid.diff == {"t": [1, 2]}
    assert isinstance(valid.confidence, float)
    assert valid.source is IntentSource.GOVERNANCE
    assert valid.intent_id.startswith("int_")


def test_caller_cannot_mutate_a_made_intent_through_its_diff() -> None:
    diff: dict[str, Any] = {"title": "x", "items": [1]}
    made = intent(diff=diff)
    diff["items"].append(2)
    diff["extra"] = True
    assert made.diff == {"title": "x", "items": [1]}


def test_parse_round_trips_to_dict() -> None:
    made = intent()
    again = parse_intent(json.loads(json.dumps(made.to_dict())))
    assert again == made


def test_parse_accepts_diff_as_a_json_string() -> None:
    obj = {**BASE, "diff": json.dumps(BASE["diff"])}
    assert parse_intent(obj).intent_id == intent().intent_id


def test_parse_defaults() -> None:
    parsed = parse_intent({"tenant": "acme", "account": "a1", "action_type": "log_interaction"})
    assert parsed.source is IntentSource.OPERATOR
    assert (parsed.diff, parsed.serves, parsed.rationale, parsed.confidence) == ({}, {}, "", None)
    planner = parse_intent(
        {"tenant": "acme", "account": "a1", "action_type": "log_interaction"},
        default_source=IntentSource.PLANNER,
    )
    assert planner.source is IntentSource.PLANNER
    assert planner.intent_id != parsed.intent_id


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({**BASE, "diff": "{not json"}, "diff"),
        ({**BASE, "diff": "[1, 2]"}, "diff"),
        ({**BASE, "confidance": 0.9}, "confidance"),
        ({k: v for k, v in BASE.items() if k != "tenant"}, "tenant"),
        ({k: v for k, v in BASE.items() if k != "account"}, "account"),
        ({**BASE, "action_type": None}, "action_type"),
        ({**BASE, "intent_id": 12}, "intent_id"),
        ({**BASE, "confidence": "high"}, "confidence"),
        ({**BASE, "source": "cron"}, "source"),
    ],
)
def test_parse_reports_the_bad_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_intent(obj)
    assert err.value.details["field"] == field


def test_parse_refuses_a_non_object() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_intent(["tenant"])  # type: ignore[arg-type]
    assert err.value.details["field"] == "intent"


def test_bad_json_string_diff_says_where() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_intent({**BASE, "diff": '{"a": }'})
    assert "position 6" in err.value.message
