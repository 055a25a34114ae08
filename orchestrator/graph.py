"""Pictures of a topology: SVG (pure Python, no Graphviz), Graphviz DOT, Mermaid.

Groups are clusters with their access link; nodes are circles with their name (up to 24 in
a group; larger groups show indexes, names on hover); each content is an edge from its
seeders' group to the groups that fetch it (SVG: lanes on the right); seeders are orange, fetchers blue, nodes that are only present grey; nodes the
scenario kills or stops have a dashed outline. Each cluster's header gives its size,
backend and access link. A legend lists the contents: who seeds, who fetches, and the
fluid-model lower bound. Circles shrink with group size so 1..300 nodes stay readable.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

from orchestrator.bounds import topology_bounds
from orchestrator.model import Group, KillEvent, Link, StopEvent, Topology
from orchestrator.selectors import describe
from orchestrator.units import format_duration, format_rate, format_size

FORMATS = ("svg", "dot", "mermaid")
SEEDER = "#f5a623"
FETCHER = "#4a90d9"
IDLE = "#d8d8d8"
WIDTH = 960
MARGIN = 16
PAD = 12
HEADER = 30
PALETTE_EDGES = ["#d0021b", "#7b4173", "#2ca02c", "#8c6d31", "#17becf"]


def render(topology: Topology, fmt: str) -> str:
    """The topology as ``svg``, ``dot`` or ``mermaid`` text."""
    if fmt == "svg":
        return render_svg(topology)
    if fmt == "dot":
        return render_dot(topology)
    if fmt == "mermaid":
        return render_mermaid(topology)
    raise ValueError(f"unknown graph format {fmt!r} (use {', '.join(FORMATS)})")


# --- shared facts -----------------------------------------------------------------------
def roles(topology: Topology) -> tuple[set[str], set[str], set[str]]:
    """(seeders, fetchers, interrupted) node names over all contents and the scenario."""
    seeders = {n for c in topology.contents for n in c.seeders}
    fetchers = {n for c in topology.contents for n in topology.fetchers(c.name)} - seeders
    interrupted = {
        n for ev in topology.scenario if isinstance(ev, (KillEvent, StopEvent)) for n in ev.nodes
    }
    return seeders, fetchers, interrupted


def link_label(link: Link) -> str:
    text = f"up {format_rate(link.up_bps)} / down {format_rate(link.down_bps)}"
    if link.latency_ms:
        text += f", latency {format_duration(link.latency_ms / 1000.0)}"
    if link.jitter_ms:
        text += f" ±{format_duration(link.jitter_ms / 1000.0)}"
    if link.loss:
        text += f", loss {link.loss * 100:g}%"
    return text


def group_label(group: Group) -> str:
    noun = "node" if group.count == 1 else "nodes"
    return f"{group.name} · {group.count} {noun} · {group.backend} · {link_label(group.link)}"


def content_lines(topology: Topology) -> list[str]:
    bounds = topology_bounds(topology)
    out = []
    for c in topology.contents:
        b = bounds[c.name]
        size = format_size(b["size"]) if b["size"] is not None else "?"
        fetchers = topology.fetchers(c.name)
        line = (
            f"{c.name} ({size}, {format_size(c.chunk_size)} chunks): "
            f"{describe(c.seeders, topology)} → {describe(fetchers, topology) if fetchers else 'nobody'}"
        )
        if b["lower_bound_seconds"] is not None:
            line += f"; lower bound {b['lower_bound_seconds']:.2f}s"
        out.append(line)
    return out


def _color(name: str, seeders: set[str], fetchers: set[str]) -> str:
    if name in seeders:
        return SEEDER
    if name in fetchers:
        return FETCHER
    return IDLE


# --- SVG --------------------------------------------------------------------------------
LANE = 56  # px per content on the right: its seeders' group -> the groups that fetch it


def _cell(count: int) -> tuple[float, float, float]:
    """(cell width, cell height, circle radius) for a group of ``count`` nodes; up to 24
    nodes a cell is wide enough for the node's name under its circle."""
    if count <= 24:
        return 78.0, 58.0, 14.0
    if count <= 96:
        return 30.0, 30.0, 11.0
    return 20.0, 20.0, 7.0


def content_edges(topology: Topology) -> list[tuple[str, str, list[str]]]:
    """Per content: (content, group of its first seeder, groups that fetch it)."""
    out = []
    for c in topology.contents:
        if not c.seeders:
            continue
        fetching: list[str] = []
        for name in topology.fetchers(c.name):
            g = topology.node(name).group
            if name not in c.seeders and g not in fetching:
                fetching.append(g)
        out.append((c.name, topology.node(c.seeders[0]).group, fetching))
    return out


def render_svg(topology: Topology) -> str:
    seeders, fetchers, interrupted = roles(topology)
    edges = content_edges(topology)
    lanes = LANE * len(edges)
    box_w = WIDTH - 2 * MARGIN - lanes
    parts: list[str] = []
    y = float(MARGIN)
    title = (
        f"{topology.name} · {len(topology.nodes)} nodes · "
        f"{', '.join(topology.backends_used()) or topology.backend} · strategy {topology.strategy}"
    )
    parts.append(_text(MARGIN, y + 16, title, size=18, weight="bold"))
    y += 34
    inner = box_w - 2 * PAD
    middle: dict[str, float] = {}  # group -> y where content edges meet its box
    for group in topology.groups:
        cell_w, cell_h, radius = _cell(group.count)
        cols = max(1, min(group.count, int(inner // cell_w)))
        rows = math.ceil(group.count / cols) if group.count else 0
        height = HEADER + rows * cell_h + PAD
        middle[group.name] = y + min(height / 2, HEADER + 10)
        parts.append(
            f'<g class="cluster" id={quoteattr("group-" + group.name)}>'
            f'<rect x="{MARGIN}" y="{y}" width="{box_w}" height="{height}" '
            f'rx="8" fill="#f7f7f7" stroke="#999999"/>'
        )
        parts.append(_text(MARGIN + PAD, y + 20, group_label(group), size=13, weight="bold"))
        members = [n for n in topology.nodes if n.group == group.name]
        for node in members:
            row, col = divmod(node.index, cols)
            cx = MARGIN + PAD + col * cell_w + cell_w / 2
            cy = y + HEADER + row * cell_h + (radius + 4 if group.count <= 24 else cell_h / 2)
            dash = ' stroke-dasharray="3,2"' if node.name in interrupted else ""
            where = ", ".join(str(v) for v in node.options.values())  # e.g. its device
            tip = node.name + (f" ({where})" if where else "")
            parts.append(
                f'<g class="node"><title>{escape(tip)}</title>'
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius:.1f}" '
                f'fill="{_color(node.name, seeders, fetchers)}" stroke="#333333" '
                f'stroke-width="1.2"{dash}/>'
            )
            if group.count <= 24:  # the same name as DOT and Mermaid
                parts.append(_text(cx, cy + radius + 12, node.name, size=10, anchor="middle"))
            elif radius >= 10:
                parts.append(_text(cx, cy + 3, str(node.index), size=9, anchor="middle"))
            parts.append("</g>")
        parts.append("</g>")
        y += height + 10
    right = MARGIN + box_w
    for i, (content, src, dsts) in enumerate(edges):
        lane = right + LANE * i + LANE / 2
        ys = [middle[src]] + [middle[g] for g in dsts]
        colour = PALETTE_EDGES[i % len(PALETTE_EDGES)]
        parts.append(f'<g class="content-edge" data-content={quoteattr(content)}>')
        parts.append(f'<line x1="{lane:.1f}" y1="{min(ys):.1f}" x2="{lane:.1f}" y2="{max(ys):.1f}" '
                     f'stroke="{colour}" stroke-width="3"/>')
        parts.append(f'<line x1="{right}" y1="{middle[src]:.1f}" x2="{lane:.1f}" y2="{middle[src]:.1f}" '
                     f'stroke="{colour}" stroke-width="3"/><circle cx="{right + 4}" cy="{middle[src]:.1f}" '
                     f'r="5" fill="{colour}"/>')
        for g in dsts:
            yy = middle[g]
            parts.append(f'<line class="to" data-group={quoteattr(g)} x1="{lane:.1f}" y1="{yy:.1f}" '
                         f'x2="{right + 8}" y2="{yy:.1f}" stroke="{colour}" stroke-width="3"/>'
                         f'<path d="M {right + 1} {yy:.1f} l 10 -6 l 0 12 z" fill="{colour}"/>')
        parts.append(_text(lane + 4, min(ys) - 6, content, size=11, anchor="middle"))
        parts.append("</g>")
    y += 6
    legend = [(SEEDER, "seeder"), (FETCHER, "fetcher"), (IDLE, "present only")]
    x = float(MARGIN)
    for color, label in legend:
        parts.append(f'<circle cx="{x + 8}" cy="{y + 8}" r="7" fill="{color}" stroke="#333333"/>')
        parts.append(_text(x + 20, y + 12, label, size=12))
        x += 130
    parts.append(
        f'<circle cx="{x + 8}" cy="{y + 8}" r="7" fill="#ffffff" stroke="#333333" '
        'stroke-dasharray="3,2"/>'
    )
    parts.append(_text(x + 20, y + 12, "killed/stopped in the scenario", size=12))
    y += 26
    if edges:
        note = "right: each content's path, from its seeders' group to the groups that fetch it"
        if any(g.count > 24 for g in topology.groups):
            note += "; numbers in circles are node indexes (leechers-30 is 30)"
        parts.append(_text(MARGIN, y + 12, note, size=12))
        y += 18
    for line in content_lines(topology):
        parts.append(_text(MARGIN, y + 12, line, size=12))
        y += 18
    height = y + MARGIN
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" font-family="Helvetica, Arial, sans-serif">'
        f"<title>{escape(topology.name)}</title>"
        f'<rect width="100%" height="100%" fill="#ffffff"/>'
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + head + "".join(parts) + "</svg>\n"


def _text(
    x: float, y: float, text: str, size: int = 12, weight: str = "normal", anchor: str = "start"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" '
        f'text-anchor="{anchor}" fill="#222222">{escape(text)}</text>'
    )


# --- DOT --------------------------------------------------------------------------------
def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(topology: Topology) -> str:
    seeders, fetchers, interrupted = roles(topology)
    out = [
        f"digraph {_dot_id(topology.name)} {{",
        "  compound=true; rankdir=LR; fontname=Helvetica;",
        f"  label={_dot_id(topology.name + ' (' + topology.strategy + ')')}; labelloc=t;",
        '  node [shape=circle, style=filled, fontname=Helvetica, fontsize=10, fillcolor="'
        + IDLE
        + '"];',
    ]
    for group in topology.groups:
        out.append(f"  subgraph {_dot_id('cluster_' + group.name)} {{")
        out.append(f"    label={_dot_id(group_label(group))}; style=rounded; color=gray50;")
        for node in topology.nodes:
            if node.group != group.name:
                continue
            style = "filled,dashed" if node.name in interrupted else "filled"
            out.append(
                f"    {_dot_id(node.name)} [label={_dot_id(node.name)}, "
                f'tooltip={_dot_id(node.name)}, fillcolor="{_color(node.name, seeders, fetchers)}", '
                f'style="{style}"];'
            )
        if not group.count:
            out.append(f'    {_dot_id(group.name + "-empty")} [label="(none)", shape=plaintext];')
        out.append("  }")
    for c in topology.contents:
        targets = [
            g
            for g in topology.groups
            if any(
                topology.node(n).group == g.name
                for n in topology.fetchers(c.name)
                if n not in c.seeders
            )
        ]
        if not c.seeders:
            continue
        source = c.seeders[0]
        for g in targets:
            first = next(n.name for n in topology.nodes if n.group == g.name)
            out.append(
                f"  {_dot_id(source)} -> {_dot_id(first)} [label={_dot_id(c.name)}, "
                f"lhead={_dot_id('cluster_' + g.name)}];"
            )
    out.append("}")
    return "\n".join(out) + "\n"


# --- Mermaid ----------------------------------------------------------------------------
def _mm_id(text: str) -> str:
    return "n_" + "".join(ch if ch.isalnum() else "_" for ch in text)


def _mm_group(name: str) -> str:
    return "grp_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def _mm_text(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(topology: Topology) -> str:
    seeders, fetchers, interrupted = roles(topology)
    out = ["flowchart LR"]
    for group in topology.groups:
        out.append(f'  subgraph {_mm_group(group.name)}["{_mm_text(group_label(group))}"]')
        for node in topology.nodes:
            if node.group == group.name:
                out.append(f'    {_mm_id(node.name)}(("{_mm_text(node.name)}"))')
        if not group.count:
            out.append(f'    {_mm_id(group.name + "-empty")}["(no nodes)"]')
        out.append("  end")
    for c in topology.contents:
        groups_fetching: list[str] = []
        for name in topology.fetchers(c.name):
            g = topology.node(name).group
            if name not in c.seeders and g not in groups_fetching:
                groups_fetching.append(g)
        for g in groups_fetching:
            if c.seeders:
                out.append(f'  {_mm_id(c.seeders[0])} -- "{_mm_text(c.name)}" --> {_mm_group(g)}')
    out.append(f"  classDef seeder fill:{SEEDER},stroke:#333")
    out.append(f"  classDef fetcher fill:{FETCHER},stroke:#333,color:#fff")
    out.append("  classDef interrupted stroke-dasharray: 4 3")
    for cls, names in (("seeder", seeders), ("fetcher", fetchers), ("interrupted", interrupted)):
        ordered = [n.name for n in topology.nodes if n.name in names]
        if ordered:
            out.append(f"  class {','.join(_mm_id(n) for n in ordered)} {cls}")
    return "\n".join(out) + "\n"
