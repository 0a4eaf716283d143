"""Workflow: revoke a REST API key."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_api_key_revocation(run: WorkflowRun, site: DemoSite) -> None:
    """Revoke the REST API key with id {key_id}, confirming the browser's dialog."""
    keep, _, _ = site.create_api_key("Storefront search", "read")
    revoke, _, _ = site.create_api_key("Old reporting export", "read_write")
    run.bind(key_id=str(revoke.id))

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
        intent="Open the REST API settings",
        action="goto",
        target="/admin/settings/api",
        expect="REST API keys let other applications",
    )
    step(
        run,
        intent="Find the key to revoke",
        action="wait_for",
        target='[data-testid="api-key-row-{key_id}"]',
    )
    step(
        run,
        intent="Accept the revocation confirmation when it appears",
        action="accept_dialog",
        target="Revoke API key",
    )
    step(
        run,
        intent="Revoke the key",
        action="click",
        target='[data-testid="revoke-key-{key_id}"]',
    )
    step(
        run,
        intent="Confirm the key was revoked",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="API key {key_id} revoked",
    )

    assert not site.state.api_keys[revoke.id].active
    assert site.state.api_keys[keep.id].active
    assert run.page.locator(f'[data-testid="api-key-row-{revoke.id}"]').count() == 0
