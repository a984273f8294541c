"""Server-side SVG charts of the dashboard: bar charts, grouped bars, a progress bar.

The charts are hand-written SVG strings, so they need neither a browser library nor
a CDN and render identically in every browser and in tests. Every function is
deterministic (same input, same bytes): coordinates are rounded to two decimals and
numbers are printed with a fixed format. Every piece of text that comes from data
(party names, titles, units) is XML-escaped and stripped of characters XML 1.0 cannot
hold, so the output is well-formed XML that can also be inlined into an HTML page.

Bars are drawn from a zero axis: positive values rise above it, negative values hang
below it, both on one linear scale, so a party's net loss is visibly a loss.

Examples
--------
>>> import xml.etree.ElementTree as ET
>>> svg = bar_chart(["alice", "<bob>"], [0.5, -0.25], title="Net gain")
>>> root = ET.fromstring(svg)
>>> [r.get("data-label") for r in root.iter("{http://www.w3.org/2000/svg}rect")
...  if r.get("class", "").startswith("bar")]
['alice', '<bob>']
>>> "&lt;bob&gt;" in svg
True
>>> ET.fromstring(progress_bar(0.25)).get("data-fraction")
'0.2500'
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from coopml.service.web.render import format_number

__all__ = ["bar_chart", "escape", "grouped_bar_chart", "progress_bar"]

SVG_NS = "http://www.w3.org/2000/svg"

#: Colours (GitHub Primer palette: readable on white, distinguishable in grey).
POSITIVE = "#1f6feb"
NEGATIVE = "#cf222e"
SERIES_COLORS = ("#8c959f", "#1f6feb", "#1a7f37", "#bf8700")

_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Layout of the bar charts (pixels).
_TOP = 34.0
_BOTTOM = 46.0
_LEFT = 64.0
_RIGHT = 12.0
_CHAR_WIDTH = 6.6  # average width of one character at font-size 11


def escape(text: object) -> str:
    """XML-escape ``text`` (``& < > " '``) after removing characters XML cannot hold.

    Examples
    --------
    >>> escape('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    >>> escape("a\\x00b")
    'ab'
    """
    s = _INVALID_XML.sub("", str(text))
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _num(x: float) -> str:
    """A coordinate with two decimals, without a negative zero."""
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def _shorten(label: str, max_chars: int) -> str:
    max_chars = max(max_chars, 2)
    return label if len(label) <= max_chars else label[: max_chars - 1] + "…"


def _open(width: float, height: float, title: str, css_class: str, extra: str = "") -> list[str]:
    return [
        f'<svg xmlns="{SVG_NS}" class="{escape(css_class)}" width="{_num(width)}" '
        f'height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" role="img" '
        f'aria-label="{escape(title)}"{extra}>',
        f"<title>{escape(title)}</title>",
    ]


def grouped_bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    width: float = 560.0,
    height: float = 260.0,
    colors: Sequence[str] = SERIES_COLORS,
    negative_color: str | None = None,
    decimals: int = 4,
) -> str:
    """Bars of several series side by side for each label, from a common zero axis.

    Parameters
    ----------
    labels : sequence of str, length n
        One group of bars per label (e.g. party names).
    series : sequence of (name, values) with ``len(values) == n``
        The series drawn in each group, in order, with a legend when there are two
        or more.
    title : str
        Shown above the plot and used as the accessible name.
    width, height : float
        Size in pixels.
    colors : sequence of str
        Fill colour of each series (cycled).
    negative_color : str or None
        If given, bars of negative values use this colour instead.
    decimals : int
        Decimals of the value printed at each bar and in its tooltip.

    Returns
    -------
    str
        An ``<svg>`` element (well-formed XML, SVG namespace). Each bar is a
        ``<rect class="bar ...">`` carrying ``data-label``, ``data-series`` and
        ``data-value``; non-finite values are drawn with zero height and labelled
        ``n/a``.

    Examples
    --------
    >>> svg = grouped_bar_chart(
    ...     ["a", "b"], [("before", [0.8, 0.7]), ("after", [0.9, 0.95])], title="Value"
    ... )
    >>> svg.count('class="bar ')
    4
    """
    labels = [str(label) for label in labels]
    n = len(labels)
    for name, values in series:
        if len(values) != n:
            raise ValueError(
                f"series {name!r} must have one value per label ({n}); got {len(values)}"
            )
    parts = _open(width, height, title, "chart")
    parts.append(
        f'<text class="chart-title" x="{_num(width / 2)}" y="18" text-anchor="middle" '
        f'font-size="13" font-weight="600">{escape(title)}</text>'
    )
    if n == 0 or not series:
        parts.append(
            f'<text class="empty" x="{_num(width / 2)}" y="{_num(height / 2)}" '
            f'text-anchor="middle" font-size="12" fill="#57606a">no data</text>'
        )
        parts.append("</svg>")
        return "\n".join(parts)

    # Work in units of the largest magnitude, so that neither tiny (subnormal) nor huge
    # values overflow the scale; ``unit * hi`` and ``unit * lo`` are the data range.
    finite = [_finite(float(v)) for _, values in series for v in values]
    unit = max(abs(x) for x in finite) or 1.0
    hi = max(0.0, *(x / unit for x in finite))
    lo = min(0.0, *(x / unit for x in finite))
    if hi - lo <= 0.0:
        hi = 1.0
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    scale = plot_h / (hi - lo)  # pixels per unit
    y0 = _TOP + hi * scale

    # Gridlines and tick labels at the extremes and at zero.
    for tick in sorted({hi, 0.0, lo}, reverse=True):
        y = y0 - tick * scale
        css = "axis" if tick == 0.0 else "grid"
        stroke = "#24292f" if tick == 0.0 else "#d0d7de"
        parts.append(
            f'<line class="{css}" x1="{_num(_LEFT)}" y1="{_num(y)}" x2="{_num(width - _RIGHT)}" '
            f'y2="{_num(y)}" stroke="{stroke}" stroke-width="1"/>'
        )
        parts.append(
            f'<text class="tick" x="{_num(_LEFT - 6)}" y="{_num(y + 4)}" text-anchor="end" '
            f'font-size="10" fill="#57606a">{format_number(float(tick * unit), decimals)}</text>'
        )

    # Labels go lower when a negative bar's value is printed under the plot area.
    label_y = height - _BOTTOM + (24 if lo < 0 else 16)
    band = plot_w / n
    group_w = band * 0.7
    bar_w = group_w / len(series)
    max_chars = int(band / _CHAR_WIDTH)
    for i, label in enumerate(labels):
        x_group = _LEFT + i * band + (band - group_w) / 2
        for k, (name, values) in enumerate(series):
            raw = float(values[i])
            v = _finite(raw)
            # Round before placing, so that every bar ends exactly on the drawn axis.
            bar_h = round(abs(v / unit) * scale, 2)
            y = round(y0, 2) - bar_h if v >= 0 else round(y0, 2)
            color = colors[k % len(colors)]
            if negative_color is not None and v < 0:
                color = negative_color
            sign = "negative" if v < 0 else "positive"
            x = x_group + k * bar_w
            shown = format_number(float(raw), decimals)
            parts.append(
                f'<rect class="bar {sign}" x="{_num(x)}" y="{_num(y)}" '
                f'width="{_num(bar_w * 0.92)}" height="{_num(bar_h)}" fill="{escape(color)}" '
                f'data-label="{escape(label)}" data-series="{escape(name)}" '
                f'data-value="{shown}"><title>{escape(label)} · {escape(name)}: {shown}'
                f"</title></rect>"
            )
            text_y = y - 3 if v >= 0 else y + bar_h + 10
            if bar_w >= 28:
                parts.append(
                    f'<text class="value" x="{_num(x + bar_w * 0.46)}" y="{_num(text_y)}" '
                    f'text-anchor="middle" font-size="9" fill="#24292f">{shown}</text>'
                )
        parts.append(
            f'<text class="label" x="{_num(_LEFT + (i + 0.5) * band)}" '
            f'y="{_num(label_y)}" text-anchor="middle" font-size="11" '
            f'fill="#24292f">{escape(_shorten(label, max_chars))}'
            f"<title>{escape(label)}</title></text>"
        )

    if len(series) > 1:
        x = _LEFT
        y = height - 12
        for k, (name, _) in enumerate(series):
            color = colors[k % len(colors)]
            parts.append(
                f'<rect class="legend-key" x="{_num(x)}" y="{_num(y - 9)}" width="10" '
                f'height="10" fill="{escape(color)}"/>'
            )
            parts.append(
                f'<text class="legend" x="{_num(x + 14)}" y="{_num(y)}" font-size="11" '
                f'fill="#24292f">{escape(name)}</text>'
            )
            x += 24 + _CHAR_WIDTH * len(name)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    width: float = 560.0,
    height: float = 240.0,
    color: str = POSITIVE,
    negative_color: str = NEGATIVE,
    decimals: int = 4,
) -> str:
    """One bar per label from a zero axis; negative values hang below it in red.

    Parameters
    ----------
    labels : sequence of str
        Bar labels (e.g. party names), escaped and shortened to fit; the full label
        is in each bar's tooltip and ``data-label``.
    values : sequence of float
        One value per label.
    title : str
        Chart title and accessible name.
    width, height : float
        Size in pixels.
    color, negative_color : str
        Fill of positive and of negative bars.
    decimals : int
        Decimals of the printed values.

    Returns
    -------
    str
        An ``<svg>`` element; see :func:`grouped_bar_chart`.

    Examples
    --------
    >>> import xml.etree.ElementTree as ET
    >>> root = ET.fromstring(bar_chart(["a", "b"], [2.0, 1.0], title="Payout"))
    >>> bars = [r for r in root.iter(f"{{{SVG_NS}}}rect") if "bar" in r.get("class", "")]
    >>> [float(b.get("height")) for b in bars]
    [160.0, 80.0]
    """
    if len(labels) != len(values):
        raise ValueError(
            f"bar_chart needs one value per label; got {len(labels)} labels and "
            f"{len(values)} values"
        )
    return grouped_bar_chart(
        labels,
        [(title, values)],
        title=title,
        width=width,
        height=height,
        colors=(color,),
        negative_color=negative_color,
        decimals=decimals,
    )


def progress_bar(
    fraction: float,
    *,
    label: str | None = None,
    width: float = 240.0,
    height: float = 18.0,
    color: str = POSITIVE,
) -> str:
    """A horizontal progress bar filled to ``fraction`` (clipped to [0, 1]).

    Parameters
    ----------
    fraction : float
        Progress in [0, 1]; values outside are clipped, non-finite ones count as 0.
    label : str or None
        Text inside the bar; defaults to the percentage.
    width, height : float
        Size in pixels.
    color : str
        Fill colour.

    Returns
    -------
    str
        An ``<svg class="progress">`` with ``data-fraction`` and a
        ``<rect class="progress-fill">`` whose width is ``fraction * width``.

    Examples
    --------
    >>> 'width="120.00"' in progress_bar(0.5)
    True
    """
    f = float(fraction)
    f = min(max(f if math.isfinite(f) else 0.0, 0.0), 1.0)
    text = label if label is not None else f"{100 * f:.0f}%"
    parts = _open(
        width, height, f"progress {100 * f:.0f}%", "progress", f' data-fraction="{f:.4f}"'
    )
    parts += [
        f'<rect class="progress-track" x="0" y="0" width="{_num(width)}" '
        f'height="{_num(height)}" rx="3" fill="#eaeef2"/>',
        f'<rect class="progress-fill" x="0" y="0" width="{_num(f * width)}" '
        f'height="{_num(height)}" rx="3" fill="{escape(color)}"/>',
        f'<text x="{_num(width / 2)}" y="{_num(height / 2 + 4)}" text-anchor="middle" '
        f'font-size="11" fill="#24292f">{escape(text)}</text>',
        "</svg>",
    ]
    return "\n".join(parts)
