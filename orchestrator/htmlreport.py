"""One self-contained HTML page for a finished run (`meshbed run --html r.html`, `meshbed
report NAME --html r.html`), for people without Grafana. Per content: completion as a CDF
with the lower-bound and client-server-bound markers, progress per node (per group from 16
fetchers on), upload utilisation over time, chunk replication, bytes received by source with
a scale, and a per-node table. Charts are inline SVG drawn here; no scripts, no network. They
scale with the window (viewBox), legends are HTML so they wrap on a phone.

Samples are dicts ``{"t": seconds since the scenario started, "node": NAME,
"contents": {CONTENT: {"have": chunks held, "pieces": chunks total, ...}}}``.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
]
W, H, PAD_L, PAD_B, PAD_T, PAD_R = 720, 310, 84, 58, 14, 20
PER_NODE_LINES = 16  # from this many fetchers on, progress is drawn per group
Series = Mapping[str, Sequence[tuple[float, float]]]


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def nice_ticks(top: float, most: int = 6) -> list[float]:
    """Round tick values 0, step, 2*step ... covering ``top``; step is 1, 2 or 5 x 10^k."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / (most - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:g}"


class Frame:
    """Axes with round ticks; maps data to viewBox pixels."""

    def __init__(self, x_top: float, y_top: float, x_label: str, y_label: str, y_unit: str = "") -> None:
        self.xt = nice_ticks(x_top)
        self.yt = nice_ticks(y_top)
        self.x_max, self.y_max = self.xt[-1], self.yt[-1]
        self.x_label, self.y_label, self.y_unit = x_label, y_label, y_unit

    def px(self, t: float) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (t / self.x_max if self.x_max else 0)

    def py(self, v: float) -> float:
        return H - PAD_B - (H - PAD_B - PAD_T) * (v / self.y_max if self.y_max else 0)

    def svg(self) -> list[str]:
        parts = []
        for v in self.yt:
            y = self.py(v)
            parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#e4e4e4"/>')
            parts.append(f'<text class="tick" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f"{_fmt(v)}{self.y_unit}</text>")
        for v in self.xt:
            x = self.px(v)
            parts.append(f'<line x1="{x:.1f}" y1="{H - PAD_B}" x2="{x:.1f}" y2="{H - PAD_B + 4}" stroke="#333"/>')
            parts.append(f'<text class="tick" x="{x:.1f}" y="{H - PAD_B + 22}" text-anchor="middle">{_fmt(v)}</text>')
        parts += [
            f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#333"/>',
            f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#333"/>',
            f'<text class="label" x="{(PAD_L + W - PAD_R) / 2}" y="{H - 6}" text-anchor="middle">'
            f"{_esc(self.x_label)}</text>",
            f'<text class="label" x="14" y="{(PAD_T + H - PAD_B) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(PAD_T + H - PAD_B) / 2})">{_esc(self.y_label)}</text>',
        ]
        return parts


def _open_svg(css: str, title: str, height: int = H) -> str:
    return (f'<svg class="{css}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" '
            f'preserveAspectRatio="xMinYMin meet" role="img"><title>{_esc(title)}</title>')


def _legend(items: Sequence[tuple[str, str, str]]) -> str:
    """HTML legend under a chart: (name, colour, css class of the swatch)."""
    spans = "".join(f'<span><i class="{cls}" style="background:{c};border-color:{c}"></i>{_esc(n)}</span>'
                    for n, c, cls in items)
    return f'<div class="legend">{spans}</div>'


CARRIED_NAMES = {"first": "first copies", "copies": "further copies", "waste": "waste"}


def utilisation_series(util: list[float], carried: Optional[Mapping[str, list[float]]]
                       ) -> dict[str, list[float]]:
    """Utilisation per second, with what the upload carried (first copies, further copies,
    waste) where the report has it: the series of the utilisation chart (run and simulate)."""
    return {"utilisation": util, **{CARRIED_NAMES[k]: v for k, v in (carried or {}).items()
                                    if k in CARRIED_NAMES and v}}


def line_chart(series: Series, title: str, x_label: str, y_label: str, y_max: Optional[float] = None,
               y_unit: str = "", markers: Sequence[tuple[str, float, str]] = (), step: bool = False,
               css_class: str = "chart") -> str:
    """Lines (``step``: a staircase, for CDFs) plus vertical dashed ``markers`` (name, x, colour)."""
    pts_all = [p for s in series.values() for p in s]
    x_top = max([p[0] for p in pts_all] + [m[1] for m in markers] + [1e-9]) or 1.0
    y_top = y_max if y_max is not None else (max((p[1] for p in pts_all), default=1.0) or 1.0)
    fr = Frame(x_top, y_top, x_label, y_label, y_unit)
    parts = [_open_svg(css_class, title)] + fr.svg()
    legend = []
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        coords: list[str] = []
        prev_y: Optional[float] = None
        for t, v in pts:
            if step and prev_y is not None:
                coords.append(f"{fr.px(t):.1f},{prev_y:.1f}")
            prev_y = fr.py(v)
            coords.append(f"{fr.px(t):.1f},{prev_y:.1f}")
        parts.append(f'<polyline class="series" data-name="{_esc(name)}" fill="none" stroke="{color}" '
                     f'stroke-width="2" points="{" ".join(coords)}"/>')
        legend.append((name, color, "line"))
    for name, x, color in markers:
        px = fr.px(x)
        parts.append(f'<line class="marker" data-name="{_esc(name)}" x1="{px:.1f}" y1="{PAD_T}" x2="{px:.1f}" '
                     f'y2="{H - PAD_B}" stroke="{color}" stroke-width="2" stroke-dasharray="6 4"/>')
        legend.append((f"{name} {x:.1f} s", color, "dash"))
    parts.append("</svg>")
    return "\n".join(parts) + _legend(legend)


def bar_chart(rows: Mapping[str, Mapping[str, float]], title: str, unit: str = "MiB") -> str:
    """Stacked horizontal bars, one per node, a segment per kind of source, with an x scale."""
    kinds = sorted({s for r in rows.values() for s in r})
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(kinds)}
    bar_h, gap, left = 22, 8, 120
    height = PAD_T + 60 + max(1, len(rows)) * (bar_h + gap)
    top = max((sum(r.values()) for r in rows.values()), default=1.0) or 1.0
    ticks = nice_ticks(top)
    span = W - left - PAD_R

    def px(v: float) -> float:
        return left + span * v / ticks[-1]

    parts = [_open_svg("chart bars", title, height)]
    axis_y = height - 50
    for v in ticks:
        parts.append(f'<line x1="{px(v):.1f}" y1="{PAD_T}" x2="{px(v):.1f}" y2="{axis_y}" stroke="#e4e4e4"/>')
        parts.append(f'<text class="tick" x="{px(v):.1f}" y="{axis_y + 22}" text-anchor="middle">{_fmt(v)}</text>')
    parts.append(f'<text class="label" x="{left + span / 2}" y="{height - 2}" text-anchor="middle">{unit}</text>')
    for i, (node, segs) in enumerate(sorted(rows.items())):
        y = PAD_T + i * (bar_h + gap)
        x = float(left)
        parts.append(f'<text class="name" x="{left - 6}" y="{y + bar_h - 5}" text-anchor="end">{_esc(node)}</text>')
        for kind in kinds:
            v = segs.get(kind, 0.0)
            if v <= 0:
                continue
            w = span * v / ticks[-1]
            parts.append(f'<rect class="seg" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                         f'fill="{colors[kind]}"><title>{_esc(node)} {_esc(kind)}: {v:.2f} {unit}</title></rect>')
            x += w
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{W - PAD_R}" y2="{axis_y}" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts) + _legend([(k, colors[k], "box") for k in kinds])


# --- data ---------------------------------------------------------------------------------
def fetchers_of(report: Mapping[str, Any], content: str) -> dict[str, Mapping[str, Any]]:
    return {n: info["fetches"][content] for n, info in (report.get("nodes") or {}).items()
            if content in (info.get("fetches") or {})}


def group_of(report: Mapping[str, Any], node: str) -> str:
    info = (report.get("nodes") or {}).get(node) or {}
    return str(info.get("group") or node.rsplit("-", 1)[0])


def completion_series(samples: Iterable[Mapping[str, Any]], content: str,
                      only: Optional[Iterable[str]] = None) -> dict[str, list[tuple[float, float]]]:
    """% of chunks held over time per node (``only`` these nodes when given)."""
    keep = set(only) if only is not None else None
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in samples:
        c = (s.get("contents") or {}).get(content)
        if not c or not c.get("pieces") or (keep is not None and s["node"] not in keep):
            continue
        out[str(s["node"])].append((float(s["t"]), 100.0 * c.get("have", 0) / c["pieces"]))
    return dict(out)


def group_progress(per_node: Mapping[str, Sequence[tuple[float, float]]],
                   group: Mapping[str, str]) -> dict[str, list[tuple[float, float]]]:
    """Mean % per group per poll second, from per-node series."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for node, pts in per_node.items():
        for t, v in pts:
            acc[group[node]][round(t)].append(v)
    return {g: [(float(t), sum(v) / len(v)) for t, v in sorted(by_t.items())] for g, by_t in acc.items()}


def cdf_series(report: Mapping[str, Any], content: str) -> dict[str, list[tuple[float, float]]]:
    """Per group: % of its fetchers that hold a verified copy, against seconds from the fetch."""
    times: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for node, f in fetchers_of(report, content).items():
        g = group_of(report, node)
        counts[g] += 1
        if f.get("verified") and f.get("seconds") is not None:
            times[g].append(float(f["seconds"]))
    if len(counts) > 1:
        counts["all fetchers"] = sum(counts.values())
        times["all fetchers"] = [t for g in list(times) for t in times[g]]
    out = {}
    for g, n in counts.items():
        pts = [(0.0, 0.0)] + [(t, 100.0 * (i + 1) / n) for i, t in enumerate(sorted(times.get(g, [])))]
        out[f"{g} ({n})"] = pts
    return out


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
    """MiB each fetcher received from seeders and from other fetchers."""
    fetchers = fetchers_of(report, content)
    rows: dict[str, dict[str, float]] = {}
    for node, f in fetchers.items():
        row = {"from seeders": 0.0, "from other fetchers": 0.0}
        for src, b in (f.get("bytes_from") or {}).items():
            row["from other fetchers" if src in fetchers else "from seeders"] += b / 2**20
        rows[node] = row
    return rows


# --- page ---------------------------------------------------------------------------------
def _num(x: Any, nd: int = 2) -> str:
    return f"{x:.{nd}f}" if isinstance(x, (int, float)) else "&ndash;"


def node_table(report: Mapping[str, Any], content: str) -> str:
    rows = []
    for node, f in sorted(fetchers_of(report, content).items(), key=lambda kv: (kv[1].get("seconds") is None,
                                                                                kv[1].get("seconds") or 0)):
        got = sum(int(v) for v in (f.get("bytes_from") or {}).values())
        peers = sum(1 for v in (f.get("bytes_from") or {}).values() if v)
        verdict = "yes" if f.get("verified") else ("no" if f.get("complete") else "incomplete")
        rows.append(
            f"<tr><td>{_esc(node)}</td><td>{_esc(group_of(report, node))}</td><td>{_num(f.get('seconds'), 1)}</td>"
            f'<td class="{"ok" if f.get("verified") else "fail"}">{verdict}</td><td>{got / 2**20:.1f}</td>'
            f"<td>{(f.get('wasted') or 0) / 2**20:.2f}</td><td>{peers}</td></tr>"
        )
    return ('<div class="scroll"><table class="nodes"><tr><th>node</th><th>group</th><th>time s</th>'
            "<th>verified</th><th>received MiB</th><th>wasted MiB</th><th>from peers</th></tr>"
            + "".join(rows) + "</table></div>")


def content_section(report: Mapping[str, Any], samples: Sequence[Mapping[str, Any]], content: str) -> list[str]:
    d = (report.get("distribution") or {}).get(content) or {}
    fetchers = fetchers_of(report, content)
    markers = []
    if d.get("lower_bound_seconds"):
        markers.append(("lower bound", float(d["lower_bound_seconds"]), "#2ca02c"))
    if d.get("client_server_bound_seconds"):
        markers.append(("client-server bound", float(d["client_server_bound_seconds"]), "#d62728"))
    panels = [("Completion: share of fetchers with a verified copy",
               line_chart(cdf_series(report, content), "completion CDF", "seconds since the fetch request",
                          "% of fetchers", 100.0, "%", markers, step=True, css_class="chart cdf"))]
    per_node = completion_series(samples, content, fetchers)
    if len(fetchers) < PER_NODE_LINES:
        panels.append(("Chunks held per node",
                       line_chart(per_node, "progress per node", "seconds since the scenario start", "% of chunks",
                                  100.0, "%")))
    else:
        groups = {n: group_of(report, n) for n in per_node}
        panels.append(("Chunks held, mean per group",
                       line_chart(group_progress(per_node, groups), "progress per group",
                                  "seconds since the scenario start", "% of chunks", 100.0, "%")))
    util = d.get("utilisation") or []
    if util:
        series = utilisation_series(util, d.get("carried"))
        panels.append(("Upload utilisation: swarm upload / upload capacity of the nodes up, and what it carried",
                       line_chart({k: [(float(i), 100.0 * u) for i, u in enumerate(v)] for k, v in series.items()},
                                  "upload utilisation", "seconds since the scenario start", "% of capacity",
                                  max(100.0, 100.0 * max(util)), "%", css_class="chart util")))
    panels += [("Chunk replication over time",
                line_chart(replication_series(samples, content), "replication", "seconds since the scenario start",
                           "copies / nodes")),
               ("Bytes received by source", bar_chart(bytes_by_source(report, content), "bytes by source"))]
    figures = "".join(f'<figure class="panel"><h3>{_esc(title)}</h3>{chart}</figure>' for title, chart in panels)
    return [f"<h2>{_esc(content)}</h2>", f'<div class="grid">{figures}</div>',
            "<h3>Per node</h3>", node_table(report, content)]


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0 auto;padding:16px;max-width:1600px;color:#222}"
    # two charts side by side where they stay at least 560 px wide, one under the other below
    ".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:8px 32px}"
    "figure.panel{margin:0;min-width:0}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.ok{color:#2ca02c}.fail{color:#d62728}"
    "svg{display:block;width:100%;height:auto;margin:8px 0 2px 0;background:#fff}"
    "svg .tick{font-size:13px;fill:#444}svg .name{font-size:13px;fill:#444}svg .label{font-size:14px;fill:#222}"
    ".legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:13px;margin:0 0 20px 0}"
    ".legend i{display:inline-block;width:14px;height:0;margin-right:5px;vertical-align:middle;"
    "border-top:3px solid}.legend i.dash{border-top-style:dashed}.legend i.box{height:10px;border:0}"
    ".scroll{overflow-x:auto}p.note{color:#555;font-size:14px}td,th{white-space:nowrap}"
    # a phone shows the 720-unit viewBox at half size: twice the font keeps ticks readable
    "@media (max-width:640px){body{padding:8px}svg .tick{font-size:22px}svg .label{font-size:24px}"
    "svg .name{font-size:19px}h1{font-size:1.5em}}"
)


def render(report: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> str:
    name = report.get("name", "mesh")
    ok = report.get("ok")
    body = [f"<h1>meshbed run: {_esc(name)}</h1>",
            f'<p class="verdict {"ok" if ok else "fail"}">{"all expectations met" if ok else "expectations NOT met"}'
            f" &middot; backend {_esc(report.get('backend'))} &middot; {len(report.get('nodes') or {})} nodes</p>"]
    rows = []
    for content, d in (report.get("distribution") or {}).items():
        rows.append(f"<tr><td>{_esc(content)}</td><td>{d.get('verified', '&ndash;')}/{d.get('fetchers', '&ndash;')}"
                    f"</td><td>{_num(d.get('seconds'))}</td><td>{_num(d.get('lower_bound_seconds'))}</td>"
                    f"<td>{_num(d.get('efficiency'))}</td><td>{_num(d.get('client_server_bound_seconds'))}</td></tr>")
    body.append('<div class="scroll"><table><tr><th>content</th><th>verified</th><th>distribution s</th>'
                "<th>lower bound s</th><th>efficiency</th><th>client-server bound s</th></tr>"
                + "".join(rows) + "</table></div>")
    body.append('<p class="note">Lower bound: the fluid-model minimum time, max(F/u<sub>s</sub>, F/d<sub>min</sub>, '
                "N&middot;F/(u<sub>s</sub>+&Sigma;u<sub>i</sub>)). Efficiency: lower bound / measured time. "
                "Client-server bound: what one server with the seeders' upload would need. "
                "Wasted: received bytes thrown away (duplicate end-game blocks, pieces failing their hash).</p>")
    for content in (report.get("contents") or {}):
        body += content_section(report, samples, content)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>meshbed {_esc(name)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
