"""Store workflow (read-only): a content page's title and content."""

from __future__ import annotations

import pytest
from store_steps import open_page, sign_in

from agentd.workflow_steps import WorkflowRun, step
from tests.backoffice.store import Store


@pytest.mark.browser
def test_oscar_read_page(run: WorkflowRun, store: Store) -> None:
    """Read the title and content (HTML) of content page {page_id}."""
    run.bind(page_id=str(store.template.page_id))

    sign_in(run)
    open_page(run)
    step(run, intent="Read the title", action="extract", target="#id_title", result="title")
    step(
        run,
        intent="Read the content",
        action="extract",
        target="#id_content",
        result="content",
    )

    row = store.page(store.template.page_id)
    assert run.results == {"title": row["title"], "content": row["content"]}
