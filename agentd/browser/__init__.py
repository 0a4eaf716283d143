"""Browser agents: the Playwright adapter and the audited agent loop.

This module holds what both share and needs no browser: the host allowlist
rule and the error a failed step raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from urllib.parse import urlsplit

from agentd.errors import ExternalError
from agentd.kb import Action

# Schemes that never reach the network: a page may use them freely.
LOCAL_SCHEMES = frozenset({"about", "data", "blob"})
# Steps that may submit something to the site: once one may have started, a
# re-run could do it twice (see agentd.services.operations.recovery_decision).
COMMITTING_ACTIONS = frozenset({Action.CLICK, Action.PRESS})
# Steps that only open and read pages: all a workflow may do without its
# secrets, and all it may do under a consent that grants "read".
READ_ACTIONS = frozenset(
    {Action.GOTO, Action.WAIT_FOR, Action.EXPECT_TEXT, Action.EXPECT_URL, Action.EXTRACT}
)
# Steps that leave the page as it is (they wait, read, or arm the dialog
# handler): their screenshot is taken while they run.
PASSIVE_ACTIONS = frozenset(
    {Action.WAIT_FOR, Action.EXPECT_TEXT, Action.EXPECT_URL, Action.EXTRACT, Action.ACCEPT_DIALOG}
)


class StepProblem(StrEnum):
    """Why a step failed, as far as the agent needs to tell."""

    NOT_FOUND = "not_found"  # the selector matched nothing: the planner may recover
    BAD_SELECTOR = "bad_selector"  # the selector is not usable: the planner may recover
    TIMEOUT = "timeout"
    NAVIGATION = "navigation"  # the site is down, answered an error, or the host is blocked
    EXPECTATION = "expectation"  # the page did not show what the step expects
    DIALOG = "dialog"
    REFUSED = "refused"


class StepFailed(ExternalError):
    """A browser step did not do what it should; ``problem`` says how."""

    def __init__(self, problem: StepProblem, message: str) -> None:
        super().__init__(message, details={"problem": problem.value})
        self.problem = problem


def host_of(url: str) -> str | None:
    """Return ``host[:port]`` of a URL (lower case), or None for a network-free scheme.

    :raises ValueError: the URL has no host.
    """
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return None
    if not parts.hostname:
        raise ValueError(f"URL {url!r} has no host")
    host = parts.hostname.lower()
    return f"{host}:{parts.port}" if parts.port else host


def host_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Return whether a request to ``url`` may go out under an account's host allowlist.

    An entry ``host:port`` allows exactly that port; ``host`` allows the host on
    any port; ``*.example.com`` allows subdomains of example.com (not the bare
    domain). Network-free schemes (about:, data:, blob:) are always allowed.
    """
    try:
        target = host_of(url)
    except ValueError:
        return False
    if target is None:
        return True
    name = target.rsplit(":", 1)[0] if ":" in target and not target.endswith("]") else target
    for raw in allowed:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry.startswith("*."):
            if name.endswith(entry[1:]):
                return True
        elif entry == target or entry == name:
            return True
    return False


# Allowlist entries the fast path understands; any other entry is left to
# host_allowed, which the route handler applies to every other request.
_PLAIN_ENTRY = re.compile(r"[a-z0-9.-]+(:[0-9]+)?")
_WILDCARD_ENTRY = re.compile(r"\*\.[a-z0-9.-]+")


def certainly_allowed_pattern(allowed: Iterable[str]) -> str | None:
    """Return a regular expression (valid in Python and JavaScript) matching the
    start of URLs that ``host_allowed`` certainly allows, or None when there is none.

    The browser applies it without a round trip to the agent: a request it
    matches goes out; every other request goes to the route handler, which
    decides with ``host_allowed``. So it may miss allowed URLs (they take the
    slow path) but must never match one ``host_allowed`` refuses: only
    http(s) URLs as the browser writes them (lower-case host, then ``/``) of
    simple entries are matched, and on a port left open only ports below
    10000 (no out-of-range port can slip through).
    """
    hosts: list[str] = []
    for raw in allowed:
        entry = raw.strip().lower()
        # Only dots need escaping in these entries (and "\." means the same in both).
        if _WILDCARD_ENTRY.fullmatch(entry):
            suffix = entry[1:].replace(".", r"\.")
            hosts.append(r"[a-z0-9-][a-z0-9.-]*" + suffix + r"(?::[0-9]{1,4})?")
        elif (plain := _PLAIN_ENTRY.fullmatch(entry)) and int((plain[1] or ":1")[1:]) < 65536:
            port = "" if plain[1] else r"(?::[0-9]{1,4})?"
            hosts.append(entry.replace(".", r"\.") + port)
    if not hosts:
        return None
    return r"^https?://(?:" + "|".join(hosts) + ")/"


__all__ = [
    "COMMITTING_ACTIONS",
    "LOCAL_SCHEMES",
    "PASSIVE_ACTIONS",
    "READ_ACTIONS",
    "StepFailed",
    "StepProblem",
    "certainly_allowed_pattern",
    "host_allowed",
    "host_of",
]
