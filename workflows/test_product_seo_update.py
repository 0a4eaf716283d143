"""Workflow: update a product's SEO title and meta description."""

from __future__ import annotations

import pytest

from agentd.demosite import DemoSite
from workflows.steps import WorkflowRun, step

NEW_SEO_TITLE = "Gooseneck Pour-Over Kettle 1 L | Brightside Goods"
NEW_META = "Precise pour control for pour-over coffee: a 1 litre stainless gooseneck kettle."


@pytest.mark.browser
def test_product_seo_update(run: WorkflowRun, site: DemoSite) -> None:
    """Set the SEO title and meta description of product {product_id}, with before/after values."""
    before = site.state.product(103)
    run.bind(product_id="103", seo_title=NEW_SEO_TITLE, meta_description=NEW_META)

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
    step(run, intent="Open the product list", action="click", target='[data-testid="nav-products"]')
    step(
        run,
        intent="Open the product's edit form",
        action="click",
        target='[data-testid="edit-product-{product_id}"]',
    )
    step(
        run,
        intent="Reach the product's edit form",
        action="expect_url",
        target="/admin/products/{product_id}/edit",
    )
    step(
        run,
        intent="Record the SEO title before the change",
        action="extract",
        target='[data-testid="product-seo-title"]',
        result="before_seo_title",
    )
    step(
        run,
        intent="Record the meta description before the change",
        action="extract",
        target='[data-testid="product-meta-description"]',
        result="before_meta_description",
    )
    step(
        run,
        intent="Enter the new SEO title",
        action="fill",
        target='[data-testid="product-seo-title"]',
        value="{seo_title}",
    )
    step(
        run,
        intent="Enter the new meta description",
        action="fill",
        target='[data-testid="product-meta-description"]',
        value="{meta_description}",
    )
    step(run, intent="Save the product", action="click", target='[data-testid="product-save"]')
    step(
        run,
        intent="Confirm the product was saved",
        action="expect_text",
        target='[data-testid="notice"]',
        expect="Product updated.",
    )
    step(
        run,
        intent="Record the SEO title after the change",
        action="extract",
        target='[data-testid="product-seo-title"]',
        result="after_seo_title",
    )
    step(
        run,
        intent="Record the meta description after the change",
        action="extract",
        target='[data-testid="product-meta-description"]',
        result="after_meta_description",
    )

    after = site.state.product(103)
    assert (after.seo_title, after.meta_description) == (NEW_SEO_TITLE, NEW_META)
    assert (after.title, after.price) == (before.title, before.price)
    assert run.results == {
        "before_seo_title": before.seo_title,
        "before_meta_description": before.meta_description,
        "after_seo_title": NEW_SEO_TITLE,
        "after_meta_description": NEW_META,
    }
