"""One exception root with stable numeric codes.

The control protocol carries ``code`` and ``name`` to ``agentctl`` so a script
can tell "not found" from "refused by policy" without parsing prose. Codes are
part of the public interface: never renumber one, only add.

This module is imported by ``agentctl``: standard library only.
"""

from __future__ import annotations

from enum import IntEnum

TYPE_CHECKING = False  # typing itself is not imported: agentctl must start fast
if TYPE_CHECKING:
    from typing import Any


class ErrorCode(IntEnum):
    """Stable error codes carried by the control protocol.

    Members marked *reserved* are raised by nothing today (their exception
    classes went unused and were removed); the numbers stay taken so that no
    other error ever reuses one a script may test for.
    """

    # protocol (10-19)
    BAD_REQUEST = 10
    UNKNOWN_COMMAND = 11
    MESSAGE_TOO_LARGE = 12
    REQUEST_TIMEOUT = 13
    INVALID_ARGUMENT = 14
    # access (20-29)
    PERMISSION_DENIED = 20
    # lookups and state (30-49)
    NOT_FOUND = 30
    ALREADY_EXISTS = 31
    CONFLICT = 32
    INVALID_STATE = 33
    EXPIRED = 34
    # policy (50-69)
    POLICY_REFUSED = 50  # reserved
    BLOCKED_INTENT = 51
    BUDGET_EXHAUSTED = 52  # reserved
    KILL_SWITCH_ON = 53  # reserved
    NO_EXECUTOR = 54
    CONSENT_MISSING = 55  # reserved
    # configuration and environment (70-79)
    CONFIG_INVALID = 70
    VAULT_ERROR = 71
    STORE_ERROR = 72
    EXTERNAL_ERROR = 73
    STALE_KNOWLEDGE_BASE = 74
    # the daemon itself (90-99)
    INTERNAL = 90
    SHUTTING_DOWN = 91
    BUSY = 92


class AgentdError(Exception):
    """Root of every error agentd raises on purpose.

    :param message: what went wrong, for a person.
    :param details: extra machine-readable facts (field names, line numbers).
    """

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """Return the protocol form of this error."""
        out: dict[str, Any] = {
            "code": int(self.code),
            "name": self.code.name,
            "message": self.message,
        }
        if self.details:
            out["details"] = self.details
        return out


class BadRequest(AgentdError):
    code = ErrorCode.BAD_REQUEST


class UnknownCommand(AgentdError):
    code = ErrorCode.UNKNOWN_COMMAND


class MessageTooLarge(AgentdError):
    code = ErrorCode.MESSAGE_TOO_LARGE


class RequestTimeout(AgentdError):
    code = ErrorCode.REQUEST_TIMEOUT


class InvalidArgument(AgentdError):
    code = ErrorCode.INVALID_ARGUMENT


class PermissionDenied(AgentdError):
    code = ErrorCode.PERMISSION_DENIED


class NotFound(AgentdError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(AgentdError):
    code = ErrorCode.ALREADY_EXISTS


class Conflict(AgentdError):
    code = ErrorCode.CONFLICT


class InvalidState(AgentdError):
    code = ErrorCode.INVALID_STATE


class Expired(AgentdError):
    code = ErrorCode.EXPIRED


class BlockedIntent(AgentdError):
    code = ErrorCode.BLOCKED_INTENT


class NoExecutor(AgentdError):
    code = ErrorCode.NO_EXECUTOR


class ConfigInvalid(AgentdError):
    code = ErrorCode.CONFIG_INVALID


class VaultError(AgentdError):
    code = ErrorCode.VAULT_ERROR


class StoreError(AgentdError):
    code = ErrorCode.STORE_ERROR


class ExternalError(AgentdError):
    """A dependency outside the daemon (a web site, the model API) failed."""

    code = ErrorCode.EXTERNAL_ERROR


class StaleKnowledgeBase(AgentdError):
    code = ErrorCode.STALE_KNOWLEDGE_BASE


class ShuttingDown(AgentdError):
    code = ErrorCode.SHUTTING_DOWN


class Busy(AgentdError):
    """The daemon had no connection slot for this caller; nothing was read or done."""

    code = ErrorCode.BUSY


_BY_CODE: dict[int, type[AgentdError]] = {}
for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, AgentdError) and _cls is not AgentdError:
        _BY_CODE.setdefault(int(_cls.code), _cls)


def from_dict(data: dict[str, Any]) -> AgentdError:
    """Rebuild an error from its protocol form (unknown codes become AgentdError)."""
    code = int(data.get("code", ErrorCode.INTERNAL))
    cls = _BY_CODE.get(code, AgentdError)
    err = cls(str(data.get("message", "")), details=data.get("details"))
    if cls is AgentdError:
        try:
            err.code = ErrorCode(code)
        except ValueError:
            err.code = ErrorCode.INTERNAL
    return err
