"""A small, dependency-free line chart (SVG) for the weekly governance report.

Presentation, not decision: it lives beside the services that write reports,
outside the pure core. A series is a sequence of ``(label, value)``; ``None``
(or a non-finite value) leaves a gap. The x axis is the union of every series'
labels in order of first appearance, evenly spaced; values above ``y_max`` are
drawn at ``y_max``. The SVG has real text (the title, ticks, day labels and
legend in the viewer's sans-serif font) and is shown by browsers, Markdown
previews and code forges alike.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agentd.errors import InvalidArgument

Series = Mapping[str, Sequence[tuple[str, float | None]]]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 70, 36, 44, 64
_TICKS = 5


@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    labels: tuple[str, ...]
    y_lo: float
    y_hi: float
    ticks: tuple[float, ...]
    runs: tuple[tuple[str, tuple[tuple[tuple[float, float], ...], ...]], ...]

    @property
    def left(self) -> int:
        return _MARGIN_LEFT

    @property
    def right(self) -> int:
        return self.width - _MARGIN_RIGHT

    @property
    def top(self) -> int:
        return _MARGIN_TOP

    @property
    def bottom(self) -> int:
        return self.height - _MARGIN_BOTTOM

    def x(self, index: int) -> float:
        if len(self.labels) == 1:
            return (self.left + self.right) / 2
        return self.left + index * (self.right - self.left) / (len(self.labels) - 1)

    def y(self, value: float) -> float:
        clipped = min(max(value, self.y_lo), self.y_hi)
        return self.bottom - (clipped - self.y_lo) / (self.y_hi - self.y_lo) * (
            self.bottom - self.top
        )

    def label_step(self, char_width: float) -> int:
        """Return every how many x labels to print so that they do not overlap."""
        if not self.labels:
            return 1
        longest = max(len(label) for label in self.labels) * char_width + 8
        room = (self.right - self.left) / max(len(self.labels) - 1, 1)
        return max(1, math.ceil(longest / room))


def _nice_step(span: float) -> float:
    raw = span / _TICKS
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude


def _layout(series: Series, y_max: float | None, width: int, height: int) -> _Layout:
    if width < 200 or height < 150:
        raise InvalidArgument("a chart needs at least 200 x 150 pixels", details={"field": "width"})
    labels: dict[str, int] = {}
    values: list[float] = []
    for points in series.values():
        for label, value in points:
            labels.setdefault(str(label), len(labels))
            if value is not None and math.isfinite(value):
                values.append(float(value))
    floor = min([0.0, *values])
    if y_max is not None:
        if not math.isfinite(y_max) or y_max <= floor:
            raise InvalidArgument(
                "y_max must be above the lowest value", details={"field": "y_max"}
            )
        step = _nice_step(y_max - floor)
        y_lo, y_hi = step * math.floor(floor / step), float(y_max)
    else:
        top = max([*values, floor])
        step = _nice_step(top - floor if top > floor else 1.0)
        y_lo = step * math.floor(floor / step)
        y_hi = max(step * math.ceil(top / step), y_lo + step)
    count = round((y_hi - y_lo) / step)
    ticks = tuple(
        y_lo + i * step for i in range(count + 1) if y_lo + i * step <= y_hi + step * 1e-9
    )
    layout = _Layout(width, height, tuple(labels), y_lo, y_hi, ticks, ())
    runs = []
    for name, points in series.items():
        segments: list[tuple[tuple[float, float], ...]] = []
        current: list[tuple[float, float]] = []
        by_label = {str(label): value for label, value in points}
        for label, index in labels.items():
            if label not in by_label:
                continue  # a label only other series have: not a gap in this one
            value = by_label[label]
            if value is None or not math.isfinite(value):
                if current:
                    segments.append(tuple(current))
                current = []
                continue
            current.append((layout.x(index), layout.y(float(value))))
        if current:
            segments.append(tuple(current))
        runs.append((str(name), tuple(segments)))
    return _Layout(width, height, tuple(labels), y_lo, y_hi, ticks, tuple(runs))


def _tick_text(value: float) -> str:
    return f"{round(value, 9):g}"


def line_chart_svg(
    series: Series,
    title: str,
    y_label: str,
    y_max: float | None = None,
    *,
    width: int = 720,
    height: int = 360,
) -> str:
    """Render a line chart as a standalone SVG document.

    One ``<polyline>`` per unbroken run of a series (a lone point between gaps
    is a ``<circle>``), with axes, ticks, labels and a legend.

    :raises InvalidArgument: a ``y_max`` not above the data's floor, or a tiny size.
    """
    lay = _layout(series, y_max, width, height)
    esc = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>',
        '<g class="grid" stroke="#e6e6e6">',
    ]
    for tick in lay.ticks:
        out.append(
            f'<line x1="{lay.left}" y1="{lay.y(tick):.1f}" '
            f'x2="{lay.right}" y2="{lay.y(tick):.1f}"/>'
        )
    out.append("</g>")
    out.append(
        f'<g class="axes" stroke="#333333"><line x1="{lay.left}" y1="{lay.bottom}" '
        f'x2="{lay.right}" y2="{lay.bottom}"/><line x1="{lay.left}" y1="{lay.top}" '
        f'x2="{lay.left}" y2="{lay.bottom}"/></g>'
    )
    out.append('<g class="y-ticks" text-anchor="end">')
    for tick in lay.ticks:
        out.append(
            f'<text x="{lay.left - 6}" y="{lay.y(tick) + 4:.1f}">{esc(_tick_text(tick))}</text>'
        )
    out.append("</g>")
    out.append('<g class="x-ticks" text-anchor="middle">')
    step = lay.label_step(6.5)
    for index, label in enumerate(lay.labels):
        x = lay.x(index)
        out.append(
            f'<line x1="{x:.1f}" y1="{lay.bottom}" x2="{x:.1f}" y2="{lay.bottom + 4}" '
            'stroke="#333333"/>'
        )
        if index % step == 0:
            out.append(f'<text x="{x:.1f}" y="{lay.bottom + 17}">{esc(label)}</text>')
    out.append("</g>")
    mid = (lay.top + lay.bottom) / 2
    out.append(
        f'<text x="16" y="{mid:.1f}" transform="rotate(-90 16 {mid:.1f})" '
        f'text-anchor="middle">{esc(y_label)}</text>'
    )
    for number, (name, segments) in enumerate(lay.runs):
        color = PALETTE[number % len(PALETTE)]
        out.append(f'<g class="series" data-name="{esc(name)}" stroke="{color}" fill="{color}">')
        for segment in segments:
            if len(segment) == 1:
                (x, y) = segment[0]
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"/>')
            else:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
                out.append(f'<polyline points="{points}" fill="none" stroke-width="2"/>')
        out.append("</g>")
    out.append('<g class="legend">')
    x = float(lay.left)
    for number, (name, _) in enumerate(lay.runs):
        color = PALETTE[number % len(PALETTE)]
        y = height - 18
        out.append(f'<rect x="{x:.1f}" y="{y - 9}" width="14" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 19:.1f}" y="{y}">{esc(name)}</text>')
        x += 34 + 6.5 * len(name)
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
