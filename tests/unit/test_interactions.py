from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentd.core.interactions import (
    KIND_CODE,
    Direction,
    Interaction,
    InteractionKind,
    iter_csv_records,
    iter_jsonl_records,
    parse_interaction,
    require_known_account,
)
from agentd.errors import InvalidArgument

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

GOOD: dict[str, Any] = {
    "id": "i-1",
    "account": "acme",
    "kind": "email",
    "direction": "in",
    "at": "2024-05-30T09:30:00+02:00",
    "sentiment": "0.5",
    "summary": "Asked about renewal.",
}


def with_(**changes: Any) -> dict[str, Any]:
    record = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return record


def test_a_valid_row_becomes_an_interaction_in_utc() -> None:
    got = parse_interaction(GOOD, now=NOW, line=2)
    assert got == Interaction(
        id="i-1",
        account="acme",
        kind=InteractionKind.EMAIL,
        direction=Direction.IN,
        at=datetime(2024, 5, 30, 7, 30, tzinfo=UTC),
        sentiment=0.5,
        summary="Asked about renewal.",
    )
    assert got.at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("changes", "sentiment", "summary"),
    [
        ({"sentiment": "", "summary": ""}, None, None),
        ({"sentiment": None, "summary": None}, None, None),
        ({"sentiment": ..., "summary": ...}, None, None),
        ({"sentiment": -1}, -1.0, "Asked about renewal."),
        ({"sentiment": 1.0}, 1.0, "Asked about renewal."),
        ({"summary": "  spaced  "}, 0.5, "spaced"),
    ],
)
def test_optional_fields(
    changes: dict[str, Any], sentiment: float | None, summary: str | None
) -> None:
    got = parse_interaction(with_(**changes), now=NOW, line=2)
    assert (got.sentiment, got.summary) == (sentiment, summary)


def test_zulu_suffix_and_numeric_id_from_json_are_accepted() -> None:
    got = parse_interaction(with_(at="2024-05-30T07:30:00Z", id=42), now=NOW, line=1)
    assert got.id == "42"
    assert got.at == datetime(2024, 5, 30, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"account": ...}, "account", "missing"),
        ({"id": "  "}, "id", "missing"),
        ({"at": "30/05/2024"}, "at", "not an ISO 8601"),
        ({"at": "2024-05-30T09:30:00"}, "at", "no UTC offset"),
        ({"at": "2024-06-01T12:06:00+00:00"}, "at", "in the future"),
        ({"at": "2025-01-01T00:00:00+00:00"}, "at", "in the future"),
        ({"sentiment": "1.5"}, "sentiment", "outside -1..1"),
        ({"sentiment": -1.01}, "sentiment", "outside -1..1"),
        ({"sentiment": "nan"}, "sentiment", "outside -1..1"),
        ({"sentiment": "very bad"}, "sentiment", "not a number"),
        ({"sentiment": True}, "sentiment", "not a number"),
        ({"kind": "fax"}, "kind", "unknown kind 'fax'"),
        ({"direction": "sideways"}, "direction", "unknown direction"),
        ({"summary": 3}, "summary", "expected text"),
        ({"account": ["a"]}, "account", "expected text"),
    ],
)
def test_bad_fields_are_named_with_the_line(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_interaction(with_(**changes), now=NOW, line=7, source="export.csv")
    err = caught.value
    assert err.details == {"line": 7, "field": field, "file": "export.csv"}
    assert err.message.startswith(f"export.csv:7: {field}: ")
    assert fragment in err.message


def test_future_skew_is_tolerated_up_to_the_limit() -> None:
    inside = with_(at=(NOW + timedelta(minutes=5)).isoformat())
    assert parse_interaction(inside, now=NOW, line=1).at == NOW + timedelta(minutes=5)
    with pytest.raises(InvalidArgument):
        parse_interaction(inside, now=NOW, line=1, max_future_skew=timedelta(0))


def test_error_without_source_names_the_line() -> None:
    with pytest.raises(InvalidArgument, match=r"^line 3: kind: "):
        parse_interaction(with_(kind=""), now=NOW, line=3)


def test_compact_form_carries_code_direction_epoch_and_sentiment() -> None:
    got = parse_interaction(with_(kind="pricing_page_visit", direction="out"), now=NOW, line=1)
    assert got.compact() == (
        "i-1",
        KIND_CODE["pricing_page_visit"],
        False,
        datetime(2024, 5, 30, 7, 30, tzinfo=UTC).timestamp(),
        0.5,
    )
    assert sorted(KIND_CODE.values()) == list(range(len(InteractionKind)))


def test_unknown_account_is_reported_on_its_line() -> None:
    item = parse_interaction(GOOD, now=NOW, line=4)
    require_known_account(item, {"acme"}, line=4)
    with pytest.raises(InvalidArgument) as caught:
        require_known_account(item, {"globex"}, line=4, source="in.jsonl")
    assert caught.value.details == {"line": 4, "field": "account", "file": "in.jsonl"}
    assert "unknown account 'acme'" in caught.value.message


CSV = [
    "\ufeffid,account,kind,direction,at,sentiment,summary,extra\n",
    "a,acme,email,in,2024-05-30T09:30:00+00:00,0.2,hello,x\n",
    "\n",
    'b,acme,meeting,out,2024-05-30T10:00:00+00:00,,"two\n',
    'lines",y\n',
    "c,acme,chat,in,2024-05-30T11:00:00+00:00\n",
]


def test_csv_rows_carry_their_starting_line_numbers() -> None:
    rows = list(iter_csv_records(CSV))
    assert [(line, row["id"]) for line, row in rows] == [(2, "a"), (4, "b"), (6, "c")]
    assert rows[1][1]["summary"] == "two\nlines"
    # A short row leaves trailing columns absent, which still parses when they are optional.
    assert parse_interaction(rows[2][1], now=NOW, line=rows[2][0]).sentiment is None


def test_csv_short_row_missing_a_required_value_names_it() -> None:
    lines = ["id,account,kind,direction,at\n", "a,acme,email\n"]
    [(line, row)] = list(iter_csv_records(lines))
    with pytest.raises(InvalidArgument, match=r"^line 2: direction: missing value"):
        parse_interaction(row, now=NOW, line=line)


@pytest.mark.parametrize("missing", ["id", "account", "kind", "direction", "at"])
def test_csv_header_missing_a_column_fails_at_line_1(missing: str) -> None:
    header = ",".join(c for c in ("id", "account", "kind", "direction", "at") if c != missing)
    with pytest.raises(InvalidArgument) as caught:
        list(iter_csv_records([header + "\n", "x,y,z,w\n"], source="bad.csv"))
    assert caught.value.details == {"line": 1, "field": missing, "file": "bad.csv"}
    assert caught.value.message == f"bad.csv:1: {missing}: missing column in header"


def test_csv_row_with_too_many_values_is_refused() -> None:
    lines = ["id,account,kind,direction,at\n", "a,acme,email,in,2024-05-30T09:30:00+00:00,oops\n"]
    with pytest.raises(InvalidArgument, match=r"^line 2: csv: 6 values for 5 columns"):
        list(iter_csv_records(lines))


@pytest.mark.parametrize("lines", [[], ["\n", "  \n"], ["id,account,kind,direction,at\n"]])
def test_empty_csv_yields_nothing(lines: list[str]) -> None:
    assert list(iter_csv_records(lines)) == []


def test_jsonl_yields_objects_with_line_numbers_and_skips_blank_lines() -> None:
    lines = ['{"id": "a"}\n', "\n", '{"id": "b", "sentiment": -0.5}\n']
    assert list(iter_jsonl_records(lines)) == [
        (1, {"id": "a"}),
        (3, {"id": "b", "sentiment": -0.5}),
    ]


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("{not json}", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('"x"', "got str"),
    ],
)
def test_jsonl_bad_line_is_named(bad: str, fragment: str) -> None:
    lines = ['{"id": "a"}\n', bad + "\n"]
    records = iter_jsonl_records(lines, source="feed.jsonl")
    assert next(records) == (1, {"id": "a"})
    with pytest.raises(InvalidArgument) as caught:
        next(records)
    assert caught.value.details == {"line": 2, "field": "json", "file": "feed.jsonl"}
    assert caught.value.message.startswith("feed.jsonl:2: json: ")
    assert fragment in caught.value.message


@pytest.mark.parametrize("lines", [[], ["\n"]])
def test_empty_jsonl_yields_nothing(lines: list[str]) -> None:
    assert list(iter_jsonl_records(lines)) == []


def test_records_stream_lazily() -> None:
    def lines() -> Any:
        yield '{"id": "a"}\n'
        raise AssertionError("read past the first record")

    assert next(iter_jsonl_records(lines())) == (1, {"id": "a"})
