"""The ``step()`` helper the workflow tests are written with (bundled and the operator's).

It ships in the package, so workflow tests outside the repository import it:
``from agentd.workflow_steps import WorkflowRun, step``.

Each call is both a real browser action in the test and, read by
``agentd kb build`` with :mod:`ast`, a step of the agent's knowledge base:
keep every argument a literal string, with ``{name}`` for run-time parameters
and ``{secret:name}`` for vault secrets. The step semantics are described in
:mod:`agentd.kb`; this module is their reference implementation on
Playwright's sync API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from playwright.sync_api import Dialog, Locator, Page, expect

from agentd.kb import Action, Step, frame_parts

INPUT_TAGS = frozenset({"INPUT", "TEXTAREA", "SELECT"})


@dataclass
class WorkflowRun:
    """One run of a workflow: the page, its parameters and secrets, and what it extracted."""

    page: Page
    base_url: str
    secrets: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    timeout_ms: float = 5000
    done: list[Step] = field(default_factory=list)
    dialog_problem: str | None = None

    def bind(self, **params: str) -> None:
        """Set the run-time parameters the steps' placeholders refer to."""
        self.params.update(params)


def locate(page: Page, target: str) -> Locator:
    """Return the element a step's selector names (entering its iframes, if any)."""
    frames, inner = frame_parts(target)
    if not frames:
        return page.locator(inner)
    scope = page.frame_locator(frames[0])
    for frame in frames[1:]:
        scope = scope.frame_locator(frame)
    return scope.locator(inner)


def _extract(run: WorkflowRun, target: str) -> str:
    locator = locate(run.page, target)
    locator.wait_for(state="attached", timeout=run.timeout_ms)
    # Secrets are shown once for a person; an agent never reads them back.
    if locator.get_attribute("data-secret") == "true":
        raise AssertionError(f"refusing to extract {target}: it is marked data-secret")
    tag = str(locator.evaluate("element => element.tagName"))
    return locator.input_value() if tag in INPUT_TAGS else locator.inner_text().strip()


def _arm_dialog(run: WorkflowRun, expected: str) -> None:
    def on_dialog(dialog: Dialog) -> None:
        if expected in dialog.message:
            dialog.accept()
        else:
            run.dialog_problem = f"unexpected dialog {dialog.message!r} (wanted {expected!r})"
            dialog.dismiss()

    run.page.once("dialog", on_dialog)


def _perform(run: WorkflowRun, s: Step) -> str | None:
    page, timeout = run.page, run.timeout_ms
    locator = locate(page, s.target)
    match s.action:
        case Action.GOTO:
            response = page.goto(urljoin(run.base_url + "/", s.target.lstrip("/")))
            if response is None or response.status >= 400:
                status = response.status if response else "no response"
                raise AssertionError(f"goto {s.target} answered {status}")
        case Action.CLICK:
            locator.click()
        case Action.FILL:
            locator.fill(s.value or "")
        case Action.SELECT_OPTION:
            locator.select_option(s.value or "")
        case Action.CHECK:
            locator.check()
        case Action.PRESS:
            locator.press(s.value or "")
        case Action.WAIT_FOR:
            locator.wait_for(state="visible")
        case Action.EXPECT_TEXT:
            expect(locator).to_contain_text(s.expect or "", timeout=timeout)
        case Action.EXPECT_URL:
            page.wait_for_url(lambda url: urlsplit(url).path == s.target, timeout=timeout)
        case Action.EXTRACT:
            return _extract(run, s.target)
        case Action.ACCEPT_DIALOG:
            _arm_dialog(run, s.target)
    return None


def step(
    run: WorkflowRun,
    *,
    intent: str,
    action: str,
    target: str,
    value: str | None = None,
    expect: str | None = None,
    result: str | None = None,
) -> str | None:
    """Perform one workflow step; return the extracted value for ``extract`` steps."""
    template = Step(len(run.done) + 1, intent, Action(action), target, value, expect, result)
    rendered = template.render(run.params, run.secrets)
    extracted = _perform(run, rendered)
    if rendered.expect and rendered.action is not Action.EXPECT_TEXT:
        _expect_visible(run, rendered.expect)
    if run.dialog_problem:
        raise AssertionError(run.dialog_problem)
    if result is not None:
        assert extracted is not None
        run.results[result] = extracted
    run.done.append(template)
    return extracted


def _expect_visible(run: WorkflowRun, text: str) -> None:
    expect(run.page.locator("body")).to_contain_text(text, timeout=run.timeout_ms)
