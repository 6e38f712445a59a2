"""A small SVG line-chart writer for ``dst bench`` (no plotting library).

``line_chart`` draws one panel: named series of (x, y) points on linear or
log10 axes, with ticks, grid lines, a title and a legend. ``grid`` lays
panels out in rows and columns and returns the whole document as text.
Every string that lands in the SVG is XML-escaped; the output parses as
XML and opens in any browser, offline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
FONT = "font-family=\"Helvetica, Arial, sans-serif\""


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    color: str | None = None


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    log_x: bool = True
    log_y: bool = True
    y_min: float | None = None        # fixed bounds (e.g. recall: 0..1); None = from data
    y_max: float | None = None


def _attr(text: str) -> str:
    return escape(str(text), {'"': "&quot;"})


def _fmt(v: float) -> str:
    """A short tick label: 1k, 10k, 0.5, 12, 1.5M."""
    if v == 0:
        return "0"
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            s = f"{v / div:.3g}"
            return s + suffix
    return f"{v:.3g}"


def _usable(v: float, log: bool) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or not log)


class _Axis:
    """Maps data values to pixels, linear or log10, and picks ticks."""

    def __init__(self, lo: float, hi: float, log: bool, p0: float, p1: float):
        self.log = log
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
            if hi - lo < 1e-9:               # one value: a decade around it
                lo, hi = lo - 0.5, hi + 0.5
        elif hi - lo < 1e-12:
            pad = abs(lo) * 0.1 or 1.0
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1

    def px(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return self.p0 + (t - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = math.floor(self.lo + 1e-9), math.ceil(self.hi - 1e-9)
            decades = [10.0 ** e for e in range(first, last + 1)]
            inside = [d for d in decades if self.lo - 1e-9 <= math.log10(d) <= self.hi + 1e-9]
            if len(inside) >= 2:
                return inside
            # Less than two decades in view: add 2x and 5x marks.
            marks = [m * d for d in decades for m in (1, 2, 5)]
            return [m for m in marks if self.lo - 1e-9 <= math.log10(m) <= self.hi + 1e-9]
        span = self.hi - self.lo
        raw = span / 5
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        start = math.ceil(self.lo / step) * step
        out, v = [], start
        while v <= self.hi + step * 1e-9:
            out.append(round(v, 12))
            v += step
        return out


def line_chart(chart: Chart, x: float, y: float, width: float, height: float) -> str:
    """One panel as an SVG group placed at (x, y)."""
    left, right, top, bottom = 62.0, 12.0, 28.0, 40.0
    px0, px1 = x + left, x + width - right
    py0, py1 = y + height - bottom, y + top        # y grows downwards in SVG
    pts = [(a, b) for s in chart.series for a, b in s.points
           if _usable(a, chart.log_x) and _usable(b, chart.log_y)]
    out = ['<g class="chart">',
           f'<text x="{x + width / 2:.1f}" y="{y + 16:.1f}" text-anchor="middle" font-size="13" '
           f'font-weight="bold" {FONT}>{escape(chart.title)}</text>',
           f'<rect x="{px0:.1f}" y="{py1:.1f}" width="{px1 - px0:.1f}" height="{py0 - py1:.1f}" '
           f'fill="#ffffff" stroke="#999999"/>']
    if not pts:
        out.append(f'<text x="{(px0 + px1) / 2:.1f}" y="{(py0 + py1) / 2:.1f}" text-anchor="middle" '
                   f'font-size="12" fill="#777777" {FONT}>no data</text></g>')
        return "\n".join(out)
    xs = [a for a, _ in pts]
    ys = [b for _, b in pts]
    ylo = chart.y_min if chart.y_min is not None else min(ys)
    yhi = chart.y_max if chart.y_max is not None else max(ys)
    ax = _Axis(min(xs), max(xs), chart.log_x, px0 + 8, px1 - 8)
    ay = _Axis(ylo, yhi, chart.log_y, py0 - 6, py1 + 6)
    for t in ax.ticks():
        p = ax.px(t)
        out.append(f'<line x1="{p:.1f}" y1="{py0:.1f}" x2="{p:.1f}" y2="{py1:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{p:.1f}" y="{py0 + 14:.1f}" text-anchor="middle" font-size="10" '
                   f'{FONT}>{escape(_fmt(t))}</text>')
    for t in ay.ticks():
        p = ay.px(t)
        out.append(f'<line x1="{px0:.1f}" y1="{p:.1f}" x2="{px1:.1f}" y2="{p:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{px0 - 5:.1f}" y="{p + 3:.1f}" text-anchor="end" font-size="10" '
                   f'{FONT}>{escape(_fmt(t))}</text>')
    scale = lambda s: " (log)" if s else ""  # noqa: E731
    out.append(f'<text x="{(px0 + px1) / 2:.1f}" y="{y + height - 8:.1f}" text-anchor="middle" '
               f'font-size="11" {FONT}>{escape(chart.x_label + scale(chart.log_x))}</text>')
    cy = (py0 + py1) / 2
    out.append(f'<text x="{x + 14:.1f}" y="{cy:.1f}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 {x + 14:.1f} {cy:.1f})" {FONT}>'
               f'{escape(chart.y_label + scale(chart.log_y))}</text>')
    for i, s in enumerate(chart.series):
        color = _attr(s.color or PALETTE[i % len(PALETTE)])
        good = sorted((a, b) for a, b in s.points if _usable(a, chart.log_x) and _usable(b, chart.log_y))
        coords = [(ax.px(a), ay.px(b)) for a, b in good]
        if len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy_:.1f}" for cx, cy_ in coords)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.8"/>')
        for (cx, cy_), (a, b) in zip(coords, good):
            out.append(f'<circle cx="{cx:.1f}" cy="{cy_:.1f}" r="3" fill="{color}">'
                       f'<title>{escape(f"{s.name}: x={_fmt(a)}, y={b:.4g}")}</title></circle>')
    out.append("</g>")
    return "\n".join(out)


def legend(names_colors: list[tuple[str, str]], x: float, y: float, width: float) -> tuple[str, float]:
    """A legend in rows across ``width``; returns (svg, height used)."""
    out, cx, cy, row_h = ['<g class="legend">'], x, y, 18.0
    for name, color in names_colors:
        w = 28 + 7 * len(name)
        if cx + w > x + width and cx > x:
            cx, cy = x, cy + row_h
        out.append(f'<line x1="{cx:.1f}" y1="{cy:.1f}" x2="{cx + 18:.1f}" y2="{cy:.1f}" '
                   f'stroke="{_attr(color)}" stroke-width="2.5"/>')
        out.append(f'<circle cx="{cx + 9:.1f}" cy="{cy:.1f}" r="3" fill="{_attr(color)}"/>')
        out.append(f'<text x="{cx + 23:.1f}" y="{cy + 4:.1f}" font-size="11" {FONT}>{escape(name)}</text>')
        cx += w
    out.append("</g>")
    return "\n".join(out), cy - y + row_h


def grid(charts: list[list[Chart]], title: str = "", subtitle: str = "",
         panel_w: float = 380, panel_h: float = 260) -> str:
    """Panels in rows and columns, one shared legend (series by name, in
    order of first appearance) and a title; the SVG document as text."""
    names: list[str] = []
    for row in charts:
        for c in row:
            for s in c.series:
                if s.name not in names:
                    names.append(s.name)
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    for row in charts:
        for c in row:
            for s in c.series:
                s.color = s.color or colors[s.name]
    cols = max((len(r) for r in charts), default=1) or 1
    width = cols * panel_w + 20
    head = 14.0
    parts: list[str] = []
    if title:
        head += 20
        parts.append(f'<text x="10" y="{head:.1f}" font-size="15" font-weight="bold" {FONT}>'
                     f'{escape(title)}</text>')
    if subtitle:
        head += 16
        parts.append(f'<text x="10" y="{head:.1f}" font-size="11" fill="#555555" {FONT}>'
                     f'{escape(subtitle)}</text>')
    head += 16
    leg, leg_h = legend([(n, colors[n]) for n in names], 14, head, width - 28)
    parts.append(leg)
    top = head + leg_h + 4
    for r, row in enumerate(charts):
        for c_i, c in enumerate(row):
            parts.append(line_chart(c, 10 + c_i * panel_w, top + r * panel_h, panel_w, panel_h))
    height = top + len(charts) * panel_h + 10
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}">\n'
            f'<rect width="100%" height="100%" fill="#fafafa"/>\n' + "\n".join(parts) + "\n</svg>\n")
