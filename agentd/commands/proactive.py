"""Commands of the proactive loop: interactions, patterns, goals, tasks, digest, summaries."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from agentd.commands.registry import Access, CommandContext, command
from agentd.errors import InvalidArgument
from agentd.services import interactions as interactions_service
from agentd.services.accounts import detect_format
from agentd.services.digest import parse_day
from agentd.services.scheduler import check_task_name


@command(
    "interactions.import", access=Access.OPERATE, summary="Import interactions from CSV or JSONL."
)
async def interactions_import(ctx: CommandContext) -> dict[str, Any]:
    """Import the uploaded interactions file (all or nothing unless skip_bad)."""
    loop = ctx.app.proactive
    name = ctx.optional_text("name") or "upload"
    fmt = detect_format(name, ctx.args.get("format"))
    report = await interactions_service.import_upload(
        loop.store,
        ctx.require_body(),
        spool_dir=loop.spool_dir,
        source=name,
        fmt=fmt,
        skip_bad=bool(ctx.args.get("skip_bad")),
        actor=ctx.actor,
        clock=loop.clock,
    )
    return report.to_dict()


@command("patterns", summary="List detected patterns, newest first.")
async def patterns_list(ctx: CommandContext) -> dict[str, Any]:
    """List stored patterns, optionally of one account."""
    loop = ctx.app.proactive
    rows = await loop.store.proactive.list_patterns(
        account=ctx.optional_text("account"),
        since=ctx.optional_text("since"),
        limit=ctx.limit(200, most=100_000),
    )
    return {"patterns": rows}


@command("goals.add", access=Access.OPERATE, summary="Create a goal.")
async def goals_add(ctx: CommandContext) -> dict[str, Any]:
    """Validate and store a goal; errors name the field."""
    target = ctx.args.get("target")
    if target is None:
        raise InvalidArgument("goal target: missing", details={"field": "target"})
    return await ctx.app.proactive.goals.add(
        tenant=ctx.text("tenant") or "",
        goal_type=ctx.text("type") or "",
        target=target,
        start=ctx.text("start") or "",
        end=ctx.text("end") or "",
        name=ctx.optional_text("name"),
        actor=ctx.actor,
    )


@command("goals.list", summary="List goals (active ones unless all).")
async def goals_list(ctx: CommandContext) -> dict[str, Any]:
    """List goals with their last stored progress."""
    goals = await ctx.app.proactive.goals.list_goals(include_final=bool(ctx.args.get("all")))
    return {"goals": goals}


@command("goals.show", summary="Show a goal with its verdict and suggested actions.")
async def goals_show(ctx: CommandContext) -> dict[str, Any]:
    """Show one goal, evaluated now."""
    return await ctx.app.proactive.goals.show(ctx.text("id") or "")


@command("tasks", summary="List scheduled tasks.")
async def tasks(ctx: CommandContext) -> dict[str, Any]:
    """List tasks: interval, last run and result, next run, failures."""
    return {"tasks": await ctx.app.proactive.scheduler.table()}


@command("task.run", access=Access.OPERATE, summary="Run a scheduled task now.")
async def task_run(ctx: CommandContext) -> dict[str, Any]:
    """Run a task now; with wait, answer with its result."""
    name = check_task_name(ctx.args.get("name"))
    return await ctx.app.proactive.scheduler.run_now(name, wait=bool(ctx.args.get("wait")))


@command("digest", summary="Find (and show) a daily digest.")
async def digest(ctx: CommandContext) -> dict[str, Any]:
    """Return a day's digest path, and its content with show."""
    loop = ctx.app.proactive
    day = parse_day(ctx.optional_text("date"), loop.clock().astimezone(UTC).date())
    return await loop.digest.find(day, content=bool(ctx.args.get("show")))


@command("summary", summary="Show an account's context summary.")
async def summary(ctx: CommandContext) -> dict[str, Any]:
    """Return an account's stored summary."""
    return await ctx.app.proactive.summaries.show(ctx.text("account") or "")


@command("summary.refresh", access=Access.OPERATE, summary="Summarise an account now.")
async def summary_refresh(ctx: CommandContext) -> dict[str, Any]:
    """Make, store and return a new summary of an account."""
    return await ctx.app.proactive.summaries.summarize_account(ctx.text("account") or "")
