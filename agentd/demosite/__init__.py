"""The demo back-office: a small store admin and CRM served on loopback.

The demo, the tests and the benchmarks drive it with real Chromium; its
end-to-end tests under ``workflows/`` are the source of the agent's knowledge
base. Standard library only.
"""

from __future__ import annotations

from agentd.demosite.failures import FailureMode, FailureRule
from agentd.demosite.server import AccessRecord, DemoSite
from agentd.demosite.state import (
    Account,
    ApiKey,
    Meeting,
    Message,
    Note,
    Permission,
    Product,
    SiteState,
)

__all__ = [
    "AccessRecord",
    "Account",
    "ApiKey",
    "DemoSite",
    "FailureMode",
    "FailureRule",
    "Meeting",
    "Message",
    "Note",
    "Permission",
    "Product",
    "SiteState",
]
