"""The audited agent loop: one operation, step by step, in a fresh browser context.

verify consent → fetch credentials → launch → load workflow → per step:
screenshot (masked; path and SHA-256 audited), decide the command (from the
workflow, or from the LLM planner when the recorded selector is unusable or no
longer matches), check it against the method and host allowlists, execute it
with a timeout, audit it with its progress, re-check consent and cancellation
at the boundary → extract the results. A failure ends with a final
screenshot, the error, state ``failed`` and an audit event. A secret that
cannot be opened (not in the vault, no vault key, a wrong key) fails the
operation at the first step that needs a secret or could change the site: the
steps before it only open and read pages, so it ends with a screenshot of
where it stopped, and nothing is typed or submitted.

Keeping the evidence cheap. Every step gets a screenshot file, and one
capture serves as many steps as it truly shows. A click or press (which may
submit something) is shown on the page before it: the capture is taken while
Playwright checks that the target can be clicked, and is finished, with every
earlier record written, before the click acts. A step that only waits or
reads (``PASSIVE_ACTIONS``) is shown on the page when it is done, in a capture
taken while the next steps run; the reading steps right after it share it. A
fill, a choice or a navigation is shown by the next capture, which is taken at
the latest before the next click or at the end: the form as it was filled in.
No step changes the page while a capture is under way. The page as the steps
left it is the final screenshot: the last capture when the operation
completed and nothing changed since, else a new one, full size when it did not
complete. Step screenshots are scaled (``screenshot_scale``). Files are
written and hashed in the background. Step records (row, progress, lease,
audit event) are written in batches, one transaction each, at most
``RECORD_LINGER_S`` after the step; a step that may commit a change on the
site first waits until every earlier record is written, so crash recovery,
which judges by the recorded progress, never mistakes a started commit for one
that cannot have happened.

Secret values live only in the rendered step handed to the browser: audit,
step rows, logs and prompts get placeholders. A step's record names the
command that ran (the planner's, when it re-planned the step; the audit event
also names the workflow's as ``recorded``), its target with the parameters in.
A recorded step types a secret into the field its selector names; the planner
only into a password or ``data-secret`` field. Every capture masks the fields
that hold a vault value and is refused when the page's text shows one (a
sign-in name excepted, see :func:`~agentd.browser.sign_in_fills`): audited as
``OPERATION_CAPTURE_REFUSED``, the operation fails with reason
``secret_visible`` before the next step changes the page.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from loguru import logger

from agentd.browser import (
    COMMITTING_ACTIONS,
    PASSIVE_ACTIONS,
    READ_ACTIONS,
    CaptureRefused,
    StepFailed,
    StepProblem,
    host_allowed,
    sign_in_fills,
)
from agentd.browser.journal import (
    ACTOR,
    OPERATION_CAPTURE_REFUSED,
    RECORDED,
    Operation,
    OperationEnd,
    OperationLog,
    Refusal,
    StepEntry,
)
from agentd.browser.protocols import Browser, Session
from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.consent import (
    Permission,
    ShortfallReason,
    consent_shortfall,
    required_permission,
)
from agentd.core.states import OperationState
from agentd.errors import AgentdError, Conflict, ExternalError, VaultError
from agentd.kb import (
    ALLOWED_ACTIONS,
    Action,
    KnowledgeBase,
    Step,
    Workflow,
    bind_account,
    placeholders,
)
from agentd.llm import ModelAnswerInvalid, ModelRefused, PlannedCommand, StepPlanner, redact
from agentd.ops_config import BrowserSettings
from agentd.vault import SecretValue, Vault

REPLANNABLE = frozenset({StepProblem.NOT_FOUND, StepProblem.BAD_SELECTOR})
# An operation's end reason for a failed step, by the step's problem.
_REASONS = {
    StepProblem.REFUSED: "refused_command",
    StepProblem.HOST_NOT_ALLOWED: "host_not_allowed",
    StepProblem.SECRET_VISIBLE: "secret_visible",
}
# How long a step's record may wait to share a transaction with the next ones.
RECORD_LINGER_S = 0.25
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class StopSignal:
    """Set from outside (cancel, consent revoked, kill switch); read at each step boundary."""

    reason: str | None = None
    message: str = ""

    def set(self, reason: str, message: str) -> None:
        """Ask the operation to stop before its next step (the first reason wins)."""
        if self.reason is None:
            self.reason, self.message = reason, message


class OperationEnded(AgentdError):
    """Internal: the operation ends in ``state`` for ``reason``."""

    def __init__(self, state: str, reason: str, message: str) -> None:
        super().__init__(message, details={"state": state, "reason": reason})
        self.state = state
        self.reason = reason


@dataclass
class _Capture:
    """One screenshot of the page, taken in the background (``captured`` when done)."""

    data: bytes = b""
    error: AgentdError | None = None
    captured: anyio.Event = field(default_factory=anyio.Event)
    required: bool = True  # a step's (its failure fails the operation), not only the final one
    scale: float = 1.0


@dataclass
class _Evidence:
    """A step's screenshot file: a capture written and hashed (``written`` when done)."""

    index: int = 0
    saved: dict[str, str] = field(default_factory=dict)
    written: anyio.Event = field(default_factory=anyio.Event)


@dataclass
class _ConsentCheck:
    """The consent check at a step boundary, run while the step gets ready."""

    ended: AgentdError | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


# A step row waiting to be written, the refusals audited before it, and its
# screenshot (its path and hash go into the row once the file is written).
_Pending = tuple[dict[str, Any], list[Refusal], _Evidence | None]


@dataclass
class _Run:
    op: Operation
    attempt: int
    folder: Path
    workflow: Workflow | None = None
    params: dict[str, str] = field(default_factory=dict)  # the account bound (see bind_account)
    session: Session | None = None
    secrets: dict[str, SecretValue] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    record_error: AgentdError | None = None
    unavailable: OperationEnded | None = None  # why the secrets could not be opened
    last_capture: _Capture | None = None  # the page as the steps left it (the final screenshot)
    fresh: _Capture | None = None  # started since the page last changed, if any
    waiting: list[_Evidence] = field(default_factory=list)  # steps shown by the next capture
    captures: list[_Capture] = field(default_factory=list)  # started, maybe not finished
    tasks: TaskGroup | None = None  # where captures are taken and files written
    needs: Permission = Permission.WRITE
    shots: int = 0
    off_list: dict[str, Any] | None = None  # the step that went off the host allowlist
    refused_hosts: list[str] = field(default_factory=list)  # hosts the browser was kept from
    used: Step | None = None  # the command the current step ran (or last tried), target rendered
    used_by: str = "workflow"  # where it came from: "workflow" or "planner"
    sign_in: frozenset[int] = frozenset()  # the workflow's sign-in fills (sign_in_fills)


class _Journal:
    """Write an operation's step records in batches, one transaction each.

    A record waits at most ``RECORD_LINGER_S`` (``flush`` writes at once);
    what is left when the loop ends goes into the final transaction. A failed
    write is kept in ``run.record_error`` and raised at the next step.
    """

    def __init__(self, agent: BrowserAgent, run: _Run, tg: TaskGroup) -> None:
        self.agent = agent
        self.run = run
        self.tg = tg
        self._lock = anyio.Lock()
        self._closing = anyio.Event()

    def add(self, row: dict[str, Any], evidence: _Evidence | None) -> None:
        """Queue a step row (and the refusals seen since the last one)."""
        refusals, self.run.refusals = self.run.refusals, []
        self.run.pending.append((row, refusals, evidence))
        if len(self.run.pending) == 1 and not self._closing.is_set():
            self.tg.start_soon(self._linger)

    async def _linger(self) -> None:
        with anyio.move_on_after(RECORD_LINGER_S):
            await self._closing.wait()
        if not self._closing.is_set():
            await self.flush()

    async def flush(self) -> None:
        """Write every queued record now (after any write in progress)."""
        async with self._lock:
            batch, self.run.pending = self.run.pending, []
            if not batch:
                return
            try:
                # Taken off the queue: it must be written even if the step is cancelled.
                with anyio.CancelScope(shield=True):
                    await self.agent._write_steps(self.run, batch)
            except AgentdError as exc:
                self.run.record_error = exc

    def close(self) -> None:
        """Stop lingering: the final transaction takes what is left."""
        self._closing.set()


class BrowserAgent:
    """Run operations as audited browser sessions.

    :param model: the step planner; without one, a step whose selector is
        unusable fails clearly.
    """

    def __init__(
        self,
        log: OperationLog,
        browser: Browser,
        settings: BrowserSettings,
        *,
        knowledge_base: Callable[[], KnowledgeBase],
        vault: Vault | None,
        model: StepPlanner | None = None,
        folder: Path,
        owner: str,
        on_change: Callable[[str], None] = lambda op_id: None,
    ) -> None:
        self.log = log
        self.browser = browser
        self.settings = settings
        self.knowledge_base = knowledge_base
        self.vault = vault
        self.model = model
        self.folder = folder
        self.owner = owner
        self.on_change = on_change

    # -- the loop -------------------------------------------------------------------------

    async def run(self, op: Operation, stop: StopSignal) -> Operation:
        """Run a claimed operation to its end; return it as stored.

        :raises Conflict: the operation's lease was taken over by another runner.
        """
        run = self._new_run(op)
        try:
            await self._prepare(run)
            await self._steps(run, stop)
            await self._finish(run, OperationState.COMPLETED, None, None)
        except OperationEnded as end:
            await self._finish(run, end.state, end.reason, end.message)
        except Conflict:
            raise
        except CaptureRefused as exc:
            await self._finish(run, OperationState.FAILED, "secret_visible", exc.message)
        except AgentdError as exc:
            await self._finish(run, OperationState.FAILED, "error", exc.message)
        except Exception as exc:
            logger.opt(exception=exc).error("operation {} crashed", op.id)
            await self._finish(run, "failed", "internal", f"internal error: {type(exc).__name__}")
        finally:
            if run.session is not None:
                with anyio.CancelScope(shield=True):
                    await run.session.close()
        return await self.log.operation(op.id)

    def _new_run(self, op: Operation) -> _Run:
        """Return the state of one run of ``op`` (a subclass may keep more)."""
        return _Run(op, op.attempts, self.folder / op.id)

    async def _prepare(self, run: _Run) -> None:
        op = run.op
        try:
            run.workflow = self.knowledge_base().workflow(op.workflow)
        except AgentdError as exc:
            raise OperationEnded("failed", "workflow", exc.message) from exc
        run.needs = required_permission(run.workflow.steps)
        run.sign_in = sign_in_fills(run.workflow.steps)
        run.params = dict(op.params)
        try:
            # Checked when the operation was created; an older one may predate the checks.
            bind_account(run.params, op.account)
            run.workflow.check_parameters(run.params)
        except AgentdError as exc:
            raise OperationEnded("failed", "invalid_params", exc.message) from exc
        consent = await self.log.active_consent(op.account, op.service, op.workflow)
        shortfall = consent_shortfall(consent, op.workflow, run.needs)
        if shortfall is not None:
            reason = shortfall.reason.value
            if shortfall.reason is ShortfallReason.PERMISSION_MISSING:
                reason = "permission_revoked"  # it was granted when the operation was claimed
            raise OperationEnded("cancelled", reason, shortfall.message)
        hosts, base_url = await self._target(op)
        await self._start(run, hosts, base_url)

    async def _target(self, op: Operation) -> tuple[Sequence[str], str]:
        """Return the account's allowed hosts and the service's base URL.

        :raises OperationEnded: unknown account, or a service with no base URL.
        """
        hosts = await self.log.allowed_hosts(op.account)
        if hosts is None:
            raise OperationEnded("failed", "unknown_account", f"unknown account {op.account!r}")
        service = self.settings.services.get(op.service)
        if service is None:
            raise OperationEnded(
                "failed",
                "unknown_service",
                f"service {op.service!r} has no [browser.services.{op.service}] base_url",
            )
        return hosts, service.base_url

    async def _start(self, run: _Run, hosts: Sequence[str], base_url: str) -> None:
        """Open the run's browser session while its use of secrets is audited."""
        assert run.workflow is not None  # set by the caller's preparation
        run.secrets = await self._credentials(run, run.workflow)
        run.folder.mkdir(parents=True, exist_ok=True)
        failures: list[AgentdError] = []
        async with anyio.create_task_group() as tg:
            # The audit of the secrets' use commits while the browser opens (and
            # before any step can type one).
            tg.start_soon(self._open_session, run, hosts, base_url, failures)
            if run.secrets:
                tg.start_soon(self._audit_secret_use, run, failures)
        if failures:
            raise failures[0]

    async def _open_session(
        self, run: _Run, hosts: Sequence[str], base_url: str, failures: list[AgentdError]
    ) -> None:
        try:
            run.session = await self.browser.new_session(
                hosts, run.folder, base_url=base_url, settings=self.settings
            )
        except ExternalError as exc:
            failures.append(OperationEnded("failed", "browser", exc.message))

    async def _audit_secret_use(self, run: _Run, failures: list[AgentdError]) -> None:
        op = run.op
        event = AuditEvent(
            AuditEventType.SECRET_ACCESSED,
            ACTOR,
            f"{op.account}/{op.service}",
            {"operation": op.id, "names": sorted(run.secrets)},
        )
        try:
            await self.log.audit(event)
        except AgentdError as exc:
            failures.append(exc)

    async def _capture_refused(self, run: _Run, exc: CaptureRefused, capture: str) -> None:
        """Audit a capture refused because the page's text shows a secret (names only)."""
        event = AuditEvent(
            OPERATION_CAPTURE_REFUSED,
            ACTOR,
            run.op.id,
            {"capture": capture, "secrets": exc.names, "error": exc.message},
        )
        try:
            with anyio.CancelScope(shield=True):
                await self.log.audit(event)
        except AgentdError as failed:
            logger.error("op {}: cannot audit a refused capture: {}", run.op.id, failed.message)

    async def _credentials(self, run: _Run, workflow: Workflow) -> dict[str, SecretValue]:
        """Open the workflow's secrets; or, when one is unavailable, none of them.

        An unavailable secret does not end the operation here: ``run.unavailable``
        stops it at the first step that needs a secret or could change the site,
        after the steps before it (which only open and read pages) have run, so
        it ends with a screenshot of where it stopped.
        """
        op, names = run.op, list(workflow.secrets)
        if not names:
            return {}
        if self.vault is None:
            run.unavailable = OperationEnded(
                "failed", "vault", "no vault key is configured ([vault] key_file)"
            )
            return {}
        blobs = await self.log.secret_blobs(op.account, op.service, names)
        missing = [n for n in names if n not in blobs]
        if missing:
            run.unavailable = OperationEnded(
                "failed",
                "missing_secret",
                f"secret {', '.join(missing)} for {op.account}/{op.service} is not in the vault; "
                f"set it with `agentctl secret set {op.account} {op.service} {missing[0]}`",
            )
            return {}
        try:
            return {
                n: self.vault.open_secret(op.account, op.service, n, b) for n, b in blobs.items()
            }
        except VaultError as exc:
            run.unavailable = OperationEnded("failed", "vault", exc.message)
            return {}

    @staticmethod
    def _blocked(run: _Run, template: Step) -> OperationEnded | None:
        """Return why a step must not run without the secrets, if it must not."""
        end = run.unavailable
        if end is None:
            return None
        if template.action in READ_ACTIONS and not placeholders(template.value)[1]:
            return None
        return OperationEnded(
            end.state, end.reason, f"{end.message} (stopped before step {template.index})"
        )

    async def _steps(self, run: _Run, stop: StopSignal) -> None:
        assert run.workflow is not None and run.session is not None
        plain = {n: v.reveal() for n, v in run.secrets.items()}
        run.session.protect(plain)
        ended: Exception | None = None
        steps = run.workflow.steps
        async with anyio.create_task_group() as tg:
            journal = _Journal(self, run, tg)
            run.tasks = tg
            try:
                for template in steps:
                    try:
                        await self._step(run, stop, template, plain, journal)
                    except Exception as exc:
                        # Raised outside the task group, which would wrap it in a group.
                        ended = exc
                        break
                # The page as the operation left it: the final screenshot, and the one of
                # the steps still waiting for theirs. Full size when the steps did not all
                # succeed; when they did, the last step capture serves if it is current.
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

    async def _step(  # noqa: C901, PLR0915
        self,
        run: _Run,
        stop: StopSignal,
        template: Step,
        plain: Mapping[str, str],
        journal: _Journal,
    ) -> None:
        """Run one step and queue its record with its screenshot.

        A click or press (``COMMITTING_ACTIONS``) is shown on the page before it:
        the capture is taken while the click's actionability is checked, and
        finished (with every earlier record written) before it acts. A step that
        only waits or reads (``PASSIVE_ACTIONS``) is shown on the page when it is
        done, in a capture taken while the next steps run, which serves the
        reading steps right after it too. Any other step (a fill, a choice, a
        navigation) is shown by the next capture: the form as it was filled in.
        Every capture started is finished before a step changes the page.

        :raises OperationEnded: the step failed, or the operation must stop.
        """
        assert run.session is not None
        started = time.perf_counter()
        run.used, run.used_by = None, "workflow"
        action = template.action
        passive = action in PASSIVE_ACTIONS
        evidence = _Evidence()
        if action in COMMITTING_ACTIONS:
            # The page before it: this boundary's capture, started now if none is under way.
            self._bind(run, evidence, run.fresh or self._capture(run), template.index)
        error, problem = None, None
        blocked: OperationEnded | None = None
        broke: AgentdError | None = None
        async with anyio.create_task_group() as tg:
            committing = anyio.Event()
            if action in COMMITTING_ACTIONS:
                tg.start_soon(self._flush_then_set, journal, committing)
            else:
                committing.set()
            consent = _ConsentCheck()
            tg.start_soon(self._check_consent, run, stop, consent)

            async def ready() -> None:
                """Return once the step may change the page (raise when it must not)."""
                await consent.done.wait()
                if consent.ended is not None:
                    raise consent.ended
                for capture in run.captures:
                    await capture.captured.wait()
                    if capture.error is not None and capture.required:
                        raise capture.error
                run.captures = [c for c in run.captures if not c.captured.is_set()]
                await committing.wait()
                if run.record_error is not None:
                    raise run.record_error
                run.fresh = None  # from now on, the page may differ from the last capture

            try:
                blocked = self._blocked(run, template)
                if blocked is None:
                    if passive and stop.reason is not None:
                        raise OperationEnded("cancelled", stop.reason, stop.message)
                    await self._execute(run, template, plain, journal, ready)
                    # A step that leaves the page as it is does not wait for the check.
                    await consent.done.wait()
                    if consent.ended is not None:
                        raise consent.ended
            except StepFailed as exc:
                # A library message might quote what a step typed: never let a secret out.
                typed = [plain[n] for n in placeholders(template.value)[1] if n in plain]
                error, problem = redact(exc.message, typed), exc
            except AgentdError as exc:
                # Raised outside the task group, which would wrap it in a group.
                broke = exc
            tg.cancel_scope.cancel()
        if broke is not None:
            raise broke
        refused = run.record_error if isinstance(run.record_error, CaptureRefused) else None
        if run.record_error is not None and refused is None:
            raise run.record_error
        duration = (time.perf_counter() - started) * 1000
        if passive:
            # The page as it read it (full size when the step failed: the final screenshot).
            scale = None if problem is None else 1.0
            capture = run.fresh or self._capture(run, scale=scale)
            self._bind(run, evidence, capture, template.index)
        elif action not in COMMITTING_ACTIONS:
            evidence.index = template.index
            run.waiting.append(evidence)  # shown by the next capture
        if blocked is not None:
            error = blocked.message
        status = "ok" if problem is None and blocked is None else "failed"
        row = self._step_row(run, template, status, duration, run.used_by, error, run.used)
        journal.add(row, evidence)
        if blocked is not None:
            raise blocked
        if problem is not None:
            reason = _REASONS.get(problem.problem, "step_failed")
            if problem.problem is StepProblem.HOST_NOT_ALLOWED:
                hosts = run.session.refused_hosts()
                run.off_list = {"step": template.index, "hosts": hosts, "error": error}
            raise OperationEnded(
                "failed", reason, f"step {template.index} ({template.intent}): {error}"
            )
        if refused is not None:
            # The step left the page as it was (it waited or read), but the page's
            # capture was refused: the operation stops here, the step on record.
            raise refused

    def _capture(
        self, run: _Run, *, scale: float | None = None, final: bool = False
    ) -> _Capture | None:
        """Start capturing the page: the steps waiting for a screenshot get this one.

        None before the first navigation (nothing to see). A step capture that
        fails fails the operation at its next step; a final one is only logged.
        """
        session = run.session
        assert session is not None
        if session.url() == "about:blank":
            self._release(run)
            return None
        scale = session.settings.screenshot_scale if scale is None else scale
        capture = _Capture(required=not final, scale=scale)
        run.fresh = capture
        # One capture at a time: Chromium scales a capture for its duration, so two
        # at once (a step's and the final one) could come out at each other's size.
        earlier = [c for c in run.captures if not c.captured.is_set()]
        run.captures.append(capture)

        async def take() -> None:
            try:
                for before in earlier:
                    await before.captured.wait()
                capture.data = await session.screenshot(scale=scale)
            except CaptureRefused as exc:
                await self._capture_refused(run, exc, "final" if final else "step")
                capture.error = exc
            except AgentdError as exc:
                capture.error = exc
                if final:
                    logger.warning("op {}: no final screenshot: {}", run.op.id, exc.message)
            finally:
                capture.captured.set()

        assert run.tasks is not None
        run.tasks.start_soon(take)
        waiting, run.waiting = run.waiting, []
        for evidence in waiting:
            self._bind(run, evidence, capture, evidence.index)
        return capture

    def _bind(self, run: _Run, evidence: _Evidence, capture: _Capture | None, index: int) -> None:
        """Write ``capture`` as step ``index``'s screenshot file, in the background.

        Files are numbered in the order steps get their capture; a capture
        serving several steps is written once for each.
        """
        if capture is None:
            evidence.written.set()
            return
        run.shots += 1
        number = run.shots

        async def write() -> None:
            try:
                await capture.captured.wait()
                if capture.error is not None:
                    if capture.required:
                        run.record_error = run.record_error or capture.error
                elif capture.data:
                    await self._save(run, capture.data, index, evidence.saved, number)
            finally:
                evidence.written.set()

        assert run.tasks is not None
        run.tasks.start_soon(write)

    @staticmethod
    def _release(run: _Run) -> None:
        """Let the steps still waiting for a screenshot go without one."""
        waiting, run.waiting = run.waiting, []
        for evidence in waiting:
            evidence.written.set()

    @staticmethod
    async def _flush_then_set(journal: _Journal, done: anyio.Event) -> None:
        try:
            await journal.flush()
        finally:
            done.set()

    async def _check_consent(self, run: _Run, stop: StopSignal, out: _ConsentCheck) -> None:
        try:
            out.ended = await self._boundary(run, stop)
        except AgentdError as exc:
            out.ended = exc
        finally:
            out.done.set()

    async def _boundary(self, run: _Run, stop: StopSignal) -> OperationEnded | None:
        """Return why the operation must stop before its next step, if it must."""
        op = run.op
        if stop.reason is not None:
            return OperationEnded("cancelled", stop.reason, stop.message)
        consent = await self.log.active_consent(op.account, op.service, op.workflow)
        shortfall = consent_shortfall(consent, op.workflow, run.needs)
        if shortfall is None:
            return None
        if shortfall.reason is ShortfallReason.CONSENT_MISSING:
            return OperationEnded(
                "cancelled", "consent_revoked", f"consent for {op.workflow} was revoked"
            )
        return OperationEnded("cancelled", "permission_revoked", shortfall.message)

    async def _execute(
        self,
        run: _Run,
        template: Step,
        plain: Mapping[str, str],
        journal: _Journal,
        ready: Callable[[], Awaitable[None]],
    ) -> None:
        """Run one step (re-planned if its selector fails); ``run.used`` is the command it ran.

        ``ready`` returns once a step may change the page (see :meth:`_step`).
        """
        assert run.session is not None
        rendered = self._render(template, run.params, plain)
        run.used = replace(template, target=rendered.target)
        self._check(run, run.used, rendered, "workflow")
        try:
            await self._perform(run, template, rendered, ready, any_field=True)
            return
        except StepFailed as exc:
            if exc.problem not in REPLANNABLE:
                raise
            if self.model is None:
                raise StepFailed(
                    exc.problem, f"{exc.message}; no model is configured to re-plan the step"
                ) from exc
            first_error = exc.message
        planned = await self._plan(run, template, plain)
        rendered = self._render(planned, run.params, plain)
        run.used, run.used_by = replace(planned, target=rendered.target), "planner"
        self._check(run, run.used, rendered, "planner")
        logger.info("op {} step {}: re-planned after {}", run.op.id, template.index, first_error)
        if planned.action in COMMITTING_ACTIONS and template.action not in COMMITTING_ACTIONS:
            # Recovery judges by the workflow's actions: tell it this step may now commit.
            row = self._step_row(run, template, "planned", 0.0, "planner", None, run.used)
            journal.add(row, None)
            if run.fresh is None:
                # A click gets a screenshot of the page before it; ``ready`` waits for it.
                self._capture(run)
            await journal.flush()
            if run.record_error is not None:
                raise run.record_error
        try:
            # A secret the planner types goes only into a password or data-secret field.
            await self._perform(run, planned, rendered, ready, any_field=False)
        except StepFailed as exc:
            if exc.problem is StepProblem.REFUSED:
                run.refusals.append((template.index, "planner", exc.message, run.used.target))
            raise

    def _render(self, step: Step, params: Mapping[str, str], plain: Mapping[str, str]) -> Step:
        try:
            return step.render(params, plain)
        except AgentdError as exc:
            raise StepFailed(StepProblem.REFUSED, exc.message) from exc

    def _check(self, run: _Run, template: Step, rendered: Step, source: str) -> None:
        """Refuse a command outside the method or host allowlist (audited by the caller).

        ``template`` is the command as it is recorded: placeholders of secrets, not values.
        """
        assert run.session is not None
        problem = None
        if rendered.action.value not in ALLOWED_ACTIONS:
            problem = f"method {rendered.action.value!r} is not allowed"
        elif rendered.action is Action.GOTO:
            url = run.session.absolute(rendered.target)
            if not host_allowed(url, run.session.allowed_hosts):
                problem = f"goto {url} leaves the account's host allowlist"
        if problem:
            run.refusals.append((template.index, source, problem, template.target))
            raise StepFailed(StepProblem.REFUSED, problem)

    async def _perform(
        self,
        run: _Run,
        template: Step,
        rendered: Step,
        ready: Callable[[], Awaitable[None]],
        *,
        any_field: bool,
    ) -> None:
        """Run a rendered command.

        ``any_field``: a secret it types may go into a plain field (a recorded
        step's, into the field its reviewed selector names); the planner's go
        only into password or ``data-secret`` fields.
        """
        assert run.session is not None
        typed = placeholders(template.value)[1]
        await run.session.hide_from_trace(bool(typed))
        try:
            with anyio.fail_after(self.settings.step_timeout_s * 3 + 5):
                extracted = await run.session.perform(
                    rendered,
                    ready,
                    secrets=typed,
                    secret_field_only=not any_field,
                    sign_in=any_field and template.index in run.sign_in,
                )
        except TimeoutError:
            raise StepFailed(StepProblem.TIMEOUT, f"{template.action} did not finish") from None
        if template.result and extracted is not None:
            run.results[template.result] = extracted

    async def _plan(self, run: _Run, template: Step, plain: Mapping[str, str]) -> Step:
        assert run.session is not None and self.model is not None and run.workflow is not None
        # The model gets a full-size PNG, masked twice over (the page's stylesheet and
        # Playwright's mask). The step failed without touching the page, so this shows
        # what the step saw.
        try:
            png = await run.session.masked_screenshot("png")
        except CaptureRefused as exc:
            await self._capture_refused(run, exc, "planner")
            raise
        try:
            cmd: PlannedCommand = await self.model.plan_step(
                intent=template.intent,
                allowed_methods=sorted(ALLOWED_ACTIONS),
                screenshot_png=png,
                page_url=run.session.url(),
                page_outline=await run.session.outline(),
                placeholders=[f"{{secret:{n}}}" for n in run.workflow.secrets],
                secrets=list(plain.values()),
            )
        except ModelAnswerInvalid as exc:
            run.refusals.append((template.index, "planner", exc.message, template.target))
            raise StepFailed(
                StepProblem.REFUSED, f"the planner's answer was refused: {exc.message}"
            ) from exc
        except ModelRefused as exc:
            raise StepFailed(StepProblem.REFUSED, exc.message) from exc
        except ExternalError as exc:
            raise StepFailed(StepProblem.TIMEOUT, f"the planner failed: {exc.message}") from exc
        if cmd.method not in ALLOWED_ACTIONS:
            run.refusals.append(
                (template.index, "planner", f"method {cmd.method!r}", template.target)
            )
            raise StepFailed(StepProblem.REFUSED, f"the planner chose method {cmd.method!r}")
        action = Action(cmd.method)
        if action is Action.GOTO:
            target, value = cmd.value or cmd.selector or "", None
        else:
            target, value = cmd.selector or "", cmd.value
        if not target:
            raise StepFailed(StepProblem.REFUSED, f"the planner's {action} command has no target")
        if placeholders(target)[1] or (placeholders(value)[1] and action is not Action.FILL):
            raise StepFailed(StepProblem.REFUSED, "the planner put a secret outside a fill value")
        same = action is template.action
        return replace(
            template,
            action=action,
            target=target,
            value=value,
            expect=template.expect if same else None,
            result=template.result if same else None,
        )

    # -- evidence and progress ------------------------------------------------------------

    async def _save(
        self, run: _Run, shot: bytes, index: int, out: dict[str, str], number: int | None = None
    ) -> None:
        if not shot:
            return
        if number is None:
            run.shots += 1
            number = run.shots
        ext = "png" if shot.startswith(_PNG_MAGIC) else "jpg"
        path = run.folder / f"a{run.attempt}-{number:03d}-step{index:02d}.{ext}"

        def write() -> str:
            path.write_bytes(shot)
            return hashlib.sha256(shot).hexdigest()

        out["sha256"] = await anyio.to_thread.run_sync(write)
        out["screenshot"] = str(path)

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
        """Return a step's record: the command it ran (``used``), else the workflow's.

        When the command is not the workflow's (the planner's), the audit event
        also names the workflow's (``recorded``); the row holds what ran.
        """
        ran = used or template
        row: dict[str, Any] = {
            "op_id": run.op.id,
            "attempt": run.attempt,
            "idx": template.index,
            "intent": template.intent,
            "action": ran.action.value,
            "target": ran.target,
            "source": source,
            "status": status,
            "error": error,
            "screenshot": None,  # filled in when the file is written
            "sha256": None,
            "duration_ms": duration_ms,
            "at": datetime.now(UTC).isoformat(timespec="microseconds"),
        }
        if source != "workflow":
            row[RECORDED] = {"action": template.action.value, "target": template.target}
        return row

    async def _write_steps(self, run: _Run, batch: list[_Pending]) -> None:
        """Write queued step records, their progress and lease in one transaction."""
        await self._screenshots_written(batch)
        await self.log.write_steps(run.op.id, self.owner, _entries(batch))
        self.on_change(run.op.id)

    @staticmethod
    async def _screenshots_written(batch: list[_Pending]) -> None:
        for row, _, evidence in batch:
            if evidence is not None:
                await evidence.written.wait()
                row["screenshot"] = evidence.saved.get("screenshot")
                row["sha256"] = evidence.saved.get("sha256")

    async def _finish(self, run: _Run, state: str, reason: str | None, error: str | None) -> None:
        saved: dict[str, str] = {}
        session, run.session = run.session, None
        if session is None:
            await self._record_end(run, state, reason, error, saved)
            return
        run.refused_hosts = session.refused_hosts()
        # The evidence is complete (final screenshot, trace) before the end is recorded;
        # the context closes while it is, and before the end is told.
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                last = run.last_capture
                if last is not None and last.data:
                    # The page as the steps left it: taken already.
                    tg.start_soon(self._save, run, last.data, 0, saved)
                elif last is not None and isinstance(last.error, CaptureRefused):
                    pass  # the page shows a secret: refused (and audited) already
                else:
                    tg.start_soon(self._final_screenshot, run, session, saved)
                tg.start_soon(session.save_trace)
        finally:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._close_session, session)
                try:
                    await self._record_end(run, state, reason, error, saved, notify=False)
                except Exception as exc:
                    # Raised outside the task group, which would wrap it in a group.
                    failure = exc
        if failure is not None:
            raise failure
        self.on_change(run.op.id)

    @staticmethod
    async def _close_session(session: Session) -> None:
        with anyio.CancelScope(shield=True):
            await session.close()

    async def _record_end(
        self,
        run: _Run,
        state: str,
        reason: str | None,
        error: str | None,
        saved: dict[str, str],
        *,
        notify: bool = True,
    ) -> None:
        """Write the operation's end: its last step records, state, final screenshot, audit."""
        op = run.op
        batch, run.pending = run.pending, []
        await self._screenshots_written(batch)
        # Refusals of a command that never became a step row.
        refusals, run.refusals = run.refusals, []
        end = OperationEnd(
            op,
            run.attempt,
            state,
            reason,
            error,
            results=run.results,
            folder=str(run.folder),
            refused_hosts=run.refused_hosts,
            off_list=run.off_list,
            refusals=refusals,
            saved=saved,
        )
        await self.log.record_end(end, self.owner, _entries(batch))
        logger.info("op {} {}{}", op.id, state, f" ({reason}: {error})" if reason else "")
        if notify:
            self.on_change(op.id)

    async def _final_screenshot(self, run: _Run, session: Session, saved: dict[str, str]) -> None:
        try:
            with anyio.fail_after(self.settings.step_timeout_s + 5):
                shot = await session.screenshot(scale=1.0)
            await self._save(run, shot, 0, saved)
        except CaptureRefused as exc:
            await self._capture_refused(run, exc, "final")
            logger.warning("op {}: no final screenshot: {}", run.op.id, exc.message)
        except (AgentdError, TimeoutError) as exc:
            logger.warning("op {}: no final screenshot: {}", run.op.id, exc)


def _entries(batch: list[_Pending]) -> list[StepEntry]:
    return [StepEntry(row, refusals) for row, refusals, _ in batch]
