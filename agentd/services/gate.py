"""The gate as a service: decisions made durable, approvals, expiry.

Concurrent submissions are grouped: one loop takes whatever has queued up
(at most ``gate.max_batch``), reads what the batch depends on and decides
each intent in order with the pure core
(:func:`agentd.services.gate_batch.decide_batch`), and writes every effect —
intents, budget counters and consumptions, idempotency records, hand-off rows
and audit records — in one transaction. One fsync then covers the whole
group, which is what makes FULL durability affordable. Either the whole group
is stored or none of it, so a crash can never leave budget consumed without
its decision; and submitters are answered only once it is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.gate import IdempotencyState, approval_blocker, approval_effects, budget_day
from agentd.core.intents import ActionIntent
from agentd.core.policy import GatePolicy
from agentd.core.states import IntentStatus
from agentd.core.timefmt import iso
from agentd.errors import (
    AgentdError,
    BlockedIntent,
    Expired,
    InvalidArgument,
    InvalidState,
    NotFound,
)
from agentd.services.autonomy import KEYS, read_global_state
from agentd.services.gate_batch import (
    STATUS_FOR,
    Decided,
    batch_reads,
    decide_batch,
    decision_view,
)
from agentd.store.base import BlockTransaction, Store, Transaction
from agentd.store.records import IntentRow

# With names now defined with the batch code, still importable from here.
__all__ = [
    "STATUS_FOR",
    "GateService",
    "decision_view",
    "read_global_state",
]


@dataclass
class _Pending:
    intent: ActionIntent
    actor: str
    done: anyio.Event = field(default_factory=anyio.Event)
    result: dict[str, Any] | None = None
    error: AgentdError | None = None


class GateService:
    """Submit intents, check them without effects, approve, reject, expire."""

    def __init__(
        self,
        store: Store,
        policy: Callable[[], GatePolicy],
        *,
        approval_ttl: Callable[[str], timedelta],
        max_batch: int = 256,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.policy = policy
        self.approval_ttl = approval_ttl
        self.max_batch = max_batch
        self.clock = clock
        self._send: MemoryObjectSendStream[_Pending]
        self._recv: MemoryObjectReceiveStream[_Pending]
        self._send, self._recv = anyio.create_memory_object_stream[_Pending](max_batch * 4)
        self.batches = 0
        self.decided = 0

    def close(self) -> None:
        """Release the submission queue (the daemon is stopping)."""
        self._send.close()
        self._recv.close()

    # -- submission (group commit) ----------------------------------------------

    async def submit(self, intent: ActionIntent, actor: str) -> dict[str, Any]:
        """Decide one intent durably and return the decision.

        :raises NotFound: unknown account.
        :raises Conflict: the id already names an intent with other content.
        """
        pending = _Pending(intent, actor)
        await self._send.send(pending)
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def run(self) -> None:
        """Decide queued submissions in groups until cancelled or closed."""
        while True:
            try:
                first = await self._recv.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._recv.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            await self._decide_batch(batch)

    async def _decide_batch(self, batch: list[_Pending]) -> None:
        """Decide and store a batch in one transaction, then answer its submitters."""
        now = self.clock()
        policy = self.policy()
        day = budget_day(now).isoformat()
        intents = [p.intent for p in batch]
        failure: AgentdError | None = None
        stored = False
        items = [(p.intent, p.actor) for p in batch]
        # Kept even when the commit fails: a refusal is answered as such all the same.
        made: list[Decided] = []

        def block(tx: BlockTransaction) -> None:
            # Reads, the pure decisions, writes and commit: one hand-off to the
            # store's thread for the whole batch.
            reads = batch_reads(tx.gate.read_batch(intents, day, now, KEYS))
            effects = decide_batch(
                items, reads, now=now, policy=policy, approval_ttl=self.approval_ttl
            )
            made.append(effects)
            for event in effects.events:
                tx.audit(event)
            tx.gate.write_batch(effects.writes)

        try:
            # Shielded: a transaction under way finishes (or rolls back) whole.
            with anyio.CancelScope(shield=True):
                await self.store.write_block(block, now)
            stored = True
            self.batches += 1
            self.decided += made[0].count
        except AgentdError as exc:
            failure = exc
        except Exception as exc:  # a bug must not strand the waiting clients
            logger.opt(exception=exc).error("gate batch of {} failed", len(batch))
            failure = AgentdError(f"gate failed: {type(exc).__name__}")
        finally:
            # Only a stored decision is ever answered.
            decided = next(iter(made), None)
            answers = decided.answers if decided is not None else [None] * len(batch)
            for p, answer in zip(batch, answers, strict=True):
                if isinstance(answer, AgentdError):
                    p.error = answer  # a refusal: nothing was to be stored for it
                elif stored and answer is not None:
                    p.result = answer
                else:
                    p.error = failure or AgentdError("gate failed: the batch was not stored")
                p.done.set()

    # -- dry run ---------------------------------------------------------------------

    async def check(self, intent: ActionIntent, actor: str) -> dict[str, Any]:
        """Answer what :meth:`submit` would answer now, with no side effect at all.

        The same reads (``read_batch``, from the last committed state) and
        the same decision (:func:`decide_batch`) as a batch of one, with the
        effects dropped: no budget consumed, no intent, idempotency record,
        hand-off or audit record stored. A known id is answered from its stored
        decision, as ``propose`` answers it.

        :raises NotFound: unknown account.
        :raises Conflict: the id already names an intent with other content.
        """
        now = self.clock()
        reads = batch_reads(
            await self.store.gate.read_batch([intent], budget_day(now).isoformat(), now, KEYS)
        )
        decided = decide_batch(
            [(intent, actor)], reads, now=now, policy=self.policy(), approval_ttl=self.approval_ttl
        )
        answer = decided.answers[0]
        if isinstance(answer, AgentdError):
            raise answer
        return {**answer, "dry_run": True, "known_intent": answer["duplicate"]}

    # -- approvals -----------------------------------------------------------------

    async def approve(self, intent_id: str, actor: str, note: str | None) -> dict[str, Any]:
        """Approve a pending intent as ``actor`` and hand it to execution.

        :raises NotFound, BlockedIntent, Expired, InvalidState: with stable codes.
        """
        now = self.clock()
        at = iso(now)
        refused: AgentdError | None = None
        async with self.store.write(now) as tx:
            row = await self._pending_row(tx, intent_id, now)
            if isinstance(row, AgentdError):
                refused = row
            else:
                account = (await tx.gate.accounts_by_id([row.intent.account])).get(
                    row.intent.account
                )
                blocker = approval_blocker(
                    self.policy().guardrails, row.intent, account.stage if account else "prospect"
                )
                if blocker is not None:
                    refused = BlockedIntent(
                        f"intent {intent_id} may not run at all ({blocker}); it cannot be approved",
                        details={"intent_id": intent_id, "reason": str(blocker)},
                    )
                else:
                    idem = (await tx.gate.idempotency_states([intent_id])).get(intent_id)
                    reason, effects = approval_effects(idem)
                    await tx.gate.decide_intent(
                        intent_id, "approved", actor=actor, note=note, approval_source="HUMAN"
                    )
                    rows = []
                    if effects.reserve:
                        rows.append((intent_id, IdempotencyState.RESERVED, at))
                    if effects.publish:
                        await tx.gate.enqueue([(intent_id, "HUMAN", at)])
                        rows.append((intent_id, IdempotencyState.PUBLISHED, at))
                    await tx.gate.set_idempotency(rows)
                    tx.audit(
                        AuditEvent(
                            AuditEventType.PROPOSAL_APPROVED,
                            actor,
                            intent_id,
                            {
                                "approval_source": "HUMAN",
                                "note": note,
                                "reason": str(reason),
                                "handed_off": effects.publish,
                            },
                        )
                    )
            if refused is not None:
                tx.audit(
                    AuditEvent(
                        AuditEventType.APPROVAL_REFUSED,
                        actor,
                        intent_id,
                        {"error": refused.code.name, "message": refused.message},
                    )
                )
        if refused is not None:
            raise refused
        stored = await self.store.gate.get_intent(intent_id)
        assert stored is not None
        return decision_view(stored)

    async def reject(self, intent_id: str, actor: str, reason: str) -> dict[str, Any]:
        """Reject a pending intent as ``actor``.

        :raises NotFound, Expired, InvalidState: with stable codes.
        """
        if not reason.strip():
            raise InvalidArgument(
                "a rejection needs a reason (--reason)", details={"field": "reason"}
            )
        now = self.clock()
        refused: AgentdError | None = None
        async with self.store.write(now) as tx:
            row = await self._pending_row(tx, intent_id, now)
            if isinstance(row, AgentdError):
                refused = row
                tx.audit(
                    AuditEvent(
                        AuditEventType.APPROVAL_REFUSED,
                        actor,
                        intent_id,
                        {"error": row.code.name, "message": row.message},
                    )
                )
            else:
                await tx.gate.decide_intent(intent_id, "rejected", actor=actor, note=reason)
                tx.audit(
                    AuditEvent(
                        AuditEventType.PROPOSAL_REJECTED, actor, intent_id, {"reason": reason}
                    )
                )
        if refused is not None:
            raise refused
        stored = await self.store.gate.get_intent(intent_id)
        assert stored is not None
        return decision_view(stored)

    async def _pending_row(
        self, tx: Transaction, intent_id: str, now: datetime
    ) -> IntentRow | AgentdError:
        row = (await tx.gate.intents_by_id([intent_id])).get(intent_id)
        if row is None:
            raise NotFound(f"no intent {intent_id}", details={"intent_id": intent_id})
        if row.status == IntentStatus.BLOCKED:
            return BlockedIntent(
                f"intent {intent_id} was blocked ({row.outcome.reason}); blocked intents "
                "can never be approved",
                details={"intent_id": intent_id, "reason": str(row.outcome.reason)},
            )
        if row.status == IntentStatus.PENDING and row.expires_at and row.expires_at <= iso(now):
            await self._expire(tx, [row], iso(now))
            return Expired(
                f"intent {intent_id} expired at {row.expires_at} without a decision",
                details={"intent_id": intent_id},
            )
        if row.status != IntentStatus.PENDING:
            who = f" by {row.decided_by}" if row.decided_by else ""
            when = f" at {row.decided_at}" if row.decided_at else ""
            return InvalidState(
                f"intent {intent_id} is {row.status}{who}{when}; only pending intents can be "
                "approved or rejected",
                details={"intent_id": intent_id, "status": row.status},
            )
        return row

    # -- housekeeping -------------------------------------------------------------

    async def _expire(self, tx: Transaction, rows: Sequence[IntentRow], at: str) -> None:
        await tx.gate.expire_intents([r.intent.intent_id for r in rows], at)
        for r in rows:
            tx.audit(
                AuditEvent(
                    AuditEventType.PROPOSAL_EXPIRED,
                    "agentd",
                    r.intent.intent_id,
                    {"expires_at": r.expires_at},
                )
            )

    async def expire_due(self) -> int:
        """Expire pending approvals past their deadline (fail closed); return how many."""
        now = self.clock()
        async with self.store.write(now) as tx:
            due = await tx.gate.due_intents(iso(now))
            rows = list((await tx.gate.intents_by_id(due)).values())
            if rows:
                await self._expire(tx, rows, iso(now))
        if rows:
            logger.info("expired {} pending approvals", len(rows))
        return len(rows)

    async def prune_idempotency(self, retention: timedelta) -> int:
        """Delete published idempotency records older than ``retention``."""
        now = self.clock()
        async with self.store.write(now) as tx:
            count = await tx.gate.prune_idempotency(iso(now - retention))
        return count

    async def recover(self) -> int:
        """Finish hand-offs a crash left RESERVED; return how many."""
        now = self.clock()
        at = iso(now)
        async with self.store.write(now) as tx:
            rows = await tx.gate.reserved_handoffs()
            if rows:
                await tx.gate.enqueue([(r[0], r[1] or "POLICY", at) for r in rows])
                await tx.gate.set_idempotency(
                    [(r[0], IdempotencyState.PUBLISHED, at) for r in rows]
                )
        if rows:
            logger.warning("finished {} hand-offs interrupted by a crash", len(rows))
        return len(rows)
