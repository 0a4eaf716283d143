"""Agent mode: the model plans a task no workflow records, one command at a time.

The repair loop of :mod:`agentd.browser.agent` promoted to a whole task. At
each step the model (a :class:`~agentd.llm.TaskPlanner`) gets the task, the
page's URL and digest (its visible elements, each with a reference ``eN``
and never a secret's value), the commands so far with their results, and
answers with one command of :data:`~agentd.core.agent_mode.AGENT_METHODS`.
The command then runs as a recorded step does, through the same
:meth:`BrowserAgent._step`: consent and cancellation at the boundary, the
method and host allowlists, a screenshot, an audited step row (source
``agent``, with the model's reason in its ``detail``). What the model may do
less than a recorded workflow: a secret goes only, as a ``{secret:name}``
placeholder, into a password or ``data-secret`` field.

A command that would change something (:func:`~agentd.core.agent_mode.is_write`)
needs a consent granting ``write``, and below L4 waits for a person: the
operation enters ``awaiting_step_approval`` with a full-size screenshot and the
exact command, until ``agentctl op approve-step`` or ``op reject-step``.

A step that fails on the page (nothing matched, an expectation unmet) is told
to the model, which may try another command; a refused command (a method off
the list, an unknown element, a secret where it may not go, a host off the
allowlist) or an answer that is not a command ends the operation as failed
(``refused_command``). So do the budgets (:func:`~agentd.core.agent_mode.budget_stop`):
steps, tokens and cost per operation and per day, and wall-clock time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
from loguru import logger

from agentd.browser import CaptureRefused, StepFailed, StepProblem
from agentd.browser.agent import (
    BrowserAgent,
    OperationEnded,
    StopSignal,
    _Journal,
    _Run,
)
from agentd.browser.journal import ACTOR, Operation, OperationLog
from agentd.browser.protocols import Browser
from agentd.core.agent_mode import (
    AGENT_METHODS,
    BROWSER_ACTIONS,
    TASK_WORKFLOW,
    AgentMethod,
    BudgetStop,
    Element,
    Limits,
    Spend,
    budget_stop,
    call_cost,
    is_write,
    needs_step_approval,
    stable_selector,
)
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.consent import Permission, ShortfallReason, consent_shortfall
from agentd.core.policy import AutonomyLevel
from agentd.errors import AgentdError, ExternalError
from agentd.kb import Action, KnowledgeBase, Step, Workflow, placeholders
from agentd.llm import PlannedCommand, TaskPlanner, redact
from agentd.ops_config import BrowserSettings
from agentd.vault import Vault

_RESULT_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class Decision:
    """A person's answer to a step awaiting approval."""

    approved: bool
    actor: str
    reason: str = ""


class TaskHost(Protocol):
    """What a task operation needs beyond the operation log: the store's spend and
    secrets, the autonomy level, and the people who approve its writes."""

    async def secret_names(self, account: str, service: str) -> Sequence[str]:
        """Return the names of the account's secrets for the service."""
        ...

    async def day_spend(self) -> Spend:
        """Return what every operation's model calls spent today (UTC)."""
        ...

    async def add_spend(self, op_id: str, spend: Spend) -> None:
        """Add one model call's spend to the operation and the day."""
        ...

    async def level(self) -> AutonomyLevel:
        """Return the autonomy level in force."""
        ...

    async def pause(self, op_id: str, owner: str, pending: Mapping[str, Any]) -> None:
        """Put the operation in ``awaiting_step_approval`` with the step that waits (audited)."""
        ...

    async def decision(self, op_id: str, stop: StopSignal, timeout_s: float) -> Decision | None:
        """Wait for a person's decision; None when ``stop`` was set or the time ran out."""
        ...


@dataclass(frozen=True)
class AgentModeSettings:
    """Agent mode's limits, prices and approval wait (from ``[llm]``)."""

    limits: Limits = field(default_factory=Limits)
    input_usd_per_mtok: float = 3.0
    output_usd_per_mtok: float = 15.0
    approval_timeout_s: float = 3600.0


@dataclass
class _TaskRun(_Run):
    task: str = ""
    elements: dict[str, Element] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    spent: Spend = field(default_factory=Spend)
    started: float = 0.0
    paused_s: float = 0.0
    planned: int = 0
    detail: dict[str, Any] | None = None  # the model's choice for the current step
    stop: StopSignal = field(default_factory=StopSignal)


def _no_knowledge_base() -> KnowledgeBase:
    raise AgentdError("a task operation has no recorded workflow")


class TaskAgent(BrowserAgent):
    """Run task operations: the model plans each command (see the module's docstring)."""

    def __init__(
        self,
        log: OperationLog,
        browser: Browser,
        settings: BrowserSettings,
        *,
        planner: TaskPlanner,
        host: TaskHost,
        mode: AgentModeSettings,
        vault: Vault | None,
        folder: Path,
        owner: str,
        on_change: Callable[[str], None] = lambda op_id: None,
    ) -> None:
        super().__init__(
            log,
            browser,
            settings,
            knowledge_base=_no_knowledge_base,
            vault=vault,
            model=None,
            folder=folder,
            owner=owner,
            on_change=on_change,
        )
        self.planner = planner
        self.host = host
        self.mode = mode

    def _new_run(self, op: Operation) -> _Run:
        task = getattr(op, "task", None) or ""
        return _TaskRun(op, op.attempts, self.folder / op.id, task=task)

    # -- preparing ------------------------------------------------------------------------

    async def _prepare(self, run: _Run) -> None:
        assert isinstance(run, _TaskRun)
        op = run.op
        run.needs = Permission.READ
        consent = await self.log.active_consent(op.account, op.service, TASK_WORKFLOW)
        shortfall = consent_shortfall(consent, TASK_WORKFLOW, run.needs)
        if shortfall is not None:
            raise OperationEnded("cancelled", shortfall.reason.value, shortfall.message)
        hosts, base_url = await self._target(op)
        names = tuple(await self.host.secret_names(op.account, op.service))
        run.workflow = Workflow(TASK_WORKFLOW, run.task, TASK_WORKFLOW, (), names, ())
        run.params = {"account": op.account}
        await self._start(run, hosts, base_url)
        run.started = time.monotonic()

    # -- the loop -------------------------------------------------------------------------

    async def _steps(self, run: _Run, stop: StopSignal) -> None:
        assert isinstance(run, _TaskRun) and run.session is not None
        plain = {n: v.reveal() for n, v in run.secrets.items()}
        run.session.protect(plain)
        run.stop = stop
        ended: Exception | None = None
        async with anyio.create_task_group() as tg:
            journal = _Journal(self, run, tg)
            run.tasks = tg
            try:
                ended = await self._plan_and_run(run, stop, plain, journal)
                last = run.fresh
                if last is None or (ended is not None and last.scale < 1):
                    last = self._capture(run, scale=None if ended is None else 1.0, final=True)
                run.last_capture = last
            finally:
                self._release(run)
                journal.close()
        if ended is not None:
            raise ended
        if run.record_error is not None:
            raise run.record_error

    async def _plan_and_run(
        self, run: _TaskRun, stop: StopSignal, plain: Mapping[str, str], journal: _Journal
    ) -> Exception | None:
        """Plan and run commands until the model says done; return why it stopped otherwise."""
        while True:
            template: Step | None = None
            run.detail = None
            try:
                template = await self._next(run, stop, plain)
                if template is None:
                    return None
                await self._step(run, stop, template, plain, journal)
                run.history.append(_history_line(template, run.detail, "ok"))
            except OperationEnded as end:
                # A page problem (nothing matched, an expectation unmet, a timeout) is
                # told to the model; a refusal, a host off the list, a budget is not.
                if end.reason != "step_failed" or template is None:
                    return end
                run.history.append(_history_line(template, run.detail, f"failed: {end.message}"))
            except Exception as exc:
                return exc

    async def _next(self, run: _TaskRun, stop: StopSignal, plain: Mapping[str, str]) -> Step | None:
        """Ask the model for the next command; return it as a step (None: the task is done).

        :raises OperationEnded: a budget is spent, the model gave up, or its answer
            was refused.
        """
        assert run.session is not None and run.workflow is not None
        if stop.reason is not None:
            raise OperationEnded("cancelled", stop.reason, stop.message)
        await self._within_budget(run, steps=run.planned)
        run.elements, digest = await self._digest(run, plain)
        turn = await self.planner.plan_task_step(
            task=run.task,
            allowed_methods=AGENT_METHODS,
            page_url=run.session.url(),
            digest=digest,
            history=run.history,
            placeholders=[f"{{secret:{n}}}" for n in run.workflow.secrets],
            secrets=list(plain.values()),
        )
        spend = call_cost(
            turn.input_tokens,
            turn.output_tokens,
            self.mode.input_usd_per_mtok,
            self.mode.output_usd_per_mtok,
        )
        run.spent = run.spent.plus(spend)
        await self.host.add_spend(run.op.id, spend)
        run.planned += 1
        index = run.planned
        if turn.problem is not None or turn.command is None:
            problem = turn.problem or ExternalError("no command")
            self._refuse(run, index, f"the model's answer was refused: {problem.message}", "")
        # Spent past a budget by this very answer: its command does not run.
        await self._within_budget(run, steps=0)
        assert turn.command is not None
        return await self._command_step(run, index, turn.command, turn.ref)

    async def _command_step(
        self, run: _TaskRun, index: int, cmd: PlannedCommand, ref: str | None
    ) -> Step | None:
        method = AgentMethod(cmd.method)
        reason = " ".join((cmd.reason or "").split())[:300]
        if method is AgentMethod.DONE:
            if cmd.value:
                run.results["summary"] = cmd.value[:500]
            logger.info("op {}: the model says the task is done: {}", run.op.id, cmd.value)
            return None
        if method is AgentMethod.GIVE_UP:
            raise OperationEnded("failed", "gave_up", f"the model gave up: {cmd.value or reason}")
        element = run.elements.get(ref or "") if ref else None
        if ref and element is None:
            self._refuse(run, index, f"the model named an unknown element {ref!r}", ref)
        action = Action(BROWSER_ACTIONS[method])
        value: str | None = cmd.value
        if action is Action.GOTO:
            target, value = (cmd.value or cmd.selector or "").strip(), None
            if not target.startswith(("/", "http://", "https://")) or target.startswith("//"):
                self._refuse(run, index, f"goto {target[:80]!r}: a path or an http(s) URL", "")
        else:
            target = stable_selector(element) if element is not None else (cmd.selector or "")
        if not target:
            self._refuse(run, index, f"the model's {method} command names no target", "")
        if placeholders(target)[1] or (placeholders(value)[1] and action is not Action.FILL):
            self._refuse(run, index, "the model put a secret outside a fill value", target)
        expect = result = None
        if action is Action.EXPECT_TEXT:
            expect, value = value or "", None
            if not expect:
                self._refuse(run, index, "the model's expect_text names no text", target)
        elif action is Action.EXTRACT:
            name = (value or "").strip()
            result, value = (name if _RESULT_NAME.fullmatch(name) else f"result_{index}"), None
        elif action in (Action.FILL, Action.SELECT_OPTION) and value is None:
            self._refuse(run, index, f"the model's {method} command has no value", target)
        step = Step(index, reason or f"{method} {target}", action, target, value, expect, result)
        run.detail = {
            "method": method.value,
            "ref": ref,
            "element": asdict(element) if element is not None else None,
            "value": value,
            "expect": expect,
            "result": result,
            "reason": reason,
        }
        if is_write(method, element):
            await self._before_write(run, step)
        return step

    # -- checks ---------------------------------------------------------------------------

    def _refuse(self, run: _TaskRun, index: int, problem: str, target: str) -> None:
        """Refuse the model's command (audited at the end): the operation fails."""
        run.refusals.append((index, "agent", problem, target))
        raise OperationEnded("failed", "refused_command", f"step {index}: {problem}")

    async def _within_budget(self, run: _TaskRun, *, steps: int) -> None:
        elapsed = time.monotonic() - run.started - run.paused_s
        day = await self.host.day_spend()
        reached = budget_stop(
            self.mode.limits, steps=steps, spent=run.spent, day=day, elapsed_s=elapsed
        )
        if reached is not None:
            await self._budget_reached(run, reached)

    async def _budget_reached(self, run: _TaskRun, reached: BudgetStop) -> None:
        data = {"reason": reached.reason.value, "message": reached.message, **run.spent.to_dict()}
        event = AuditEvent(AuditEventType.OPERATION_BUDGET_REACHED, ACTOR, run.op.id, data)
        await self.log.audit(event)
        raise OperationEnded("failed", reached.reason.value, reached.message)

    async def _digest(
        self, run: _TaskRun, plain: Mapping[str, str]
    ) -> tuple[dict[str, Element], str]:
        """Return the page's elements by reference, and the digest the model reads."""
        assert run.session is not None
        if run.session.url() == "about:blank":
            return {}, ""
        elements: dict[str, Element] = {}
        lines: list[str] = []
        secrets = list(plain.values())
        for n, item in enumerate(await run.session.digest(), start=1):
            ref = f"e{n}"
            element = Element.from_dict({**item, "ref": ref})
            elements[ref] = element
            attrs = [
                f"{k}={getattr(element, k)!r}"
                for k in ("type", "role", "testid", "id", "name", "href")
                if getattr(element, k)
            ]
            shown = f" value={item['value']!r}" if item.get("value") else ""
            secret = " (secret field)" if item.get("secret") else ""
            line = f"{ref} {element.tag} {' '.join(attrs)} {element.text!r}{shown}{secret}"
            lines.append(redact(line, secrets))
        return elements, "\n".join(lines)

    async def _before_write(self, run: _TaskRun, step: Step) -> None:
        """Check a write's consent; below L4 wait for a person's approval."""
        op = run.op
        consent = await self.log.active_consent(op.account, op.service, TASK_WORKFLOW)
        shortfall = consent_shortfall(consent, TASK_WORKFLOW, Permission.WRITE)
        if shortfall is not None:
            why = shortfall.message
            if shortfall.reason is ShortfallReason.PERMISSION_MISSING:
                why = f"the consent for {op.account}/{op.service} does not grant write"
            self._refuse(run, step.index, f"a step that may change the site: {why}", step.target)
        run.needs = Permission.WRITE
        if needs_step_approval(await self.host.level(), True):
            await self._await_approval(run, step)

    async def _await_approval(self, run: _TaskRun, step: Step) -> None:
        """Wait, in ``awaiting_step_approval``, until a person approves or rejects ``step``."""
        assert run.session is not None
        for capture in run.captures:
            await capture.captured.wait()
        saved: dict[str, str] = {}
        try:
            shot = await run.session.screenshot(scale=1.0)
        except CaptureRefused as exc:
            await self._capture_refused(run, exc, "approval")
            raise
        await self._save(run, shot, step.index, saved)
        pending = {
            "index": step.index,
            "action": step.action.value,
            "target": step.target,
            "value": step.value,
            "reason": step.intent,
            "page": run.session.url(),
            **saved,
        }
        await self.host.pause(run.op.id, self.owner, pending)
        self.on_change(run.op.id)
        began = time.monotonic()
        decision = await self.host.decision(run.op.id, run.stop, self.mode.approval_timeout_s)
        run.paused_s += time.monotonic() - began
        if decision is None:
            if run.stop.reason is not None:
                raise OperationEnded("cancelled", run.stop.reason, run.stop.message)
            raise OperationEnded(
                "failed",
                "approval_timeout",
                f"step {step.index} waited {self.mode.approval_timeout_s:g}s for approval",
            )
        if not decision.approved:
            raise OperationEnded(
                "cancelled",
                "step_rejected",
                f"step {step.index} was rejected by {decision.actor}: {decision.reason}",
            )

    # -- hooks of the agent ---------------------------------------------------------------

    async def _execute(
        self,
        run: _Run,
        template: Step,
        plain: Mapping[str, str],
        journal: _Journal,
        ready: Callable[[], Awaitable[None]],
    ) -> None:
        """Run the model's command: the allowlists, then a secret only into a secret field."""
        rendered = self._render(template, run.params, plain)
        run.used, run.used_by = template, "agent"
        self._check(run, template, rendered, "agent")
        try:
            await self._perform(run, template, rendered, ready, any_field=False)
        except StepFailed as exc:
            if exc.problem is StepProblem.REFUSED:
                run.refusals.append((template.index, "agent", exc.message, template.target))
            raise

    def _step_row(
        self,
        run: _Run,
        template: Step,
        status: str,
        duration_ms: float,
        source: str,
        error: str | None,
        used: Step | None = None,
    ) -> dict[str, Any]:
        row = super()._step_row(run, template, status, duration_ms, source, error, used)
        row.pop("recorded", None)
        row["detail"] = run.detail if isinstance(run, _TaskRun) else None
        return row


def _history_line(step: Step, detail: Mapping[str, Any] | None, outcome: str) -> str:
    shown = step.value if step.value is not None else step.expect or step.result or ""
    ref = f" [{detail['ref']}]" if detail and detail.get("ref") else ""
    value = f" {shown!r}" if shown else ""
    method = detail["method"] if detail else step.action.value
    return f"{step.index}. {method}{ref} {step.target}{value} -> {outcome}"
