"""Unit tests of the dashboard's server-side SVG charts."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.service.web import svg

NS = {"s": svg.SVG_NS}


def bars(markup: str) -> list[ET.Element]:
    root = ET.fromstring(markup)
    assert root.tag == f"{{{svg.SVG_NS}}}svg"
    return [r for r in root.iter(f"{{{svg.SVG_NS}}}rect") if "bar" in r.get("class", "").split()]


def axis_y(markup: str) -> float:
    root = ET.fromstring(markup)
    (axis,) = [e for e in root.iter(f"{{{svg.SVG_NS}}}line") if e.get("class") == "axis"]
    assert axis.get("y1") == axis.get("y2")
    return float(axis.get("y1"))


def test_bar_heights_scale_with_values() -> None:
    values = [1.0, 2.0, 4.0, 0.5]
    chart = svg.bar_chart(["a", "b", "c", "d"], values, title="Payouts")
    heights = [float(b.get("height")) for b in bars(chart)]
    assert heights[2] == pytest.approx(160.0)  # the tallest bar fills the plot area
    for v, h in zip(values, heights, strict=True):
        assert h == pytest.approx(heights[2] * v / 4.0, abs=0.01)
    # All positive: bars rest on the axis.
    y0 = axis_y(chart)
    for b in bars(chart):
        assert float(b.get("y")) + float(b.get("height")) == pytest.approx(y0, abs=0.01)
    assert [b.get("data-value") for b in bars(chart)] == ["1.0000", "2.0000", "4.0000", "0.5000"]


def test_negative_values_hang_below_the_axis() -> None:
    chart = svg.bar_chart(["gain", "loss", "zero"], [0.3, -0.1, 0.0], title="Net gain")
    y0 = axis_y(chart)
    gain, loss, zero = bars(chart)
    assert float(gain.get("y")) + float(gain.get("height")) == pytest.approx(y0, abs=0.01)
    assert float(loss.get("y")) == pytest.approx(y0, abs=0.01)
    assert float(loss.get("height")) > 0
    # Same scale on both sides: 0.3 is three times as tall as -0.1.
    assert float(gain.get("height")) == pytest.approx(3 * float(loss.get("height")), abs=0.02)
    assert "negative" in loss.get("class") and loss.get("fill") == svg.NEGATIVE
    assert "positive" in gain.get("class") and gain.get("fill") == svg.POSITIVE
    assert float(zero.get("height")) == 0.0
    # The plot spans exactly the range [-0.1, 0.3].
    assert float(gain.get("y")) == pytest.approx(34.0, abs=0.01)
    assert float(loss.get("y")) + float(loss.get("height")) == pytest.approx(240 - 46, abs=0.01)


def test_all_negative_and_all_zero() -> None:
    chart = svg.bar_chart(["a", "b"], [-2.0, -1.0], title="t")
    y0 = axis_y(chart)
    assert all(float(b.get("y")) == pytest.approx(y0) for b in bars(chart))
    assert y0 == pytest.approx(34.0)  # the axis sits on top
    flat = svg.bar_chart(["a", "b"], [0.0, 0.0], title="t")
    assert [float(b.get("height")) for b in bars(flat)] == [0.0, 0.0]


def test_names_are_escaped() -> None:
    evil = '<script>alert("x")</script>'
    names = [evil, "a&b", "it's", "ctl\x00\x1fchar"]
    chart = svg.bar_chart(names, [1.0, 2.0, 3.0, 4.0], title="<b>fees</b> & more")
    assert "<script>" not in chart
    assert "&lt;script&gt;" in chart
    root = ET.fromstring(chart)  # well-formed despite the hostile text
    assert [b.get("data-label") for b in bars(chart)] == [evil, "a&b", "it's", "ctlchar"]
    assert root.get("aria-label") == "<b>fees</b> & more"
    assert not list(root.iter("script")) and not list(root.iter(f"{{{svg.SVG_NS}}}script"))


def test_non_finite_values_are_drawn_as_na() -> None:
    chart = svg.bar_chart(["a", "b"], [math.nan, math.inf], title="t")
    assert [b.get("data-value") for b in bars(chart)] == ["n/a", "n/a"]
    assert [float(b.get("height")) for b in bars(chart)] == [0.0, 0.0]


def test_grouped_bars_and_legend() -> None:
    chart = svg.grouped_bar_chart(
        ["p1", "p2", "p3"],
        [("value before", [0.8, 0.9, 0.7]), ("value after", [0.95, 0.96, 0.94])],
        title="Value",
    )
    found = bars(chart)
    assert len(found) == 6
    assert [b.get("data-series") for b in found[:2]] == ["value before", "value after"]
    before, after = found[0], found[1]
    assert float(after.get("x")) > float(before.get("x"))
    assert float(after.get("height")) > float(before.get("height"))
    legend = [
        t.text
        for t in ET.fromstring(chart).iter(f"{{{svg.SVG_NS}}}text")
        if t.get("class") == "legend"
    ]
    assert legend == ["value before", "value after"]


def test_long_labels_are_shortened_but_kept_in_tooltips() -> None:
    name = "x" * 64
    chart = svg.bar_chart([name] * 6, [1.0] * 6, title="t", width=400)
    root = ET.fromstring(chart)
    labels = [t for t in root.iter(f"{{{svg.SVG_NS}}}text") if t.get("class") == "label"]
    assert all(t.text.endswith("…") and len(t.text) < 64 for t in labels)
    assert all(t.find("s:title", NS).text == name for t in labels)


def test_charts_are_deterministic_and_validate_lengths() -> None:
    args = (["a", "b"], [0.1234567, -0.5])
    assert svg.bar_chart(*args, title="t") == svg.bar_chart(*args, title="t")
    with pytest.raises(ValueError, match="one value per label"):
        svg.bar_chart(["a"], [1.0, 2.0], title="t")
    with pytest.raises(ValueError, match="series 'x'"):
        svg.grouped_bar_chart(["a"], [("x", [1.0, 2.0])], title="t")
    empty = ET.fromstring(svg.bar_chart([], [], title="t"))
    assert [t.text for t in empty.iter(f"{{{svg.SVG_NS}}}text")][-1] == "no data"


@pytest.mark.parametrize(
    ("fraction", "width"),
    [
        (0.0, "0.00"),
        (0.5, "120.00"),
        (1.0, "240.00"),
        (2.0, "240.00"),
        (-1.0, "0.00"),
        (math.nan, "0.00"),
    ],
)
def test_progress_bar(fraction: float, width: str) -> None:
    root = ET.fromstring(svg.progress_bar(fraction))
    (fill,) = [r for r in root.iter(f"{{{svg.SVG_NS}}}rect") if r.get("class") == "progress-fill"]
    assert fill.get("width") == width
    assert 0.0 <= float(root.get("data-fraction")) <= 1.0


def test_progress_bar_label_is_escaped() -> None:
    out = svg.progress_bar(0.3, label="<i>30%</i>")
    assert "<i>" not in out and ET.fromstring(out) is not None


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.text(max_size=20), min_size=1, max_size=6),
    data=st.data(),
)
def test_any_text_and_values_give_well_formed_bounded_charts(
    names: list[str], data: st.DataObject
) -> None:
    values = data.draw(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False),
            min_size=len(names),
            max_size=len(names),
        )
    )
    chart = svg.bar_chart(names, values, title=names[0])
    root = ET.fromstring(chart)
    height = float(root.get("height"))
    y0 = axis_y(chart)
    drawn = bars(chart)
    assert len(drawn) == len(names)
    top = max(abs(v) for v in values)
    for bar, v in zip(drawn, values, strict=True):
        y, h = float(bar.get("y")), float(bar.get("height"))
        assert 0.0 <= y and y + h <= height  # inside the canvas
        assert (
            (y == pytest.approx(y0, abs=0.01)) if v < 0 else (y + h == pytest.approx(y0, abs=0.01))
        )
        if top > 0:  # one linear scale: the height is proportional to |value|
            tallest = max(float(b.get("height")) for b in drawn)
            assert h == pytest.approx(tallest * (abs(v) / top), abs=0.02)


def test_tiny_bars_end_exactly_on_the_axis() -> None:
    # Found by hypothesis: independently rounded y and height missed the axis by 0.01.
    chart = svg.bar_chart(["a", "b", "c"], [198.0, 301714.0, -1.0], title="t")
    y0 = axis_y(chart)
    a, _, c = bars(chart)
    assert float(a.get("y")) + float(a.get("height")) == pytest.approx(y0, abs=1e-9)
    assert float(c.get("y")) == pytest.approx(y0, abs=1e-9)


def test_huge_values_are_printed_compactly() -> None:
    chart = svg.bar_chart(["a"], [1.5e300], title="t")
    assert bars(chart)[0].get("data-value") == "1.5e+300"
    assert len(chart) < 2000
