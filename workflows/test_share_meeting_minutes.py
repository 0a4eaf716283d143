"""Workflow: send a customer the minutes of a recorded meeting."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_share_meeting_minutes(run: WorkflowRun, site: DemoSite) -> None:
    """Send {to} at account {account} the minutes of meeting {meeting_id}."""
    meeting = site.state.schedule_meeting(
        "initech",
        title="Kick-off",
        day=(date.today() + timedelta(days=1)).isoformat(),
        at="10:00",
        duration="30",
        send_invite=False,
    )
    site.state.record_minutes("initech", meeting.id, "Agreed: pilot in two teams.")
    run.bind(
        account="initech",
        meeting_id=str(meeting.id),
        to="contact@initech.example",
        subject="Minutes of our kick-off",
        body="Hello,\n\nThe minutes of our kick-off are attached.\n",
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
        intent="Open the minutes of the meeting to share",
        action="goto",
        target="/crm/accounts/{account}/meetings/{meeting_id}/share",
    )
    step(
        run,
        intent="Check the minutes are attached",
        action="wait_for",
        target='[data-testid="share-minutes-text"]',
    )
    step(
        run,
        intent="Address the message",
        action="fill",
        target='[data-testid="share-to"]',
        value="{to}",
    )
    step(
        run,
        intent="Write the subject",
        action="fill",
        target='[data-testid="share-subject"]',
        value="{subject}",
    )
    step(
        run,
        intent="Write the message",
        action="fill",
        target='[data-testid="share-body"]',
        value="{body}",
    )
    step(
        run,
        intent="Send it with the minutes",
        action="click",
        target='[data-testid="share-minutes"]',
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

    [sent] = site.state.messages_for("initech")
    assert str(sent.id) == run.results["message_id"]
    assert (sent.template, sent.attachment) == ("meeting_minutes", "Agreed: pilot in two teams.")
