"""Browser agents: the Playwright adapter and the audited agent loop.

This module holds what both share and needs no browser: the host allowlist
rule, the sign-in fills, and the error a failed step raises. The consent rules
live in :mod:`agentd.core.consent` (re-exported here).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from agentd.core import consent
from agentd.core.consent import (
    Permission,
    consent_permits,
    required_permission,
    types_only_secrets,
)
from agentd.errors import ConfigInvalid, ExternalError
from agentd.kb import Action, Step

# Schemes that never reach the network: a page may use them freely.
LOCAL_SCHEMES = frozenset({"about", "data", "blob"})
# Steps that may submit something to the site: once one may have started, a
# re-run could do it twice (see agentd.services.operations.recovery_decision).
COMMITTING_ACTIONS = frozenset({Action.CLICK, Action.PRESS})
# Steps that only open and read pages: all a workflow may do without its
# secrets, and all it may do under a consent that grants "read".
# (The consent rules in agentd.core.consent name them.)
READ_ACTIONS = frozenset(Action(name) for name in consent.READ_ACTIONS)
# Steps that leave the page as it is (they wait, read, or arm the dialog
# handler): their screenshot is taken while they run.
PASSIVE_ACTIONS = frozenset(
    {Action.WAIT_FOR, Action.EXPECT_TEXT, Action.EXPECT_URL, Action.EXTRACT, Action.ACCEPT_DIALOG}
)


@dataclass(frozen=True)
class SandboxChoice:
    """Whether Chromium runs in its own sandbox, and why (as ``status`` shows it)."""

    enabled: bool
    reason: str


def chromium_sandbox(setting: bool | None, euid: int) -> SandboxChoice:
    """Decide whether Chromium runs in its sandbox from ``[browser] sandbox`` and the
    daemon's effective user id.

    Chromium refuses to sandbox itself as root, so root runs it without one
    (unless the setting insists, which is an error); any other user runs it
    sandboxed unless the setting turns the sandbox off.

    :raises ConfigInvalid: ``sandbox = true`` while the daemon runs as root.
    """
    if setting is False:
        return SandboxChoice(False, "turned off by [browser] sandbox = false")
    if euid == 0:
        if setting:
            raise ConfigInvalid(
                "[browser] sandbox = true, but the daemon runs as root, where Chromium "
                "cannot sandbox itself: run it as an unprivileged user (the systemd unit "
                "runs it as agentd) or leave sandbox unset",
                details={"key": "browser.sandbox"},
            )
        return SandboxChoice(False, "the daemon runs as root, where Chromium cannot sandbox itself")
    if setting:
        return SandboxChoice(True, "required by [browser] sandbox = true")
    return SandboxChoice(True, "the daemon does not run as root")


class StepProblem(StrEnum):
    """Why a step failed, as far as the agent needs to tell."""

    NOT_FOUND = "not_found"  # the selector matched nothing: the planner may recover
    BAD_SELECTOR = "bad_selector"  # the selector is not usable: the planner may recover
    TIMEOUT = "timeout"
    NAVIGATION = "navigation"  # the site is down or answered an error
    HOST_NOT_ALLOWED = "host_not_allowed"  # the page went, or tried to go, off the allowlist
    EXPECTATION = "expectation"  # the page did not show what the step expects
    DIALOG = "dialog"
    REFUSED = "refused"
    SECRET_VISIBLE = "secret_visible"  # a capture was refused: the page's text shows a secret


class StepFailed(ExternalError):
    """A browser step did not do what it should; ``problem`` says how."""

    def __init__(self, problem: StepProblem, message: str) -> None:
        super().__init__(message, details={"problem": problem.value})
        self.problem = problem


class CaptureRefused(StepFailed):
    """A screenshot was not taken: the page's text shows a secret (``names``)."""

    def __init__(self, message: str, *, names: Sequence[str]) -> None:
        super().__init__(StepProblem.SECRET_VISIBLE, message)
        self.names = list(names)
        self.details["secrets"] = self.names


def sign_in_fills(steps: Iterable[Step]) -> frozenset[int]:
    """Return the indexes of the fills that sign in: the workflow's first run of
    fills that type nothing but vault secrets, when no step before it could
    change the site (none when there is no such run).

    A vault value they type into a plain (not password, not ``data-secret``)
    field is a sign-in name: its field is masked like any secret's, but a page
    may show it as text (sites show who is signed in). Unlike
    :func:`required_permission`, this does not ask that the run be submitted
    at once: a sign-in whose recorded submit no longer works is still one.
    """
    typing: list[int] = []
    for step in steps:
        if types_only_secrets(step):
            typing.append(step.index)
        elif typing or step.action not in READ_ACTIONS:
            break
    return frozenset(typing)


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


def endpoint_allowed(host: str, port: int, allowed: Iterable[str]) -> bool:
    """Return whether a connection to ``host`` on ``port`` may be opened under an allowlist.

    The same rule as :func:`host_allowed` for a URL naming that port: an entry
    ``host:port`` allows that port, ``host`` any port, ``*.example.com`` the
    subdomains. (A URL's default port is no exception: ``example.com:443``
    allows ``https://example.com/``.)
    """
    literal = f"[{host}]" if ":" in host else host
    return host_allowed(f"http://{literal}:{port}/", allowed)


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
    "CaptureRefused",
    "Permission",
    "SandboxChoice",
    "StepFailed",
    "StepProblem",
    "certainly_allowed_pattern",
    "chromium_sandbox",
    "consent_permits",
    "endpoint_allowed",
    "host_allowed",
    "host_of",
    "required_permission",
    "sign_in_fills",
]
