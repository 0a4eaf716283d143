"""Circuit breakers: rules as data, and a sliding-window monitor that trips them.

Default rules (SPEC §7):

==========================  ===============================  ======  ==================  ========
Rule                        Condition                        Window  Action              Severity
==========================  ===============================  ======  ==================  ========
high_error_rate             error rate > 5 %, ≥ 5 executions 24h     revert_to_l3        critical
repeated_command_failures   one action type fails ≥ 3 times  5m      pause_command_type  high
critical_incident           ≥ 1 incident of severity         1m      revert_to_l3        critical
                            critical
high_rollback_rate          rollback rate > 10 %             15m     alert_only          medium
==========================  ===============================  ======  ==================  ========

Edges, precisely:

- Rates trip when *strictly* greater than the threshold (exactly 5 % does
  not trip); counts trip when greater than or equal to it (3 failures do).
- A window is half-open, ``(now - window, now]``: an event exactly one window
  old is out. ``now`` is the newest time the monitor has seen, from an event
  or from :meth:`BreakerMonitor.evaluate`; the monitor never goes back in time.
- A rate rule needs ``min_events`` events in its denominator before it may
  trip, so one failure out of one execution is not a 100 % error rate. Count
  rules ignore ``min_events``.
- ``high_error_rate`` watches a day, from 5 executions: SPEC §7's 5 minutes
  with 10 executions never trips for a small tenant (a few executions an
  hour never make 10 in 5 minutes), while one failure among its first 19
  executions of a day is exactly the failure it should stop on. A busy
  tenant's burst of one action type failing trips
  ``repeated_command_failures`` within 5 minutes; a deployment that wants
  the fast rate rule sets ``window = "5m"`` and ``min_events = 10``.
- The breaker's error rate is failed / (succeeded + failed) executions in the
  window; its rollback rate is rollbacks / successes in the window (the
  denominator for ``min_events`` is the successes).

A trip is ``autonomous`` when any of the events that make its rule trip
(the failures, rollbacks or critical incidents in its window) came from an
autonomous action, so the incident it opens is counted as theirs.

A tripped rule does not trip again until :meth:`BreakerMonitor.reset`; for
``repeated_command_failures`` each action type trips (and resets) on its own,
keyed ``"rule:action_type"``. Reset also forgets the rule's window, so the
events an operator has just dealt with do not trip it again. A trip of a rule
with ``alert_only`` set (or action ``alert_only``) must only alert: the trip
says so in ``alert_only``. Persisting tripped state is the caller's job; pass
it back in with ``tripped=`` on start-up.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from agentd.errors import InvalidArgument, NotFound

DEFAULT_RATE_MIN_EVENTS = 10
#: The error-rate rule's sample: executions in its (day-long) window before it may trip.
ERROR_RATE_MIN_EVENTS = 5
MAX_WINDOW = timedelta(days=1)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_WINDOW_RE = re.compile(r"^(\d+)([smh])$")
_UNITS = {"s": 1, "m": 60, "h": 3600}
_RULE_KEYS = frozenset(
    {
        "name",
        "metric",
        "threshold",
        "window",
        "action",
        "severity",
        "alert_only",
        "min_events",
        "enabled",
    }
)


class BreakerMetric(StrEnum):
    """What a breaker rule watches."""

    ERROR_RATE = "error_rate"
    COMMAND_FAILURES = "command_failures"
    CRITICAL_INCIDENT = "critical_incident"
    ROLLBACK_RATE = "rollback_rate"

    @property
    def is_rate(self) -> bool:
        """Return whether the metric is a rate (vs a count)."""
        return self in (BreakerMetric.ERROR_RATE, BreakerMetric.ROLLBACK_RATE)


class BreakerAction(StrEnum):
    """What a trip asks for."""

    REVERT_TO_L3 = "revert_to_l3"
    PAUSE_COMMAND_TYPE = "pause_command_type"
    ALERT_ONLY = "alert_only"


class Severity(StrEnum):
    """Alert severity of a trip (and of an incident)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class BreakerEventKind(StrEnum):
    """What happened, as the breaker monitor is told."""

    EXECUTION_SUCCEEDED = "execution_succeeded"
    EXECUTION_FAILED = "execution_failed"
    EXECUTION_ROLLED_BACK = "execution_rolled_back"
    INCIDENT = "incident"


@dataclass(frozen=True)
class BreakerRule:
    """One circuit-breaker rule (see the module notes for the exact edges)."""

    name: str
    metric: BreakerMetric
    threshold: float
    window: timedelta
    action: BreakerAction
    severity: Severity
    alert_only: bool = False
    min_events: int = 1
    enabled: bool = True

    @property
    def alerts_only(self) -> bool:
        """Return whether a trip of this rule must only alert."""
        return self.alert_only or self.action is BreakerAction.ALERT_ONLY

    def breached(self, value: float, sample: int) -> bool:
        """Return whether ``value`` (over ``sample`` events) breaks this rule."""
        if self.metric.is_rate:
            return sample >= self.min_events and value > self.threshold
        return value >= self.threshold


DEFAULT_RULES: tuple[BreakerRule, ...] = (
    BreakerRule(
        "high_error_rate",
        BreakerMetric.ERROR_RATE,
        0.05,
        timedelta(hours=24),
        BreakerAction.REVERT_TO_L3,
        Severity.CRITICAL,
        min_events=ERROR_RATE_MIN_EVENTS,
    ),
    BreakerRule(
        "repeated_command_failures",
        BreakerMetric.COMMAND_FAILURES,
        3,
        timedelta(minutes=5),
        BreakerAction.PAUSE_COMMAND_TYPE,
        Severity.HIGH,
    ),
    BreakerRule(
        "critical_incident",
        BreakerMetric.CRITICAL_INCIDENT,
        1,
        timedelta(minutes=1),
        BreakerAction.REVERT_TO_L3,
        Severity.CRITICAL,
    ),
    BreakerRule(
        "high_rollback_rate",
        BreakerMetric.ROLLBACK_RATE,
        0.10,
        timedelta(minutes=15),
        BreakerAction.ALERT_ONLY,
        Severity.MEDIUM,
        min_events=DEFAULT_RATE_MIN_EVENTS,
    ),
)


def parse_window(text: str) -> timedelta:
    """Parse a window written like "30s", "5m" or "1h" (at most one day).

    :raises InvalidArgument: malformed, zero, or longer than a day.
    """
    match = _WINDOW_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise InvalidArgument(
            f"bad window {text!r}; expected a number and s, m or h, like 5m",
            details={"field": "window"},
        )
    window = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if window <= timedelta(0) or window > MAX_WINDOW:
        raise InvalidArgument(
            f"window {text!r} must be longer than 0 and at most 24h", details={"field": "window"}
        )
    return window


def format_window(window: timedelta) -> str:
    """Write a window the way rules spell it ("5m", "1h", "90s")."""
    seconds = int(window.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _enum(rule: str, key: str, enum: type[StrEnum], value: Any) -> Any:
    try:
        return enum(str(value).lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidArgument(
            f"breaker rule {rule!r}: unknown {key} {value!r} (expected one of {allowed})",
            details={"rule": rule, "field": key},
        ) from None


def _parse_rule(index: int, raw: Mapping[str, Any]) -> BreakerRule:
    name = raw.get("name")
    label = name if isinstance(name, str) else f"#{index + 1}"

    def bad(key: str, why: str) -> InvalidArgument:
        return InvalidArgument(
            f"breaker rule {label!r}: {key} {why}", details={"rule": label, "field": key}
        )

    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise bad(unknown[0], "is not a rule setting")
    for key in ("name", "metric", "threshold", "window", "action", "severity"):
        if key not in raw:
            raise bad(key, "is missing")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise bad("name", "must be lower-case letters, digits and underscores")
    metric = _enum(label, "metric", BreakerMetric, raw["metric"])
    action = _enum(label, "action", BreakerAction, raw["action"])
    severity = _enum(label, "severity", Severity, raw["severity"])
    try:
        window = parse_window(raw["window"])
    except InvalidArgument as exc:
        raise bad("window", f"{raw['window']!r} is malformed: {exc.message}") from None
    threshold = raw["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise bad("threshold", "must be a number")
    if metric.is_rate and not 0 <= threshold < 1:
        raise bad("threshold", f"{threshold!r} must be a fraction in [0, 1), like 0.05")
    if not metric.is_rate and (threshold < 1 or float(threshold) != int(threshold)):
        raise bad("threshold", f"{threshold!r} must be a whole count of at least 1")
    if action is BreakerAction.PAUSE_COMMAND_TYPE and metric is not BreakerMetric.COMMAND_FAILURES:
        raise bad("action", "pause_command_type needs metric command_failures")
    min_events = raw.get("min_events", DEFAULT_RATE_MIN_EVENTS if metric.is_rate else 1)
    if isinstance(min_events, bool) or not isinstance(min_events, int) or min_events < 1:
        raise bad("min_events", "must be a whole number of at least 1")
    flags = {}
    for key, default in (("alert_only", False), ("enabled", True)):
        flags[key] = raw.get(key, default)
        if not isinstance(flags[key], bool):
            raise bad(key, "must be true or false")
    return BreakerRule(
        name,
        metric,
        float(threshold) if metric.is_rate else int(threshold),
        window,
        action,
        severity,
        alert_only=flags["alert_only"],
        min_events=min_events,
        enabled=flags["enabled"],
    )


def parse_rules(raw: Sequence[Mapping[str, Any]]) -> tuple[BreakerRule, ...]:
    """Validate breaker rules from configuration (windows written like "5m").

    :raises InvalidArgument: naming the rule and the field that is wrong.
    """
    rules: list[BreakerRule] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidArgument(
                f"breaker rule #{index + 1} must be a table", details={"rule": f"#{index + 1}"}
            )
        rule = _parse_rule(index, item)
        if rule.name in seen:
            raise InvalidArgument(
                f"breaker rule {rule.name!r}: name is used twice",
                details={"rule": rule.name, "field": "name"},
            )
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules)


@dataclass(frozen=True)
class BreakerEvent:
    """Something the breakers watch: an execution's result or an incident.

    Execution events need ``action_type``; incidents need ``severity``.
    ``autonomous``: the execution (for a rollback, the change undone) was
    approved by policy, or the incident came from such an action.
    """

    at: datetime
    kind: BreakerEventKind
    action_type: str | None = None
    severity: str | None = None
    autonomous: bool = False

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise InvalidArgument("event time must be timezone-aware", details={"field": "at"})
        if self.kind is BreakerEventKind.INCIDENT and not self.severity:
            raise InvalidArgument(
                "an incident event needs a severity", details={"field": "severity"}
            )
        if self.kind is not BreakerEventKind.INCIDENT and not self.action_type:
            raise InvalidArgument(
                "an execution event needs an action type", details={"field": "action_type"}
            )


@dataclass(frozen=True)
class Trip:
    """A rule that tripped: what it asks for, and the numbers that tripped it."""

    rule: BreakerRule
    at: datetime
    action: BreakerAction
    severity: Severity
    value: float
    threshold: float
    action_type: str | None
    alert_only: bool
    message: str
    #: Some of the events that tripped it (failures, rollbacks, critical incidents in
    #: the window) came from autonomous actions: its incident is theirs too.
    autonomous: bool = False

    @property
    def key(self) -> str:
        """Return the tripped-state key (``rule`` or ``rule:action_type``)."""
        return (
            self.rule.name if self.action_type is None else f"{self.rule.name}:{self.action_type}"
        )


# The tag whose events make a rule trip (its numerator): whether any of them in the
# window came from an autonomous action says whether the trip did.
_CAUSES: Mapping[BreakerMetric, str] = {
    BreakerMetric.ERROR_RATE: "failed",
    BreakerMetric.ROLLBACK_RATE: "rolled_back",
    BreakerMetric.COMMAND_FAILURES: "failed",
    BreakerMetric.CRITICAL_INCIDENT: "critical",
}

# Which events feed which metric, and under which tag inside the rule's window.
_TAGS: Mapping[BreakerMetric, Mapping[BreakerEventKind, str]] = {
    BreakerMetric.ERROR_RATE: {
        BreakerEventKind.EXECUTION_SUCCEEDED: "ok",
        BreakerEventKind.EXECUTION_FAILED: "failed",
    },
    BreakerMetric.ROLLBACK_RATE: {
        BreakerEventKind.EXECUTION_SUCCEEDED: "ok",
        BreakerEventKind.EXECUTION_ROLLED_BACK: "rolled_back",
    },
    BreakerMetric.COMMAND_FAILURES: {BreakerEventKind.EXECUTION_FAILED: "failed"},
    BreakerMetric.CRITICAL_INCIDENT: {BreakerEventKind.INCIDENT: "critical"},
}


class _Window:
    """Events of one rule (or one rule and action type) in time order, with tag counts
    (and how many of each tag came from autonomous actions)."""

    __slots__ = ("autonomous", "counts", "events", "span")

    def __init__(self, span: timedelta) -> None:
        self.span = span
        self.events: deque[tuple[datetime, str, bool]] = deque()
        self.counts: dict[str, int] = {}
        self.autonomous: dict[str, int] = {}

    def evict(self, now: datetime) -> None:
        cutoff = now - self.span
        while self.events and self.events[0][0] <= cutoff:
            _, tag, autonomous = self.events.popleft()
            self.counts[tag] -= 1
            if autonomous:
                self.autonomous[tag] -= 1

    def add(self, at: datetime, tag: str, now: datetime, autonomous: bool = False) -> None:
        if at <= now - self.span:
            return  # a late event already outside the window
        index = len(self.events)
        while index > 0 and self.events[index - 1][0] > at:
            index -= 1  # late arrivals are rare and land near the end
        self.events.insert(index, (at, tag, autonomous))
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if autonomous:
            self.autonomous[tag] = self.autonomous.get(tag, 0) + 1

    def count(self, tag: str) -> int:
        return self.counts.get(tag, 0)


def _percent(value: float) -> str:
    return f"{value * 100:.4g}%"


def _measure(rule: BreakerRule, window: _Window, action_type: str | None) -> tuple[float, int, str]:
    """Return (value, sample size, message) for ``rule`` over ``window``."""
    span = format_window(rule.window)
    if rule.metric is BreakerMetric.ERROR_RATE:
        ok, failed = window.count("ok"), window.count("failed")
        n = ok + failed
        value = failed / n if n else 0.0
        text = (
            f"error rate {_percent(value)} > {_percent(rule.threshold)} over {span} "
            f"({failed} of {n} executions failed)"
        )
        return value, n, text
    if rule.metric is BreakerMetric.ROLLBACK_RATE:
        ok, rolled = window.count("ok"), window.count("rolled_back")
        value = rolled / ok if ok else 0.0
        text = (
            f"rollback rate {_percent(value)} > {_percent(rule.threshold)} over {span} "
            f"({rolled} rollbacks, {ok} successful executions)"
        )
        return value, ok, text
    if rule.metric is BreakerMetric.COMMAND_FAILURES:
        failed = window.count("failed")
        text = f"{action_type} failed {failed} times in {span} (threshold {int(rule.threshold)})"
        return float(failed), failed, text
    critical = window.count("critical")
    return float(critical), critical, f"{critical} critical incident(s) in {span}"


class BreakerMonitor:
    """Evaluate breaker rules over sliding windows as events arrive.

    Each event costs amortised O(1) per rule: windows are deques evicted from
    the left as ``now`` advances. Only enabled rules are watched.
    """

    def __init__(
        self, rules: Iterable[BreakerRule] = DEFAULT_RULES, *, tripped: Iterable[str] = ()
    ) -> None:
        self.rules = tuple(rules)
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise InvalidArgument("breaker rule names must be unique", details={"field": "name"})
        self._by_name = {r.name: r for r in self.rules}
        self._active = tuple(r for r in self.rules if r.enabled)
        self._windows: dict[str, _Window] = {}
        self._per_type: dict[str, dict[str, _Window]] = {}
        self._tripped: set[str] = set(tripped)
        self._now: datetime | None = None

    @property
    def tripped(self) -> frozenset[str]:
        """Return the keys of tripped rules (``rule`` or ``rule:action_type``)."""
        return frozenset(self._tripped)

    @property
    def now(self) -> datetime | None:
        """Return the newest time the monitor has seen."""
        return self._now

    def _advance(self, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidArgument("now must be timezone-aware", details={"field": "now"})
        if self._now is None or at > self._now:
            self._now = at
        return self._now

    def _window(self, rule: BreakerRule, action_type: str | None) -> _Window:
        if rule.metric is BreakerMetric.COMMAND_FAILURES:
            per_type = self._per_type.setdefault(rule.name, {})
            return per_type.setdefault(action_type or "", _Window(rule.window))
        return self._windows.setdefault(rule.name, _Window(rule.window))

    def _check(
        self, rule: BreakerRule, window: _Window, action_type: str | None, now: datetime
    ) -> Trip | None:
        key = rule.name if action_type is None else f"{rule.name}:{action_type}"
        if key in self._tripped:
            return None
        value, sample, text = _measure(rule, window, action_type)
        if not rule.breached(value, sample):
            return None
        self._tripped.add(key)
        return Trip(
            rule=rule,
            at=now,
            action=rule.action,
            severity=rule.severity,
            value=value,
            threshold=rule.threshold,
            action_type=action_type,
            alert_only=rule.alerts_only,
            message=f"{rule.name}: {text}",
            autonomous=window.autonomous.get(_CAUSES[rule.metric], 0) > 0,
        )

    def observe(self, event: BreakerEvent) -> list[Trip]:
        """Take one event into the windows; return the rules it newly trips."""
        now = self._advance(event.at)
        trips: list[Trip] = []
        for rule in self._active:
            tag = _TAGS[rule.metric].get(event.kind)
            if tag is None:
                continue
            if rule.metric is BreakerMetric.CRITICAL_INCIDENT:
                if (event.severity or "").lower() != Severity.CRITICAL:
                    continue
            per_type = rule.metric is BreakerMetric.COMMAND_FAILURES
            action_type = event.action_type if per_type else None
            window = self._window(rule, action_type)
            window.evict(now)
            window.add(event.at, tag, now, event.autonomous)
            trip = self._check(rule, window, action_type, now)
            if trip is not None:
                trips.append(trip)
        return trips

    def evaluate(self, now: datetime) -> list[Trip]:
        """Advance the clock to ``now``, evict old events, and return newly tripped rules.

        Eviction can raise a rate (old successes leave the window), so a rule
        may trip here without a new event.
        """
        current = self._advance(now)
        trips: list[Trip] = []
        for rule in self._active:
            if rule.metric is BreakerMetric.COMMAND_FAILURES:
                per_type = self._per_type.get(rule.name, {})
                for action_type, window in list(per_type.items()):
                    window.evict(current)
                    if not window.events:
                        del per_type[action_type]  # keeps memory bounded by live action types
                        continue
                    trip = self._check(rule, window, action_type, current)
                    if trip is not None:
                        trips.append(trip)
                continue
            window = self._window(rule, None)
            window.evict(current)
            trip = self._check(rule, window, None, current)
            if trip is not None:
                trips.append(trip)
        return trips

    def reset(self, key: str) -> bool:
        """Clear a trip (a rule name clears all its action types) and forget its window.

        Return whether anything was tripped.

        :raises NotFound: no rule of that name.
        """
        name, _, action_type = key.partition(":")
        if name not in self._by_name:
            raise NotFound(f"unknown breaker rule {name!r}", details={"rule": name})
        if action_type:
            cleared = {key} & self._tripped
            self._per_type.get(name, {}).pop(action_type, None)
        else:
            cleared = {k for k in self._tripped if k == name or k.startswith(name + ":")}
            self._windows.pop(name, None)
            self._per_type.pop(name, None)
        self._tripped -= cleared
        return bool(cleared)
