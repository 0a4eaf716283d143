"""Command registry, access rules and the dispatcher."""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from agentd.core.audit import AuditEvent, AuditEventType
from agentd.core.bursts import BurstTally
from agentd.errors import (
    AgentdError,
    BadRequest,
    ErrorCode,
    InvalidArgument,
    PermissionDenied,
    UnknownCommand,
)
from agentd.store.base import Store

if TYPE_CHECKING:
    from agentd.config import Settings
    from agentd.services.approvals import ApprovalService
    from agentd.services.consents import ConsentsService
    from agentd.services.execution import ExecutionService
    from agentd.services.execution_views import ExecutionViews
    from agentd.services.gate import GateService
    from agentd.services.governor import Governance
    from agentd.services.incidents import IncidentService
    from agentd.services.operations import OperationsService
    from agentd.services.rollback import RollbackService
    from agentd.services.scheduler import ProactiveLoop
    from agentd.services.secrets import SecretsService


class ControlStore(Store, Protocol):
    """The store as ``status`` shows it: the store, and how its writes have gone."""

    @property
    def write_errors(self) -> int:
        """Return how many writes failed since the daemon started."""
        ...

    @property
    def last_write_error(self) -> tuple[datetime, str] | None:
        """Return when the last write failed and why, if one did."""
        ...

    @property
    def corrupt(self) -> str | None:
        """Return the damage found in the file (writes are refused), or None."""
        ...


class App(Protocol):
    """What command handlers use of the daemon: its services, state and facts.

    The daemon's ``App`` (``agentd.daemon``) is the implementation; commands
    depend on this and not on the daemon module, which imports them.
    """

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> ControlStore: ...
    @property
    def log_file(self) -> Path | None: ...
    @property
    def state(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def started_monotonic(self) -> float: ...
    @property
    def integrity(self) -> dict[str, Any]: ...
    @property
    def gate(self) -> GateService: ...
    @property
    def approvals(self) -> ApprovalService: ...
    @property
    def governance(self) -> Governance: ...
    @property
    def proactive(self) -> ProactiveLoop: ...
    @property
    def operations(self) -> OperationsService: ...
    @property
    def consents(self) -> ConsentsService: ...
    @property
    def secrets(self) -> SecretsService: ...
    @property
    def execution(self) -> ExecutionService: ...
    @property
    def execution_views(self) -> ExecutionViews: ...
    @property
    def rollback(self) -> RollbackService: ...
    @property
    def incidents(self) -> IncidentService: ...

    def problems(self) -> list[str]:
        """Return what needs an operator, one line each (empty: all is well)."""
        ...

    async def audit(self, *events: AuditEvent) -> None:
        """Append events to the audit trail in one transaction."""
        ...

    async def reload(self, actor: str) -> dict[str, Any]:
        """Re-read the configuration's policy.

        :raises ConfigInvalid: the new configuration is invalid (the old one runs on).
        """
        ...


class Access(IntEnum):
    """Who may run a command.

    READ: any permitted peer (root, the daemon's user, the control group).
    OPERATE: root, the daemon's user, or a member of the approvers group.
    APPROVE: root or a member of the approvers group.
    """

    READ = 0
    OPERATE = 1
    APPROVE = 2


@dataclass(frozen=True)
class Peer:
    """The process on the other end of a connection (from SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int
    user: str
    groups: frozenset[str] = frozenset()

    @classmethod
    def from_ids(cls, pid: int, uid: int, gid: int) -> Peer:
        """Resolve names for a peer's ids."""
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        names: set[str] = set()
        try:
            gids = os.getgrouplist(user, gid) if user != str(uid) else [gid]
        except OSError:
            gids = [gid]
        for g in gids:
            try:
                names.add(grp.getgrgid(g).gr_name)
            except KeyError:
                names.add(str(g))
        return cls(pid=pid, uid=uid, gid=gid, user=user, groups=frozenset(names))

    @classmethod
    def myself(cls) -> Peer:
        """Return the current process as a peer (for in-process calls)."""
        return cls.from_ids(os.getpid(), os.getuid(), os.getgid())


@dataclass(frozen=True)
class AccessPolicy:
    """Which peers may do what, from the control settings."""

    daemon_uid: int
    group: str | None = None
    approvers_group: str | None = None

    def _privileged(self, peer: Peer) -> bool:
        return peer.uid == 0

    def is_approver(self, peer: Peer) -> bool:
        """Return True when the peer may approve and reject."""
        return self._privileged(peer) or (
            self.approvers_group is not None and self.approvers_group in peer.groups
        )

    def permitted(self, peer: Peer) -> bool:
        """Return True when the peer may talk to the daemon at all."""
        return (
            self._privileged(peer)
            or peer.uid == self.daemon_uid
            or (self.group is not None and self.group in peer.groups)
            or self.is_approver(peer)
        )

    def allows(self, peer: Peer, access: Access) -> bool:
        """Return True when the peer may run a command needing ``access``."""
        if not self.permitted(peer):
            return False
        if access is Access.READ:
            return True
        if access is Access.OPERATE:
            return peer.uid == self.daemon_uid or self.is_approver(peer)
        return self.is_approver(peer)


Emit = Callable[[Any], Awaitable[None]]


async def _no_emit(_: Any) -> None:
    return None


@dataclass
class CommandContext:
    """What a handler gets: the app, the caller, the arguments, a stream."""

    app: App
    peer: Peer
    args: dict[str, Any]
    emit: Emit = _no_emit
    body: AsyncIterator[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def require_body(self) -> AsyncIterator[bytes]:
        """Return the upload that came with the request.

        :raises BadRequest: the request carried none.
        """
        if self.body is None:
            raise BadRequest("this command needs an upload (send the file after the request)")
        return self.body

    @property
    def actor(self) -> str:
        """Return the name recorded in audit records for this caller."""
        return self.peer.user

    def text(self, name: str) -> str:
        """Return a text argument that must be given.

        :raises InvalidArgument: it is missing, empty or not text.
        """
        value = self.optional_text(name)
        if value is None:
            raise InvalidArgument(f"missing argument {name!r}", details={"field": name})
        return value

    def optional_text(self, name: str) -> str | None:
        """Return a text argument, or None when it is missing or empty.

        :raises InvalidArgument: it is not text.
        """
        value = self.args.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise InvalidArgument(f"{name} must be text", details={"field": name})
        return value

    def limit(self, default: int = 200, most: int = 10_000) -> int:
        """Return the ``limit`` argument: how many rows a listing returns.

        :raises InvalidArgument: it is not a whole number from 1 to ``most``.
        """
        value = self.args.get("limit", default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            raise InvalidArgument(
                f"limit must be a whole number from 1 to {most}", details={"field": "limit"}
            )
        return value


Handler = Callable[[CommandContext], Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    """A registered command."""

    name: str
    handler: Handler
    access: Access
    summary: str


REGISTRY: dict[str, Command] = {}


def command(
    name: str, *, access: Access = Access.READ, summary: str = ""
) -> Callable[[Handler], Handler]:
    """Register a handler under ``name``."""

    def register(fn: Handler) -> Handler:
        if name in REGISTRY:
            raise RuntimeError(f"command {name!r} registered twice")
        REGISTRY[name] = Command(name, fn, access, summary or (fn.__doc__ or "").strip())
        return fn

    return register


class Dispatcher:
    """Run commands for peers: access check, errors, refusals audited.

    A user's first refusal is logged and audited at once; further refusals
    of the same uid within ``refusal_interval_s`` are only counted, and
    :meth:`flush_refusals` writes them as one ``ACCESS_REFUSED`` record with
    the count (a flood of refused requests must not fill the disk).
    """

    def __init__(self, app: App, policy: AccessPolicy, refusal_interval_s: float = 60.0) -> None:
        self.app = app
        self.policy = policy
        self.refusals = BurstTally(refusal_interval_s)

    async def refuse(self, peer: Peer, what: str, reason: str) -> PermissionDenied:
        """Log and audit a refusal (or count it, in a flood); return the error to send."""
        if self.refusals.note(peer.uid, peer.user, f"{what}: {reason}", time.monotonic()):
            logger.warning(
                "refused {} for {} (uid {}, pid {}): {}",
                what,
                peer.user,
                peer.uid,
                peer.pid,
                reason,
            )
            await self._audit_refusals(
                AuditEvent(
                    AuditEventType.ACCESS_REFUSED,
                    actor=peer.user,
                    subject=what,
                    data={"uid": peer.uid, "pid": peer.pid, "reason": reason},
                )
            )
        return PermissionDenied(f"{peer.user} (uid {peer.uid}) may not {what}: {reason}")

    async def flush_refusals(self, *, everything: bool = False) -> int:
        """Audit the refusals counted in intervals that ended (``everything``: all of them).

        Returns how many refusals the records written stand for.
        """
        now = time.monotonic()
        bursts = self.refusals.drain(now) if everything else self.refusals.due(now)
        events = []
        for burst in bursts:
            logger.warning(
                "refused {} more requests of {} (uid {}) in the last {:.0f} s",
                burst.count,
                burst.label,
                burst.key,
                burst.seconds,
            )
            events.append(
                AuditEvent(
                    AuditEventType.ACCESS_REFUSED,
                    actor=burst.label,
                    subject="repeated refusals",
                    data={
                        "uid": burst.key,
                        "count": burst.count,
                        "seconds": burst.seconds,
                        "refused": burst.what,
                    },
                )
            )
        if events:
            await self._audit_refusals(*events)
        return sum(b.count for b in bursts)

    async def _audit_refusals(self, *events: AuditEvent) -> None:
        try:
            await self.app.audit(*events)
        except AgentdError as exc:  # refusing must not depend on the store
            logger.error("could not audit a refusal: {}", exc)

    async def dispatch(
        self,
        peer: Peer,
        cmd: str,
        args: dict[str, Any],
        emit: Emit = _no_emit,
        body: AsyncIterator[bytes] | None = None,
    ) -> Any:
        """Run one command and return its result.

        :raises AgentdError: the command failed; unexpected exceptions become INTERNAL.
        """
        spec = REGISTRY.get(cmd)
        if spec is None:
            raise UnknownCommand(f"unknown command {cmd!r}", details={"known": sorted(REGISTRY)})
        if not self.policy.allows(peer, spec.access):
            needed = {Access.OPERATE: "operator", Access.APPROVE: "approver"}.get(
                spec.access, "reader"
            )
            raise await self.refuse(peer, f"run {cmd!r}", f"needs the {needed} role")
        ctx = CommandContext(app=self.app, peer=peer, args=args, emit=emit, body=body)
        try:
            return await spec.handler(ctx)
        except AgentdError:
            raise
        except Exception as exc:
            logger.opt(exception=exc).error("command {} failed", cmd)
            err = AgentdError(
                f"internal error in {cmd!r} ({type(exc).__name__}); see the daemon log"
            )
            err.code = ErrorCode.INTERNAL
            raise err from exc


class InProcessClient:
    """Call commands without a socket (tests, the demo): same rules, same errors."""

    def __init__(self, dispatcher: Dispatcher, peer: Peer | None = None) -> None:
        self.dispatcher = dispatcher
        self.peer = peer or Peer.myself()

    async def call(
        self, cmd: str, args: dict[str, Any] | None = None, *, upload: bytes | None = None
    ) -> Any:
        """Run a command as this client's peer (``upload``: the file body, if any)."""
        body = None
        if upload is not None:

            async def lines() -> AsyncIterator[bytes]:
                for line in upload.splitlines():
                    yield line

            body = lines()
        return await self.dispatcher.dispatch(self.peer, cmd, args or {}, body=body)
