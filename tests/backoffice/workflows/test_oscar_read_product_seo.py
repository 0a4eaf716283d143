"""Store workflow (read-only): a product's title and SEO fields."""

from __future__ import annotations

import pytest
from store_steps import open_product, sign_in

from agentd.workflow_steps import WorkflowRun, step
from tests.backoffice.store import Store


@pytest.mark.browser
def test_oscar_read_product_seo(run: WorkflowRun, store: Store) -> None:
    """Read the title, SEO title and meta description of product {product_id}."""
    product_id = store.product_id("BSG-GRINDER")
    run.bind(product_id=str(product_id))

    sign_in(run)
    open_product(run)
    step(run, intent="Read the title", action="extract", target="#id_title", result="title")
    # The SEO fields sit on a tab that is not shown: reading needs no click.
    step(
        run,
        intent="Read the SEO title",
        action="extract",
        target="#id_meta_title",
        result="seo_title",
    )
    step(
        run,
        intent="Read the meta description",
        action="extract",
        target="#id_meta_description",
        result="meta_description",
    )

    row = store.product(product_id)
    assert run.results == {
        "title": row["title"],
        "seo_title": row["meta_title"],
        "meta_description": row["meta_description"],
    }
