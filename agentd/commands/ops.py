"""Commands of browser operations: operations, consents and secrets."""

from __future__ import annotations

from typing import Any

from agentd.commands.registry import Access, CommandContext, command
from agentd.errors import InvalidArgument
from agentd.vault import SecretValue

MAX_SECRET_BYTES = 64 * 1024


# -- operations -------------------------------------------------------------------------


@command("ops.list", summary="List browser operations.")
async def ops_list(ctx: CommandContext) -> dict[str, Any]:
    """List operations, newest first, optionally in one state."""
    rows = await ctx.app.operations.list_operations(
        state=ctx.optional_text("status"), limit=ctx.limit()
    )
    return {"operations": [r.to_dict() for r in rows]}


@command("ops.show", summary="Show an operation and its steps (follow: stream them).")
async def ops_show(ctx: CommandContext) -> dict[str, Any]:
    """Show one operation; with ``follow``, stream step events until it ends."""
    service = ctx.app.operations
    op_id = ctx.text("id")
    if ctx.args.get("follow"):
        async for event in service.follow(op_id):
            if event["type"] == "end":
                break
            await ctx.emit(event)
    op = await service.get(op_id)
    return {**op.to_dict(), "steps": [s.to_dict() for s in await service.steps(op_id)]}


@command("ops.run", access=Access.OPERATE, summary="Start a workflow or a task as an operation.")
async def ops_run(ctx: CommandContext) -> dict[str, Any]:
    """Create an operation (it waits for consent when there is none).

    With ``task`` (text) instead of ``workflow``: the workflow learned for the
    task, else the model plans it step by step (agent mode).
    """
    if ctx.args.get("task") is not None:
        if ctx.args.get("workflow") or ctx.args.get("params"):
            raise InvalidArgument("give a task or a workflow (with params), not both")
        op = await ctx.app.operations.start_task(
            ctx.args["task"],
            ctx.text("account"),
            service=ctx.optional_text("service"),
            actor=ctx.actor,
        )
        return op.to_dict()
    params = ctx.args.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidArgument(
            "params must be an object of text values", details={"field": "params"}
        )
    op = await ctx.app.operations.start_operation(
        ctx.text("workflow"),
        ctx.text("account"),
        params=params,
        service=ctx.optional_text("service"),
        actor=ctx.actor,
    )
    return op.to_dict()


@command("ops.cancel", access=Access.OPERATE, summary="Cancel an operation.")
async def ops_cancel(ctx: CommandContext) -> dict[str, Any]:
    """Cancel at once if not started, else at the next step boundary."""
    return (await ctx.app.operations.cancel(ctx.text("id"), ctx.actor)).to_dict()


@command(
    "ops.approve_step",
    access=Access.APPROVE,
    summary="Approve the step a model-planned operation waits with.",
)
async def ops_approve_step(ctx: CommandContext) -> dict[str, Any]:
    """Let an operation in ``awaiting_step_approval`` run the step it showed."""
    op = await ctx.app.operations.decide_step(ctx.text("id"), approved=True, actor=ctx.actor)
    return op.to_dict()


@command(
    "ops.reject_step",
    access=Access.APPROVE,
    summary="Reject the step a model-planned operation waits with (it ends).",
)
async def ops_reject_step(ctx: CommandContext) -> dict[str, Any]:
    """End an operation in ``awaiting_step_approval`` without its step, for a reason."""
    reason = ctx.text("reason")
    op = await ctx.app.operations.decide_step(
        ctx.text("id"), approved=False, actor=ctx.actor, reason=reason
    )
    return op.to_dict()


# -- consent ----------------------------------------------------------------------------


@command("consent.grant", access=Access.OPERATE, summary="Record a customer's consent.")
async def consent_grant(ctx: CommandContext) -> dict[str, Any]:
    """Grant consent for an account, service and operation (``*``: every workflow)."""
    permissions = ctx.args.get("permissions") or []
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise InvalidArgument(
            "permissions must be a list of names", details={"field": "permissions"}
        )
    row = await ctx.app.consents.grant_consent(
        ctx.text("account"),
        ctx.text("service"),
        ctx.optional_text("operation") or "*",
        permissions=permissions,
        actor=ctx.actor,
    )
    return row.to_dict()


@command("consent.revoke", access=Access.OPERATE, summary="Revoke a consent.")
async def consent_revoke(ctx: CommandContext) -> dict[str, Any]:
    """Revoke a consent; running operations it covered stop at their next step."""
    row = await ctx.app.consents.revoke_consent(
        ctx.text("account"),
        ctx.text("service"),
        ctx.optional_text("operation") or "*",
        actor=ctx.actor,
    )
    return row.to_dict()


@command("consent.list", summary="List consents.")
async def consent_list(ctx: CommandContext) -> dict[str, Any]:
    """List consents, active and revoked."""
    rows = await ctx.app.consents.list_consents(ctx.optional_text("account"))
    return {"consents": [r.to_dict() for r in rows]}


# -- secrets ----------------------------------------------------------------------------


@command("secret.set", access=Access.OPERATE, summary="Store a secret (value as the upload).")
async def secret_set(ctx: CommandContext) -> dict[str, Any]:
    """Seal the uploaded value into the vault; it never travels in the arguments."""
    if "value" in ctx.args:
        raise InvalidArgument("a secret value is sent as the upload, never as an argument")
    chunks: list[bytes] = []
    size = 0
    async for line in ctx.require_body():
        size += len(line)
        if size > MAX_SECRET_BYTES:
            raise InvalidArgument(f"a secret is at most {MAX_SECRET_BYTES} bytes")
        chunks.append(line)
    try:
        text = b"\n".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("the secret value must be UTF-8 text") from None
    value = SecretValue(text.rstrip("\r\n"))
    return await ctx.app.secrets.set_secret(
        ctx.text("account"), ctx.text("service"), ctx.text("name"), value, actor=ctx.actor
    )


@command("secret.list", summary="List secret names (never values).")
async def secret_list(ctx: CommandContext) -> dict[str, Any]:
    """List the secrets of every account, or of one."""
    return {"secrets": await ctx.app.secrets.list_secrets(ctx.optional_text("account"))}


@command("secret.rm", access=Access.OPERATE, summary="Remove a secret.")
async def secret_rm(ctx: CommandContext) -> dict[str, Any]:
    """Delete one secret."""
    account, service, name = ctx.text("account"), ctx.text("service"), ctx.text("name")
    await ctx.app.secrets.remove_secret(account, service, name, actor=ctx.actor)
    return {"account": account, "service": service, "name": name, "removed": True}
