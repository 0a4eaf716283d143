"""Rollbacks: whether a finished change can be taken back, and taking it back.

A successful change gets a rollback token (issued by the execution engine,
:mod:`agentd.services.execution`); this service answers for a token
(:meth:`RollbackService.check_rollback`), runs the undo SPEC §6's table
chooses (:meth:`RollbackService.rollback`: a soft or hard undo through the
executor's undo workflow, or an escalation to a person when the target moved
on or the change has no undo), moves a deadline later
(:meth:`RollbackService.extend`) and lists tokens.

Rollbacks are executions too (kind ``rollback``), run through the engine's
operations and never rolled back themselves; the engine's recovery fails one
a stopped process left running and makes its token available again.
"""

from __future__ import annotations

import secrets as token
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.breakers import BreakerEventKind
from agentd.core.executors import Step, matches
from agentd.core.rollback import (
    RollbackReason,
    RollbackType,
    RollbackVerdict,
    choose_rollback,
    extend_deadline,
)
from agentd.core.states import ExecutionState, TokenState
from agentd.core.timefmt import iso
from agentd.errors import Conflict, InvalidArgument, InvalidState, NotFound
from agentd.services.execution import (
    ExecutionService,
    OperationFailed,
    incident_severity,
    open_execution_incident,
    parse_time,
    stored_plan,
)
from agentd.store.records import ExecutionRow, TokenRow

if TYPE_CHECKING:
    from agentd.store.base import Transaction


class RollbackService:
    """Answer for, run, escalate and extend rollbacks of the engine's executions.

    It shares the engine's store, operations, clock and configuration (a test
    that moves the engine's clock moves the tokens' ages with it).
    """

    def __init__(self, engine: ExecutionService) -> None:
        self.engine = engine
        self.store = engine.store
        self.incidents = engine.incidents

    async def _resolve_token(self, ref: str) -> tuple[TokenRow | None, ExecutionRow]:
        if ref.startswith("exe_"):
            exe = await self.engine.get(ref)
            return await self.store.execution.token_for_execution(exe.id), exe
        tok = await self.store.execution.get_token(ref)
        if tok is None:
            raise NotFound(f"unknown rollback token {ref!r}", details={"token": ref})
        return tok, await self.engine.get(tok.execution_id)

    async def _verdict(
        self, ref: str, now: datetime, *, read_current: bool
    ) -> tuple[TokenRow | None, ExecutionRow, RollbackVerdict, dict[str, Any] | None]:
        tok, exe = await self._resolve_token(ref)
        executor = self.engine.config().registry().get(exe.executor)
        current: dict[str, Any] | None = None
        current_matches = True
        if (
            read_current
            and executor is not None
            and exe.state == ExecutionState.SUCCEEDED
            and tok is not None
        ):
            plan = stored_plan(exe)
            if plan.snapshot is not None and tok.state == TokenState.AVAILABLE:
                try:
                    current = await self.engine.read_current(exe, plan)
                    current_matches = matches(current, exe.after or {})
                except OperationFailed as exc:
                    raise InvalidState(
                        f"the target's current values cannot be read ({exc.message}); "
                        "nothing was changed",
                        details={"reason": "SNAPSHOT_FAILED"},
                    ) from exc
        executed = (
            parse_time(tok.executed_at) if tok else parse_time(exe.started_at or exe.created_at)
        )
        verdict = choose_rollback(
            executed,
            exe.risk,
            now,
            parse_time(tok.deadline) if tok else executed,
            current_matches_after=current_matches,
            already_rolled_back=tok is not None
            and tok.state in (TokenState.USED, TokenState.ESCALATED),
            is_rollback=exe.kind == "rollback",
            execution_succeeded=exe.state == ExecutionState.SUCCEEDED,
        )
        if (
            verdict.available
            and verdict.type in (RollbackType.SOFT_UNDO, RollbackType.HARD_UNDO)
            and executor is not None
            and not executor.reversible
        ):
            verdict = RollbackVerdict(
                True,
                RollbackType.ESCALATED_RESTORE,
                RollbackReason.TARGET_CHANGED if not current_matches else RollbackReason.NO_UNDO,
                f"a {exe.executor} change has no undo workflow (it cannot be taken back "
                "automatically): an incident is opened and nothing is changed",
                verdict.age,
            )
        return tok, exe, verdict, current

    async def check_rollback(self, ref: str) -> dict[str, Any]:
        """Answer whether (and how) a token can be rolled back now, without changing anything."""
        now = self.engine.clock()
        tok, exe, verdict, _ = await self._verdict(ref, now, read_current=False)
        return {
            "token": tok.token if tok else None,
            "execution": exe.id,
            "available": verdict.available
            and tok is not None
            and tok.state == TokenState.AVAILABLE,
            "type": str(verdict.type) if verdict.type else None,
            "reason": str(verdict.reason),
            "detail": verdict.detail
            if tok or exe.kind == "rollback"
            else "this execution has no rollback token (it never started a change)",
            "deadline": tok.deadline if tok else None,
            "state": tok.state if tok else None,
            "risk": exe.risk,
            "executor": exe.executor,
            "note": "the target's current values are compared when the rollback runs",
        }

    async def rollback(self, ref: str, *, reason: str, actor: str) -> dict[str, Any]:
        """Roll back the execution of a token (see SPEC §6's table); return what happened.

        :raises NotFound: unknown token.
        :raises InvalidState: refused (used, expired, failed execution, a rollback,
            the target unreadable); ``details["reason"]`` is the stable code.
        :raises Conflict: a rollback of this token is already running.
        """
        if not reason or not reason.strip():
            raise InvalidArgument("say why (--reason)", details={"field": "reason"})
        now = self.engine.clock()
        tok, exe, verdict, current = await self._verdict(ref, now, read_current=True)
        if tok is not None and tok.state == TokenState.IN_PROGRESS:
            raise Conflict(
                f"a rollback of {exe.id} is already running", details={"token": tok.token}
            )
        if not verdict.available or tok is None:
            if not verdict.available:
                why, code = verdict.detail, str(verdict.reason)
            else:
                why, code = "this execution has no rollback token", "NO_TOKEN"
            await self._audit_refusal(actor, exe, tok, code, why)
            raise InvalidState(
                f"rollback refused: {why}", details={"reason": code, "execution": exe.id}
            )
        if verdict.type is RollbackType.ESCALATED_RESTORE:
            return await self._escalate(tok, exe, verdict, current, reason, actor)
        return await self._undo(tok, exe, verdict, current, reason, actor)

    async def _audit_refusal(
        self,
        actor: str,
        exe: ExecutionRow,
        tok: TokenRow | None,
        code: str,
        why: str,
    ) -> None:
        async with self.store.write(self.engine.clock()) as tx:
            tx.audit(
                AuditEvent(
                    AuditEventType.ROLLBACK_FAILED,
                    actor,
                    exe.id,
                    {"refused": code, "detail": why, "token": tok.token if tok else None},
                )
            )

    async def _escalate(
        self,
        tok: TokenRow,
        exe: ExecutionRow,
        verdict: RollbackVerdict,
        current: dict[str, Any] | None,
        reason: str,
        actor: str,
    ) -> dict[str, Any]:
        async with self.store.write(self.engine.clock()) as tx:
            await _still_available(tx, tok)
            incident = await self._hand_to_person(
                tx,
                exe,
                tok,
                {"state": TokenState.ESCALATED, "used_at": iso(tx.now), "used_by": actor},
                severity=incident_severity(exe),
                kind="rollback_escalated",
                title=f"rollback of {exe.id} ({exe.action_type} on {exe.account}) needs a person",
                detail=f"{verdict.detail}. Requested by {actor}: {reason}",
                event=AuditEventType.ROLLBACK_ESCALATED,
                actor=actor,
                audit={
                    "token": tok.token,
                    "reason": reason,
                    "why": str(verdict.reason),
                    "current": current,
                },
            )
        await self.incidents.announce(incident)
        return {
            "execution": exe.id,
            "type": str(RollbackType.ESCALATED_RESTORE),
            "state": TokenState.ESCALATED,
            "incident": incident,
            "detail": verdict.detail,
        }

    async def _hand_to_person(
        self,
        tx: Transaction,
        exe: ExecutionRow,
        tok: TokenRow,
        token_changes: dict[str, Any],
        *,
        severity: str,
        kind: str,
        title: str,
        detail: str,
        event: AuditEventType,
        actor: str,
        audit: dict[str, Any],
    ) -> str:
        """Settle ``tok``, open an incident about ``exe`` and audit both, in ``tx``.

        The one path by which a rollback that could not (escalated) or did not
        (failed) restore the target reaches a person: the token's new state,
        the incident and the audit event commit together or not at all. The
        caller announces the returned incident once ``tx`` has committed.
        """
        await tx.execution.update_token(tok.token, token_changes)
        incident = await open_execution_incident(
            self.incidents, tx, exe, severity=severity, kind=kind, title=title, detail=detail
        )
        tx.audit(AuditEvent(event, actor, exe.id, {**audit, "incident": incident}))
        return incident

    async def _open_undo(
        self,
        tok: TokenRow,
        exe: ExecutionRow,
        verdict: RollbackVerdict,
        step: Step,
        current: dict[str, Any] | None,
        reason: str,
    ) -> ExecutionRow:
        """Claim ``tok`` and record the rollback execution, in one transaction.

        The token is ``in_progress`` from here until the undo ends; a crash in
        between is settled by the engine's recovery (token available again).
        """
        rb_id = f"exe_{token.token_hex(8)}"
        async with self.store.write(self.engine.clock()) as tx:
            await _still_available(tx, tok)
            await tx.execution.update_token(tok.token, {"state": TokenState.IN_PROGRESS})
            await tx.execution.insert_execution(
                {
                    "id": rb_id,
                    "kind": "rollback",
                    "intent_id": exe.intent_id,
                    "rollback_of": exe.id,
                    "rollback_type": str(verdict.type),
                    "tenant": exe.tenant,
                    "account": exe.account,
                    "action_type": exe.action_type,
                    "executor": exe.executor,
                    "risk": exe.risk,
                    "autonomous": False,
                    "state": ExecutionState.RUNNING,
                    "params": {
                        "change": {"workflow": step.workflow, "params": dict(step.params)},
                        "service": stored_plan(exe).service,
                    },
                    "before": current or exe.after,
                    "diff": {k: (exe.before or {}).get(k) for k in (exe.diff or {})},
                    "detail": reason,
                    "created_at": iso(tx.now),
                    "updated_at": iso(tx.now),
                    "started_at": iso(tx.now),
                    # This process runs it: leased from the start (renewed by the engine's loop).
                    "lease_owner": self.engine.runner,
                    "lease_until": iso(tx.now + timedelta(seconds=self.engine.lease_s())),
                },
            )
        return await self.engine.get(rb_id)

    async def _undo(
        self,
        tok: TokenRow,
        exe: ExecutionRow,
        verdict: RollbackVerdict,
        current: dict[str, Any] | None,
        reason: str,
        actor: str,
    ) -> dict[str, Any]:
        executor = self.engine.executor(exe.executor)
        plan = stored_plan(exe)
        hard = verdict.type is RollbackType.HARD_UNDO
        step = executor.undo(plan, exe.before or {}, exe.after or {}, exe.result or {}, hard)
        if step is None:
            raise InvalidState(
                f"execution {exe.id} has nothing to undo with", details={"reason": "NO_UNDO"}
            )
        rb = await self._open_undo(tok, exe, verdict, step, current, reason)
        rb_id = rb.id
        try:
            op = await self.engine.run_operation(rb, step, "change_op")
        except OperationFailed as exc:
            return await self._undo_failed(tok, exe, rb, exc, actor)
        after: dict[str, Any] = {}
        restored = True
        if plan.snapshot is not None:
            try:
                after = await self.engine.read_snapshot(rb, plan, "verify_op")
                fields = list(exe.before or {}) if hard else list(exe.diff or {})
                restored = all(after.get(f) == (exe.before or {}).get(f) for f in fields)
            except OperationFailed as exc:
                logger.warning("rollback {}: after snapshot failed: {}", rb_id, exc.message)
                restored = False
        if not restored:
            failure = OperationFailed(
                op, "the undo ran but the target does not show the old values", "NOT_RESTORED"
            )
            return await self._undo_failed(tok, exe, rb, failure, actor, after=after)
        async with self.store.write(self.engine.clock()) as tx:
            await self.engine.set_state(
                tx,
                rb,
                state=ExecutionState.SUCCEEDED,
                after=after,
                result=op.result,
                finished_at=iso(tx.now),
                target_state="applied",
            )
            await tx.execution.update_token(
                tok.token,
                {
                    "state": TokenState.USED,
                    "used_at": iso(tx.now),
                    "used_by": actor,
                    "rollback_execution": rb_id,
                },
            )
            await self.engine.sync_stage(tx, exe, after, actor=actor)
            tx.audit(
                AuditEvent(
                    AuditEventType.EXECUTION_ROLLED_BACK,
                    actor,
                    exe.id,
                    {
                        "token": tok.token,
                        "type": str(verdict.type),
                        "rollback": rb_id,
                        "reason": reason,
                    },
                )
            )
        await self.engine.publish(exe, BreakerEventKind.EXECUTION_ROLLED_BACK)
        self.engine.notify_changed()
        return {
            "execution": exe.id,
            "type": str(verdict.type),
            "state": "rolled_back",
            "rollback": rb_id,
            "restored": after,
            "detail": verdict.detail,
        }

    async def _undo_failed(
        self,
        tok: TokenRow,
        exe: ExecutionRow,
        rb: ExecutionRow,
        exc: OperationFailed,
        actor: str,
        *,
        after: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        async with self.store.write(self.engine.clock()) as tx:
            await self.engine.set_state(
                tx,
                rb,
                state=ExecutionState.FAILED,
                reason=exc.reason,
                detail=exc.message,
                after=after,
                finished_at=iso(tx.now),
                target_state="unknown",
            )
            incident = await self._hand_to_person(
                tx,
                exe,
                tok,
                {"state": TokenState.AVAILABLE},
                severity="high",
                kind="rollback_failed",
                title=f"rollback of {exe.id} ({exe.action_type} on {exe.account}) failed",
                detail=exc.message,
                event=AuditEventType.ROLLBACK_FAILED,
                actor=actor,
                audit={
                    "token": tok.token,
                    "rollback": rb.id,
                    "reason": exc.reason,
                    "error": exc.message,
                },
            )
        await self.incidents.announce(incident)
        self.engine.notify_changed()
        raise InvalidState(
            f"rollback failed: {exc.message} (incident {incident}; the token stays usable)",
            details={"reason": "ROLLBACK_FAILED", "rollback": rb.id, "incident": incident},
        )

    async def extend(self, ref: str, until: datetime, *, reason: str, actor: str) -> dict[str, Any]:
        """Move a token's deadline later (ROLLBACK_DEADLINE_EXTENDED).

        :raises InvalidArgument: ``until`` not later, too far, or no reason.
        :raises InvalidState: the token is used, escalated or expired.
        """
        if not reason or not reason.strip():
            raise InvalidArgument("say why (--reason)", details={"field": "reason"})
        if until.tzinfo is None:
            raise InvalidArgument("--until needs a time zone (e.g. 2026-12-01T12:00:00Z)")
        tok, exe = await self._resolve_token(ref)
        if tok is None:
            raise InvalidState(
                f"execution {exe.id} has no rollback token", details={"reason": "NO_TOKEN"}
            )
        now = self.engine.clock()
        async with self.store.write(now) as tx:
            fresh = await tx.execution.get_token(tok.token)
            assert fresh is not None
            if fresh.state != TokenState.AVAILABLE:
                raise InvalidState(
                    f"token {tok.token} is {fresh.state}; only an available token can be extended",
                    details={"reason": "TOKEN_NOT_AVAILABLE"},
                )
            new = extend_deadline(parse_time(fresh.deadline), until, now)
            record = {
                "from": fresh.deadline,
                "until": iso(new),
                "by": actor,
                "reason": reason,
                "at": iso(now),
            }
            await tx.execution.update_token(
                tok.token, {"deadline": iso(new), "extensions": [*fresh.extensions, record]}
            )
            tx.audit(
                AuditEvent(
                    AuditEventType.ROLLBACK_DEADLINE_EXTENDED,
                    actor,
                    exe.id,
                    {"token": tok.token, **record},
                )
            )
        updated = await self.store.execution.get_token(tok.token)
        assert updated is not None
        return updated.to_dict()

    async def tokens(self) -> list[TokenRow]:
        """Return every rollback token, newest first."""
        return await self.store.execution.list_tokens()


async def _still_available(tx: Transaction, tok: TokenRow) -> None:
    """Fail unless ``tok`` is still available in ``tx`` (two rollbacks raced for it).

    :raises Conflict: another rollback, escalation or extension came first.
    """
    fresh = await tx.execution.get_token(tok.token)
    if fresh is None or fresh.state != TokenState.AVAILABLE:
        raise Conflict(f"token {tok.token} changed meanwhile ({fresh.state if fresh else 'gone'})")
