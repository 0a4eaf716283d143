"""What the agent records, and the interface it records through.

The agent decides what happened at each step; an :class:`OperationLog` (the
store-backed one is :class:`~agentd.services.operation_log.StoredOperationLog`)
writes it: the step journal (rows, progress, lease, audit) and the end of the
operation. So the browser package holds no SQL, and the agent can be run
against another log in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.consent import ConsentLike

ACTOR = "agentd"
# The events of an operation's life, as the agent and its log name them.
OPERATION_STARTED = AuditEventType.OPERATION_STARTED
OPERATION_COMPLETED = AuditEventType.OPERATION_COMPLETED
OPERATION_FAILED = AuditEventType.OPERATION_FAILED
OPERATION_CANCELLED = AuditEventType.OPERATION_CANCELLED
OPERATION_CAPTURE_REFUSED = AuditEventType.OPERATION_CAPTURE_REFUSED
# A step record's key for the workflow's command when another ran (audited, not a column).
RECORDED = "recorded"


class Operation(Protocol):
    """What the agent reads of an operation it runs (``OperationRow`` has it)."""

    @property
    def id(self) -> str: ...

    @property
    def account(self) -> str: ...

    @property
    def service(self) -> str: ...

    @property
    def workflow(self) -> str: ...

    @property
    def params(self) -> Mapping[str, str]: ...

    @property
    def attempts(self) -> int: ...


# A command refused before it ran: (step index, source, problem, target).
Refusal = tuple[int, str, str, str]


@dataclass(frozen=True)
class StepEntry:
    """A step's record (its row, screenshot path and hash filled in) and the
    refusals audited before it."""

    row: dict[str, Any]
    refusals: Sequence[Refusal] = ()


@dataclass(frozen=True)
class OperationEnd:
    """How an operation ended, with what is left to record of it."""

    op: Operation
    attempt: int
    state: str  # completed | failed | cancelled
    reason: str | None
    error: str | None
    results: Mapping[str, str]
    folder: str
    refused_hosts: Sequence[str] = ()
    off_list: Mapping[str, Any] | None = None  # the first off-list navigation, audited
    refusals: Sequence[Refusal] = ()  # of commands that never became a step row
    saved: Mapping[str, str] = field(default_factory=dict)  # the final screenshot, if any


class OperationLog(Protocol):
    """Where the agent reads an operation's context and records its run.

    A write that finds the operation no longer leased to ``owner`` (taken over,
    or ended) raises :class:`~agentd.errors.Conflict` and writes nothing.
    """

    async def operation(self, op_id: str) -> Operation:
        """Return the operation as stored."""
        ...

    async def active_consent(self, account: str, service: str, workflow: str) -> ConsentLike | None:
        """Return the consent in force for a workflow, or None."""
        ...

    async def allowed_hosts(self, account: str) -> Sequence[str] | None:
        """Return an account's host allowlist, or None for an unknown account."""
        ...

    async def secret_blobs(
        self, account: str, service: str, names: Sequence[str]
    ) -> Mapping[str, bytes]:
        """Return the sealed secrets of these names that exist."""
        ...

    async def audit(self, event: AuditEvent) -> None:
        """Append one audit event on its own."""
        ...

    async def write_steps(self, op_id: str, owner: str, steps: Sequence[StepEntry]) -> None:
        """Write step records, the progress they make and a renewed lease, together."""
        ...

    async def record_end(self, end: OperationEnd, owner: str, steps: Sequence[StepEntry]) -> None:
        """Write the last step records and the operation's end, together."""
        ...
