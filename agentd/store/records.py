"""The records the store hands back: plain values, the same whichever database keeps them.

Each area of :mod:`agentd.store.api` returns these; a store builds them from
its own rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentd.core.agent_mode import Spend
from agentd.core.gate import GateOutcome, IdempotencyState
from agentd.core.goals import Goal, GoalFact, Verdict
from agentd.core.intents import ActionIntent
from agentd.core.states import ENDED_EXECUTION_STATES, ENDED_OPERATION_STATES
from agentd.core.timefmt import iso


@dataclass(frozen=True)
class AccountRow:
    """An account as stored."""

    id: str
    tenant: str
    name: str
    stage: str
    trusted_mode: str
    domains: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    allowlist: tuple[str, ...] | None
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "stage": self.stage,
            "trusted_mode": self.trusted_mode,
            "domains": list(self.domains),
            "allowed_hosts": list(self.allowed_hosts),
            "allowlist": None if self.allowlist is None else list(self.allowlist),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class IntentRow:
    """An intent with its decision and approval state, as stored."""

    intent: ActionIntent
    fingerprint: str
    outcome: GateOutcome
    status: str
    created_at: str
    created_by: str
    expires_at: str | None
    approval_source: str | None
    auto_executed: bool | None
    decided_by: str | None
    decided_at: str | None
    decision_note: str | None

    def to_dict(self, *, with_trace: bool = True) -> dict[str, Any]:
        """Return the protocol form (the ``propose --json`` field names)."""
        out: dict[str, Any] = {
            "intent_id": self.intent.intent_id,
            "tenant": self.intent.tenant,
            "account": self.intent.account,
            "action_type": self.intent.action_type,
            "domain": self.intent.domain,
            "change_type": self.intent.change_type,
            "diff": dict(self.intent.diff),
            "rationale": self.intent.rationale,
            "confidence": self.intent.confidence,
            "source": str(self.intent.source),
            "serves": dict(self.intent.serves),
            "decision": str(self.outcome.decision),
            "reason": str(self.outcome.reason),
            "message": self.outcome.message,
            "tier": str(self.outcome.tier),
            "risk_level": str(self.outcome.risk.level),
            "status": self.status,
            "approval_source": self.approval_source,
            "auto_executed": self.auto_executed,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "decision_note": self.decision_note,
        }
        if with_trace:
            # Read-only entries, shared with other answers (serialised, never changed).
            out["trace"] = [entry.as_view() for entry in self.outcome.trace]
        return out


@dataclass(frozen=True)
class ExecutionRow:
    """An execution as stored (JSON columns decoded)."""

    id: str
    kind: str
    intent_id: str
    rollback_of: str | None
    rollback_type: str | None
    tenant: str
    account: str
    action_type: str
    executor: str
    risk: str
    autonomous: bool
    state: str
    reason: str | None
    detail: str | None
    retry_at: str | None
    checks: list[dict[str, Any]]
    params: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    diff: dict[str, Any] | None
    target_state: str | None
    result: dict[str, Any] | None
    snapshot_op: str | None
    change_op: str | None
    verify_op: str | None
    attempts: int
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    #: The runner driving it (a daemon's runner id) and until when, or None.
    lease_owner: str | None = None
    lease_until: str | None = None

    @property
    def finished(self) -> bool:
        """Return whether the execution reached a terminal state."""
        return self.state in ENDED_EXECUTION_STATES

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form `agentctl` shows."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class TokenRow:
    """A rollback token as stored."""

    token: str
    execution_id: str
    risk: str
    executed_at: str
    deadline: str
    state: str
    used_at: str | None
    used_by: str | None
    rollback_execution: str | None
    extensions: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class IncidentRow:
    """An incident as stored."""

    id: str
    severity: str
    status: str
    kind: str
    title: str
    detail: str
    ref: str | None
    tenant: str | None
    account: str | None
    autonomous: bool
    notified: list[str]
    created_at: str
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class OperationRow:
    """An operation as stored."""

    id: str
    account: str
    service: str
    workflow: str
    params: dict[str, str]
    state: str
    step: int
    total: int
    attempts: int
    lease_owner: str | None
    lease_until: str | None
    reason: str | None
    error: str | None
    result: dict[str, str]
    folder: str | None
    execution_id: str | None
    created_by: str
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    task: str | None = None  # agent mode: the task the model plans (None: a recorded workflow)
    spend: Spend = field(default_factory=Spend)  # what its model calls cost (agent mode)
    pending_step: dict[str, Any] | None = None  # the step awaiting a person's approval

    @property
    def finished(self) -> bool:
        """Return whether the operation reached a terminal state."""
        return self.state in ENDED_OPERATION_STATES

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        return {
            "id": self.id,
            "account": self.account,
            "service": self.service,
            "workflow": self.workflow,
            "params": dict(self.params),
            "state": self.state,
            "progress": f"{self.step}/{self.total}",
            "step": self.step,
            "total": self.total,
            "attempts": self.attempts,
            "reason": self.reason,
            "error": self.error,
            "result": dict(self.result),
            "folder": self.folder,
            # The execution that started the operation (None for one started by hand).
            "execution": self.execution_id,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "task": self.task,
            "spend": self.spend.to_dict(),
            "pending_step": self.pending_step,
        }


@dataclass(frozen=True)
class StepRow:
    """One audited step of an operation (or its final screenshot, ``idx`` 0)."""

    op_id: str
    seq: int
    attempt: int
    idx: int
    intent: str
    action: str
    target: str
    source: str
    status: str
    error: str | None
    screenshot: str | None
    sha256: str | None
    duration_ms: float
    at: str
    detail: dict[str, Any] | None = None  # agent mode: value, expect, result, element, reason

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        out = {
            "op_id": self.op_id,
            "seq": self.seq,
            "attempt": self.attempt,
            "index": self.idx,
            "intent": self.intent,
            "action": self.action,
            "target": self.target,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "screenshot": self.screenshot,
            "sha256": self.sha256,
            "duration_ms": round(self.duration_ms, 1),
            "at": self.at,
        }
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class ConsentRow:
    """A consent as stored (revoked when ``revoked_at`` is set)."""

    account: str
    service: str
    operation: str
    permissions: tuple[str, ...]
    version: int
    granted_by: str
    granted_at: str
    revoked_by: str | None
    revoked_at: str | None

    @property
    def active(self) -> bool:
        """Return whether the consent is in force."""
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        return {
            "account": self.account,
            "service": self.service,
            "operation": self.operation,
            "permissions": list(self.permissions),
            "version": self.version,
            "active": self.active,
            "granted_by": self.granted_by,
            "granted_at": self.granted_at,
            "revoked_by": self.revoked_by,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True)
class TripRow:
    """A breaker trip as stored."""

    id: str
    key: str
    rule: str
    action_type: str | None
    action: str
    severity: str
    alert_only: bool
    value: float
    threshold: float
    message: str
    effects: list[str]
    incident_id: str | None
    tripped_at: str
    reset_at: str | None
    reset_by: str | None
    reset_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class AttestationRow:
    """An attestation as stored."""

    id: str
    item: str
    by_name: str
    evidence: str
    recorded_by: str
    at: str
    expires_at: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (``by`` as agentctl spells it)."""
        out = dict(self.__dict__)
        out["by"] = out.pop("by_name")
        return out


@dataclass(frozen=True)
class ProposalRow:
    """A scope-expansion proposal as stored (JSON columns decoded)."""

    id: str
    status: str
    source: str
    requested_by: str
    current_level: str
    target_level: str
    action_types: list[str]
    rationale: str
    evidence: dict[str, Any]
    report: str | None
    required_approvals: int
    approvals: list[dict[str, Any]]
    created_at: str
    expires_at: str
    decided_at: str | None
    decided_by: str | None
    decision_note: str | None

    def to_dict(self, *, evidence: bool = True) -> dict[str, Any]:
        """Return the JSON form (without the bulky evidence unless asked)."""
        out = dict(self.__dict__)
        if not evidence:
            out.pop("evidence")
        out["approvals_missing"] = max(self.required_approvals - len(self.approvals), 0)
        return out


@dataclass(frozen=True)
class GoalRow:
    """A goal as stored, with the last progress written for it."""

    goal: Goal
    verdict: Verdict | None
    current: float | None
    progress_at: str | None
    created_at: str
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form."""
        g = self.goal
        return {
            "id": g.id,
            "tenant": g.tenant,
            "type": g.goal_type.value,
            "name": g.name,
            "target": g.target,
            "start": iso(g.start),
            "end": iso(g.end),
            "last_day": g.last_day.isoformat(),
            "status": g.status.value,
            "verdict": self.verdict.value if self.verdict else None,
            "current": self.current,
            "progress_at": self.progress_at,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class GateBatchRows:
    """What a batch of gate decisions depends on, as stored, read in one go."""

    meta: Mapping[str, str]  # the global-state keys asked for that are set
    stored: Mapping[str, IntentRow]  # the batch's intents already decided
    idempotency: Mapping[str, IdempotencyState]
    accounts: Mapping[str, AccountRow]
    counters: Mapping[tuple[str, str], int]  # the day's budget counters (missing ones 0)
    goals: Mapping[str, tuple[GoalFact, ...]]  # by tenant, with their verdicts


@dataclass
class GateBatchWrites:
    """What a batch of gate decisions writes, in one go.

    Rows of ``(intent_id, ...)`` find their intent among ``intents`` or the
    stored ones.
    """

    day: str  # the budget day
    intents: list[IntentRow] = field(default_factory=list)  # the new decisions
    consumed: list[tuple[str, str, str]] = field(default_factory=list)  # (intent_id, day, at)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)  # final budget counters
    idempotency: list[tuple[str, str, str]] = field(default_factory=list)  # (intent_id, state, at)
    queue: list[tuple[str, str, str]] = field(default_factory=list)  # (intent_id, source, at)


def budget_keys(tenant: str, account: str, action_type: str) -> tuple[tuple[str, str], ...]:
    """Return the (scope, key) counters an intent counts against."""
    return (
        ("tenant", tenant),
        ("account", f"{tenant}/{account}"),
        ("action_type", f"{tenant}/{action_type}"),
    )
