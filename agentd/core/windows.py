"""Per-tenant execution windows: when approved changes may run, in the tenant's wall-clock time.

A window is a set of weekdays (0 = Monday) and a start and end wall-clock time
in an IANA time zone. The window is half-open, ``[start, end)``. When ``end`` is
at or before ``start`` the window crosses midnight (22:00–06:00), and the day
that counts is the day it *opened*: a Friday 22:00–06:00 window is open until
Saturday 06:00 even if Saturday is not in ``days``. So ``00:00–00:00`` is a
whole day, and all seven days at ``00:00–00:00`` is always open.

Everything is wall-clock time, which is what an operator writes: across a DST
change a 09:00–17:00 window still opens at 09:00 local time, so its UTC
instant moves by an hour. A start time that does not exist on a given day (it
falls in a spring-forward gap) opens at the first instant the local clock
reads later than it; one that exists twice (fall-back) opens at the first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentd.errors import InvalidArgument

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_LOOKUP = {name: i for names in (DAY_NAMES, _FULL_DAY_NAMES) for i, name in enumerate(names)}
ALL_DAYS = frozenset(range(7))
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
# Far enough to cover a weekly window plus a day either side of a midnight crossing.
_SEARCH_DAYS = 16


@dataclass(frozen=True)
class ExecutionWindow:
    """When executions may start, in a tenant's local time (see the module notes).

    Build one with :func:`validate_window` or :func:`parse_window`.
    """

    timezone: str
    days: frozenset[int]
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        """Return whether the window ends on the day after it opens."""
        return self.end <= self.start

    @property
    def zone(self) -> ZoneInfo:
        """Return the window's time zone."""
        return ZoneInfo(self.timezone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise InvalidArgument(f"unknown time zone {name!r}", details={"field": "timezone"}) from exc


def _day(value: int | str) -> int:
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _DAY_LOOKUP:
            return _DAY_LOOKUP[key]
        raise InvalidArgument(f"bad day {value!r}", details={"field": "days"})
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 6:
        raise InvalidArgument(
            f"bad day {value!r}; expected 0 (Monday) to 6 (Sunday)", details={"field": "days"}
        )
    return value


def _time(name: str, value: time | str) -> time:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise InvalidArgument(
                f"{name} must be a wall-clock time without a zone", details={"field": name}
            )
        return value
    if isinstance(value, str):
        match = _TIME_RE.match(value.strip())
        if match:
            return time(int(match[1]), int(match[2]), int(match[3] or 0))
    raise InvalidArgument(f"bad {name} time {value!r}; expected HH:MM", details={"field": name})


def validate_window(
    timezone: str, days: Iterable[int | str], start: time | str, end: time | str
) -> ExecutionWindow:
    """Validate and build an execution window.

    ``days`` are 0 (Monday) to 6 (Sunday) or day names ("mon", "monday");
    ``start``/``end`` are naive :class:`~datetime.time` or "HH:MM[:SS]".

    :raises InvalidArgument: unknown time zone, bad or no day, bad time.
    """
    if not isinstance(timezone, str) or not timezone:
        raise InvalidArgument("timezone must be a zone name", details={"field": "timezone"})
    _zone(timezone)
    if isinstance(days, str):
        raise InvalidArgument("days must be a list", details={"field": "days"})
    day_set = frozenset(_day(d) for d in days)
    if not day_set:
        raise InvalidArgument("a window needs at least one day", details={"field": "days"})
    return ExecutionWindow(timezone, day_set, _time("start", start), _time("end", end))


def parse_window(raw: Mapping[str, Any]) -> ExecutionWindow:
    """Build a window from a configuration table (``timezone``, ``days``, ``start``, ``end``).

    ``days`` defaults to every day.

    :raises InvalidArgument: a missing or unknown key, or any :func:`validate_window` error.
    """
    unknown = sorted(set(raw) - {"timezone", "days", "start", "end"})
    if unknown:
        raise InvalidArgument(f"unknown window key {unknown[0]!r}", details={"field": unknown[0]})
    for key in ("timezone", "start", "end"):
        if key not in raw:
            raise InvalidArgument(f"window needs {key!r}", details={"field": key})
    return validate_window(raw["timezone"], raw.get("days", range(7)), raw["start"], raw["end"])


def always_open(timezone: str = "UTC") -> ExecutionWindow:
    """Return a window that is always open (every day, 00:00–00:00)."""
    return validate_window(timezone, ALL_DAYS, time(0), time(0))


def _utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware", details={"field": name})
    return value.astimezone(UTC)


def is_open(window: ExecutionWindow, now_utc: datetime) -> bool:
    """Return whether ``window`` is open at the instant ``now_utc``.

    :raises InvalidArgument: ``now_utc`` is naive.
    """
    local = _utc("now_utc", now_utc).astimezone(window.zone)
    wall, weekday = local.time(), local.weekday()
    if not window.crosses_midnight:
        return weekday in window.days and window.start <= wall < window.end
    opened_today = weekday in window.days and wall >= window.start
    opened_yesterday = (weekday - 1) % 7 in window.days and wall < window.end
    return opened_today or opened_yesterday


def _local_naive(instant: datetime, zone: tzinfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _exact_instants(wall: datetime, zone: tzinfo) -> list[datetime]:
    """Return the UTC instants at which the local clock reads ``wall`` (0, 1 or 2)."""
    found: set[datetime] = set()
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if _local_naive(instant, zone) == wall:
            found.add(instant)
    return sorted(found)


def first_instant_at(wall: datetime, zone: tzinfo) -> datetime:
    """Return the first UTC instant at which the local clock in ``zone`` reads ``wall`` or later.

    For a wall time that exists twice this is the first; for one that does not
    exist (a DST gap) it is the transition that skips it.
    """
    exact = _exact_instants(wall, zone)
    if exact:
        return exact[0]
    guesses = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
    low, high = int(min(guesses).timestamp()), int(max(guesses).timestamp()) + 1
    # Local time is monotonic across a gap; bisect to the second the clock jumps past ``wall``.
    while high - low > 1:
        mid = (low + high) // 2
        if _local_naive(datetime.fromtimestamp(mid, UTC), zone) >= wall:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def _transitions(zone: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """Return the UTC instants in ``[start, end)`` at which ``zone``'s UTC offset changes."""
    out: list[datetime] = []
    step = timedelta(hours=1)
    here, offset = start, start.astimezone(zone).utcoffset()
    while here < end:
        nxt = here + step
        nxt_offset = nxt.astimezone(zone).utcoffset()
        if nxt_offset != offset:
            low, high = int(here.timestamp()), int(nxt.timestamp())
            while high - low > 1:
                mid = (low + high) // 2
                if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == nxt_offset:
                    high = mid
                else:
                    low = mid
            out.append(datetime.fromtimestamp(high, UTC))
        here, offset = nxt, nxt_offset
    return out


def next_open(window: ExecutionWindow, now_utc: datetime) -> datetime:
    """Return the first instant at or after ``now_utc`` at which ``window`` is open (UTC).

    ``now_utc`` itself when the window is open now.

    :raises InvalidArgument: ``now_utc`` is naive, or the window never opens
        (every opening swallowed by DST gaps, which no real zone does).
    """
    now = _utc("now_utc", now_utc)
    if is_open(window, now):
        return now
    zone = window.zone
    today = now.astimezone(zone).date()
    candidates: list[datetime] = []
    for offset in range(-1, _SEARCH_DAYS):
        day = today + timedelta(days=offset)
        if day.weekday() in window.days:
            wall = datetime.combine(day, window.start)
            # both instants of a wall time that happens twice (a short window reopens)
            candidates.extend(_exact_instants(wall, zone))
    # Transitions: a start inside a spring-forward gap opens when the clock jumps
    # past it, and a clock set back can re-enter a window without crossing its start.
    candidates.extend(
        _transitions(zone, now - timedelta(days=1), now + timedelta(days=_SEARCH_DAYS))
    )
    opening = [c for c in sorted(candidates) if c > now and is_open(window, c)]
    if not opening:
        raise InvalidArgument("the execution window never opens", details={"field": "window"})
    return opening[0]


def day_bounds(now_utc: datetime, timezone: str | None = None) -> tuple[datetime, datetime]:
    """Return the UTC instants where the local day containing ``now_utc`` starts and ends.

    ``timezone`` ``None`` means UTC. A day is ``[start, end)``; across a DST
    change it lasts 23 or 25 hours.

    :raises InvalidArgument: naive ``now_utc`` or unknown time zone.
    """
    now = _utc("now_utc", now_utc)
    zone: tzinfo = UTC if timezone is None else _zone(timezone)
    local_day: date = now.astimezone(zone).date()
    start = first_instant_at(datetime.combine(local_day, time(0)), zone)
    end = first_instant_at(datetime.combine(local_day + timedelta(days=1), time(0)), zone)
    return start, end
