"""Commands of the gate: accounts, proposals, policy checks, approvals, audit."""

from __future__ import annotations

import json
from typing import Any

import anyio

from agentd.commands.registry import Access, CommandContext, command
from agentd.core.intents import IntentSource, parse_intent
from agentd.core.states import IntentStatus
from agentd.errors import AgentdError, InvalidArgument, NotFound
from agentd.services import accounts as accounts_service

INTENT_FIELDS = (
    "intent_id",
    "tenant",
    "account",
    "action_type",
    "domain",
    "change_type",
    "diff",
    "rationale",
    "confidence",
    "source",
    "serves",
)
STATUSES = tuple(IntentStatus)


def _arg(ctx: CommandContext, name: str, *, required: bool = True) -> Any:
    value = ctx.args.get(name)
    if required and (value is None or value == ""):
        raise InvalidArgument(f"missing argument {name!r}", details={"field": name})
    return value


def _intent_from_args(args: dict[str, Any]) -> Any:
    fields = {k: v for k, v in args.items() if k in INTENT_FIELDS and v is not None}
    return parse_intent(fields, default_source=IntentSource.OPERATOR)


# -- accounts -----------------------------------------------------------------------


@command("accounts.import", access=Access.OPERATE, summary="Import accounts from CSV or JSONL.")
async def accounts_import(ctx: CommandContext) -> dict[str, Any]:
    """Import the uploaded account file."""
    name = str(ctx.args.get("name") or "upload")
    fmt = accounts_service.detect_format(name, ctx.args.get("format"))
    report = await accounts_service.import_accounts(
        ctx.app.store,
        ctx.require_body(),
        source=name,
        fmt=fmt,
        skip_bad=bool(ctx.args.get("skip_bad")),
        actor=ctx.actor,
    )
    return report.to_dict()


@command("accounts.list", summary="List accounts.")
async def accounts_list(ctx: CommandContext) -> dict[str, Any]:
    """List accounts, optionally of one tenant."""
    rows = await ctx.app.store.gate.list_accounts(
        tenant=ctx.args.get("tenant"), limit=ctx.limit(1000, most=100_000)
    )
    return {"accounts": [r.to_dict() for r in rows]}


@command("accounts.show", summary="Show one account.")
async def accounts_show(ctx: CommandContext) -> dict[str, Any]:
    """Show one account."""
    account_id = _arg(ctx, "id")
    row = await ctx.app.store.gate.get_account(account_id)
    if row is None:
        raise NotFound(f"unknown account {account_id!r}", details={"account": account_id})
    return row.to_dict()


@command("accounts.set", access=Access.OPERATE, summary="Set an account's stage or trusted mode.")
async def accounts_set(ctx: CommandContext) -> dict[str, Any]:
    """Change an account."""
    allowlist = ctx.args.get("allowlist")
    if allowlist is not None and not (
        isinstance(allowlist, list) and all(isinstance(a, str) for a in allowlist)
    ):
        raise InvalidArgument(
            "allowlist must be a list of action types", details={"field": "allowlist"}
        )
    row = await accounts_service.set_account(
        ctx.app.store,
        _arg(ctx, "id"),
        stage=ctx.args.get("stage"),
        trust=ctx.args.get("trust"),
        allowlist=allowlist,
        actor=ctx.actor,
    )
    return row.to_dict()


# -- proposals --------------------------------------------------------------------------


@command("propose", access=Access.OPERATE, summary="Submit one intent through the gate.")
async def propose(ctx: CommandContext) -> dict[str, Any]:
    """Decide one intent and make the decision durable."""
    intent = _intent_from_args(ctx.args)
    result: dict[str, Any] = await ctx.app.gate.submit(intent, ctx.actor)
    _wake_execution(ctx)
    return result


def _wake_execution(ctx: CommandContext) -> None:
    """Let the execution engine look at the hand-off queue now rather than at its next poll."""
    ctx.app.execution.wake()


@command("propose.batch", access=Access.OPERATE, summary="Submit a JSONL file of intents.")
async def propose_batch(ctx: CommandContext) -> dict[str, Any]:
    """Decide every intent of an uploaded JSONL file; report each line."""
    name = str(ctx.args.get("name") or "upload")
    parsed: list[tuple[int, Any]] = []
    number = 0
    async for raw in ctx.require_body():
        number += 1
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
            parsed.append((number, parse_intent(obj, default_source=IntentSource.OPERATOR)))
        except json.JSONDecodeError as exc:
            parsed.append(
                (
                    number,
                    InvalidArgument(
                        f"line {number}: not JSON ({exc.msg})", details={"line": number}
                    ),
                )
            )
        except AgentdError as exc:
            parsed.append((number, exc))
    if not parsed:
        raise InvalidArgument(f"{name}: no intents in the file", details={"file": name})
    results: dict[int, dict[str, Any]] = {}

    async def one(line: int, item: Any) -> None:
        if isinstance(item, AgentdError):
            results[line] = {"line": line, "error": item.to_dict()}
            return
        try:
            decided = await ctx.app.gate.submit(item, ctx.actor)
            results[line] = {
                "line": line,
                **{
                    k: decided[k]
                    for k in (
                        "intent_id",
                        "decision",
                        "reason",
                        "tier",
                        "risk_level",
                        "status",
                        "approval_source",
                        "auto_executed",
                        "duplicate",
                    )
                },
            }
        except AgentdError as exc:
            results[line] = {"line": line, "intent_id": item.intent_id, "error": exc.to_dict()}

    # Submitted together, they are decided in few group commits.
    async with anyio.create_task_group() as tg:
        for line, item in parsed:
            tg.start_soon(one, line, item)
    ordered = [results[line] for line, _ in parsed]
    _wake_execution(ctx)
    counts: dict[str, int] = {}
    for r in ordered:
        key = r.get("decision") or "ERROR"
        counts[key] = counts.get(key, 0) + 1
    return {"source": name, "results": ordered, "counts": counts}


@command("policy.check", summary="Answer what the gate would decide, with no side effect.")
async def policy_check(ctx: CommandContext) -> dict[str, Any]:
    """Answer what ``propose`` would answer now, without writing anything."""
    result: dict[str, Any] = await ctx.app.gate.check(_intent_from_args(ctx.args), ctx.actor)
    return result


# -- intents and approvals ------------------------------------------------------------


@command("intents.list", summary="List intents.")
async def intents_list(ctx: CommandContext) -> dict[str, Any]:
    """List intents, newest first."""
    status = ctx.args.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidArgument(
            f"status must be one of {', '.join(STATUSES)}", details={"field": "status"}
        )
    rows = await ctx.app.store.gate.list_intents(
        status=status, tenant=ctx.args.get("tenant"), limit=ctx.limit(most=100_000)
    )
    out = [r.to_dict(with_trace=False) for r in rows]
    await _with_executions(ctx, out)
    return {"intents": out}


async def _with_executions(ctx: CommandContext, intents: list[dict[str, Any]]) -> None:
    """Add each approved intent's execution (state, reason, detail): ``None`` before it has one.

    An approved intent whose execution was refused or failed says so where it is listed.
    """
    ids = [i["intent_id"] for i in intents if i.get("status") == IntentStatus.APPROVED]
    found = await ctx.app.store.execution.changes_of_intents(ids)
    for intent in intents:
        if intent.get("status") == IntentStatus.APPROVED:
            intent["execution"] = found.get(intent["intent_id"])


@command("intents.show", summary="Show one intent with its decision trace.")
async def intents_show(ctx: CommandContext) -> dict[str, Any]:
    """Show an intent and why it was decided as it was."""
    intent_id = _arg(ctx, "id")
    row = await ctx.app.store.gate.get_intent(intent_id)
    if row is None:
        raise NotFound(f"no intent {intent_id}", details={"intent_id": intent_id})
    out = row.to_dict()
    out["handoff"] = await ctx.app.store.gate.queue_entry(intent_id)
    await _with_executions(ctx, [out])
    return out


@command("pending", summary="List intents waiting for approval.")
async def pending(ctx: CommandContext) -> dict[str, Any]:
    """List pending approvals, oldest first (and a scope expansion waiting, if any)."""
    rows = await ctx.app.store.gate.list_intents(
        status=IntentStatus.PENDING, limit=ctx.limit(most=100_000)
    )
    expansions = await ctx.app.governance.scope.proposals("pending")
    return {
        "pending": [r.to_dict(with_trace=False) for r in reversed(rows)],
        "scope_expansions": expansions,
    }


@command("approve", access=Access.APPROVE, summary="Approve a pending intent.")
async def approve(ctx: CommandContext) -> dict[str, Any]:
    """Approve as the calling user; the intent is handed to execution."""
    return await ctx.app.approvals.approve(ctx.text("id"), ctx.actor, ctx.optional_text("note"))


@command("reject", access=Access.APPROVE, summary="Reject a pending intent.")
async def reject(ctx: CommandContext) -> dict[str, Any]:
    """Reject as the calling user."""
    return await ctx.app.approvals.reject(ctx.text("id"), ctx.actor, ctx.text("reason"))


@command("queue", summary="Show the hand-off queue to execution.")
async def queue(ctx: CommandContext) -> dict[str, Any]:
    """List intents handed to execution."""
    return {
        "queue": await ctx.app.store.gate.list_queue(
            state=ctx.args.get("state"), limit=ctx.limit(most=100_000)
        )
    }


# -- audit ------------------------------------------------------------------------------


@command("audit.tail", summary="Show the last audit records.")
async def audit_tail(ctx: CommandContext) -> dict[str, Any]:
    """Return the last N audit records."""
    n = ctx.args.get("n", 20)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 100_000:
        raise InvalidArgument("n must be a whole number from 1 to 100000", details={"field": "n"})
    return {"records": [r.to_dict() for r in await ctx.app.store.audit_tail(n)]}


@command("audit.verify", summary="Verify the audit trail's hash chain.")
async def audit_verify(ctx: CommandContext) -> dict[str, Any]:
    """Recompute the chain (governance remembers the outcome for readiness)."""
    result: dict[str, Any] = await ctx.app.governance.service.verify_audit(ctx.actor)
    return result


@command("audit.export", summary="Stream every audit record (JSONL).")
async def audit_export(ctx: CommandContext) -> dict[str, Any]:
    """Stream the records as events, then the count."""
    after = ctx.args.get("after", 0)
    if not isinstance(after, int) or after < 0:
        raise InvalidArgument("after must be a record number", details={"field": "after"})
    count = 0
    async for record in ctx.app.store.audit_records(after):
        await ctx.emit(record.to_dict())
        count += 1
    return {"count": count}


# -- configuration ------------------------------------------------------------------------


@command("reload", access=Access.OPERATE, summary="Re-read the configuration's policy.")
async def reload(ctx: CommandContext) -> dict[str, Any]:
    """Reload policy; a bad file keeps the old policy running."""
    return await ctx.app.reload(ctx.actor)
