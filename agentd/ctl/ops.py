"""agentctl commands of browser operations: ops, op, consent, secret."""

from __future__ import annotations

import argparse
import getpass
import io
import json
import sys

from agentd.core.states import OperationState
from agentd.ctl import render
from agentd.ctl.gate import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from agentd.ctl.main import Session

    Adder = Callable[..., argparse.ArgumentParser]

# Plain strings: argparse quotes choices with repr() in its errors.
STATES = [s.value for s in OperationState]
OP_COLUMNS = ("id", "state", "progress", "workflow", "account", "reason", "created_at")


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """Turn ``k=v`` arguments into a dict.

    :raises UsageError: an argument has no ``=`` or an empty key.
    """
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param wants KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def _step_line(e: dict[str, Any]) -> str:
    mark = {"ok": "ok ", "failed": "-> ", "final": "[] "}.get(e["status"], "   ")
    where = f" {e['target']}" if e.get("target") else ""
    text = f"{mark}{e['index']:>3} {e['action']}{where}: {e['intent']}"
    if e.get("detail") and e["detail"].get("reason"):
        text += f"\n        model: {e['detail']['reason']}"
    if e.get("error"):
        text += f"\n        error: {e['error']}"
    if e.get("screenshot"):
        text += f"\n        screenshot: {e['screenshot']} (sha256 {e['sha256'][:16]}…)"
    return text


def _op_text(r: dict[str, Any]) -> str:
    hidden = ("steps", "params", "result", "spend", "pending_step", "task")
    head = {k: v for k, v in r.items() if k not in hidden}
    lines = [render.kv(head)]
    if r.get("task"):
        lines.append(f"task: {r['task']}")
    if r.get("spend", {}).get("model_calls"):
        lines.append("spend:\n" + render.kv(r["spend"], indent=2))
    if r.get("pending_step"):
        lines.append("step awaiting approval:\n" + render.kv(r["pending_step"], indent=2))
    if r.get("params"):
        lines.append("params:\n" + render.kv(r["params"], indent=2))
    if r.get("result"):
        lines.append("result:\n" + render.kv(r["result"], indent=2))
    if r.get("steps"):
        lines.append("steps:")
        lines.extend("  " + _step_line(s).replace("\n", "\n  ") for s in r["steps"])
    return "\n".join(lines)


def ops_list(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("ops.list", {"status": ns.status, "limit": ns.limit})
    s.out(r, lambda r: render.table(r["operations"], OP_COLUMNS, empty="no operations"))
    return 0


def op_show(s: Session, ns: argparse.Namespace) -> int:
    if not ns.follow:
        s.out(s.call("ops.show", {"id": ns.id}), _op_text)
        return 0

    def on_event(event: Any) -> None:
        if s.json:
            print(render.json_safe(json.dumps(event, ensure_ascii=False)), flush=True)
        elif event.get("type") == "step":
            print(render.terminal_safe(_step_line(event)), flush=True)
        elif event.get("type") == "state":
            print(
                render.terminal_safe(f"state: {event['state']} ({event['progress']})"), flush=True
            )

    r = s.call("ops.show", {"id": ns.id, "follow": True}, on_event=on_event)
    s.out(
        r,
        lambda r: (
            f"{r['id']}: {r['state']} ({r['progress']})"
            + (f" {r['reason']}: {r['error']}" if r.get("reason") else "")
        ),
    )
    return 0 if r["state"] == OperationState.COMPLETED else 1


def op_run(s: Session, ns: argparse.Namespace) -> int:
    if (ns.workflow is None) == (ns.task is None):
        raise UsageError("give a workflow or --task TEXT (one of them)")
    if ns.task is not None:
        if ns.param:
            raise UsageError("--param goes with a workflow, not with --task")
        args: dict[str, Any] = {"task": ns.task, "account": ns.account, "service": ns.service}
    else:
        args = {
            "workflow": ns.workflow,
            "account": ns.account,
            "service": ns.service,
            "params": parse_params(ns.param),
        }
    s.out(s.call("ops.run", args), lambda r: f"{r['id']}: {r['state']} ({r['workflow']})")
    return 0


def op_approve_step(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("ops.approve_step", {"id": ns.id})
    s.out(r, lambda r: f"{r['id']}: {r['state']} (step approved)")
    return 0


def op_reject_step(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("ops.reject_step", {"id": ns.id, "reason": ns.reason})
    s.out(r, lambda r: f"{r['id']}: {r['state']} (step rejected)")
    return 0


def op_cancel(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("ops.cancel", {"id": ns.id}), lambda r: f"{r['id']}: {r['state']}")
    return 0


def consent_grant(s: Session, ns: argparse.Namespace) -> int:
    perms = [p for p in (ns.permissions or "").split(",") if p]
    args = {
        "account": ns.account,
        "service": ns.service,
        "operation": ns.operation,
        "permissions": perms,
    }
    s.out(s.call("consent.grant", args), render.kv)
    return 0


def consent_revoke(s: Session, ns: argparse.Namespace) -> int:
    args = {"account": ns.account, "service": ns.service, "operation": ns.operation}
    s.out(s.call("consent.revoke", args), render.kv)
    return 0


def consent_list(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("consent.list", {"account": ns.account})
    columns = ("account", "service", "operation", "permissions", "version", "active", "granted_at")
    s.out(r, lambda r: render.table(r["consents"], columns, empty="no consents"))
    return 0


def secret_set(s: Session, ns: argparse.Namespace) -> int:
    # The value comes from stdin only: a command line is visible to every user.
    if sys.stdin.isatty():
        value = getpass.getpass(f"value of {ns.account}/{ns.service}/{ns.name}: ")
        data = value.encode("utf-8")
    else:
        data = sys.stdin.buffer.read()
    if not data.strip():
        raise UsageError("no secret value on stdin")
    args = {"account": ns.account, "service": ns.service, "name": ns.name}
    r = s.call("secret.set", args, upload=io.BytesIO(data))
    s.out(
        r,
        lambda r: (
            f"{'replaced' if r['replaced'] else 'stored'} {ns.account}/{ns.service}/{ns.name}"
        ),
    )
    return 0


def secret_list(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("secret.list", {"account": ns.account})
    columns = ("account", "service", "name", "key_fingerprint", "updated_at")
    s.out(r, lambda r: render.table(r["secrets"], columns, empty="no secrets"))
    return 0


def secret_rm(s: Session, ns: argparse.Namespace) -> int:
    args = {"account": ns.account, "service": ns.service, "name": ns.name}
    s.out(s.call("secret.rm", args), lambda r: f"removed {ns.account}/{ns.service}/{ns.name}")
    return 0


_SECRET_ARGS = (
    ("account", "an account id"),
    ("service", "a back-office, as in [browser.services.NAME]"),
    ("name", "the secret's name, e.g. admin_password"),
)


def register(add: Adder, sub_parser: Callable[[str, str], Any]) -> None:
    """Add the browser-operation commands to agentctl's parser."""
    p = add("ops", ops_list, "List browser operations.", "agentctl ops --status failed")
    p.add_argument("--status", choices=STATES, help="only operations in this state")
    p.add_argument("--limit", type=int, default=200, help="most rows shown (default 200)")

    op = sub_parser("op", "Show, run and cancel one browser operation.")
    p = op("show", op_show, "Show an operation and its steps.", "agentctl op show op_0123 --follow")
    p.add_argument("id", help="an operation id")
    p.add_argument("--follow", action="store_true", help="stream step progress until the end")
    p = op(
        "run",
        op_run,
        "Start a workflow, or a task the model plans (it waits for consent when there is none).",
        "agentctl op run product_seo_update --account acme --param product_id=103",
    )
    p.add_argument("workflow", nargs="?", help="a workflow of the knowledge base, e.g. add_note")
    p.add_argument(
        "--task",
        metavar="TEXT",
        help="instead of a workflow: a task in words; the workflow learned for it runs, "
        "else the model plans it step by step (agent mode; needs [llm] api_key)",
    )
    p.add_argument("--account", required=True, help="the account it works for")
    p.add_argument("--service", help="default: [browser] default_service")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="repeatable")
    p = op("cancel", op_cancel, "Cancel an operation.", "agentctl op cancel op_0123")
    p.add_argument("id", help="an operation id")
    p = op(
        "approve-step",
        op_approve_step,
        "Approve the step a model-planned operation waits with (approvers only).",
        "agentctl op approve-step op_0123",
    )
    p.add_argument("id", help="an operation in awaiting_step_approval")
    p = op(
        "reject-step",
        op_reject_step,
        "Reject the step a model-planned operation waits with; it ends (approvers only).",
        'agentctl op reject-step op_0123 --reason "wrong account"',
    )
    p.add_argument("id", help="an operation in awaiting_step_approval")
    p.add_argument("--reason", required=True, help="why (audited)")

    consent = sub_parser("consent", "Grant, revoke and list customer consents.")
    for name, run, summary in (
        ("grant", consent_grant, "Record a consent (a new version each time)."),
        ("revoke", consent_revoke, "Revoke a consent; running operations stop at the next step."),
    ):
        p = consent(
            name, run, summary, f"agentctl consent {name} acme backoffice product_seo_update"
        )
        p.add_argument("account", help="an account id")
        p.add_argument("service", help="a back-office, as in [browser.services.NAME]")
        p.add_argument("operation", nargs="?", default="*", help="workflow name (default: *)")
        if name == "grant":
            p.add_argument(
                "--permissions",
                help="read (open and read pages, sign in) or write (also change things); "
                "comma-separated; default: every permission",
            )
    p = consent("list", consent_list, "List consents.", "agentctl consent list --account acme")
    p.add_argument("--account", help="only this account's consents")

    secret = sub_parser("secret", "Store, list and remove vault secrets.")
    p = secret(
        "set",
        secret_set,
        "Store a secret read from stdin (never from the command line).",
        'printf %s "$PASSWORD" | agentctl secret set acme backoffice admin_password',
    )
    for arg, text in _SECRET_ARGS:
        p.add_argument(arg, help=text)
    p = secret("list", secret_list, "List secret names, never values.", "agentctl secret list")
    p.add_argument("--account", help="only this account's secrets")
    p = secret(
        "rm", secret_rm, "Remove a secret.", "agentctl secret rm acme backoffice admin_password"
    )
    for arg, text in _SECRET_ARGS:
        p.add_argument(arg, help=text)
