from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree

import pytest

from agentd.errors import InvalidArgument
from agentd.report_chart import PALETTE, line_chart_svg

SVG = "{http://www.w3.org/2000/svg}"
DAYS = ["11-17", "11-18", "11-19", "11-20", "11-21", "11-22", "11-23"]
WEEK: dict[str, Sequence[tuple[str, float | None]]] = {
    "success rate": list(zip(DAYS, [99.1, 99.8, None, 98.0, 99.9, 100.0, 99.5], strict=True)),
    "rollback rate": list(zip(DAYS, [1.0, 0.5, 2.0, 1.0, 3.0, 0.0, 1.5], strict=True)),
}


def series_points(svg: str) -> dict[str, list[list[tuple[float, float]]]]:
    """Return each series' runs of points (a lone point is a run of one)."""
    root = ElementTree.fromstring(svg)
    out: dict[str, list[list[tuple[float, float]]]] = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "series":
            continue
        runs = out.setdefault(group.get("data-name") or "", [])
        for shape in group:
            if shape.tag == f"{SVG}circle":
                runs.append([(float(shape.get("cx", "")), float(shape.get("cy", "")))])
            else:
                pairs = (p.split(",") for p in shape.get("points", "").split())
                runs.append([(float(x), float(y)) for x, y in pairs])
    return out


def test_svg_colours_each_series_from_the_palette() -> None:
    root = ElementTree.fromstring(line_chart_svg(WEEK, "t", "%", y_max=100))
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") == "series"]
    assert [g.get("stroke") for g in groups] == [PALETTE[0], PALETTE[1]]
    assert [len(run) for run in series_points(line_chart_svg(WEEK, "t", "%"))["success rate"]] == [
        2,
        4,
    ]


def test_svg_of_nothing_is_still_an_image() -> None:
    root = ElementTree.fromstring(line_chart_svg({}, "empty", "y"))
    assert (root.get("width"), root.get("height")) == ("720", "360")
    assert series_points(line_chart_svg({}, "empty", "y")) == {}


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
