"""Store workflow: set a product's SEO title and meta description."""

from __future__ import annotations

import pytest
from store_steps import open_product, sign_in

from agentd.workflow_steps import WorkflowRun, step
from tests.backoffice.store import Store

NEW_TITLE = "Burr Grinder, 40 settings | Brightside Goods"
NEW_META = "A conical burr grinder with 40 settings, from espresso to cold brew."


@pytest.mark.browser
def test_oscar_product_seo_update(run: WorkflowRun, store: Store) -> None:
    """Set the SEO title and meta description of product {product_id}, with before/after."""
    product_id = store.product_id("BSG-GRINDER")
    before = store.product(product_id)
    run.bind(product_id=str(product_id), seo_title=NEW_TITLE, meta_description=NEW_META)

    sign_in(run)
    open_product(run)
    step(
        run,
        intent="Record the SEO title before the change",
        action="extract",
        target="#id_meta_title",
        result="before_seo_title",
    )
    step(
        run,
        intent="Record the meta description before the change",
        action="extract",
        target="#id_meta_description",
        result="before_meta_description",
    )
    step(
        run,
        intent="Show the search engine optimisation tab",
        action="click",
        target='a.nav-link[href="#seo"]',
    )
    step(
        run,
        intent="Enter the new SEO title",
        action="fill",
        target="#id_meta_title",
        value="{seo_title}",
    )
    step(
        run,
        intent="Enter the new meta description",
        action="fill",
        target="#id_meta_description",
        value="{meta_description}",
    )
    step(
        run,
        intent="Save the product",
        action="click",
        target='#create_update_product_form button[name="action"][value="save"]',
    )
    # Oscar saves, redirects to the product list and shows its message there.
    step(
        run, intent="Back on the product list", action="expect_url", target="/dashboard/catalogue/"
    )
    step(
        run,
        intent="Confirm the product was saved",
        action="expect_text",
        target=".alert-success",
        expect="Updated product",
    )
    open_product(run)
    step(
        run,
        intent="Record the SEO title after the change",
        action="extract",
        target="#id_meta_title",
        result="after_seo_title",
    )
    step(
        run,
        intent="Record the meta description after the change",
        action="extract",
        target="#id_meta_description",
        result="after_meta_description",
    )

    after = store.product(product_id)
    assert (after["meta_title"], after["meta_description"]) == (NEW_TITLE, NEW_META)
    assert after["title"] == before["title"]
    assert run.results == {
        "before_seo_title": before["meta_title"],
        "before_meta_description": before["meta_description"],
        "after_seo_title": NEW_TITLE,
        "after_meta_description": NEW_META,
    }
