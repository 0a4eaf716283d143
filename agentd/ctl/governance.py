"""agentctl commands of governance: metrics, breakers, level, kill switch, readiness, scope."""

from __future__ import annotations

import argparse

from agentd.ctl import render
from agentd.ctl.gate import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from agentd.ctl.main import Session

    Adder = Callable[..., argparse.ArgumentParser]

LEVELS = ("L3", "L3+", "L4", "L4+")
RULE_COLUMNS = ("name", "metric", "threshold", "window", "action", "severity", "alert_only")
TRIP_COLUMNS = ("key", "tripped_at", "action", "severity", "alert_only", "effects", "message")
PROPOSAL_COLUMNS = (
    "id",
    "status",
    "current_level",
    "target_level",
    "action_types",
    "approvals_missing",
    "expires_at",
)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _metrics_text(r: dict[str, Any]) -> str:
    c, rates = r["counts"], r["rates"]
    severities = ", ".join(f"{k} {v}" for k, v in sorted(c["incidents_by_severity"].items()))
    return "\n".join(
        [
            f"period:        {r['since']} to {r['until']}",
            f"intents:       {c['intents_total']} (auto-executed {c['intents_auto_executed']}, "
            f"approved {c['intents_approved']}, rejected {c['intents_rejected']}, "
            f"expired {c['intents_expired']}, blocked {c['intents_blocked']})",
            f"executions:    succeeded {c['executions_succeeded']}, failed "
            f"{c['executions_failed']}, rolled back {c['executions_rolled_back']}",
            f"rates:         success {_pct(rates['success_rate'])}, approval "
            f"{_pct(rates['approval_rate'])}, rollback {_pct(rates['rollback_rate'])}, error "
            f"{_pct(rates['error_rate'])}, failed per intent "
            f"{_pct(rates['intent_failure_rate'])}",
            f"incidents:     {c['incidents_total']} ({severities or 'none'}); from autonomous "
            f"actions {c['incidents_from_autonomous']}",
            f"safety events: constraint violations {c['constraint_violations']}, emergency "
            f"aborts {c['emergency_aborts']}, safety-gate triggers {c['gate_triggers']}",
        ]
    )


def metrics(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("metrics", {"since": ns.since, "until": ns.until}), _metrics_text)
    return 0


def breaker_status(s: Session, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        mode = "enabled" if r["enabled"] else "DISABLED"
        if r["alert_only"]:
            mode += ", alert-only mode (trips change nothing)"
        lines = [
            f"breakers: {mode}; level {r['level']}; paused action types: "
            f"{', '.join(r['paused_action_types']) or 'none'}",
            "",
            render.table(r["rules"], RULE_COLUMNS),
            "",
            "tripped:" if r["tripped"] else "tripped: none",
        ]
        if r["tripped"]:
            lines.append(render.table(r["tripped"], TRIP_COLUMNS))
        return "\n".join(lines)

    s.out(s.call("breaker.status"), human)
    return 0


def breaker_reset(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("breaker.reset", {"name": ns.name, "reason": ns.reason})

    def human(r: dict[str, Any]) -> str:
        text = f"reset {', '.join(r['reset'])} ({r['reason']})"
        if r["unpaused"]:
            text += f"; {', '.join(r['unpaused'])} may auto-execute again"
        return f"{text}; {r['note']}"

    s.out(r, human)
    return 0


def _level_text(r: dict[str, Any]) -> str:
    changed = r.get("kill_switch_changed") or {}
    kill = "ON" if r["kill_switch"] else "off"
    if changed:
        kill += (
            f" (turned {'on' if changed['on'] else 'off'} by {changed['by']} at {changed['at']})"
        )
    pending = r.get("pending_expansion")
    lines = {
        "level": f"{r['level']} (from {r['source']}; configured {r['configured_level']})",
        "since": r.get("level_since"),
        "kill switch": kill,
        "paused action types": ", ".join(r["paused_action_types"]) or "none",
        "allowlist additions": ", ".join(r["allowlist_additions"]) or "none",
        "breakers tripped": ", ".join(r["breakers_tripped"]) or "none",
        "waiting expansion": (
            f"{pending['id']}: {pending['current_level']} -> {pending['target_level']} "
            f"({pending['approvals_missing']} approval(s) missing)"
            if pending
            else "none"
        ),
    }
    text = render.kv(lines)
    if r.get("tenants"):
        text += "\n" + render.kv({"tenants": r["tenants"]})
    return text


def level_show(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("level"), _level_text)
    return 0


def level_set(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("level.set", {"level": ns.level, "reason": ns.reason})
    s.out(r, lambda r: r["message"])
    return 0


def kill_switch(s: Session, ns: argparse.Namespace) -> int:
    if ns.state is None:
        s.out(s.call("level"), lambda r: f"kill switch {'ON' if r['kill_switch'] else 'off'}")
        return 0
    if not ns.reason:
        raise UsageError("kill-switch on|off needs --reason TEXT")
    r = s.call(f"kill_switch.{ns.state}", {"reason": ns.reason})

    def human(r: dict[str, Any]) -> str:
        text = str(r["message"])
        if r["operations_stopped"]:
            text += f"; {r['operations_stopped']} running operation(s) stop at their next step"
        return text

    s.out(r, human)
    return 0


def readiness(s: Session, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        verdict = "READY" if r["ready"] else "NOT READY"
        lines = [
            f"readiness {r['score']} / {r['max_score']}: {verdict} (needs {r['threshold']} with "
            f"every required item met); level {r['level']}; rates over {r['period_days']:g} days"
        ]
        for c in r["checklists"]:
            lines.append(f"{c['checklist']}: {c['score']} / {c['max_score']}")
            for i in c["items"]:
                mark = "[x]" if i["met"] else "[ ]"
                req = ", required" if i["required"] else ""
                lines.append(f"  {mark} {i['id']} ({i['weight']}{req}, {i['kind']}): {i['why']}")
        lines.append("blockers: " + (", ".join(r["blockers"]) or "none"))
        if r["recommendations"]:
            lines.append("recommendations:")
            lines += [f"  ({x['priority']}) {x['text']}" for x in r["recommendations"]]
        return "\n".join(lines)

    s.out(s.call("governance.readiness"), human)
    return 0


def attest(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("governance.attest", {"item": ns.item, "by": ns.by, "evidence": ns.evidence})
    s.out(r, lambda r: f"{r['item']} attested by {r['by']}; counts until {r['expires_at']}")
    return 0


def attestations(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("governance.attestations")
    columns = ("item", "by", "at", "expires_at", "valid", "evidence")
    s.out(r, lambda r: render.table(r["attestations"], columns))
    return 0


def proposals(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("governance.proposals", {"status": ns.status})
    s.out(r, lambda r: render.table(r["proposals"], PROPOSAL_COLUMNS))
    return 0


def proposal_text(r: dict[str, Any]) -> str:
    """Describe a scope expansion in a few lines."""
    approvals = ", ".join(a["by"] for a in r["approvals"]) or "none yet"
    lines = [
        f"{r['id']}: {r['status']}; {r['current_level']} -> {r['target_level']}; allowlist "
        f"additions: {', '.join(r['action_types']) or 'none'}",
        f"  approvals: {approvals} ({r['approvals_missing']} missing of "
        f"{r['required_approvals']}, from distinct users); expires {r['expires_at']}",
        f"  rationale: {r['rationale']}",
    ]
    applied = r.get("applied")
    if applied:
        lines.append(
            f"  applied: level {applied['from']} -> {applied['level']}; added to the allowlist: "
            f"{', '.join(applied['added']) or 'none'}"
        )
    if r.get("decision_note") and r["status"] == "rejected":
        lines.append(f"  rejected by {r['decided_by']}: {r['decision_note']}")
    return "\n".join(lines)


def show(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("governance.show", {"id": ns.id}), proposal_text)
    return 0


def approve(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("governance.approve", {"id": ns.id, "note": ns.note}), proposal_text)
    return 0


def reject(s: Session, ns: argparse.Namespace) -> int:
    s.out(s.call("governance.reject", {"id": ns.id, "reason": ns.reason}), proposal_text)
    return 0


def register(add: Adder, sub_parser: Callable[[str, str], Any]) -> None:
    """Add governance's commands to agentctl's parser."""
    p = add(
        "metrics",
        metrics,
        "Show intents, executions, rates, incidents and safety events for a period.",
        "agentctl metrics --since 7d",
    )
    p.add_argument("--since", help="ISO date or time, or 30m, 24h, 7d, 2w ago (default 24h)")
    p.add_argument("--until", help="ISO date or time, or a time ago (default now)")

    breaker = sub_parser("breaker", "Circuit breakers.")
    breaker(
        "status",
        breaker_status,
        "Show breaker rules, tripped breakers and paused action types.",
        "agentctl breaker status",
    )
    p = breaker(
        "reset",
        breaker_reset,
        "Reset a tripped breaker (lifts its pause; a lowered level stays lowered).",
        "agentctl breaker reset high_error_rate --reason 'site fixed, checked the failures'",
    )
    p.add_argument("name", help="a rule, or rule:action_type for one paused action type")
    p.add_argument("--reason", required=True, help="why, for the audit trail")

    # ``agentctl level`` shows; ``level set`` is its subcommand.
    g = add(
        "level",
        level_show,
        "Show the autonomy level, kill switch and paused action types, or set the level.",
        "agentctl level",
    )
    inner = g.add_subparsers(dest="level_command", metavar="COMMAND", parser_class=type(g))
    p = inner.add_parser(
        "set",
        help="Lower the level at once, or propose raising it (needs distinct approvers).",
        description="Lower the level at once, or propose raising it (needs distinct approvers).",
        epilog="Example: agentctl level set L3 --reason 'holiday freeze'",
    )
    p.set_defaults(run=level_set)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("level", help="L3, L3+, L4 or L4+")
    p.add_argument("--reason", required=True, help="why, for the audit trail")

    p = add(
        "kill-switch",
        kill_switch,
        "Stop (on) or allow again (off) all auto-execution; without a state, show it.",
        "agentctl kill-switch on --reason 'bad deploy of the back-office'",
    )
    p.add_argument("state", nargs="?", choices=("on", "off"), help="on or off (default: show)")
    p.add_argument("--reason", help="why, for the audit trail (needed with on and off)")

    gov = sub_parser("governance", "Readiness, attestations and scope expansion.")
    gov(
        "readiness",
        readiness,
        "Score readiness for more autonomy: checklists, blockers, recommendations.",
        "agentctl governance readiness",
    )
    p = gov(
        "attest",
        attest,
        "Attest a readiness item with evidence (it expires after a configured time).",
        "agentctl governance attest incident_playbook --by 'Dana Ops' "
        "--evidence 'https://wiki/playbook v3'",
    )
    p.add_argument("item", help="a readiness item id, as governance readiness lists them")
    p.add_argument("--by", required=True, help="who vouches for it")
    p.add_argument("--evidence", required=True, help="where the proof is (a document, a link)")
    gov("attestations", attestations, "List attestations.", "agentctl governance attestations")
    p = gov(
        "proposals",
        proposals,
        "List scope-expansion proposals.",
        "agentctl governance proposals --status pending",
    )
    p.add_argument(
        "--status",
        choices=("pending", "approved", "rejected", "expired"),
        help="only proposals in this state",
    )
    p = gov(
        "show", show, "Show a scope expansion.", "agentctl governance show scope_0123456789abcdef"
    )
    p.add_argument("id", help="a scope-expansion id (scope_...)")
    p = gov(
        "approve",
        approve,
        "Approve a scope expansion (it needs distinct approvers; the last one applies it).",
        "agentctl governance approve scope_0123456789abcdef --note 'reviewed the report'",
    )
    p.add_argument("id", help="a scope-expansion id (scope_...)")
    p.add_argument("--note", help="why, for the audit trail")
    p = gov(
        "reject",
        reject,
        "Reject a scope expansion; nothing changes.",
        "agentctl governance reject scope_0123456789abcdef --reason 'wait for Q3'",
    )
    p.add_argument("id", help="a scope-expansion id (scope_...)")
    p.add_argument("--reason", required=True, help="why, for the audit trail")
