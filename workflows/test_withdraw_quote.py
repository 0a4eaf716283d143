"""Workflow: withdraw a quote that was sent."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_withdraw_quote(run: WorkflowRun, site: DemoSite) -> None:
    """Withdraw quote Q-{quote_id}, confirming the browser's dialog."""
    keep = site.state.create_quote("globex", [("Kettle", "1", "59.50")], "30")
    quote = site.state.create_quote("globex", [("Grinder", "2", "129.00")], "14")
    run.bind(quote_id=str(quote.id))

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
        intent="Open the quote",
        action="goto",
        target="/crm/quotes/{quote_id}",
    )
    step(
        run,
        intent="Check it is still open",
        action="expect_text",
        target='[data-testid="quote-status"]',
        expect="sent",
    )
    step(
        run,
        intent="Accept the withdrawal confirmation when it appears",
        action="accept_dialog",
        target="Withdraw quote",
    )
    step(
        run,
        intent="Withdraw the quote",
        action="click",
        target='[data-testid="withdraw-quote"]',
    )
    step(
        run,
        intent="Confirm the quote was withdrawn",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="withdrawn",
    )

    assert site.state.quote(quote.id).status == "withdrawn"
    assert site.state.quote(keep.id).status == "sent"
