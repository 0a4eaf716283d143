"""The agent's rules without Chromium: capture ordering and consent, on a scripted browser.

The Chromium tests (tests/integration/test_browser_*.py) run the same loop on
real pages; these pin down what each step's screenshot shows and when the
agent stops, with every event in order (agentd.testing.browser).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentd.browser import StepProblem
from agentd.browser.agent import BrowserAgent, StopSignal
from agentd.kb import Action, KnowledgeBase, Step, Workflow
from agentd.ops_config import BrowserSettings, ServiceConfig
from agentd.store.records import OperationRow
from agentd.testing.browser import (
    Event,
    MemoryOperationLog,
    ScriptedBrowser,
    ScriptedPage,
    shown,
)

pytestmark = pytest.mark.anyio

SERVICE, ACCOUNT = "backoffice", "brightside"
SITE = "http://shop.test"
PAGES = {
    "/form": ScriptedPage(texts={"h1": "Edit product"}, links={"#save": "/saved"}),
    "/saved": ScriptedPage(texts={"#flash": "Saved", "#title": "Kettle", "#price": "42"}),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class Consent:
    operation: str = "*"
    permissions: tuple[str, ...] = ("write",)
    version: int = 1


def _steps(*specs: tuple[Action, str, str | None]) -> tuple[Step, ...]:
    return tuple(
        Step(
            i,
            f"step {i}",
            action,
            target,
            value if action is not Action.EXPECT_TEXT else None,
            expect=value if action is Action.EXPECT_TEXT else None,
            result=f"r{i}" if action is Action.EXTRACT else None,
        )
        for i, (action, target, value) in enumerate(specs, start=1)
    )


EDIT = _steps(
    (Action.GOTO, "/form", None),
    (Action.FILL, "#title", "Kettle"),
    (Action.FILL, "#price", "42"),
    (Action.CLICK, "#save", None),
    (Action.EXPECT_TEXT, "#flash", "Saved"),
    (Action.EXTRACT, "#title", None),
    (Action.EXTRACT, "#price", None),
)
READ = _steps((Action.GOTO, "/saved", None), (Action.EXTRACT, "#title", None))


def _op(workflow: str) -> OperationRow:
    return OperationRow(
        id="op_1",
        account=ACCOUNT,
        service=SERVICE,
        workflow=workflow,
        params={},
        state="in_progress",
        step=0,
        total=0,
        attempts=1,
        lease_owner="me",
        lease_until=None,
        reason=None,
        error=None,
        result={},
        folder=None,
        execution_id=None,
        created_by="t",
        created_at="",
        updated_at="",
        started_at=None,
        finished_at=None,
    )


async def _run(
    tmp_path: Path,
    steps: tuple[Step, ...],
    log: MemoryOperationLog,
    *,
    failures: dict[int, StepProblem] | None = None,
    on_act: Callable[[Event], None] = lambda event: None,
) -> tuple[Any, ScriptedBrowser]:
    settings = BrowserSettings(services={SERVICE: ServiceConfig(base_url=SITE)})
    kb = KnowledgeBase("", {}, (Workflow("flow", "", "test", (), (), steps),))
    browser = ScriptedBrowser(settings, PAGES, failures=failures, on_act=on_act)
    agent = BrowserAgent(
        log,
        browser,
        settings,
        knowledge_base=lambda: kb,
        vault=None,
        folder=tmp_path,
        owner="me",
    )
    op = _op("flow")
    log.operations[op.id] = op
    with anyio.fail_after(30):
        await agent.run(op, StopSignal())
    return log.ends[-1], browser


def _rows(log: MemoryOperationLog) -> dict[int, dict[str, Any]]:
    return {e.row["idx"]: e.row for e in log.steps}


def _shows(row: dict[str, Any]) -> dict[str, Any]:
    return shown(Path(row["screenshot"]).read_bytes())


async def test_a_click_is_shown_before_it_acts_with_the_form_as_filled(tmp_path: Path) -> None:
    log = MemoryOperationLog(consent=Consent(), hosts=["shop.test"])
    end, browser = await _run(tmp_path, EDIT, log)
    assert (end.state, end.reason) == ("completed", None)
    rows = _rows(log)
    click = _shows(rows[4])
    # The page before the click, the form as the fills left it.
    assert click == {"version": 3, "path": "/form", "fields": {"#title": "Kettle", "#price": "42"}}
    events = browser.sessions[0].events
    act = events.index(Event("act", 4, 4, "click"))
    assert Event("capture", 3) in events[:act], "the click acted before its capture ended"
    # The navigation and the fills are shown by the next capture: the click's.
    assert rows[1]["sha256"] == rows[2]["sha256"] == rows[3]["sha256"] == rows[4]["sha256"]


async def test_a_run_of_reading_steps_shares_one_capture_of_the_page_they_read(
    tmp_path: Path,
) -> None:
    log = MemoryOperationLog(consent=Consent(), hosts=["shop.test"])
    end, browser = await _run(tmp_path, EDIT, log)
    rows = _rows(log)
    assert rows[5]["sha256"] == rows[6]["sha256"] == rows[7]["sha256"]
    assert _shows(rows[5]) == {"version": 4, "path": "/saved", "fields": {}}
    assert end.results == {"r6": "Kettle", "r7": "42"}
    # Two captures in all: before the click, and after it (also the final screenshot).
    assert [e for e in browser.sessions[0].events if e.kind == "capture"] == [
        Event("capture", 3),
        Event("capture", 4),
    ]


async def test_a_read_only_consent_stops_a_writing_workflow_before_it_starts(
    tmp_path: Path,
) -> None:
    log = MemoryOperationLog(consent=Consent(permissions=("read",)), hosts=["shop.test"])
    end, browser = await _run(tmp_path, EDIT, log)
    assert (end.state, end.reason) == ("cancelled", "permission_revoked")
    assert "needs permission 'write'" in (end.error or "")
    assert browser.sessions == [] and log.steps == []


@pytest.mark.parametrize(
    ("consent", "state", "reason"),
    [
        (Consent(permissions=("read",)), "completed", None),  # read is enough to read
        (Consent(permissions=()), "completed", None),  # no permissions: every permission
        (None, "cancelled", "consent_missing"),
    ],
)
async def test_consent_decides_whether_a_reading_workflow_runs(
    tmp_path: Path, consent: Consent | None, state: str, reason: str | None
) -> None:
    log = MemoryOperationLog(consent=consent, hosts=["shop.test"])
    end, _ = await _run(tmp_path, READ, log)
    assert (end.state, end.reason) == (state, reason)


async def test_a_consent_revoked_between_steps_stops_the_next_change(tmp_path: Path) -> None:
    log = MemoryOperationLog(consent=Consent(), hosts=["shop.test"])

    def revoke_after_the_fills(event: Event) -> None:
        if event.step == 3:
            log.consent = None

    end, browser = await _run(tmp_path, EDIT, log, on_act=revoke_after_the_fills)
    assert (end.state, end.reason) == ("cancelled", "consent_revoked")
    acts = [e.step for e in browser.sessions[0].events if e.kind == "act"]
    assert acts == [1, 2, 3], "the click ran after the consent was revoked"


async def test_a_narrowed_consent_stops_the_next_change(tmp_path: Path) -> None:
    log = MemoryOperationLog(consent=Consent(), hosts=["shop.test"])

    def narrow(event: Event) -> None:
        if event.step == 1:
            log.consent = Consent(permissions=("read",), version=2)

    end, browser = await _run(tmp_path, EDIT, log, on_act=narrow)
    assert (end.state, end.reason) == ("cancelled", "permission_revoked")
    assert [e.step for e in browser.sessions[0].events if e.kind == "act"] == [1]


async def test_a_failed_step_ends_with_a_full_size_final_screenshot(tmp_path: Path) -> None:
    log = MemoryOperationLog(consent=Consent(), hosts=["shop.test"])
    end, browser = await _run(tmp_path, EDIT, log, failures={5: StepProblem.TIMEOUT})
    assert (end.state, end.reason) == ("failed", "step_failed")
    assert _rows(log)[5]["status"] == "failed"
    assert end.saved and shown(Path(end.saved["screenshot"]).read_bytes())["path"] == "/saved"
    assert browser.sessions[0].closed
