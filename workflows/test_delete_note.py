"""Workflow: delete a note from an account."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_delete_note(run: WorkflowRun, site: DemoSite) -> None:
    """Delete note {note_id} from account {account}."""
    keep = site.state.add_note("tyrell", "Keep this one.")
    gone = site.state.add_note("tyrell", "Added by mistake.")
    run.bind(account="tyrell", note_id=str(gone.id))

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
        intent="Open the note's delete page",
        action="goto",
        target="/crm/accounts/{account}/notes/{note_id}/delete",
    )
    step(
        run,
        intent="Check it is the right note",
        action="wait_for",
        target='[data-testid="delete-note-text"]',
    )
    step(
        run,
        intent="Delete the note",
        action="click",
        target='[data-testid="confirm-delete-note"]',
    )
    step(
        run,
        intent="Confirm the note was deleted",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Note {note_id} deleted",
    )

    assert [n.id for n in site.state.notes_for("tyrell")] == [keep.id]
