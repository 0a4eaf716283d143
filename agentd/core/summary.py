"""Deterministic extractive summary of an account's recent interactions.

Used for context summarisation when no model is configured (and as the
fallback when the model fails). The summary has three parts:

1. counts over the period: interactions by direction and by kind;
2. the sentiment trend: the average of the later half of the period against
   the earlier half (``rising`` / ``falling`` when they differ by more than
   :data:`TREND_THRESHOLD`, else ``steady``), and the last contacts;
3. up to ``max_sentences`` key points, sentences taken verbatim from the
   interactions' ``summary`` texts.

Sentence score, highest first (ties: newer interaction, then id, then position):

* recency: ``1 - age / period`` (0..1);
* tone: ``-sentiment`` when negative (0..1), a quarter of it when positive,
  because trouble is what the next contact must know about;
* salience: 0.5 per distinct :data:`SALIENT_TERMS` stem found, at most 1.5;
* kind: :data:`KIND_WEIGHT` (meetings and tickets carry the most substance).

Chosen sentences are printed in chronological order; exact repeats (ignoring
case and spacing) count once. Same input, same text, whatever the input order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from agentd.core.interactions import Direction, Interaction, InteractionKind
from agentd.errors import InvalidArgument

TREND_THRESHOLD = 0.15

SALIENT_TERMS: tuple[str, ...] = (
    "budget",
    "cancel",
    "churn",
    "competitor",
    "complain",
    "contract",
    "deadline",
    "decision",
    "discount",
    "escalat",
    "expan",
    "legal",
    "outage",
    "price",
    "pricing",
    "proposal",
    "renew",
    "security",
    "sign",
    "trial",
    "upgrade",
    "urgent",
)

KIND_WEIGHT: Mapping[InteractionKind, float] = {
    InteractionKind.MEETING: 0.5,
    InteractionKind.SUPPORT_TICKET: 0.5,
    InteractionKind.EMAIL: 0.3,
    InteractionKind.CHAT: 0.2,
    InteractionKind.PRICING_PAGE_VISIT: 0.1,
    InteractionKind.PAGE_VISIT: 0.0,
}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _split(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= 3]


def _score(sentence: str, item: Interaction, now: datetime, period: timedelta) -> float:
    age = (now - item.at) / period
    recency = max(0.0, 1.0 - age)
    sentiment = item.sentiment or 0.0
    tone = -sentiment if sentiment < 0 else sentiment / 4
    lowered = sentence.lower()
    salience = min(0.5 * sum(term in lowered for term in SALIENT_TERMS), 1.5)
    return recency + tone + salience + KIND_WEIGHT[item.kind]


def _average(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _sentiment_line(recent: list[Interaction], now: datetime, period: timedelta) -> str:
    rated = [i for i in recent if i.sentiment is not None]
    if not rated:
        return "No sentiment recorded."
    middle = now - period / 2
    earlier = _average([i.sentiment or 0.0 for i in rated if i.at < middle])
    later = _average([i.sentiment or 0.0 for i in rated if i.at >= middle])
    overall = _average([i.sentiment or 0.0 for i in rated]) or 0.0
    if earlier is None or later is None:
        return f"Average sentiment {overall:+.2f} ({len(rated)} rated)."
    delta = later - earlier
    trend = (
        "rising" if delta > TREND_THRESHOLD else "falling" if delta < -TREND_THRESHOLD else "steady"
    )
    return (
        f"Sentiment {trend}: {later:+.2f} in the later half of the period vs {earlier:+.2f}"
        f" before ({len(rated)} rated)."
    )


def _last_contacts(recent: list[Interaction]) -> str:
    parts = []
    for direction, label in ((Direction.IN, "inbound"), (Direction.OUT, "outbound")):
        last = next((i for i in reversed(recent) if i.direction is direction), None)
        if last is not None:
            kind = last.kind.value.replace("_", " ")
            parts.append(f"{label} {last.at.date().isoformat()} ({kind})")
    return "Last contact: " + "; ".join(parts) + "."


def extractive_summary(
    account: str,
    interactions: Sequence[Interaction],
    *,
    now: datetime,
    max_sentences: int = 5,
    period_days: float = 30.0,
) -> str:
    """Summarise the account's interactions of the last ``period_days`` before ``now``.

    :raises InvalidArgument: ``max_sentences`` is negative or ``period_days`` not positive.
    """
    if max_sentences < 0:
        raise InvalidArgument(
            "max_sentences must not be negative", details={"field": "max_sentences"}
        )
    if not period_days > 0:
        raise InvalidArgument("period_days must be positive", details={"field": "period_days"})
    period = timedelta(days=period_days)
    since = now - period
    recent = sorted(
        (i for i in interactions if since <= i.at <= now),
        key=lambda i: (i.at, i.id),
    )
    if not recent:
        return f"{account}: no interactions in the last {period_days:g} days."

    inbound = sum(i.direction is Direction.IN for i in recent)
    kinds = Counter(i.kind.value for i in recent)
    by_kind = ", ".join(
        f"{count} {kind.replace('_', ' ')}"
        for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    lines = [
        f"{account}: {len(recent)} interactions in the last {period_days:g} days"
        f" ({inbound} inbound, {len(recent) - inbound} outbound): {by_kind}.",
        _sentiment_line(recent, now, period),
    ]
    lines.append(_last_contacts(recent))

    # (score, newer first, id, position) -> the best of each distinct sentence.
    candidates: dict[str, tuple[float, float, str, int, Interaction, str]] = {}
    for item in recent:
        for position, sentence in enumerate(_split(item.summary or "")):
            entry = (
                _score(sentence, item, now, period),
                item.at.timestamp(),
                item.id,
                position,
                item,
                sentence,
            )
            norm = " ".join(sentence.lower().split())
            best = candidates.get(norm)
            if best is None or _rank(entry) < _rank(best):
                candidates[norm] = entry
    chosen = sorted(candidates.values(), key=_rank)[:max_sentences]
    if chosen:
        chosen.sort(key=lambda e: (e[1], e[2], e[3]))
        lines.append("Key points:")
        for _, _, _, _, item, sentence in chosen:
            kind = item.kind.value.replace("_", " ")
            lines.append(
                f"- {item.at.date().isoformat()} {kind} ({item.direction.value}): {sentence}"
            )
    return "\n".join(lines)


def _rank(entry: tuple[float, float, str, int, Interaction, str]) -> tuple[float, float, str, int]:
    score, at, ident, position, _, _ = entry
    return (-score, -at, ident, position)
