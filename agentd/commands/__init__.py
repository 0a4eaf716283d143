"""Control commands: a registry of async handlers behind the socket.

Each module here registers its commands with :func:`command`. The dispatcher
is the one place that checks access, turns errors into protocol errors and
audits refusals, whether a request came over the socket or in-process.
"""

from __future__ import annotations

from agentd.commands.registry import (
    REGISTRY,
    Access,
    CommandContext,
    Dispatcher,
    InProcessClient,
    Peer,
    command,
)

# Importing a module registers its commands.
from agentd.commands import execution, gate, governance, ops, proactive, system  # noqa: F401  isort: skip

__all__ = [
    "REGISTRY",
    "Access",
    "CommandContext",
    "Dispatcher",
    "InProcessClient",
    "Peer",
    "command",
]
