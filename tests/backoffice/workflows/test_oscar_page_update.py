"""Store workflow: rewrite a content page in the dashboard's rich-text editor."""

from __future__ import annotations

import pytest
from store_steps import open_page, sign_in

from agentd.workflow_steps import WorkflowRun, step
from tests.backoffice.store import Store

NEW_TEXT = "We ship within one working day, and free from 50 pounds."


@pytest.mark.browser
def test_oscar_page_update(run: WorkflowRun, store: Store) -> None:
    """Replace the text of content page {page_id}, with its content before and after."""
    page_id = store.template.page_id
    before = store.page(page_id)
    run.bind(page_id=str(page_id), text=NEW_TEXT)

    sign_in(run)
    open_page(run)
    step(
        run,
        intent="Record the content before the change",
        action="extract",
        target="#id_content",
        result="before_content",
    )
    # The content field is a TinyMCE editor: its text is the body of an iframe.
    # The editor makes that body editable in the same task that loads the field's
    # text into it: typed before then, the text would be overwritten.
    step(
        run,
        intent="Wait for the editor to be ready",
        action="wait_for",
        target='#id_content_ifr |> body[contenteditable="true"]',
    )
    step(
        run,
        intent="Type the new text into the editor",
        action="fill",
        target="#id_content_ifr |> body",
        value="{text}",
    )
    step(
        run,
        intent="Save the page",
        action="click",
        target='#create_update_page_form button[type="submit"]',
    )
    step(run, intent="Back on the page list", action="expect_url", target="/dashboard/pages/")
    step(
        run,
        intent="Confirm the page was saved",
        action="expect_text",
        target=".alert-success",
        expect="saved",
    )
    open_page(run)
    step(
        run,
        intent="Record the content after the change",
        action="extract",
        target="#id_content",
        result="after_content",
    )

    after = store.page(page_id)
    assert after["content"] == f"<p>{NEW_TEXT}</p>"  # the editor writes HTML
    assert after["title"] == before["title"]
    assert run.results == {
        "before_content": before["content"],
        "after_content": after["content"],
    }
