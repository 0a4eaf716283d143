from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from xml.etree import ElementTree

import pytest

from agentd.core.chart import PALETTE, line_chart_png, line_chart_svg
from agentd.errors import InvalidArgument

SVG = "{http://www.w3.org/2000/svg}"
DAYS = ["11-17", "11-18", "11-19", "11-20", "11-21", "11-22", "11-23"]
WEEK: dict[str, Sequence[tuple[str, float | None]]] = {
    "success rate": list(zip(DAYS, [99.1, 99.8, None, 98.0, 99.9, 100.0, 99.5], strict=True)),
    "rollback rate": list(zip(DAYS, [1.0, 0.5, 2.0, 1.0, 3.0, 0.0, 1.5], strict=True)),
}


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB PNG with filter 0, checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC on {kind!r}"
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color, interlace) == (8, 2, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * 3 + 1
    assert len(raw) == stride * height
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows)  # filter type 0
    return width, height, [row[1:] for row in rows]


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    r, g, b = rows[y][x * 3 : x * 3 + 3]
    return r, g, b


def color(index: int) -> tuple[int, int, int]:
    hex_color = PALETTE[index]
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


def count(
    rows: list[bytes], rgb: tuple[int, int, int], x_range: range | None = None, y_stop: int = 0
) -> int:
    """Count pixels of colour ``rgb`` in columns ``x_range`` of rows before ``y_stop``."""
    total = 0
    for row in rows[: y_stop or len(rows)]:
        for x in x_range or range(len(row) // 3):
            if tuple(row[x * 3 : x * 3 + 3]) == rgb:
                total += 1
    return total


def test_png_is_a_valid_image_with_the_lines_drawn() -> None:
    data = line_chart_png(WEEK, "Weekly rates", "%", y_max=100, width=640, height=320)
    width, height, rows = decode_png(data)
    assert (width, height) == (640, 320)
    assert pixel(rows, 2, 2) == (255, 255, 255)  # background
    assert count(rows, color(0)) > 200  # success rate line
    assert count(rows, color(1)) > 200  # rollback rate line
    assert count(rows, (0x33, 0x33, 0x33)) > 500  # axes and text


def test_png_leaves_a_gap_for_none() -> None:
    series = {"s": [("a", 5.0), ("b", 5.0), ("c", None), ("d", 5.0), ("e", 5.0)]}
    _, _, rows = decode_png(line_chart_png(series, "t", "y", width=400, height=200))
    # plot spans x 70..364 and y 44..136: points every 73.5 px, "b" at ~143, "d" at ~290
    assert count(rows, color(0), range(150, 280), y_stop=140) == 0
    assert count(rows, color(0), range(80, 140), y_stop=140) > 0
    assert count(rows, color(0), range(295, 360), y_stop=140) > 0


def test_png_of_nothing_is_still_an_image() -> None:
    width, height, rows = decode_png(line_chart_png({}, "empty", "y"))
    assert (width, height) == (720, 360)
    assert count(rows, color(0)) == 0


def test_svg_structure() -> None:
    text = line_chart_svg(WEEK, "Weekly <rates> & more", "%", y_max=100)
    root = ElementTree.fromstring(text)
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Weekly <rates> & more" in texts  # escaped in the file, intact when parsed
    assert "%" in texts
    assert {"0", "20", "40", "60", "80", "100"} <= set(texts)
    assert set(DAYS) <= set(texts)
    assert {"success rate", "rollback rate"} <= set(texts)  # legend
    groups = {g.get("data-name"): g for g in root.iter(f"{SVG}g") if g.get("class") == "series"}
    # success rate has a gap on 11-19: two runs
    assert len(groups["success rate"].findall(f"{SVG}polyline")) == 2
    assert len(groups["rollback rate"].findall(f"{SVG}polyline")) == 1
    (line,) = groups["rollback rate"].findall(f"{SVG}polyline")
    assert len(line.get("points", "").split()) == 7


def test_svg_lone_point_between_gaps_is_a_circle() -> None:
    series = {"s": [("a", None), ("b", 3.0), ("c", None)]}
    root = ElementTree.fromstring(line_chart_svg(series, "t", "y"))
    (group,) = [g for g in root.iter(f"{SVG}g") if g.get("class") == "series"]
    assert group.findall(f"{SVG}polyline") == []
    assert len(group.findall(f"{SVG}circle")) == 1


def test_svg_values_map_to_the_y_axis() -> None:
    series = {"s": [("a", 0.0), ("b", 50.0), ("c", 100.0), ("d", 150.0)]}
    root = ElementTree.fromstring(line_chart_svg(series, "t", "y", y_max=100, height=360))
    (line,) = root.iter(f"{SVG}polyline")
    ys = [float(p.split(",")[1]) for p in line.get("points", "").split()]
    top, bottom = 44, 360 - 64
    assert ys[0] == pytest.approx(bottom)
    assert ys[1] == pytest.approx((top + bottom) / 2)
    assert ys[2] == pytest.approx(top)
    assert ys[3] == pytest.approx(top)  # clipped at y_max


def test_automatic_y_range_covers_the_data() -> None:
    series = {"s": [("a", 0.2), ("b", 0.93)]}
    root = ElementTree.fromstring(line_chart_svg(series, "t", "y"))
    ticks = [
        float(t.text or "") for g in root.iter(f"{SVG}g") if g.get("class") == "y-ticks" for t in g
    ]
    assert min(ticks) == 0 and max(ticks) >= 0.93


def test_many_labels_are_thinned() -> None:
    labels = [f"2025-11-{d:02d}" for d in range(1, 31)]
    series = {"s": [(label, float(i)) for i, label in enumerate(labels)]}
    root = ElementTree.fromstring(line_chart_svg(series, "t", "y"))
    shown = [
        t.text
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "x-ticks"
        for t in g.iter(f"{SVG}text")
    ]
    assert 2 < len(shown) < 30
    assert shown[0] == "2025-11-01"


@pytest.mark.parametrize(
    ("kwargs"),
    [{"y_max": 0.0}, {"y_max": -1.0}, {"y_max": float("nan")}, {"width": 10}],
)
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument):
        line_chart_svg(WEEK, "t", "y", **kwargs)  # type: ignore[arg-type]
