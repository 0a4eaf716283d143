"""Workflow (read-only): snapshot a product's title, SEO fields and price."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step


@pytest.mark.browser
def test_read_product_seo(run: WorkflowRun, site: DemoSite) -> None:
    """Read the title, SEO title, meta description and price of product {product_id}."""
    run.bind(product_id="102")
    requests_before = len(site.access_log)

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
        intent="Open the product's edit form",
        action="goto",
        target="/admin/products/{product_id}/edit",
    )
    step(
        run,
        intent="Read the title",
        action="extract",
        target='[data-testid="product-title"]',
        result="title",
    )
    step(
        run,
        intent="Read the SEO title",
        action="extract",
        target='[data-testid="product-seo-title"]',
        result="seo_title",
    )
    step(
        run,
        intent="Read the meta description",
        action="extract",
        target='[data-testid="product-meta-description"]',
        result="meta_description",
    )
    step(
        run,
        intent="Read the price",
        action="extract",
        target='[data-testid="product-price"]',
        result="price",
    )

    product = site.state.product(102)
    assert run.results == {
        "title": product.title,
        "seo_title": product.seo_title,
        "meta_description": product.meta_description,
        "price": str(product.price),
    }
    posts = [r for r in site.access_log[requests_before:] if r.method == "POST"]
    assert [r.path for r in posts] == ["/login"]  # reading changes nothing
