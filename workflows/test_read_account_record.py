"""Workflow (read-only): snapshot an account's record (stage, counts, qualification, plan)."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_read_account_record(run: WorkflowRun, site: DemoSite) -> None:
    """Read account {account}'s record: stage, contacts, counts, qualification and plan."""
    site.state.add_contact("hooli", "Gavin Belson", "gavin@hooli.example", "CEO")
    site.state.add_note("hooli", "Renewal is due in March.")
    site.state.set_qualification("hooli", {"budget": "40k", "need": "Team licences"})
    site.state.set_plan("hooli", "Expand to the platform team.\nRenew in March.")
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
    step(
        run,
        intent="Open the account record",
        action="goto",
        target="/crm/accounts/{account}/record",
    )
    step(
        run,
        intent="Check it is the right account",
        action="expect_text",
        target='[data-testid="page-title"]',
        expect="record",
    )
    step(
        run,
        intent="Read the deal stage",
        action="extract",
        target='[data-testid="record-stage"]',
        result="stage",
    )
    step(
        run,
        intent="Read the contact's email",
        action="extract",
        target='[data-testid="record-contact-email"]',
        result="contact_email",
    )
    step(
        run,
        intent="Read the C-level contact's email (empty: none)",
        action="extract",
        target='[data-testid="record-c-suite-email"]',
        result="c_suite_email",
    )
    step(
        run,
        intent="Read the sent messages",
        action="extract",
        target='[data-testid="record-message-count"]',
        result="message_count",
    )
    step(
        run,
        intent="Read the notes",
        action="extract",
        target='[data-testid="record-note-count"]',
        result="note_count",
    )
    step(
        run,
        intent="Read the scheduled meetings",
        action="extract",
        target='[data-testid="record-meeting-count"]',
        result="meeting_count",
    )
    step(
        run,
        intent="Read the latest meeting with minutes (empty: none)",
        action="extract",
        target='[data-testid="record-latest-minutes"]',
        result="latest_minutes",
    )
    step(
        run,
        intent="Read the open quotes",
        action="extract",
        target='[data-testid="record-open-quotes"]',
        result="open_quotes",
    )
    step(
        run,
        intent="Read the internal tasks",
        action="extract",
        target='[data-testid="record-task-count"]',
        result="task_count",
    )
    step(
        run,
        intent="Read the qualified budget",
        action="extract",
        target='[data-testid="record-budget"]',
        result="budget",
    )
    step(
        run,
        intent="Read who decides",
        action="extract",
        target='[data-testid="record-authority"]',
        result="authority",
    )
    step(
        run,
        intent="Read the need",
        action="extract",
        target='[data-testid="record-need"]',
        result="need",
    )
    step(
        run,
        intent="Read the timeline",
        action="extract",
        target='[data-testid="record-timeline"]',
        result="timeline",
    )
    step(
        run,
        intent="Read the account plan",
        action="extract",
        target='[data-testid="record-plan"]',
        result="plan",
    )

    assert run.results == {
        "stage": "negotiation",
        "contact_email": "contact@hooli.example",
        "c_suite_email": "gavin@hooli.example",
        "message_count": "0",
        "note_count": "1",
        "meeting_count": "0",
        "latest_minutes": "",
        "open_quotes": "0",
        "task_count": "0",
        "budget": "40k",
        "authority": "",
        "need": "Team licences",
        "timeline": "",
        "plan": "Expand to the platform team.\nRenew in March.",
    }
