"""The gate as a service: decisions made durable, approvals, expiry.

Concurrent submissions are grouped: one loop takes whatever has queued up
(at most ``gate.max_batch``), decides each intent in order with the pure core
(:func:`agentd.core.gate.evaluate`, a :class:`BudgetLedger` carrying the
budget the earlier ones used), and writes every effect — intents, budget
counters and consumptions, idempotency records, hand-off rows and audit
records — in one transaction. One fsync then covers the whole group, which is
what makes FULL durability affordable. Either the whole group is stored or
none of it, so a crash can never leave budget consumed without its decision.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.gate import (
    AutonomyLevel,
    BudgetLedger,
    BudgetUsage,
    Decision,
    GateContext,
    GateOutcome,
    GatePolicy,
    IdempotencyState,
    TrustedMode,
    approval_blocker,
    approval_effects,
    budget_day,
    evaluate,
)
from agentd.core.intents import ActionIntent, content_fingerprint
from agentd.errors import (
    AgentdError,
    BlockedIntent,
    Conflict,
    Expired,
    InvalidArgument,
    InvalidState,
    NotFound,
)
from agentd.store import gate_sql
from agentd.store.base import Row, Store, Transaction
from agentd.store.gate_sql import AccountRow, IntentRow
from agentd.store.sqlite import iso

# The data of every auto-approval's audit record: one object, never written to,
# so the store serialises it once per transaction.
_AUTO_APPROVED_DATA: dict[str, Any] = {
    "approval_source": "POLICY",
    "auto_executed": True,
    "handed_off": True,
}

STATUS_FOR = {
    Decision.AUTO_EXECUTE: "approved",
    Decision.REQUIRE_APPROVAL: "pending",
    Decision.BLOCKED: "blocked",
}


@dataclass(frozen=True)
class GlobalState:
    """Daemon-wide autonomy state (moved by governance and breakers)."""

    level: AutonomyLevel | None = None  # None: the configured level applies
    kill_switch: bool = False
    paused_action_types: frozenset[str] = frozenset()


_GLOBAL_KEYS = ("autonomy.level", "autonomy.kill_switch", "breakers.paused_action_types")
_GLOBAL_SQL = f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(_GLOBAL_KEYS))})"


async def read_global_state(
    read_all: Callable[[str, Sequence[Any]], Awaitable[Sequence[Row]]],
) -> GlobalState:
    """Read the global state with ``read_all`` (the store's reader, or a transaction's).

    Missing keys mean the defaults.
    """
    return _global_state(await read_all(_GLOBAL_SQL, _GLOBAL_KEYS))


def _global_state(rows: Iterable[Row]) -> GlobalState:
    values = {r[0]: r[1] for r in rows}
    level = values.get("autonomy.level")
    paused = values.get("breakers.paused_action_types")
    return GlobalState(
        level=AutonomyLevel(level) if level else None,
        kill_switch=values.get("autonomy.kill_switch") == "1",
        paused_action_types=frozenset(json.loads(paused)) if paused else frozenset(),
    )


@dataclass
class _Pending:
    intent: ActionIntent
    actor: str
    done: anyio.Event = field(default_factory=anyio.Event)
    result: dict[str, Any] | None = None
    error: AgentdError | None = None


def _context(
    policy: GatePolicy, account: AccountRow, state: GlobalState, intent: ActionIntent
) -> GateContext:
    tenant = policy.for_tenant(intent.tenant)
    return GateContext(
        stage=account.stage,
        trusted_mode=TrustedMode(account.trusted_mode),
        account_allowlist=None if account.allowlist is None else frozenset(account.allowlist),
        global_kill_switch=state.kill_switch,
        global_level=state.level or tenant.autonomy.level,
        paused_action_types=state.paused_action_types,
    )


def _with_usage(base: GateContext, usage: BudgetUsage) -> GateContext:
    # dataclasses.replace, spelt out: it runs for every intent of every batch.
    return GateContext(
        stage=base.stage,
        trusted_mode=base.trusted_mode,
        account_allowlist=base.account_allowlist,
        global_kill_switch=base.global_kill_switch,
        global_level=base.global_level,
        paused_action_types=base.paused_action_types,
        idempotency=base.idempotency,
        usage=usage,
    )


def _check_account(intent: ActionIntent, account: AccountRow | None) -> AccountRow:
    if account is None:
        raise NotFound(
            f"unknown account {intent.account!r}; import it first (agentctl accounts import)",
            details={"field": "account", "account": intent.account},
        )
    if account.tenant != intent.tenant:
        raise InvalidArgument(
            f"account {intent.account!r} belongs to tenant {account.tenant!r}, "
            f"not {intent.tenant!r}",
            details={"field": "tenant", "tenant": intent.tenant},
        )
    return account


def decision_view(row: IntentRow, *, duplicate: bool = False) -> dict[str, Any]:
    """Return what ``propose`` answers for a stored intent."""
    out = row.to_dict()
    out["duplicate"] = duplicate
    return out


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
        """Decide queued submissions in groups until cancelled."""
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
        try:
            with anyio.CancelScope(shield=True):
                await self._write_batch(batch)
        except AgentdError as exc:
            for p in batch:
                if p.result is None and p.error is None:
                    p.error = exc
        except Exception as exc:  # a bug must not strand the waiting clients
            logger.opt(exception=exc).error("gate batch of {} failed", len(batch))
            for p in batch:
                if p.result is None and p.error is None:
                    p.error = AgentdError(f"gate failed: {type(exc).__name__}")
        finally:
            for p in batch:
                if p.error is not None:
                    p.result = None
                p.done.set()

    async def _write_batch(self, batch: list[_Pending]) -> None:
        now = self.clock()
        at = iso(now)
        today = budget_day(now)
        day = today.isoformat()
        policy = self.policy()
        ids = [p.intent.intent_id for p in batch]
        keys = [
            k
            for p in batch
            for k in gate_sql.budget_keys(p.intent.tenant, p.intent.account, p.intent.action_type)
        ]
        # Everything the batch needs to read, sent in one round trip.
        reads = (
            [(_GLOBAL_SQL, _GLOBAL_KEYS)],
            gate_sql.intents_query(ids),
            gate_sql.idempotency_query(ids),
            gate_sql.accounts_query([p.intent.account for p in batch]),
            gate_sql.budget_query(day, keys),
        )
        async with self.store.write(now) as tx:
            rowsets = iter(await tx.fetch_each([q for read in reads for q in read]))
            got = [[next(rowsets) for _ in read] for read in reads]
            state = _global_state(got[0][0])
            stored = gate_sql.intents_found(got[1])
            idem = gate_sql.idempotency_found(got[2])
            accounts = gate_sql.accounts_found(got[3])
            counters = gate_sql.budget_found(keys, got[4])
            ledger = BudgetLedger()
            contexts: dict[str, GateContext] = {}
            inserts: list[tuple[Any, ...]] = []
            consumed: list[tuple[str, str, str]] = []
            idem_rows: list[tuple[str, str, str]] = []
            queue_rows: list[tuple[str, str, str]] = []
            touched: set[tuple[str, str]] = set()
            decided_here: dict[str, IntentRow] = {}
            for p in batch:
                intent = p.intent
                intent_id = intent.intent_id
                fingerprint = content_fingerprint(intent)
                known = decided_here.get(intent_id) or stored.get(intent_id)
                if known is not None:
                    if known.fingerprint != fingerprint:
                        p.error = Conflict(
                            f"intent id {intent_id} already names a different intent; "
                            "an id names one intent (leave --intent-id out to derive one)",
                            details={"intent_id": intent_id},
                        )
                        continue
                    if idem.get(intent_id) is IdempotencyState.RESERVED:
                        # A hand-off a crash interrupted: finish it, consume nothing.
                        source = known.approval_source or "POLICY"
                        queue_rows.append((intent_id, source, at))
                        idem_rows.append((intent_id, IdempotencyState.PUBLISHED, at))
                        idem[intent_id] = IdempotencyState.PUBLISHED
                    p.result = decision_view(known, duplicate=True)
                    continue
                try:
                    account = _check_account(intent, accounts.get(intent.account))
                except AgentdError as exc:
                    p.error = exc
                    continue
                t, a, x = gate_sql.budget_keys(intent.tenant, intent.account, intent.action_type)
                ledger.seed(intent, today, BudgetUsage(counters[t], counters[a], counters[x]))
                base = contexts.get(account.id)
                if base is None:
                    base = contexts[account.id] = _context(policy, account, state, intent)
                outcome = evaluate(intent, policy, _with_usage(base, ledger.usage(intent, today)))
                if outcome.consume_budget:
                    usage = ledger.consume(intent, today)
                    counters[t], counters[a], counters[x] = (
                        usage.tenant,
                        usage.account,
                        usage.action_type,
                    )
                    touched.update((t, a, x))
                    consumed.append((intent_id, day, at))
                # Reserve and publish happen in this one transaction, so only the
                # final state is ever visible: write that one row, not both.
                if outcome.publish:
                    queue_rows.append((intent_id, "POLICY", at))
                    idem_rows.append((intent_id, IdempotencyState.PUBLISHED, at))
                elif outcome.reserve:
                    idem_rows.append((intent_id, IdempotencyState.RESERVED, at))
                status = STATUS_FOR[outcome.decision]
                expires = (
                    iso(now + self.approval_ttl(intent.tenant)) if status == "pending" else None
                )
                inserts.append(
                    gate_sql.intent_insert_row(
                        intent,
                        fingerprint,
                        outcome,
                        status=status,
                        created_at=at,
                        created_by=p.actor,
                        expires_at=expires,
                        outcome_json=outcome.to_json(),
                    )
                )
                row = IntentRow(
                    intent,
                    fingerprint,
                    outcome,
                    status,
                    at,
                    p.actor,
                    expires,
                    None if outcome.approval_source is None else str(outcome.approval_source),
                    outcome.auto_executed,
                    None,
                    None,
                    None,
                )
                decided_here[intent_id] = row
                p.result = decision_view(row)
                self._audit_decision(tx, row, p.actor)
            # Every effect of the batch, sent in one round trip.
            writes: list[tuple[str, Sequence[tuple[Any, ...]]]] = []
            if inserts:
                writes.append((gate_sql.INSERT_INTENT, inserts))
            if consumed:
                writes.append((gate_sql.RECORD_CONSUMPTION, consumed))
                budget = {k: counters[k] for k in touched}
                writes.append((gate_sql.WRITE_BUDGET, gate_sql.budget_rows(day, budget)))
            if idem_rows:
                writes.append((gate_sql.SET_IDEMPOTENCY, idem_rows))
            if queue_rows:
                writes.append((gate_sql.ENQUEUE, queue_rows))
            if writes:
                await tx.execute_each(writes)
        self.batches += 1
        self.decided += len(inserts)

    @staticmethod
    def _audit_decision(tx: Transaction, row: IntentRow, actor: str) -> None:
        intent, outcome = row.intent, row.outcome
        summary = {
            "tenant": intent.tenant,
            "account": intent.account,
            "action_type": intent.action_type,
            "decision": str(outcome.decision),
            "reason": str(outcome.reason),
            "risk_level": str(outcome.risk.level),
            "source": str(intent.source),
        }
        tx.audit(AuditEvent(AuditEventType.PROPOSAL_CREATED, actor, intent.intent_id, summary))
        if outcome.decision is Decision.AUTO_EXECUTE:
            tx.audit(
                AuditEvent(
                    AuditEventType.PROPOSAL_AUTO_APPROVED,
                    "agentd",
                    intent.intent_id,
                    _AUTO_APPROVED_DATA,
                )
            )
        elif outcome.decision is Decision.BLOCKED:
            tx.audit(
                AuditEvent(
                    AuditEventType.PROPOSAL_BLOCKED,
                    "agentd",
                    intent.intent_id,
                    {"reason": str(outcome.reason)},
                )
            )

    # -- dry run ---------------------------------------------------------------------

    async def check(self, intent: ActionIntent) -> dict[str, Any]:
        """Answer what the gate would decide now, with no side effect at all."""
        now = self.clock()
        policy = self.policy()
        account = _check_account(intent, await gate_sql.get_account(self.store, intent.account))
        state = await read_global_state(self.store.read_all)
        existing = await gate_sql.get_intent(self.store, intent.intent_id)
        day = budget_day(now).isoformat()
        t, a, x = gate_sql.budget_keys(intent.tenant, intent.account, intent.action_type)
        usage = {}
        for scope, key in (t, a, x):
            row = await self.store.read_one(
                "SELECT used FROM budget_usage WHERE day = ? AND scope = ? AND key = ?",
                (day, scope, key),
            )
            usage[(scope, key)] = int(row[0]) if row else 0
        idem_row = await self.store.read_one(
            "SELECT state FROM idempotency WHERE intent_id = ?", (intent.intent_id,)
        )
        ctx = replace(
            _context(policy, account, state, intent),
            usage=BudgetUsage(usage[t], usage[a], usage[x]),
            idempotency=IdempotencyState(idem_row[0]) if idem_row else None,
        )
        outcome = evaluate(intent, policy, ctx)
        return {
            **_outcome_view(intent, outcome),
            "dry_run": True,
            "known_intent": existing is not None,
        }

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
                account = (await gate_sql.accounts_by_id(tx, [row.intent.account])).get(
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
                    idem = (await gate_sql.idempotency_states(tx, [intent_id])).get(intent_id)
                    reason, effects = approval_effects(idem)
                    await tx.execute(
                        "UPDATE intents SET status = 'approved', approval_source = ?, "
                        "auto_executed = ?, decided_by = ?, decided_at = ?, decision_note = ?, "
                        "updated_at = ? WHERE id = ?",
                        ("HUMAN", 0, actor, at, note, at, intent_id),
                    )
                    rows = []
                    if effects.reserve:
                        rows.append((intent_id, IdempotencyState.RESERVED, at))
                    if effects.publish:
                        await gate_sql.enqueue(tx, [(intent_id, "HUMAN", at)])
                        rows.append((intent_id, IdempotencyState.PUBLISHED, at))
                    await gate_sql.set_idempotency(tx, rows)
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
        stored = await gate_sql.get_intent(self.store, intent_id)
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
        at = iso(now)
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
                await tx.execute(
                    "UPDATE intents SET status = 'rejected', decided_by = ?, decided_at = ?, "
                    "decision_note = ?, updated_at = ? WHERE id = ?",
                    (actor, at, reason, at, intent_id),
                )
                tx.audit(
                    AuditEvent(
                        AuditEventType.PROPOSAL_REJECTED, actor, intent_id, {"reason": reason}
                    )
                )
        if refused is not None:
            raise refused
        stored = await gate_sql.get_intent(self.store, intent_id)
        assert stored is not None
        return decision_view(stored)

    async def _pending_row(
        self, tx: Transaction, intent_id: str, now: datetime
    ) -> IntentRow | AgentdError:
        row = (await gate_sql.intents_by_id(tx, [intent_id])).get(intent_id)
        if row is None:
            raise NotFound(f"no intent {intent_id}", details={"intent_id": intent_id})
        if row.status == "blocked":
            return BlockedIntent(
                f"intent {intent_id} was blocked ({row.outcome.reason}); blocked intents "
                "can never be approved",
                details={"intent_id": intent_id, "reason": str(row.outcome.reason)},
            )
        if row.status == "pending" and row.expires_at and row.expires_at <= iso(now):
            await self._expire(tx, [row], iso(now))
            return Expired(
                f"intent {intent_id} expired at {row.expires_at} without a decision",
                details={"intent_id": intent_id},
            )
        if row.status != "pending":
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
        await tx.executemany(
            "UPDATE intents SET status = 'expired', decided_by = 'agentd', decided_at = ?, "
            "decision_note = 'approval expired', updated_at = ? "
            "WHERE id = ? AND status = 'pending'",
            [(at, at, r.intent.intent_id) for r in rows],
        )
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
            due = await tx.fetchall(
                "SELECT id FROM intents WHERE status = 'pending' AND expires_at <= ?", (iso(now),)
            )
            rows = list((await gate_sql.intents_by_id(tx, [r[0] for r in due])).values())
            if rows:
                await self._expire(tx, rows, iso(now))
        if rows:
            logger.info("expired {} pending approvals", len(rows))
        return len(rows)

    async def prune_idempotency(self, retention: timedelta) -> int:
        """Delete published idempotency records older than ``retention``."""
        now = self.clock()
        async with self.store.write(now) as tx:
            cur = await tx.execute(
                "DELETE FROM idempotency WHERE state = 'PUBLISHED' AND updated_at < ?",
                (iso(now - retention),),
            )
            count = cur.rowcount
        return int(count or 0)

    async def recover(self) -> int:
        """Finish hand-offs a crash left RESERVED; return how many."""
        now = self.clock()
        at = iso(now)
        async with self.store.write(now) as tx:
            rows = await tx.fetchall(
                "SELECT d.intent_id, i.approval_source FROM idempotency d "
                "JOIN intents i ON i.id = d.intent_id WHERE d.state = 'RESERVED'"
            )
            if rows:
                await gate_sql.enqueue(tx, [(r[0], r[1] or "POLICY", at) for r in rows])
                await gate_sql.set_idempotency(
                    tx, [(r[0], IdempotencyState.PUBLISHED, at) for r in rows]
                )
        if rows:
            logger.warning("finished {} hand-offs interrupted by a crash", len(rows))
        return len(rows)


def _outcome_view(intent: ActionIntent, outcome: GateOutcome) -> dict[str, Any]:
    return {
        "intent_id": intent.intent_id,
        "tenant": intent.tenant,
        "account": intent.account,
        "action_type": intent.action_type,
        "decision": str(outcome.decision),
        "reason": str(outcome.reason),
        "message": outcome.message,
        "tier": str(outcome.tier),
        "risk_level": str(outcome.risk.level),
        "approval_source": None
        if outcome.approval_source is None
        else str(outcome.approval_source),
        "auto_executed": outcome.auto_executed,
        "trace": [entry.to_dict() for entry in outcome.trace],
    }
