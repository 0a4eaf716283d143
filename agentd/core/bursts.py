"""Repeated events per key, reported once per interval with a count.

A flood of refused requests must not write one audit record (or log line)
each: the first event of a quiet key is reported on its own, the ones that
follow within the interval are only counted, and when the interval ends
they become one :class:`Burst`. While the flood lasts, one burst per key
per interval; once a whole interval passes without one, the key is quiet
again. Times are plain seconds from any monotonic clock, passed in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Burst:
    """The events counted for one key in one interval (after its first was reported)."""

    key: Any
    label: str
    count: int
    what: dict[str, int]
    seconds: float


@dataclass
class _Window:
    label: str
    started: float
    count: int = 0
    what: Counter[str] = field(default_factory=Counter)


class BurstTally:
    """Decide which events to report on their own and count the rest.

    :param interval_s: how long events of one key are counted before they are reported.
    :param max_kinds: distinct ``what`` values kept per burst (the rest are summed as "other").
    """

    def __init__(self, interval_s: float, max_kinds: int = 20) -> None:
        self.interval_s = interval_s
        self.max_kinds = max_kinds
        self._windows: dict[Any, _Window] = {}

    def note(self, key: Any, label: str, what: str, now: float) -> bool:
        """Count one event; return True when it should be reported on its own."""
        window = self._windows.get(key)
        if window is None:
            self._windows[key] = _Window(label, now)
            return True
        window.count += 1
        window.label = label
        if what in window.what or len(window.what) < self.max_kinds:
            window.what[what] += 1
        else:
            window.what["other"] += 1
        return False

    def due(self, now: float) -> list[Burst]:
        """Return the bursts whose interval has ended; quiet keys are forgotten."""
        out: list[Burst] = []
        for key, window in list(self._windows.items()):
            if now - window.started < self.interval_s:
                continue
            if window.count:
                out.append(self._burst(key, window, now))
                # Still flooding: the next interval counts from here, with no
                # record of its own for its first event.
                self._windows[key] = _Window(window.label, now)
            else:
                del self._windows[key]
        return out

    def drain(self, now: float) -> list[Burst]:
        """Return every burst counted so far and forget all keys (at shutdown)."""
        out = [self._burst(k, w, now) for k, w in self._windows.items() if w.count]
        self._windows.clear()
        return out

    def pending(self) -> int:
        """Return how many events are counted and not yet reported."""
        return sum(w.count for w in self._windows.values())

    @staticmethod
    def _burst(key: Any, window: _Window, now: float) -> Burst:
        return Burst(
            key=key,
            label=window.label,
            count=window.count,
            what=dict(window.what.most_common()),
            seconds=round(now - window.started, 3),
        )
