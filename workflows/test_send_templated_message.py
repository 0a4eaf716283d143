"""Workflow: send an account a message from one of the CRM's templates."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_send_templated_message(run: WorkflowRun, site: DemoSite) -> None:
    """Send {to} at account {account} the {template} message {subject}."""
    run.bind(
        account="acme",
        template="pricing_discussion",
        to="cfo@acme.example",
        subject="Pricing for next year",
        body="Hello,\n\nCould we go through next year's pricing together?\n",
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
        intent="Open the composer with the template",
        action="goto",
        target="/crm/accounts/{account}/compose?template={template}",
    )
    step(
        run,
        intent="Check the template is the one asked for",
        action="expect_text",
        target='[data-testid="compose-template"]',
        expect="{template}",
    )
    step(
        run,
        intent="Address the message",
        action="fill",
        target='[data-testid="compose-to"]',
        value="{to}",
    )
    step(
        run,
        intent="Write the subject",
        action="fill",
        target='[data-testid="compose-subject"]',
        value="{subject}",
    )
    step(
        run,
        intent="Write the message",
        action="fill",
        target='[data-testid="compose-body"]',
        value="{body}",
    )
    step(
        run,
        intent="Send the message",
        action="click",
        target='[data-testid="send-message"]',
    )
    step(
        run,
        intent="Land in the outbox",
        action="expect_url",
        target="/crm/outbox",
    )
    step(
        run,
        intent="Confirm the message was sent",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Message sent to {to}",
    )
    step(
        run,
        intent="Record the sent message's id",
        action="extract",
        target='[data-testid="message-id"]',
        result="message_id",
    )

    [sent] = site.state.messages_for("acme")
    assert str(sent.id) == run.results["message_id"]
    assert (sent.to, sent.template, sent.subject) == (
        "cfo@acme.example",
        "pricing_discussion",
        "Pricing for next year",
    )
