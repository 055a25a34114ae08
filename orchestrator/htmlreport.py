"""One self-contained HTML page for a finished run (`meshbed run --html r.html`), for people
without Grafana: completion over time per node, chunk replication over time, bytes by source.
Charts are inline SVG drawn here from the run's own samples; no scripts, no network.

Samples are dicts ``{"t": seconds since the scenario started, "node": NAME,
"contents": {CONTENT: {"have": chunks held, "pieces": chunks total, ...}}}``.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
]
W, H, PAD_L, PAD_B, PAD_T, PAD_R = 760, 300, 56, 36, 16, 150


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _axes(x_max: float, y_max: float, x_label: str, y_label: str, y_fmt: str = "{:.0f}") -> list[str]:
    parts = [
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#333"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#333"/>',
        f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 4}" text-anchor="middle" font-size="12">{_esc(x_label)}</text>',
        f'<text x="14" y="{(PAD_T + H - PAD_B) / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {(PAD_T + H - PAD_B) / 2})">{_esc(y_label)}</text>',
    ]
    for i in range(5):
        fx = x_max * i / 4
        fy = y_max * i / 4
        px = PAD_L + (W - PAD_L - PAD_R) * i / 4
        py = H - PAD_B - (H - PAD_B - PAD_T) * i / 4
        parts.append(f'<text x="{px:.1f}" y="{H - PAD_B + 14}" text-anchor="middle" font-size="10">{fx:.1f}</text>')
        parts.append(f'<text x="{PAD_L - 4}" y="{py + 3:.1f}" text-anchor="end" font-size="10">{y_fmt.format(fy)}</text>')
        parts.append(f'<line x1="{PAD_L}" y1="{py:.1f}" x2="{W - PAD_R}" y2="{py:.1f}" stroke="#eee"/>')
    return parts


def _scale(t: float, v: float, x_max: float, y_max: float) -> tuple[float, float]:
    x = PAD_L + (W - PAD_L - PAD_R) * (t / x_max if x_max else 0)
    y = H - PAD_B - (H - PAD_B - PAD_T) * (v / y_max if y_max else 0)
    return x, y


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    x_label: str,
    y_label: str,
    y_max: float | None = None,
    y_fmt: str = "{:.0f}",
    css_class: str = "chart",
) -> str:
    pts_all = [p for s in series.values() for p in s]
    x_max = max((p[0] for p in pts_all), default=1.0) or 1.0
    top = y_max if y_max is not None else (max((p[1] for p in pts_all), default=1.0) or 1.0)
    parts = [f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">']
    parts.append(f"<title>{_esc(title)}</title>")
    parts += _axes(x_max, top, x_label, y_label, y_fmt)
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (_scale(t, v, x_max, top) for t, v in pts))
        parts.append(
            f'<polyline class="series" data-name="{_esc(name)}" fill="none" stroke="{color}" '
            f'stroke-width="2" points="{coords}"/>'
        )
        if i < 20:  # legend; more would not fit
            ly = PAD_T + 12 + i * 13
            parts.append(f'<rect x="{W - PAD_R + 8}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
            parts.append(f'<text x="{W - PAD_R + 22}" y="{ly + 1}" font-size="11">{_esc(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(rows: Mapping[str, Mapping[str, float]], title: str, unit: str = "MiB") -> str:
    """Stacked horizontal bars: one row per node, segments per source."""
    sources = sorted({s for r in rows.values() for s in r})
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sources)}
    bar_h, gap = 14, 4
    height = PAD_T + PAD_B + max(1, len(rows)) * (bar_h + gap)
    x_max = max((sum(r.values()) for r in rows.values()), default=1.0) or 1.0
    width_px = W - PAD_L - PAD_R - 40
    parts = [f'<svg class="chart bars" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" role="img">']
    parts.append(f"<title>{_esc(title)}</title>")
    for i, (node, segs) in enumerate(sorted(rows.items())):
        y = PAD_T + i * (bar_h + gap)
        x = float(PAD_L + 40)
        parts.append(f'<text x="{x - 4}" y="{y + bar_h - 3}" text-anchor="end" font-size="10">{_esc(node)}</text>')
        for src in sources:
            v = segs.get(src, 0.0)
            if v <= 0:
                continue
            w = width_px * v / x_max
            parts.append(
                f'<rect class="seg" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colors[src]}">'
                f"<title>{_esc(node)} from {_esc(src)}: {v:.2f} {unit}</title></rect>"
            )
            x += w
    for i, src in enumerate(sources[:30]):
        ly = PAD_T + 12 + i * 13
        parts.append(f'<rect x="{W - PAD_R + 8}" y="{ly - 8}" width="10" height="10" fill="{colors[src]}"/>')
        parts.append(f'<text x="{W - PAD_R + 22}" y="{ly + 1}" font-size="11">{_esc(src)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def completion_series(samples: Iterable[Mapping[str, Any]], content: str) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in samples:
        c = (s.get("contents") or {}).get(content)
        if not c or not c.get("pieces"):
            continue
        out[str(s["node"])].append((float(s["t"]), 100.0 * c.get("have", 0) / c["pieces"]))
    return dict(out)


def replication_series(samples: Iterable[Mapping[str, Any]], content: str) -> dict[str, list[tuple[float, float]]]:
    """Mean copies per chunk across the mesh over time (sum of chunks held / chunks), and the
    number of nodes holding a full copy."""
    by_t: dict[float, dict[str, float]] = defaultdict(dict)
    pieces = 0
    for s in samples:
        c = (s.get("contents") or {}).get(content)
        if not c or not c.get("pieces"):
            continue
        pieces = int(c["pieces"])
        t = round(float(s["t"]))  # samples of one poll round land in the same second
        by_t[t][str(s["node"])] = float(c.get("have", 0))
    copies = [(t, sum(v.values()) / pieces) for t, v in sorted(by_t.items())] if pieces else []
    full = [(t, float(sum(1 for h in v.values() if h >= pieces))) for t, v in sorted(by_t.items())] if pieces else []
    return {"mean copies per chunk": copies, "nodes with a full copy": full}


def bytes_by_source(report: Mapping[str, Any], content: str) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for node, info in (report.get("nodes") or {}).items():
        f = (info.get("fetches") or {}).get(content)
        if not f:
            continue
        rows[node] = {str(src): b / 2**20 for src, b in (f.get("bytes_from") or {}).items()}
    return rows


def render(report: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> str:
    name = report.get("name", "mesh")
    body = [f"<h1>meshbed run: {_esc(name)}</h1>"]
    ok = report.get("ok")
    body.append(
        f'<p class="verdict {"ok" if ok else "fail"}">{"all expectations met" if ok else "expectations NOT met"}'
        f" &middot; backend {_esc(report.get('backend'))} &middot; {len(report.get('nodes') or {})} nodes</p>"
    )
    rows = []
    for content, d in (report.get("distribution") or {}).items():
        def f(x: Any) -> str:
            return f"{x:.2f}" if isinstance(x, (int, float)) else "&ndash;"

        rows.append(
            f"<tr><td>{_esc(content)}</td><td>{f(d.get('seconds'))}</td><td>{f(d.get('lower_bound_seconds'))}</td>"
            f"<td>{f(d.get('efficiency'))}</td><td>{f(d.get('client_server_bound_seconds'))}</td></tr>"
        )
    body.append(
        "<table><tr><th>content</th><th>distribution s</th><th>lower bound s</th><th>efficiency</th>"
        "<th>client-server bound s</th></tr>" + "".join(rows) + "</table>"
    )
    for content in (report.get("contents") or {}):
        body.append(f"<h2>{_esc(content)}</h2>")
        body.append("<h3>Completion over time per node</h3>")
        body.append(line_chart(completion_series(samples, content), "completion", "seconds", "% of chunks", 100.0))
        body.append("<h3>Chunk replication over time</h3>")
        body.append(line_chart(replication_series(samples, content), "replication", "seconds", "copies / nodes", None, "{:.1f}"))
        body.append("<h3>Bytes by source (MiB)</h3>")
        body.append(bar_chart(bytes_by_source(report, content), "bytes by source"))
    style = (
        "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}.ok{color:#2ca02c}.fail{color:#d62728}"
        "svg{display:block;margin:8px 0 24px 0;background:#fff}"
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>meshbed {_esc(name)}</title><style>{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
