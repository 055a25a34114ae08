"""Who sent how much to whom in a run (`meshbed graph TOPO.yaml --report r.json`).

Nodes sit on a ring, group after group; an edge per (source, receiver) pair is as wide as the
bytes it carried (summed over contents); a node's colour is its completion time, from green
(first) to indigo (last); seeders are orange, nodes that never completed dark grey. SVG, DOT and
Mermaid carry the same node names and the same edges. At most MAX_EDGES edges are drawn (the
largest); the rest are counted in the legend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional
from xml.sax.saxutils import escape, quoteattr

from orchestrator.model import Topology

SEEDER = "#f5a623"
UNFINISHED = "#555555"
MAX_EDGES = 400
SIZE = 860
MiB = float(1 << 20)


def flows(report: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """(source, receiver) -> bytes, over every content of the report."""
    out: dict[tuple[str, str], int] = {}
    for node, info in (report.get("nodes") or {}).items():
        for f in (info.get("fetches") or {}).values():
            for src, b in (f.get("bytes_from") or {}).items():
                if b:
                    out[(str(src), node)] = out.get((str(src), node), 0) + int(b)
    return out


def completion(report: Mapping[str, Any]) -> dict[str, Optional[float]]:
    """Fetching node -> seconds of its last verified fetch (None if one did not verify)."""
    out: dict[str, Optional[float]] = {}
    for node, info in (report.get("nodes") or {}).items():
        fetches = list((info.get("fetches") or {}).values())
        if not fetches:
            continue
        secs = [f.get("seconds") if f.get("verified") else None for f in fetches]
        out[node] = None if any(s is None for s in secs) else max(float(s) for s in secs if s is not None)
    return out


EARLY, LATE = (0x2C, 0xA0, 0x2C), (0x3B, 0x2C, 0x8C)  # green .. indigo: apart from seeder orange


def time_colour(t: Optional[float], first: float, last: float) -> str:
    """Green (first to complete) .. indigo (last)."""
    if t is None:
        return UNFINISHED
    x = 0.0 if last <= first else (t - first) / (last - first)
    r, g, b = (round(a + (z - a) * x) for a, z in zip(EARLY, LATE))
    return f"#{r:02x}{g:02x}{b:02x}"


class Flow:
    """The facts every format draws: node order, colours, edges."""

    def __init__(self, topology: Topology, report: Mapping[str, Any]) -> None:
        self.topology = topology
        self.names = [n.name for n in topology.nodes]
        self.seeders = {n for c in topology.contents for n in c.seeders}
        self.done = completion(report)
        times = [t for t in self.done.values() if t is not None]
        self.first, self.last = (min(times), max(times)) if times else (0.0, 0.0)
        known = set(self.names)
        every = sorted(((k, v) for k, v in flows(report).items() if k[0] in known and k[1] in known),
                       key=lambda kv: -kv[1])
        self.edges = every[:MAX_EDGES]
        self.hidden = len(every) - len(self.edges)
        self.max_bytes = max((b for _, b in self.edges), default=1)

    def colour(self, name: str) -> str:
        if name in self.done:
            return time_colour(self.done[name], self.first, self.last)
        return SEEDER if name in self.seeders else "#d8d8d8"

    def width(self, b: int) -> float:
        return 0.5 + 7.5 * math.sqrt(b / self.max_bytes)  # area-ish: small flows stay visible

    def label(self, name: str) -> str:
        t = self.done.get(name)
        if name in self.done:
            return f"{name} ({t:.1f} s)" if t is not None else f"{name} (incomplete)"
        return f"{name} (seeder)" if name in self.seeders else name


def render_flow(topology: Topology, report: Mapping[str, Any], fmt: str) -> str:
    flow = Flow(topology, report)
    if fmt == "svg":
        return _svg(flow)
    if fmt == "dot":
        return _dot(flow)
    return _mermaid(flow)


def _svg(flow: Flow) -> str:
    n = max(1, len(flow.names))
    cx = cy = SIZE / 2
    ring = SIZE / 2 - 150
    radius = max(4.0, min(16.0, math.pi * ring / n * 0.7))
    pos = {name: (cx + ring * math.cos(2 * math.pi * i / n - math.pi / 2),
                  cy + ring * math.sin(2 * math.pi * i / n - math.pi / 2)) for i, name in enumerate(flow.names)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE + 90}" '
        f'viewBox="0 0 {SIZE} {SIZE + 90}" font-family="Helvetica, Arial, sans-serif">',
        f"<title>{escape(flow.topology.name)}: bytes sent between nodes</title>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#4a90d9"/></marker></defs>',
        _text(16, 28, f"{flow.topology.name}: who sent how much to whom", 18, "bold"),
    ]
    for (src, dst), b in reversed(flow.edges):  # the widest on top
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        # stop at the receiver's rim; bend toward the centre so a->b and b->a do not overlap
        d = math.hypot(x2 - x1, y2 - y1) or 1.0
        ex, ey = x2 - (x2 - x1) * radius / d, y2 - (y2 - y1) * radius / d
        mx, my = (x1 + x2) / 2 + (cy - (y1 + y2) / 2) * 0.15 + (y2 - y1) * 0.08, \
            (y1 + y2) / 2 + (cx - (x1 + x2) / 2) * 0.15 - (x2 - x1) * 0.08
        parts.append(
            f'<path class="flow" data-from={quoteattr(src)} data-to={quoteattr(dst)} data-bytes="{b}" '
            f'd="M {x1:.1f} {y1:.1f} Q {mx:.1f} {my:.1f} {ex:.1f} {ey:.1f}" fill="none" stroke="#4a90d9" '
            f'stroke-opacity="0.55" stroke-width="{flow.width(b):.2f}" marker-end="url(#arrow)">'
            f"<title>{escape(src)} → {escape(dst)}: {b / MiB:.2f} MiB</title></path>"
        )
    for i, name in enumerate(flow.names):
        x, y = pos[name]
        parts.append(f'<g class="node"><title>{escape(flow.label(name))}</title>'
                     f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{flow.colour(name)}" '
                     'stroke="#333333" stroke-width="1.2"/>')
        if n <= 64:  # names outside the ring, rotated along it
            ang = 2 * math.pi * i / n - math.pi / 2
            lx, ly = x + (radius + 6) * math.cos(ang), y + (radius + 6) * math.sin(ang)
            deg = math.degrees(ang)
            flip = 90 < deg % 360 < 270
            anchor = "end" if flip else "start"
            rot = deg + 180 if flip else deg
            parts.append(f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="11" text-anchor="{anchor}" '
                         f'dominant-baseline="middle" transform="rotate({rot:.1f} {lx:.1f} {ly:.1f})" '
                         f'fill="#222222">{escape(name)}</text>')
        parts.append("</g>")
    y = SIZE + 10
    parts.append(_text(16, y + 12, f"edge width: bytes sent (widest {flow.max_bytes / MiB:.1f} MiB)"
                       + (f"; {flow.hidden} smaller flows not drawn" if flow.hidden else ""), 12))
    x = 16.0
    for label, colour in ((f"first done {flow.first:.1f} s", time_colour(flow.first, flow.first, flow.last)),
                          (f"last done {flow.last:.1f} s", time_colour(flow.last, flow.first, flow.last)),
                          ("seeder", SEEDER), ("not complete", UNFINISHED)):
        parts.append(f'<circle cx="{x + 7:.1f}" cy="{y + 37}" r="7" fill="{colour}" stroke="#333333"/>')
        parts.append(_text(x + 20, y + 41, label, 12))
        x += 170
    parts.append("</svg>")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(parts) + "\n"


def _text(x: float, y: float, text: str, size: int, weight: str = "normal") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" fill="#222222">{escape(text)}</text>'


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(flow: Flow) -> str:
    out = [f"digraph {_q(flow.topology.name)} {{", "  layout=circo; fontname=Helvetica;",
           f"  label={_q(flow.topology.name + ': bytes sent between nodes')}; labelloc=t;",
           "  node [shape=circle, style=filled, fontname=Helvetica, fontsize=10];"]
    for name in flow.names:
        out.append(f"  {_q(name)} [label={_q(name)}, tooltip={_q(flow.label(name))}, "
                   f'fillcolor="{flow.colour(name)}"];')
    for (src, dst), b in flow.edges:
        out.append(f"  {_q(src)} -> {_q(dst)} [penwidth={flow.width(b):.2f}, label={_q(f'{b / MiB:.1f} MiB')}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _mm(name: str) -> str:
    return "n_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def _mermaid(flow: Flow) -> str:
    out = ["flowchart LR"]
    for name in flow.names:
        out.append(f'  {_mm(name)}(("{name}"))')
    for (src, dst), b in flow.edges:
        out.append(f'  {_mm(src)} -- "{b / MiB:.1f} MiB" --> {_mm(dst)}')
    for name in flow.names:
        out.append(f"  style {_mm(name)} fill:{flow.colour(name)}")
    for i, (_, b) in enumerate(flow.edges):
        out.append(f"  linkStyle {i} stroke-width:{flow.width(b):.1f}px")
    return "\n".join(out) + "\n"
