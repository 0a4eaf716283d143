"""Steps shared by the store's workflows, written once: ``agentd kb build`` expands them."""

from __future__ import annotations

from agentd.workflow_steps import WorkflowRun, step


def sign_in(run: WorkflowRun) -> None:
    """Sign in to the dashboard as the staff user from the vault."""
    step(run, intent="Open the dashboard sign-in", action="goto", target="/dashboard/login/")
    step(
        run,
        intent="Enter the staff username",
        action="fill",
        target="#id_username",
        value="{secret:staff_user}",
    )
    step(
        run,
        intent="Enter the staff password",
        action="fill",
        target="#id_password",
        value="{secret:staff_password}",
    )
    step(
        run,
        intent="Sign in",
        action="click",
        target='#dashboard_login_form input[type="submit"]',
    )
    step(run, intent="Arrive on the dashboard", action="expect_url", target="/dashboard/")


def open_product(run: WorkflowRun) -> None:
    """Open product {product_id}'s edit form."""
    step(
        run,
        intent="Open the product's edit form",
        action="goto",
        target="/dashboard/catalogue/products/{product_id}/",
    )


def open_page(run: WorkflowRun) -> None:
    """Open content page {page_id}'s edit form."""
    step(
        run,
        intent="Open the content page's edit form",
        action="goto",
        target="/dashboard/pages/update/{page_id}/",
    )
