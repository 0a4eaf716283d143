"""Durable browser operations: scheduling, leases and crash recovery.

States: ``awaiting_consent`` → ``pending`` → ``in_progress`` → ``completed`` |
``failed`` | ``cancelled``; a task the model plans (agent mode,
:meth:`OperationsService.start_task`, :mod:`agentd.browser.task`) may go from
``in_progress`` to ``awaiting_step_approval`` and back, before each step that
could change the site, until a person decides
(:meth:`OperationsService.decide_step`). An operation without consent waits
and starts when consent arrives; a revoke stops a running one at its next
step boundary. At most ``max_browsers`` run at once.

Consent permissions: a workflow needs ``read`` or ``write``
(:mod:`agentd.core.consent`: ``read`` when it only opens and reads pages,
apart from signing in; ``write`` for a workflow that cannot be told). An
operation whose consent does not grant it waits in ``awaiting_consent``
(audited with what it waits for) like one without consent; a consent with no
permissions grants every permission, and ``write`` includes ``read``. A grant
that narrows the permissions, or a revoke that leaves only a narrower consent,
stops a running operation it no longer covers at its next step (reason
``permission_revoked``). Consents are granted and revoked through
:class:`~agentd.services.consents.ConsentsService`, secrets stored through
:class:`~agentd.services.secrets.SecretsService`.

A running operation holds a lease (owner and deadline), renewed with its step records.
After a crash, :meth:`OperationsService.recover` decides each orphan's fate
with :func:`recovery_decision`: an operation that cannot yet have changed the
site starts again from its first step; any other fails with reason
``interrupted`` — never silently run twice.
"""

from __future__ import annotations

import secrets as token
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
from loguru import logger

from agentd.browser import COMMITTING_ACTIONS
from agentd.browser.agent import BrowserAgent, StopSignal
from agentd.browser.journal import (
    ACTOR,
    OPERATION_CANCELLED,
    OPERATION_FAILED,
    OPERATION_STARTED,
)
from agentd.browser.protocols import Browser
from agentd.browser.task import AgentModeSettings, Decision, TaskAgent
from agentd.core.agent_mode import TASK_WORKFLOW, check_task_text
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.consent import (
    Permission,
    consent_shortfall,
    required_permission,
)
from agentd.core.policy import AutonomyLevel
from agentd.core.states import RUNNING_OPERATION_STATES, OperationState
from agentd.core.timefmt import iso
from agentd.errors import AgentdError, Conflict, InvalidArgument, InvalidState, NotFound, StoreError
from agentd.kb import KnowledgeBase, Step, bind_account
from agentd.llm import ModelUnavailable, StepPlanner, TaskPlanner
from agentd.ops_config import BrowserSettings
from agentd.services.agent_tasks import StoreTaskHost, learned_workflow_for
from agentd.services.consents import permission_lookup
from agentd.services.operation_log import StoredOperationLog
from agentd.store.base import Store
from agentd.store.records import OperationRow, StepRow
from agentd.vault import Vault

OPERATION_CREATED = AuditEventType.OPERATION_CREATED
OPERATION_RESUMED = AuditEventType.OPERATION_RESUMED
OPERATION_AWAITING_CONSENT = AuditEventType.OPERATION_AWAITING_CONSENT
STATES = tuple(OperationState)


class Recovery(StrEnum):
    """What to do with an operation found ``in_progress`` after a crash."""

    RESTART = "restart"
    INTERRUPTED = "interrupted"


def recovery_decision(
    steps: Sequence[Step] | None, steps_done: int, planned_commits: Collection[int] = ()
) -> Recovery:
    """Decide an orphan's fate from its workflow and the steps it completed.

    Step ``steps_done + 1`` may have started. A fresh browser has no session,
    so the only safe resume point is the first step, and only while no step
    that can commit a change may have run: a click or press of the workflow,
    or one the planner put in a step's place (``planned_commits``, recorded
    before it ran).
    """
    if steps is None:
        return Recovery.INTERRUPTED
    reached = [s for s in steps if s.index <= steps_done + 1]
    if any(s.action in COMMITTING_ACTIONS or s.index in planned_commits for s in reached):
        return Recovery.INTERRUPTED
    return Recovery.RESTART


def _now() -> datetime:
    return datetime.now(UTC)


class OperationsService:
    """Run browser operations durably, a few at a time.

    :param knowledge_base: returns the workflow registry (called per operation,
        so a rebuilt or stale knowledge base is noticed).
    :param vault: seals and opens secrets; ``None`` when no key is configured.
    :param browser: opens the operations' sessions (the daemon wires in
        :class:`~agentd.browser.playwright_browser.PlaywrightBrowser`).
    :param model: the LLM step planner, or ``None``.
    :param close_browser: whether :meth:`close` closes the browser (the
        daemon's own), or leaves it to whoever shares it.
    """

    def __init__(
        self,
        store: Store,
        settings: BrowserSettings,
        *,
        state_dir: Path,
        knowledge_base: Callable[[], KnowledgeBase],
        vault: Vault | None,
        browser: Browser,
        model: StepPlanner | None = None,
        owner: str | None = None,
        mine: str = "",
        close_browser: bool = False,
        agent_mode: AgentModeSettings | None = None,
        level: Callable[[], AutonomyLevel] = lambda: AutonomyLevel.L3,
    ) -> None:
        self.store = store
        self.settings = settings
        self.knowledge_base = knowledge_base
        self.vault = vault
        self.owner = owner or f"agentd-{token.token_hex(6)}"
        # The prefix of this daemon's runner ids when several daemons share the
        # store ("" when this one runs every operation): see :meth:`recover`.
        self.mine = mine
        self.folder = settings.resolved_screenshots_dir(state_dir)
        self.browser = browser
        self._own_browser = close_browser
        self.agent = BrowserAgent(
            StoredOperationLog(store, lease_s=settings.lease_s),
            self.browser,
            settings,
            knowledge_base=knowledge_base,
            vault=vault,
            model=model,
            folder=self.folder,
            owner=self.owner,
            on_change=self._notify,
        )
        # Agent mode: the model plans a task (only when the model can, see TaskPlanner).
        self.agent_mode = agent_mode or AgentModeSettings()
        self.tasks = StoreTaskHost(store, level)
        self.task_agent: TaskAgent | None = None
        if model is not None and isinstance(model, TaskPlanner):
            self.task_agent = TaskAgent(
                StoredOperationLog(store, lease_s=settings.lease_s),
                self.browser,
                settings,
                planner=model,
                host=self.tasks,
                mode=self.agent_mode,
                vault=vault,
                folder=self.folder,
                owner=self.owner,
                on_change=self._notify,
            )
        self._running: dict[str, StopSignal] = {}
        self._claim_failing = False  # the last claim found the store refusing writes
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        self._closed = False

    # -- starting, listing, cancelling ----------------------------------------------------

    async def start_operation(
        self,
        workflow: str,
        account: str,
        *,
        params: Mapping[str, str] | None = None,
        service: str | None = None,
        actor: str,
        execution_id: str | None = None,
    ) -> OperationRow:
        """Create an operation: ``pending`` with consent, else ``awaiting_consent``.

        :raises NotFound: unknown workflow, account or service.
        :raises InvalidArgument: missing or non-text parameters, an ``account``
            parameter other than ``account``, or a value that cannot go into the
            URL or selector it is used in.
        """
        service = service or self.settings.default_service
        values = dict(params or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
            raise InvalidArgument("operation parameters must be text", details={"field": "params"})
        flow = self.knowledge_base().workflow(workflow)
        # A workflow's {account} is the operation's account: the account whose consent,
        # secrets and host allowlist the operation runs under, and which the audit names.
        bind_account(values, account)
        if "account" not in flow.parameters:
            del values["account"]
        flow.check_parameters(values)
        needs = required_permission(flow.steps)
        if await self.store.gate.get_account(account) is None:
            raise NotFound(f"unknown account {account!r}", details={"account": account})
        if service not in self.settings.services:
            known = ", ".join(sorted(self.settings.services)) or "none configured"
            raise NotFound(
                f"unknown service {service!r} (known: {known})", details={"service": service}
            )
        op_id = f"op_{token.token_hex(8)}"
        now = _now()
        async with self.store.write(now) as tx:
            consent = await tx.ops.active_consent(account, service, workflow)
            shortfall = consent_shortfall(consent, workflow, needs)
            state = OperationState.AWAITING_CONSENT if shortfall else OperationState.PENDING
            await tx.ops.insert_operation(
                {
                    "id": op_id,
                    "account": account,
                    "service": service,
                    "workflow": workflow,
                    "params": values,
                    "state": state,
                    "total": len(flow.steps),
                    "execution_id": execution_id,
                    "folder": str(self.folder / op_id),
                    "created_by": actor,
                    "created_at": iso(now),
                    "updated_at": iso(now),
                },
            )
            data = {
                "workflow": workflow,
                "account": account,
                "service": service,
                "state": state,
                "needs": needs.value,
            }
            if shortfall:
                data["waiting_for"] = shortfall.message
            tx.audit(AuditEvent(OPERATION_CREATED, actor, op_id, data))
        self._wake.set()
        self._notify(op_id)
        return await self.get(op_id)

    async def start_task(
        self, task: object, account: str, *, service: str | None = None, actor: str
    ) -> OperationRow:
        """Create an operation that does ``task``: from the workflow learned for it, if
        the knowledge base has one (no model call), else planned by the model.

        :raises InvalidArgument: the task text is empty, too long or holds control
            characters.
        :raises ModelUnavailable: no workflow does the task and no model is configured.
        :raises NotFound: unknown account or service.
        """
        text = check_task_text(task)
        try:
            learned = learned_workflow_for(self.knowledge_base(), text, account)
        except AgentdError as exc:  # no knowledge base: nothing learned to replay
            logger.warning("a task without the knowledge base: {}", exc.message)
            learned = None
        if learned is not None:
            name, params = learned
            op = await self.start_operation(
                name, account, params=params, service=service, actor=actor
            )
            async with self.store.write() as tx:
                await tx.ops.update_operation(op.id, {"task": text})
            return await self.get(op.id)
        if self.task_agent is None:
            raise ModelUnavailable(
                "a task without a learned workflow is planned by the Anthropic model, but no "
                "Anthropic API key is configured ([llm] api_key or api_key_file)",
                details={"reason": "no_model", "purpose": "agent mode"},
            )
        service = service or self.settings.default_service
        await self._check_target(account, service)
        op_id = f"op_{token.token_hex(8)}"
        now = _now()
        async with self.store.write(now) as tx:
            consent = await tx.ops.active_consent(account, service, TASK_WORKFLOW)
            shortfall = consent_shortfall(consent, TASK_WORKFLOW, Permission.READ)
            state = OperationState.AWAITING_CONSENT if shortfall else OperationState.PENDING
            await tx.ops.insert_operation(
                {
                    "id": op_id,
                    "account": account,
                    "service": service,
                    "workflow": TASK_WORKFLOW,
                    "task": text,
                    "params": {},
                    "state": state,
                    "total": self.agent_mode.limits.max_steps,
                    "folder": str(self.folder / op_id),
                    "created_by": actor,
                    "created_at": iso(now),
                    "updated_at": iso(now),
                },
            )
            data = {"workflow": TASK_WORKFLOW, "account": account, "service": service}
            data |= {"state": state, "needs": Permission.READ.value, "task": text}
            if shortfall:
                data["waiting_for"] = shortfall.message
            tx.audit(AuditEvent(OPERATION_CREATED, actor, op_id, data))
        self._wake.set()
        self._notify(op_id)
        return await self.get(op_id)

    async def _check_target(self, account: str, service: str) -> None:
        if await self.store.gate.get_account(account) is None:
            raise NotFound(f"unknown account {account!r}", details={"account": account})
        if service not in self.settings.services:
            known = ", ".join(sorted(self.settings.services)) or "none configured"
            raise NotFound(
                f"unknown service {service!r} (known: {known})", details={"service": service}
            )

    async def decide_step(
        self, op_id: str, *, approved: bool, actor: str, reason: str = ""
    ) -> OperationRow:
        """Approve or reject the step an operation waits with (agent mode).

        :raises NotFound: no such operation.
        :raises InvalidState: it does not wait for a step's approval.
        """
        row = await self.tasks.decide(op_id, Decision(approved, actor, reason))
        self._notify(op_id)
        return row

    async def get(self, op_id: str) -> OperationRow:
        """Return one operation.

        :raises NotFound: no such operation.
        """
        row = await self.store.ops.get_operation(op_id)
        if row is None:
            raise NotFound(f"unknown operation {op_id!r}", details={"operation": op_id})
        return row

    async def list_operations(
        self, *, state: str | None = None, limit: int = 200
    ) -> list[OperationRow]:
        """Return operations, newest first.

        :raises InvalidArgument: unknown state.
        """
        if state is not None and state not in STATES:
            raise InvalidArgument(f"state must be one of {', '.join(STATES)}")
        return await self.store.ops.list_operations(state=state, limit=limit)

    async def steps(self, op_id: str, after_seq: int = 0) -> list[StepRow]:
        """Return an operation's audited steps."""
        return await self.store.ops.list_steps(op_id, after_seq)

    async def cancel(self, op_id: str, actor: str) -> OperationRow:
        """Cancel an operation: at once if it has not started, else at its next step.

        :raises NotFound: no such operation.
        :raises InvalidState: it has already ended.
        """
        now = _now()
        async with self.store.write(now) as tx:
            op = await tx.ops.get_operation(op_id)
            if op is None:
                raise NotFound(f"unknown operation {op_id!r}", details={"operation": op_id})
            if op.finished:
                raise InvalidState(f"operation {op_id} has already ended ({op.state})")
            if op.state in (OperationState.AWAITING_CONSENT, OperationState.PENDING):
                await self._end(
                    tx, op, OperationState.CANCELLED, "cancelled", f"cancelled by {actor}", actor
                )
        signal = self._running.get(op_id)
        if signal is not None:
            signal.set("cancelled", f"cancelled by {actor}")
        self._notify(op_id)
        return await self.get(op_id)

    def stop_all(self, reason: str, message: str) -> int:
        """Stop every running operation at its next step boundary (the kill switch)."""
        for signal in self._running.values():
            signal.set(reason, message)
        return len(self._running)

    async def _end(
        self, tx: Any, op: OperationRow, state: str, reason: str, error: str, actor: str
    ) -> None:
        await tx.ops.update_operation(
            op.id,
            {
                "state": state,
                "reason": reason,
                "error": error,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": iso(tx.now),
                "finished_at": iso(tx.now),
            },
        )
        event = OPERATION_CANCELLED if state == OperationState.CANCELLED else OPERATION_FAILED
        tx.audit(
            AuditEvent(event, actor, op.id, {"state": state, "reason": reason, "error": error})
        )

    # -- following ------------------------------------------------------------------------

    def _notify(self, op_id: str) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def follow(
        self, op_id: str, poll_s: float = 1.0, heartbeat_s: float = 10.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield an operation's state changes and step events as they happen, then its end.

        Events: ``{"type": "state"}`` on each change of state, ``{"type": "step"}``
        per audited step, ``{"type": "heartbeat"}`` after ``heartbeat_s`` of quiet
        (so a client waiting on consent knows the daemon is alive), ``{"type": "end"}``.

        :raises NotFound: no such operation.
        """
        await self.get(op_id)
        last, state, quiet = 0, "", 0.0
        while True:
            changed = self._changed
            op = await self.get(op_id)
            if op.state != state and not op.finished:
                state, quiet = op.state, 0.0
                yield {"type": "state", "state": op.state, "progress": f"{op.step}/{op.total}"}
            for step in await self.steps(op_id, last):
                last, quiet = step.seq, 0.0
                yield {"type": "step", **step.to_dict()}
            if op.finished:
                yield {"type": "end", **op.to_dict()}
                return
            if quiet >= heartbeat_s:
                quiet = 0.0
                yield {"type": "heartbeat", "state": op.state}
            started = anyio.current_time()
            with anyio.move_on_after(poll_s):  # another process may write too
                await changed.wait()
            quiet += anyio.current_time() - started

    async def wait(self, op_id: str, timeout_s: float = 120.0) -> OperationRow:
        """Wait until an operation ends; return it.

        :raises TimeoutError: it did not end in time.
        """
        with anyio.fail_after(timeout_s):
            while True:
                changed = self._changed
                op = await self.get(op_id)
                if op.finished:
                    return op
                with anyio.move_on_after(0.5):
                    await changed.wait()

    # -- consent (see ConsentsService) ----------------------------------------------------

    def is_running(self, op_id: str) -> bool:
        """Return whether an operation runs in this daemon now."""
        return op_id in self._running

    def stop(self, op_id: str, reason: str, message: str) -> None:
        """Stop a running operation at its next step boundary (nothing when it does not run)."""
        signal = self._running.get(op_id)
        if signal is not None:
            signal.set(reason, message)

    def consent_arrived(self) -> None:
        """Look at the waiting operations now: a consent released some."""
        self._wake.set()
        self._notify("")

    # -- running --------------------------------------------------------------------------

    async def recover(self, states: Sequence[str] = RUNNING_OPERATION_STATES) -> list[OperationRow]:
        """Settle operations left ``in_progress`` by a process that is gone; return them.

        With one daemon on the store, at start-up this process is the only
        runner, so every ``in_progress`` operation owned by another is
        orphaned, whatever its lease says. With several (``mine`` set), only
        this daemon's earlier process's and those whose lease expired: the
        run loop looks again each time round, so a dead daemon's operations
        are taken over once their lease runs out.
        """
        try:
            kb: KnowledgeBase | None = self.knowledge_base()
        except AgentdError as exc:
            logger.error("recovery without a knowledge base: {}", exc.message)
            kb = None
        settled: list[str] = []
        async with self.store.write() as tx:
            for op in await tx.ops.orphaned_operations(states, owner=self.owner, mine=self.mine):
                steps = None
                if kb is not None and op.workflow in kb.names and op.workflow != TASK_WORKFLOW:
                    steps = kb.workflow(op.workflow).steps
                planned = await tx.ops.planned_commits(op.id, op.attempts)
                decision = recovery_decision(steps, op.step, planned)
                if decision is Recovery.RESTART:
                    await tx.ops.update_operation(
                        op.id,
                        {
                            "state": OperationState.PENDING,
                            "step": 0,
                            "lease_owner": None,
                            "lease_until": None,
                            "updated_at": iso(tx.now),
                        },
                    )
                    data = {"from_step": 1, "steps_done": op.step, "attempts": op.attempts}
                    tx.audit(AuditEvent(OPERATION_RESUMED, ACTOR, op.id, data))
                else:
                    began = op.step + 1
                    await self._end(
                        tx,
                        op,
                        OperationState.FAILED,
                        "interrupted",
                        f"interrupted during step {began} of {op.total} (lease holder "
                        f"{op.lease_owner} is gone); it may have changed the site, so it is "
                        "not re-run: check the site and start it again",
                        ACTOR,
                    )
                settled.append(op.id)
        self._wake.set()
        return [await self.get(op_id) for op_id in settled]

    async def run(self) -> None:
        """Start pending operations as browsers free up, until cancelled."""
        limiter = anyio.CapacityLimiter(self.settings.max_browsers)
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    self._wake = anyio.Event()
                    if self.mine:
                        await self._take_over()
                    free = int(limiter.available_tokens)
                    for op in await self._claim_or_wait(free) if free else []:
                        await limiter.acquire_on_behalf_of(op.id)
                        tg.start_soon(self._run_one, op, limiter)
                    with anyio.move_on_after(self.settings.lease_s / 2):
                        await self._wake.wait()
        finally:
            for signal in self._running.values():
                signal.set("shutdown", "the daemon stopped")

    async def _take_over(self) -> None:
        """Settle the operations of a daemon that is gone (see :meth:`recover`).

        Only those ``in_progress``: a task waiting for a person's approval of
        its next step holds no browser, and is settled when a daemon starts.
        """
        try:
            settled = await self.recover((OperationState.IN_PROGRESS,))
        except AgentdError as exc:
            logger.error("taking over operations failed: {}", exc.message)
            return
        for op in settled:
            logger.warning("op {} taken over from a runner that is gone: {}", op.id, op.state)

    async def _claim_or_wait(self, n: int) -> list[OperationRow]:
        """Claim up to ``n`` pending operations; none while the store refuses writes.

        A store that refuses writes (a full disk, a damaged file) must not
        bring the daemon down: status reports it, and claiming resumes at the
        next tick once writes are accepted again.
        """
        try:
            claimed = await self._claim(n)
        except StoreError as exc:
            if not self._claim_failing:
                logger.error("operations are not started: {}", exc.message)
            self._claim_failing = True
            return []
        self._claim_failing = False
        return claimed

    async def _claim(self, n: int) -> list[OperationRow]:
        claimed: list[str] = []
        now = _now()
        needs = permission_lookup(self.knowledge_base)
        async with self.store.write(now) as tx:
            for op in await tx.ops.claim_pending(n):
                consent = await tx.ops.active_consent(op.account, op.service, op.workflow)
                shortfall = consent_shortfall(consent, op.workflow, needs(op.workflow))
                if shortfall is not None:
                    await tx.ops.update_operation(
                        op.id, {"state": OperationState.AWAITING_CONSENT, "updated_at": iso(now)}
                    )
                    waiting = {"reason": shortfall.reason.value, "waiting_for": shortfall.message}
                    tx.audit(AuditEvent(OPERATION_AWAITING_CONSENT, ACTOR, op.id, waiting))
                    continue
                await tx.ops.update_operation(
                    op.id,
                    {
                        "state": OperationState.IN_PROGRESS,
                        "step": 0,
                        "attempts": op.attempts + 1,
                        "lease_owner": self.owner,
                        "lease_until": iso(now + timedelta(seconds=self.settings.lease_s)),
                        "started_at": iso(now),
                        "updated_at": iso(now),
                    },
                )
                data = {"workflow": op.workflow, "account": op.account, "attempt": op.attempts + 1}
                tx.audit(AuditEvent(OPERATION_STARTED, ACTOR, op.id, data))
                claimed.append(op.id)
        for op_id in claimed:
            self._running[op_id] = StopSignal()
        return [await self.get(op_id) for op_id in claimed]

    async def _run_one(self, op: OperationRow, limiter: anyio.CapacityLimiter) -> None:
        agent: BrowserAgent = self.agent
        if op.workflow == TASK_WORKFLOW and self.task_agent is not None:
            agent = self.task_agent
        try:
            await agent.run(op, self._running[op.id])
        except Conflict as exc:
            logger.warning("op {} abandoned: {}", op.id, exc.message)
        except AgentdError as exc:
            logger.error("op {} could not be settled: {}", op.id, exc.message)
        finally:
            self._running.pop(op.id, None)
            limiter.release_on_behalf_of(op.id)
            self._wake.set()
            self._notify(op.id)

    async def close(self) -> None:
        """Close the browser, when it is this service's to close (``close_browser``)."""
        if self._own_browser and not self._closed:
            self._closed = True
            await self.browser.close()
