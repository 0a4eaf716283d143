"""A scripted model for agent mode: the Messages-API stub answering each request
from a function of it, so a script can name elements by the references of the
page digest it was shown, as a real model does.

Usage::

    with ScriptedTaskModel(add_note_script("admin", "Call back", "acme")) as model:
        ...  # point the agent's AnthropicModel at model.url
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from agentd.testing.anthropic_stub import AnthropicStub, RecordedRequest, Reply

Answer = Callable[[RecordedRequest], Reply]


def prompt(request: RecordedRequest) -> str:
    """Return the text the model was given in a request."""
    body: Any = request.body
    return str(body["messages"][0]["content"])


def element_ref(request: RecordedRequest, testid: str) -> str:
    """Return the digest's reference of the element with this test id.

    :raises AssertionError: the page digest shows no such element.
    """
    found = re.search(rf"^(e\d+) [^\n]*testid={testid!r}", prompt(request), re.MULTILINE)
    assert found, f"{testid} is not in the page digest"
    return found.group(1)


def on(testid: str, method: str, value: str | None = None) -> Answer:
    """Answer ``method`` on the element with this test id (by its reference)."""

    def answer(request: RecordedRequest) -> Reply:
        command: dict[str, Any] = {
            "method": method,
            "ref": element_ref(request, testid),
            "reason": f"{method} the {testid.replace('-', ' ')}",
        }
        if value is not None:
            command["value"] = value
        return Reply.tool_use(method, tool_input=command)

    return answer


def go(path: str) -> Answer:
    """Answer a goto to ``path``."""
    return lambda request: Reply.tool_use("goto", value=path, reason=f"open {path}")


def done(summary: str) -> Answer:
    """Answer that the task is done."""
    return lambda request: Reply.tool_use("done", value=summary, reason="the task is done")


def add_note_script(user: str, note: str, account: str) -> list[Answer]:
    """Return the answers that add ``note`` to ``account`` on the demo back-office."""
    return [
        go("/login"),
        on("login-username", "fill", user),
        on("login-password", "fill", "{secret:admin_password}"),
        on("login-submit", "click"),
        go(f"/crm/accounts/{account}"),
        on("add-note", "click"),
        on("note-text", "fill", note),
        on("save-note", "click"),
        on("notice", "expect_text", "Note added"),
        on("note-id", "extract", "note_id"),
        done("the note is added"),
    ]


class ScriptedTaskModel(AnthropicStub):
    """The stub answering from a script of functions of the request; when the script
    is used up, as :class:`AnthropicStub` does (its queue, its default, else HTTP 500)."""

    def __init__(self, script: Sequence[Answer]) -> None:
        super().__init__()
        self.script = list(script)

    def _next(self) -> Reply:
        if not self.script:
            return super()._next()
        return self.script.pop(0)(self.requests[-1])
