"""Browser agents: the Playwright adapter and the audited agent loop.

This module holds what both share and needs no browser: the host allowlist
rule and the error a failed step raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from urllib.parse import urlsplit

from agentd.errors import ExternalError

# Schemes that never reach the network: a page may use them freely.
LOCAL_SCHEMES = frozenset({"about", "data", "blob"})


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


__all__ = ["LOCAL_SCHEMES", "StepFailed", "StepProblem", "host_allowed", "host_of"]
