"""Workflow: schedule a meeting with an account."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_schedule_meeting(run: WorkflowRun, site: DemoSite) -> None:
    """Schedule meeting {title} with account {account} on {date} at {time} for {duration} min."""
    day = date.today() + timedelta(days=7)
    run.bind(
        account="initech",
        title="Quarterly review",
        date=day.isoformat(),
        time="14:30",
        duration="45",
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
    step(run, intent="Open the account", action="goto", target="/crm/accounts/{account}")
    step(
        run,
        intent="Open the meeting form",
        action="click",
        target='[data-testid="new-meeting"]',
        expect="Schedule a meeting",
    )
    step(
        run,
        intent="Name the meeting",
        action="fill",
        target='[data-testid="meeting-title"]',
        value="{title}",
    )
    step(
        run,
        intent="Pick the date (YYYY-MM-DD)",
        action="fill",
        target='[data-testid="meeting-date"]',
        value="{date}",
    )
    step(
        run,
        intent="Pick the start time (HH:MM)",
        action="fill",
        target='[data-testid="meeting-time"]',
        value="{time}",
    )
    step(
        run,
        intent="Choose the duration in minutes",
        action="select_option",
        target='[data-testid="meeting-duration"]',
        value="{duration}",
    )
    step(
        run,
        intent="Send a calendar invite to the contact",
        action="check",
        target='[data-testid="meeting-send-invite"]',
    )
    step(run, intent="Schedule it", action="click", target='[data-testid="save-meeting"]')
    step(
        run,
        intent="Return to the account",
        action="expect_url",
        target="/crm/accounts/{account}",
    )
    step(
        run,
        intent="Confirm the meeting was scheduled",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Meeting scheduled",
    )
    step(
        run,
        intent="Record the meeting's id",
        action="extract",
        target='[data-testid="meeting-id"]',
        result="meeting_id",
    )

    [meeting] = site.state.meetings_for("initech")
    assert str(meeting.id) == run.results["meeting_id"]
    assert (meeting.title, meeting.date, meeting.time) == ("Quarterly review", day, time(14, 30))
    assert meeting.duration_min == 45
    assert meeting.send_invite
