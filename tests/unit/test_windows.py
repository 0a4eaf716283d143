from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from agentd.core.windows import (
    always_open,
    day_bounds,
    first_instant_at,
    is_open,
    next_open,
    parse_window,
    validate_window,
)
from agentd.errors import InvalidArgument

WEEKDAYS = range(5)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# 2025-03-03 is a Monday.
@pytest.mark.parametrize(
    ("zone", "days", "start", "end", "now", "expected"),
    [
        ("UTC", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 3, 9, 0), True),
        ("UTC", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 3, 8, 59, 59), False),
        ("UTC", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 3, 16, 59, 59), True),
        ("UTC", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 3, 17, 0), False),  # end is exclusive
        ("UTC", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 8, 12, 0), False),  # Saturday
        # crossing midnight, Friday only: Saturday 05:00 still belongs to Friday's window
        ("UTC", [4], "22:00", "06:00", utc(2025, 3, 7, 22, 0), True),
        ("UTC", [4], "22:00", "06:00", utc(2025, 3, 8, 5, 59), True),
        ("UTC", [4], "22:00", "06:00", utc(2025, 3, 8, 6, 0), False),
        ("UTC", [4], "22:00", "06:00", utc(2025, 3, 8, 22, 30), False),  # Saturday did not open
        ("UTC", [4], "22:00", "06:00", utc(2025, 3, 7, 5, 0), False),  # Thursday did not open
        # the same instant seen from two zones
        ("Europe/Berlin", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 3, 8, 30), True),  # 09:30 CET
        ("America/New_York", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 3, 8, 30), False),  # 03:30
        ("Asia/Tokyo", [0], "09:00", "17:00", utc(2025, 3, 2, 23, 30), False),  # Mon 08:30 JST
        ("Asia/Tokyo", [0], "09:00", "17:00", utc(2025, 3, 3, 0, 30), True),  # Mon 09:30 JST
        # always open
        ("UTC", range(7), "00:00", "00:00", utc(2025, 3, 9, 23, 59, 59), True),
        ("Pacific/Auckland", range(7), "00:00", "00:00", utc(2025, 4, 5, 14, 30), True),
        # one whole day
        ("UTC", [2], "00:00", "00:00", utc(2025, 3, 5, 0, 0), True),
        ("UTC", [2], "00:00", "00:00", utc(2025, 3, 6, 0, 0), False),
        # summer time: 09:00 in New York is 13:00 UTC in July, 14:00 in January
        ("America/New_York", WEEKDAYS, "09:00", "17:00", utc(2025, 7, 7, 13, 0), True),
        ("America/New_York", WEEKDAYS, "09:00", "17:00", utc(2025, 1, 6, 13, 0), False),
    ],
)
def test_is_open(zone: str, days: Any, start: str, end: str, now: datetime, expected: bool) -> None:
    assert is_open(validate_window(zone, days, start, end), now) is expected


@pytest.mark.parametrize(
    ("zone", "days", "start", "end", "now", "expected"),
    [
        # open now: now itself
        ("UTC", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 3, 10, 0), utc(2025, 3, 3, 10, 0)),
        ("UTC", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 3, 7, 0), utc(2025, 3, 3, 9, 0)),
        # Friday after closing → Monday
        ("UTC", WEEKDAYS, "09:00", "17:00", utc(2025, 3, 7, 17, 0), utc(2025, 3, 10, 9, 0)),
        # crossing midnight, Friday only: Saturday morning after close → next Friday 22:00
        ("UTC", [4], "22:00", "06:00", utc(2025, 3, 8, 6, 0), utc(2025, 3, 14, 22, 0)),
        # Berlin 22:00 is 21:00 UTC in winter
        (
            "Europe/Berlin",
            range(7),
            "22:00",
            "06:00",
            utc(2025, 1, 10, 12, 0),
            utc(2025, 1, 10, 21, 0),
        ),
        # Tokyo Monday 09:00 is Sunday 00:00 UTC
        ("Asia/Tokyo", [0], "09:00", "17:00", utc(2025, 3, 1, 0, 0), utc(2025, 3, 3, 0, 0)),
        # DST spring forward in New York (2025-03-09 02:00 → 03:00):
        # Saturday 09:00 EST = 14:00Z, Sunday 09:00 EDT = 13:00Z
        (
            "America/New_York",
            [5, 6],
            "09:00",
            "17:00",
            utc(2025, 3, 8, 0, 0),
            utc(2025, 3, 8, 14, 0),
        ),
        (
            "America/New_York",
            [5, 6],
            "09:00",
            "17:00",
            utc(2025, 3, 8, 23, 0),
            utc(2025, 3, 9, 13, 0),
        ),
        # a start inside the gap (02:30 never happens) opens when the clock jumps to 03:00 EDT
        ("America/New_York", [6], "02:30", "05:00", utc(2025, 3, 9, 5, 0), utc(2025, 3, 9, 7, 0)),
        # DST fall back (2025-11-02 02:00 EDT → 01:00 EST): 01:30 happens twice; the first counts
        (
            "America/New_York",
            [6],
            "01:30",
            "04:00",
            utc(2025, 11, 2, 4, 0),
            utc(2025, 11, 2, 5, 30),
        ),
        # ... and a short window reopens at the second 01:30 (06:30Z, 01:30 EST)
        (
            "America/New_York",
            [6],
            "01:30",
            "01:45",
            utc(2025, 11, 2, 5, 50),
            utc(2025, 11, 2, 6, 30),
        ),
        # ... and a window the clock re-enters when it is set back reopens at the change
        (
            "America/New_York",
            [6],
            "00:30",
            "01:15",
            utc(2025, 11, 2, 5, 20),
            utc(2025, 11, 2, 6, 0),
        ),
        # Europe changes on the last Sunday of March (2025-03-30 02:00 CET → 03:00 CEST)
        (
            "Europe/Paris",
            range(7),
            "08:00",
            "09:00",
            utc(2025, 3, 29, 8, 0),
            utc(2025, 3, 30, 6, 0),
        ),
    ],
)
def test_next_open(
    zone: str, days: Any, start: str, end: str, now: datetime, expected: datetime
) -> None:
    window = validate_window(zone, days, start, end)
    opens = next_open(window, now)
    assert opens == expected
    assert opens.tzinfo is UTC
    assert is_open(window, opens)


@pytest.mark.parametrize(
    "zone", ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]
)
def test_next_open_is_the_first_open_minute(zone: str) -> None:
    # brute force over a fortnight around a DST change, minute by minute
    window = validate_window(zone, [0, 2, 6], "01:30", "02:15")
    now = utc(2025, 3, 27, 0, 0)
    end = now + timedelta(days=14)
    while now < end:
        opens = next_open(window, now)
        probe = now
        while not is_open(window, probe):
            probe += timedelta(minutes=1)
        assert opens <= probe
        assert is_open(window, opens)
        assert probe - opens < timedelta(minutes=1)
        now = probe + timedelta(hours=7)


def test_always_open() -> None:
    window = always_open("Europe/Paris")
    now = utc(2025, 3, 30, 1, 30)
    assert is_open(window, now)
    assert next_open(window, now) == now


@pytest.mark.parametrize(
    ("zone", "days", "start", "end", "field"),
    [
        ("Mars/Olympus", WEEKDAYS, "09:00", "17:00", "timezone"),
        ("../etc/passwd", WEEKDAYS, "09:00", "17:00", "timezone"),
        ("", WEEKDAYS, "09:00", "17:00", "timezone"),
        ("UTC", [7], "09:00", "17:00", "days"),
        ("UTC", [-1], "09:00", "17:00", "days"),
        ("UTC", ["funday"], "09:00", "17:00", "days"),
        ("UTC", [True], "09:00", "17:00", "days"),
        ("UTC", [], "09:00", "17:00", "days"),
        ("UTC", WEEKDAYS, "24:00", "17:00", "start"),
        ("UTC", WEEKDAYS, "9am", "17:00", "start"),
        ("UTC", WEEKDAYS, "09:00", "17:60", "end"),
    ],
)
def test_validate_window_rejects(zone: str, days: Any, start: str, end: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_window(zone, days, start, end)
    assert info.value.details["field"] == field


def test_validate_window_accepts_names_and_times() -> None:
    window = validate_window("UTC", ["mon", "Friday", 2], time(8, 30), "18:00:30")
    assert window.days == frozenset({0, 2, 4})
    assert (window.start, window.end) == (time(8, 30), time(18, 0, 30))


def test_parse_window() -> None:
    window = parse_window({"timezone": "Europe/Paris", "start": "22:00", "end": "06:00"})
    assert window.days == frozenset(range(7))
    assert window.crosses_midnight
    with pytest.raises(InvalidArgument):
        parse_window({"timezone": "UTC", "start": "09:00", "end": "17:00", "dayz": [1]})
    with pytest.raises(InvalidArgument):
        parse_window({"timezone": "UTC", "start": "09:00"})


def test_naive_now_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        is_open(always_open(), datetime(2025, 3, 3, 9))


@pytest.mark.parametrize(
    ("now", "zone", "start", "end"),
    [
        (utc(2025, 3, 3, 12), None, utc(2025, 3, 3), utc(2025, 3, 4)),
        # 23:30 UTC is already the next day in Berlin
        (utc(2025, 3, 3, 23, 30), "Europe/Berlin", utc(2025, 3, 3, 23), utc(2025, 3, 4, 23)),
        # the spring-forward day in New York is 23 hours long
        (utc(2025, 3, 9, 12), "America/New_York", utc(2025, 3, 9, 5), utc(2025, 3, 10, 4)),
        # the fall-back day is 25 hours long
        (utc(2025, 11, 2, 12), "America/New_York", utc(2025, 11, 2, 4), utc(2025, 11, 3, 5)),
    ],
)
def test_day_bounds(now: datetime, zone: str | None, start: datetime, end: datetime) -> None:
    assert day_bounds(now, zone) == (start, end)


def test_first_instant_at_in_a_gap_is_the_transition() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    assert first_instant_at(datetime(2025, 3, 9, 2, 30), zone) == utc(2025, 3, 9, 7, 0)
    assert first_instant_at(datetime(2025, 11, 2, 1, 30), zone) == utc(2025, 11, 2, 5, 30)
