"""Workflow: replace an account's plan."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_edit_account_plan(run: WorkflowRun, site: DemoSite) -> None:
    """Replace account {account}'s plan with {plan}."""
    site.state.set_plan("stark", "Old plan.")
    run.bind(account="stark", plan="Land the R&D team first.\nThen expand to manufacturing.")

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
        intent="Open the account plan",
        action="click",
        target='[data-testid="edit-plan"]',
    )
    step(
        run,
        intent="Reach the plan form",
        action="expect_url",
        target="/crm/accounts/{account}/plan",
    )
    step(
        run,
        intent="Write the plan",
        action="fill",
        target='[data-testid="plan-text"]',
        value="{plan}",
    )
    step(
        run,
        intent="Save the plan",
        action="click",
        target='[data-testid="save-plan"]',
    )
    step(
        run,
        intent="Confirm the plan was saved",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Account plan saved",
    )

    assert site.state.account("stark").plan == (
        "Land the R&D team first.\nThen expand to manufacturing."
    )
