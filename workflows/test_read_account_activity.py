"""Workflow (read-only): snapshot how much activity an account has."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_read_account_activity(run: WorkflowRun, site: DemoSite) -> None:
    """Read how many notes, meetings and sent messages account {account} has."""
    site.state.add_note("hooli", "Renewal is due in March.")
    site.state.add_note("hooli", "Champion moved to the platform team.")
    site.state.schedule_meeting(
        "hooli",
        title="Renewal kickoff",
        day=(date.today() + timedelta(days=3)).isoformat(),
        at="09:00",
        duration="30",
        send_invite=False,
    )
    run.bind(account="hooli")

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
        intent="Count the notes",
        action="extract",
        target='[data-testid="note-count"]',
        result="note_count",
    )
    step(
        run,
        intent="Count the meetings",
        action="extract",
        target='[data-testid="meeting-count"]',
        result="meeting_count",
    )
    step(
        run,
        intent="Count the sent messages",
        action="extract",
        target='[data-testid="message-count"]',
        result="message_count",
    )

    assert run.results == {"note_count": "2", "meeting_count": "1", "message_count": "0"}
