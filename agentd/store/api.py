"""What a store keeps, as operations: one protocol per area, no SQL.

Every service speaks to the store through these (``store.ops.get_operation(id)``
for the last committed state, ``tx.ops.get_operation(id)`` inside ``async with
store.write() as tx``). A store implements each area twice over one reader:
the read protocol on its committed state, and the records protocol (reads
plus writes) on a transaction. ``tests/conformance/`` holds every store to
these contracts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from agentd.core.agent_mode import Spend
from agentd.core.digest import (
    BlockedItem,
    BreakerEvent,
    DecisionItem,
    ExecutedItem,
    FailedExecution,
    FailedOperation,
    FailedTask,
    HandoffLine,
    PendingItem,
    RollbackItem,
)
from agentd.core.gate import IdempotencyState
from agentd.core.goals import Goal, GoalFact
from agentd.core.governance import ActionStats
from agentd.core.intents import ActionIntent
from agentd.core.interactions import (
    CompactInteraction,
    Interaction,
)
from agentd.core.metrics import MetricCounts
from agentd.core.patterns import Pattern
from agentd.store.records import (
    AccountRow,
    AttestationRow,
    ConsentRow,
    ExecutionRow,
    GateBatchRows,
    GateBatchWrites,
    GoalRow,
    IncidentRow,
    IntentRow,
    OperationRow,
    ProposalRow,
    StepRow,
    TokenRow,
    TripRow,
)

T = TypeVar("T")


class GateReads(Protocol):
    """The gate: the reads.

    The reads of the gate: accounts, intents, budgets, idempotency and the hand-off queue. On
    the store they read the last committed state; on a transaction they see its own writes.
    """

    async def accounts_by_id(self, ids: Sequence[str]) -> dict[str, AccountRow]:
        """Return the accounts among ``ids`` that exist."""
        ...

    async def read_batch(
        self,
        intents: Sequence[ActionIntent],
        day: str,
        now: datetime,
        meta_keys: Sequence[str],
    ) -> GateBatchRows:
        """Return what the decisions of ``intents`` on budget day ``day`` depend on.

        The gate block's reads (:meth:`GateBlock.read_batch`), for a dry run.
        """
        ...

    async def list_accounts(
        self, *, tenant: str | None = None, limit: int = 1000, offset: int = 0
    ) -> list[AccountRow]:
        """Return accounts ordered by tenant and id."""
        ...

    async def get_account(self, account_id: str) -> AccountRow | None:
        """Return one account or None."""
        ...

    async def intents_by_id(self, ids: Sequence[str]) -> dict[str, IntentRow]:
        """Return the stored intents among ``ids`` that exist."""
        ...

    async def get_intent(self, intent_id: str) -> IntentRow | None:
        """Return one stored intent or None."""
        ...

    async def list_intents(
        self, *, status: str | None = None, tenant: str | None = None, limit: int = 200
    ) -> list[IntentRow]:
        """Return intents, newest first."""
        ...

    async def idempotency_states(self, ids: Sequence[str]) -> dict[str, IdempotencyState]:
        """Return the idempotency state of each intent among ``ids`` that has one."""
        ...

    async def list_queue(
        self, *, state: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Return hand-off queue rows with their intents' summaries, oldest first."""
        ...

    async def intent_status(self, intent_id: str) -> str | None:
        """Return an intent's status, or None when there is no such intent."""
        ...

    async def due_intents(self, at: str) -> list[str]:
        """Return the pending intents whose approval deadline is ``at`` or earlier."""
        ...

    async def budget_used(
        self, day: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """Return the counters of ``keys`` on ``day`` (missing ones are 0)."""
        ...

    async def reserved_handoffs(self) -> list[tuple[str, str | None]]:
        """Return (intent_id, approval_source) of the hand-offs left RESERVED."""
        ...

    async def queue_entry(self, intent_id: str) -> dict[str, Any] | None:
        """Return an intent's hand-off (``enqueued_at``, ``state``), or None."""
        ...

    async def gate_goals(
        self, intents: Sequence[ActionIntent], now: datetime
    ) -> dict[str, tuple[GoalFact, ...]]:
        """Return the goals the gate shows for ``intents`` by tenant, with their verdicts."""
        ...


class GateRecords(GateReads, Protocol):
    """The gate: the reads and the writes, inside a write transaction."""

    async def upsert_accounts(self, rows: Iterable[dict[str, Any]], now: str) -> None:
        """Insert or update accounts from validated import rows."""
        ...

    async def update_account(self, account_id: str, changes: dict[str, Any], now: str) -> None:
        """Set columns of one account (names come from the caller, never the client)."""
        ...

    async def set_idempotency(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Upsert (intent_id, state, at) idempotency records."""
        ...

    async def enqueue(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Hand (intent_id, approval_source, at) to execution; a second hand-off is a no-op."""
        ...

    async def decide_intent(
        self,
        intent_id: str,
        status: str,
        *,
        actor: str,
        note: str | None,
        approval_source: str | None = None,
    ) -> None:
        """Record a person's decision on an intent (approved or rejected) at the tx's time."""
        ...

    async def expire_intents(self, ids: Sequence[str], at: str) -> None:
        """Expire the pending intents among ``ids`` (decided by agentd at ``at``)."""
        ...

    async def prune_idempotency(self, before: str) -> int:
        """Delete published idempotency records last updated before ``before``; count them."""
        ...


class ExecutionReads(Protocol):
    """Executions: the reads.

    The reads of executions, the execution queue, rollback tokens and incidents. On the store
    they read the last committed state; on a transaction they see its own writes.
    """

    async def get_execution(self, exe_id: str) -> ExecutionRow | None:
        """Return one execution or None."""
        ...

    async def list_executions(
        self, *, state: str | None = None, limit: int = 200
    ) -> list[ExecutionRow]:
        """Return executions, newest first."""
        ...

    async def executions_in_state(self, states: Sequence[str]) -> list[ExecutionRow]:
        """Return executions in any of ``states``, oldest first."""
        ...

    async def count_started(self, tenant: str, start: str, end: str) -> int:
        """Count the tenant's change executions started in ``[start, end)`` (the daily limit)."""
        ...

    async def queued_intents(self, limit: int) -> list[dict[str, Any]]:
        """Return queued hand-offs with their intents, oldest first.

        Each: ``intent_id``, ``approval_source``, ``tenant``, ``account``,
        ``action_type``, ``domain``, ``change_type``, ``diff`` (an object),
        ``rationale``, ``status`` and ``risk_level``.
        """
        ...

    async def get_token(self, token: str) -> TokenRow | None:
        """Return one token or None."""
        ...

    async def token_for_execution(self, exe_id: str) -> TokenRow | None:
        """Return the token of an execution, or None."""
        ...

    async def list_tokens(self, limit: int = 500) -> list[TokenRow]:
        """Return rollback tokens, newest first."""
        ...

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        """Return one incident or None."""
        ...

    async def list_incidents(
        self, *, status: str | None = None, limit: int = 200
    ) -> list[IncidentRow]:
        """Return incidents, newest first."""
        ...

    async def has_incident(self, ref: str) -> bool:
        """Return whether an incident refers to ``ref`` (an execution id)."""
        ...

    async def rollbacks_of(self, exe_id: str) -> list[str]:
        """Return the ids of the executions that roll ``exe_id`` back, oldest first."""
        ...

    async def change_ids_by_executor(
        self, executor: str, states: Sequence[str], limit: int
    ) -> list[str]:
        """Return the change executions of ``executor`` in ``states``, newest first."""
        ...

    async def changes_of_intents(self, intent_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return each intent's change execution (``id``, ``state``, ``reason``, ``detail``)."""
        ...


class ExecutionRecords(ExecutionReads, Protocol):
    """Executions: the reads and the writes, inside a write transaction."""

    async def insert_execution(self, values: dict[str, Any]) -> None:
        """Insert an execution (JSON columns as Python objects)."""
        ...

    async def update_execution(self, exe_id: str, changes: dict[str, Any]) -> None:
        """Set columns of one execution (column names come from the caller, never a client)."""
        ...

    async def mark_queue(self, intent_id: str, state: str) -> None:
        """Move a hand-off row to ``state`` (taken: an execution row now owns it)."""
        ...

    async def claim_queued(self, limit: int) -> list[dict[str, Any]]:
        """Return queued hand-offs as :meth:`queued_intents` does, claimed for this transaction.

        Another daemon's claim skips them until this transaction ends (by
        which time they are ``taken``, or queued again after a rollback).
        """
        ...

    async def claim_executions(
        self, states: Sequence[str], *, owner: str, mine: str, until: str
    ) -> list[ExecutionRow]:
        """Lease to ``owner`` until ``until`` the executions in ``states`` no live runner holds.

        Free: no lease, an expired one (at the transaction's time), ``owner``'s
        own, or one held by a runner id that starts with ``mine`` (this
        daemon's earlier process; ``""`` when one daemon holds every lease).
        Return them, oldest first, as they were before this claim (their
        ``lease_owner``: who held them). Rows another daemon's transaction is
        claiming at the same time are passed over.
        """
        ...

    async def renew_leases(self, ids: Sequence[str], *, owner: str, until: str) -> set[str]:
        """Extend ``owner``'s leases on ``ids`` to ``until``; return the ids it still held."""
        ...

    async def release_lease(self, exe_id: str, *, owner: str) -> bool:
        """Give up ``owner``'s lease on an execution; return whether it held it."""
        ...

    async def insert_token(self, values: dict[str, Any]) -> None:
        """Insert a rollback token."""
        ...

    async def update_token(self, token: str, changes: dict[str, Any]) -> None:
        """Set columns of one token."""
        ...

    async def insert_incident(self, values: dict[str, Any]) -> None:
        """Insert an incident."""
        ...

    async def update_incident(self, incident_id: str, changes: dict[str, Any]) -> None:
        """Set columns of one incident."""
        ...


class OperationReads(Protocol):
    """Browser operations: the reads.

    The reads of browser operations, their steps, consents and sealed secrets. On the store they
    read the last committed state; on a transaction they see its own writes.
    """

    async def get_operation(self, op_id: str) -> OperationRow | None:
        """Return one operation or None."""
        ...

    async def list_operations(
        self, *, state: str | None = None, limit: int = 200
    ) -> list[OperationRow]:
        """Return operations, newest first."""
        ...

    async def operations_in_state(self, states: Sequence[str]) -> list[OperationRow]:
        """Return the operations in any of ``states``, oldest first."""
        ...

    async def planned_commits(self, op_id: str, attempt: int) -> list[int]:
        """Return the steps of an attempt that the planner turned into a click or press."""
        ...

    async def list_steps(self, op_id: str, after_seq: int = 0) -> list[StepRow]:
        """Return an operation's step rows after ``after_seq``, in order."""
        ...

    async def active_consent(self, account: str, service: str, workflow: str) -> ConsentRow | None:
        """Return the consent in force for a workflow (its own, else the account's ``*``)."""
        ...

    async def list_consents(self, account: str | None = None) -> list[ConsentRow]:
        """Return consents (active and revoked), by account, service and operation."""
        ...

    async def secret_blobs(
        self, account: str, service: str, names: Sequence[str]
    ) -> dict[str, bytes]:
        """Return the sealed blobs among ``names`` that exist."""
        ...

    async def list_secrets(self, account: str | None = None) -> list[dict[str, Any]]:
        """Return secret names and metadata, never values."""
        ...

    async def secrets_by_key(self) -> dict[str, int]:
        """Return how many secrets each key sealed (by key fingerprint), most first."""
        ...

    async def latest_operation_id(self, execution_id: str, workflow: str) -> str | None:
        """Return the last operation an execution started for ``workflow``, or None."""
        ...

    async def day_spend(self, day: str) -> Spend:
        """Return what every operation's model calls spent on a UTC day (YYYY-MM-DD)."""
        ...

    async def secret_names(self, account: str, service: str) -> list[str]:
        """Return the names of an account's secrets for a service."""
        ...


class OperationRecords(OperationReads, Protocol):
    """Browser operations: the reads and the writes, inside a write transaction."""

    async def add_spend(self, op_id: str, day: str, spend: Spend) -> None:
        """Add one model call's spend to its operation and to the day's total."""
        ...

    async def insert_operation(self, values: dict[str, Any]) -> None:
        """Insert a new operation (``params`` and ``result`` as Python objects)."""
        ...

    async def claim_pending(self, limit: int) -> list[OperationRow]:
        """Return up to ``limit`` pending operations, oldest first, claimed for this transaction.

        Another daemon's claim skips them until this transaction ends (by
        which time this one has started them, or left them pending).
        """
        ...

    async def orphaned_operations(
        self, states: Sequence[str], *, owner: str, mine: str
    ) -> list[OperationRow]:
        """Return the operations in ``states`` whose runner is gone, claimed for this transaction.

        Gone: no lease, an expired one (at the transaction's time), or one held
        by a runner id other than ``owner`` that starts with ``mine`` (this
        daemon's earlier process; ``""`` when one daemon runs every operation).
        """
        ...

    async def update_operation(self, op_id: str, changes: dict[str, Any]) -> None:
        """Set columns of one operation (column names come from the caller, never a client)."""
        ...

    async def insert_steps(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append step rows of one operation (all with the same columns), in order."""
        ...

    async def upsert_consent(
        self,
        account: str,
        service: str,
        operation: str,
        permissions: Sequence[str],
        actor: str,
    ) -> ConsentRow:
        """Grant (or re-grant) a consent; every grant bumps its version."""
        ...

    async def revoke_consent(
        self, account: str, service: str, operation: str, actor: str
    ) -> ConsentRow | None:
        """Revoke an active consent; return it, or None when there was none in force."""
        ...

    async def upsert_secret(
        self,
        account: str,
        service: str,
        name: str,
        blob: bytes,
        fingerprint: str,
        actor: str,
    ) -> bool:
        """Store a sealed secret; return True when it replaced an existing one."""
        ...

    async def delete_secret(self, account: str, service: str, name: str) -> bool:
        """Delete a secret; return whether there was one."""
        ...


class GovernanceReads(Protocol):
    """Governance: the reads.

    The reads of governance: global state, breaker trips, attestations, scope proposals,
    metrics. On the store they read the last committed state; on a transaction they see its own
    writes.
    """

    async def read_meta(self, keys: Sequence[str]) -> dict[str, str]:
        """Return the values of ``keys`` that are set."""
        ...

    async def open_trips(self) -> list[TripRow]:
        """Return the trips not yet reset, oldest first."""
        ...

    async def trips_between(self, start: datetime, end: datetime) -> list[TripRow]:
        """Return trips made in ``[start, end)``, oldest first."""
        ...

    async def recent_trips(self, limit: int) -> list[TripRow]:
        """Return the latest trips, newest first."""
        ...

    async def list_attestations(self, limit: int = 1000) -> list[AttestationRow]:
        """Return attestations, newest first."""
        ...

    async def get_proposal(self, proposal_id: str) -> ProposalRow | None:
        """Return one proposal or None."""
        ...

    async def pending_proposal(self) -> ProposalRow | None:
        """Return the proposal waiting for approval, if any."""
        ...

    async def list_proposals(
        self, status: str | None = None, limit: int = 200
    ) -> list[ProposalRow]:
        """Return proposals, newest first."""
        ...

    async def metric_counts(self, start: datetime | None, end: datetime | None) -> MetricCounts:
        """Count what happened in ``[start, end)`` (None: since the store began / until now).

        Intents by creation time and how they ended; executions by when they
        finished, ``rolled_back`` being those later undone by a successful rollback;
        incidents by creation time; safety events from the audit trail and the
        gate's reasons.
        """
        ...

    async def human_action_stats(self, start: datetime, end: datetime) -> dict[str, ActionStats]:
        """Return, per action type, how human-approved change executions finished in the period."""
        ...

    async def last_rollback_at(self) -> str | None:
        """Return when a rollback last succeeded."""
        ...

    async def first_audit_at(self) -> str | None:
        """Return the time of the first audit record (when the store began)."""
        ...

    async def recent_outcomes(self, since: datetime) -> list[tuple[str, str, str, bool]]:
        """Return ``(at, kind, action_type, autonomous)`` of outcomes after ``since``, oldest first.

        Kinds: ``succeeded`` and ``failed`` (change executions), ``rolled_back``
        (successful rollbacks, autonomous when the change they undid was). Used to
        rebuild the breakers' windows on start-up.
        """
        ...

    async def recent_incidents(self, since: datetime) -> list[tuple[str, str, bool]]:
        """Return ``(created_at, severity, autonomous)`` of incidents after ``since`` not raised
        by breakers."""
        ...

    async def critical_autonomous_incidents(self, start: datetime, end: datetime) -> int:
        """Count critical incidents from autonomous actions created in ``[start, end)``."""
        ...


class GovernanceRecords(GovernanceReads, Protocol):
    """Governance: the reads and the writes, inside a write transaction."""

    async def set_meta(self, key: str, value: str) -> None:
        """Set one meta value in ``tx``."""
        ...

    async def insert_trip(self, values: dict[str, Any]) -> None:
        """Insert a trip."""
        ...

    async def reset_trips(self, ids: Iterable[str], at: datetime, by: str, reason: str) -> None:
        """Mark trips reset."""
        ...

    async def insert_attestation(self, values: dict[str, Any]) -> None:
        """Insert an attestation."""
        ...

    async def insert_proposal(self, values: dict[str, Any]) -> None:
        """Insert a proposal (JSON columns as Python objects)."""
        ...

    async def update_proposal(self, proposal_id: str, changes: dict[str, Any]) -> None:
        """Set columns of one proposal (column names come from the caller, never a client)."""
        ...


class ProactiveReads(Protocol):
    """The proactive side: the reads.

    The reads of the proactive side: interactions, patterns, goals, task runs, summaries. On the
    store they read the last committed state; on a transaction they see its own writes.
    """

    async def scan_histories(
        self,
        since: float,
        keys_since: str,
        work: Callable[[set[str], Iterator[tuple[str, list[CompactInteraction]]]], T],
    ) -> T:
        """Run ``work`` on a worker thread over the interaction histories; return its result.

        ``work`` gets the keys of patterns detected at or after ``keys_since`` and
        an iterator of ``(account, interactions sorted by time)`` for the accounts
        active since ``since`` (epoch seconds), one account at a time. It reads
        the last committed state on a connection of its own, so neither the
        event loop nor the writer waits for the scan.
        """
        ...

    async def recent_patterns(self, account: str, limit: int) -> list[Pattern]:
        """Return an account's patterns, newest first."""
        ...

    async def patterns_between(self, lo: str, hi: str, limit: int) -> tuple[list[Pattern], int]:
        """Return the patterns detected in ``[lo, hi)``, newest first, and how many there were."""
        ...

    async def account_ids(self) -> set[str]:
        """Return the ids of every known account."""
        ...

    async def account_tenants(self, accounts: Iterable[str]) -> dict[str, str]:
        """Return ``{account: tenant}`` for the given accounts that exist."""
        ...

    async def unplanned_patterns(self, limit: int) -> list[Pattern]:
        """Return patterns not yet planned for, oldest first."""
        ...

    async def list_patterns(
        self, *, account: str | None, since: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Return stored patterns, newest first."""
        ...

    async def get_goal(self, goal_id: str) -> GoalRow | None:
        """Return one goal, or None."""
        ...

    async def list_goals(self, *, include_final: bool, tenant: str | None = None) -> list[GoalRow]:
        """Return goals (active only unless ``include_final``), by tenant and end."""
        ...

    async def metric_counts(self, tenant: str, since: datetime, until: datetime) -> dict[str, Any]:
        """Return the raw counts behind :class:`~agentd.core.goals.MetricFacts`."""
        ...

    async def candidate_rows(
        self, tenants: Sequence[str]
    ) -> list[tuple[str, str, str, float | None]]:
        """Return ``(tenant, id, stage, last interaction epoch)`` of the tenants' open accounts."""
        ...

    async def recent_contacts(
        self, accounts: Sequence[str], action_types: Iterable[str], since: datetime
    ) -> list[tuple[str, str, str, bool, datetime | None]]:
        """Return ``(tenant, account, action type, open, reached_at)`` of the accounts' contacts.

        Intents of ``action_types`` that are still open (pending; approved and not
        finished: queued, running or handed off), or whose execution finished
        (succeeded or failed) at or after ``since``.
        """
        ...

    async def intent_ids_known(self, ids: Sequence[str]) -> set[str]:
        """Return which of ``ids`` already name a stored intent."""
        ...

    async def task_runs(self) -> dict[str, dict[str, Any]]:
        """Return every task's stored run record (column name to value) by name."""
        ...

    async def stale_accounts(self, *, since: float, refresh_before: str, limit: int) -> list[str]:
        """Return accounts active since ``since`` whose summary is missing or out of date.

        Out of date: an interaction newer than the one the summary covered, or a
        summary generated before ``refresh_before``.
        """
        ...

    async def recent_interactions(self, account: str, since: float) -> list[Interaction]:
        """Return an account's interactions since ``since``, oldest first."""
        ...

    async def get_summary(self, account: str) -> dict[str, Any] | None:
        """Return an account's stored summary, or None."""
        ...


class ProactiveRecords(ProactiveReads, Protocol):
    """The proactive side: the reads and the writes, inside a write transaction."""

    async def insert_interactions(self, items: Sequence[Interaction], imported_at: str) -> int:
        """Store interactions; one already stored (same account and id) is skipped.

        Return how many were new.
        """
        ...

    async def insert_patterns(self, patterns: Sequence[Pattern]) -> None:
        """Store new patterns; a key already stored is left as it is."""
        ...

    async def mark_planned(self, keys: Sequence[str], at: str) -> None:
        """Record that these patterns were planned for."""
        ...

    async def insert_goal(self, goal: Goal, actor: str) -> None:
        """Store a new goal."""
        ...

    async def write_progress(self, rows: Sequence[tuple[str, str, float, str]]) -> None:
        """Store ``(goal id, status, current, verdict)`` as of the transaction's time."""
        ...

    async def record_task_run(
        self, name: str, started: datetime, *, ok: bool, detail: str | None
    ) -> None:
        """Record a finished run of a task (its start is what schedules the next one).

        A claim on the task (:meth:`claim_task_run`) ends with it.
        """
        ...

    async def claim_task_run(
        self, name: str, *, owner: str, due_before: datetime, until: datetime
    ) -> bool:
        """Claim the run of a task starting at the transaction's time for ``owner``.

        Refused (False) while another claim holds it (until its ``until``), or
        when a run started after ``due_before`` (this interval's run has been
        done, or is being done, by whichever daemon ticked first).
        """
        ...

    async def upsert_summary(
        self,
        account: str,
        summary: str,
        *,
        method: str,
        count: int,
        last_at: float | None,
        fallback_reason: str | None,
    ) -> None:
        """Store an account's summary, replacing the previous one."""
        ...


class DigestReads(Protocol):
    """The daily digest's reads over a day of the audit trail and the tables: the reads.

    The reads of the daily digest's reads over a day of the audit trail and the tables. On the
    store they read the last committed state; on a transaction they see its own writes.
    """

    async def first_audit_at(self) -> datetime | None:
        """Return when the store's first audit record was written (the daemon's first start)."""
        ...

    async def autonomous_succeeded(
        self, lo: str, hi: str, limit: int
    ) -> tuple[list[ExecutedItem], int]:
        """Return autonomous change executions that succeeded in the day."""
        ...

    async def failed_executions(
        self, lo: str, hi: str, limit: int
    ) -> tuple[list[FailedExecution], int, int]:
        """Return change executions that failed or were refused in the day.

        Returns the rows, their total, and how many of the total were autonomous.
        """
        ...

    async def handoffs(self, lo: str, hi: str, limit: int) -> tuple[list[HandoffLine], int, int]:
        """Return the hand-offs to a person made in the day, and where each stands now.

        Returns the rows, their total, and how many of the total are still open.
        """
        ...

    async def rollbacks(self, lo: str, hi: str, limit: int) -> tuple[list[RollbackItem], int]:
        """Return the undos asked for in the day: rolled back, failed, escalated or refused."""
        ...

    async def decisions(self, lo: str, hi: str, limit: int) -> tuple[list[DecisionItem], int, int]:
        """Return people's approvals and rejections of intents in the day.

        Returns the rows, their total, and how many of the total were approvals.
        """
        ...

    async def breaker_events(self, lo: str, hi: str, limit: int) -> tuple[list[BreakerEvent], int]:
        """Return breaker trips and resets in the day."""
        ...

    async def failed_tasks(self, lo: str, hi: str, limit: int) -> tuple[list[FailedTask], int]:
        """Return scheduled task runs that failed in the day."""
        ...

    async def blocked(self, lo: str, hi: str, limit: int) -> tuple[list[BlockedItem], int]:
        """Return intents the gate blocked in the day."""
        ...

    async def pending(self, hi: str, limit: int) -> tuple[list[PendingItem], int]:
        """Return intents created before the day's end still waiting for approval, oldest first."""
        ...

    async def failed_operations(
        self, lo: str, hi: str, limit: int
    ) -> tuple[list[FailedOperation], int]:
        """Return browser operations that failed in the day, with the failing step's screenshot.

        The failing step is the operation's last step recorded as failed or
        refused; when it has no screenshot, the page as the operation ended (its
        final screenshot) stands in.
        """
        ...


class GateBlock(Protocol):
    """The gate batch's read and write, for plain code on the store's own thread.

    A :class:`~agentd.store.base.BlockTransaction` offers these: the batch
    reads what its decisions depend on, decides (pure computation), and writes
    the effects, in one transaction and one hand-off.
    """

    def read_batch(
        self,
        intents: Sequence[ActionIntent],
        day: str,
        now: datetime,
        meta_keys: Sequence[str],
    ) -> GateBatchRows:
        """Return what the decisions of ``intents`` on budget day ``day`` depend on.

        ``meta_keys``: the global-state keys to read (those set come back).
        """
        ...

    def write_batch(self, writes: GateBatchWrites) -> None:
        """Write a batch's decisions, budget consumption, idempotency records and hand-offs.

        A budget consumption recorded twice for one intent is an error (the
        batch rolls back); a second hand-off of one intent is a no-op.
        """
        ...
