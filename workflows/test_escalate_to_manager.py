"""Workflow: escalate an account to its manager as an internal task (never to the customer)."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_escalate_to_manager(run: WorkflowRun, site: DemoSite) -> None:
    """Assign account {account}'s manager the internal task {title}."""
    run.bind(
        account="soylent",
        title="Critical risk on Soylent Foods",
        details="Three support tickets in a week and a cancelled renewal call.",
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
        intent="Open the internal task form",
        action="click",
        target='[data-testid="new-task"]',
    )
    step(
        run,
        intent="Reach the task form",
        action="expect_url",
        target="/crm/accounts/{account}/tasks/new",
    )
    step(
        run,
        intent="Check it goes to the account manager",
        action="wait_for",
        target='[data-testid="task-assignee"]',
    )
    step(
        run,
        intent="Title the escalation",
        action="fill",
        target='[data-testid="task-title"]',
        value="{title}",
    )
    step(
        run,
        intent="Say what is at stake",
        action="fill",
        target='[data-testid="task-details"]',
        value="{details}",
    )
    step(
        run,
        intent="Assign the task",
        action="click",
        target='[data-testid="save-task"]',
    )
    step(
        run,
        intent="Confirm the task was assigned",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="assigned to",
    )
    step(
        run,
        intent="Record the task's id",
        action="extract",
        target='[data-testid="task-id"]',
        result="task_id",
    )

    [task] = site.state.tasks_for("soylent")
    assert str(task.id) == run.results["task_id"]
    assert task.assignee == site.state.account("soylent").manager
    [note] = site.state.internal_notifications
    assert note.to == task.assignee and "Critical risk" in note.subject
    assert site.state.messages == []  # the customer hears nothing
