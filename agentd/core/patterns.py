"""Pattern scan: what an account's recent interactions say about it.

Three pattern kinds, each from documented rules whose thresholds are fields of
:class:`PatternRules` (defaults below). "Within N days" means
``now - N days <= at``; the edge itself is inside.

``buying_signal``
    * ``repeat_pricing_visits``: at least ``buying_pricing_visits`` (2)
      pricing-page visits within ``buying_window_days`` (14);
    * ``pricing_visit_and_contact``: a pricing-page visit and an inbound email
      or meeting request, both within ``buying_combo_days`` (7).

``risk``, severity ``critical`` (any of):
    * ``negative_sentiment``: the average of the last ``sentiment_sample`` (5)
      rated interactions within ``sentiment_window_days`` (14), at least
      ``sentiment_min_samples`` (2) of them, is at most ``critical_sentiment`` (-0.5);
    * ``support_tickets``: at least ``critical_tickets`` (3) inbound support
      tickets within ``critical_tickets_days`` (7);
    * ``inbound_silence``: no inbound interaction within ``silence_days`` (30)
      after at least ``silence_min_prior_inbound`` (3) inbound ones in the
      ``silence_active_days`` (60) before that.

``risk``, severity ``medium`` (when not critical): the same sentiment average at
most ``medium_sentiment`` (-0.2), or at least ``medium_tickets`` (2) inbound
support tickets within ``medium_tickets_days`` (14).

``engagement_change`` (``up`` / ``down``): the number of interactions (inbound
only, unless ``engagement_inbound_only`` is off) within
``engagement_window_days`` (14) against the same span before it changes by at
least ``engagement_change_ratio`` (50 %) of the earlier count, with at least
``engagement_min_count`` (4) in the busier span. From zero, any rise that meets
the minimum is ``up``.

A pattern's ``key`` is ``account|kind[/severity-or-direction]|period`` where
``period`` is the start date of the ``key_period_days`` (14) epoch-aligned
period holding the *anchor*: the earliest evidence, or for ``inbound_silence``
the last inbound interaction. A burst of evidence therefore keeps one key for
as long as scans see it, and a condition that persists is raised again at most
about once per period. The caller stores keys; :func:`new_patterns` drops known ones.

Input is compact (:data:`~agentd.core.interactions.CompactInteraction` tuples
sorted by time) and :func:`detect` is one pass per account that allocates
nothing per interaction, because the scan covers every account.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from agentd.core.interactions import CompactInteraction, KindCode
from agentd.errors import InvalidArgument

_DAY = 86400.0
_EMAIL = int(KindCode.EMAIL)
_MEETING = int(KindCode.MEETING)
_PRICING = int(KindCode.PRICING_PAGE_VISIT)
_TICKET = int(KindCode.SUPPORT_TICKET)


class PatternKind(StrEnum):
    """What the scan concluded about an account."""

    BUYING_SIGNAL = "buying_signal"
    RISK = "risk"
    ENGAGEMENT_CHANGE = "engagement_change"


class RiskSeverity(StrEnum):
    """How bad a ``risk`` pattern is."""

    CRITICAL = "critical"
    MEDIUM = "medium"


class EngagementDirection(StrEnum):
    """Which way an ``engagement_change`` went."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class PatternRules:
    """Thresholds of the pattern rules; the module docstring says what each does."""

    buying_pricing_visits: int = 2
    buying_window_days: float = 14.0
    buying_combo_days: float = 7.0
    sentiment_window_days: float = 14.0
    sentiment_sample: int = 5
    sentiment_min_samples: int = 2
    critical_sentiment: float = -0.5
    medium_sentiment: float = -0.2
    critical_tickets: int = 3
    critical_tickets_days: float = 7.0
    medium_tickets: int = 2
    medium_tickets_days: float = 14.0
    silence_days: float = 30.0
    silence_active_days: float = 60.0
    silence_min_prior_inbound: int = 3
    engagement_window_days: float = 14.0
    engagement_change_ratio: float = 0.5
    engagement_min_count: int = 4
    engagement_inbound_only: bool = True
    key_period_days: float = 14.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or f.name.endswith("_sentiment"):
                continue
            if not value > 0:
                raise InvalidArgument(
                    f"pattern rule {f.name} must be positive, got {value!r}",
                    details={"field": f.name},
                )
        if not -1.0 <= self.critical_sentiment <= self.medium_sentiment <= 1.0:
            raise InvalidArgument(
                "pattern rules need -1 <= critical_sentiment <= medium_sentiment <= 1",
                details={"field": "critical_sentiment"},
            )
        if self.sentiment_min_samples > self.sentiment_sample:
            raise InvalidArgument(
                "pattern rule sentiment_min_samples exceeds sentiment_sample",
                details={"field": "sentiment_min_samples"},
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PatternRules:
        """Build rules from configuration, defaults for what is absent.

        :raises InvalidArgument: an unknown key, a value of the wrong type or
            out of range; ``details["field"]`` names it.
        """
        types = {f.name: f.type for f in fields(cls)}
        for name, value in values.items():
            if name not in types:
                raise InvalidArgument(f"unknown pattern rule {name!r}", details={"field": name})
            wanted = types[name]
            ok = (
                isinstance(value, bool)
                if wanted == "bool"
                else not isinstance(value, bool)
                and isinstance(value, int if wanted == "int" else int | float)
            )
            if not ok:
                raise InvalidArgument(
                    f"pattern rule {name} must be {wanted}, got {value!r}", details={"field": name}
                )
        return cls(**dict(values))


DEFAULT_RULES = PatternRules()


@dataclass(frozen=True, slots=True)
class Pattern:
    """One detected pattern with the interactions that prove it."""

    account: str
    kind: PatternKind
    severity: RiskSeverity | None
    direction: EngagementDirection | None
    evidence: tuple[str, ...]
    detected_at: datetime
    summary: str
    key: str
    rules: tuple[str, ...]


def _at(item: CompactInteraction) -> float:
    return item[3]


_INF = float("inf")


def _indices(
    items: Sequence[CompactInteraction],
    since: float,
    until: float = _INF,
    *,
    kinds: frozenset[int] | None = None,
    inbound_only: bool = False,
) -> list[int]:
    """Return the positions of the items in ``[since, until)`` matching kind and direction."""
    return [
        n
        for n, (_, kind, inbound, ts, _) in enumerate(items)
        if since <= ts < until
        and (kinds is None or kind in kinds)
        and (inbound or not inbound_only)
    ]


def _key(account: str, label: str, anchor: float, rules: PatternRules) -> str:
    period = rules.key_period_days * _DAY
    start = datetime.fromtimestamp((anchor // period) * period, UTC).date().isoformat()
    return f"{account}|{label}|{start}"


# A reason a rule fired: (rule name, human text, evidence positions, anchor time).
_Reason = tuple[str, str, list[int], float]


def _pattern(
    account: str,
    kind: PatternKind,
    found: list[_Reason],
    items: Sequence[CompactInteraction],
    now: datetime,
    rules: PatternRules,
    qualifier: RiskSeverity | EngagementDirection | None = None,
) -> Pattern:
    """Merge the reasons that fired into one pattern."""
    label = kind.value + (f"/{qualifier.value}" if qualifier else "")
    positions = sorted({n for _, _, evidence, _ in found for n in evidence})
    # The first reason found is the primary one: its anchor keeps the key stable.
    return Pattern(
        account=account,
        kind=kind,
        severity=qualifier if isinstance(qualifier, RiskSeverity) else None,
        direction=qualifier if isinstance(qualifier, EngagementDirection) else None,
        evidence=tuple(items[n][0] for n in positions),
        detected_at=now,
        summary="; ".join(text for _, text, _, _ in found),
        key=_key(account, label, found[0][3], rules),
        rules=tuple(rule for rule, _, _, _ in found),
    )


_PRICING_KINDS = frozenset({_PRICING})
_CONTACT_KINDS = frozenset({_EMAIL, _MEETING})
_TICKET_KINDS = frozenset({_TICKET})


class _Cutoffs(NamedTuple):
    """The start of each rule's window, as Unix times (the engagement window's end too)."""

    now: float
    buy: float
    combo: float
    tickets_c: float
    tickets_m: float
    eng: float
    eng_prev: float
    quiet: float
    active: float
    sent: float

    @classmethod
    def at(cls, now: float, r: PatternRules) -> _Cutoffs:
        eng = now - r.engagement_window_days * _DAY
        quiet = now - r.silence_days * _DAY
        return cls(
            now=now,
            buy=now - r.buying_window_days * _DAY,
            combo=now - r.buying_combo_days * _DAY,
            tickets_c=now - r.critical_tickets_days * _DAY,
            tickets_m=now - r.medium_tickets_days * _DAY,
            eng=eng,
            eng_prev=eng - r.engagement_window_days * _DAY,
            quiet=quiet,
            active=quiet - r.silence_active_days * _DAY,
            sent=now - r.sentiment_window_days * _DAY,
        )

    @property
    def horizon(self) -> float:
        """Return the earliest time any rule looks at."""
        return min(
            self.buy,
            self.combo,
            self.tickets_c,
            self.tickets_m,
            self.eng_prev,
            self.active,
            self.sent,
        )


class _Counts(NamedTuple):
    pricing: int
    pricing_combo: int
    contact_combo: int
    tickets_c: int
    tickets_m: int
    inbound_quiet: int
    inbound_active: int
    eng_recent: int
    eng_prev: int


def _count(items: Sequence[CompactInteraction], c: _Cutoffs, inbound_only: bool) -> _Counts:
    """Count what each rule needs in one pass (the hot loop: counters only, in locals)."""
    _, buy_from, combo_from, tc_from, tm_from, eng_from, prev_from, quiet_from, active_from, _ = c
    pricing = pricing_combo = contact_combo = tickets_c = tickets_m = 0
    inbound_quiet = inbound_active = eng_recent = eng_prev = 0
    for _, kind, inbound, ts, _ in items:
        if inbound:
            if ts >= quiet_from:
                inbound_quiet += 1
            elif ts >= active_from:
                inbound_active += 1
        if kind == _PRICING:
            if ts >= buy_from:
                pricing += 1
            if ts >= combo_from:
                pricing_combo += 1
        elif inbound and kind == _TICKET:
            if ts >= tc_from:
                tickets_c += 1
            if ts >= tm_from:
                tickets_m += 1
        elif inbound and (kind == _EMAIL or kind == _MEETING) and ts >= combo_from:
            contact_combo += 1
        if inbound or not inbound_only:
            if ts >= eng_from:
                eng_recent += 1
            elif ts >= prev_from:
                eng_prev += 1
    return _Counts(
        pricing,
        pricing_combo,
        contact_combo,
        tickets_c,
        tickets_m,
        inbound_quiet,
        inbound_active,
        eng_recent,
        eng_prev,
    )


def _buying(
    items: Sequence[CompactInteraction], n: _Counts, c: _Cutoffs, r: PatternRules
) -> list[_Reason]:
    buying: list[_Reason] = []
    if n.pricing >= r.buying_pricing_visits:
        ids = _indices(items, c.buy, kinds=_PRICING_KINDS)
        text = f"{n.pricing} pricing-page visits in the last {r.buying_window_days:g} days"
        buying.append(("repeat_pricing_visits", text, ids, items[ids[0]][3]))
    if n.pricing_combo and n.contact_combo:
        ids = sorted(
            _indices(items, c.combo, kinds=_PRICING_KINDS)
            + _indices(items, c.combo, kinds=_CONTACT_KINDS, inbound_only=True)
        )
        text = (
            "pricing-page visit and inbound email or meeting"
            f" in the last {r.buying_combo_days:g} days"
        )
        buying.append(("pricing_visit_and_contact", text, ids, items[ids[0]][3]))
    return buying


def _sentiment(
    items: Sequence[CompactInteraction], c: _Cutoffs, r: PatternRules
) -> tuple[float, _Reason] | None:
    """Return the average of the most recent rated interactions and its reason, if low."""
    rated: list[int] = []
    for n in range(len(items) - 1, -1, -1):  # walking back from the end
        if items[n][3] < c.sent or len(rated) >= r.sentiment_sample:
            break
        if items[n][4] is not None:
            rated.append(n)
    rated.reverse()
    if not rated or len(rated) < r.sentiment_min_samples:
        return None
    average = sum(items[n][4] or 0.0 for n in rated) / len(rated)
    if average > r.medium_sentiment:
        return None
    text = (
        f"average sentiment {average:.2f} over the last {len(rated)} rated interactions"
        f" in {r.sentiment_window_days:g} days"
    )
    return average, ("negative_sentiment", text, rated, items[rated[0]][3])


def _risk(
    items: Sequence[CompactInteraction], n: _Counts, c: _Cutoffs, r: PatternRules
) -> tuple[list[_Reason], list[_Reason]]:
    """Return the critical and the medium reasons."""
    critical: list[_Reason] = []
    medium: list[_Reason] = []
    sentiment = _sentiment(items, c, r)
    if sentiment is not None:
        average, reason = sentiment
        (critical if average <= r.critical_sentiment else medium).append(reason)
    for count, threshold, since, days, bucket in (
        (n.tickets_c, r.critical_tickets, c.tickets_c, r.critical_tickets_days, critical),
        (n.tickets_m, r.medium_tickets, c.tickets_m, r.medium_tickets_days, medium),
    ):
        if count >= threshold:
            ids = _indices(items, since, kinds=_TICKET_KINDS, inbound_only=True)
            text = f"{count} inbound support tickets in the last {days:g} days"
            bucket.append(("support_tickets", text, ids, items[ids[0]][3]))
    if not n.inbound_quiet and n.inbound_active >= r.silence_min_prior_inbound:
        ids = _indices(items, c.active, c.quiet, inbound_only=True)
        last = items[ids[-1]][3]
        text = (
            f"no inbound activity for {(c.now - last) / _DAY:.0f} days after {n.inbound_active}"
            f" inbound interactions in the {r.silence_active_days:g} days before"
        )
        critical.append(("inbound_silence", text, ids, last))
    return critical, medium


def _engagement(
    items: Sequence[CompactInteraction], n: _Counts, c: _Cutoffs, r: PatternRules
) -> tuple[EngagementDirection, _Reason] | None:
    recent, prev = n.eng_recent, n.eng_prev
    if max(recent, prev) < r.engagement_min_count:
        return None
    needed = r.engagement_change_ratio * prev
    if recent > prev and recent - prev >= needed:
        direction, since, until = EngagementDirection.UP, c.eng, _INF
    elif prev > recent and prev - recent >= needed:
        direction, since, until = EngagementDirection.DOWN, c.eng_prev, c.eng
    else:
        return None
    inbound_only = r.engagement_inbound_only
    ids = _indices(items, since, until, inbound_only=inbound_only)
    change = f"{(recent - prev) / prev:+.0%}" if prev else "from none"
    what = "inbound interactions" if inbound_only else "interactions"
    span = f"{r.engagement_window_days:g} days"
    text = (
        f"{what} {direction.value} ({change}): {recent} in the last {span}"
        f" vs {prev} in the {span} before"
    )
    return direction, ("interaction_volume", text, ids, items[ids[0]][3])


def detect(
    account: str,
    interactions: Sequence[CompactInteraction],
    now: datetime,
    rules: PatternRules = DEFAULT_RULES,
) -> list[Pattern]:
    """Return the patterns an account's interactions show at ``now``.

    ``interactions`` must be sorted by time. Only the last
    ``silence_days + silence_active_days`` matter; older ones cost a bisection.
    At most one pattern per kind, in the order buying signal, risk, engagement.

    :raises InvalidArgument: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise InvalidArgument("now must be timezone-aware", details={"field": "now"})
    return _detect(account, interactions, now, _Cutoffs.at(now.timestamp(), rules), rules)


def _detect(
    account: str,
    interactions: Sequence[CompactInteraction],
    now: datetime,
    c: _Cutoffs,
    r: PatternRules,
) -> list[Pattern]:
    if not interactions:
        return []
    first = bisect_left(interactions, c.horizon, key=_at)
    items = interactions[first:] if first else interactions
    # Evidence is gathered only for the rules that fire.
    n = _count(items, c, r.engagement_inbound_only)
    out: list[Pattern] = []
    buying = _buying(items, n, c, r)
    if buying:
        out.append(_pattern(account, PatternKind.BUYING_SIGNAL, buying, items, now, r))
    critical, medium = _risk(items, n, c, r)
    if critical or medium:
        severity = RiskSeverity.CRITICAL if critical else RiskSeverity.MEDIUM
        out.append(_pattern(account, PatternKind.RISK, critical or medium, items, now, r, severity))
    engagement = _engagement(items, n, c, r)
    if engagement is not None:
        direction, reason = engagement
        kind = PatternKind.ENGAGEMENT_CHANGE
        out.append(_pattern(account, kind, [reason], items, now, r, direction))
    return out


def scan(
    accounts: Iterable[tuple[str, Sequence[CompactInteraction]]],
    now: datetime,
    rules: PatternRules = DEFAULT_RULES,
) -> list[Pattern]:
    """Run :func:`detect` over ``(account, interactions)`` pairs and concatenate the results."""
    if now.tzinfo is None:
        raise InvalidArgument("now must be timezone-aware", details={"field": "now"})
    cutoffs = _Cutoffs.at(now.timestamp(), rules)  # once for every account
    out: list[Pattern] = []
    for account, interactions in accounts:
        if interactions:
            out.extend(_detect(account, interactions, now, cutoffs, rules))
    return out


def new_patterns(detected: Iterable[Pattern], known_keys: Container[str]) -> list[Pattern]:
    """Return the detected patterns whose key is not known yet, first of each key only, in order."""
    seen: set[str] = set()
    out: list[Pattern] = []
    for pattern in detected:
        if pattern.key in known_keys or pattern.key in seen:
            continue
        seen.add(pattern.key)
        out.append(pattern)
    return out
