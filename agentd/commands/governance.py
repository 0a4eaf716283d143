"""Commands of governance: metrics, breakers, level, kill switch, readiness, scope expansion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agentd.commands.registry import Access, CommandContext, command
from agentd.core.governance import parse_period
from agentd.errors import InvalidArgument
from agentd.services.governor import Governance


def _gov(ctx: CommandContext) -> Governance:
    governance: Governance = ctx.app.governance
    return governance


def _opt_text(ctx: CommandContext, name: str) -> str | None:
    value = ctx.args.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be text", details={"field": name})
    return value


# -- metrics ----------------------------------------------------------------------------------


@command("metrics", summary="Show intents, executions, rates, incidents and safety events.")
async def metrics(ctx: CommandContext) -> dict[str, Any]:
    """Count what happened in a period (default: the last 24 hours)."""
    start, end = parse_period(
        _opt_text(ctx, "since"), _opt_text(ctx, "until"), datetime.now(UTC), timedelta(hours=24)
    )
    return await _gov(ctx).metrics.collect(start, end)


# -- breakers ---------------------------------------------------------------------------------


@command("breaker.status", summary="Show breaker rules, tripped breakers and recent trips.")
async def breaker_status(ctx: CommandContext) -> dict[str, Any]:
    """Describe the circuit breakers."""
    return await _gov(ctx).breakers.status()


@command("breaker.reset", access=Access.APPROVE, summary="Reset a tripped breaker.")
async def breaker_reset(ctx: CommandContext) -> dict[str, Any]:
    """Reset a tripped breaker (lifts its pause; a lowered level stays lowered)."""
    return await _gov(ctx).breakers.reset(ctx.args.get("name"), ctx.actor, ctx.args.get("reason"))


# -- level and kill switch ----------------------------------------------------------------------


@command("level", summary="Show the autonomy level, kill switch and paused action types.")
async def level(ctx: CommandContext) -> dict[str, Any]:
    """Describe the global autonomy state."""
    return await _gov(ctx).service.level()


@command("level.set", access=Access.OPERATE, summary="Lower the level, or propose raising it.")
async def level_set(ctx: CommandContext) -> dict[str, Any]:
    """Lower at once; raising becomes a scope expansion needing distinct approvers."""
    return await _gov(ctx).service.set_level(
        ctx.args.get("level"), ctx.actor, ctx.args.get("reason")
    )


@command("kill_switch.on", access=Access.OPERATE, summary="Stop all auto-execution now.")
async def kill_switch_on(ctx: CommandContext) -> dict[str, Any]:
    """Turn the kill switch on; running operations stop at their next step."""
    return await _gov(ctx).service.kill_switch(True, ctx.actor, ctx.args.get("reason"))


@command("kill_switch.off", access=Access.APPROVE, summary="Allow auto-execution again.")
async def kill_switch_off(ctx: CommandContext) -> dict[str, Any]:
    """Turn the kill switch off (an approver's decision)."""
    return await _gov(ctx).service.kill_switch(False, ctx.actor, ctx.args.get("reason"))


# -- readiness ----------------------------------------------------------------------------------


@command("governance.readiness", summary="Score readiness: checklists, blockers, next steps.")
async def readiness(ctx: CommandContext) -> dict[str, Any]:
    """Assess readiness now."""
    return await _gov(ctx).service.readiness()


@command("governance.attest", access=Access.OPERATE, summary="Attest a readiness item.")
async def attest(ctx: CommandContext) -> dict[str, Any]:
    """Record who vouches for an attested item, with evidence; it expires."""
    return await _gov(ctx).service.attest(
        ctx.args.get("item"), ctx.args.get("by"), ctx.args.get("evidence"), ctx.actor
    )


@command("governance.attestations", summary="List attestations.")
async def attestations(ctx: CommandContext) -> dict[str, Any]:
    """List attestations, newest first."""
    return {"attestations": await _gov(ctx).service.list_attestations()}


# -- scope expansion ----------------------------------------------------------------------------


@command("governance.proposals", summary="List scope-expansion proposals.")
async def proposals(ctx: CommandContext) -> dict[str, Any]:
    """List proposals, newest first."""
    return {"proposals": await _gov(ctx).scope.proposals(ctx.args.get("status"))}


@command("governance.show", summary="Show a scope-expansion proposal with its evidence.")
async def show(ctx: CommandContext) -> dict[str, Any]:
    """Show one proposal."""
    return await _gov(ctx).scope.proposal(ctx.args.get("id"))


@command("governance.approve", access=Access.APPROVE, summary="Approve a scope expansion.")
async def approve(ctx: CommandContext) -> dict[str, Any]:
    """Add your approval; the last one needed applies the change."""
    return await _gov(ctx).scope.approve(ctx.args.get("id"), ctx.actor, ctx.args.get("note"))


@command("governance.reject", access=Access.APPROVE, summary="Reject a scope expansion.")
async def reject(ctx: CommandContext) -> dict[str, Any]:
    """Reject a proposal; nothing changes."""
    return await _gov(ctx).scope.reject(ctx.args.get("id"), ctx.actor, ctx.args.get("reason"))
