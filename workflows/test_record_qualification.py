"""Workflow: record an account's qualification (budget, authority, need, timeline)."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_record_qualification(run: WorkflowRun, site: DemoSite) -> None:
    """Record account {account}'s budget, authority, need and timeline."""
    run.bind(
        account="wayne",
        budget="25k this year",
        authority="Head of operations",
        need="Replace the spreadsheets",
        timeline="Before Q3",
    )

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
        intent="Open the qualification form",
        action="click",
        target='[data-testid="edit-qualification"]',
    )
    step(
        run,
        intent="Reach the qualification form",
        action="expect_url",
        target="/crm/accounts/{account}/qualification",
    )
    step(
        run,
        intent="Record the budget",
        action="fill",
        target='[data-testid="qual-budget"]',
        value="{budget}",
    )
    step(
        run,
        intent="Record who decides",
        action="fill",
        target='[data-testid="qual-authority"]',
        value="{authority}",
    )
    step(
        run,
        intent="Record the need",
        action="fill",
        target='[data-testid="qual-need"]',
        value="{need}",
    )
    step(
        run,
        intent="Record the timeline",
        action="fill",
        target='[data-testid="qual-timeline"]',
        value="{timeline}",
    )
    step(
        run,
        intent="Save the qualification",
        action="click",
        target='[data-testid="save-qualification"]',
    )
    step(
        run,
        intent="Confirm the qualification was saved",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Qualification saved",
    )

    account = site.state.account("wayne")
    assert (account.budget, account.authority, account.need, account.timeline) == (
        "25k this year",
        "Head of operations",
        "Replace the spreadsheets",
        "Before Q3",
    )
