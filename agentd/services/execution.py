"""The execution engine: approved intents become changes, through browser operations.

Each approved intent the gate hands off (the durable ``execution_queue``)
becomes one row in ``executions`` and moves through these states, each
committed before the next begins, so a crash at any point resumes from the
last committed state and never runs a change twice:

``queued``/``waiting``/``awaiting_consent``
    the ordered checks of SPEC §6 (:func:`agentd.core.execution.check_execution`);
    a closed window or a full daily limit waits (``retry_at``), it never drops.
``snapshot``
    the executor's read-only workflow captures the values it will change
    (re-run freely after a crash: it changes nothing).
``running``
    the checks are repeated in the same transaction that marks the execution
    started (the daily limit counts exactly), then the change operation runs.
    Its id is recorded with the execution; after a crash the engine adopts that
    operation (which the operations service resumed or failed ``interrupted``)
    instead of starting another.
``verifying``
    the snapshot workflow runs again: the after snapshot.
``succeeded`` | ``failed`` | ``refused``
    a finished change gets a rollback token whose deadline follows its risk
    (72 h / 7 d / 30 d); a failed one says what state the target is in
    (unchanged, partial, applied, unknown), compared with the before snapshot.

Rollbacks are executions too (kind ``rollback``), run through this engine's
operations by :class:`agentd.services.rollback.RollbackService`; recovery
(:meth:`ExecutionService.recover`) settles both kinds.
"""

from __future__ import annotations

import secrets as token
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.breakers import BreakerEvent, BreakerEventKind
from agentd.core.consent import Permission, consent_permits, workflow_needs
from agentd.core.execution import (
    ExecutionCheckInputs,
    ExecutionCheckResult,
    ExecutionOutcome,
    ExecutionReason,
    check_execution,
    limit_day_bounds,
)
from agentd.core.executors import (
    HANDOFF,
    ChangePlan,
    Executor,
    IntentView,
    Step,
    matches,
    plan_change,
    target_state,
)
from agentd.core.gate import Decision
from agentd.core.intents import IntentSource
from agentd.core.rollback import (
    rollback_deadline,
)
from agentd.core.sales_executors import STAGES as ACCOUNT_STAGES
from agentd.core.states import (
    ENDED_EXECUTION_STATES,
    OPEN_EXECUTION_STATES,
    ExecutionState,
    IntentStatus,
    OperationState,
    TokenState,
)
from agentd.core.timefmt import iso
from agentd.errors import (
    AgentdError,
    InvalidArgument,
    InvalidState,
    NoExecutor,
)
from agentd.notifiers import NotificationKind, Severity
from agentd.services.execution_views import get_execution
from agentd.services.gate import read_global_state
from agentd.services.handoffs import HandoffDesk
from agentd.services.incidents import EventHub, IncidentService
from agentd.services.scope import notify_quietly
from agentd.store.base import Store, Transaction
from agentd.store.records import ExecutionRow, OperationRow

if TYPE_CHECKING:
    from agentd.core.policy import GatePolicy
    from agentd.exec_config import ExecutionConfig
    from agentd.services.briefings import BriefingWriter
    from agentd.services.operations import OperationsService

ACTOR = "agentd"
MAX_SNAPSHOT_ATTEMPTS = 3
SNAPSHOT_RETRY = timedelta(seconds=30)
_TAKE_BATCH = 100


def _now() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


class OperationFailed(Exception):
    """A browser operation of an execution ended without completing."""

    def __init__(self, op: OperationRow | None, message: str, reason: str) -> None:
        super().__init__(message)
        self.op = op
        self.message = message
        self.reason = reason


class ExecutionService:
    """Carry out approved intents (see the module notes).

    :param config: returns the current ``[execution]`` section (reload-aware).
    :param policy: returns the current gate policy (tenant kill switches).
    :param service: the browser service (back-office) executions run against.
    """

    def __init__(
        self,
        store: Store,
        operations: OperationsService,
        incidents: IncidentService,
        events: EventHub,
        *,
        config: Callable[[], ExecutionConfig],
        policy: Callable[[], GatePolicy],
        service: Callable[[], str],
        clock: Callable[[], datetime] = _now,
        briefings: BriefingWriter | None = None,
        runner: str = ACTOR,
        mine: str = "",
    ) -> None:
        self.store = store
        # Leases (several daemons on one store): this process's runner id, and the
        # prefix of this daemon's runner ids ("" when one daemon holds every lease).
        self.runner = runner
        self.mine = mine
        self._drives: dict[str, anyio.CancelScope] = {}
        self.operations = operations
        self.incidents = incidents
        self.events = events
        self.config = config
        self.policy = policy
        self.service = service
        self.clock = clock
        self._wake = anyio.Event()
        self._active: set[str] = set()
        self._changed = anyio.Event()
        self.briefings = briefings
        self.handoffs = HandoffDesk(
            store, incidents.notifier, events, clock=lambda: self.clock(), token=self.issue_token
        )

    def wake(self) -> None:
        """Look at the queue now (an approval, a consent, a reset arrived)."""
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Take hand-offs and drive executions until cancelled."""
        async with anyio.create_task_group() as tg:
            while True:
                self._wake = anyio.Event()
                config = self.config()
                if config.enabled:
                    try:
                        if self.mine:
                            await self.recover()  # take over what a dead daemon left
                        await self.take_queue()
                        for exe in await self._due():
                            self._active.add(exe.id)
                            tg.start_soon(self._drive_guarded, exe.id)
                    except AgentdError as exc:
                        logger.error("execution loop: {}", exc.message)
                with anyio.move_on_after(config.poll_interval_s):
                    await self._wake.wait()

    def lease_s(self) -> float:
        """Return how long a lease lasts: three looks at the queue, and at least 30 s."""
        return max(30.0, 3 * self.config().poll_interval_s)

    async def _due(self) -> list[ExecutionRow]:
        """Lease the open executions no live runner holds (renewing this one's); return those due.

        A drive whose lease another daemon has taken since (this one was
        stalled past the lease) is cancelled: an execution runs on one daemon.
        """
        now = self.clock()
        until = iso(now + timedelta(seconds=self.lease_s()))
        async with self.store.write(now) as tx:
            rows = await tx.execution.claim_executions(
                OPEN_EXECUTION_STATES, owner=self.runner, mine=self.mine, until=until
            )
        held = {r.id for r in rows}
        for exe_id in [i for i in self._drives if i not in held]:
            # Not claimable: it left the open states (handed off, ended), or another
            # daemon's runner holds it now.
            current = await self.store.execution.get_execution(exe_id)
            if (
                current is not None
                and current.state in OPEN_EXECUTION_STATES
                and current.lease_owner not in (None, self.runner)
                and exe_id in self._drives
            ):
                logger.error("execution {}: its lease was taken over; stopping here", exe_id)
                self._drives[exe_id].cancel()
        return [
            r
            for r in rows
            if r.id not in self._active
            and r.kind == "change"
            and (r.retry_at is None or parse_time(r.retry_at) <= now)
        ]

    async def _drive_guarded(self, exe_id: str) -> None:
        try:
            with anyio.CancelScope() as self._drives[exe_id]:
                exe = await self.drive(exe_id)
            if exe.state in (
                ExecutionState.SNAPSHOT,
                ExecutionState.READY,
                ExecutionState.RUNNING,
                ExecutionState.VERIFYING,
            ):
                # Not expected: a phase returned without moving on. The next
                # look at the queue picks it up again (every phase resumes).
                logger.warning("execution {} paused in state {}", exe_id, exe.state)
        except AgentdError as exc:
            logger.error("execution {} stopped: {}", exe_id, exc.message)
        finally:
            self._drives.pop(exe_id, None)
            self._active.discard(exe_id)
            self.notify_changed()

    def notify_changed(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def _report_end(self, exe: ExecutionRow) -> None:
        """Log and notify an execution that ended refused or failed.

        A failure that left the target changed has an incident, which notified
        already; every other ending is notified here, so that none is silent.
        """
        what = f"execution {exe.id} of intent {exe.intent_id} ({exe.action_type} on {exe.account})"
        logger.error("{} {} {}: {}", what, exe.state, exe.reason, exe.detail)
        if await self.store.execution.has_incident(exe.id):
            return
        await notify_quietly(
            self.incidents.notifier,
            Severity.HIGH if exe.state == ExecutionState.FAILED else Severity.MEDIUM,
            NotificationKind.EXECUTION,
            f"{what} {exe.state}: {exe.reason}",
            f"{exe.detail or ''}\n\nThe intent was approved but nothing was changed by this "
            f"execution; see `agentctl execution show {exe.id}`.",
        )

    async def take_queue(self) -> list[str]:
        """Turn queued hand-offs into executions (refused at once when nothing can run them)."""
        now = self.clock()
        created: list[str] = []
        refused: list[str] = []
        config = self.config()
        mapping, registry = config.executors, config.registry()
        default = config.default_executor
        async with self.store.write(now) as tx:
            for row in await tx.execution.claim_queued(_TAKE_BATCH):
                exe_id = f"exe_{token.token_hex(8)}"
                intent = IntentView(
                    intent_id=row["intent_id"],
                    account=row["account"],
                    action_type=row["action_type"],
                    diff=row["diff"],
                    rationale=row["rationale"] or "",
                    domain=row["domain"],
                    change_type=row["change_type"],
                )
                values: dict[str, Any] = {
                    "id": exe_id,
                    "kind": "change",
                    "intent_id": intent.intent_id,
                    "tenant": row["tenant"],
                    "account": intent.account,
                    "action_type": intent.action_type,
                    "risk": row["risk_level"],
                    "autonomous": row["approval_source"] == "POLICY",
                    "created_at": iso(now),
                    "updated_at": iso(now),
                }
                try:
                    plan = plan_change(mapping, intent, now, registry, default=default)
                except InvalidArgument as exc:
                    reason = str(exc.details.get("reason", "BAD_PARAMETERS"))
                    values.update(
                        executor="none",
                        state=ExecutionState.REFUSED,
                        reason=reason,
                        detail=exc.message,
                        finished_at=iso(now),
                    )
                    await tx.execution.insert_execution(values)
                    tx.audit(
                        AuditEvent(
                            AuditEventType.EXECUTION_FAILED,
                            ACTOR,
                            exe_id,
                            {"intent_id": intent.intent_id, "reason": reason, "error": exc.message},
                        )
                    )
                    refused.append(exe_id)
                else:
                    values.update(
                        executor=plan.executor,
                        state=ExecutionState.QUEUED,
                        params=_plan_json(plan),
                        diff=dict(plan.diff),
                    )
                    await tx.execution.insert_execution(values)
                await tx.execution.mark_queue(intent.intent_id, "taken")
                created.append(exe_id)
        for exe_id in refused:
            await self._report_end(await self.get(exe_id))
        return created

    async def check_executable(self, intent_id: str) -> str | None:
        """Return the executor that would carry out a stored intent (None: it is not a change).

        Governance intents (scope expansion) change configuration, not a site.

        :raises NoExecutor: nothing is configured to carry it out, or its diff lacks what
            the executor needs — said at approval time, not at 3 a.m.
        """
        row = await self.store.gate.get_intent(intent_id)
        if (
            row is None
            or row.intent.source == IntentSource.GOVERNANCE
            or row.status != IntentStatus.PENDING
            or row.outcome.decision == Decision.BLOCKED
            or (row.expires_at is not None and row.expires_at <= iso(self.clock()))
        ):
            return None  # the gate answers these itself (unknown, decided, blocked, expired)
        stored = row.intent
        intent = IntentView(
            intent_id=intent_id,
            account=stored.account,
            action_type=stored.action_type,
            diff=dict(stored.diff),
            rationale=stored.rationale or "",
            domain=stored.domain,
            change_type=stored.change_type,
        )
        try:
            config = self.config()
            plan = plan_change(
                config.executors,
                intent,
                self.clock(),
                config.registry(),
                default=config.default_executor,
            )
        except InvalidArgument as exc:
            raise NoExecutor(
                f"intent {intent_id} cannot be carried out: {exc.message}",
                details={"intent_id": intent_id, **exc.details},
            ) from exc
        # With execution off, approved intents wait in the hand-off queue: the service
        # may be configured before it is turned on (the executions check again).
        service = plan.service or self.service()
        runs_browser = plan.executor != HANDOFF  # a person carries a hand-off out
        missing = self._missing_service(service) if config.enabled and runs_browser else None
        if missing is not None:
            raise NoExecutor(
                f"intent {intent_id} cannot be carried out: {missing}",
                details={
                    "intent_id": intent_id,
                    "reason": "SERVICE_NOT_CONFIGURED",
                    "service": service,
                },
            )
        return plan.executor

    def _missing_service(self, service: str) -> str | None:
        """Say why the browser service ``service`` is not usable (None: it is configured)."""
        known = self.operations.settings.services
        if service in known:
            return None
        return (
            f"the browser service {service!r} that executions run against is not configured "
            f"(add [browser.services.{service}]; configured: "
            f"{', '.join(sorted(known)) or 'none'})"
        )

    # -- one execution ---------------------------------------------------------------------

    async def drive(self, exe_id: str) -> ExecutionRow:
        """Move one execution as far as it can go now; return it."""
        exe = await self.get(exe_id)
        began = exe.state
        try:
            return await self._drive(exe)
        finally:
            if began not in ENDED_EXECUTION_STATES:
                end = await self.get(exe_id)
                if end.state in (ExecutionState.REFUSED, ExecutionState.FAILED):
                    await self._report_end(end)

    async def _drive(self, exe: ExecutionRow) -> ExecutionRow:
        if exe.state in (
            ExecutionState.QUEUED,
            ExecutionState.WAITING,
            ExecutionState.AWAITING_CONSENT,
        ):
            exe = await self._precheck(exe)
        if exe.state == ExecutionState.SNAPSHOT:
            exe = await self._snapshot_phase(exe)
        if exe.state == ExecutionState.READY:
            exe = await self._start(exe)
        if exe.state == ExecutionState.RUNNING:
            exe = await self._change_phase(exe)
        if exe.state == ExecutionState.VERIFYING:
            exe = await self._verify_phase(exe)
        return exe

    async def _checks(
        self, tx: Transaction, exe: ExecutionRow, *, snapshot: bool | None
    ) -> ExecutionCheckResult:
        config = self.config()
        now = tx.now
        status = await tx.gate.intent_status(exe.intent_id)
        state = await read_global_state(tx.gov)
        tenant_kill = self.policy().for_tenant(exe.tenant).autonomy.kill_switch
        account = await tx.gate.get_account(exe.account)
        window = config.window_for(exe.tenant)
        start, end = limit_day_bounds(now, window)
        plan = stored_plan(exe)
        consent = await tx.ops.active_consent(
            exe.account, plan.service or self.service(), plan.change.workflow
        )
        if consent is not None and not consent_permits(
            consent.permissions, self._needed(plan.change.workflow)
        ):
            consent = None  # consent exists but does not cover this change: wait for it
        # A hand-off runs no browser on the customer's back-office: a person does the work.
        handoff = exe.executor == HANDOFF
        return check_execution(
            ExecutionCheckInputs(
                now=now,
                intent_status="APPROVED"
                if status == IntentStatus.APPROVED
                else str(status or "missing").upper(),
                kill_switch_on=state.kill_switch or tenant_kill,
                trusted_mode=account.trusted_mode if account else "NONE",
                count_today=await tx.execution.count_started(exe.tenant, iso(start), iso(end)),
                consent_present=consent is not None or handoff,
                before_snapshot_captured=snapshot,
                trusted_mode_required=config.trusted_mode_required,
                daily_limit=config.daily_limit,
                window=window,
            )
        )

    def _needed(self, workflow: str) -> Permission:
        """Return the permission a workflow needs (WRITE when it cannot be told)."""
        try:
            steps = self.operations.knowledge_base().workflow(workflow).steps
        except AgentdError:
            return workflow_needs(None)  # fail closed
        return workflow_needs(steps)

    async def _precheck(self, exe: ExecutionRow) -> ExecutionRow:
        handed_off = False
        # A hand-off runs no browser: a person does the work, whatever services exist.
        missing = (
            None
            if exe.executor == HANDOFF
            else self._missing_service(stored_plan(exe).service or self.service())
        )
        if missing is not None:
            # Retrying cannot help (the service is part of the configuration at start):
            # say so now rather than after three failed snapshots.
            async with self.store.write(self.clock()) as tx:
                await self.set_state(
                    tx,
                    exe,
                    state=ExecutionState.REFUSED,
                    reason="SERVICE_NOT_CONFIGURED",
                    detail=missing,
                    retry_at=None,
                    finished_at=iso(tx.now),
                )
                tx.audit(
                    AuditEvent(
                        AuditEventType.EXECUTION_FAILED,
                        ACTOR,
                        exe.id,
                        {
                            "intent_id": exe.intent_id,
                            "reason": "SERVICE_NOT_CONFIGURED",
                            "error": missing,
                        },
                    )
                )
            return await self.get(exe.id)
        async with self.store.write(self.clock()) as tx:
            result = await self._checks(tx, exe, snapshot=None)  # taken once these pass
            trace = [t.to_dict() for t in result.trace]
            if result.proceed and exe.executor == HANDOFF:
                await self.handoffs.hand_off_in_tx(tx, exe, trace)
                handed_off = True
            elif result.proceed:
                await self.set_state(
                    tx,
                    exe,
                    state=ExecutionState.SNAPSHOT,
                    checks=trace,
                    retry_at=None,
                    reason=None,
                    detail=None,
                )
            else:
                await self._hold(tx, exe, result, trace)
        if handed_off:
            await self.handoffs.announce(exe.id)
        return await self.get(exe.id)

    async def _hold(
        self,
        tx: Transaction,
        exe: ExecutionRow,
        result: ExecutionCheckResult,
        trace: list[dict[str, Any]],
    ) -> None:
        """Record a check that did not let the execution run: wait or refuse."""
        said = result.trace[-1].said if result.trace else ""
        # The kill switch holds executions rather than dropping them: they go on
        # once an operator turns it off (SPEC §7: it stops execution, it loses nothing).
        kill = result.reason is ExecutionReason.KILL_SWITCH_ON
        if result.outcome is ExecutionOutcome.REFUSE and not kill:
            await self.set_state(
                tx,
                exe,
                state=ExecutionState.REFUSED,
                checks=trace,
                reason=str(result.reason),
                detail=said,
                retry_at=None,
                finished_at=iso(tx.now),
                before=None,
            )
            tx.audit(
                AuditEvent(
                    AuditEventType.EXECUTION_FAILED,
                    ACTOR,
                    exe.id,
                    {"intent_id": exe.intent_id, "reason": str(result.reason), "error": said},
                )
            )
            return
        state = (
            ExecutionState.AWAITING_CONSENT
            if result.outcome is ExecutionOutcome.WAIT_CONSENT
            else ExecutionState.WAITING
        )
        retry = result.retry_at or tx.now + timedelta(seconds=self.config().poll_interval_s)
        if (exe.state, exe.reason) != (state, str(result.reason)):
            logger.info("execution {} {}: {}", exe.id, state, said)
        await self.set_state(
            tx,
            exe,
            state=state,
            checks=trace,
            reason=str(result.reason),
            detail=said,
            retry_at=iso(retry),
            before=None,
        )

    async def _snapshot_phase(self, exe: ExecutionRow) -> ExecutionRow:
        plan = stored_plan(exe)
        executor = self.executor(exe.executor)
        try:
            before = await self.read_snapshot(exe, plan, "snapshot_op")
        except OperationFailed as exc:
            async with self.store.write(self.clock()) as tx:
                attempts = exe.attempts + 1
                if attempts < MAX_SNAPSHOT_ATTEMPTS:
                    # The checks shown with the execution say what happened to the snapshot.
                    failed = {
                        "check": "before_snapshot",
                        "saw": {"captured": False, "attempt": attempts},
                        "said": f"the before snapshot could not be read ({exc.message})",
                        "passed": False,
                    }
                    checks = [c for c in exe.checks if c.get("check") != "before_snapshot"]
                    await self.set_state(
                        tx,
                        exe,
                        state=ExecutionState.WAITING,
                        checks=[*checks, failed],
                        reason="SNAPSHOT_FAILED",
                        attempts=attempts,
                        detail=f"the before snapshot could not be read ({exc.message}); "
                        f"trying again (attempt {attempts + 1} of {MAX_SNAPSHOT_ATTEMPTS})",
                        retry_at=iso(tx.now + SNAPSHOT_RETRY * attempts),
                        snapshot_op=None,
                    )
                else:
                    result = await self._checks(tx, exe, snapshot=False)
                    await self._hold(tx, exe, result, [t.to_dict() for t in result.trace])
                    await self.set_state(
                        tx,
                        exe,
                        target_state="unchanged",
                        attempts=attempts,
                        detail=f"no before snapshot: {exc.message}",
                    )
            if attempts >= MAX_SNAPSHOT_ATTEMPTS:
                await self.publish(exe, BreakerEventKind.EXECUTION_FAILED)
            return await self.get(exe.id)
        try:
            if executor.finish is not None:
                plan = executor.finish(plan, before)
            if (executor.like or executor.name) == "briefing":
                plan = await self._brief(exe, plan)
        except InvalidArgument as exc:
            # Nothing to do the change with (no C-level contact, no recorded
            # meeting, a stage move not allowed): refused, nothing changed.
            return await self._refuse_after_snapshot(exe, before, exc)
        async with self.store.write(self.clock()) as tx:
            await self.set_state(
                tx,
                exe,
                state=ExecutionState.READY,
                before=before,
                params=_plan_json(plan),
                diff=dict(plan.diff),
            )
        return await self.get(exe.id)

    async def _brief(self, exe: ExecutionRow, plan: ChangePlan) -> ChangePlan:
        """Write the account's briefing and make it the note the change adds."""
        if self.briefings is None:
            raise InvalidArgument(
                "no briefing writer in this daemon", details={"reason": "NO_BRIEFING_WRITER"}
            )
        note, path = await self.briefings.write(exe.account, exe.id)
        params = {**plan.change.params, "note": note, "briefing": str(path)}
        return replace(plan, change=Step(plan.change.workflow, params))

    async def _refuse_after_snapshot(
        self, exe: ExecutionRow, before: dict[str, Any], exc: InvalidArgument
    ) -> ExecutionRow:
        reason = str(exc.details.get("reason", "BAD_PARAMETERS"))
        async with self.store.write(self.clock()) as tx:
            await self.set_state(
                tx,
                exe,
                state=ExecutionState.REFUSED,
                reason=reason,
                detail=exc.message,
                before=before,
                target_state="unchanged",
                finished_at=iso(tx.now),
            )
            tx.audit(
                AuditEvent(
                    AuditEventType.EXECUTION_FAILED,
                    ACTOR,
                    exe.id,
                    {"intent_id": exe.intent_id, "reason": reason, "error": exc.message},
                )
            )
        logger.warning("execution {} refused: {}", exe.id, exc.message)
        return await self.get(exe.id)

    async def _start(self, exe: ExecutionRow) -> ExecutionRow:
        """Repeat the checks and mark the execution started, in one transaction."""
        async with self.store.write(self.clock()) as tx:
            result = await self._checks(tx, exe, snapshot=exe.before is not None)
            trace = [t.to_dict() for t in result.trace]
            if not result.proceed:
                await self._hold(tx, exe, result, trace)
            else:
                await self.set_state(
                    tx,
                    exe,
                    state=ExecutionState.RUNNING,
                    checks=trace,
                    started_at=iso(tx.now),
                    retry_at=None,
                    reason=None,
                    detail=None,
                )
                tx.audit(
                    AuditEvent(
                        AuditEventType.EXECUTION_STARTED,
                        ACTOR,
                        exe.id,
                        {
                            "intent_id": exe.intent_id,
                            "executor": exe.executor,
                            "workflow": stored_plan(exe).change.workflow,
                            "autonomous": exe.autonomous,
                        },
                    )
                )
        return await self.get(exe.id)

    async def _change_phase(self, exe: ExecutionRow) -> ExecutionRow:
        plan = stored_plan(exe)
        try:
            op = await self.run_operation(exe, plan.change, "change_op")
        except OperationFailed as exc:
            return await self._fail_change(exe, plan, exc)
        async with self.store.write(self.clock()) as tx:
            await self.set_state(tx, exe, state=ExecutionState.VERIFYING, result=op.result)
        return await self.get(exe.id)

    async def _fail_change(
        self, exe: ExecutionRow, plan: ChangePlan, exc: OperationFailed
    ) -> ExecutionRow:
        executor = self.executor(exe.executor)
        before = exe.before or {}
        expected = executor.expected(before, plan) if plan.snapshot else {}
        state, current = "unknown", None
        if plan.snapshot is not None:
            try:
                current = await self.read_snapshot(exe, plan, "verify_op")
                state = target_state(current, before, expected)
            except OperationFailed as read_exc:
                logger.warning("execution {}: target unreadable: {}", exe.id, read_exc.message)
        detail = f"{exc.message}; the target is {_TARGET_WORDS[state]}"
        async with self.store.write(self.clock()) as tx:
            await self.set_state(
                tx,
                exe,
                state=ExecutionState.FAILED,
                reason=exc.reason,
                detail=detail,
                target_state=state,
                after=current,
                finished_at=iso(tx.now),
                result=exc.op.result if exc.op else None,
            )
            # Kept for the record, never usable: a failed execution is not rolled
            # back (its snapshots say what state the target is in).
            await self.issue_token(tx, exe, tx.now, state=TokenState.VOID)
            tx.audit(
                AuditEvent(
                    AuditEventType.EXECUTION_FAILED,
                    ACTOR,
                    exe.id,
                    {
                        "intent_id": exe.intent_id,
                        "reason": exc.reason,
                        "error": exc.message,
                        "target_state": state,
                        "operation": exc.op.id if exc.op else None,
                    },
                )
            )
            incident = None
            if state != "unchanged":
                incident = await open_execution_incident(
                    self.incidents,
                    tx,
                    exe,
                    severity=incident_severity(exe),
                    kind="execution_failed",
                    title=f"execution {exe.id} ({exe.action_type} on {exe.account}) failed "
                    f"half-way: the target is {_TARGET_WORDS[state]}",
                    detail=detail,
                )
        if incident:
            await self.incidents.announce(incident)
        await self.publish(exe, BreakerEventKind.EXECUTION_FAILED)
        return await self.get(exe.id)

    async def _verify_phase(self, exe: ExecutionRow) -> ExecutionRow:
        plan = stored_plan(exe)
        executor = self.executor(exe.executor)
        after: dict[str, Any] = {}
        verified: bool | None = None
        if plan.snapshot is not None:
            try:
                after = await self.read_snapshot(exe, plan, "verify_op")
                verified = matches(after, executor.expected(exe.before or {}, plan))
            except OperationFailed as exc:
                logger.warning("execution {}: after snapshot failed: {}", exe.id, exc.message)
        else:
            after = {k: v for k, v in (exe.result or {}).items()}
        detail = (
            {
                True: None,
                False: "the after snapshot differs from what the change should have produced",
                None: "the after snapshot could not be read",
            }[verified]
            if plan.snapshot is not None
            else None
        )
        async with self.store.write(self.clock()) as tx:
            await self.set_state(
                tx,
                exe,
                state=ExecutionState.SUCCEEDED,
                after=after,
                finished_at=iso(tx.now),
                target_state="applied",
                detail=detail,
            )
            rollback = await self.issue_token(tx, exe, tx.now)
            await self.sync_stage(tx, exe, after, actor=ACTOR)
            tx.audit(
                AuditEvent(
                    AuditEventType.EXECUTION_COMPLETED,
                    ACTOR,
                    exe.id,
                    {
                        "intent_id": exe.intent_id,
                        "result": exe.result or {},
                        "verified": verified,
                        "rollback_token": rollback,
                    },
                )
            )
        await self.publish(exe, BreakerEventKind.EXECUTION_SUCCEEDED)
        return await self.get(exe.id)

    async def issue_token(
        self,
        tx: Transaction,
        exe: ExecutionRow,
        now: datetime,
        *,
        state: TokenState = TokenState.AVAILABLE,
    ) -> str:
        executed = parse_time(exe.started_at) if exe.started_at else now
        value = f"rbk_{token.token_hex(12)}"
        await tx.execution.insert_token(
            {
                "token": value,
                "execution_id": exe.id,
                "risk": exe.risk,
                "executed_at": iso(executed),
                "deadline": iso(rollback_deadline(executed, exe.risk)),
                "state": state,
            },
        )
        return value

    async def sync_stage(
        self, tx: Transaction, exe: ExecutionRow, after: Mapping[str, Any], *, actor: str
    ) -> None:
        """Keep the account's stage in agentd as the back-office's after snapshot shows it."""
        executor = self.config().registry().get(exe.executor)
        stage = after.get("stage")
        if executor is None or not executor.syncs_stage or stage not in ACCOUNT_STAGES:
            return
        account = await tx.gate.get_account(exe.account)
        if account is None or account.stage == stage:
            return
        await tx.gate.update_account(exe.account, {"stage": stage}, iso(tx.now))
        tx.audit(
            AuditEvent(
                AuditEventType.ACCOUNT_UPDATED,
                actor,
                exe.account,
                {"stage": {"from": account.stage, "to": stage}, "execution": exe.id},
            )
        )

    # -- browser operations ---------------------------------------------------------------

    async def read_current(self, exe: ExecutionRow, plan: ChangePlan) -> dict[str, Any]:
        """Read the target's current values with a fresh snapshot operation (not recorded).

        A rollback compares them with the change's after snapshot before it
        chooses how to undo; the operation is not one of ``exe``'s phases.
        """
        assert plan.snapshot is not None
        try:
            op = await self.operations.start_operation(
                plan.snapshot.workflow,
                exe.account,
                params=dict(plan.snapshot.params),
                service=plan.service or self.service(),
                actor=ACTOR,
                execution_id=exe.id,
            )
        except AgentdError as err:
            raise OperationFailed(None, err.message, err.code.name) from err
        op = await self.operations.wait(op.id, self.config().operation_timeout_s)
        if op.state != OperationState.COMPLETED:
            raise OperationFailed(op, op.error or op.state, (op.reason or op.state).upper())
        try:
            return self.executor(exe.executor).read(op.result)
        except InvalidArgument as err:
            raise OperationFailed(op, err.message, "BAD_SNAPSHOT") from err

    async def read_snapshot(
        self, exe: ExecutionRow, plan: ChangePlan, column: str
    ) -> dict[str, Any]:
        assert plan.snapshot is not None
        op = await self.run_operation(exe, plan.snapshot, column, fresh=True)
        try:
            return self.executor(exe.executor).read(op.result)
        except InvalidArgument as exc:
            raise OperationFailed(op, exc.message, "BAD_SNAPSHOT") from exc

    async def run_operation(
        self, exe: ExecutionRow, step: Step, column: str, *, fresh: bool = False
    ) -> OperationRow:
        """Run (or adopt, after a crash) the operation of one phase and wait for its end.

        ``fresh``: a read-only phase whose earlier operation failed is simply run again.
        """
        recorded: str | None = getattr(exe, column)
        op: OperationRow | None = None
        if recorded is not None:
            op = await self.operations.get(recorded)
            if fresh and op.finished and op.state != OperationState.COMPLETED:
                op = None
        if op is None:
            op = await self._find_started(exe, step) if not fresh else None
        if op is None:
            try:
                op = await self.operations.start_operation(
                    step.workflow,
                    exe.account,
                    params=dict(step.params),
                    service=stored_plan(exe).service or self.service(),
                    actor=ACTOR,
                    execution_id=exe.id,
                )
            except AgentdError as exc:
                raise OperationFailed(None, exc.message, exc.code.name) from exc
            async with self.store.write(self.clock()) as tx:
                await self.set_state(tx, exe, **{column: op.id})
        try:
            op = await self.operations.wait(op.id, self.config().operation_timeout_s)
        except TimeoutError:
            await self.operations.cancel(op.id, ACTOR)
            op = await self.operations.wait(op.id, 60)
        if op.state != OperationState.COMPLETED:
            message = op.error or f"operation {op.id} ended {op.state}"
            raise OperationFailed(
                op, f"{step.workflow}: {message}", (op.reason or op.state).upper()
            )
        return op

    async def _find_started(self, exe: ExecutionRow, step: Step) -> OperationRow | None:
        op_id = await self.store.ops.latest_operation_id(exe.id, step.workflow)
        return await self.operations.get(op_id) if op_id else None

    # -- helpers ---------------------------------------------------------------------------

    def executor(self, name: str) -> Executor:
        """Return an execution's executor as configured now.

        :raises InvalidState: it is no longer configured (a custom executor removed).
        """
        found = self.config().registry().get(name)
        if found is None:
            raise InvalidState(
                f"executor {name!r} is no longer configured ([execution.custom_executors])",
                details={"reason": "NO_EXECUTOR", "executor": name},
            )
        return found

    async def set_state(self, tx: Transaction, exe: ExecutionRow, **changes: Any) -> None:
        await tx.execution.update_execution(exe.id, {**changes, "updated_at": iso(tx.now)})

    async def publish(self, exe: ExecutionRow, kind: BreakerEventKind) -> None:
        await self.events.publish(
            BreakerEvent(
                at=self.clock(), kind=kind, action_type=exe.action_type, autonomous=exe.autonomous
            )
        )

    async def get(self, exe_id: str) -> ExecutionRow:
        """Return one execution.

        :raises NotFound: no such execution.
        """
        return await get_execution(self.store, exe_id)

    async def wait(self, exe_id: str, timeout_s: float = 300.0) -> ExecutionRow:
        """Wait until an execution is finished; return it.

        :raises TimeoutError: it did not finish in time.
        """
        with anyio.fail_after(timeout_s):
            while True:
                changed = self._changed
                exe = await self.get(exe_id)
                if exe.finished:
                    return exe
                with anyio.move_on_after(0.5):
                    await changed.wait()

    # -- recovery --------------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Settle executions a stopped process left mid-way; return their ids.

        Only those no live runner holds: with several daemons on one store,
        another daemon's executions wait until its lease has expired (a dead
        daemon's work is taken over then; the loop looks each time round).
        Read-only phases restart; a ``ready`` execution goes back to its checks
        (its snapshot may be stale); ``running`` ones adopt their operation
        when the loop drives them. A rollback left running is failed
        ``interrupted`` (its token becomes available again) after comparing.
        """
        now = self.clock()
        touched: list[str] = []
        until = iso(now + timedelta(seconds=self.lease_s()))
        async with self.store.write(now) as tx:
            for exe in await tx.execution.claim_executions(
                (
                    ExecutionState.READY,
                    ExecutionState.SNAPSHOT,
                    ExecutionState.VERIFYING,
                    ExecutionState.RUNNING,
                ),
                owner=self.runner,
                mine=self.mine,
                until=until,
            ):
                if exe.id in self._active or exe.lease_owner == self.runner:
                    continue  # this process drives it now
                if exe.kind == "rollback":
                    await self.set_state(
                        tx,
                        exe,
                        state=ExecutionState.FAILED,
                        reason="INTERRUPTED",
                        finished_at=iso(now),
                        detail="the daemon stopped during the rollback; check the target and "
                        "run the rollback again",
                    )
                    if exe.rollback_of:
                        original = await tx.execution.token_for_execution(exe.rollback_of)
                        if original is not None and original.state == TokenState.IN_PROGRESS:
                            await tx.execution.update_token(
                                original.token, {"state": TokenState.AVAILABLE}
                            )
                    tx.audit(
                        AuditEvent(
                            AuditEventType.ROLLBACK_FAILED,
                            ACTOR,
                            exe.rollback_of,
                            {"rollback": exe.id, "reason": "INTERRUPTED"},
                        )
                    )
                elif exe.state == ExecutionState.READY:
                    await self.set_state(tx, exe, state=ExecutionState.QUEUED, before=None)
                touched.append(exe.id)
        return touched


def incident_severity(exe: ExecutionRow) -> str:
    """Return the severity of an incident about ``exe``: critical for a HIGH-risk change.

    A HIGH-risk change (robots.txt, campaign launch, budgets) left half-done, or
    one only a person can take back, is what the critical-incident breaker is for.
    """
    return "critical" if exe.risk == "HIGH" else "high"


async def open_execution_incident(
    incidents: IncidentService,
    tx: Transaction,
    exe: ExecutionRow,
    *,
    severity: str,
    kind: str,
    title: str,
    detail: str,
) -> str:
    """Open an incident about ``exe`` in ``tx``; announce it once ``tx`` has committed.

    Every incident of an execution or its rollback carries the execution's id
    (``ref``), tenant, account and autonomy, so that the critical-incident
    breaker and ``agentctl incidents list`` can tell whose change it is.
    """
    return await incidents.open_in_tx(
        tx,
        severity=severity,
        kind=kind,
        title=title,
        detail=detail,
        ref=exe.id,
        tenant=exe.tenant,
        account=exe.account,
        autonomous=exe.autonomous,
    )


_TARGET_WORDS = {
    "unchanged": "unchanged (as before the change)",
    "partial": "partly changed",
    "applied": "changed as intended (the failure came after the change)",
    "unknown": "in an unknown state (it could not be read)",
}


def _plan_json(plan: ChangePlan) -> dict[str, Any]:
    return {
        "service": plan.service,
        "change": {"workflow": plan.change.workflow, "params": dict(plan.change.params)},
        "snapshot": (
            {"workflow": plan.snapshot.workflow, "params": dict(plan.snapshot.params)}
            if plan.snapshot
            else None
        ),
    }


def stored_plan(exe: ExecutionRow) -> ChangePlan:
    params: Mapping[str, Any] = exe.params or {}
    change = params.get("change") or {"workflow": "", "params": {}}
    snap = params.get("snapshot")
    return ChangePlan(
        exe.executor,
        Step(change["workflow"], change["params"]),
        Step(snap["workflow"], snap["params"]) if snap else None,
        exe.diff or {},
        params.get("service"),
    )
