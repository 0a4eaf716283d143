"""Deciding a batch of submissions: what it reads, what it decides, what it writes.

The store reads every row a batch depends on (the global state, the intents
and idempotency records already stored under its ids, the accounts, today's
budget counters and the goals) in one round trip inside the batch's
transaction (``GateBlock.read_batch``); :func:`batch_reads` parses them.
:func:`decide_batch` then decides each submission in order on those rows and
returns the answers and every effect to write (a ``GateBatchWrites``); it
reads and writes nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.gate import (
    BudgetLedger,
    BudgetUsage,
    Decision,
    GateContext,
    IdempotencyState,
    TrustedMode,
    budget_day,
    evaluate,
)
from agentd.core.goals import GoalFact
from agentd.core.intents import ActionIntent, content_fingerprint
from agentd.core.policy import GatePolicy
from agentd.core.states import IntentStatus
from agentd.core.timefmt import iso
from agentd.errors import AgentdError, Conflict, InvalidArgument, NotFound
from agentd.services.autonomy import AutonomySnapshot, snapshot_from
from agentd.store.records import AccountRow, GateBatchRows, GateBatchWrites, IntentRow, budget_keys

STATUS_FOR = {
    Decision.AUTO_EXECUTE: IntentStatus.APPROVED,
    Decision.REQUIRE_APPROVAL: IntentStatus.PENDING,
    Decision.BLOCKED: IntentStatus.BLOCKED,
}

# The data of every auto-approval's audit record: one object, never written to,
# so the store serialises it once per transaction.
_AUTO_APPROVED_DATA: dict[str, Any] = {
    "approval_source": "POLICY",
    "auto_executed": True,
    "handed_off": True,
}


def gate_context(
    policy: GatePolicy,
    account: AccountRow,
    state: AutonomySnapshot,
    intent: ActionIntent,
    usage: BudgetUsage | None = None,
    goals: Mapping[str, tuple[GoalFact, ...]] | None = None,
) -> GateContext:
    """Return what the pure gate needs to know about ``intent``'s account and the world."""
    tenant = policy.tenant_autonomy.get(intent.tenant, policy.autonomy)
    return GateContext(
        stage=account.stage,
        trusted_mode=TrustedMode(account.trusted_mode),
        account_allowlist=None if account.allowlist is None else frozenset(account.allowlist),
        global_kill_switch=state.kill_switch,
        # Governance's level when it set one, else the tenant's configured level.
        global_level=state.level_override or tenant.level,
        paused_action_types=frozenset(state.paused),
        usage=BudgetUsage() if usage is None else usage,
        goals=() if goals is None else goals.get(intent.tenant, ()),
    )


def check_account(intent: ActionIntent, account: AccountRow | None) -> AccountRow:
    """Return ``intent``'s account.

    :raises NotFound: the account is not known.
    :raises InvalidArgument: the account belongs to another tenant.
    """
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


@dataclass(frozen=True)
class BatchReads:
    """The stored rows a batch's decisions depend on, parsed."""

    state: AutonomySnapshot
    stored: Mapping[str, IntentRow]
    idempotency: Mapping[str, IdempotencyState]
    accounts: Mapping[str, AccountRow]
    counters: Mapping[tuple[str, str], int]
    goals: Mapping[str, tuple[GoalFact, ...]]


def batch_reads(rows: GateBatchRows) -> BatchReads:
    """Return what the stored rows of a batch (``GateBlock.read_batch``) say."""
    return BatchReads(
        state=snapshot_from(rows.meta),
        stored=rows.stored,
        idempotency=rows.idempotency,
        accounts=rows.accounts,
        counters=rows.counters,
        goals=rows.goals,
    )


@dataclass
class Decided:
    """A batch decided: an answer per submission, in order, and the effects to write."""

    answers: list[dict[str, Any] | AgentdError]
    writes: GateBatchWrites
    events: list[AuditEvent]
    count: int  # new decisions (duplicates and refusals aside)


def decide_batch(  # noqa: PLR0915
    items: Sequence[tuple[ActionIntent, str]],
    reads: BatchReads,
    *,
    now: datetime,
    policy: GatePolicy,
    approval_ttl: Callable[[str], timedelta],
) -> Decided:
    """Decide ``items`` (intent, actor) in order, on ``reads``; read and write nothing.

    A known id is answered from its stored decision (finishing a hand-off a
    crash interrupted); an id used for other content, or an unknown account,
    is answered with the error.
    """
    at = iso(now)
    today = budget_day(now)
    day = today.isoformat()
    stored, accounts = reads.stored, reads.accounts
    idem = dict(reads.idempotency)
    counters = dict(reads.counters)
    ledger = BudgetLedger()
    answers: list[dict[str, Any] | AgentdError] = []
    events: list[AuditEvent] = []
    inserts: list[IntentRow] = []
    consumed: list[tuple[str, str, str]] = []
    idem_rows: list[tuple[str, str, str]] = []
    queue_rows: list[tuple[str, str, str]] = []
    touched: dict[tuple[str, str], int] = {}
    decided_here: dict[str, IntentRow] = {}
    for intent, actor in items:
        intent_id = intent.intent_id
        fingerprint = content_fingerprint(intent)
        known = decided_here.get(intent_id) or stored.get(intent_id)
        if known is not None:
            if known.fingerprint != fingerprint:
                answers.append(
                    Conflict(
                        f"intent id {intent_id} already names a different intent; "
                        "an id names one intent (leave --intent-id out to derive one)",
                        details={"intent_id": intent_id},
                    )
                )
                continue
            if idem.get(intent_id) is IdempotencyState.RESERVED:
                # A hand-off a crash interrupted: finish it, consume nothing.
                source = known.approval_source or "POLICY"
                queue_rows.append((intent_id, source, at))
                idem_rows.append((intent_id, IdempotencyState.PUBLISHED, at))
                idem[intent_id] = IdempotencyState.PUBLISHED
            answers.append(decision_view(known, duplicate=True))
            continue
        try:
            account = check_account(intent, accounts.get(intent.account))
        except AgentdError as exc:
            answers.append(exc)
            continue
        t, a, x = budget_keys(intent.tenant, intent.account, intent.action_type)
        ledger.seed(intent, today, BudgetUsage(counters[t], counters[a], counters[x]))
        ctx = gate_context(
            policy, account, reads.state, intent, ledger.usage(intent, today), reads.goals
        )
        outcome = evaluate(intent, policy, ctx)
        if outcome.consume_budget:
            usage = ledger.consume(intent, today)
            counters[t] = touched[t] = usage.tenant
            counters[a] = touched[a] = usage.account
            counters[x] = touched[x] = usage.action_type
            consumed.append((intent_id, day, at))
        # Reserve and publish happen in this one transaction, so only the
        # final state is ever visible: write that one row, not both.
        if outcome.publish:
            queue_rows.append((intent_id, "POLICY", at))
            idem_rows.append((intent_id, IdempotencyState.PUBLISHED, at))
        elif outcome.reserve:
            idem_rows.append((intent_id, IdempotencyState.RESERVED, at))
        status = STATUS_FOR[outcome.decision]
        expires = iso(now + approval_ttl(intent.tenant)) if status == IntentStatus.PENDING else None
        row = IntentRow(
            intent,
            fingerprint,
            outcome,
            status,
            at,
            actor,
            expires,
            None if outcome.approval_source is None else str(outcome.approval_source),
            outcome.auto_executed,
            None,
            None,
            None,
        )
        decided_here[intent_id] = row
        inserts.append(row)
        answers.append(decision_view(row))
        events.extend(_audit_events(row))
    writes = GateBatchWrites(day, inserts, consumed, touched, idem_rows, queue_rows)
    return Decided(answers, writes, events, len(inserts))


def _audit_events(row: IntentRow) -> list[AuditEvent]:
    intent, outcome, actor = row.intent, row.outcome, row.created_by
    summary = {
        "tenant": intent.tenant,
        "account": intent.account,
        "action_type": intent.action_type,
        "decision": str(outcome.decision),
        "reason": str(outcome.reason),
        "risk_level": str(outcome.risk.level),
        "source": str(intent.source),
    }
    events = [AuditEvent(AuditEventType.PROPOSAL_CREATED, actor, intent.intent_id, summary)]
    if outcome.decision is Decision.AUTO_EXECUTE:
        events.append(
            AuditEvent(
                AuditEventType.PROPOSAL_AUTO_APPROVED,
                "agentd",
                intent.intent_id,
                _AUTO_APPROVED_DATA,
            )
        )
    elif outcome.decision is Decision.BLOCKED:
        events.append(
            AuditEvent(
                AuditEventType.PROPOSAL_BLOCKED,
                "agentd",
                intent.intent_id,
                {"reason": str(outcome.reason)},
            )
        )
    return events
