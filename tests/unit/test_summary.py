from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from agentd.core.interactions import Direction, Interaction, InteractionKind
from agentd.core.summary import extractive_summary
from agentd.errors import InvalidArgument

NOW = datetime(2024, 6, 30, 12, tzinfo=UTC)


def ix(
    ident: str,
    days_ago: float,
    kind: InteractionKind = InteractionKind.EMAIL,
    direction: Direction = Direction.IN,
    sentiment: float | None = None,
    summary: str | None = None,
) -> Interaction:
    return Interaction(
        ident, "acme", kind, direction, NOW - timedelta(days=days_ago), sentiment, summary
    )


HISTORY = [
    ix("a", 25, sentiment=0.6, summary="Thanks for the onboarding session. All good so far."),
    ix("b", 20, InteractionKind.MEETING, Direction.OUT, 0.4, "Quarterly review went fine."),
    ix("c", 12, InteractionKind.PAGE_VISIT),
    ix(
        "d",
        8,
        InteractionKind.SUPPORT_TICKET,
        sentiment=-0.8,
        summary="Export is broken again! We may cancel the contract.",
    ),
    ix(
        "e",
        5,
        InteractionKind.CHAT,
        sentiment=-0.3,
        summary="Asked whether the new pricing applies at renewal.",
    ),
    ix("f", 2, InteractionKind.EMAIL, Direction.OUT, summary="Sent the workaround."),
    ix("old", 45, sentiment=-1.0, summary="Ancient complaint about pricing."),
]


def test_summary_counts_trend_contacts_and_key_points() -> None:
    text = extractive_summary("acme", HISTORY, now=NOW, max_sentences=3)
    assert text.splitlines() == [
        "acme: 6 interactions in the last 30 days (4 inbound, 2 outbound):"
        " 2 email, 1 chat, 1 meeting, 1 page visit, 1 support ticket.",
        "Sentiment falling: -0.55 in the later half of the period vs +0.50 before (4 rated).",
        "Last contact: inbound 2024-06-25 (chat); outbound 2024-06-28 (email).",
        "Key points:",
        "- 2024-06-22 support ticket (in): Export is broken again!",
        "- 2024-06-22 support ticket (in): We may cancel the contract.",
        "- 2024-06-25 chat (in): Asked whether the new pricing applies at renewal.",
    ]


def test_same_input_same_text_whatever_the_order() -> None:
    expected = extractive_summary("acme", HISTORY, now=NOW)
    for seed in range(5):
        shuffled = HISTORY[:]
        random.Random(seed).shuffle(shuffled)
        assert extractive_summary("acme", shuffled, now=NOW) == expected


@pytest.mark.parametrize("limit", [0, 1, 2, 5, 50])
def test_max_sentences_bounds_the_key_points(limit: int) -> None:
    lines = extractive_summary("acme", HISTORY, now=NOW, max_sentences=limit).splitlines()
    points = [line for line in lines if line.startswith("- ")]
    assert len(points) == min(limit, 7)
    assert ("Key points:" in lines) is (limit > 0)
    assert all("Ancient" not in line for line in lines)


@pytest.mark.parametrize(
    ("sentiments", "line"),
    [
        (
            [(25, 0.5), (5, 0.9)],
            "Sentiment rising: +0.90 in the later half of the period vs +0.50 before (2 rated).",
        ),
        (
            [(25, 0.5), (5, 0.6)],
            "Sentiment steady: +0.60 in the later half of the period vs +0.50 before (2 rated).",
        ),
        ([(5, -0.4), (4, -0.2)], "Average sentiment -0.30 (2 rated)."),
        ([], "No sentiment recorded."),
    ],
)
def test_sentiment_trend(sentiments: list[tuple[float, float]], line: str) -> None:
    items = [ix(f"s{n}", days, sentiment=value) for n, (days, value) in enumerate(sentiments)]
    items.append(ix("plain", 1))
    assert extractive_summary("acme", items, now=NOW).splitlines()[1] == line


def test_repeated_sentences_count_once_and_salience_wins() -> None:
    items = [
        ix("a", 3, summary="Weekly sync. Nothing new."),
        ix("b", 2, summary="Weekly sync. Nothing new."),
        ix("c", 10, summary="Legal wants to review the contract before signing."),
    ]
    lines = extractive_summary("acme", items, now=NOW, max_sentences=2).splitlines()
    assert lines[-2:] == [
        "- 2024-06-20 email (in): Legal wants to review the contract before signing.",
        "- 2024-06-28 email (in): Weekly sync.",
    ]


def test_no_recent_interactions() -> None:
    assert (
        extractive_summary("acme", [ix("old", 45)], now=NOW)
        == "acme: no interactions in the last 30 days."
    )
    assert (
        extractive_summary("acme", [], now=NOW, period_days=7)
        == "acme: no interactions in the last 7 days."
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"max_sentences": -1}, "max_sentences"), ({"period_days": 0}, "period_days")],
)
def test_bad_arguments(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        extractive_summary("acme", HISTORY, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert caught.value.details == {"field": field}
