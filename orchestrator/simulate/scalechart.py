"""The scalability picture: distribution time against the number of peers on log-log axes,
swarm and client-server (simulated points) with both fluid bounds (lines). Pure SVG."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

W, H = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 80, 200, 44, 60
STYLE = {  # series -> (colour, dashed line, marker)
    "client-server bound": ("#d62728", True, False),
    "swarm lower bound": ("#1f77b4", True, False),
    "client-server (simulated)": ("#d62728", False, True),
    "swarm (simulated)": ("#1f77b4", False, True),
}


def _decades(lo: float, hi: float) -> tuple[int, int]:
    return math.floor(math.log10(lo)), math.ceil(math.log10(hi))


def chart(series: Mapping[str, Sequence[tuple[float, float]]], title: str) -> str:
    """``series``: name -> [(peers, seconds)]; names from STYLE get its colours."""
    pts = [p for s in series.values() for p in s if p[0] > 0 and p[1] > 0]
    if not pts:
        return ""
    x0, x1 = _decades(min(p[0] for p in pts), max(p[0] for p in pts))
    y0, y1 = _decades(min(p[1] for p in pts), max(p[1] for p in pts))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def xy(x: float, y: float) -> tuple[float, float]:
        return (LEFT + pw * (math.log10(x) - x0) / (x1 - x0),
                TOP + ph - ph * (math.log10(y) - y0) / (y1 - y0))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
             f'font-family="sans-serif" font-size="12">', f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{(LEFT + W - RIGHT) / 2}" y="24" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for d in range(x0, x1 + 1):
        x, _ = xy(10.0 ** d, 10.0 ** y0)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">{10 ** d:,}</text>')
    for d in range(y0, y1 + 1):
        _, y = xy(10.0 ** x0, 10.0 ** d)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#eee"/>')
        label = f"{10.0 ** d:g}"
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    parts.append(f'<text x="{LEFT + pw / 2}" y="{H - 18}" text-anchor="middle">peers fetching (log)</text>')
    parts.append(f'<text x="18" y="{TOP + ph / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 18 {TOP + ph / 2})">seconds until all have it (log)</text>')
    for i, (name, pts_s) in enumerate(series.items()):
        colour, dashed, marker = STYLE.get(name, ("#2ca02c", False, True))
        coords = [xy(x, y) for x, y in sorted(pts_s) if x > 0 and y > 0]
        if not coords:
            continue
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
        if marker:
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>' for x, y in coords]
        ly = TOP + 14 + i * 18
        parts.append(f'<line x1="{W - RIGHT + 12}" y1="{ly - 4}" x2="{W - RIGHT + 36}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{W - RIGHT + 42}" y="{ly}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
