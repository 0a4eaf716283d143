"""Workflow: create a quote for an account in the CRM and send it to the contact."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_send_quote(run: WorkflowRun, site: DemoSite) -> None:
    """Send account {account} a quote of up to three lines, valid for {valid_days} days."""
    run.bind(
        account="globex",
        description_1="Burr grinder, 40 settings",
        quantity_1="4",
        price_1="129.00",
        description_2="Gooseneck kettle 1L",
        quantity_2="4",
        price_2="59.50",
        description_3="",
        quantity_3="",
        price_3="",
        valid_days="30",
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
        intent="Open the quote form",
        action="click",
        target='[data-testid="new-quote"]',
    )
    step(
        run,
        intent="Reach the quote form",
        action="expect_url",
        target="/crm/accounts/{account}/quotes/new",
    )
    step(
        run,
        intent="Describe line 1",
        action="fill",
        target='[data-testid="quote-description-1"]',
        value="{description_1}",
    )
    step(
        run,
        intent="Give line 1's quantity",
        action="fill",
        target='[data-testid="quote-quantity-1"]',
        value="{quantity_1}",
    )
    step(
        run,
        intent="Give line 1's unit price",
        action="fill",
        target='[data-testid="quote-price-1"]',
        value="{price_1}",
    )
    step(
        run,
        intent="Describe line 2",
        action="fill",
        target='[data-testid="quote-description-2"]',
        value="{description_2}",
    )
    step(
        run,
        intent="Give line 2's quantity",
        action="fill",
        target='[data-testid="quote-quantity-2"]',
        value="{quantity_2}",
    )
    step(
        run,
        intent="Give line 2's unit price",
        action="fill",
        target='[data-testid="quote-price-2"]',
        value="{price_2}",
    )
    step(
        run,
        intent="Describe line 3",
        action="fill",
        target='[data-testid="quote-description-3"]',
        value="{description_3}",
    )
    step(
        run,
        intent="Give line 3's quantity",
        action="fill",
        target='[data-testid="quote-quantity-3"]',
        value="{quantity_3}",
    )
    step(
        run,
        intent="Give line 3's unit price",
        action="fill",
        target='[data-testid="quote-price-3"]',
        value="{price_3}",
    )
    step(
        run,
        intent="Choose how long the quote is valid",
        action="select_option",
        target='[data-testid="quote-validity"]',
        value="{valid_days}",
    )
    step(
        run,
        intent="Create and send the quote",
        action="click",
        target='[data-testid="send-quote"]',
    )
    step(
        run,
        intent="Confirm the quote was sent",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="sent to",
    )
    step(
        run,
        intent="Record the quote's id",
        action="extract",
        target='[data-testid="quote-id"]',
        result="quote_id",
    )
    step(
        run,
        intent="Record the quote's total",
        action="extract",
        target='[data-testid="quote-total"]',
        result="total",
    )

    [quote] = site.state.quotes_for("globex")
    assert (str(quote.id), str(quote.total)) == (run.results["quote_id"], "754.00")
    assert run.results["total"] == "754.00" and quote.status == "sent"
    assert [line.description for line in quote.lines] == [
        "Burr grinder, 40 settings",
        "Gooseneck kettle 1L",
    ]
    [sent] = site.state.messages_for("globex")
    assert sent.subject == f"Quote Q-{quote.id}" and sent.to == quote.sent_to
