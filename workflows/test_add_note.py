"""Workflow: add a note to an account."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step

NOTE = "Asked for a volume discount on the grinder line; follow up after their budget review."


@pytest.mark.browser
def test_add_note(run: WorkflowRun, site: DemoSite) -> None:
    """Add the note {note} to account {account}."""
    run.bind(account="umbrella", note=NOTE)

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
    step(run, intent="Open the note form", action="click", target='[data-testid="add-note"]')
    step(
        run,
        intent="Reach the note form",
        action="expect_url",
        target="/crm/accounts/{account}/notes/new",
    )
    step(
        run,
        intent="Write the note",
        action="fill",
        target='[data-testid="note-text"]',
        value="{note}",
    )
    step(run, intent="Save the note", action="click", target='[data-testid="save-note"]')
    step(
        run,
        intent="Confirm the note was added",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Note added",
    )
    step(
        run,
        intent="Check the note is listed on the account",
        action="expect_text",
        target='[data-testid="note-list"]',
        expect="{note}",
    )
    step(
        run,
        intent="Record the note's id",
        action="extract",
        target='[data-testid="note-id"]',
        result="note_id",
    )

    [note] = site.state.notes_for("umbrella")
    assert (str(note.id), note.text) == (run.results["note_id"], NOTE)
