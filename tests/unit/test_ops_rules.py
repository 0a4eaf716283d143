"""Pure rules of browser operations: the host allowlist, crash recovery, agentctl arguments."""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentd.browser import (
    Permission,
    certainly_allowed_pattern,
    chromium_sandbox,
    consent_permits,
    endpoint_allowed,
    host_allowed,
    required_permission,
)
from agentd.ctl.gate import UsageError
from agentd.ctl.ops import parse_params, register
from agentd.errors import ConfigInvalid
from agentd.kb import Action, Step, load_knowledge_base
from agentd.services.operations import Recovery, recovery_decision

ALLOW = ["127.0.0.1:8000", "shop.example.com", "*.cdn.example.net"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/admin", True),
        ("http://127.0.0.1:8001/pixel.png", False),  # same host, other port
        ("http://127.0.0.1/", False),
        ("https://shop.example.com/login", True),
        ("https://shop.example.com:8443/login", True),  # a host entry allows any port
        ("https://evil.example.com/", False),
        ("https://shop.example.com.evil.org/", False),
        ("https://img.cdn.example.net/a.png", True),
        ("https://cdn.example.net/a.png", False),  # the wildcard wants a subdomain
        ("https://CDN1.Cdn.Example.Net/x", True),
        ("about:blank", True),
        ("data:image/png;base64,AAAA", True),
        ("ws://127.0.0.1:9000/socket", False),
        ("file:///etc/passwd", False),
        ("not a url", False),
    ],
)
def test_host_allowlist(url: str, allowed: bool) -> None:
    assert host_allowed(url, ALLOW) is allowed


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("127.0.0.1", 8000, True),
        ("127.0.0.1", 8001, False),
        ("127.0.0.2", 8000, False),
        ("shop.example.com", 443, True),
        ("shop.example.com", 8443, True),  # a host entry allows any port
        ("evil.example.com", 443, False),
        ("shop.example.com.evil.org", 443, False),
        ("img.cdn.example.net", 443, True),
        ("cdn.example.net", 443, False),
        ("::1", 8000, False),
        ("", 80, False),
    ],
)
def test_the_proxy_applies_the_same_rule(host: str, port: int, allowed: bool) -> None:
    assert endpoint_allowed(host, port, ALLOW) is allowed
    assert endpoint_allowed("::1", 8000, ["::1"])


@pytest.mark.parametrize(
    ("setting", "euid", "enabled", "why"),
    [
        (None, 0, False, "runs as root"),
        (None, 998, True, "does not run as root"),
        (False, 998, False, "sandbox = false"),
        (False, 0, False, "sandbox = false"),
        (True, 998, True, "sandbox = true"),
    ],
)
def test_chromium_sandbox(setting: bool | None, euid: int, enabled: bool, why: str) -> None:
    choice = chromium_sandbox(setting, euid)
    assert choice.enabled is enabled and why in choice.reason


def test_a_sandbox_required_as_root_is_refused() -> None:
    with pytest.raises(ConfigInvalid, match="runs as root"):
        chromium_sandbox(True, 0)


def test_empty_allowlist_blocks_every_network_request() -> None:
    assert not host_allowed("http://127.0.0.1:8000/", [])
    assert host_allowed("about:blank", [])


URLS = [
    "http://127.0.0.1:8000/admin",
    "http://127.0.0.1:8000/",
    "http://127.0.0.1:8001/pixel.png",
    "http://127.0.0.1:80001/",
    "http://127.0.0.1:8000.evil.org/",
    "http://127.0.0.1:8000@evil.org/",
    "http://user@127.0.0.1:8000/",
    "https://shop.example.com/login",
    "https://shop.example.com:8443/login",
    "https://shop.example.com.evil.org/",
    "https://shop.example.com@evil.org/",
    "https://evil.org/?next=https://shop.example.com/",
    "https://img.cdn.example.net/a.png",
    "https://a.b.cdn.example.net:444/a.png",
    "https://cdn.example.net/a.png",
    "https://evilcdn.example.net/a.png",
    "https://img.cdn.example.net.evil.org/",
    "ws://127.0.0.1:8000/socket",
    "ftp://shop.example.com/",
    "about:blank",
    "data:text/html,hi",
]
ALLOWLISTS = [
    ALLOW,
    ["127.0.0.1"],
    ["SHOP.example.com "],
    ["[::1]:8000", "http://shop.example.com", ""],
    ["127.0.0.1:80001", "127.0.0.1:8000"],
    [],
]


@pytest.mark.parametrize(("allow", "url"), list(itertools.product(ALLOWLISTS, URLS)))
def test_the_browsers_fast_path_never_lets_out_what_the_allowlist_refuses(
    allow: list[str], url: str
) -> None:
    pattern = certainly_allowed_pattern(allow)
    if pattern is not None and re.search(pattern, url):
        assert host_allowed(url, allow), f"{pattern} lets {url} out"


def test_the_fast_path_covers_plain_requests_to_allowed_hosts() -> None:
    pattern = certainly_allowed_pattern(ALLOW)
    assert pattern is not None
    fast = [u for u in URLS if re.search(pattern, u)]
    assert fast == [
        "http://127.0.0.1:8000/admin",
        "http://127.0.0.1:8000/",
        "https://shop.example.com/login",
        "https://shop.example.com:8443/login",
        "https://img.cdn.example.net/a.png",
        "https://a.b.cdn.example.net:444/a.png",
    ]
    # Entries it does not understand are left to the route handler.
    assert certainly_allowed_pattern(["[::1]:8000", "http://x.org", " "]) is None
    assert certainly_allowed_pattern([]) is None


def _steps(*actions: Action) -> tuple[Step, ...]:
    return tuple(
        Step(i, f"step {i}", a, "/x" if a is Action.GOTO else "#x")
        for i, a in enumerate(actions, start=1)
    )


LOGIN = _steps(Action.GOTO, Action.FILL, Action.FILL, Action.CLICK, Action.EXPECT_URL)


@pytest.mark.parametrize(
    ("steps", "done", "decision"),
    [
        (LOGIN, 0, Recovery.RESTART),  # step 1 may have started: a goto
        (LOGIN, 2, Recovery.RESTART),  # step 3 may have started: a fill
        (LOGIN, 3, Recovery.INTERRUPTED),  # the click may have started
        (LOGIN, 5, Recovery.INTERRUPTED),
        (_steps(Action.GOTO, Action.EXTRACT, Action.EXPECT_TEXT), 3, Recovery.RESTART),
        (_steps(Action.PRESS), 0, Recovery.INTERRUPTED),
        (None, 0, Recovery.INTERRUPTED),  # the workflow is gone from the knowledge base
    ],
)
def test_recovery_decision(steps: tuple[Step, ...] | None, done: int, decision: Recovery) -> None:
    assert recovery_decision(steps, done) is decision


def test_a_step_the_planner_turned_into_a_click_counts_as_committing() -> None:
    steps = _steps(Action.GOTO, Action.WAIT_FOR, Action.EXTRACT)
    assert recovery_decision(steps, 1) is Recovery.RESTART
    assert recovery_decision(steps, 1, planned_commits=[2]) is Recovery.INTERRUPTED
    assert recovery_decision(steps, 0, planned_commits=[3]) is Recovery.RESTART  # not reached


def _flow(*steps: tuple[Action, str | None]) -> tuple[Step, ...]:
    return tuple(
        Step(i, f"step {i}", action, "/x" if action is Action.GOTO else "#x", value)
        for i, (action, value) in enumerate(steps, start=1)
    )


GOTO, READ_IT = (Action.GOTO, None), (Action.EXTRACT, None)
USER, PASSWORD = (Action.FILL, "{secret:user}"), (Action.FILL, "{secret:password}")
SUBMIT, ENTER = (Action.CLICK, None), (Action.PRESS, "Enter")
R, W = Permission.READ, Permission.WRITE


@pytest.mark.parametrize(
    ("steps", "needed"),
    [
        (_flow(GOTO, READ_IT, (Action.EXPECT_TEXT, None), (Action.WAIT_FOR, None)), R),
        (_flow(GOTO, USER, PASSWORD, SUBMIT, (Action.EXPECT_URL, None), GOTO, READ_IT), R),
        (_flow(GOTO, PASSWORD, ENTER, READ_IT), R),  # signing in with the Enter key
        (_flow(GOTO, SUBMIT), W),  # a click that is not signing in
        (_flow(GOTO, USER, PASSWORD, SUBMIT, SUBMIT), W),  # the second click
        (_flow(GOTO, USER, PASSWORD, SUBMIT, GOTO, PASSWORD, SUBMIT), W),  # only one sign-in
        (_flow(GOTO, SUBMIT, PASSWORD, SUBMIT), W),  # a change came first
        (_flow(GOTO, USER, PASSWORD, READ_IT, SUBMIT), W),  # typed, not submitted at once
        (_flow(GOTO, USER, PASSWORD), W),
        (_flow(GOTO, (Action.FILL, "{note}")), W),  # typing data
        (_flow(GOTO, (Action.FILL, "{secret:token} {note}"), SUBMIT), W),
        (_flow(GOTO, (Action.SELECT_OPTION, "a")), W),
        (_flow(GOTO, (Action.CHECK, None)), W),
        (_flow(GOTO, (Action.ACCEPT_DIALOG, None)), W),
        ((), R),
    ],
)
def test_required_permission(steps: tuple[Step, ...], needed: Permission) -> None:
    assert required_permission(steps) is needed


def test_the_read_only_workflows_need_only_read() -> None:
    kb = load_knowledge_base(
        Path(__file__).resolve().parents[2] / "knowledge_base" / "AGENT_KNOWLEDGE_BASE.json"
    )
    needs = {name: required_permission(kb.workflow(name).steps) for name in kb.names}
    assert sorted(n for n, p in needs.items() if p is R) == [
        "read_account_activity",
        "read_account_record",
        "read_product_seo",
    ]


@pytest.mark.parametrize(
    ("granted", "needed", "permitted"),
    [
        ((), W, True),  # no permissions: every permission
        (("read",), R, True),
        (("read",), W, False),
        (("write",), R, True),  # write includes read
        (("write",), W, True),
        (("read", "write"), W, True),
        (("reports",), R, False),
    ],
)
def test_consent_permits(granted: tuple[str, ...], needed: Permission, permitted: bool) -> None:
    assert consent_permits(granted, needed) is permitted


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (None, {}),
        (["a=1"], {"a": "1"}),
        (["a=1", "b=x=y"], {"a": "1", "b": "x=y"}),
        (["a="], {"a": ""}),
        (["a=1", "a=2"], {"a": "2"}),
    ],
)
def test_parse_params(pairs: list[str] | None, expected: dict[str, str]) -> None:
    assert parse_params(pairs) == expected


@pytest.mark.parametrize("bad", ["novalue", "=x", " =x"])
def test_parse_params_refuses(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_params([bad])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentctl")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, run: Callable[..., int], summary: str, example: str) -> Any:
        p = sub.add_parser(name)
        p.set_defaults(run=run)
        return p

    def group(name: str, summary: str) -> Callable[..., Any]:
        inner = sub.add_parser(name).add_subparsers(dest=f"{name}_cmd", required=True)

        def add_inner(sub_name: str, run: Callable[..., int], s: str, e: str) -> Any:
            p = inner.add_parser(sub_name)
            p.set_defaults(run=run)
            return p

        return add_inner

    register(add, group)
    return parser


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["ops", "--status", "failed"], {"status": "failed"}),
        (["op", "show", "op_1", "--follow"], {"id": "op_1", "follow": True}),
        (
            ["op", "run", "read_product_seo", "--account", "acme", "--param", "product_id=1"],
            {"workflow": "read_product_seo", "account": "acme", "param": ["product_id=1"]},
        ),
        (["op", "cancel", "op_1"], {"id": "op_1"}),
        (["consent", "grant", "acme", "shop"], {"operation": "*", "permissions": None}),
        (["consent", "revoke", "acme", "shop", "add_note"], {"operation": "add_note"}),
        (["secret", "set", "acme", "shop", "admin_password"], {"name": "admin_password"}),
        (["secret", "rm", "acme", "shop", "admin_password"], {"service": "shop"}),
    ],
)
def test_agentctl_arguments(argv: list[str], expected: dict[str, Any]) -> None:
    ns = vars(_parser().parse_args(argv))
    assert {k: ns[k] for k in expected} == expected


def test_secret_value_is_never_an_argument() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["secret", "set", "acme", "shop", "admin_password", "hunter2"])
