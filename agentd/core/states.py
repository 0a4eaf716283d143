"""The states of agentd's four state machines, named once.

An intent's status, an execution's state, a browser operation's state and a
rollback token's state are stored as text, shown in JSON and typed on
``agentctl``'s command line. Each is a :class:`~enum.StrEnum` here, so that a
member *is* its stored string (``ExecutionState.QUEUED == "queued"``): the
database, the protocol and the audit trail read exactly as before, while the
code names a state it cannot misspell, and ``agentctl`` offers the same list
the daemon accepts instead of a copy that could drift.

This module imports nothing but :mod:`enum`: ``agentctl`` loads it for its
``--status`` choices and must stay quick to start.
"""

from __future__ import annotations

from enum import StrEnum


class IntentStatus(StrEnum):
    """Where an intent stands at the gate (``intents.status``)."""

    PENDING = "pending"  # waiting for a person's approval (until it expires)
    APPROVED = "approved"  # by policy or by a person: handed to execution
    BLOCKED = "blocked"  # the gate refused it; it can never be approved
    REJECTED = "rejected"  # a person said no
    EXPIRED = "expired"  # nobody decided in time


class ExecutionState(StrEnum):
    """Where an execution (a change or a rollback) stands (``executions.state``).

    See :mod:`agentd.services.execution` for what each state means and how a
    crash in it is recovered.
    """

    QUEUED = "queued"
    WAITING = "waiting"  # a closed window or a full daily limit: retried later
    AWAITING_CONSENT = "awaiting_consent"
    SNAPSHOT = "snapshot"
    READY = "ready"
    RUNNING = "running"
    VERIFYING = "verifying"
    HANDED_OFF = "handed_off"  # a person carries it out (a hand-off)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"


# The states the engine's loop drives, in the order an execution passes them.
OPEN_EXECUTION_STATES = (
    ExecutionState.QUEUED,
    ExecutionState.WAITING,
    ExecutionState.AWAITING_CONSENT,
    ExecutionState.SNAPSHOT,
    ExecutionState.READY,
    ExecutionState.RUNNING,
    ExecutionState.VERIFYING,
)
# The states an execution ends in; it never leaves one.
ENDED_EXECUTION_STATES = frozenset(
    {ExecutionState.SUCCEEDED, ExecutionState.FAILED, ExecutionState.REFUSED}
)


class OperationState(StrEnum):
    """Where a browser operation stands (``operations.state``)."""

    AWAITING_CONSENT = "awaiting_consent"
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    # agent mode: a model-planned step that would change something waits for a person
    AWAITING_STEP_APPROVAL = "awaiting_step_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The states of an operation a runner holds (its browser session is open).
RUNNING_OPERATION_STATES = (OperationState.IN_PROGRESS, OperationState.AWAITING_STEP_APPROVAL)
# The states an operation ends in; it never leaves one.
ENDED_OPERATION_STATES = frozenset(
    {OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELLED}
)


class TokenState(StrEnum):
    """Where a rollback token stands (``rollback_tokens.state``).

    Its deadline is not a state: whether an available token is still in time
    is decided when it is used (:func:`agentd.core.rollback.choose_rollback`).
    """

    AVAILABLE = "available"
    IN_PROGRESS = "in_progress"  # a rollback is running with it
    USED = "used"  # the change was undone
    ESCALATED = "escalated"  # handed to a person (an incident)
    VOID = "void"  # kept for the record of a failed change; never usable
