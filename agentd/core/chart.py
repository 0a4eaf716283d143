"""Small, dependency-free line charts for the weekly governance report.

Two renderers share one layout: :func:`line_chart_svg` (text, crisp, for
viewers that show SVG) and :func:`line_chart_png` (a real PNG built with
``zlib`` and Bresenham lines, for everything else). A series is a sequence of
``(label, value)``; ``None`` (or a non-finite value) leaves a gap. The x axis
is the union of every series' labels in order of first appearance, evenly
spaced; values above ``y_max`` are drawn at ``y_max``.
"""

from __future__ import annotations

import html
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

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


# A 3x5 pixel font: each glyph is five rows of three bits, top row first.
_FONT: Mapping[str, str] = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111",
    "F": "111100110100100", "G": "011100101101011", "H": "101101111101101",
    "I": "111010010010111", "J": "001001001101010", "K": "101101110101101",
    "L": "100100100100111", "M": "101111111101101", "N": "110101101101101",
    "O": "010101101101010", "P": "110101110100100", "Q": "010101101110011",
    "R": "110101110101101", "S": "011100010001110", "T": "111010010010010",
    "U": "101101101101111", "V": "101101101101010", "W": "101101111111101",
    "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    " ": "000000000000000", ".": "000000000000010", ",": "000000000010100",
    "-": "000000111000000", "_": "000000000000111", ":": "000010000010000",
    "%": "101001010100101", "/": "001001010100100", "(": "010100100100010",
    ")": "010001001001010", "+": "000010111010000", "=": "000111000111000",
    "?": "111001010000010",
}  # fmt: skip
_GLYPH_SCALE = 2
_ADVANCE = 4 * _GLYPH_SCALE  # three columns and one of spacing


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


class _Canvas:
    """An RGB raster with just enough drawing for a line chart."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, color: tuple[int, int, int]) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            at = (y * self.width + x) * 3
            self.pixels[at : at + 3] = bytes(color)

    def rect(self, x: int, y: int, w: int, h: int, color: tuple[int, int, int]) -> None:
        for yy in range(y, y + h):
            for xx in range(x, x + w):
                self.dot(xx, yy, color)

    def line(
        self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int], thick: int = 1
    ) -> None:
        """Draw a line with Bresenham's algorithm (``thick`` pixels, widened downwards)."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            for extra in range(thick):
                self.dot(x0, y0 + extra, color)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * err
            if doubled >= dy:
                err += dy
                x0 += sx
            if doubled <= dx:
                err += dx
                y0 += sy

    def text(
        self, x: int, y: int, text: str, color: tuple[int, int, int], anchor: str = "start"
    ) -> None:
        """Write ``text`` with its top at ``y``; ``anchor`` is start, middle or end."""
        width = len(text) * _ADVANCE - _GLYPH_SCALE
        if anchor == "middle":
            x -= width // 2
        elif anchor == "end":
            x -= width
        for char in text:
            glyph = _FONT.get(char.upper(), _FONT["?"])
            for bit, on in enumerate(glyph):
                if on == "1":
                    row, col = divmod(bit, 3)
                    self.rect(
                        x + col * _GLYPH_SCALE,
                        y + row * _GLYPH_SCALE,
                        _GLYPH_SCALE,
                        _GLYPH_SCALE,
                        color,
                    )
            x += _ADVANCE

    def png(self) -> bytes:
        """Encode as an 8-bit RGB PNG (filter type 0 on every row)."""
        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[row * stride : (row + 1) * stride])
            for row in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = zlib.crc32(kind + data) & 0xFFFFFFFF
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def line_chart_png(
    series: Series,
    title: str,
    y_label: str,
    y_max: float | None = None,
    *,
    width: int = 720,
    height: int = 360,
) -> bytes:
    """Render the same chart as :func:`line_chart_svg` as PNG bytes.

    Text uses a built-in 3x5 pixel font (upper case; unknown characters show as "?").

    :raises InvalidArgument: a ``y_max`` not above the data's floor, or a tiny size.
    """
    lay = _layout(series, y_max, width, height)
    canvas = _Canvas(width, height)
    ink, grid = (0x33, 0x33, 0x33), (0xE6, 0xE6, 0xE6)
    canvas.text(width // 2, 12, title, ink, anchor="middle")
    canvas.text(lay.left, lay.top - 16, y_label, ink)
    for tick in lay.ticks:
        y = round(lay.y(tick))
        canvas.line(lay.left, y, lay.right, y, grid)
        canvas.text(lay.left - 6, y - 5, _tick_text(tick), ink, anchor="end")
    canvas.line(lay.left, lay.top, lay.left, lay.bottom, ink)
    canvas.line(lay.left, lay.bottom, lay.right, lay.bottom, ink)
    step = lay.label_step(_ADVANCE)
    for index, label in enumerate(lay.labels):
        x = round(lay.x(index))
        canvas.line(x, lay.bottom, x, lay.bottom + 4, ink)
        if index % step == 0:
            canvas.text(x, lay.bottom + 8, label, ink, anchor="middle")
    legend_x = lay.left
    for number, (name, segments) in enumerate(lay.runs):
        color = _rgb(PALETTE[number % len(PALETTE)])
        for segment in segments:
            points = [(round(x), round(y)) for x, y in segment]
            if len(points) == 1:
                canvas.rect(points[0][0] - 2, points[0][1] - 2, 5, 5, color)
            for (x0, y0), (x1, y1) in pairwise(points):
                canvas.line(x0, y0, x1, y1, color, thick=2)
        canvas.rect(legend_x, height - 22, 14, 10, color)
        canvas.text(legend_x + 19, height - 22, name, ink)
        legend_x += 34 + _ADVANCE * len(name)
    return canvas.png()
