"""The control commands of browser operations, through the real dispatcher."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import agentd.commands.ops  # noqa: F401  registers the commands (until the package imports it)
from agentd.commands import Dispatcher, Peer
from agentd.commands.registry import AccessPolicy
from agentd.demosite import DemoSite
from agentd.errors import InvalidArgument, NotFound
from tests.integration import test_browser_agent as base
from tests.integration.test_browser_agent import ACCOUNT, SERVICE, harness

pytestmark = base.BROWSER_MARKS
anyio_backend = base.anyio_backend
shared_browser = base.shared_browser
site = base.site
tmp = base.tmp


async def _body(data: bytes) -> AsyncIterator[bytes]:
    for line in data.splitlines():
        yield line


async def test_commands_end_to_end(tmp: Path, site: DemoSite, shared_browser: Any) -> None:
    async with harness(tmp, site, shared_browser, consent=False, secrets=False) as h:
        app = SimpleNamespace(operations=h.svc, consents=h.consents, secrets=h.secrets, audit=None)
        dispatcher = Dispatcher(app, AccessPolicy(daemon_uid=os.getuid()))  # type: ignore[arg-type]
        me = Peer.myself()

        async def call(cmd: str, args: dict[str, Any], body: bytes | None = None) -> Any:
            stream = _body(body) if body is not None else None
            return await dispatcher.dispatch(me, cmd, args, body=stream)

        for name, value in (
            ("admin_user", site.admin_user),
            ("admin_password", site.admin_password),
        ):
            stored = await call(
                "secret.set",
                {"account": ACCOUNT, "service": SERVICE, "name": name},
                value.encode() + b"\n",
            )
            assert stored == {
                "account": ACCOUNT,
                "service": SERVICE,
                "name": name,
                "replaced": False,
            }
        with pytest.raises(InvalidArgument):
            await call(
                "secret.set",
                {"account": ACCOUNT, "service": SERVICE, "name": "x", "value": "on argv"},
                b"v",
            )
        listed = await call("secret.list", {})
        assert [s["name"] for s in listed["secrets"]] == ["admin_password", "admin_user"]
        assert site.admin_password not in repr(listed)

        op = await call(
            "ops.run",
            {"workflow": "read_product_seo", "account": ACCOUNT, "params": {"product_id": "102"}},
        )
        assert op["state"] == "awaiting_consent"
        consent = await call(
            "consent.grant",
            {"account": ACCOUNT, "service": SERVICE, "permissions": ["read"]},
        )
        assert (consent["version"], consent["active"]) == (1, True)

        events: list[Any] = []

        async def emit(event: Any) -> None:
            events.append(event)

        shown = await dispatcher.dispatch(me, "ops.show", {"id": op["id"], "follow": True}, emit)
        assert shown["state"] == "completed", shown["error"]
        steps = [e for e in events if e["type"] == "step"]
        assert [e["state"] for e in events if e["type"] == "state"][-1] == "in_progress"
        assert [e["index"] for e in steps if e["status"] == "ok"] == list(
            range(1, shown["total"] + 1)
        )
        assert shown["result"]["seo_title"] == site.state.product(102).seo_title

        ops = await call("ops.list", {"status": "completed"})
        assert [o["id"] for o in ops["operations"]] == [op["id"]]
        revoked = await call("consent.revoke", {"account": ACCOUNT, "service": SERVICE})
        assert revoked["active"] is False
        assert (await call("consent.list", {}))["consents"][0]["revoked_by"] == me.user
        await call("secret.rm", {"account": ACCOUNT, "service": SERVICE, "name": "admin_user"})
        with pytest.raises(NotFound):
            await call("secret.rm", {"account": ACCOUNT, "service": SERVICE, "name": "admin_user"})
        with pytest.raises(NotFound):
            await call("ops.show", {"id": "op_missing"})
