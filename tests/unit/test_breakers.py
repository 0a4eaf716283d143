from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentd.core.breakers import (
    DEFAULT_RULES,
    BreakerAction,
    BreakerEvent,
    BreakerEventKind,
    BreakerMetric,
    BreakerMonitor,
    BreakerRule,
    Severity,
    Trip,
    format_window,
    parse_rules,
    parse_window,
)
from agentd.errors import InvalidArgument, NotFound

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
OK = BreakerEventKind.EXECUTION_SUCCEEDED
FAIL = BreakerEventKind.EXECUTION_FAILED
ROLLED = BreakerEventKind.EXECUTION_ROLLED_BACK
INCIDENT = BreakerEventKind.INCIDENT


def rule(name: str) -> BreakerRule:
    return next(r for r in DEFAULT_RULES if r.name == name)


def only(name: str) -> BreakerMonitor:
    return BreakerMonitor([rule(name)])


def ev(
    seconds: float,
    kind: BreakerEventKind,
    action_type: str = "send_chat_message",
    severity: str | None = None,
) -> BreakerEvent:
    if kind is INCIDENT:
        return BreakerEvent(T0 + timedelta(seconds=seconds), kind, severity=severity or "critical")
    return BreakerEvent(T0 + timedelta(seconds=seconds), kind, action_type)


def feed(monitor: BreakerMonitor, events: list[BreakerEvent]) -> list[Trip]:
    trips: list[Trip] = []
    for event in events:
        trips.extend(monitor.observe(event))
    return trips


def stream(
    ok: int,
    failed: int,
    start: float = 0.0,
    spacing: float = 1.0,
    kind_fail: BreakerEventKind = FAIL,
) -> list[BreakerEvent]:
    """``ok`` successes then ``failed`` failures, one every ``spacing`` seconds."""
    kinds = [OK] * ok + [kind_fail] * failed
    return [ev(start + i * spacing, kind) for i, kind in enumerate(kinds)]


def test_defaults_match_the_spec() -> None:
    table = {
        r.name: (r.metric, r.threshold, format_window(r.window), r.action, r.severity)
        for r in DEFAULT_RULES
    }
    assert table == {
        "high_error_rate": (
            BreakerMetric.ERROR_RATE,
            0.05,
            "24h",
            BreakerAction.REVERT_TO_L3,
            Severity.CRITICAL,
        ),
        "repeated_command_failures": (
            BreakerMetric.COMMAND_FAILURES,
            3,
            "5m",
            BreakerAction.PAUSE_COMMAND_TYPE,
            Severity.HIGH,
        ),
        "critical_incident": (
            BreakerMetric.CRITICAL_INCIDENT,
            1,
            "1m",
            BreakerAction.REVERT_TO_L3,
            Severity.CRITICAL,
        ),
        "high_rollback_rate": (
            BreakerMetric.ROLLBACK_RATE,
            0.10,
            "15m",
            BreakerAction.ALERT_ONLY,
            Severity.MEDIUM,
        ),
    }


# --- high_error_rate: > 5 % over a day, at least 5 executions


def fast() -> BreakerMonitor:
    """SPEC's 5-minute error-rate rule with 10 executions: the window mechanics below."""
    return BreakerMonitor(
        [replace(rule("high_error_rate"), window=timedelta(minutes=5), min_events=10)]
    )


@pytest.mark.parametrize(
    ("ok", "failed", "trips"),
    [
        (19, 1, False),  # exactly 5 %: not greater
        (18, 1, True),  # 5.26 %
        (0, 1, False),  # 1 of 1 is below the minimum sample
        (3, 1, False),  # 4 executions: still below
        (4, 1, True),  # 5 executions, 20 %
        (8, 1, True),  # 9 executions, 11 %
        (100, 5, False),  # 4.76 %
        (94, 5, True),  # 5.05 %
    ],
)
def test_high_error_rate(ok: int, failed: int, trips: bool) -> None:
    got = feed(only("high_error_rate"), stream(ok, failed))
    assert bool(got) is trips
    if trips:
        (trip,) = got
        assert trip.action is BreakerAction.REVERT_TO_L3
        assert trip.severity is Severity.CRITICAL
        assert trip.value == pytest.approx(failed / (ok + failed))
        assert not trip.alert_only
        assert "error rate" in trip.message


@pytest.mark.parametrize(
    ("early_at", "trips"),
    [
        (0.0, True),  # exactly 5 min before the failure: out of (now - 5m, now]
        (0.5, False),  # just inside
    ],
)
def test_error_rate_event_exactly_one_window_old_is_out(early_at: float, trips: bool) -> None:
    monitor = fast()
    events = [ev(early_at, OK) for _ in range(10)] + [ev(200, OK) for _ in range(10)]
    assert feed(monitor, events) == []
    # early successes in: 1 of 21 (4.8 %); out: 1 of 11 (9.1 %)
    assert bool(monitor.observe(ev(300, FAIL))) is trips


def test_a_small_tenants_real_failure_trips_the_default_rule() -> None:
    """A few executions an hour: the day-long default sees them; SPEC's 5 minutes never does."""
    hours = [0, 1.5, 2, 4, 5.5, 7, 8]  # seven executions over a working day, the last fails
    kinds = [OK] * 6 + [FAIL]
    events = [ev(h * 3600, kind) for h, kind in zip(hours, kinds, strict=True)]
    (trip,) = feed(BreakerMonitor(), events)
    assert trip.key == "high_error_rate" and trip.value == pytest.approx(1 / 7)
    assert trip.action is BreakerAction.REVERT_TO_L3
    assert feed(fast(), events) == []


def test_error_rate_window_slides() -> None:
    monitor = fast()
    assert feed(monitor, stream(0, 9)) == []  # 9 failures: below the minimum sample
    # 20 successes 400 s later: had the failures stayed, 9 of 29 would trip
    assert feed(monitor, stream(20, 0, start=400)) == []
    (trip,) = feed(monitor, stream(0, 2, start=430))
    assert trip.value == pytest.approx(2 / 22)


def test_evaluate_can_trip_when_old_successes_leave_the_window() -> None:
    monitor = fast()
    events = stream(40, 0, start=0) + stream(18, 1, start=200)
    assert feed(monitor, events) == []  # 1 of 59
    # at t=338 only the t=39 success is left of the early ones: 1 of 20, exactly 5 %
    assert monitor.evaluate(T0 + timedelta(seconds=338)) == []
    # at t=339 it has left too: 1 of 19
    trips = monitor.evaluate(T0 + timedelta(seconds=339))
    assert [t.rule.name for t in trips] == ["high_error_rate"]
    assert trips[0].value == pytest.approx(1 / 19)


# --- repeated_command_failures: one action type fails ≥ 3 times in 5 min


def test_repeated_failures_trip_per_action_type() -> None:
    monitor = only("repeated_command_failures")
    assert monitor.observe(ev(0, FAIL, "send_follow_up_email")) == []
    assert monitor.observe(ev(10, FAIL, "send_follow_up_email")) == []
    assert monitor.observe(ev(20, FAIL, "schedule_meeting")) == []  # another type
    (trip,) = monitor.observe(ev(30, FAIL, "send_follow_up_email"))
    assert trip.action is BreakerAction.PAUSE_COMMAND_TYPE
    assert trip.action_type == "send_follow_up_email"
    assert trip.severity is Severity.HIGH
    assert trip.value == 3
    assert trip.key == "repeated_command_failures:send_follow_up_email"
    # a second type trips on its own
    monitor.observe(ev(40, FAIL, "schedule_meeting"))
    (other,) = monitor.observe(ev(50, FAIL, "schedule_meeting"))
    assert other.action_type == "schedule_meeting"
    assert monitor.tripped == {
        "repeated_command_failures:send_follow_up_email",
        "repeated_command_failures:schedule_meeting",
    }


@pytest.mark.parametrize(
    ("times", "trips"),
    [
        ((0, 100, 299.999), True),
        ((0, 100, 300), False),  # the first failure is exactly 5 min old: out
        ((0, 100), False),
    ],
)
def test_repeated_failures_window_edge(times: tuple[float, ...], trips: bool) -> None:
    monitor = only("repeated_command_failures")
    got = feed(monitor, [ev(t, FAIL, "log_interaction") for t in times])
    assert bool(got) is trips


def test_successes_do_not_count_as_failures() -> None:
    monitor = only("repeated_command_failures")
    assert feed(monitor, [ev(i, OK) for i in range(10)] + [ev(20, FAIL), ev(21, FAIL)]) == []


# --- critical_incident: any critical incident in 1 min


@pytest.mark.parametrize(
    ("severity", "trips"),
    [("critical", True), ("CRITICAL", True), ("high", False), ("medium", False)],
)
def test_critical_incident(severity: str, trips: bool) -> None:
    got = only("critical_incident").observe(ev(0, INCIDENT, severity=severity))
    assert bool(got) is trips
    if trips:
        assert got[0].action is BreakerAction.REVERT_TO_L3
        assert got[0].severity is Severity.CRITICAL


def test_executions_do_not_trip_critical_incident() -> None:
    assert feed(only("critical_incident"), stream(5, 5)) == []


# --- high_rollback_rate: > 10 % over 15 min, alert only


@pytest.mark.parametrize(
    ("ok", "rolled", "trips"),
    [
        (20, 2, False),  # exactly 10 %
        (20, 3, True),  # 15 %
        (9, 5, False),  # 9 successes: below the minimum sample
        (10, 2, True),
    ],
)
def test_high_rollback_rate(ok: int, rolled: int, trips: bool) -> None:
    got = feed(only("high_rollback_rate"), stream(ok, rolled, kind_fail=ROLLED))
    assert bool(got) is trips
    if trips:
        assert got[0].alert_only
        assert got[0].action is BreakerAction.ALERT_ONLY
        assert got[0].severity is Severity.MEDIUM


def test_rollback_rate_window_is_fifteen_minutes() -> None:
    monitor = only("high_rollback_rate")
    feed(monitor, stream(20, 0))
    # 15 min after the first success, it has left: 19 successes, 2 rollbacks = 10.5 %
    assert feed(monitor, [ev(899, ROLLED)]) == []  # 1 / 20
    assert [t.rule.name for t in monitor.observe(ev(900, ROLLED))] == ["high_rollback_rate"]


# --- tripped state


def test_no_re_trip_until_reset() -> None:
    monitor = BreakerMonitor()
    assert len(monitor.observe(ev(0, INCIDENT))) == 1
    assert monitor.observe(ev(1, INCIDENT)) == []
    assert monitor.evaluate(T0 + timedelta(seconds=2)) == []
    assert monitor.tripped == {"critical_incident"}
    assert monitor.reset("critical_incident") is True
    assert monitor.tripped == frozenset()
    # the incidents the operator dealt with do not trip it again ...
    assert monitor.evaluate(T0 + timedelta(seconds=3)) == []
    # ... a new one does
    assert len(monitor.observe(ev(4, INCIDENT))) == 1
    assert monitor.reset("critical_incident") is True
    assert monitor.reset("critical_incident") is False


def test_reset_of_one_action_type_leaves_the_others() -> None:
    monitor = only("repeated_command_failures")
    feed(
        monitor,
        [ev(i, FAIL, "a_type") for i in range(3)] + [ev(i, FAIL, "b_type") for i in range(3)],
    )
    assert monitor.reset("repeated_command_failures:a_type")
    assert monitor.tripped == {"repeated_command_failures:b_type"}
    assert monitor.observe(ev(10, FAIL, "b_type")) == []  # still tripped
    assert monitor.reset("repeated_command_failures")
    assert monitor.tripped == frozenset()


def test_tripped_state_survives_a_restart() -> None:
    monitor = BreakerMonitor(tripped={"critical_incident"})
    assert monitor.observe(ev(0, INCIDENT)) == []


def test_alert_only_flag_on_a_revert_rule() -> None:
    base = rule("critical_incident")
    soft = BreakerRule(
        base.name,
        base.metric,
        base.threshold,
        base.window,
        base.action,
        base.severity,
        alert_only=True,
    )
    (trip,) = BreakerMonitor([soft]).observe(ev(0, INCIDENT))
    assert trip.alert_only
    assert trip.action is BreakerAction.REVERT_TO_L3  # what it would do when enforcing


def test_disabled_rules_are_not_watched() -> None:
    base = rule("critical_incident")
    off = BreakerRule(
        base.name,
        base.metric,
        base.threshold,
        base.window,
        base.action,
        base.severity,
        enabled=False,
    )
    assert BreakerMonitor([off]).observe(ev(0, INCIDENT)) == []


def test_reset_unknown_rule() -> None:
    with pytest.raises(NotFound):
        BreakerMonitor().reset("no_such_rule")


def test_late_events_are_placed_in_time_order() -> None:
    monitor = only("repeated_command_failures")
    monitor.observe(ev(100, FAIL, "x"))
    monitor.observe(ev(50, FAIL, "x"))  # late, still inside the window
    monitor.observe(ev(-250, FAIL, "x"))  # late and already outside (t ≤ 100 - 300)
    assert monitor.tripped == frozenset()
    (trip,) = monitor.observe(ev(340, FAIL, "x"))  # window (40, 340]: 50, 100, 340
    assert trip.value == 3


def test_clock_never_goes_back() -> None:
    monitor = BreakerMonitor()
    monitor.observe(ev(100, OK))
    monitor.evaluate(T0)
    assert monitor.now == T0 + timedelta(seconds=100)


def test_default_monitor_on_a_mixed_stream() -> None:
    monitor = BreakerMonitor()
    events = stream(30, 0)
    events += [ev(40 + i, FAIL, "send_proposal") for i in range(3)]
    trips = feed(monitor, events)
    # 3 of 33 = 9 % error rate trips, and the same type failing 3 times pauses it
    assert sorted(t.key for t in trips) == [
        "high_error_rate",
        "repeated_command_failures:send_proposal",
    ]


# --- parsing


def test_parse_rules_round_trip() -> None:
    raw = [
        {
            "name": r.name,
            "metric": r.metric.value,
            "threshold": r.threshold,
            "window": format_window(r.window),
            "action": r.action.value,
            "severity": r.severity.value,
            "min_events": r.min_events,
        }
        for r in DEFAULT_RULES
    ]
    assert parse_rules(raw) == DEFAULT_RULES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(days=1)),
    ],
)
def test_parse_window(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


GOOD_RULE: dict[str, Any] = {
    "name": "errors",
    "metric": "error_rate",
    "threshold": 0.05,
    "window": "5m",
    "action": "revert_to_l3",
    "severity": "critical",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "latency"}, "metric"),
        ({"window": "5x"}, "window"),
        ({"window": "-5m"}, "window"),
        ({"window": "0m"}, "window"),
        ({"window": "25h"}, "window"),
        ({"window": 5}, "window"),
        ({"action": "reboot"}, "action"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": "5%"}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"metric": "command_failures", "threshold": 0}, "threshold"),
        ({"metric": "command_failures", "threshold": 2.5}, "threshold"),
        ({"action": "pause_command_type"}, "action"),
        ({"min_events": 0}, "min_events"),
        ({"alert_only": "yes"}, "alert_only"),
        ({"name": "Bad Name"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_parse_rules_errors_name_rule_and_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_rules([{**GOOD_RULE, **change}])
    assert info.value.details["field"] == field
    assert field in info.value.message


def test_parse_rules_missing_field_and_duplicates() -> None:
    partial = {k: v for k, v in GOOD_RULE.items() if k != "window"}
    with pytest.raises(InvalidArgument) as info:
        parse_rules([partial])
    assert info.value.details == {"rule": "errors", "field": "window"}
    with pytest.raises(InvalidArgument) as info:
        parse_rules([GOOD_RULE, GOOD_RULE])
    assert info.value.details["field"] == "name"


def test_parse_rules_defaults() -> None:
    (rate,) = parse_rules([GOOD_RULE])
    assert (rate.min_events, rate.alert_only, rate.enabled) == (10, False, True)
    (count,) = parse_rules([{**GOOD_RULE, "metric": "command_failures", "threshold": 3}])
    assert count.min_events == 1 and count.threshold == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"at": datetime(2025, 3, 3), "kind": OK, "action_type": "x"},
        {"at": T0, "kind": INCIDENT},
        {"at": T0, "kind": FAIL},
    ],
)
def test_bad_events(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        BreakerEvent(**kwargs)


# --- more edges: windows of count rules, and eviction exactly at the boundary


@pytest.mark.parametrize(("second_at", "trips"), [(59.999, True), (60.0, False)])
def test_incident_count_rule_window_boundary(second_at: float, trips: bool) -> None:
    (twice,) = parse_rules(
        [
            {
                "name": "two_criticals",
                "metric": "critical_incident",
                "threshold": 2,
                "window": "1m",
                "action": "revert_to_l3",
                "severity": "critical",
            }
        ]
    )
    monitor = BreakerMonitor([twice])
    assert monitor.observe(ev(0, INCIDENT)) == []
    # The first incident is exactly one window old at 60 s: out of (now - 1m, now].
    assert bool(monitor.observe(ev(second_at, INCIDENT))) is trips


@pytest.mark.parametrize(("now_at", "trips"), [(299.999, False), (300.0, True)])
def test_evaluate_evicts_exactly_at_the_window_boundary(now_at: float, trips: bool) -> None:
    monitor = fast()
    # 10 successes at 0 s, then 9 successes and 1 failure at 100 s: 1 of 20 = 5 %, no trip.
    assert feed(monitor, stream(10, 0) + stream(9, 1, start=100, spacing=0.0)) == []
    # At 300 s the first ten are exactly 5 min old and leave: 1 of 10 = 10 %.
    assert bool(monitor.evaluate(T0 + timedelta(seconds=now_at))) is trips


def test_every_default_rule_trips_once_on_one_stream() -> None:
    monitor = BreakerMonitor()
    events = stream(40, 0)  # 40 successes in 40 s
    events += [ev(50 + i, ROLLED) for i in range(5)]  # 5 / 40 = 12.5 % rollbacks
    events += [ev(60 + i, FAIL, "log_interaction") for i in range(3)]  # 3 / 43 = 7 % errors
    events += [ev(70, INCIDENT, severity="critical")]
    events += [ev(80 + i, FAIL, "log_interaction") for i in range(3)]  # no second trip
    trips = feed(monitor, events)
    assert [(t.key, t.action) for t in trips] == [
        ("high_rollback_rate", BreakerAction.ALERT_ONLY),
        ("high_error_rate", BreakerAction.REVERT_TO_L3),
        ("repeated_command_failures:log_interaction", BreakerAction.PAUSE_COMMAND_TYPE),
        ("critical_incident", BreakerAction.REVERT_TO_L3),
    ]


def auto(seconds: float, kind: BreakerEventKind, **kw: Any) -> BreakerEvent:
    """An event from an autonomous action (approved by policy)."""
    return BreakerEvent(T0 + timedelta(seconds=seconds), kind, autonomous=True, **kw)


@pytest.mark.parametrize(
    ("name", "events", "autonomous"),
    [
        # Failures of autonomous actions trip the error rate: the trip is theirs.
        (
            "high_error_rate",
            [ev(n, OK) for n in range(9)] + [auto(9, FAIL, action_type="a")],
            True,
        ),
        # Autonomous successes do not make people's failures autonomous.
        (
            "high_error_rate",
            [auto(n, OK, action_type="a") for n in range(9)] + [ev(9, FAIL)],
            False,
        ),
        (
            "repeated_command_failures",
            [ev(0, FAIL), auto(1, FAIL, action_type="send_chat_message"), ev(2, FAIL)],
            True,
        ),
        ("repeated_command_failures", [ev(n, FAIL) for n in range(3)], False),
        ("critical_incident", [auto(0, INCIDENT, severity="critical")], True),
        ("critical_incident", [ev(0, INCIDENT)], False),
        (
            "high_rollback_rate",
            [ev(n, OK) for n in range(10)] + [auto(10, ROLLED, action_type="a")] * 2,
            True,
        ),
    ],
)
def test_a_trip_is_autonomous_when_autonomous_events_caused_it(
    name: str, events: list[BreakerEvent], autonomous: bool
) -> None:
    (trip,) = feed(only(name), events)
    assert trip.autonomous is autonomous


def test_an_autonomous_failure_that_left_the_window_no_longer_counts() -> None:
    monitor = only("repeated_command_failures")
    feed(monitor, [auto(0, FAIL, action_type="send_chat_message"), ev(200, FAIL)])
    (trip,) = feed(monitor, [ev(301, FAIL), ev(302, FAIL)])  # the first is out after 300 s
    assert trip.autonomous is False
