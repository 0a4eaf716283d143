"""Commands of execution and rollback: executions, rollback tokens, incidents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentd.commands.registry import Access, CommandContext, command
from agentd.errors import InvalidArgument


def _time(ctx: CommandContext, name: str) -> datetime:
    raw = ctx.text(name)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"{name} {raw!r} is not an ISO 8601 time (e.g. 2026-12-01T12:00:00Z)",
            details={"field": name},
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


@command("executions.list", summary="List executions.")
async def executions_list(ctx: CommandContext) -> dict[str, Any]:
    """List executions, newest first, optionally in one state."""
    rows = await ctx.app.execution_views.list_executions(
        ctx.optional_text("status"), limit=ctx.limit()
    )
    return {"executions": [r.to_dict() for r in rows]}


@command("execution.show", summary="Show an execution: checks, snapshots, token, screenshots.")
async def execution_show(ctx: CommandContext) -> dict[str, Any]:
    """Show one execution with its rollback token and the operations it ran."""
    return await ctx.app.execution_views.show(ctx.text("id"))


@command("rollback.check", summary="Say whether a change can be rolled back, and how.")
async def rollback_check(ctx: CommandContext) -> dict[str, Any]:
    """Answer for a token (or an execution id) without changing anything."""
    return await ctx.app.rollback.check_rollback(ctx.text("token"))


@command("rollback.run", access=Access.APPROVE, summary="Roll back a change.")
async def rollback_run(ctx: CommandContext) -> dict[str, Any]:
    """Undo, restore or escalate, as the token's age, risk and the target's state allow."""
    return await ctx.app.rollback.rollback(
        ctx.text("token"), reason=ctx.text("reason"), actor=ctx.actor
    )


@command("rollback.extend", access=Access.APPROVE, summary="Extend a rollback deadline.")
async def rollback_extend(ctx: CommandContext) -> dict[str, Any]:
    """Move an available token's deadline later (at most 30 days past it)."""
    return await ctx.app.rollback.extend(
        ctx.text("token"), _time(ctx, "until"), reason=ctx.text("reason"), actor=ctx.actor
    )


@command("rollback.tokens", summary="List rollback tokens.")
async def rollback_tokens(ctx: CommandContext) -> dict[str, Any]:
    """List rollback tokens, newest first."""
    return {"tokens": [t.to_dict() for t in await ctx.app.rollback.tokens()]}


@command("incidents.list", summary="List incidents.")
async def incidents_list(ctx: CommandContext) -> dict[str, Any]:
    """List incidents, newest first, optionally open or resolved only."""
    rows = await ctx.app.incidents.list_incidents(ctx.optional_text("status"), limit=ctx.limit())
    return {"incidents": [r.to_dict() for r in rows]}


@command("incidents.open", access=Access.OPERATE, summary="Report an incident.")
async def incidents_open(ctx: CommandContext) -> dict[str, Any]:
    """Open an incident a person reports; a critical one trips the critical-incident breaker."""
    row = await ctx.app.incidents.report(
        severity=ctx.text("severity"),
        reason=ctx.optional_text("reason") or "",
        actor=ctx.actor,
        account=ctx.optional_text("account"),
    )
    return row.to_dict()


@command("incidents.resolve", access=Access.OPERATE, summary="Resolve an incident.")
async def incidents_resolve(ctx: CommandContext) -> dict[str, Any]:
    """Mark an open incident resolved, with a note saying how."""
    row = await ctx.app.incidents.resolve(ctx.text("id"), ctx.actor, ctx.text("note"))
    return row.to_dict()


@command("handoffs.list", summary="List hand-offs to a person.")
async def handoffs_list(ctx: CommandContext) -> dict[str, Any]:
    """List hand-offs, newest first: all, or only open, done or failed ones."""
    rows = await ctx.app.execution.handoffs.list_handoffs(
        ctx.optional_text("status"), limit=ctx.limit()
    )
    return {"handoffs": rows}


@command("handoff.done", access=Access.OPERATE, summary="Close a hand-off as done.")
async def handoff_done(ctx: CommandContext) -> dict[str, Any]:
    """Record that the person did what was approved; the execution succeeds."""
    return await ctx.app.execution.handoffs.done(
        ctx.text("id"), ctx.actor, ctx.optional_text("note")
    )


@command("handoff.failed", access=Access.OPERATE, summary="Close a hand-off as failed.")
async def handoff_failed(ctx: CommandContext) -> dict[str, Any]:
    """Record that what was approved could not be done; it counts as a failed execution."""
    return await ctx.app.execution.handoffs.failed(
        ctx.text("id"), ctx.actor, ctx.optional_text("reason")
    )
