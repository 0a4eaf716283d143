"""The daily digest: one Markdown page a person can read in a minute.

:func:`render_digest` turns plain lists (gathered by the caller for one day)
into Markdown: a title, a headline paragraph with the counts, then one section
per list with a table, "None." when empty. Rows are sorted here, so the same
data always renders the same bytes. The file goes to ``digest/YYYY-MM-DD.md``
(:func:`digest_path`); screenshot links are relative to that file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import PurePosixPath

from agentd.core.goals import GoalType, Verdict
from agentd.core.patterns import Pattern, PatternKind, RiskSeverity

DIGEST_DIR = "digest"
_CELL_LIMIT = 160
_SHOWN_SCREENSHOTS = 3


@dataclass(frozen=True, slots=True)
class ExecutedItem:
    """An intent that ran without a person approving it."""

    intent_id: str
    account: str
    action_type: str
    at: datetime
    summary: str = ""


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
    """A browser operation that failed, with its step screenshots in order."""

    operation_id: str
    account: str
    workflow: str
    at: datetime
    error: str
    screenshots: tuple[str, ...] = ()


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
    pending: Sequence[PendingItem] = ()
    blocked: Sequence[BlockedItem] = ()
    goals: Sequence[GoalLine] = ()
    patterns: Sequence[Pattern] = ()
    breaker_events: Sequence[BreakerEvent] = ()
    failures: Sequence[FailedOperation] = ()
    handoffs: Sequence[HandoffLine] = ()


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
    value = " ".join(text.split()).replace("|", "\\|")
    return value if len(value) <= _CELL_LIMIT else value[: _CELL_LIMIT - 1] + "…"


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
    # The failing step is the last one; earlier steps are only counted.
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
    parts = [
        f"{_plural(len(data.auto_executed), 'action', 'actions')} ran autonomously",
        f"{len(data.pending)} waiting for approval"
        + (f" (oldest since {_when(min(p.since for p in data.pending))})" if data.pending else ""),
        f"{len(data.blocked)} blocked",
        f"{on_track} of {_plural(len(data.goals), 'goal', 'goals')} on track or completed",
        _plural(len(data.patterns), "new pattern", "new patterns")
        + (f" ({critical} critical risk)" if critical else ""),
        _plural(len(data.breaker_events), "breaker event", "breaker events"),
        _plural(len(data.failures), "failed operation", "failed operations"),
    ]
    return f"On {data.day.isoformat()}: " + ", ".join(parts) + "."


def render_digest(data: DigestData, *, digest_dir: str | None = None) -> str:
    """Render the day's digest as Markdown.

    :param digest_dir: the absolute directory the digest is written to; absolute
        screenshot paths are linked relative to it (relative ones are kept).
    """
    now = data.generated_at
    out = [f"# agentd digest {data.day.isoformat()}", "", _headline(data), ""]

    def section(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        out.extend([f"## {title}", "", *_table(header, rows), ""])

    executed = sorted(data.auto_executed, key=lambda i: (i.at, i.intent_id))
    section(
        "Ran autonomously",
        ("Time", "Action", "Account", "Intent", "What"),
        [(_when(i.at), i.action_type, i.account, i.intent_id, i.summary) for i in executed],
    )
    pending = sorted(data.pending, key=lambda i: (i.since, i.intent_id))
    section(
        "Waiting for approval",
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
    )
    blocked = sorted(data.blocked, key=lambda i: (i.at, i.intent_id))
    section(
        "Blocked",
        ("Time", "Action", "Account", "Intent", "Reason", "Detail"),
        [
            (_when(i.at), i.action_type, i.account, i.intent_id, i.reason_code, i.detail)
            for i in blocked
        ],
    )
    goals = sorted(data.goals, key=lambda g: (_VERDICT_ORDER[g.verdict], g.name, g.goal_id))
    section(
        "Goals",
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
        ("Account", "Pattern", "Why", "Evidence"),
        [
            (p.account, _pattern_label(p), p.summary, _plural(len(p.evidence), "item", "items"))
            for p in patterns
        ],
    )
    breakers = sorted(data.breaker_events, key=lambda b: (b.at, b.rule))
    section(
        "Breaker events",
        ("Time", "Rule", "Action", "Severity", "Detail"),
        [(_when(b.at), b.rule, b.action, b.severity, b.detail) for b in breakers],
    )
    failures = sorted(data.failures, key=lambda f: (f.at, f.operation_id))
    section(
        "Failed operations",
        ("Time", "Operation", "Account", "Workflow", "Error", "Screenshots"),
        [
            (
                _when(f.at),
                f.operation_id,
                f.account,
                f.workflow,
                f.error,
                _Markdown(_screenshot_links(f.screenshots, digest_dir)),
            )
            for f in failures
        ],
    )
    handoffs = sorted(data.handoffs, key=lambda h: (h.at, h.execution_id))
    section(
        "Handed off to a person",
        ("Time", "Action", "Account", "Execution", "State", "Note"),
        [
            (_when(h.at), h.action_type, h.account, h.execution_id, h.state, h.note)
            for h in handoffs
        ],
    )
    return "\n".join(out).rstrip("\n") + "\n"
