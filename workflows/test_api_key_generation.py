"""Workflow: generate a REST API key for an integration."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from agentd.demosite.state import sha256_hex
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_api_key_generation(run: WorkflowRun, site: DemoSite) -> None:
    """Generate a REST API key with a description and permissions; record its key id."""
    run.bind(description="Inventory sync", permissions="read_write")

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
        action="click",
        target='[data-testid="nav-api"]',
        expect="REST API keys let other applications",
    )
    step(run, intent="Start adding a key", action="click", target='[data-testid="add-key"]')
    step(
        run, intent="Reach the new key form", action="expect_url", target="/admin/settings/api/new"
    )
    step(
        run,
        intent="Describe who will use the key",
        action="fill",
        target='[data-testid="key-description"]',
        value="{description}",
    )
    step(
        run,
        intent="Choose the key's permissions",
        action="select_option",
        target='[data-testid="key-permissions"]',
        value="{permissions}",
    )
    step(run, intent="Generate the key", action="click", target='[data-testid="generate-key"]')
    step(
        run,
        intent="Confirm the key was generated",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="API key generated",
    )
    step(
        run,
        intent="Check the key has the requested permissions",
        action="expect_text",
        target='[data-testid="api-key-permissions"]',
        expect="{permissions}",
    )
    step(
        run,
        intent="Record the new key's id (never its secret)",
        action="extract",
        target='[data-testid="api-key-id"]',
        result="key_id",
    )
    step(
        run,
        intent="Check the consumer secret is shown once for the owner",
        action="wait_for",
        target='[data-testid="consumer-secret"]',
    )

    key = site.state.api_keys[int(run.results["key_id"])]
    assert key.active
    assert (key.description, key.permissions.value) == ("Inventory sync", "read_write")
    shown_secret = run.page.locator('[data-testid="consumer-secret"]').input_value()
    assert sha256_hex(shown_secret) == key.consumer_secret_sha256
    assert not any(v.startswith(("ck_", "cs_")) for v in run.results.values())
