"""The daily digest: one Markdown page a person can read in a minute.

:func:`render_digest` turns plain lists (gathered by the caller for one day)
into Markdown: a title, a headline paragraph with the counts, then one section
per list with a table, "None." when empty. Rows are sorted here, newest first
(what waits for approval: oldest first), so the same data always renders the
same bytes. The file goes to ``digest/YYYY-MM-DD.md`` (:func:`digest_path`);
screenshot links are relative to that file.

A list may be cut short (the caller reads at most so many rows of a day): its
true size goes in :attr:`DigestData.totals`, under the list's field name, and
both the headline and the section count that, the section saying "Showing N
of M". Autonomous actions that succeeded and executions that failed are
separate lists, so a failure is never counted as an action that ran.
Hand-offs made that day (a person carries the action out) are a list of
their own, done, failed or still open, and are in neither of those: a
person, not the agent, did them (one refused before it reached a person is
an execution that failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import PurePosixPath

from agentd.core.escape import markdown_text
from agentd.core.goals import GoalType, Verdict
from agentd.core.patterns import Pattern, PatternKind, RiskSeverity
from agentd.errors import InvalidArgument

DIGEST_DIR = "digest"
_CELL_LIMIT = 160
_SHOWN_SCREENSHOTS = 3


@dataclass(frozen=True, slots=True)
class ExecutedItem:
    """An autonomous action (approved by policy) whose execution succeeded at ``at``."""

    intent_id: str
    account: str
    action_type: str
    at: datetime
    summary: str = ""
    execution_id: str = ""


@dataclass(frozen=True, slots=True)
class FailedExecution:
    """An execution that failed or was refused at ``at``; ``autonomous``: approved by policy."""

    execution_id: str
    intent_id: str
    account: str
    action_type: str
    at: datetime
    autonomous: bool
    reason: str
    detail: str = ""
    operation_id: str = ""


@dataclass(frozen=True, slots=True)
class RollbackItem:
    """An undo asked for during the day: ``outcome`` is rolled back, failed, escalated or
    refused (nothing ran: the token was used, the execution was a rollback, ...)."""

    execution_id: str
    account: str
    action_type: str
    at: datetime
    outcome: str
    kind: str
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DecisionItem:
    """A person's decision on an intent: ``decision`` is approved or rejected."""

    intent_id: str
    account: str
    action_type: str
    at: datetime
    decision: str
    by: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class FailedTask:
    """A scheduled task run that failed."""

    task: str
    at: datetime
    error: str


@dataclass(frozen=True, slots=True)
class PendingItem:
    """An intent waiting for approval since ``since``."""

    intent_id: str
    account: str
    action_type: str
    since: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BlockedItem:
    """An intent the gate blocked, with its reason code."""

    intent_id: str
    account: str
    action_type: str
    at: datetime
    reason_code: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class GoalLine:
    """A goal and the tracker's verdict on it."""

    goal_id: str
    name: str
    goal_type: GoalType
    verdict: Verdict
    current: float
    target: float
    end: datetime


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """A circuit-breaker trip (or reset) during the day."""

    at: datetime
    rule: str
    action: str
    severity: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FailedOperation:
    """A browser operation that failed.

    ``step`` names the step that failed; ``screenshot`` is that step's
    screenshot (or, when it has none, the page as the operation ended);
    ``execution_id`` is the execution it ran for, if any.
    """

    operation_id: str
    account: str
    workflow: str
    at: datetime
    error: str
    step: str = ""
    screenshot: str | None = None
    execution_id: str = ""


@dataclass(frozen=True, slots=True)
class HandoffLine:
    """A hand-off to a person made during the day, and where it stands."""

    execution_id: str
    account: str
    action_type: str
    at: datetime
    state: str  # open | done | failed
    note: str = ""


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything one day's digest shows, across tenants."""

    day: date
    generated_at: datetime
    auto_executed: Sequence[ExecutedItem] = ()
    failed_executions: Sequence[FailedExecution] = ()
    rollbacks: Sequence[RollbackItem] = ()
    decisions: Sequence[DecisionItem] = ()
    pending: Sequence[PendingItem] = ()
    blocked: Sequence[BlockedItem] = ()
    goals: Sequence[GoalLine] = ()
    patterns: Sequence[Pattern] = ()
    breaker_events: Sequence[BreakerEvent] = ()
    failures: Sequence[FailedOperation] = ()
    failed_tasks: Sequence[FailedTask] = ()
    handoffs: Sequence[HandoffLine] = ()
    #: The true size of a list cut short, by field name (a list not named is whole);
    #: ``"failed_executions:autonomous"`` and ``"decisions:approved"`` give the true
    #: size of those parts.
    totals: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {f.name for f in fields(self)}
        for key, total in self.totals.items():
            name, _, part = key.partition(":")
            if name not in names or not isinstance(getattr(self, name), Sequence):
                raise InvalidArgument(f"totals: {name!r} is not a list of the digest")
            if part and (name, part) not in _PARTS:
                raise InvalidArgument(f"totals: {key!r} is not a part the digest counts")
            if total < len(getattr(self, name)) and not part:
                raise InvalidArgument(f"totals: {name} is {total}, fewer than the rows given")

    def total(self, name: str) -> int:
        """Return the true size of list ``name`` (its length unless cut short)."""
        return self.totals.get(name, len(getattr(self, name)))

    def failed_autonomous(self) -> int:
        """Return how many of the failed executions were autonomous actions."""
        shown = sum(f.autonomous for f in self.failed_executions)
        return self.totals.get("failed_executions:autonomous", shown)

    def approved(self) -> int:
        """Return how many of the decisions by a person were approvals."""
        shown = sum(d.decision == "approved" for d in self.decisions)
        return self.totals.get("decisions:approved", shown)

    def handoffs_open(self) -> int:
        """Return how many of the day's hand-offs a person has not closed yet."""
        shown = sum(h.state == "open" for h in self.handoffs)
        return self.totals.get("handoffs:open", shown)


_PARTS = frozenset(
    {("failed_executions", "autonomous"), ("decisions", "approved"), ("handoffs", "open")}
)


def digest_path(day: date) -> str:
    """Return the digest's path relative to the state directory."""
    return f"{DIGEST_DIR}/{day.isoformat()}.md"


def relative_link(target: str, from_dir: str) -> str:
    """Return ``target`` relative to directory ``from_dir`` when both are absolute.

    Pure path arithmetic: nothing is looked up on disk.
    """
    path, base = PurePosixPath(target), PurePosixPath(from_dir)
    if not (path.is_absolute() and base.is_absolute()):
        return target
    common = 0
    for mine, theirs in zip(path.parts, base.parts, strict=False):
        if mine != theirs:
            break
        common += 1
    ups = [".."] * (len(base.parts) - common)
    return str(PurePosixPath(*ups, *path.parts[common:]))


class _Markdown(str):
    """A cell already in Markdown: not escaped or shortened."""

    __slots__ = ()


def _cell(text: str) -> str:
    if isinstance(text, _Markdown):
        return text
    # Shortened before escaping, so an escape is never cut in half.
    value = " ".join(text.split())
    value = value if len(value) <= _CELL_LIMIT else value[: _CELL_LIMIT - 1] + "…"
    return markdown_text(value)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    minutes = max(int(seconds // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["None."]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _screenshot_links(paths: Sequence[str], digest_dir: str | None) -> str:
    if not paths:
        return "none"
    # The last ones matter most (the failing step's); earlier ones are only counted.
    shown = paths[-_SHOWN_SCREENSHOTS:]
    links = []
    for path in shown:
        link = relative_link(path, digest_dir) if digest_dir else path
        # "|" would end the table cell and "<>" the link target: percent-encode them.
        for char, code in (("|", "%7C"), ("<", "%3C"), (">", "%3E")):
            link = link.replace(char, code)
        name = PurePosixPath(path).name.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")
        links.append(f"[{name}](<{link}>)")
    hidden = len(paths) - len(shown)
    return " ".join(links) + (f" (+{hidden} earlier)" if hidden else "")


_VERDICT_ORDER = {Verdict.BEHIND: 0, Verdict.MISSED: 1, Verdict.ON_TRACK: 2, Verdict.COMPLETED: 3}


def _pattern_rank(pattern: Pattern) -> int:
    if pattern.kind is PatternKind.RISK:
        return 0 if pattern.severity is RiskSeverity.CRITICAL else 1
    return 2 if pattern.kind is PatternKind.BUYING_SIGNAL else 3


def _pattern_label(pattern: Pattern) -> str:
    qualifier = pattern.severity or pattern.direction
    label = pattern.kind.value.replace("_", " ")
    return f"{label} ({qualifier.value})" if qualifier else label


def _headline(data: DigestData) -> str:
    on_track = sum(g.verdict in (Verdict.ON_TRACK, Verdict.COMPLETED) for g in data.goals)
    critical = sum(p.severity is RiskSeverity.CRITICAL for p in data.patterns)
    failed = data.total("failed_executions")
    failed_auto = data.failed_autonomous()
    approved = data.approved()
    decisions = data.total("decisions")
    pending = data.total("pending")
    parts = [
        f"{_plural(data.total('auto_executed'), 'autonomous action', 'autonomous actions')} "
        f"succeeded, {failed_auto} failed"
        + (f" (and {failed - failed_auto} approved by a person)" if failed > failed_auto else ""),
        _plural(data.total("rollbacks"), "rollback", "rollbacks"),
        _plural(decisions, "decision by a person", "decisions by a person")
        + (f" ({approved} approved, {decisions - approved} rejected)" if decisions else ""),
        f"{pending} waiting for approval"
        + (f" (oldest since {_when(min(p.since for p in data.pending))})" if data.pending else ""),
        f"{data.total('blocked')} blocked",
        f"{on_track} of {_plural(len(data.goals), 'goal', 'goals')} on track or completed",
        _plural(data.total("patterns"), "new pattern", "new patterns")
        + (f" ({critical} critical risk)" if critical else ""),
        _plural(data.total("breaker_events"), "breaker event", "breaker events"),
        _plural(data.total("failures"), "failed operation", "failed operations"),
        _plural(data.total("failed_tasks"), "failed task run", "failed task runs"),
        _plural(data.total("handoffs"), "hand-off to a person", "hand-offs to a person")
        + (f" ({data.handoffs_open()} still open)" if data.handoffs_open() else ""),
    ]
    return f"On {data.day.isoformat()}: " + ", ".join(parts) + "."


def _newest(moment: datetime, key: str) -> tuple[float, str]:
    """Sort key putting the newest first (ties by id, for the same bytes every time)."""
    return (-moment.timestamp(), key)


def render_digest(data: DigestData, *, digest_dir: str | None = None) -> str:
    """Render the day's digest as Markdown.

    :param digest_dir: the absolute directory the digest is written to; absolute
        screenshot paths are linked relative to it (relative ones are kept).
    """
    now = data.generated_at
    out = [f"# agentd digest {data.day.isoformat()}", "", _headline(data), ""]

    def section(
        title: str,
        name: str,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        order: str = "newest first",
    ) -> None:
        out.extend([f"## {title}", ""])
        total = data.total(name)
        if len(rows) < total:
            out.extend([f"Showing {len(rows)} of {total} ({order}).", ""])
        out.extend([*_table(header, rows), ""])

    executed = sorted(data.auto_executed, key=lambda i: _newest(i.at, i.intent_id))
    section(
        "Autonomous actions that succeeded",
        "auto_executed",
        ("Time", "Action", "Account", "Intent", "What"),
        [(_when(i.at), i.action_type, i.account, i.intent_id, i.summary) for i in executed],
    )
    failed = sorted(data.failed_executions, key=lambda f: _newest(f.at, f.execution_id))
    section(
        "Executions that failed",
        "failed_executions",
        ("Time", "Action", "Account", "Execution", "Approved by", "Reason", "Detail"),
        [
            (
                _when(f.at),
                f.action_type,
                f.account,
                f.execution_id,
                "policy (autonomous)" if f.autonomous else "a person",
                f.reason,
                f.detail,
            )
            for f in failed
        ],
    )
    rollbacks = sorted(data.rollbacks, key=lambda r: _newest(r.at, r.execution_id))
    section(
        "Rollbacks",
        "rollbacks",
        ("Time", "Execution", "Action", "Account", "Type", "Outcome", "By", "Why"),
        [
            (
                _when(r.at),
                r.execution_id,
                r.action_type,
                r.account,
                r.kind,
                r.outcome,
                r.by,
                r.reason,
            )
            for r in rollbacks
        ],
    )
    decisions = sorted(data.decisions, key=lambda d: _newest(d.at, d.intent_id))
    section(
        "Decisions by a person",
        "decisions",
        ("Time", "Decision", "By", "Action", "Account", "Intent", "Note"),
        [
            (_when(d.at), d.decision, d.by, d.action_type, d.account, d.intent_id, d.note)
            for d in decisions
        ],
    )
    pending = sorted(data.pending, key=lambda i: (i.since, i.intent_id))
    section(
        "Waiting for approval",
        "pending",
        ("Since", "Waiting", "Action", "Account", "Intent", "Why"),
        [
            (
                _when(i.since),
                _duration((now - i.since).total_seconds()),
                i.action_type,
                i.account,
                i.intent_id,
                i.reason,
            )
            for i in pending
        ],
        order="oldest first",
    )
    blocked = sorted(data.blocked, key=lambda i: _newest(i.at, i.intent_id))
    section(
        "Blocked",
        "blocked",
        ("Time", "Action", "Account", "Intent", "Reason", "Detail"),
        [
            (_when(i.at), i.action_type, i.account, i.intent_id, i.reason_code, i.detail)
            for i in blocked
        ],
    )
    goals = sorted(data.goals, key=lambda g: (_VERDICT_ORDER[g.verdict], g.name, g.goal_id))
    section(
        "Goals",
        "goals",
        ("Goal", "Type", "Verdict", "Progress", "Ends"),
        [
            (
                g.name,
                g.goal_type.value,
                g.verdict.value.replace("_", " "),
                f"{g.current:g} / {g.target:g} ({g.current / g.target:.0%})",
                _when(g.end),
            )
            for g in goals
        ],
    )
    patterns = sorted(data.patterns, key=lambda p: (_pattern_rank(p), p.account, p.key))
    section(
        "New patterns",
        "patterns",
        ("Account", "Pattern", "Why", "Evidence"),
        [
            (p.account, _pattern_label(p), p.summary, _plural(len(p.evidence), "item", "items"))
            for p in patterns
        ],
        order="the newest, critical risks first",
    )
    breakers = sorted(data.breaker_events, key=lambda b: _newest(b.at, b.rule))
    section(
        "Breaker events",
        "breaker_events",
        ("Time", "Rule", "Action", "Severity", "Detail"),
        [(_when(b.at), b.rule, b.action, b.severity, b.detail) for b in breakers],
    )
    failures = sorted(data.failures, key=lambda f: _newest(f.at, f.operation_id))
    section(
        "Failed operations",
        "failures",
        (
            "Time",
            "Operation",
            "Account",
            "Workflow",
            "For",
            "Failed step",
            "Error",
            "Screenshot",
        ),
        [
            (
                _when(f.at),
                f.operation_id,
                f.account,
                f.workflow,
                f.execution_id or "-",
                f.step or "-",
                f.error,
                _Markdown(_screenshot_links((f.screenshot,) if f.screenshot else (), digest_dir)),
            )
            for f in failures
        ],
    )
    tasks = sorted(data.failed_tasks, key=lambda t: _newest(t.at, t.task))
    section(
        "Failed task runs",
        "failed_tasks",
        ("Time", "Task", "Error"),
        [(_when(t.at), t.task, t.error) for t in tasks],
    )
    handoffs = sorted(data.handoffs, key=lambda h: _newest(h.at, h.execution_id))
    section(
        "Handed off to a person",
        "handoffs",
        ("Time", "Action", "Account", "Execution", "State", "Note"),
        [
            (_when(h.at), h.action_type, h.account, h.execution_id, h.state, h.note)
            for h in handoffs
        ],
    )
    return "\n".join(out).rstrip("\n") + "\n"
