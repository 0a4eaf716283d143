"""Workflow: cancel a scheduled meeting with an account."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_cancel_meeting(run: WorkflowRun, site: DemoSite) -> None:
    """Cancel meeting {meeting_id} with account {account}."""
    day = (date.today() + timedelta(days=2)).isoformat()
    meeting = site.state.schedule_meeting(
        "wonka", title="Tasting", day=day, at="11:00", duration="60", send_invite=False
    )
    run.bind(account="wonka", meeting_id=str(meeting.id))

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
        intent="Open the meeting's cancel page",
        action="goto",
        target="/crm/accounts/{account}/meetings/{meeting_id}/cancel",
    )
    step(
        run,
        intent="Check it is the right meeting",
        action="wait_for",
        target='[data-testid="cancel-meeting-title"]',
    )
    step(
        run,
        intent="Cancel the meeting",
        action="click",
        target='[data-testid="confirm-cancel-meeting"]',
    )
    step(
        run,
        intent="Confirm the meeting was cancelled",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Meeting {meeting_id} cancelled",
    )

    assert site.state.meetings_for("wonka") == []
    assert [m.cancelled for m in site.state.meetings if m.id == meeting.id] == [True]
