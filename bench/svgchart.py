"""Two small SVG charts in pure Python (no matplotlib): completion CDFs and a line chart."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional
from xml.sax.saxutils import escape

W, H = 760, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 180, 40, 60
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


class _Plot:
    def __init__(self, title: str, xmax: float, ymax: float, xlabel: str, ylabel: str) -> None:
        self.xmax, self.ymax = _nice_max(xmax), ymax
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
            f'<rect width="{W}" height="{H}" fill="white"/>',
            f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
        ]
        pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
        self.pw, self.ph = pw, ph
        for i in range(6):
            x = LEFT + pw * i / 5
            y = TOP + ph - ph * i / 5
            self.parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" '
                              f'stroke="#eee"/>')
            self.parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" '
                              f'stroke="#eee"/>')
            self.parts.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">'
                              f'{self.xmax * i / 5:g}</text>')
            self.parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                              f'{self.ymax * i / 5:g}</text>')
        self.parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" '
                          f'stroke="#333"/>')
        self.parts.append(f'<text x="{LEFT + pw / 2}" y="{H - 20}" text-anchor="middle">'
                          f'{escape(xlabel)}</text>')
        self.parts.append(f'<text transform="translate(18 {TOP + ph / 2}) rotate(-90)" '
                          f'text-anchor="middle">{escape(ylabel)}</text>')
        self.legend_y = TOP + 10

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return (LEFT + self.pw * min(x, self.xmax) / self.xmax,
                TOP + self.ph - self.ph * min(y, self.ymax) / self.ymax)

    def polyline(self, pts: Sequence[tuple[float, float]], color: str, label: str,
                 dash: Optional[str] = None, markers: bool = False) -> None:
        coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in (self.xy(x, y) for x, y in pts))
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" '
                          f'stroke-width="2"{d}/>')
        if markers:
            for x, y in pts:
                a, b = self.xy(x, y)
                self.parts.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>')
        lx = LEFT + self.pw + 12
        self.parts.append(f'<line x1="{lx}" y1="{self.legend_y}" x2="{lx + 22}" '
                          f'y2="{self.legend_y}" stroke="{color}" stroke-width="2"{d}/>')
        self.parts.append(f'<text x="{lx + 28}" y="{self.legend_y + 4}">{escape(label)}</text>')
        self.legend_y += 18

    def svg(self) -> str:
        return "\n".join([*self.parts, "</svg>"]) + "\n"


def cdf_chart(completions: Mapping[str, Sequence[float]], *, leechers: int, bound: float,
              title: str) -> str:
    """Fraction of leechers holding a verified copy vs seconds, one step line each."""
    xmax = max([bound * 1.1] + [max(c) for c in completions.values() if c])
    plot = _Plot(title, xmax * 1.05, 1.0, "seconds since the leechers started",
                 "fraction of leechers complete")
    for i, (name, times) in enumerate(completions.items()):
        pts: list[tuple[float, float]] = [(0.0, 0.0)]
        for k, t in enumerate(sorted(times)):
            pts += [(t, k / leechers), (t, (k + 1) / leechers)]
        plot.polyline(pts, COLORS[i % len(COLORS)], name)
    plot.polyline([(bound, 0.0), (bound, 1.0)], "#555", f"lower bound {bound:.1f}s", dash="5,4")
    return plot.svg()


def line_chart(rows: Sequence[Mapping[str, Any]], *, title: str) -> str:
    """Distribution time vs number of leechers: measured swarm and client-server, and the
    two fluid-model bounds."""
    series = {
        "meshbed swarm": [(r["leechers"], r.get("swarm")) for r in rows],
        "meshbed client-server": [(r["leechers"], r.get("client-server")) for r in rows],
        "swarm lower bound": [(r["leechers"], r["lower_bound_seconds"]) for r in rows],
        "client-server bound": [(r["leechers"], r["client_server_bound_seconds"]) for r in rows],
    }
    ys = [y for pts in series.values() for _, y in pts if y is not None]
    xmax = max(r["leechers"] for r in rows)
    plot = _Plot(title, xmax, _nice_max(max(ys) * 1.05), "leechers (N)", "seconds")
    styles = [(COLORS[0], None, True), (COLORS[1], None, True), (COLORS[0], "5,4", False),
              (COLORS[1], "5,4", False)]
    for (name, pts), (color, dash, markers) in zip(series.items(), styles):
        good = [(float(x), float(y)) for x, y in pts if y is not None]
        if good:
            plot.polyline(good, color, name, dash=dash, markers=markers)
    return plot.svg()
