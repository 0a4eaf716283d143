"""The demo hands its generated secrets to ``agentd demo-site`` intact, whatever they begin with."""

from __future__ import annotations

import pytest

from agentd.demo import site_args
from agentd.demosite.cli import build_parser


@pytest.mark.parametrize(
    "password, token",
    [("plain", "token"), ("-starts-with-a-dash", "--double"), ("-p", "-abc=def")],
)
def test_generated_secrets_reach_the_site_parser_unchanged(password: str, token: str) -> None:
    args = build_parser().parse_args(site_args(8765, password, token, ["--account=acc_9=Nine"]))
    assert (args.port, args.admin_password, args.control_token) == (8765, password, token)
    assert args.account == ["acc_9=Nine"]
