"""agentctl commands of the proactive loop: interactions, patterns, goals, tasks, digest."""

from __future__ import annotations

import argparse
import os

from agentd.ctl import render
from agentd.ctl.gate import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from agentd.ctl.main import Session

    Adder = Callable[..., argparse.ArgumentParser]

# agentd.core.interactions.InteractionKind, repeated here so agentctl starts
# without importing the core (a test keeps the two equal).
INTERACTION_KINDS = (
    "email",
    "meeting",
    "chat",
    "page_visit",
    "pricing_page_visit",
    "support_ticket",
)
INTERACTION_DIRECTIONS = ("in", "out")
GOAL_COLUMNS = (
    "id",
    "tenant",
    "type",
    "name",
    "target",
    "current",
    "verdict",
    "status",
    "last_day",
)


def _goal_view(r: dict[str, Any]) -> dict[str, Any]:
    """Show a goal's end as the operator gave it: the last day, inclusive.

    The protocol's ``end`` is the instant the goal stops (excluded): for
    ``--end 2026-12-01`` that is 2026-12-02T00:00:00+00:00, which read as the
    end date would be a day late.
    """
    from datetime import datetime, time  # only the goal commands pay for it

    view = dict(r)
    end, last = view.pop("end", None), view.pop("last_day", None)
    try:
        at_midnight = datetime.fromisoformat(end).timetz().replace(tzinfo=None) == time()
    except (TypeError, ValueError):
        at_midnight = False
    if at_midnight and last:
        view["end"] = f"{last} (the last day, inclusive; UTC)"
    else:
        view["end"] = f"{end} (excluded)" if end else None
    return view


TASK_COLUMNS = (
    "name",
    "interval_s",
    "last_run",
    "last_result",
    "next_run",
    "failures",
    "running",
)


def _open(path: str) -> Any:
    try:
        return open(path, "rb")  # closed by the caller
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def interactions_import(s: Session, ns: argparse.Namespace) -> int:
    with _open(ns.file) as fh:
        r = s.call(
            "interactions.import",
            {"name": os.path.basename(ns.file), "format": ns.format, "skip_bad": ns.skip_bad},
            upload=fh,
        )
    s.out(
        r,
        lambda r: "\n".join(
            [
                f"imported {r['imported']} interactions from {r['source']} ({r['read']} read,"
                f" {r['duplicates']} duplicates, {r['skipped']} skipped)"
            ]
            # Each error names its line already ("line 3: ..." or "FILE:3: ...").
            + [f"  skipped {x['error']}" for x in r["skipped_rows"]]
        ),
    )
    return 0


def patterns(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("patterns", {"account": ns.account, "since": ns.since, "limit": ns.limit})
    columns = ("detected_at", "account", "kind", "severity", "direction", "summary")
    s.out(r, lambda r: render.table(r["patterns"], columns))
    return 0


def goals_list(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("goals.list", {"all": ns.all})
    s.out(r, lambda r: render.table(r["goals"], GOAL_COLUMNS))
    return 0


def goals_add(s: Session, ns: argparse.Namespace) -> int:
    args = {
        "tenant": ns.tenant,
        "type": ns.type,
        "target": ns.target,
        "start": ns.start,
        "end": ns.end,
        "name": ns.name,
    }
    s.out(s.call("goals.add", args), lambda r: render.kv(_goal_view(r)))
    return 0


def goals_show(s: Session, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        suggestions = r.pop("suggestions", [])
        lines = [render.kv(_goal_view(r))]
        if suggestions:
            lines.append("suggested actions:")
            lines += [f"  {x['action_type']}: {x['rationale']}" for x in suggestions]
        return "\n".join(lines)

    s.out(s.call("goals.show", {"id": ns.id}), human)
    return 0


def tasks(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("tasks")
    s.out(r, lambda r: render.table(r["tasks"], TASK_COLUMNS))
    return 0


def run_task(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("task.run", {"name": ns.name, "wait": ns.wait})

    def human(r: dict[str, Any]) -> str:
        if "ok" not in r:
            return f"started {r['task']}"
        return f"{r['task']}: {'ok' if r['ok'] else 'FAILED'}: {r['result']}"

    s.out(r, human)
    return 0 if r.get("ok", True) else 1


def digest(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("digest", {"date": ns.date, "show": ns.show})
    s.out(r, lambda r: r["content"].rstrip("\n") if ns.show else r["path"])
    return 0


def summary(s: Session, ns: argparse.Namespace) -> int:
    r = s.call("summary.refresh" if ns.refresh else "summary", {"account": ns.account})
    s.out(r, lambda r: f"{r['account']} ({r['method']}):\n{r['summary']}")
    return 0


def register(add: Adder, sub_parser: Callable[[str, str], Any]) -> None:
    """Add the proactive loop's commands to agentctl's parser."""
    inter = sub_parser("interactions", "Import interactions.")
    p = inter(
        "import",
        interactions_import,
        "Import interactions from a CSV (with header) or JSONL file; duplicates are ignored.",
        "agentctl interactions import interactions.jsonl",
    )
    p.description = (
        f"{p.description} Fields: id, account, kind, direction, at; optional sentiment, "
        f"summary. kind is one of {', '.join(INTERACTION_KINDS)}; direction is in (the "
        "customer initiated it) or out (the tenant did); at is an ISO 8601 date-time with a "
        "UTC offset, not in the future; sentiment is a number from -1 to 1."
    )
    p.add_argument("file", help="CSV (with a header) or JSONL file")
    p.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file name")
    p.add_argument("--skip-bad", action="store_true", help="import the good rows, report the bad")

    p = add("patterns", patterns, "List detected patterns, newest first.", "agentctl patterns")
    p.add_argument("--account", help="only this account's patterns")
    p.add_argument("--since", help="ISO time: patterns detected since")
    p.add_argument("--limit", type=int, default=200, help="most rows shown (default 200)")

    # ``agentctl goals`` lists; ``goals add`` and ``goals show`` are its subcommands.
    g = add("goals", goals_list, "List goals, or add and show them.", "agentctl goals --all")
    g.add_argument("--all", action="store_true", help="include completed and missed goals")
    inner = g.add_subparsers(dest="goals_command", metavar="COMMAND", parser_class=type(g))
    p = inner.add_parser(
        "add",
        help="Create a goal.",
        description="Create a goal (target > 0, end after start).",
        epilog="Example: agentctl goals add --tenant t1 --type pipeline --target 20 "
        "--start 2025-07-01 --end 2025-09-30",
    )
    p.set_defaults(run=goals_add)
    p.add_argument("--tenant", required=True, help="tenant id")
    p.add_argument(
        "--type",
        required=True,
        choices=("pipeline", "activity", "quality", "revenue"),
        help="the metric it tracks",
    )
    p.add_argument("--target", required=True, help="a number greater than 0")
    p.add_argument("--start", required=True, help="YYYY-MM-DD or ISO date-time with offset")
    p.add_argument("--end", required=True, help="YYYY-MM-DD (inclusive) or ISO date-time")
    p.add_argument("--name", help="a name to show (default: type, target and end date)")
    p = inner.add_parser(
        "show",
        help="Show a goal with its verdict and suggested actions.",
        description="Show a goal with its verdict and suggested actions.",
        epilog="Example: agentctl goals show goal_0123456789ab",
    )
    p.set_defaults(run=goals_show)
    p.add_argument("id", help="a goal id")

    add("tasks", tasks, "List scheduled tasks: last run, result, next run.", "agentctl tasks")
    p = add(
        "run-task",
        run_task,
        "Run a scheduled task now.",
        "agentctl run-task pattern_scan --wait",
    )
    p.add_argument("name", help="a task of agentctl tasks, e.g. pattern_scan")
    p.add_argument("--wait", action="store_true", help="wait for the result")

    p = add(
        "digest",
        digest,
        "Print the path of a daily digest (--show: its content).",
        "agentctl digest --date 2025-07-01 --show",
    )
    p.add_argument("--date", help="YYYY-MM-DD, today (default) or yesterday")
    p.add_argument("--show", action="store_true", help="print the digest, not its path")

    p = add(
        "summary",
        summary,
        "Show an account's context summary (--refresh: make one now).",
        "agentctl summary globex",
    )
    p.add_argument("account", help="an account id")
    p.add_argument("--refresh", action="store_true", help="summarise now, then show it")
