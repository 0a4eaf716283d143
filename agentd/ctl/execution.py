"""agentctl commands of execution and rollback: executions, execution, rollback, incidents."""

from __future__ import annotations

import argparse

from agentd.core.states import ExecutionState
from agentd.ctl import render
from agentd.ctl.gate import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from agentd.ctl.main import Session

    Adder = Callable[..., argparse.ArgumentParser]

# Plain strings: argparse quotes choices with repr() in its errors.
STATES = [s.value for s in ExecutionState]
EXE_COLUMNS = ("id", "kind", "state", "action_type", "account", "executor", "risk", "reason")
INCIDENT_COLUMNS = ("id", "severity", "status", "kind", "title", "created_at")
# A rollback runs browser operations (a read, the undo, a read): give it time.
ROLLBACK_TIMEOUT_S = 900.0


class _Words(argparse._StoreAction):
    """A positional word list whose first word may be one of ``verbs``.

    ``rollback TOKEN`` runs while ``rollback check TOKEN`` checks, so the verbs
    cannot be subparsers; kept on the action, they reach shell completion
    (:func:`agentd.ctl.tree.leading_words`) from the parser like everything else.
    """

    def __init__(self, *args: Any, verbs: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verbs = verbs


def executions_list(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("executions.list", {"status": ns.status, "limit": ns.limit})
    s.out(r, lambda r: render.table(r["executions"], EXE_COLUMNS))
    return 0


def _execution_text(r: dict[str, Any]) -> str:
    head = {
        k: r.get(k)
        for k in (
            "id",
            "kind",
            "intent_id",
            "state",
            "reason",
            "detail",
            "action_type",
            "account",
            "tenant",
            "executor",
            "risk",
            "autonomous",
            "target_state",
            "started_at",
            "finished_at",
            "rollback_of",
            "rollback_type",
        )
        if r.get(k) is not None
    }
    lines = [render.kv(head)]
    if r.get("checks"):
        lines.append("checks:")
        for c in r["checks"]:
            mark = "ok  " if c.get("passed") else "STOP"
            lines.append(f"  {mark} {c.get('check')}: {c.get('said')}")
    for key in ("before", "after", "diff", "result"):
        if r.get(key):
            lines.append(f"{key}:")
            lines.append(render.kv(r[key], indent=2))
    tok = r.get("rollback_token")
    if tok:
        lines.append(f"rollback token: {tok['token']} ({tok['state']}, deadline {tok['deadline']})")
    for op in r.get("operations") or []:
        lines.append(f"operation {op['phase']}: {op['id']} {op['workflow']} {op['state']}")
        for shot in op.get("screenshots") or []:
            lines.append(f"  {shot}")
    if r.get("rollbacks"):
        lines.append("rollbacks: " + ", ".join(r["rollbacks"]))
    return "\n".join(lines)


def execution_show(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("execution.show", {"id": ns.id}), _execution_text)
    return 0


def rollback_check(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("rollback.check", {"token": ns.token})

    def text(r: dict[str, Any]) -> str:
        verdict = f"available: {r['type']}" if r["available"] else "not available"
        return f"{verdict} ({r['reason']})\n{r['detail']}\n" + render.kv(
            {k: r.get(k) for k in ("token", "execution", "state", "deadline", "risk", "executor")}
        )

    s.out(r, text)
    # Like test(1): a script can ask "can this be rolled back?" by the status.
    return 0 if r["available"] else 1


def rollback_run(s: Session, ns: argparse.Namespace) -> int:
    s.timeout = max(s.timeout, ROLLBACK_TIMEOUT_S)
    r = s.call("rollback.run", {"token": ns.token, "reason": ns.reason})

    def text(r: dict[str, Any]) -> str:
        if r["state"] == "escalated":
            return f"escalated: incident {r['incident']} opened; nothing was changed\n{r['detail']}"
        return f"rolled back ({r['type']}) by {r['rollback']}\n{r['detail']}"

    s.out(r, text)
    return 0


def rollback_extend(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("rollback.extend", {"token": ns.token, "until": ns.until, "reason": ns.reason})
    s.out(r, lambda r: f"deadline of {r['token']} is now {r['deadline']}")
    return 0


def rollback_tokens(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("rollback.tokens")
    s.out(
        r,
        lambda r: render.table(
            r["tokens"], ("token", "execution_id", "state", "risk", "executed_at", "deadline")
        ),
    )
    return 0


def incidents_list(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("incidents.list", {"status": ns.status, "limit": ns.limit})
    s.out(r, lambda r: render.table(r["incidents"], INCIDENT_COLUMNS))
    return 0


def incidents_resolve(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("incidents.resolve", {"id": ns.id, "note": ns.note})
    s.out(r, lambda r: f"resolved {r['id']} ({r['title']})")
    return 0


def rollback(s: Session, ns: argparse.Namespace) -> int:
    words = list(ns.words)
    verb = words[0] if words[0] in ("check", "extend", "tokens") else "run"
    args = words[1:] if verb != "run" else words
    if verb == "tokens":
        if args:
            raise UsageError("rollback tokens takes no argument")
        return rollback_tokens(s, ns)
    if len(args) != 1:
        raise UsageError(f"rollback {'' if verb == 'run' else verb + ' '}wants exactly one TOKEN")
    ns.token = args[0]
    if verb == "check":
        return rollback_check(s, ns)
    if not ns.reason:
        raise UsageError(f"rollback {'' if verb == 'run' else verb + ' '}needs --reason")
    if verb == "extend":
        if not ns.until:
            raise UsageError("rollback extend needs --until")
        return rollback_extend(s, ns)
    return rollback_run(s, ns)


def incidents_open(s: Session, ns: argparse.Namespace) -> int:
    r = s.call(
        "incidents.open", {"severity": ns.severity, "reason": ns.reason, "account": ns.account}
    )
    s.out(r, lambda r: f"opened {r['id']} ({r['severity']}): {r['title']}")
    return 0


def incidents(s: Session, ns: argparse.Namespace) -> int:
    if not ns.words:
        return incidents_list(s, ns)
    if ns.words == ["open"]:
        if not ns.severity or not ns.reason:
            raise UsageError("incidents open needs --severity and --reason")
        return incidents_open(s, ns)
    if ns.words[0] != "resolve" or len(ns.words) != 2:
        raise UsageError(
            "incidents takes no argument, or: resolve ID --note TEXT, "
            "or: open --severity LEVEL --reason TEXT"
        )
    if not ns.note:
        raise UsageError("incidents resolve needs --note")
    ns.id = ns.words[1]
    return incidents_resolve(s, ns)


HANDOFF_COLUMNS = ("id", "state", "action_type", "account", "handed_off_at", "closed_by")


def handoffs_list(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("handoffs.list", {"status": ns.status, "limit": ns.limit})
    s.out(r, lambda r: render.table(r["handoffs"], HANDOFF_COLUMNS))
    return 0


def handoff_done(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("handoff.done", {"id": ns.id, "note": ns.note})
    s.out(r, lambda r: f"hand-off {r['id']} closed: done ({r['action_type']} on {r['account']})")
    return 0


def handoff_failed(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("handoff.failed", {"id": ns.id, "reason": ns.reason})
    s.out(r, lambda r: f"hand-off {r['id']} closed: failed ({r['action_type']} on {r['account']})")
    return 0


def register(add: Adder, sub_parser: Callable[[str, str], Any]) -> None:
    """Add the execution and rollback commands to agentctl's parser."""
    p = add(
        "executions", executions_list, "List executions.", "agentctl executions --status failed"
    )
    p.add_argument("--status", choices=STATES, help="only executions in this state")
    p.add_argument("--limit", type=int, default=200, help="most rows shown (default 200)")

    exe = sub_parser("execution", "Show one execution.")
    p = exe(
        "show",
        execution_show,
        "Show an execution: checks, snapshots, diff, rollback token, screenshots.",
        "agentctl execution show exe_0123456789abcdef",
    )
    p.add_argument("id", help="an execution id")

    p = add(
        "rollback",
        rollback,
        "Check, run or extend the rollback of an executed change "
        "(rollback TOKEN --reason | rollback check TOKEN | rollback extend TOKEN --until T "
        "--reason | rollback tokens).",
        'agentctl rollback rbk_0123 --reason "wrong product"',
    )
    p.description = f"{p.description} rollback check exits 1 when it cannot be rolled back."
    p.add_argument(
        "words",
        nargs="+",
        action=_Words,
        verbs=("check", "extend", "tokens"),
        metavar="ARG",
        help="a rollback token (or an execution id), optionally after check, extend or tokens",
    )
    p.add_argument("--reason", help="why (run, extend)")
    p.add_argument("--until", help="new deadline, ISO 8601 (extend)")

    p = add(
        "incidents",
        incidents,
        "List incidents, resolve one (incidents resolve ID --note TEXT), or report one "
        "(incidents open --severity critical --reason TEXT).",
        'agentctl incidents resolve inc_0123 --note "restored by hand"',
    )
    p.add_argument(
        "words",
        nargs="*",
        action=_Words,
        verbs=("resolve", "open"),
        metavar="resolve ID | open",
        help="resolve or report an incident",
    )
    p.add_argument(
        "--severity",
        choices=("critical", "high", "medium", "low"),
        help="how bad (open); critical trips the critical-incident breaker",
    )
    p.add_argument("--reason", help="what happened (open)")
    p.add_argument("--account", help="the account it concerns (open)")
    p.add_argument("--status", choices=("open", "resolved"), help="only these incidents")
    p.add_argument("--note", help="how it was resolved (resolve)")
    p.add_argument("--limit", type=int, default=200, help="most rows shown (default 200)")

    p = add(
        "handoffs",
        handoffs_list,
        "List hand-offs to a person (executions of the handoff executor).",
        "agentctl handoffs --status open",
    )
    p.add_argument("--status", choices=("open", "done", "failed"), help="only these hand-offs")
    p.add_argument("--limit", type=int, default=200, help="most rows shown (default 200)")

    handoff = sub_parser("handoff", "Close a hand-off to a person.")
    p = handoff(
        "done",
        handoff_done,
        "Record that a person did what was approved (the execution succeeds).",
        'agentctl handoff done exe_0123456789abcdef --note "proposal sent from the CRM"',
    )
    p.add_argument("id", help="the hand-off's execution id")
    p.add_argument("--note", required=True, help="what was done")
    p = handoff(
        "failed",
        handoff_failed,
        "Record that what was approved could not be done (counts as a failed execution).",
        'agentctl handoff failed exe_0123456789abcdef --reason "customer asked to wait"',
    )
    p.add_argument("id", help="the hand-off's execution id")
    p.add_argument("--reason", required=True, help="why it could not be done")
