"""agentctl commands of the gate: accounts, propose, policy, approvals, audit."""

from __future__ import annotations

import argparse
import json
import os
import sys

from agentd.core.states import IntentStatus
from agentd.ctl import render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from agentd.ctl.main import Session

    Adder = Callable[..., argparse.ArgumentParser]

INTENT_COLUMNS = (
    "intent_id",
    "decision",
    "reason",
    "status",
    "tenant",
    "account",
    "action_type",
    "risk_level",
)


class UsageError(Exception):
    """A problem with the command line found before talking to the daemon (exit 2)."""


def _open(path: str) -> Any:
    try:
        return open(path, "rb")  # closed by the caller
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _decision_text(r: dict[str, Any]) -> str:
    lines = [
        f"{r['intent_id']}: {r['decision']} ({r['reason']})",
        render.kv(
            {
                "status": r.get("status"),
                "tier": r.get("tier"),
                "risk level": r.get("risk_level"),
                "approval source": r.get("approval_source"),
                "auto-executed": r.get("auto_executed"),
                "duplicate": r.get("duplicate"),
                "message": r.get("message") or None,
            },
            indent=2,
        ),
    ]
    if r.get("trace"):
        lines.append("  trace:")
        lines.append(_trace_text(r["trace"], indent=4))
    return "\n".join(lines)


def _trace_text(trace: list[dict[str, Any]], indent: int = 2) -> str:
    pad = " " * indent
    out = []
    for i, entry in enumerate(trace, start=1):
        mark = "ok " if entry["passed"] else "-> "
        saw = json.dumps(entry["saw"], separators=(", ", ": "), ensure_ascii=False)
        out.append(f"{pad}{i}. {mark}{entry['check']}: {entry['said']}")
        out.append(f"{pad}     saw {saw}")
    return "\n".join(out)


def _intent_args(ns: argparse.Namespace) -> dict[str, Any]:
    args: dict[str, Any] = {
        "tenant": ns.tenant,
        "account": ns.account,
        "action_type": ns.action,
        "domain": ns.domain,
        "change_type": ns.change_type,
        "rationale": ns.rationale,
        "confidence": ns.confidence,
        "intent_id": ns.intent_id,
    }
    if ns.diff is not None:
        args["diff"] = ns.diff  # the daemon parses and reports bad JSON with its code
    return {k: v for k, v in args.items() if v is not None}


# -- runners --------------------------------------------------------------------------


def accounts_import(s: Session, ns: argparse.Namespace) -> int:
    with _open(ns.file) as fh:
        r = s.call(
            "accounts.import",
            {"name": os.path.basename(ns.file), "format": ns.format, "skip_bad": ns.skip_bad},
            upload=fh,
        )
    s.out(
        r,
        lambda r: "\n".join(
            [
                f"imported {r['imported']} accounts from {r['source']} "
                f"({r['created']} new, {r['updated']} updated, {r['skipped']} skipped)"
            ]
            # Each error names its line already ("line 3: ..." or "FILE:3: ...").
            + [f"  skipped {x['error']}" for x in r["skipped_rows"]]
        ),
    )
    return 0


def accounts_list(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("accounts.list", {"tenant": ns.tenant, "limit": ns.limit})
    s.out(
        r,
        lambda r: render.table(
            r["accounts"], ("id", "tenant", "name", "stage", "trusted_mode", "domains")
        ),
    )
    return 0


def accounts_show(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("accounts.show", {"id": ns.id}), render.kv)
    return 0


def accounts_set(s: Session, ns: argparse.Namespace) -> int:
    args: dict[str, Any] = {"id": ns.id, "stage": ns.stage, "trust": ns.trust}
    if ns.allowlist is not None:
        args["allowlist"] = [a for a in ns.allowlist.split(",") if a]
    s.out(s.call("accounts.set", args), render.kv)
    return 0


def propose(s: Session, ns: argparse.Namespace) -> int:
    if ns.file:
        if any(getattr(ns, k) for k in ("tenant", "account", "action")):
            raise UsageError("give either --file or --tenant/--account/--action, not both")
        with _open(ns.file) as fh:
            r = s.call("propose.batch", {"name": os.path.basename(ns.file)}, upload=fh)

        def human(r: dict[str, Any]) -> str:
            rows = [
                {
                    **x,
                    "decision": x.get("decision") or "ERROR",
                    "reason": x.get("reason") or x["error"]["message"],
                }
                for x in r["results"]
            ]
            counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
            return render.table(rows, ("line", "intent_id", "decision", "reason")) + f"\n{counts}"

        s.out(r, human)
        return 1 if r["counts"].get("ERROR") else 0
    for flag, value in (
        ("--tenant", ns.tenant),
        ("--account", ns.account),
        ("--action", ns.action),
    ):
        if not value:
            raise UsageError(f"{flag} is required (or use --file)")
    s.out(s.call("propose", _intent_args(ns)), _decision_text)
    return 0


def policy_check(s: Session, ns: argparse.Namespace) -> int:
    s.out(
        s.call("policy.check", _intent_args(ns)),
        lambda r: "(dry run: nothing was written)\n" + _decision_text(r),
    )
    return 0


def intents(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("intents.list", {"status": ns.status, "tenant": ns.tenant, "limit": ns.limit})

    def human(r: dict[str, Any]) -> str:
        rows = [
            {**row, "executed": f"{exe['state']} {exe['reason'] or ''}".strip()}
            if (exe := row.get("execution"))
            else row
            for row in r["intents"]
        ]
        return render.table(rows, (*INTENT_COLUMNS, "executed", "created_at"))

    s.out(r, human)
    return 0


def explain(s: Session, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        head = (
            f"{r['intent_id']}: {r['action_type']} on {r['account']} ({r['tenant']}) — "
            f"{r['decision']}, reason {r['reason']}, status {r['status']}"
        )
        parts = [head]
        if r.get("message"):
            parts.append(f"  {r['message']}")
        parts.append("  checks, in the order they ran:")
        parts.append(_trace_text(r["trace"], indent=4))
        if r.get("decided_by"):
            parts.append(
                f"  decided by {r['decided_by']} at {r['decided_at']}"
                + (f": {r['decision_note']}" if r.get("decision_note") else "")
            )
        if r.get("handoff"):
            parts.append(
                f"  handed to execution at {r['handoff']['enqueued_at']} ({r['handoff']['state']})"
            )
        exe = r.get("execution")
        if exe:
            parts.append(
                f"  execution {exe['id']}: {exe['state']}"
                + (f" {exe['reason']}" if exe.get("reason") else "")
                + (f": {exe['detail']}" if exe.get("detail") else "")
            )
        return "\n".join(parts)

    s.out(s.call("intents.show", {"id": ns.intent}), human)
    return 0


def pending(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("pending", {"limit": ns.limit})

    def human(r: dict[str, Any]) -> str:
        text = render.table(
            r["pending"],
            (
                "intent_id",
                "tenant",
                "account",
                "action_type",
                "reason",
                "risk_level",
                "created_at",
                "expires_at",
            ),
            empty="no intents wait for approval",
        )
        for proposal in r.get("scope_expansions") or ():
            from agentd.ctl.governance import proposal_text

            text += "\nscope expansion (needs distinct approvers):\n" + proposal_text(proposal)
        return text

    s.out(r, human)
    return 0


def _expansion_or(r: dict[str, Any], text: str) -> str:
    if "scope_expansion" in r:
        from agentd.ctl.governance import proposal_text

        return proposal_text(r["scope_expansion"])
    return text


def approve(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("approve", {"id": ns.intent, "note": ns.note})
    s.out(
        r,
        lambda r: _expansion_or(
            r, f"{r.get('intent_id')} approved by {r.get('decided_by')} and handed to execution"
        ),
    )
    return 0


def reject(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("reject", {"id": ns.intent, "reason": ns.reason})
    s.out(
        r,
        lambda r: _expansion_or(
            r, f"{r.get('intent_id')} rejected by {r.get('decided_by')}: {r.get('decision_note')}"
        ),
    )
    return 0


def queue(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("queue", {"state": ns.state, "limit": ns.limit})
    s.out(
        r,
        lambda r: render.table(
            r["queue"],
            (
                "seq",
                "intent_id",
                "approval_source",
                "state",
                "account",
                "action_type",
                "enqueued_at",
            ),
            empty="the hand-off queue is empty",
        ),
    )
    return 0


def audit_tail(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("audit.tail", {"n": ns.n})
    s.out(
        r, lambda r: render.table(r["records"], ("seq", "at", "event", "actor", "subject", "data"))
    )
    return 0


def audit_verify(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("audit.verify")
    s.out(
        r,
        lambda r: (
            f"audit trail intact: {r['count']} records"
            if r["intact"]
            else f"audit trail BROKEN at record {r['first_broken_seq']}: {r['problem']} "
            f"({r['count']} records verified before it)"
        ),
    )
    return 0 if r["intact"] else 4


def audit_export(s: Session, ns: argparse.Namespace) -> int:
    out = sys.stdout

    def write(record: Any) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        out.write(render.json_safe(line) + "\n")

    r = s.call("audit.export", {"after": ns.after}, on_event=write)
    print(f"exported {r['count']} records", file=sys.stderr)
    return 0


def reload(s: Session, ns: argparse.Namespace) -> int:
    s.out(
        s.call("reload"), lambda r: f"configuration reloaded from {r['config_file'] or 'defaults'}"
    )
    return 0


# -- parser ---------------------------------------------------------------------------


def _intent_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant", help="tenant id")
    p.add_argument("--account", help="account id")
    p.add_argument("--action", help="action type, e.g. send_follow_up_email")
    p.add_argument("--domain", help="SEO, CONTENT, ADS, CRO or SALES")
    p.add_argument("--change-type", help="change type, e.g. meta_update")
    p.add_argument("--diff", help="the change as a JSON object")
    p.add_argument("--rationale", help="why")
    p.add_argument(
        "--confidence", type=float, help="0..1 (an operator's intent without one counts as 1)"
    )
    p.add_argument("--intent-id", help="explicit id (default: derived from the content)")


def register(add: Adder, sub_parser: Callable[[str, str], Any]) -> None:
    """Add the gate's commands to agentctl's parser."""
    accounts = sub_parser("accounts", "Import, list, show and change accounts.")
    p = accounts(
        "import",
        accounts_import,
        "Import accounts from a CSV (with header) or JSONL file.",
        "agentctl accounts import accounts.csv",
    )
    p.add_argument("file", help="CSV (with a header) or JSONL file")
    p.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file name")
    p.add_argument("--skip-bad", action="store_true", help="import the good rows, report the bad")
    p = accounts("list", accounts_list, "List accounts.", "agentctl accounts list --tenant acme")
    p.add_argument("--tenant", help="only this tenant's accounts")
    p.add_argument("--limit", type=int, default=1000, help="most rows shown (default 1000)")
    p = accounts("show", accounts_show, "Show one account.", "agentctl accounts show globex")
    p.add_argument("id", help="an account id")
    p = accounts(
        "set",
        accounts_set,
        "Set an account's stage, trusted mode or own allowlist.",
        "agentctl accounts set globex --stage discovery --trust ACTIVE",
    )
    p.add_argument("id", help="an account id")
    p.add_argument("--stage", help="deal stage, e.g. discovery or negotiation")
    p.add_argument("--trust", choices=("NONE", "ACTIVE", "PAUSED", "REVOKED"), help="trusted mode")
    p.add_argument("--allowlist", help="comma-separated action types (empty: none)")

    p = add(
        "propose",
        propose,
        "Submit an intent (or a JSONL file of them) through the gate.",
        "agentctl propose --tenant t1 --account globex --action send_follow_up_email",
    )
    _intent_flags(p)
    p.add_argument("--file", help="JSONL file, one intent per line")
    policy = sub_parser("policy", "Ask the gate without side effects.")
    p = policy(
        "check",
        policy_check,
        "Answer what the gate would decide now; writes nothing.",
        "agentctl policy check --tenant t1 --account globex --action send_proposal",
    )
    _intent_flags(p)

    p = add("intents", intents, "List intents.", "agentctl intents --status pending")
    p.add_argument(
        "--status",
        choices=[s.value for s in IntentStatus],
        help="only intents in this state",
    )
    p.add_argument("--tenant", help="only this tenant's intents")
    p.add_argument("--limit", type=int, default=200, help="most rows shown (default 200)")
    p = add(
        "explain",
        explain,
        "Show why an intent was (or was not) let through.",
        "agentctl explain int_0123456789abcdef01234567",
    )
    p.add_argument("intent", help="an intent id")
    p = add(
        "pending", pending, "List intents waiting for approval, oldest first.", "agentctl pending"
    )
    p.add_argument("--limit", type=int, default=200, help="most rows shown (default 200)")
    p = add(
        "approve",
        approve,
        "Approve a pending intent (you are recorded as the approver).",
        "agentctl approve int_0123456789abcdef01234567 --note 'checked the copy'",
    )
    p.add_argument("intent", help="a pending intent's id")
    p.add_argument("--note", help="why, for the audit trail")
    p = add(
        "reject",
        reject,
        "Reject a pending intent.",
        "agentctl reject int_0123456789abcdef01234567 --reason 'wrong account'",
    )
    p.add_argument("intent", help="a pending intent's id")
    p.add_argument("--reason", required=True, help="why, for the audit trail")
    p = add("queue", queue, "Show intents handed to execution.", "agentctl queue")
    p.add_argument("--state", help="only queue rows in this state, e.g. queued")
    p.add_argument("--limit", type=int, default=200, help="most rows shown (default 200)")

    audit = sub_parser("audit", "Read and verify the audit trail.")
    p = audit("tail", audit_tail, "Show the last audit records.", "agentctl audit tail -n 50")
    p.add_argument("-n", type=int, default=20, help="how many records (default 20)")
    audit(
        "verify",
        audit_verify,
        "Verify the hash chain (exit 4 when broken).",
        "agentctl audit verify",
    )
    p = audit(
        "export",
        audit_export,
        "Print every record as JSONL.",
        "agentctl audit export > audit.jsonl",
    )
    p.add_argument("--after", type=int, default=0, help="start after this record number")
    add(
        "reload",
        reload,
        "Re-read the configuration's policy (a bad file changes nothing).",
        "agentctl reload",
    )
