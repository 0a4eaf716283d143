from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentd.core.interactions import KIND_CODE, CompactInteraction
from agentd.core.patterns import (
    DEFAULT_RULES,
    EngagementDirection,
    Pattern,
    PatternKind,
    PatternRules,
    RiskSeverity,
    detect,
    new_patterns,
    scan,
)
from agentd.errors import InvalidArgument

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0


def ix(
    ident: str,
    kind: str,
    days_ago: float,
    *,
    inbound: bool = True,
    sentiment: float | None = None,
    now: datetime = NOW,
) -> CompactInteraction:
    return (ident, KIND_CODE[kind], inbound, now.timestamp() - days_ago * DAY, sentiment)


def history(*items: CompactInteraction) -> list[CompactInteraction]:
    return sorted(items, key=lambda item: item[3])


def found(patterns: list[Pattern]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for pattern in patterns:
        qualifier = pattern.severity or pattern.direction
        out.append((pattern.kind.value, qualifier.value if qualifier else None))
    return out


BUY = ("buying_signal", None)
CRIT = ("risk", "critical")
MED = ("risk", "medium")
UP = ("engagement_change", "up")
DOWN = ("engagement_change", "down")

JUST = 1 / DAY  # one second, in days

CASES: list[tuple[str, list[CompactInteraction], list[tuple[str, str | None]]]] = [
    # buying signal: repeated pricing visits
    (
        "two pricing visits",
        [ix("p1", "pricing_page_visit", 10), ix("p2", "pricing_page_visit", 1)],
        [BUY],
    ),
    ("one pricing visit", [ix("p1", "pricing_page_visit", 1)], []),
    (
        "pricing visit on the 14-day edge",
        [ix("p1", "pricing_page_visit", 14), ix("p2", "pricing_page_visit", 9)],
        [BUY],
    ),
    (
        "pricing visit just past 14 days",
        [ix("p1", "pricing_page_visit", 14 + JUST), ix("p2", "pricing_page_visit", 9)],
        [],
    ),
    (
        "outbound-logged pricing visits count",
        [
            ix("p1", "pricing_page_visit", 3, inbound=False),
            ix("p2", "pricing_page_visit", 2, inbound=False),
        ],
        [BUY],
    ),
    # buying signal: pricing visit plus inbound contact
    (
        "pricing visit and inbound email",
        [ix("e1", "email", 5), ix("p1", "pricing_page_visit", 3)],
        [BUY],
    ),
    (
        "pricing visit and inbound meeting on the 7-day edge",
        [ix("m1", "meeting", 7), ix("p1", "pricing_page_visit", 1)],
        [BUY],
    ),
    (
        "pricing visit and inbound email just past 7 days",
        [ix("e1", "email", 7 + JUST), ix("p1", "pricing_page_visit", 1)],
        [],
    ),
    (
        "pricing visit and outbound email",
        [ix("e1", "email", 2, inbound=False), ix("p1", "pricing_page_visit", 1)],
        [],
    ),
    (
        "pricing visit and inbound chat",
        [ix("c1", "chat", 2), ix("p1", "pricing_page_visit", 1)],
        [],
    ),
    # risk: sentiment
    (
        "very negative sentiment",
        [ix("a", "email", 3, sentiment=-0.6), ix("b", "chat", 2, sentiment=-0.4)],
        [CRIT],
    ),
    (
        "sentiment average exactly -0.5",
        [ix("a", "email", 3, sentiment=-0.5), ix("b", "chat", 2, sentiment=-0.5)],
        [CRIT],
    ),
    (
        "sentiment average just above -0.5",
        [ix("a", "email", 3, sentiment=-0.5), ix("b", "chat", 2, sentiment=-0.48)],
        [MED],
    ),
    (
        "sentiment average exactly -0.2",
        [ix("a", "email", 3, sentiment=-0.2), ix("b", "chat", 2, sentiment=-0.2)],
        [MED],
    ),
    (
        "sentiment average just above -0.2",
        [ix("a", "email", 3, sentiment=-0.2), ix("b", "chat", 2, sentiment=-0.18)],
        [],
    ),
    ("one negative rating is not enough", [ix("a", "email", 3, sentiment=-1.0)], []),
    (
        "negative ratings outside 14 days",
        [ix("a", "email", 14 + JUST, sentiment=-1.0), ix("b", "email", 15, sentiment=-1.0)],
        [],
    ),
    (
        "only the last five ratings count",
        [ix(f"n{k}", "email", 13 - k * 0.1, sentiment=-1.0) for k in range(3)]
        + [ix(f"q{k}", "chat", 5 - k * 0.1, sentiment=0.1) for k in range(5)],
        [UP],
    ),
    # risk: support tickets
    ("three tickets in 7 days", [ix(f"t{k}", "support_ticket", 6 - k) for k in range(3)], [CRIT]),
    (
        "three tickets, one on the 7-day edge",
        [
            ix("t0", "support_ticket", 7),
            ix("t1", "support_ticket", 2),
            ix("t2", "support_ticket", 1),
        ],
        [CRIT],
    ),
    (
        "three tickets, one just past 7 days",
        [
            ix("t0", "support_ticket", 7 + JUST),
            ix("t1", "support_ticket", 2),
            ix("t2", "support_ticket", 1),
        ],
        [MED],
    ),
    (
        "two tickets in 14 days",
        [ix("t0", "support_ticket", 13), ix("t1", "support_ticket", 1)],
        [MED],
    ),
    (
        "two tickets, one just past 14 days",
        [ix("t0", "support_ticket", 14 + JUST), ix("t1", "support_ticket", 1)],
        [],
    ),
    (
        "outbound tickets do not count",
        [ix(f"t{k}", "support_ticket", 3 - k, inbound=False) for k in range(3)],
        [],
    ),
    # risk: silence after activity
    (
        "silent for 30 days after three inbound",
        [ix("a", "email", 50), ix("b", "chat", 40), ix("c", "meeting", 35)],
        [CRIT],
    ),
    (
        "last inbound exactly 30 days ago",
        [ix("a", "email", 50), ix("b", "chat", 40), ix("c", "meeting", 35), ix("d", "chat", 30)],
        [],
    ),
    (
        "last inbound just over 30 days ago",
        [ix("a", "email", 50), ix("b", "chat", 40), ix("c", "meeting", 30 + JUST)],
        [CRIT],
    ),
    ("only two inbound before the silence", [ix("a", "email", 50), ix("b", "chat", 40)], []),
    (
        "active long ago, outside 90 days",
        [ix("a", "email", 95), ix("b", "chat", 92), ix("c", "meeting", 90 + JUST)],
        [],
    ),
    (
        "outbound during the silence does not break it",
        [
            ix("a", "email", 50),
            ix("b", "chat", 40),
            ix("c", "meeting", 35),
            ix("o", "email", 2, inbound=False),
        ],
        [CRIT],
    ),
    # engagement change
    ("four inbound from none", [ix(f"c{k}", "chat", 10 - k) for k in range(4)], [UP]),
    ("three inbound from none", [ix(f"c{k}", "chat", 10 - k) for k in range(3)], []),
    (
        "six vs four is +50%",
        [ix(f"o{k}", "chat", 20 - k) for k in range(4)]
        + [ix(f"c{k}", "chat", 10 - k) for k in range(6)],
        [UP],
    ),
    (
        "five vs four is +25%",
        [ix(f"o{k}", "chat", 20 - k) for k in range(4)]
        + [ix(f"c{k}", "chat", 10 - k) for k in range(5)],
        [],
    ),
    (
        "two vs four is -50%",
        [ix(f"o{k}", "chat", 20 - k) for k in range(4)]
        + [ix(f"c{k}", "chat", 10 - k) for k in range(2)],
        [DOWN],
    ),
    (
        "three vs four is -25%",
        [ix(f"o{k}", "chat", 20 - k) for k in range(4)]
        + [ix(f"c{k}", "chat", 10 - k) for k in range(3)],
        [],
    ),
    (
        "older window ends on the 28-day edge",
        [ix(f"o{k}", "chat", 28 - k) for k in range(4)],
        [DOWN],
    ),
    (
        "older window just past 28 days",
        [ix("o0", "chat", 28 + JUST)] + [ix(f"o{k}", "chat", 27 - k) for k in range(3)],
        [],
    ),
    (
        "outbound volume is not engagement",
        [ix(f"c{k}", "chat", 10 - k, inbound=False) for k in range(8)],
        [],
    ),
    # several at once, in the documented order
    (
        "buying signal, risk and engagement together",
        [ix("p1", "pricing_page_visit", 3), ix("p2", "pricing_page_visit", 2)]
        + [ix(f"t{k}", "support_ticket", 6 - k) for k in range(3)],
        [BUY, CRIT, UP],
    ),
    ("nothing at all", [], []),
]


@pytest.mark.parametrize(
    ("history_", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_detection_rules(
    history_: list[CompactInteraction], expected: list[tuple[str, str | None]]
) -> None:
    assert found(detect("acme", history(*history_), NOW)) == expected


def test_buying_signal_evidence_is_the_pricing_visits_in_time_order() -> None:
    items = history(
        ix("old", "pricing_page_visit", 20),
        ix("p2", "pricing_page_visit", 2),
        ix("p1", "pricing_page_visit", 5),
        ix("e1", "email", 1),
    )
    [pattern] = detect("acme", items, NOW)
    assert pattern.rules == ("repeat_pricing_visits", "pricing_visit_and_contact")
    assert pattern.evidence == ("p1", "p2", "e1")
    assert pattern.summary.startswith("2 pricing-page visits in the last 14 days")
    assert pattern.detected_at == NOW


def test_critical_risk_merges_its_reasons_and_hides_medium_ones() -> None:
    items = history(
        ix("t1", "support_ticket", 3, sentiment=-0.9),
        ix("t2", "support_ticket", 2, sentiment=-0.7),
        ix("t3", "support_ticket", 1),
    )
    [risk] = [p for p in detect("acme", items, NOW) if p.kind is PatternKind.RISK]
    assert risk.severity is RiskSeverity.CRITICAL
    assert risk.rules == ("negative_sentiment", "support_tickets")
    assert risk.evidence == ("t1", "t2", "t3")
    assert "average sentiment -0.80 over the last 2 rated interactions" in risk.summary
    assert "3 inbound support tickets in the last 7 days" in risk.summary


def test_silence_summary_and_evidence() -> None:
    items = history(ix("a", "email", 50), ix("b", "chat", 40), ix("c", "meeting", 35))
    [risk] = detect("acme", items, NOW)
    assert risk.rules == ("inbound_silence",)
    assert risk.evidence == ("a", "b", "c")
    assert risk.summary.startswith("no inbound activity for 35 days after 3 inbound interactions")


def test_engagement_summary_states_the_counts() -> None:
    items = history(*[ix(f"o{k}", "chat", 20 - k) for k in range(4)], ix("c0", "chat", 1))
    [pattern] = detect("acme", items, NOW)
    assert pattern.direction is EngagementDirection.DOWN
    assert pattern.severity is None
    assert pattern.evidence == ("o0", "o1", "o2", "o3")
    assert pattern.summary == (
        "inbound interactions down (-75%): 1 in the last 14 days vs 4 in the 14 days before"
    )


def test_key_is_stable_while_scans_see_the_same_burst() -> None:
    items = history(ix("p1", "pricing_page_visit", 2), ix("p2", "pricing_page_visit", 1))
    keys = {
        detect("acme", items, NOW + timedelta(hours=hours))[0].key for hours in range(0, 12 * 24, 6)
    }
    assert len(keys) == 1
    [key] = keys
    assert key.startswith("acme|buying_signal|")


def test_key_changes_with_account_severity_and_period() -> None:
    burst = [ix("p1", "pricing_page_visit", 2), ix("p2", "pricing_page_visit", 1)]
    key = detect("acme", history(*burst), NOW)[0].key
    assert detect("globex", history(*burst), NOW)[0].key != key
    later = NOW + timedelta(days=60)
    moved = [
        ix("p3", "pricing_page_visit", 2, now=later),
        ix("p4", "pricing_page_visit", 1, now=later),
    ]
    assert detect("acme", history(*burst, *moved), later)[0].key != key
    medium = detect(
        "acme", history(ix("t0", "support_ticket", 2), ix("t1", "support_ticket", 1)), NOW
    )
    critical = detect(
        "acme", history(*[ix(f"t{k}", "support_ticket", 3 - k) for k in range(3)]), NOW
    )
    assert medium[0].key.split("|")[1] == "risk/medium"
    assert critical[0].key.split("|")[1] == "risk/critical"


def test_silence_key_survives_the_whole_silence() -> None:
    items = history(ix("a", "email", 50), ix("b", "chat", 40), ix("c", "meeting", 35))
    keys = {detect("acme", items, NOW + timedelta(days=d))[0].key for d in range(0, 20)}
    assert len(keys) == 1


def make(key: str) -> Pattern:
    return Pattern("acme", PatternKind.BUYING_SIGNAL, None, None, ("x",), NOW, "s", key, ("r",))


def test_new_patterns_drops_known_keys_and_repeats_keeping_order() -> None:
    detected = [make("k3"), make("k1"), make("k2"), make("k3")]
    assert [p.key for p in new_patterns(detected, {"k1"})] == ["k3", "k2"]
    assert new_patterns(detected, {"k1", "k2", "k3"}) == []


def test_rules_are_configurable() -> None:
    items = history(ix("p1", "pricing_page_visit", 2), ix("p2", "pricing_page_visit", 1))
    stricter = PatternRules.from_mapping({"buying_pricing_visits": 3})
    assert detect("acme", items, NOW, stricter) == []
    wider = PatternRules(buying_window_days=30, buying_combo_days=1)
    spread = history(ix("p1", "pricing_page_visit", 25), ix("p2", "pricing_page_visit", 20))
    assert found(detect("acme", spread, NOW, wider)) == [BUY]
    everything = PatternRules(engagement_inbound_only=False)
    outbound = history(*[ix(f"c{k}", "chat", 10 - k, inbound=False) for k in range(4)])
    assert found(detect("acme", outbound, NOW, everything)) == [UP]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"buying_window_days": 0}, "buying_window_days"),
        ({"critical_tickets": -1}, "critical_tickets"),
        ({"no_such_rule": 1}, "no_such_rule"),
        ({"critical_tickets": 2.5}, "critical_tickets"),
        ({"critical_tickets": True}, "critical_tickets"),
        ({"engagement_inbound_only": 1}, "engagement_inbound_only"),
        ({"silence_days": "30"}, "silence_days"),
        ({"critical_sentiment": -0.1}, "critical_sentiment"),
        ({"sentiment_min_samples": 6}, "sentiment_min_samples"),
    ],
)
def test_bad_rules_name_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        PatternRules.from_mapping(values)
    assert caught.value.details == {"field": field}
    assert field in caught.value.message


def test_interactions_older_than_every_window_are_ignored() -> None:
    items = history(*[ix(f"p{k}", "pricing_page_visit", 200 + k) for k in range(50)])
    assert detect("acme", items, NOW) == []


def test_scan_exercises_ten_thousand_accounts() -> None:
    rnd = random.Random(7)
    kinds = list(KIND_CODE)
    accounts = []
    for a in range(10_000):
        items = history(
            *[
                ix(
                    f"{a}-{k}",
                    rnd.choice(kinds),
                    rnd.uniform(0, 100),
                    inbound=rnd.random() < 0.6,
                    sentiment=rnd.uniform(-1, 1) if rnd.random() < 0.5 else None,
                )
                for k in range(10)
            ]
        )
        accounts.append((f"acct-{a}", items))
    patterns = scan(accounts, NOW, DEFAULT_RULES)
    assert 0 < len(patterns) < 3 * len(accounts)
    assert len({p.key for p in patterns}) == len(patterns)
    assert all(p.evidence and p.account.startswith("acct-") for p in patterns)
    assert scan(accounts, NOW) == patterns


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        detect("acme", [], datetime(2024, 6, 1))
    assert caught.value.details == {"field": "now"}
