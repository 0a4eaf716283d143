"""Workflow: send a follow-up message to an account's contact."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step

SUBJECT = "Following up on our call"
BODY = "Hi,\n\nThanks for your time today. Here is the summary we promised.\n\nBest regards"


@pytest.mark.browser
def test_send_follow_up_message(run: WorkflowRun, site: DemoSite) -> None:
    """Send a message with {subject} and {body} to account {account}'s contact via the outbox."""
    run.bind(account="globex", subject=SUBJECT, body=BODY)

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
    step(run, intent="Open the account", action="goto", target="/crm/accounts/{account}")
    step(
        run,
        intent="Check it is the right account",
        action="expect_text",
        target='[data-testid="account-id"]',
        expect="{account}",
    )
    step(
        run,
        intent="Open the message composer",
        action="click",
        target='[data-testid="compose-message"]',
    )
    step(
        run,
        intent="Reach the composer",
        action="expect_url",
        target="/crm/accounts/{account}/compose",
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
    step(run, intent="Send the message", action="click", target='[data-testid="send-message"]')
    step(run, intent="Land in the outbox", action="expect_url", target="/crm/outbox")
    step(
        run,
        intent="Confirm the message was sent",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Message sent to",
    )
    step(
        run,
        intent="Record the sent message's id",
        action="extract",
        target='[data-testid="message-id"]',
        result="message_id",
    )

    [sent] = site.state.messages_for("globex")
    assert str(sent.id) == run.results["message_id"]
    assert (sent.to, sent.subject) == (site.state.account("globex").contact_email, SUBJECT)
    assert sent.body == BODY.strip()
