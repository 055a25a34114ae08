"""The HTML page of a simulated run: `meshbed run`'s page (orchestrator/htmlreport.py) plus
the completion curve of all fetchers and the swarm's upload utilisation per second, which
stay readable at any number of nodes (per-node charts are drawn up to 64 nodes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator import htmlreport
from orchestrator.bounds import client_server_bound, lower_bound
from orchestrator.simulate.scalechart import chart

SCALE_GRID = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


def completion_curve(completions: Sequence[float]) -> list[tuple[float, float]]:
    """(seconds, % of fetchers complete) as a step curve."""
    n = len(completions)
    pts: list[tuple[float, float]] = [(0.0, 0.0)]
    for i, t in enumerate(completions):
        pts.append((float(t), 100.0 * i / n))
        pts.append((float(t), 100.0 * (i + 1) / n))
    return pts


def scale_section(report: Mapping[str, Any], links: Mapping[str, Any]) -> str:
    """Where this run sits between the two bounds, extrapolated from 10 to 100,000 fetchers
    with its own links (seeders' upload; the fetchers' mean upload, slowest download)."""
    parts = []
    for content, d in (report.get("distribution") or {}).items():
        info = links.get(content)
        if not info or not d.get("seconds") or not d.get("fetchers"):
            continue
        size, seed_up, up, down = info["size"], info["seed_up"], info["up"], info["down"]
        series: dict[str, list[tuple[float, float]]] = {"client-server bound": [], "swarm lower bound": []}
        for n in SCALE_GRID:
            cs = client_server_bound(size, seed_up, [down] * n)
            p2p = lower_bound(size, seed_up, [up] * n, [down] * n)
            if cs:
                series["client-server bound"].append((float(n), cs))
            if p2p:
                series["swarm lower bound"].append((float(n), p2p))
        key = "client-server (simulated)" if report.get("strategy") == "client-server" else "swarm (simulated)"
        series[key] = [(float(d["fetchers"]), float(d["seconds"]))]
        parts.append(f"<h3>{htmlreport._esc(content)}: this run against both bounds, 10 to 100,000 fetchers</h3>")
        parts.append(chart(series, f"{content}: seconds vs fetchers (bounds with this run's links)"))
    return "\n".join(parts)


def extra_sections(report: Mapping[str, Any]) -> str:
    parts = [f"<h2>Simulation</h2><p>virtual {report.get('virtual_seconds')} s in "
             f"{report.get('wall_seconds')} s wall, {report.get('events_processed')} events</p>"]
    for content, d in (report.get("distribution") or {}).items():
        done = d.get("completions") or []
        if done:
            parts.append(f"<h3>{htmlreport._esc(content)}: fetchers complete over time</h3>")
            parts.append(htmlreport.line_chart({"complete": completion_curve(done)}, "completion curve",
                                               "seconds", "% of fetchers", 100.0))
    util = report.get("utilisation") or []
    if util:
        series = htmlreport.utilisation_series(util, report.get("carried"))
        parts.append("<h3>Swarm upload used / capacity, and what it carried</h3>")
        parts.append(htmlreport.line_chart(
            {k: [(float(i + 1), 100.0 * u) for i, u in enumerate(v)] for k, v in series.items()},
            "utilisation", "seconds", "% of upload capacity", 100.0))
    return "\n".join(parts)


def render(report: Mapping[str, Any], samples: Sequence[Mapping[str, Any]],
           links: Mapping[str, Any] = {}) -> str:  # noqa: B006 (read only)
    """``links``: per content size, seed_up (list), up and down of a typical fetcher (bits/s)."""
    page = htmlreport.render(report, samples)
    page = page.replace("<h1>meshbed run:", "<h1>meshbed simulate:", 1)
    extra = extra_sections(report) + "\n" + scale_section(report, links)
    return page.replace("\n</body>", "\n" + extra + "\n</body>", 1)


def typical_links(world: Any) -> dict[str, Any]:
    """Per content: what scale_section extrapolates with (uncapped rates stay None)."""
    out: dict[str, Any] = {}
    for name, info in world.contents.items():
        links = [world.links[n] for n in info.fetchers]
        ups = [lk.up_bps for lk in links]
        downs = [lk.down_bps for lk in links if lk.down_bps is not None]
        out[name] = {
            "size": info.size,
            "seed_up": [world.links[s].up_bps for s in info.seeders],
            "up": None if not ups or None in ups else sum(u for u in ups if u is not None) // len(ups),
            "down": min(downs) if downs else None,
        }
    return out
