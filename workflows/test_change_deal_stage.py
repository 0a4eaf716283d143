"""Workflow: move an account's deal to another stage."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_change_deal_stage(run: WorkflowRun, site: DemoSite) -> None:
    """Move account {account}'s deal to stage {stage}."""
    run.bind(account="umbrella", stage="qualification")

    step(run, intent="Open the sign-in page", action="goto", target="/login", expect="Sign in")
    step(
        run,
        intent="Enter the admin username",
        action="fill",
        target='[data-testid="login-username"]',
        value="{secret:admin_user}",
    )
    step(
        run,
        intent="Enter the admin password",
        action="fill",
        target='[data-testid="login-password"]',
        value="{secret:admin_password}",
    )
    step(run, intent="Sign in", action="click", target='[data-testid="login-submit"]')
    step(run, intent="Arrive on the dashboard", action="expect_url", target="/admin")
    step(
        run,
        intent="Open the account",
        action="goto",
        target="/crm/accounts/{account}",
    )
    step(
        run,
        intent="Open the stage form",
        action="click",
        target='[data-testid="change-stage"]',
    )
    step(
        run,
        intent="Reach the stage form",
        action="expect_url",
        target="/crm/accounts/{account}/stage",
    )
    step(
        run,
        intent="Choose the new stage",
        action="select_option",
        target='[data-testid="stage-select"]',
        value="{stage}",
    )
    step(
        run,
        intent="Save the stage",
        action="click",
        target='[data-testid="save-stage"]',
    )
    step(
        run,
        intent="Confirm the stage was saved",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Deal stage saved",
    )
    step(
        run,
        intent="Check the account shows the new stage",
        action="expect_text",
        target='[data-testid="account-stage"]',
        expect="{stage}",
    )

    assert site.state.account("umbrella").stage == "qualification"
