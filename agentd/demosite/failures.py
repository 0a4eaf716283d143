"""Failure injection: make chosen paths of the demo back-office fail on purpose.

Tests of failure handling (retries, timeouts, breaker trips) need a target
that breaks in a controlled way: an error page, a slow answer, or a dropped
connection, on a path prefix, forever or a given number of times.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from agentd.errors import AgentdError, InvalidArgument

MAX_DELAY_S = 600.0


class FailureMode(StrEnum):
    """How a matching request fails."""

    ERROR = "error"  # a realistic HTTP 5xx error page
    SLOW = "slow"  # answer normally after a delay
    DOWN = "down"  # close the connection without answering


@dataclass(frozen=True)
class FailureRule:
    """One failure: requests whose path starts with ``path_prefix`` fail ``times`` times."""

    path_prefix: str
    mode: FailureMode = FailureMode.ERROR
    delay_s: float = 2.0
    status: int = 500
    times: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path_prefix,
            "mode": self.mode.value,
            "delay_s": self.delay_s,
            "status": self.status,
            "times": self.times,
        }


def make_rule(
    path_prefix: str,
    mode: str = "error",
    *,
    delay_s: float = 2.0,
    status: int = 500,
    times: int | None = None,
) -> FailureRule:
    """Validate and build a failure rule.

    :raises InvalidArgument: bad prefix, mode, delay, status or count.
    """
    if not isinstance(path_prefix, str) or not path_prefix.startswith("/"):
        raise InvalidArgument(f"failure path must start with '/', got {path_prefix!r}")
    if path_prefix.startswith("/__control"):
        raise InvalidArgument("the control endpoint cannot be told to fail")
    try:
        parsed_mode = FailureMode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in FailureMode)
        raise InvalidArgument(f"failure mode must be one of {choices}, got {mode!r}") from None
    if isinstance(delay_s, bool) or not isinstance(delay_s, int | float):
        raise InvalidArgument(f"failure delay must be a number of seconds, got {delay_s!r}")
    if not 0 <= delay_s <= MAX_DELAY_S:
        raise InvalidArgument(f"failure delay must be between 0 and {MAX_DELAY_S:g} s")
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise InvalidArgument(f"failure status must be an HTTP error status, got {status!r}")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise InvalidArgument(f"failure count must be a positive integer, got {times!r}")
    return FailureRule(path_prefix, parsed_mode, float(delay_s), status, times)


class FailureInjector:
    """The active failure rules; the first rule matching a path applies (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FailureRule] = []

    def add(self, rule: FailureRule) -> FailureRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> int:
        """Remove every rule; return how many there were."""
        with self._lock:
            count = len(self._rules)
            self._rules.clear()
        return count

    def rules(self) -> list[FailureRule]:
        with self._lock:
            return list(self._rules)

    def take(self, path: str) -> FailureRule | None:
        """Return the rule that applies to this request, counting it down."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if not path.startswith(rule.path_prefix):
                    continue
                if rule.times is not None:
                    if rule.times <= 1:
                        del self._rules[i]
                    else:
                        self._rules[i] = replace(rule, times=rule.times - 1)
                return rule
        return None


_SPEC_FIELDS = frozenset({"path", "mode", "delay_s", "status", "times"})


def rule_from_json(body: bytes) -> FailureRule:
    """Build a rule from a control request body such as ``{"path": "/crm", "mode": "slow"}``.

    :raises InvalidArgument: bad JSON, unknown fields or a bad rule.
    """
    try:
        spec = json.loads(body or b"{}")
    except ValueError as exc:
        raise InvalidArgument(f"bad JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise InvalidArgument("the body must be a JSON object")
    unknown = set(spec) - _SPEC_FIELDS
    if unknown:
        raise InvalidArgument(f"unknown fields: {', '.join(sorted(unknown))}")
    return make_rule(
        spec.get("path", ""),
        spec.get("mode", "error"),
        delay_s=spec.get("delay_s", 2.0),
        status=spec.get("status", 500),
        times=spec.get("times"),
    )


def handle_control(
    injector: FailureInjector,
    expected_token: str,
    method: str,
    action: str,
    token: str,
    body: bytes,
) -> tuple[int, dict[str, Any]]:
    """Serve ``/__control/<action>``; return (HTTP status, JSON body).

    ``POST fail`` adds a rule, ``POST clear`` removes them all, ``GET failures``
    lists them. Without the right token nothing changes.
    """
    if not token:
        return 401, {"error": "missing control token (X-Control-Token)"}
    if not secrets.compare_digest(token.encode(), expected_token.encode()):
        return 403, {"error": "bad control token"}
    if method == "GET" and action == "failures":
        return 200, {"failures": [r.to_dict() for r in injector.rules()]}
    if method != "POST":
        return 405, {"error": "use POST"}
    if action == "clear":
        return 200, {"ok": True, "cleared": injector.clear()}
    if action != "fail":
        return 404, {"error": f"unknown control action {action!r}"}
    try:
        rule = injector.add(rule_from_json(body))
    except AgentdError as exc:
        return 400, {"error": exc.message}
    return 200, {"ok": True, "rule": rule.to_dict()}
