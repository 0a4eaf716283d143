"""Store workflow: add a note to an order."""

from __future__ import annotations

import pytest
from store_steps import sign_in

from agentd.workflow_steps import WorkflowRun, step
from tests.backoffice.store import Store

NOTE = "Customer asked for gift wrapping; agreed on the phone."


@pytest.mark.browser
def test_oscar_add_order_note(run: WorkflowRun, store: Store) -> None:
    """Add note {note} to order {order_number}."""
    number = store.template.order_number
    notes_before = store.order_notes(number)
    run.bind(order_number=number, note=NOTE)

    sign_in(run)
    step(run, intent="Open the order", action="goto", target="/dashboard/orders/{order_number}/")
    step(run, intent="Show the notes tab", action="click", target='a.nav-link[href="#notes"]')
    step(run, intent="Write the note", action="fill", target="#id_message", value="{note}")
    step(
        run,
        intent="Save the note",
        action="click",
        target='#order_note_form input[type="submit"]',
    )
    step(
        run,
        intent="Confirm the note was saved",
        action="expect_text",
        target=".alert-success",
        expect="Note saved",
    )
    step(
        run,
        intent="See the note on the order",
        action="expect_text",
        target="#notes",
        expect="{note}",
    )

    assert store.order_notes(number) == [*notes_before, NOTE]
