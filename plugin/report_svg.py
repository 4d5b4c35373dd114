"""Line charts as inline SVG for the QC report (no plotting library, no script, no network).

A chart is a function of plain numbers: x (frame indices), one or more series (y values, NaN where
a series has no value), shaded x-ranges (edited frames) and vertical event marks (clamps). Units
on screen: SVG user units = CSS pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np
from numpy.typing import ArrayLike

#: Chart size in CSS pixels and its inner margins (left, right, top, bottom).
CHART_W, CHART_H = 560, 170
MARGIN = (52, 12, 22, 26)
#: Colours: before (the tracked face), after (the planned edit), shading, clamp marks.
BEFORE_COLOUR = "#8a8f98"
AFTER_COLOUR = "#d9480f"
SHADE_COLOUR = "#ffd8a8"
CLAMP_COLOUR = "#c92a2a"
MEASURED_COLOUR = "#1c7ed6"
SERIES_COLOURS = ("#d9480f", "#1c7ed6", "#2b8a3e", "#ae3ec9", "#f08c00", "#0c8599")


@dataclass(frozen=True)
class Series:
    """One line: ``y`` over the chart's ``x`` (NaN = no value there, the line breaks)."""

    label: str
    y: ArrayLike
    colour: str
    width: float = 1.6
    dashed: bool = False


@dataclass(frozen=True)
class Mark:
    """A vertical band from ``x0`` to ``x1`` (inclusive frames) with a hover title."""

    x0: float
    x1: float
    title: str


@dataclass(frozen=True)
class Chart:
    """A chart's content.

    Attributes:
        title: shown above the plot.
        unit: shown beside the y axis ticks (``"°"``, ``""``).
        x: ``(N,)`` frame indices, increasing.
        series: the lines.
        shaded: inclusive frame ranges drawn as a background band (edited frames).
        marks: clamp events, drawn as red bands with a tick at the top.
        y_range: fixed ``(lo, hi)``; default: the data's range with a margin.
        x_domain: fixed ``(first, last)`` frame shown; default: the range of ``x``.
        legend: draw the series' legend in the title row (charts sharing one legend leave it out).
    """

    title: str
    unit: str
    x: ArrayLike
    series: Sequence[Series]
    shaded: Sequence[tuple[int, int]] = ()
    marks: Sequence[Mark] = ()
    y_range: tuple[float, float] | None = None
    x_domain: tuple[float, float] | None = field(default=None)
    legend: bool = True


def _nice_step(span: float, target: int = 4) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _ticks(lo: float, hi: float, step: float) -> Iterator[float]:
    """Multiples of ``step`` from the first at or above ``lo`` to ``hi`` (inclusive, to rounding)."""
    t = math.ceil(lo / step) * step
    while t <= hi + 1e-9:
        yield t
        t += step


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def legend_svg(series: Sequence[Series]) -> str:
    """A one-line legend of ``series`` (line samples and labels) as an inline ``<svg>``."""
    x, items = 0, []
    for s in series:
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        items.append(f'<path d="M{x} 9h18" stroke="{s.colour}" stroke-width="2.5"{dash}/>'
                     f'<text x="{x + 23}" y="13" class="legend">{escape(s.label)}</text>')
        x += 23 + 7 * len(s.label) + 18
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{x}" height="18" '
            f'viewBox="0 0 {x} 18">{"".join(items)}</svg>')


def chart_svg(chart: Chart, width: int = CHART_W, height: int = CHART_H) -> str:
    """The chart as an ``<svg>`` element (a string), with a legend in its title row.

    Returns:
        SVG markup, self-contained (no external references, no script).
    """
    x = np.asarray(chart.x, dtype=np.float64)
    ml, mr, mt, mb = MARGIN
    pw, ph = width - ml - mr, height - mt - mb
    if chart.x_domain is not None:
        x0, x1 = chart.x_domain
    else:
        x0, x1 = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1
    ys = [np.asarray(s.y, dtype=np.float64) for s in chart.series]
    finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.zeros(0)
    if chart.y_range is not None:
        lo, hi = chart.y_range
    elif finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = max((hi - lo) * 0.08, 1e-3)
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        hi = lo + 1

    def sx(v: float) -> float:
        return ml + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return mt + (hi - v) / (hi - lo) * ph

    half = 0.5 * pw / max(x1 - x0, 1)  # half a frame on screen: bands cover whole frames
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(chart.title)}">',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#ced4da"/>']
    for a, b in chart.shaded:
        xa, xb = max(sx(a) - half, ml), min(sx(b) + half, ml + pw)
        out.append(f'<rect x="{xa:.1f}" y="{mt}" width="{max(xb - xa, 1):.1f}" height="{ph}" '
                   f'fill="{SHADE_COLOUR}" fill-opacity="0.55"><title>edited frames {a}-{b}</title></rect>')
    for m in chart.marks:
        xa, xb = max(sx(m.x0) - half, ml), min(sx(m.x1) + half, ml + pw)
        out.append(f'<g><title>{escape(m.title)}</title>'
                   f'<rect x="{xa:.1f}" y="{mt}" width="{max(xb - xa, 1.5):.1f}" height="{ph}" '
                   f'fill="{CLAMP_COLOUR}" fill-opacity="0.12"/>'
                   f'<path d="M{xa:.1f} {mt}h{max(xb - xa, 1.5):.1f}" stroke="{CLAMP_COLOUR}" stroke-width="4"/></g>')
    for t in _ticks(lo, hi, _nice_step(hi - lo)):
        yy = sy(t)
        out.append(f'<path d="M{ml} {yy:.1f}h{pw}" stroke="#e9ecef"/>'
                   f'<text x="{ml - 5}" y="{yy + 4:.1f}" text-anchor="end" class="tick">{_fmt(t)}{escape(chart.unit)}</text>')
    for t in _ticks(x0, x1, max(1.0, _nice_step(x1 - x0, 8))):
        xx = sx(t)
        out.append(f'<path d="M{xx:.1f} {mt + ph}v4" stroke="#868e96"/>'
                   f'<text x="{xx:.1f}" y="{mt + ph + 16}" text-anchor="middle" class="tick">{t:.0f}</text>')
    for s, y in zip(chart.series, ys):
        d = []
        pen_up = True
        for xv, yv in zip(x, y):
            if not math.isfinite(yv):
                pen_up = True
                continue
            d.append(f'{"M" if pen_up else "L"}{sx(xv):.1f} {sy(min(max(yv, lo), hi)):.1f}')
            pen_up = False
        if d:
            dash = ' stroke-dasharray="5 3"' if s.dashed else ""
            out.append(f'<path d="{" ".join(d)}" fill="none" stroke="{s.colour}" stroke-width="{s.width}"'
                       f' stroke-linejoin="round"{dash}><title>{escape(s.label)}</title></path>')
    out.append(f'<text x="{ml}" y="{mt - 7}" class="ctitle">{escape(chart.title)}</text>')
    lx = width - mr
    for s in reversed(chart.series if chart.legend else ()):
        label = escape(s.label)
        w = 7 * len(s.label) + 26
        lx -= w
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        out.append(f'<path d="M{lx} {mt - 11}h16" stroke="{s.colour}" stroke-width="2.5"{dash}/>'
                   f'<text x="{lx + 20}" y="{mt - 7}" class="legend">{label}</text>')
    out.append("</svg>")
    return "".join(out)
